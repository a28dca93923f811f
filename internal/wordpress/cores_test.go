package wordpress_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/wordpress"
	"github.com/aipress/aipress/internal/wordpress/coretest"
)

// readLinks returns docroot's top-level links and those of
// wp-content/themes and wp-content/plugins (name → target).
func readLinks(t *testing.T, docroot string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []string{"", "wp-content/themes", "wp-content/plugins"} {
		ents, err := os.ReadDir(filepath.Join(docroot, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(filepath.Join(docroot, d, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Join(d, e.Name())] = target
		}
	}
	return out
}

// A docroot moves between two registered cores and back: its core links
// and bundled-extension links follow, the site's own files and links stay,
// and the real files are the registered cores' (symlinks, so OPcache keeps
// one copy per core).
func TestRelinkDocroot(t *testing.T) {
	coretest.Available(t)
	dir := t.TempDir()
	cores := filepath.Join(dir, "cores")
	old, err := wordpress.RegisterCore(wordpress.DebianCore, cores)
	if err != nil {
		t.Fatal(err)
	}
	newTree := coretest.Build(t, filepath.Join(dir, "src"), coretest.Options{Version: "6.1.10"})
	nw, err := wordpress.RegisterCore(newTree, cores)
	if err != nil {
		t.Fatal(err)
	}
	if nw.Version != "6.1.10" || nw.Tree == old.Tree {
		t.Fatalf("registered %+v beside %+v", nw, old)
	}
	if db, err := wordpress.ReadDBVersion(nw.Tree); err != nil || db != coretest.DebianDBVersion(t)+1 {
		t.Fatalf("new core's db version = %d, %v", db, err)
	}
	// The catalogue-like tree's wp-content is its content skeleton.
	if _, err := os.Stat(filepath.Join(nw.Content, "themes", "twentytwentythree", "style.css")); err != nil {
		t.Fatal(err)
	}
	if c, err := wordpress.OpenCore(cores, "6.1.10"); err != nil || c.Tree != nw.Tree || c.Content != nw.Content {
		t.Fatalf("OpenCore = %+v, %v", c, err)
	}
	if _, err := wordpress.OpenCore(cores, "6.1.11"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenCore of an unregistered version: %v", err)
	}
	if _, err := wordpress.OpenCore(cores, "../x"); err == nil {
		t.Fatal("OpenCore took a path for a version")
	}

	docroot := filepath.Join(dir, "htdocs")
	if err := wordpress.BuildDocroot(old, docroot); err != nil {
		t.Fatal(err)
	}
	// The site's own: wp-config.php, an upload, a plugin linked from the
	// artefact store; and a bundled plugin it removed.
	art := filepath.Join(dir, "artefacts", "plugin", "abc", "hello")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(docroot, "wp-config.php"), "<?php // site config")
	mustWrite(t, filepath.Join(docroot, "wp-content", "uploads", "a.txt"), "upload")
	if err := os.Symlink(art, filepath.Join(docroot, "wp-content", "plugins", "hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(docroot, "wp-content", "plugins", "index.php")); err != nil {
		t.Fatal(err)
	}
	// A link into the old core the new one has no entry for, and what a
	// crash during an earlier relink left.
	if err := os.Symlink(filepath.Join(old.Tree, "gone.php"), filepath.Join(docroot, "gone.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nowhere", filepath.Join(docroot, "wp-admin.aipress-relink")); err != nil {
		t.Fatal(err)
	}
	if v, err := wordpress.LinkedCoreVersion(cores, docroot); err != nil || v != old.Version {
		t.Fatalf("LinkedCoreVersion = %q, %v", v, err)
	}

	changed, err := wordpress.RelinkDocroot(nw, docroot)
	if err != nil || !changed {
		t.Fatalf("RelinkDocroot = %v, %v", changed, err)
	}
	links := readLinks(t, docroot)
	for name, target := range links {
		switch {
		case name == "wp-content/plugins/hello":
			if target != art {
				t.Errorf("the site's plugin link moved: %s → %s", name, target)
			}
		case strings.HasPrefix(name, "wp-content/"):
			if want := filepath.Join(nw.Content, strings.TrimPrefix(name, "wp-content/")); target != want {
				t.Errorf("%s → %s, want %s", name, target, want)
			}
		default:
			if want := filepath.Join(nw.Tree, name); target != want {
				t.Errorf("%s → %s, want %s", name, target, want)
			}
		}
	}
	for _, gone := range []string{"gone.php", "wp-admin.aipress-relink", "wp-content/plugins/index.php"} {
		if _, ok := links[gone]; ok {
			t.Errorf("%s is linked after the relink", gone)
		}
	}
	if _, ok := links["wp-includes"]; !ok {
		t.Error("no wp-includes link")
	}
	if b, err := os.ReadFile(filepath.Join(docroot, "wp-config.php")); err != nil || string(b) != "<?php // site config" {
		t.Errorf("wp-config.php changed: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(docroot, "wp-content", "uploads", "a.txt")); err != nil || string(b) != "upload" {
		t.Errorf("upload changed: %q, %v", b, err)
	}
	if v, err := wordpress.CoreVersionOf(docroot); err != nil || v != "6.1.10" {
		t.Errorf("the docroot runs %q (%v), want 6.1.10", v, err)
	}
	if v, err := wordpress.LinkedCoreVersion(cores, docroot); err != nil || v != "6.1.10" {
		t.Errorf("LinkedCoreVersion = %q, %v", v, err)
	}
	real, _ := filepath.EvalSymlinks(filepath.Join(docroot, "wp-includes", "version.php"))
	if filepath.Dir(filepath.Dir(real)) != nw.Tree {
		t.Errorf("wp-includes/version.php resolves to %s, not into %s", real, nw.Tree)
	}

	// Again: nothing to do.
	if changed, err := wordpress.RelinkDocroot(nw, docroot); err != nil || changed {
		t.Fatalf("second RelinkDocroot = %v, %v", changed, err)
	}
	// And back.
	if changed, err := wordpress.RelinkDocroot(old, docroot); err != nil || !changed {
		t.Fatalf("RelinkDocroot back = %v, %v", changed, err)
	}
	if v, err := wordpress.CoreVersionOf(docroot); err != nil || v != old.Version {
		t.Errorf("the docroot runs %q (%v), want %s", v, err, old.Version)
	}
	if target := readLinks(t, docroot)["wp-content/themes/twentytwentythree"]; target != filepath.Join(old.Content, "themes", "twentytwentythree") {
		t.Errorf("bundled theme links to %s after the way back", target)
	}

	// Something not a core link where a core entry belongs is left alone,
	// with an error.
	if err := os.Remove(filepath.Join(docroot, "wp-login.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "elsewhere.php"), filepath.Join(docroot, "wp-login.php")); err != nil {
		t.Fatal(err)
	}
	if _, err := wordpress.RelinkDocroot(nw, docroot); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Errorf("RelinkDocroot over a foreign link: %v", err)
	}
	if target, _ := os.Readlink(filepath.Join(docroot, "wp-login.php")); target != filepath.Join(dir, "elsewhere.php") {
		t.Errorf("the foreign link was replaced: %s", target)
	}
}

// A broken test core fails nothing but the upgrade: the injected fatal is
// in upgrade_all().
func TestCoretestBrokenCore(t *testing.T) {
	coretest.Available(t)
	tree := coretest.Build(t, t.TempDir(), coretest.Options{Version: "6.1.11", BreakUpgrade: true})
	if v, err := wordpress.ReadVersion(tree); err != nil || v != "6.1.11" {
		t.Fatalf("version %q, %v", v, err)
	}
	b, err := os.ReadFile(filepath.Join(tree, "wp-admin", "includes", "upgrade.php"))
	if err != nil || !strings.Contains(string(b), coretest.UpgradeFatal+"();") {
		t.Fatalf("no injected fatal: %v", err)
	}
	// Debian's own files are untouched (the test tree hard-links them).
	for _, f := range []string{"wp-admin/includes/upgrade.php", "wp-includes/version.php"} {
		b, err := os.ReadFile(filepath.Join(wordpress.DebianCore, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), coretest.UpgradeFatal) || strings.Contains(string(b), "6.1.11") {
			t.Errorf("Debian's %s was changed", f)
		}
	}
	// No links: a catalogue zip may carry none.
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("link in the test core: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
