package shardagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/egress"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// TestShardFetchesUploads: an organisation uploads a plugin through the
// API and names it in a site's spec; the artefact store of the shard hosting
// that site (an `aipress shard`, through its agent client; a shard of
// `aipress up`, from the
// bucket) fetches and unpacks it; another shard cannot.
func TestShardFetchesUploads(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hash("admin-secret"), CreatedAt: now},
		{ID: "tok-s1", Name: "s1", Role: store.RoleShard, Subject: "s1", Hash: hash("s1-secret"), CreatedAt: now},
		{ID: "tok-s2", Name: "s2", Role: store.RoleShard, Subject: "s2", Hash: hash("s2-secret"), CreatedAt: now},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "a.test", UID: "uid-a", CreatedAt: now},
		Spec: site.Spec{Domain: "a.test", Plan: "basic"}, Status: site.Status{Shard: "s1"}}); err != nil {
		t.Fatal(err)
	}
	uploads, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer uploads.Close()
	srv := httptest.NewServer(api.New(api.Config{Store: st, Uploads: uploads}))
	defer srv.Close()

	zip := catalogtest.Zip(catalogtest.HelloPlugin, catalogtest.PluginFiles(catalogtest.HelloPlugin, "1.0"))
	up, err := apiclient.New(srv.URL, "admin-secret").UploadArtefact(ctx, "", "", strings.NewReader(string(zip)))
	if err != nil {
		t.Fatal(err)
	}
	// A shard is given only the uploads a site of its own names.
	if _, err := st.UpdateSite(ctx, "a.test", func(s *site.Site) error {
		s.Spec.Plugins = []site.Extension{{Name: catalogtest.HelloPlugin, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: up.SHA256}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ref := artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin, Org: store.DefaultOrg, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: up.SHA256}}
	cfg := Config{}
	for _, tc := range []struct {
		name    string
		store   func(dir string) (*artefact.Store, error)
		wantErr error
	}{
		{"aipress shard on the site's shard", func(dir string) (*artefact.Store, error) {
			return openShardArtefacts(dir, "", agentUploads(apiclient.New(srv.URL, "s1-secret")), cfg)
		}, nil},
		{"aipress up", func(dir string) (*artefact.Store, error) {
			return openShardArtefacts(dir, "", BucketUploads(uploads), cfg)
		}, nil},
		{"another shard", func(dir string) (*artefact.Store, error) {
			return openShardArtefacts(dir, "", agentUploads(apiclient.New(srv.URL, "s2-secret")), cfg)
		}, artefact.ErrNotFound},
	} {
		s, err := tc.store(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Ensure(ctx, ref)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && (a.Version != "1.0" || a.Digest != up.SHA256)) {
			t.Errorf("%s: %v %+v, want %v", tc.name, err, a, tc.wantErr)
		}
		missing := ref
		missing.Source.SHA256 = strings.Repeat("0", 64)
		if _, err := s.Ensure(ctx, missing); !errors.Is(err, artefact.ErrNotFound) {
			t.Errorf("%s: a missing upload: %v", tc.name, err)
		}
	}
}

// TestShardArtefactsPrivateFetch: a shard's store reaches a catalogue on
// loopback only with --allow-private-fetch (ShardConfig.AllowPrivateFetch).
func TestShardArtefactsPrivateFetch(t *testing.T) {
	cat := catalogtest.New(t)
	cat.AddPlugin(catalogtest.HelloPlugin, "1.0", catalogtest.PluginFiles(catalogtest.HelloPlugin, "1.0"))
	ref := artefact.Ref{Kind: artefact.Plugin, Name: catalogtest.HelloPlugin, Version: "1.0"}
	for _, allow := range []bool{false, true} {
		s, err := openShardArtefacts(t.TempDir(), cat.URL(), nil, Config{AllowPrivateFetch: allow})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Ensure(context.Background(), ref)
		if allow && err != nil {
			t.Errorf("allowed: %v", err)
		}
		if !allow && !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("not allowed: %v, want ErrForbidden", err)
		}
	}
	if n := cat.Count("/plugin/"); n != 1 {
		t.Errorf("%d downloads, want 1 (the allowed store's)", n)
	}
}
