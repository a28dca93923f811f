package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSiteExportImport: `aipress site export` runs an export job on the
// site's shard, downloads the archive through the API and checks it; tar
// lists it, and it holds the post, the uploaded image and a manifest whose
// hashes match. `aipress site import` makes a site of it under another
// domain and refuses a hostile archive without making one.
func TestSiteExportImport(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const domain = "leaving.localhost"
	c := p.createSite(domain, "Leaving Site")
	title := "Taken along"
	image := pngWith(randomBytes(t, 64<<10))
	_, imagePath := publish(t, p, domain, c, title, image)

	file := filepath.Join(t.TempDir(), "leaving.tar.gz")
	out, err := p.cli("site", "export", domain, "--file", file, "-o", "json")
	if err != nil {
		t.Fatalf("site export: %v\n%s", err, out)
	}
	var res struct {
		File   string `json:"file"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		Job    string `json:"job"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if res.File != file || res.Bytes != int64(len(b)) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("export said %+v; the file has %d bytes, sha256 %x", res, len(b), sum)
	}
	list, err := exec.Command("tar", "-tzf", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzf: %v: %s", err, list)
	}
	upload := "wp-content/" + strings.TrimPrefix(imagePath, "/wp-content/")
	for _, want := range []string{"database.sql", "manifest.json", upload} {
		if !bytes.Contains(list, []byte(want+"\n")) {
			t.Errorf("the archive lacks %s:\n%.1500s", want, list)
		}
	}
	x := t.TempDir()
	if b, err := exec.Command("tar", "-xzf", file, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	if got, _ := os.ReadFile(filepath.Join(x, upload)); !bytes.Equal(got, image) {
		t.Errorf("the image in the archive differs (%d bytes, want %d)", len(got), len(image))
	}
	sql, _ := os.ReadFile(filepath.Join(x, "database.sql"))
	if !bytes.Contains(sql, []byte(title)) || !bytes.Contains(sql, []byte("CREATE TABLE `wp_options`")) {
		t.Errorf("database.sql lacks the post or wp_options (%d bytes)", len(sql))
	}
	var m struct {
		Format  int    `json:"format"`
		Domain  string `json:"domain"`
		Entries []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"entries"`
	}
	mb, _ := os.ReadFile(filepath.Join(x, "manifest.json"))
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != 1 || m.Domain != domain || len(m.Entries) < 2 {
		t.Fatalf("manifest %v: %s", err, mb)
	}
	for _, e := range m.Entries {
		b, _ := os.ReadFile(filepath.Join(x, e.Path))
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != e.SHA256 {
			t.Errorf("%s: sha256 %x, manifest %s", e.Path, s, e.SHA256)
		}
	}
	if out, err := p.cli("site", "export", "nosuch.localhost", "--file", file); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("export of an unknown site: %v\n%s", err, out)
	}

	// Import the archive under a new domain: the post, its image and
	// the new URLs are there.
	const arrived = "arrived.localhost"
	if out, err := p.cli("site", "import", "--archive", file, "--domain", arrived, "--dry-run", "-o", "json"); err != nil || !strings.Contains(out, `"table_prefix": "wp_"`) {
		t.Fatalf("import --dry-run: %v\n%s", err, out)
	}
	out, err = p.cli("site", "import", "--archive", file, "--domain", arrived, "-o", "json")
	if err != nil {
		t.Fatalf("site import: %v\n%s", err, out)
	}
	if !strings.Contains(out, `"phase": "Ready"`) || !strings.Contains(out, `"old_url": "`+strings.TrimSuffix(c.URL, "/")+`"`) {
		t.Errorf("site import said:\n%.3000s", out)
	}
	vis := p.client(arrived)
	if code, body := vis.get(imagePath); code != 200 || body != string(image) {
		t.Errorf("the imported image: %d, %d bytes", code, len(body))
	}
	code, body := vis.get("/?s=" + strings.ReplaceAll(title, " ", "+"))
	if code != 200 || !strings.Contains(body, title) || strings.Contains(body, strings.TrimSuffix(c.URL, "/")) || !strings.Contains(body, arrived) {
		t.Errorf("the imported site's search page: %d\n%.1500s", code, body)
	}

	// A hostile archive is refused with the reason, and no site is made.
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	for name, body := range map[string]string{"wp-content/uploads/a.txt": "a", "db.sql": string(sql), "wp-content/../../evil.php": "<?php"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	hostile := filepath.Join(t.TempDir(), "hostile.tar")
	os.WriteFile(hostile, hb.Bytes(), 0o600)
	if out, err := p.cli("site", "import", "--archive", hostile, "--domain", "hostile.localhost"); err == nil || !strings.Contains(out, "zip-slip") {
		t.Errorf("a zip-slip archive: %v\n%s", err, out)
	}
	if out, err := p.cli("site", "get", "hostile.localhost"); err == nil {
		t.Errorf("a refused import made a site:\n%s", out)
	}
}
