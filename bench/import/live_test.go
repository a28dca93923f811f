package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/aipress/aipress/internal/liveimport"
	"github.com/aipress/aipress/internal/liveimport/sshtest"
	"github.com/aipress/aipress/internal/siteport"
)

// TestLiveSource: the live mode's source — the generated wp-content
// unpacked into a docroot, the dump served by the SSH server's handler —
// pulls with the live importer (the CLI's code) into an archive the import
// accepts, holding the generated dump whole and every upload.
func TestLiveSource(t *testing.T) {
	dir := t.TempDir()
	plan := Plan{DumpBytes: 300 << 10, UploadBytes: 2 << 20, Seed: 5}
	archive, dump := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "a.sql")
	g, err := Generate(plan, archive, dump)
	if err != nil {
		t.Fatal(err)
	}
	docroot, err := liveTree(archive, filepath.Join(dir, "live"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sshtest.Start(sshtest.Config{User: "deploy", Password: "pw", Handler: dumpHandler(dump)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hk, err := liveimport.HostKeyFingerprint(ssh.FingerprintSHA256(srv.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := liveimport.Dial(ctx, liveimport.Source{User: "deploy", Host: "127.0.0.1", Port: srv.Port(), Path: docroot},
		liveimport.Config{Password: "pw", HostKey: hk})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pulledPath := filepath.Join(dir, "pulled.tar.gz")
	f, err := os.Create(pulledPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Pull(ctx, f, liveimport.PullOptions{Scratch: dir})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.DumpBytes != g.DumpBytes || p.Files < g.Uploads+1 {
		t.Errorf("pulled %+v; generated %+v", p, g)
	}
	scratch := filepath.Join(dir, "x")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	in, err := siteport.Inspect(ctx, siteport.InspectRequest{Archive: pulledPath, Scratch: scratch, Limits: siteport.Limits{Bytes: 1 << 30, Files: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	if in.OldURL != OldURL || in.TablePrefix != "wp_" || len(in.Tables) != len(tables) || !slices.Contains(in.Themes, "oldhost-child") || in.WordPressVersion == "" {
		t.Errorf("inspection: old URL %q, prefix %q, tables %q, themes %q, WordPress %q", in.OldURL, in.TablePrefix, in.Tables, in.Themes, in.WordPressVersion)
	}
}
