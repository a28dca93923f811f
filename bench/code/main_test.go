package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact/catalogtest"
)

var update = flag.Bool("update", false, "rewrite testdata/table.golden")

func TestPercentile(t *testing.T) {
	in := []time.Duration{5, 1, 4, 2, 3}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 3}, {95, 5}, {1, 1}, {100, 5}} {
		if got := percentile(in, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if in[0] != 5 {
		t.Error("percentile sorted its input")
	}
}

// TestPlugin checks the generated plugin: deterministic, of a realistic
// size, one root folder, versions that differ, and valid PHP in the files
// a request loads (php -l, when PHP is installed).
func TestPlugin(t *testing.T) {
	z1 := catalogtest.Zip(Plugin, PluginFiles(Version1))
	if again := catalogtest.Zip(Plugin, PluginFiles(Version1)); !bytes.Equal(z1, again) {
		t.Fatal("the plugin's archive is not deterministic")
	}
	if z2 := catalogtest.Zip(Plugin, PluginFiles(Version2)); bytes.Equal(z1, z2) {
		t.Fatal("versions 1.0 and 2.0 have the same archive")
	}
	files := PluginFiles(Version1)
	var size, php int
	for name, body := range files {
		size += len(body)
		if strings.HasSuffix(name, ".php") {
			php++
		}
	}
	if php < 300 || size < 1<<20 || size > 4<<20 {
		t.Errorf("plugin: %d PHP files, %d bytes; want a few hundred PHP files, ~2 MB", php, size)
	}
	t.Logf("plugin: %d files (%d PHP), %d bytes, zip %d bytes", len(files), php, size, len(z1))
	if !strings.Contains(files[Plugin+".php"], "Plugin Name: AIPress Bench") || !strings.Contains(files[Plugin+".php"], catalogtest.Marker(Plugin, Version1)) {
		t.Error("main file lacks its header or marker")
	}
	if strings.Contains(files[Plugin+".php"], "does_not_exist") || !strings.Contains(PluginFiles(VersionBroken)[Plugin+".php"], "does_not_exist") {
		t.Error("only the broken version may call an undefined function")
	}
	php8, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php not installed")
	}
	dir := t.TempDir()
	lint := []string{Plugin + ".php", "includes/loader.php", "includes/class-module-000.php", "src/Http/class-module-319.php"}
	for _, name := range lint {
		body, ok := files[name]
		if !ok {
			t.Fatalf("no file %s", name)
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(php8, "-l", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// TestDisk unzips the plugin twice and measures the copies.
func TestDisk(t *testing.T) {
	dir := t.TempDir()
	zipPath := filepath.Join(dir, "p.zip")
	if err := os.WriteFile(zipPath, catalogtest.Zip(Plugin, PluginFiles(Version1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unzipCopies(zipPath, dir, 2); err != nil {
		t.Fatal(err)
	}
	a, err := DiskUsage(filepath.Join(dir, "site-1", Plugin))
	if err != nil {
		t.Fatal(err)
	}
	files := PluginFiles(Version1)
	if a.Files != int64(len(files)) || a.Inodes <= a.Files || a.Blocks < a.Apparent/2 || a.PHP == 0 {
		t.Errorf("one copy: %+v (want %d files)", a, len(files))
	}
	both, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if both.Files != 2*a.Files+1 { // and the zip
		t.Errorf("two copies and the zip: %d files, want %d", both.Files, 2*a.Files+1)
	}
	// A hard link is one inode.
	if err := os.Link(filepath.Join(dir, "site-1", Plugin, Plugin+".php"), filepath.Join(dir, "site-1", "link.php")); err != nil {
		t.Fatal(err)
	}
	again, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Inodes != both.Inodes {
		t.Errorf("a hard link was counted: %d inodes, want %d", again.Inodes, both.Inodes)
	}
	// The in-process unzip gives the same tree.
	if err := unzipTo(zipPath, filepath.Join(dir, "go")); err != nil {
		t.Fatal(err)
	}
	g, err := DiskUsage(filepath.Join(dir, "go", Plugin))
	if err != nil {
		t.Fatal(err)
	}
	if g.Files != a.Files || g.Apparent != a.Apparent {
		t.Errorf("in-process unzip: %+v, unzip(1): %+v", g, a)
	}
}

func goodResult() Result {
	r := Result{Sites: 3, SitesReadySecs: 42.25, Plugin: "aipress-bench 1.0", ZipBytes: 700 << 10,
		Copy:            Usage{Blocks: 2600 << 10, Apparent: 2100 << 10, Inodes: 350, Files: 335, PHP: 1700 << 10},
		InstallParallel: 8, InstallWallSecs: 12.5, InstallJobP50: 3.25, InstallJobP95: 5.5, Installed: 3,
		PagesWithPlugin: 3, SameInode: 3,
		Store:        Usage{Blocks: 2600 << 10, Apparent: 2100 << 10, Inodes: 350, Files: 335, PHP: 1700 << 10},
		Copies:       Usage{Blocks: 3 * 2600 << 10, Apparent: 3 * 2100 << 10, Inodes: 1050, Files: 1005, PHP: 3 * 1700 << 10},
		UnzipOneSecs: 0.05, UnzipAllSecs: 0.15, OPcacheShared: 1700 << 10, OPcachePerSite: 3 * 1700 << 10,
		Canary: 1, Wave: 10, Parallel: 4, FleetSecs: 80.5, FleetWaveSecs: []float64{30, 50.5}, FleetWaveSizes: []int{1, 2},
		FleetSiteP50: 30.25, FleetSiteP95: 31, FleetUpdated: 3, PagesWithV2: 3,
		BrokenSecs: 25, BrokenStopped: "wave 1: 1 of 1 updates failed", BrokenFailed: 1, BrokenSkipped: 2, PagesStillV2: 3}
	r.ran.fleet, r.ran.broken = true, true
	return r
}

// TestResult checks the report: the table against testdata/table.golden
// (-update rewrites it) and which results problem refuses.
func TestResult(t *testing.T) {
	ok := goodResult()
	var b strings.Builder
	ok.table().Print(&b)
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("table differs from %s (-update rewrites it):\n%s", golden, b.String())
	}
	if err := ok.problem(); err != nil {
		t.Errorf("problem() = %v for a good run", err)
	}
	for name, change := range map[string]func(r *Result){
		"install failed":         func(r *Result) { r.Installed = 2 },
		"page without plugin":    func(r *Result) { r.PagesWithPlugin = 2 },
		"a copy of its own":      func(r *Result) { r.SameInode = 2 },
		"fleet not run":          func(r *Result) { r.ran.fleet = false },
		"fleet missed a site":    func(r *Result) { r.FleetUpdated, r.FleetFailed = 2, 1 },
		"fleet stopped":          func(r *Result) { r.FleetStopped = "wave 2 failed" },
		"2.0 not served":         func(r *Result) { r.PagesWithV2 = 2 },
		"broken not run":         func(r *Result) { r.ran.broken = false },
		"broken not stopped":     func(r *Result) { r.BrokenStopped = "" },
		"broken applied":         func(r *Result) { r.BrokenUpdated, r.BrokenSkipped = 1, 1 },
		"broken past the canary": func(r *Result) { r.BrokenFailed, r.BrokenSkipped = 2, 1 },
		"broken hurt the sites":  func(r *Result) { r.PagesStillV2 = 2 },
		"copies miscounted":      func(r *Result) { r.Copies.Inodes++ },
		"store not measured":     func(r *Result) { r.Store, r.Copies = Usage{}, Usage{} },
		"waves lost a site":      func(r *Result) { r.FleetWaveSizes = r.FleetWaveSizes[:len(r.FleetWaveSizes)-1] },
		"no canary first":        func(r *Result) { r.FleetWaveSizes[0]++ },
	} {
		r := goodResult()
		change(&r)
		if err := r.problem(); err == nil {
			t.Errorf("%s: problem() = nil", name)
		}
	}
}

// TestCodeTiny runs the benchmark at a tiny size (2 sites, canary 1,
// waves of 1) on a real platform with bin/aipress (make test builds it):
// installs the generated plugin on both sites, checks they share one copy,
// updates them in two waves and stops the broken update at its canary.
func TestCodeTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real platform")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (the platform creates a Unix user per site)")
	}
	bin, err := filepath.Abs("../../bin/aipress")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s: run make build", bin)
	}
	for _, b := range []string{"/usr/sbin/mariadbd", "/usr/sbin/php-fpm8.2", "/usr/share/wordpress/wp-settings.php"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("%s missing (scripts/deps.sh)", b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	o := options{sites: 2, canary: 1, wave: 1, parallel: 4, installParallel: 2, bin: bin, timeout: 20 * time.Minute}
	res, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.table().Print(&b)
	t.Logf("\n%s", b.String())
	if err := res.problem(); err != nil {
		t.Error(err)
	}
	if len(res.FleetWaveSizes) != 2 || res.FleetWaveSizes[0] != 1 || res.FleetWaveSizes[1] != 1 {
		t.Errorf("fleet waves %v, want [1 1]", res.FleetWaveSizes)
	}
	if res.Store.Inodes == 0 || res.Copies.Inodes != 2*res.Store.Inodes || res.Copies.PHP != 2*res.Store.PHP {
		t.Errorf("store %+v against two copies %+v: want one copy's inodes and PHP each", res.Store, res.Copies)
	}
}
