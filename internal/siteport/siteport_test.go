package siteport_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/siteport"
)

// hostileDump has what dumps from other hosts carry: a CREATE DATABASE and
// USE, LOCK TABLES, a view's and a trigger's DEFINER, a custom prefix and
// an escaped quote in an option.
const hostileDump = "/*!40101 SET NAMES utf8mb4 */;\n" +
	"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n" +
	"USE `shop`;\n" +
	"DROP TABLE IF EXISTS `xy_options`;\n" +
	"CREATE TABLE `xy_options` (\n  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `option_name` varchar(191) NOT NULL DEFAULT '',\n  `option_value` longtext NOT NULL,\n  `autoload` varchar(20) NOT NULL DEFAULT 'yes',\n  PRIMARY KEY (`option_id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n" +
	"LOCK TABLES `xy_options` WRITE;\n" +
	"INSERT INTO `xy_options` VALUES (1,'siteurl','https://old.example','yes'),(2,'home','https://old.example','yes'),(3,'blogname','Bob\\'s ''DEFINER=`x`@`y`'' shop','yes'),(4,'db_version','57155','yes');\n" +
	"UNLOCK TABLES;\n" +
	"INSERT INTO `xy_options` VALUES\n(5,'template','DEFINER=`a`@`b`;','yes'),\n(6,'stylesheet','kid','yes');\n" +
	"CREATE TABLE `xy_posts` (`ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (`ID`));\n" +
	"/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1 AS `1` */;\n" +
	"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`admin`@`%`*/ /*!50003 TRIGGER t BEFORE INSERT ON xy_posts FOR EACH ROW SET @x = 1 */;;\nDELIMITER ;\n" +
	"-- end\n"

func TestDumpFilter(t *testing.T) {
	f := siteport.NewDumpFilter(strings.NewReader(hostileDump))
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, gone := range []string{"CREATE DATABASE", "USE `shop`", "DEFINER=`root`", "TRIGGER t", "DELIMITER"} {
		if strings.Contains(got, gone) {
			t.Errorf("filtered dump still has %q:\n%s", gone, got)
		}
	}
	// Data is never changed, even when it looks like a clause.
	for _, kept := range []string{"(5,'template','DEFINER=`a`@`b`;','yes'),", "LOCK TABLES `xy_options` WRITE;", "'Bob\\'s ''DEFINER=`x`@`y`'' shop'", "SQL SECURITY DEFINER", "-- end"} {
		if !strings.Contains(got, kept) {
			t.Errorf("filtered dump lost %q:\n%s", kept, got)
		}
	}
	sc := f.Scan
	if want := []string{"xy_options", "xy_posts"}; !slices.Equal(sc.Tables, want) {
		t.Errorf("tables %q, want %q", sc.Tables, want)
	}
	if sc.Charset != "utf8mb4" {
		t.Errorf("charset %q", sc.Charset)
	}
	p, err := sc.Prefix("")
	if err != nil || p != "xy_" {
		t.Fatalf("prefix %q, %v", p, err)
	}
	for name, want := range map[string]string{"siteurl": "https://old.example", "home": "https://old.example", "db_version": "57155", "template": "DEFINER=`a`@`b`;", "stylesheet": "kid", "blogname": "Bob's 'DEFINER=`x`@`y`' shop"} {
		if v := sc.Option(p, name); v != want {
			t.Errorf("option %s = %q, want %q", name, v, want)
		}
	}
	want := map[string]int{"CREATE DATABASE": 1, "USE": 1, "DEFINER clause": 1, "trigger or routine block": 1}
	for k, v := range want {
		if sc.Removed[k] != v {
			t.Errorf("removed %s: %d, want %d (%v)", k, sc.Removed[k], v, sc.Removed)
		}
	}
	if sc.Bytes != int64(len(hostileDump)) {
		t.Errorf("bytes %d, want %d", sc.Bytes, len(hostileDump))
	}
}

