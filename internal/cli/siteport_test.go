package cli

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		"public_html/wp-content/plugins/shop/shop.php":    "<?php",
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
	if _, _, err := runCmd(t, deps{}, "site", "import", "--archive", good, "--sql", truncated, "--domain", "x.localhost"); err == nil || !strings.Contains(err.Error(), "--dry-run only") {
		t.Errorf("--sql without --dry-run: %v", err)
	}
}
