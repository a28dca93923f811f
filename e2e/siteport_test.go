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
	"time"

	"github.com/aipress/aipress/internal/artefact/catalogtest"
)

// TestSiteExportImport: `aipress site export` runs an export job on the
// site's shard, downloads the archive through the API and checks it; tar
// lists it, and it holds the post, the uploaded image and a manifest whose
// hashes match. `aipress site import` makes a site of it under another
// domain and refuses a hostile archive without making one.
func TestSiteExportImport(t *testing.T) {
	p := newPlatform(t)
	cat := catalogtest.New(t)
	cat.AddFixtures()
	p.extraArgs = []string{"--catalogue-url", cat.URL(), "--allow-private-fetch"}
	p.start()
	const domain = "leaving.localhost"
	c := p.createSite(domain, "Leaving Site")
	// The site runs a plugin (active), and has a folder in its plugins
	// that the artefact store refuses (no "Plugin Name:" header).
	hello := catalogtest.HelloPlugin
	if out, err := p.cli("site", "update", domain, "--plugin", hello+"@1.0", "--skip-staging"); err != nil {
		t.Fatalf("install %s 1.0: %v\n%s", hello, err, out)
	}
	legacy := filepath.Join(p.docroot(domain), "wp-content", "plugins", "legacy-notes")
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, "notes.php"), []byte("<?php // no header\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
	// The plugin went to the shared artefact store (an upload of the
	// organisation, linked by the site's code job, active: its marker);
	// the refused folder stayed in the site's tree, with its reason.
	if !strings.Contains(out, `"reason": "\"legacy-notes/\": no PHP file in the plugin's folder has a \"Plugin Name:\" header`) {
		t.Errorf("site import did not say why legacy-notes stays in the tree:\n%.3000s", out)
	}
	storeLink := func(d string) string {
		t.Helper()
		link := filepath.Join(p.docroot(d), "wp-content", "plugins", hello)
		var l string
		for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
			if l, _ = os.Readlink(link); l != "" {
				break
			}
		}
		if !strings.Contains(l, "/artefacts/plugin/") {
			t.Fatalf("%s: %s links to %q, want the artefact store", d, hello, l)
		}
		p.client(d).waitStatus("/", 200, time.Minute)
		if _, body := p.client(d).get("/"); !strings.Contains(body, catalogtest.Marker(hello, "1.0")) {
			t.Errorf("%s: the imported %s is not active (no marker on the home page)", d, hello)
		}
		if fi, err := os.Lstat(filepath.Join(p.docroot(d), "wp-content", "plugins", "legacy-notes")); err != nil || !fi.IsDir() {
			t.Errorf("%s: legacy-notes is not a folder of the site's tree (%v)", d, err)
		}
		return l
	}
	first := storeLink(arrived)
	// A second site importing the same plugin shares the store's folder.
	const again = "again.localhost"
	if out, err := p.cli("site", "import", "--archive", file, "--domain", again, "-o", "json"); err != nil {
		t.Fatalf("site import (again): %v\n%s", err, out)
	}
	if second := storeLink(again); second != first {
		t.Errorf("two imports of one plugin: %s and %s, want one folder of the store", first, second)
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

// wxrFile is a small WordPress export: an author, a category, a post
// with a comment and a page.
const wxrFile = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Elsewhere</title><link>http://elsewhere.example</link><wp:wxr_version>1.2</wp:wxr_version>
<wp:base_site_url>http://elsewhere.example</wp:base_site_url><wp:base_blog_url>http://elsewhere.example</wp:base_blog_url>
<wp:author><wp:author_id>2</wp:author_id><wp:author_login>writer</wp:author_login><wp:author_email>writer@elsewhere.example</wp:author_email><wp:author_display_name>The Writer</wp:author_display_name></wp:author>
<wp:category><wp:term_id>3</wp:term_id><wp:category_nicename>travel</wp:category_nicename><wp:category_parent></wp:category_parent><wp:cat_name>Travel</wp:cat_name></wp:category>
<item><title>Brought over by WXR</title><dc:creator>writer</dc:creator><guid isPermaLink="false">http://elsewhere.example/?p=5</guid>
<content:encoded><![CDATA[<p>Written elsewhere, read here.</p>]]></content:encoded><excerpt:encoded><![CDATA[]]></excerpt:encoded>
<wp:post_id>5</wp:post_id><wp:post_date>2023-03-01 12:00:00</wp:post_date><wp:post_date_gmt>2023-03-01 12:00:00</wp:post_date_gmt>
<wp:post_name>brought-over</wp:post_name><wp:status>publish</wp:status><wp:post_parent>0</wp:post_parent><wp:menu_order>0</wp:menu_order><wp:post_type>post</wp:post_type>
<category domain="category" nicename="travel"><![CDATA[Travel]]></category>
<wp:comment><wp:comment_id>9</wp:comment_id><wp:comment_author>Reader</wp:comment_author><wp:comment_date>2023-03-02 12:00:00</wp:comment_date><wp:comment_date_gmt>2023-03-02 12:00:00</wp:comment_date_gmt><wp:comment_content>Came along too</wp:comment_content><wp:comment_approved>1</wp:comment_approved><wp:comment_parent>0</wp:comment_parent></wp:comment>
</item>
<item><title>Imported Page</title><dc:creator>writer</dc:creator><guid isPermaLink="false">http://elsewhere.example/?page_id=6</guid>
<content:encoded><![CDATA[A page.]]></content:encoded><excerpt:encoded><![CDATA[]]></excerpt:encoded>
<wp:post_id>6</wp:post_id><wp:post_date>2023-03-01 12:00:00</wp:post_date><wp:post_date_gmt>2023-03-01 12:00:00</wp:post_date_gmt>
<wp:post_name>imported-page</wp:post_name><wp:status>publish</wp:status><wp:post_parent>0</wp:post_parent><wp:menu_order>0</wp:menu_order><wp:post_type>page</wp:post_type>
</item>
</channel></rss>
`

// TestSiteWXR imports a WXR file into a site with the CLI (a dry run, a
// hostile file refused, the job), and exports the site's content as WXR.
func TestSiteWXR(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const domain = "content.localhost"
	p.createSite(domain, "Content Site")
	dir := t.TempDir()
	file := filepath.Join(dir, "elsewhere.xml")
	os.WriteFile(file, []byte(wxrFile), 0o600)

	out, err := p.cli("site", "import", "--wxr", file, "--domain", domain, "--dry-run")
	if err != nil || !strings.Contains(out, "1 posts, 1 pages, 1 comments, 1 terms, 1 authors") {
		t.Errorf("import --wxr --dry-run: %v\n%s", err, out)
	}
	bomb := filepath.Join(dir, "bomb.xml")
	os.WriteFile(bomb, []byte(`<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>`+wxrFile[len(`<?xml version="1.0" encoding="UTF-8"?>`):]), 0o600)
	if out, err := p.cli("site", "import", "--wxr", bomb, "--domain", domain); err == nil || !strings.Contains(out, "refused: hostile WXR file: it has a document type declaration") {
		t.Errorf("a WXR file with entities: %v\n%s", err, out)
	}

	out, err = p.cli("site", "import", "--wxr", file, "--domain", domain, "-o", "json")
	if err != nil {
		t.Fatalf("import --wxr: %v\n%s", err, out)
	}
	var res struct {
		Job    string `json:"job"`
		Report struct {
			Imported struct {
				Posts        int `json:"posts"`
				Comments     int `json:"comments"`
				UsersCreated int `json:"users_created"`
				Terms        int `json:"terms"`
			} `json:"imported"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if im := res.Report.Imported; res.Job == "" || im.Posts != 2 || im.Comments != 1 || im.UsersCreated != 1 || im.Terms != 1 {
		t.Errorf("import --wxr said %+v:\n%s", res, out)
	}
	vis := p.client(domain)
	if code, body := vis.get("/brought-over/"); code != 200 || !strings.Contains(body, "Written elsewhere, read here.") || !strings.Contains(body, "Came along too") {
		t.Errorf("the imported post: %d\n%.1500s", code, body)
	}
	// Again: nothing is added.
	if out, err := p.cli("site", "import", "--wxr", file, "--domain", domain); err != nil || !strings.Contains(out, "0 posts, 0 pages, 0 comments") || !strings.Contains(out, "2 skipped") {
		t.Errorf("a second import: %v\n%s", err, out)
	}

	export := filepath.Join(dir, "export.xml")
	out, err = p.cli("site", "export", domain, "--wxr", "--file", export, "-o", "json")
	if err != nil {
		t.Fatalf("export --wxr: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(export)
	for _, want := range []string{"<wp:wxr_version>1.2</wp:wxr_version>", "Brought over by WXR", "<wp:author_login><![CDATA[writer]]></wp:author_login>", "Came along too"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the WXR export lacks %s (%d bytes)", want, len(b))
		}
	}
	if !strings.Contains(out, `"format": "wxr"`) {
		t.Errorf("export --wxr said:\n%s", out)
	}
}
