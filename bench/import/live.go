package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/aipress/aipress/internal/liveimport/sshtest"
)

// liveDomain is the live mode's site.
const liveDomain = "live.localhost"

// liveTree unpacks the generated archive's wp-content into dir/docroot and
// adds what a WordPress docroot has that the pull reads:
// wp-includes/version.php and a wp-config.php with literal credentials
// (the dump is served by the SSH server's handler: no database is used).
func liveTree(archive, dir string) (string, error) {
	docroot := filepath.Join(dir, "docroot")
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(h.Name, "wp-content/") || strings.Contains(h.Name, "..") {
			continue
		}
		p := filepath.Join(docroot, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		out, err := os.Create(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		_ = os.Chtimes(p, h.ModTime, h.ModTime)
	}
	if err := os.MkdirAll(filepath.Join(docroot, "wp-includes"), 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"wp-includes/version.php": "<?php\n$wp_version = '6.1.1';\n$wp_db_version = 53496;\n",
		"wp-config.php": "<?php\ndefine( 'DB_NAME', 'oldsite' );\ndefine( 'DB_USER', 'oldsite' );\ndefine( 'DB_PASSWORD', 'bench' );\n" +
			"define( 'DB_HOST', 'localhost' );\n$table_prefix = 'wp_';\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(docroot, filepath.FromSlash(name)), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return docroot, nil
}

// dumpHandler answers the pull's dump command (the remote mariadb-dump)
// with the generated dump, and refuses anything else.
func dumpHandler(dump string) func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	return func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		if !strings.Contains(cmd, "mariadb-dump") {
			fmt.Fprintf(stderr, "bench-import: only the dump is served, not %q\n", cmd)
			return 126
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(stdin, 1<<20)) // the option file
		f, err := os.Open(dump)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if _, err := io.Copy(stdout, f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
}

// liveImport runs `aipress site import --ssh … --wait=false` as a
// subprocess against an in-process SSH server (sshtest) serving docroot
// and the dump: the CLI pulls over SFTP and the exec channel and streams
// the archive into POST /v1/imports. It returns when the CLI exits (the
// POST answered) with the CLI's peak RSS (its rusage maxrss: the pulling
// side's memory, the SSH server in this process not counted).
func liveImport(ctx context.Context, bin, dataDir, work, docroot, dump, plan string) (cliHWM int64, out string, err error) {
	const pw = "bench-live"
	srv, err := sshtest.Start(sshtest.Config{User: "deploy", Password: pw, Handler: dumpHandler(dump)})
	if err != nil {
		return 0, "", err
	}
	defer srv.Close()
	cmd := exec.CommandContext(ctx, bin, "site", "import", "--ssh", fmt.Sprintf("deploy@127.0.0.1:%d:%s", srv.Port(), docroot),
		"--ssh-password-env", "BENCH_SSH_PW", "--ssh-host-key", ssh.FingerprintSHA256(srv.HostKey),
		"--state", filepath.Join(work, "live-state.json"), "--domain", liveDomain, "--plan", plan, "--wait=false", "-o", "json")
	cmd.Env = append(os.Environ(), "AIPRESS_DATA_DIR="+dataDir, "BENCH_SSH_PW="+pw)
	b, err := cmd.CombinedOutput()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			cliHWM = ru.Maxrss << 10
		}
	}
	if err != nil {
		return cliHWM, string(b), fmt.Errorf("aipress site import --ssh: %w: %.2000s", err, b)
	}
	return cliHWM, string(b), nil
}

// cliBaseline is the CLI's peak RSS doing nothing (`aipress --help`): what
// its start costs, against which the live pull's peak is judged.
func cliBaseline(ctx context.Context, bin string) (int64, error) {
	cmd := exec.CommandContext(ctx, bin, "--help")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s --help: %w: %.500s", bin, err, out)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10, nil
	}
	return 0, errors.New("no rusage for aipress --help")
}
