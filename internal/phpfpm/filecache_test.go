package phpfpm_test

import (
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/phpfpm"
)

const phpCLI = "/usr/bin/php8.2"

// TestFileCache: FillFileCache compiles a root-owned tree into OPcache's
// file cache, which a pool's worker then loads instead of compiling (seen
// by changing a file's contents but not its modification time: the worker
// runs what was filled); a file changed since runs afresh; the cache is
// root's and read-only to workers, which can neither write into it nor get
// their own scripts stored in it.
func TestFileCache(t *testing.T) {
	for _, bin := range []string{phpfpm.Binary, phpCLI} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s not installed (make deps)", bin)
		}
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	core := filepath.Join(dir, "core")
	docroot := filepath.Join(dir, "htdocs")
	for _, d := range []string{core, docroot, filepath.Join(dir, "tmp"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o777)
	os.Chmod(filepath.Join(dir, "logs"), 0o777)
	lib := filepath.Join(core, "lib.php")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(lib, `<?php function aipress_v() { return "compiled-A"; }`)
	write(filepath.Join(docroot, "index.php"), `<?php require '`+lib+`'; echo aipress_v();`)
	write(filepath.Join(docroot, "own.php"), `<?php echo "own";`)
	write(filepath.Join(docroot, "plant.php"), `<?php $d = $_GET['d'];
$w = @file_put_contents($d . '/planted.bin', 'x') !== false;
$m = @mkdir($d . '/planted');
echo ($w || $m) ? 'written' : 'refused';`)
	libMtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(lib, libMtime, libMtime); err != nil {
		t.Fatal(err)
	}

	cache := filepath.Join(dir, "opcache")
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), FileCache: cache,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	p := phpfpm.Pool{Name: "site_a", SiteDir: dir}
	asRoot := os.Geteuid() == 0
	if asRoot {
		p.User, p.Group = "nobody", "nogroup"
	}
	if err := m.EnsurePool(ctx, p); err != nil {
		t.Fatal(err)
	}

	n, err := m.FillFileCache(ctx, phpCLI, core)
	if err != nil || n != 1 {
		t.Fatalf("FillFileCache = %d, %v; want 1 script", n, err)
	}
	if n, err := m.FillFileCache(ctx, phpCLI, core); err != nil || n != 0 {
		t.Errorf("second FillFileCache = %d, %v; want 0 (already filled)", n, err)
	}
	var bins []string
	filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		switch {
		case d.IsDir() && info.Mode().Perm() != 0o711:
			t.Errorf("%s: mode %v, want 0711", path, info.Mode().Perm())
		case d.Type().IsRegular() && info.Mode().Perm() != 0o644:
			t.Errorf("%s: mode %v, want 0644", path, info.Mode().Perm())
		case d.Type().IsRegular():
			bins = append(bins, path)
		}
		return nil
	})
	if len(bins) != 1 || !strings.HasSuffix(bins[0], lib+".bin") {
		t.Fatalf("file cache holds %v, want only %s's compiled script", bins, lib)
	}

	fetch := serveSite(t, "a.test", docroot, m.Socket("site_a"))
	get := func(path string) string {
		t.Helper()
		code, body := fetch(path)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return body
	}

	// The same modification time, other contents: a worker that compiles
	// lib.php runs source-B; one that loads the filled cache, compiled-A.
	write(lib, `<?php function aipress_v() { return "source-B"; }`)
	if err := os.Chtimes(lib, libMtime, libMtime); err != nil {
		t.Fatal(err)
	}
	if got := get("/"); got != "compiled-A" {
		t.Fatalf("first request ran %q, want compiled-A from the file cache", got)
	}
	// A changed file (a newer modification time) is compiled again.
	now := time.Now().Add(time.Second)
	os.Chtimes(lib, now, now)
	deadline := time.Now().Add(20 * time.Second)
	for got := get("/"); got != "source-B"; got = get("/") {
		if time.Now().After(deadline) {
			t.Fatalf("changed lib.php still runs %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if !asRoot {
		return // workers run as this user: nothing to isolate
	}
	if got := get("/own.php"); got != "own" {
		t.Fatalf("own.php: %q", got)
	}
	sysDirs, _ := os.ReadDir(cache)
	targets := []string{cache}
	for _, d := range sysDirs {
		targets = append(targets, filepath.Join(cache, d.Name()), filepath.Join(cache, d.Name(), filepath.Dir(lib)))
	}
	for _, d := range targets {
		if got := get("/plant.php?d=" + url.QueryEscape(d)); got != "refused" {
			t.Errorf("a site's PHP wrote into the file cache at %s: %q", d, got)
		}
	}
	filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err == nil && (strings.Contains(path, "own.php") || strings.Contains(path, "plant")) {
			t.Errorf("a site's script reached the file cache: %s", path)
		}
		return nil
	})
}
