package wordpress

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRegisterCoreAndBuildDocroot(t *testing.T) {
	if _, err := os.Stat(filepath.Join(DebianCore, "wp-load.php")); err != nil {
		t.Skip("Debian wordpress not installed (make deps)")
	}
	dir := t.TempDir()
	c, err := RegisterCore(DebianCore, filepath.Join(dir, "cores"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version == "" {
		t.Fatal("no version")
	}
	// The registered tree has no wp-content of its own, a config shim, and
	// absolute symlinks that still resolve.
	if _, err := os.Stat(filepath.Join(c.Tree, "wp-content")); !os.IsNotExist(err) {
		t.Errorf("core tree has wp-content: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Tree, "wp-config.php")); err != nil || string(b) != string(coreConfigShim) {
		t.Errorf("core wp-config.php is not the shim: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Tree, "wp-includes", "js", "underscore.min.js")); err != nil {
		t.Errorf("a core symlink is broken: %v", err)
	}
	// Registering again reuses the registration.
	marker := filepath.Join(dir, "cores", c.Version, ".complete")
	st1, _ := os.Stat(marker)
	if _, err := RegisterCore(DebianCore, filepath.Join(dir, "cores")); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(marker); !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("second registration rebuilt the core")
	}

	// Two docroots share the same real core files (one OPcache entry each).
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := BuildDocroot(c, d); err != nil {
			t.Fatal(err)
		}
	}
	ra, _ := filepath.EvalSymlinks(filepath.Join(a, "wp-includes", "version.php"))
	rb, _ := filepath.EvalSymlinks(filepath.Join(b, "wp-includes", "version.php"))
	if ra == "" || ra != rb || filepath.Dir(filepath.Dir(ra)) != c.Tree {
		t.Errorf("core files resolve to %q and %q, want one file in %s", ra, rb, c.Tree)
	}
	if _, err := os.Lstat(filepath.Join(a, "wp-config.php")); !os.IsNotExist(err) {
		t.Error("docroot links the core's config shim")
	}
	for _, d := range []string{"uploads", "mu-plugins"} {
		if fi, err := os.Lstat(filepath.Join(a, "wp-content", d)); err != nil || !fi.IsDir() {
			t.Errorf("wp-content/%s is not a real directory: %v", d, err)
		}
	}
	if v, err := CoreVersionOf(a); err != nil || v != c.Version {
		t.Errorf("CoreVersionOf = %q, %v", v, err)
	}
	// An interrupted build is redone; a finished one is kept.
	os.MkdirAll(filepath.Join(dir, "c.building", "junk"), 0o755)
	if err := BuildDocroot(c, filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.building")); !os.IsNotExist(err) {
		t.Error("leftover .building directory")
	}
}
