package wordpress

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestMUPluginWriteAndLink(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "lib")
	path, err := WriteMUPlugins(lib)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("plugin: %v %v", st, err)
	}
	if _, err := WriteMUPlugins(lib); err != nil { // unchanged: kept
		t.Fatal(err)
	}
	docroot := filepath.Join(t.TempDir(), "htdocs")
	// A site that replaced the link with its own file gets the link back.
	os.MkdirAll(filepath.Join(docroot, "wp-content", "mu-plugins"), 0o755)
	link := filepath.Join(docroot, "wp-content", "mu-plugins", CachePluginName)
	os.WriteFile(link, []byte("<?php // evil"), 0o644)
	for range 2 {
		if err := LinkMUPlugin(docroot, path); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != path {
			t.Fatalf("link = %q, %v; want %q", got, err, path)
		}
	}
	if _, err := exec.LookPath("php"); err == nil {
		if out, err := exec.Command("php", "-l", path).CombinedOutput(); err != nil {
			t.Fatalf("php -l: %v: %s", err, out)
		}
	}
}
