package cli

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/siteport"
)

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, name := range []string{"public_html/wp-includes/version.php", "public_html/wp-content/plugins/shop/shop.php",
		"public_html/wp-content/themes/kadence/style.css", "public_html/wp-content/uploads/2024/a.jpg", "db.sql.gz", "../escape.php"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func gz(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

// TestSiteImportDryRun: the dry run reads a host's zip (docroot, gzip dump
// with another prefix) and reports; hostile archives are refused with the
// reason; --sql needs --dry-run.
func TestSiteImportDryRun(t *testing.T) {
	dir := t.TempDir()
	dump := "/*!40101 SET NAMES utf8mb4 */;\nCREATE DATABASE `old`;\nUSE `old`;\n" +
		"CREATE TABLE `shop1_options` (`option_id` int, `option_name` varchar(191), `option_value` longtext, `autoload` varchar(20));\n" +
		"CREATE TABLE `shop1_posts` (`ID` int);\nLOCK TABLES `shop1_options` WRITE;\n" +
		"INSERT INTO `shop1_options` VALUES\n(1,'siteurl','https://shop.example','yes'),\n(2,'home','https://shop.example','yes'),\n(3,'db_version','57155','yes');\nUNLOCK TABLES;\n"
	good := filepath.Join(dir, "shop.zip")
	files := map[string]string{
		"public_html/wp-includes/version.php":             "<?php\n$wp_version = '6.4.3';\n",
		"public_html/wp-content/plugins/shop/shop.php":    "<?php\n/*\nPlugin Name: Shop\nVersion: 1.4\n*/\n",
		"public_html/wp-content/themes/kadence/style.css": "/* */",
		"public_html/wp-content/uploads/2024/a.jpg":       "jpeg",
		"db.sql.gz": gz(dump),
	}
	writeZip(t, good, files)
	out, _, err := runCmd(t, deps{}, "site", "import", "--archive", good, "--domain", "shop.localhost", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "site-import-dry-run", strings.ReplaceAll(out, dir, "<dir>"))

	files["../escape.php"] = "<?php"
	hostile := filepath.Join(dir, "hostile.zip")
	writeZip(t, hostile, files)
	if _, _, err := runCmd(t, deps{}, "site", "import", "--archive", hostile, "--domain", "x.localhost", "--dry-run"); err == nil || !strings.Contains(err.Error(), "zip-slip") {
		t.Errorf("a zip-slip archive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(os.TempDir()), "escape.php")); err == nil {
		t.Error("escape.php was written")
	}
	truncated := filepath.Join(dir, "truncated.sql.gz")
	g := gz(dump)
	os.WriteFile(truncated, []byte(g[:len(g)-10]), 0o600)
	if _, _, err := runCmd(t, deps{}, "site", "import", "--archive", good, "--sql", truncated, "--domain", "x.localhost", "--dry-run"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a truncated dump: %v", err)
	}
}

// TestSiteImportSQL: --sql without --dry-run repacks the archive with the
// dump given apart, and the API gets one archive whose dump is that one
// (its old URL, not the archive's own dump's), with the archive's
// wp-content and WordPress version; a dump refused here sends nothing.
func TestSiteImportSQL(t *testing.T) {
	dir := t.TempDir()
	dumpFor := func(url string) string {
		return "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `wp_options` (`option_id` int, `option_name` varchar(191), `option_value` longtext, `autoload` varchar(20));\n" +
			"CREATE TABLE `wp_posts` (`ID` int);\nINSERT INTO `wp_options` VALUES (1,'siteurl','" + url + "','yes'),(2,'home','" + url + "','yes');\n"
	}
	archive := filepath.Join(dir, "site.zip")
	writeZip(t, archive, map[string]string{
		"public_html/wp-includes/version.php":          "<?php\n$wp_version = '6.4.3';\n",
		"public_html/wp-content/plugins/shop/shop.php": "<?php",
		"public_html/wp-content/uploads/2024/a.jpg":    "jpeg",
		"public_html/old-backup.sql":                   dumpFor("https://stale.example"),
	})
	sqlFile := filepath.Join(dir, "fresh.sql.gz")
	if err := os.WriteFile(sqlFile, []byte(gz(dumpFor("https://fresh.example"))), 0o600); err != nil {
		t.Fatal(err)
	}
	received := filepath.Join(dir, "received")
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/imports" {
			http.NotFound(w, r)
			return
		}
		posts++
		f, _ := os.Create(received)
		io.Copy(f, r.Body)
		f.Close()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"domain": %q, "site": {"metadata": {"name": %q}, "status": {"phase": "Pending"}}, "inspection": {"table_prefix": "wp_"}}`, r.URL.Query().Get("domain"), r.URL.Query().Get("domain"))
	}))
	defer srv.Close()
	d := deps{getenv: func(k string) string { return map[string]string{EnvURL: srv.URL, EnvToken: "t"}[k] }, now: func() time.Time { return cliNow }}
	if _, stderr, err := runCmd(t, d, "site", "import", "--archive", archive, "--sql", sqlFile, "--domain", "fresh.localhost", "--wait=false"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if posts != 1 {
		t.Fatalf("%d POSTs", posts)
	}
	scratch := filepath.Join(dir, "x")
	os.Mkdir(scratch, 0o700)
	in, err := siteport.Inspect(context.Background(), siteport.InspectRequest{Archive: received, Scratch: scratch})
	if err != nil {
		t.Fatal(err)
	}
	if in.OldURL != "https://fresh.example" || in.Dump != "database.sql.gz" || in.WordPressVersion != "6.4.3" || !slices.Contains(in.Plugins, "shop") {
		t.Errorf("the API got: old URL %s, dump %s, version %s, plugins %q", in.OldURL, in.Dump, in.WordPressVersion, in.Plugins)
	}
	if b, err := os.ReadFile(filepath.Join(scratch, "wp-content", "uploads", "2024", "a.jpg")); err != nil || string(b) != "jpeg" {
		t.Errorf("upload: %q %v", b, err)
	}
	// A dump refused here: nothing is sent.
	truncated := filepath.Join(dir, "truncated.sql.gz")
	g := gz(dumpFor("https://fresh.example"))
	os.WriteFile(truncated, []byte(g[:len(g)-10]), 0o600)
	if _, _, err := runCmd(t, d, "site", "import", "--archive", archive, "--sql", truncated, "--domain", "x.localhost", "--wait=false"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a truncated dump: %v", err)
	}
	if posts != 1 {
		t.Errorf("a refused dump was sent (%d POSTs)", posts)
	}
}

// TestSiteImportWXRDryRun: the dry run of a WXR import reads the file
// here (nothing is sent) and reports its counts; a file with a DTD is
// refused with the reason.
func TestSiteImportWXRDryRun(t *testing.T) {
	dir := t.TempDir()
	const doc = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Old Blog</title><wp:wxr_version>1.2</wp:wxr_version><wp:base_blog_url>https://old.example</wp:base_blog_url>
<wp:author><wp:author_login>ann</wp:author_login></wp:author>
<wp:category><wp:category_nicename>news</wp:category_nicename><wp:cat_name>News</wp:cat_name></wp:category>
<wp:tag><wp:tag_slug>go</wp:tag_slug><wp:tag_name>Go</wp:tag_name></wp:tag>
<item><title>One</title><wp:post_type>post</wp:post_type><wp:comment><wp:comment_id>1</wp:comment_id></wp:comment></item>
<item><title>Two</title><wp:post_type>page</wp:post_type></item>
<item><title>pic</title><wp:post_type>attachment</wp:post_type><wp:attachment_url>https://old.example/a.jpg</wp:attachment_url></item>
<item><title>Home</title><wp:post_type>nav_menu_item</wp:post_type></item>
<item><title>Product</title><wp:post_type>product</wp:post_type></item>
</channel></rss>
`
	file := filepath.Join(dir, "old.xml")
	os.WriteFile(file, []byte(doc), 0o600)
	out, _, err := runCmd(t, deps{}, "site", "import", "--wxr", file, "--domain", "blog.localhost", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "site-import-wxr-dry-run", strings.ReplaceAll(out, dir, "<dir>"))
	bad := filepath.Join(dir, "bad.xml")
	os.WriteFile(bad, []byte(`<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://evil.example/x.dtd">`+doc[len(`<?xml version="1.0" encoding="UTF-8"?>`):]), 0o600)
	if _, _, err := runCmd(t, deps{}, "site", "import", "--wxr", bad, "--domain", "blog.localhost", "--dry-run"); err == nil || !strings.Contains(err.Error(), "document type declaration") {
		t.Errorf("a WXR file with a DTD: %v", err)
	}
	if _, _, err := runCmd(t, deps{}, "site", "import", "--wxr", file, "--archive", file, "--domain", "blog.localhost"); err == nil || !strings.Contains(err.Error(), "do not apply") {
		t.Errorf("--wxr with --archive: %v", err)
	}
}
