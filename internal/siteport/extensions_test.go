package siteport_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/siteport"
)

// TestPackExtensions checks which plugins and themes of an archive the
// artefact store would take, with the reason for the others, and that
// packing is deterministic (two archives of one plugin: one SHA-256).
func TestPackExtensions(t *testing.T) {
	const hello = "<?php\n/*\nPlugin Name: Hello\nVersion: 1.2\n*/\n"
	pack := func(t *testing.T, lim artefact.Limits, es ...entry) map[string]siteport.Extension {
		t.Helper()
		dir := t.TempDir()
		file := filepath.Join(dir, "archive")
		os.WriteFile(file, tarGz(t, true, es...), 0o600)
		dst, out := filepath.Join(dir, "x"), filepath.Join(dir, "zips")
		os.Mkdir(dst, 0o700)
		os.Mkdir(out, 0o700)
		ex, err := siteport.Extract(context.Background(), file, dst, siteport.Limits{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := siteport.Locate(dst)
		if err != nil {
			t.Fatal(err)
		}
		exts, err := siteport.PackExtensions(dst, l, ex.Skipped, out, lim)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]siteport.Extension{}
		for _, e := range exts {
			m[e.Kind+"/"+e.Name] = e
			if e.Storable {
				if _, err := os.Stat(e.Zip); err != nil {
					t.Errorf("%s: %v", e.Name, err)
				}
			}
		}
		return m
	}
	site := []entry{
		{name: "wp-content/plugins/hello/hello.php", body: hello},
		{name: "wp-content/plugins/hello/inc/a.php", body: "<?php // a"},
		{name: "wp-content/plugins/single.php", body: hello},
		{name: "wp-content/plugins/noheader/noheader.php", body: "<?php echo 1;"},
		{name: "wp-content/plugins/linked/linked.php", body: hello},
		{name: "wp-content/plugins/linked/l", typ: tar.TypeSymlink, link: "linked.php"},
		{name: "wp-content/plugins/Upper/upper.php", body: hello},
		{name: "wp-content/plugins/big/big.php", body: hello + strings.Repeat("x", 4096)},
		{name: "wp-content/themes/kid/style.css", body: "/*\nTheme Name: Kid\nVersion: 3.0\n*/"},
		{name: "wp-content/themes/bare/index.php", body: "<?php"},
		{name: "dump.sql", body: "SELECT 1;\n"},
	}
	got := pack(t, artefact.Limits{MaxUnpackedBytes: 2048}, site...)
	for _, tc := range []struct {
		key, version, reason string // reason "": storable
	}{
		{key: "plugin/hello", version: "1.2"},
		{key: "theme/kid", version: "3.0"},
		{key: "plugin/single.php", reason: "a single file, not a folder"},
		{key: "plugin/noheader", reason: "Plugin Name"},
		{key: "plugin/linked", reason: "it holds links: wp-content/plugins/linked/l"},
		{key: "plugin/Upper", reason: "not a slug"},
		{key: "plugin/big", reason: "too big"},
		{key: "theme/bare", reason: "style.css"},
	} {
		e, ok := got[tc.key]
		switch {
		case !ok:
			t.Errorf("%s: not reported", tc.key)
		case tc.reason == "" && (!e.Storable || e.Version != tc.version || len(e.SHA256) != 64):
			t.Errorf("%s: %+v, want storable at version %s", tc.key, e, tc.version)
		case tc.reason != "" && (e.Storable || !strings.Contains(e.Reason, tc.reason)):
			t.Errorf("%s: %+v, want it kept in the tree because %q", tc.key, e, tc.reason)
		}
	}
	// The same plugin in another archive (other neighbours, other
	// dates): the same zip.
	again := pack(t, artefact.Limits{}, site[0], site[1], entry{name: "wp-content/uploads/x", body: "x"}, entry{name: "db.sql", body: "SELECT 1;\n"})
	if a, b := got["plugin/hello"].SHA256, again["plugin/hello"].SHA256; a != b {
		t.Errorf("one plugin packed twice: %s and %s", a, b)
	}
}
