package catalogtest_test

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/artefact/catalogtest"
)

// TestFixturesAreValidPHP lints every PHP file of the fixtures with the
// real PHP CLI.
func TestFixturesAreValidPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("no php:", err)
	}
	dir := t.TempDir()
	sets := map[string]map[string]string{}
	for _, v := range []string{"1.0", "2.0"} {
		sets["hello-"+v] = catalogtest.PluginFiles(catalogtest.HelloPlugin, v)
		sets["broken-"+v] = catalogtest.PluginFiles(catalogtest.BrokenPlugin, v)
		sets["theme-"+v] = catalogtest.ThemeFiles(catalogtest.TestTheme, v)
	}
	sets["fatal"] = catalogtest.PluginFiles(catalogtest.FatalPlugin, "1.0")
	n := 0
	for set, files := range sets {
		for name, body := range files {
			if !strings.HasSuffix(name, ".php") {
				continue
			}
			p := filepath.Join(dir, set+"-"+name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(php, "-l", p).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", set, name, err, out)
			}
			n++
		}
	}
	if n != 9 {
		t.Errorf("linted %d files, want 9", n)
	}
	if !strings.Contains(sets["hello-2.0"]["aipress-hello.php"], catalogtest.Marker(catalogtest.HelloPlugin, "2.0")) {
		t.Error("hello 2.0 lacks its marker")
	}
	if strings.Contains(sets["broken-2.0"]["aipress-broken.php"], "wp_footer") || !strings.Contains(sets["broken-1.0"]["aipress-broken.php"], "wp_footer") {
		t.Error("broken 1.0 must print its marker and 2.0 must not")
	}
}

// TestZipIsDeterministic: the same files give the same archive (and so the
// same SHA-256), laid out as wordpress.org's.
func TestZipIsDeterministic(t *testing.T) {
	files := map[string]string{"b.php": "b", "inc/a.php": "a"}
	z1, z2 := catalogtest.Zip("p", files), catalogtest.Zip("p", files)
	if !bytes.Equal(z1, z2) {
		t.Fatal("two zips of the same files differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(z1), int64(len(z1)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "p/ p/b.php p/inc/ p/inc/a.php"; got != want {
		t.Errorf("entries %q, want %q", got, want)
	}
	if catalogtest.CompareVersions("6.10", "6.9") != 1 || catalogtest.CompareVersions("1.0", "1.0.0") != 0 || catalogtest.CompareVersions("2.0-beta", "2.0") == 0 {
		t.Error("CompareVersions")
	}
}