// A line far longer than the filter's buffer passes unchanged.
func TestDumpFilterLongLines(t *testing.T) {
	long := "INSERT INTO `wp_options` VALUES (1,'siteurl','http://a.example','yes'),(2,'blob','" + strings.Repeat("DEFINER=`x`@`y` ", 20000) + "','no'),(3,'home','http://b.example','yes');\n"
	in := "CREATE TABLE `wp_options` (x int);\nCREATE TABLE `wp_posts` (x int);\n" + long + "SET @a = 1;\n"
	f := siteport.NewDumpFilter(strings.NewReader(in))
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("a long INSERT changed (%d bytes in, %d out)", len(in), len(out))
	}
	if f.Scan.Option("wp_", "home") != "http://b.example" || f.Scan.Option("wp_", "siteurl") != "http://a.example" {
		t.Errorf("options %v", f.Scan.Options)
	}
}

func TestScanDumpRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, dump, want string
		is               error
	}{
		{"latin1", "/*!40101 SET NAMES latin1 */;\nCREATE TABLE `wp_options` (x int);\nCREATE TABLE `wp_posts` (x int);\n", "written in latin1", siteport.ErrCharset},
		{"no options", "SET NAMES utf8mb4;\nCREATE TABLE `wp_posts` (x int);\nCREATE TABLE `other` (x int);\n", "no <prefix>options", siteport.ErrNoOptions},
		{"two sites", "CREATE TABLE `a_options` (x int);\nCREATE TABLE `a_posts` (x int);\nCREATE TABLE `b_options` (x int);\nCREATE TABLE `b_posts` (x int);\n", "several WordPress sites", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := siteport.ScanDump(strings.NewReader(tc.dump))
			if err == nil {
				_, err = sc.Prefix("")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRenamePrefix(t *testing.T) {
	qs, err := siteport.RenamePrefix([]string{"xy_options", "xy_posts", "other"}, "xy_", "wp_")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 || qs[0] != "RENAME TABLE `xy_options` TO `wp_options`, `xy_posts` TO `wp_posts`" {
		t.Errorf("%q", qs)
	}
	if _, err := siteport.RenamePrefix([]string{"xy_options", "wp_options"}, "xy_", "wp_"); err == nil {
		t.Error("a rename onto an existing table was not refused")
	}
	if qs, _ := siteport.RenamePrefix([]string{"wp_options"}, "wp_", "wp_"); qs != nil {
		t.Errorf("same prefix: %q", qs)
	}
}

type entry struct {
	name, body, link string
	typ              byte
}

func tarGz(t *testing.T, gz bool, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
			if strings.HasSuffix(e.name, "/") {
				typ = tar.TypeDir
			}
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func zipOf(t *testing.T, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		if e.typ == tar.TypeSymlink {
			h.SetMode(os.ModeSymlink | 0o777)
			body = e.link
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	zw.Close()
	return buf.Bytes()
}

const version = "<?php\n$wp_version = '6.4.3';\n"

func TestExtractAndLocate(t *testing.T) {
	gzDump := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		want    siteport.Layout
		format  string
	}{
		{"docroot zip with a gzip dump", zipOf(t,
			entry{name: "public_html/wp-includes/version.php", body: version},
			entry{name: "public_html/wp-content/plugins/hello.php", body: "<?php"},
			entry{name: "public_html/wp-content/themes/kadence/style.css", body: "/* */"},
			entry{name: "public_html/wp-content/uploads/2024/a.txt", body: "a"},
			entry{name: "public_html/wp-content/uploads/link", typ: tar.TypeSymlink, link: "2024/a.txt"},
			entry{name: "backup/db.sql.gz", body: gzDump("SELECT 1;\n")},
		), siteport.Layout{WPContent: "public_html/wp-content", Docroot: "public_html", Version: "6.4.3", Dump: "backup/db.sql.gz", Gzip: true, Plugins: []string{"hello.php"}, Themes: []string{"kadence"}}, "zip"},
		{"wp-content only tar.gz", tarGz(t, true,
			entry{name: "./"},
			entry{name: "./plugins/akismet/akismet.php", body: "<?php"},
			entry{name: "./uploads/x.txt", body: "x"},
			entry{name: "./dump.sql", body: "SELECT 1;\n"},
		), siteport.Layout{WPContent: ".", Dump: "dump.sql", Plugins: []string{"akismet"}}, "tar.gz"},
		{"plain tar", tarGz(t, false,
			entry{name: "site/wp-content/uploads/x.txt", body: "x"},
			entry{name: "site/wp-content/backup.sql", body: "a dump in wp-content is not taken"},
			entry{name: "site.sql", body: "SELECT 1;\n"},
		), siteport.Layout{WPContent: "site/wp-content", Dump: "site.sql"}, "tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "archive")
			os.WriteFile(file, tc.archive, 0o600)
			dst := filepath.Join(dir, "x")
			os.Mkdir(dst, 0o700)
			var last int64
			ex, err := siteport.Extract(context.Background(), file, dst, siteport.Limits{}, func(done, total int64) { last = done })
			if err != nil {
				t.Fatal(err)
			}
			if ex.Format != tc.format || last != int64(len(tc.archive)) {
				t.Errorf("format %q, progress %d of %d", ex.Format, last, len(tc.archive))
			}
			l, err := siteport.Locate(dst)
			if err != nil {
				t.Fatal(err)
			}
			if l.WPContent != tc.want.WPContent || l.Docroot != tc.want.Docroot || l.Version != tc.want.Version || l.Dump != tc.want.Dump ||
				l.Gzip != tc.want.Gzip || !slices.Equal(l.Plugins, tc.want.Plugins) || !slices.Equal(l.Themes, tc.want.Themes) {
				t.Errorf("layout %+v\n want %+v", *l, tc.want)
			}
			if l.Dump != "" {
				rc, err := siteport.OpenDump(filepath.Join(dst, l.Dump))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if !strings.HasPrefix(string(b), "SELECT 1;") && !strings.HasPrefix(string(b), "a dump") {
					t.Errorf("dump reads %q", b)
				}
			}
		})
	}
}

func TestExtractRefusesHostile(t *testing.T) {
	good := tarGz(t, true, entry{name: "wp-content/uploads/a.txt", body: strings.Repeat("hello ", 5000)}, entry{name: "db.sql", body: "SELECT 1;"})
	for _, tc := range []struct {
		name    string
		archive []byte
		lim     siteport.Limits
		is      error
		want    string
	}{
		{"zip-slip tar", tarGz(t, true, entry{name: "wp-content/../../evil.php", body: "<?php"}), siteport.Limits{}, siteport.ErrHostile, "zip-slip"},
		{"zip-slip zip", zipOf(t, entry{name: "../evil.php", body: "<?php"}), siteport.Limits{}, siteport.ErrHostile, "zip-slip"},
		{"absolute path", tarGz(t, false, entry{name: "/etc/cron.d/evil", body: "* * * * * root sh"}), siteport.Limits{}, siteport.ErrHostile, "absolute path"},
		{"escaping symlink", tarGz(t, true, entry{name: "wp-content/uploads/", typ: tar.TypeDir}, entry{name: "wp-content/uploads/up", typ: tar.TypeSymlink, link: "../../../etc"}), siteport.Limits{}, siteport.ErrHostile, "points outside"},
		{"absolute symlink", zipOf(t, entry{name: "wp-content/x", typ: tar.TypeSymlink, link: "/etc/passwd"}), siteport.Limits{}, siteport.ErrHostile, "points outside"},
		{"hard link out", tarGz(t, true, entry{name: "wp-content/x", typ: tar.TypeLink, link: "../../etc/passwd"}), siteport.Limits{}, siteport.ErrHostile, "points outside"},
		{"device", tarGz(t, true, entry{name: "wp-content/null", typ: tar.TypeChar}), siteport.Limits{}, siteport.ErrHostile, "device"},
		{"write through a file", tarGz(t, true, entry{name: "wp-content", body: "x"}, entry{name: "wp-content/a", body: "y"}), siteport.Limits{}, siteport.ErrHostile, `"wp-content"`},
		{"truncated gzip", good[:len(good)-20], siteport.Limits{}, siteport.ErrBroken, "truncated"},
		{"truncated in an entry", good[:len(good)/2], siteport.Limits{}, siteport.ErrBroken, "truncated"},
		{"corrupt gzip", append(append([]byte{}, good[:len(good)-8]...), 1, 2, 3, 4, 5, 6, 7, 8), siteport.Limits{}, siteport.ErrBroken, "gzip"},
		{"not an archive", []byte("hello, this is text\n"), siteport.Limits{}, siteport.ErrBroken, "neither a tar"},
		{"beyond the byte limit", good, siteport.Limits{Bytes: 1000}, siteport.ErrHostile, "more than 1000 bytes"},
		{"beyond the file limit", good, siteport.Limits{Files: 1}, siteport.ErrHostile, "more than 1 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "archive")
			os.WriteFile(file, tc.archive, 0o600)
			dst := filepath.Join(dir, "x", "y")
			os.MkdirAll(dst, 0o700)
			_, err := siteport.Extract(context.Background(), file, dst, tc.lim, nil)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %v with %q", err, tc.is, tc.want)
			}
			// Nothing landed outside dst.
			for _, d := range []string{dir, filepath.Join(dir, "x")} {
				ents, _ := os.ReadDir(d)
				if len(ents) != map[string]int{dir: 2, filepath.Join(dir, "x"): 1}[d] {
					t.Errorf("%s holds %v", d, ents)
				}
			}
		})
	}
}

// TestExportStandardTools exports a tree and checks the archive with tar:
// it lists, unpacks, and every file matches the manifest's hash.
func TestExportStandardTools(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	dir := t.TempDir()
	content := filepath.Join(dir, "wp-content")
	core := filepath.Join(dir, "core", "themes", "twentyten")
	for p, body := range map[string]string{
		"uploads/2024/05/a.txt":          "uploaded",
		"plugins/hello/hello.php":        "<?php // hello",
		filepath.Join(core, "style.css"): "/* a bundled theme */",
		filepath.Join(dir, "secret"):     "not for export",
	} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(content, p)
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	os.MkdirAll(filepath.Join(content, "themes"), 0o755)
	os.Symlink(core, filepath.Join(content, "themes", "twentyten"))
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(content, "uploads", "leak"))
	var out bytes.Buffer
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	m, err := siteport.Export(context.Background(), &out, siteport.ExportSource{
		WPContent: content, FollowInto: []string{filepath.Join(dir, "core")},
		Dump: func(_ context.Context, w io.Writer) error {
			_, err := io.WriteString(w, "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `wp_options` (x int);\n/*!50017 DEFINER=`root`@`localhost`*/ SELECT 1;\n")
			return err
		},
		Domain: "a.example", URL: "https://a.example", WordPressVersion: "6.4.3", TablePrefix: "wp_", Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "site.tar.gz")
	os.WriteFile(file, out.Bytes(), 0o600)
	list, err := exec.Command("tar", "-tzf", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzf: %v: %s", err, list)
	}
	for _, want := range []string{"database.sql", "wp-content/uploads/2024/05/a.txt", "wp-content/themes/twentyten/style.css", "wp-content/plugins/hello/hello.php", "manifest.json"} {
		if !slices.Contains(strings.Split(string(list), "\n"), want) {
			t.Errorf("tar -tzf lacks %s:\n%s", want, list)
		}
	}
	if strings.Contains(string(list), "leak") {
		t.Errorf("a link out of the tree was exported:\n%s", list)
	}
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	if b, err := exec.Command("tar", "-xzf", file, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	mm, err := siteport.ReadManifest(x)
	if err != nil || mm == nil {
		t.Fatal(err)
	}
	if mm.Format != 1 || mm.Domain != "a.example" || mm.TablePrefix != "wp_" || !mm.CreatedAt.Equal(now) || mm.Files != 4 || mm.Files != m.Files || len(mm.Skipped) != 1 {
		t.Errorf("manifest %+v", mm)
	}
	for _, e := range mm.Entries {
		b, err := os.ReadFile(filepath.Join(x, e.Path))
		sum := sha256.Sum256(b)
		if err != nil || int64(len(b)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
			t.Errorf("entry %s: %v, %d bytes, sum %x, manifest %+v", e.Path, err, len(b), sum, e)
		}
	}
	sql, _ := os.ReadFile(filepath.Join(x, "database.sql"))
	if strings.Contains(string(sql), "DEFINER") {
		t.Errorf("database.sql keeps a DEFINER:\n%s", sql)
	}
}
