package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
)

func TestArtefactCommands(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "hello.zip")
	zip := catalogtest.Zip(catalogtest.HelloPlugin, catalogtest.PluginFiles(catalogtest.HelloPlugin, "2.0"))
	if err := os.WriteFile(good, zip, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "slip.zip")
	if err := os.WriteFile(bad, catalogtest.HostileZip(catalogtest.SlipPlugin), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := catalogtest.SHA256(zip)

	out, _, err := h.run(t, "artefact", "upload", good)
	if err != nil {
		t.Fatal(err)
	}
	want := "uploaded plugin aipress-hello 2.0 for default (" + itoa(len(zip)) + " bytes, 2 files)\nsha256: " + sha +
		"\nin a spec: source: {type: upload, sha256: " + sha + "}\n"
	if out != want {
		t.Errorf("upload printed\n%s\nwant\n%s", out, want)
	}
	out, _, err = h.run(t, "artefact", "upload", good, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var a apiclient.ArtefactUpload
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.SHA256 != sha || a.Name != catalogtest.HelloPlugin {
		t.Errorf("upload -o json: %v %s", err, out)
	}
	_, _, err = h.run(t, "artefact", "upload", bad)
	if err == nil || !strings.Contains(err.Error(), "aipress-slip/../../aipress-slip.php") || !strings.Contains(err.Error(), "leaves the archive") {
		t.Errorf("hostile upload: %v", err)
	}
	if _, _, err := h.run(t, "artefact", "upload", filepath.Join(dir, "missing.zip")); err == nil {
		t.Error("a missing file was uploaded")
	}
	out, _, err = h.run(t, "artefact", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "SHA256") || !strings.Contains(lines[1], sha) || !strings.Contains(lines[1], "aipress-hello") {
		t.Errorf("list:\n%s", out)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
