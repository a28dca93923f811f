package searchreplace_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/searchreplace"
	"github.com/aipress/aipress/internal/wordpress"
)

// site is an installed WordPress on its own MariaDB server.
type site struct {
	t       *testing.T
	docroot string
	db      *sql.DB
	uid     int
}

func newSite(t *testing.T, ctx context.Context) *site {
	t.Helper()
	if testing.Short() {
		t.Skip("needs MariaDB and WordPress")
	}
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("mariadb-server not installed (make deps)")
	}
	if _, err := os.Stat(filepath.Join(wordpress.DebianCore, "wp-load.php")); err != nil {
		t.Skip("Debian wordpress not installed (make deps)")
	}
	if _, err := os.Stat(wordpress.PHPCLI); err != nil {
		t.Skip("php8.2-cli not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	srv := &mariadb.Server{Dir: dir + "/db", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := srv.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	select {
	case <-srv.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("mariadb not ready")
	}
	const name, pw = "wp_clone", "clonepw"
	if err := srv.EnsureDatabase(ctx, name, name, pw, 10); err != nil {
		t.Fatal(err)
	}
	db, err := srv.OpenAs(name, pw, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	core, err := wordpress.RegisterCore(wordpress.DebianCore, filepath.Join(dir, "cores"))
	if err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(dir, "site")
	if err := wordpress.BuildDocroot(core, docroot); err != nil {
		t.Fatal(err)
	}
	cfg := wordpress.Config{
		Domain: "old.localhost", URL: "http://old.localhost", Docroot: docroot, CoreDir: core.Tree,
		DBName: name, DBUser: name, DBPassword: pw, DBHost: "localhost:" + srv.Socket(), Salts: wordpress.NewSalts(),
	}
	if err := os.WriteFile(filepath.Join(docroot, "wp-config.php"), cfg.Render(), 0o644); err != nil {
		t.Fatal(err)
	}
	install, _, err := wordpress.WriteScripts(filepath.Join(dir, "lib"))
	if err != nil {
		t.Fatal(err)
	}
	uid := -1
	if os.Geteuid() == 0 {
		uid = 65534 // nobody: WordPress never runs as root
	}
	run := wordpress.Runner{Docroot: docroot, Host: "old.localhost", UID: uid, GID: uid}
	if err := run.Install(ctx, install, wordpress.InstallOptions{
		Title: "Old", AdminUser: "admin", AdminEmail: "admin@old.localhost",
		AdminPasswordHash: "$2y$10$abcdefghijklmnopqrstuu5Q4bGd0SxQ6qSx0XyI5kJvJgX7s8C4a",
	}); err != nil {
		t.Fatal(err)
	}
	return &site{t: t, docroot: docroot, db: db, uid: uid}
}

// php runs code after loading WordPress, as the site's user, and returns
// its output.
func (s *site) php(ctx context.Context, code string) string {
	s.t.Helper()
	f := filepath.Join(s.docroot, "..", fmt.Sprintf("run-%d.php", time.Now().UnixNano()))
	script := `<?php
$_SERVER['HTTP_HOST'] = 'old.localhost';
$_SERVER['DOCUMENT_ROOT'] = getenv('AIP_DOCROOT');
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_NAME'] = 'old.localhost';
error_reporting(E_ALL & ~E_DEPRECATED);
require getenv('AIP_DOCROOT') . '/wp-load.php';
` + code
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, wordpress.PHPCLI, "-d", "display_errors=stderr", f)
	cmd.Dir = s.docroot
	cmd.Env = []string{"PATH=/usr/bin:/bin", "AIP_DOCROOT=" + s.docroot}
	if s.uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid)}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("php: %v\n%s\n%s", err, out, stderr.String())
	}
	return string(out)
}

func (s *site) value(ctx context.Context, q string, args ...any) string {
	s.t.Helper()
	var v string
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return v
}

// seed stores, through WordPress's own API, the kinds of values a site
// keeps its URL in; it returns the post ID.
const seed = `
update_option('widget_text', [
	2 => ['title' => 'Links', 'text' => '<a href="http://old.localhost/about/">About</a> and <a href="http://old.localhost.example/x">another site</a>', 'filter' => false, 'visual' => false],
	'_multiwidget' => 1,
]);
set_theme_mod('header_image', 'http://old.localhost/wp-content/uploads/h.jpg');
set_theme_mod('header_image_data', (object) [
	'url' => 'http://old.localhost/wp-content/uploads/h.jpg',
	'sizes' => ['thumb' => 'https://old.localhost/wp-content/uploads/h-150.jpg', 'w' => 150, 'ratio' => 1.5],
	// A plugin's own serialised string, serialised again by WordPress.
	'extra' => serialize(['u' => 'http://old.localhost/n', 'other' => 'http://old.localhost.example/n']),
]);
// update_option serialises an already serialised string once more.
update_option('aip_double', serialize(['u' => 'http://old.localhost/d']));
update_option('aip_other', 'http://old.localhost.example/');
$id = wp_insert_post([
	'post_title' => 'Hello', 'post_status' => 'publish',
	'post_content' => '<!-- wp:image {"url":"http://old.localhost/i.png"} --><a href="http://old.localhost/p/">p</a> <a href="//old.localhost/r">r</a> <a href="http://old.localhost.example/">other</a><!-- /wp:image -->',
]);
update_post_meta($id, '_aip_json', wp_slash(json_encode(['url' => 'http://old.localhost/j', 'other' => 'http://old.localhost.example/j'])));
update_post_meta($id, '_aip_share', 'https://share.example/?u=' . rawurlencode('http://old.localhost/p/'));
// Custom CSS only looks serialised ("a:hover{…}"): alone and in an array.
$css = "a:hover{color:#c00}\n.hero{background:url(http://old.localhost/bg.jpg)}";
if (is_wp_error(wp_update_custom_css_post($css))) { exit(1); }
update_option('aip_css', ['css' => $css]);
echo json_encode(['post' => $id]);
`

// verify reads the values back through WordPress: every serialised value
// still unserialises and points at the new host, and the other host is
// untouched.
const verify = `
global $wpdb;
$bad = [];
foreach ($wpdb->get_results("SELECT option_name, option_value FROM $wpdb->options") as $o) {
	if (is_serialized($o->option_value) && @unserialize(trim($o->option_value)) === false && trim($o->option_value) !== 'b:0;') {
		$bad[] = $o->option_name;
	}
}
wp_cache_flush();
$w = get_option('widget_text');
$mods = get_theme_mods();
$hd = $mods['header_image_data'];
$extra = unserialize($hd->extra);
$id = (int) $argv[1];
$post = get_post($id);
echo json_encode([
	'bad' => $bad,
	'widget' => $w[2]['text'],
	'header_image' => $mods['header_image'],
	'hd_url' => $hd->url,
	'hd_thumb' => $hd->sizes['thumb'],
	'hd_ratio' => $hd->sizes['ratio'],
	'extra' => $extra,
	'double' => unserialize(get_option('aip_double')),
	'other' => get_option('aip_other'),
	'json' => json_decode(get_post_meta($id, '_aip_json', true), true),
	'share' => get_post_meta($id, '_aip_share', true),
	'content' => $post->post_content,
	'guid' => $post->guid,
	'css' => wp_get_custom_css(),
	'css_option' => get_option('aip_css')['css'],
]);
`

func TestRewriteDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := newSite(t, ctx)

	var seeded struct{ Post int }
	if err := json.Unmarshal([]byte(lastLine(s.php(ctx, seed))), &seeded); err != nil || seeded.Post == 0 {
		t.Fatalf("seed: %v", err)
	}
	guid := s.value(ctx, "SELECT guid FROM wp_posts WHERE ID = ?", seeded.Post)
	if !strings.HasPrefix(guid, "http://old.localhost/") {
		t.Fatalf("guid %q", guid)
	}
	// A plugin table with a composite key (character first) paged over
	// several batches, and one without a primary key.
	for _, q := range []string{
		"CREATE TABLE wp_aip_kv (k VARCHAR(20), n INT, v LONGTEXT, w VARCHAR(200), b BLOB, PRIMARY KEY (k, n)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
		"CREATE TABLE wp_aip_nopk (v TEXT)",
		"INSERT INTO wp_aip_nopk VALUES ('http://old.localhost/nopk')",
		"CREATE TABLE other_table (id INT PRIMARY KEY, v TEXT)",
		"INSERT INTO other_table VALUES (1, 'http://old.localhost/other-prefix')",
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const kvRows = 1000
	var kvBytes int64 // of the text columns v and w: what the rewrite reads
	for i := 0; i < kvRows; i++ {
		k := []string{"a", "B", "c", "é"}[i%4] // mixed case and non-ASCII keys
		var v, w any = fmt.Sprintf(`a:1:{s:1:"u";s:%d:"http://old.localhost/%05d";}`, len(fmt.Sprintf("http://old.localhost/%05d", i)), i), nil
		if i%3 == 0 {
			v, w = "plain", "http://old.localhost"
		}
		for _, x := range []any{v, w} {
			if x, ok := x.(string); ok {
				kvBytes += int64(len(x))
			}
		}
		if _, err := s.db.ExecContext(ctx, "INSERT INTO wp_aip_kv VALUES (?, ?, ?, ?, ?)", k, i, v, w, "http://old.localhost/blob"); err != nil {
			t.Fatal(err)
		}
	}
	// The rows the rewrite should change: every kv row, the options, the
	// post and its meta.
	rep, err := searchreplace.RewriteDatabase(ctx, s.db, "wp_", "http://old.localhost", "http://new.localhost", searchreplace.Options{BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]searchreplace.TableReport{}
	for _, tr := range rep.Tables {
		tables[tr.Name] = tr
		t.Logf("%-22s scanned %4d rows, changed %4d rows / %4d cells %s", tr.Name, tr.RowsScanned, tr.RowsChanged, tr.CellsChanged, tr.Skipped)
	}
	t.Logf("total: scanned %d rows, changed %d rows / %d cells; warnings %q", rep.RowsScanned, rep.RowsChanged, rep.CellsChanged, rep.Warnings)
	if _, ok := tables["other_table"]; ok {
		t.Error("a table without the prefix was processed")
	}
	if tr := tables["wp_aip_nopk"]; tr.Skipped == "" || len(rep.Warnings) == 0 {
		t.Errorf("table without primary key: %+v, warnings %q", tr, rep.Warnings)
	}
	if tr := tables["wp_aip_kv"]; tr.RowsScanned != kvRows || tr.RowsChanged != kvRows || tr.CellsChanged != kvRows || tr.BytesScanned != kvBytes {
		t.Errorf("wp_aip_kv: %+v", tr)
	}
	if tr := tables["wp_posts"]; slicesContains(tr.Columns, "guid") || tr.CellsChanged == 0 {
		t.Errorf("wp_posts: %+v", tr)
	}
	if rep.CellsMalformed != 0 {
		t.Errorf("%d malformed cells", rep.CellsMalformed)
	}

	for _, opt := range []string{"siteurl", "home"} {
		if v := s.value(ctx, "SELECT option_value FROM wp_options WHERE option_name = ?", opt); v != "http://new.localhost" {
			t.Errorf("%s = %q", opt, v)
		}
	}
	if v := s.value(ctx, "SELECT guid FROM wp_posts WHERE ID = ?", seeded.Post); v != guid {
		t.Errorf("guid changed: %q → %q", guid, v)
	}
	if v := s.value(ctx, "SELECT v FROM wp_aip_nopk"); v != "http://old.localhost/nopk" {
		t.Errorf("table without primary key changed: %q", v)
	}
	if v := s.value(ctx, "SELECT v FROM other_table"); v != "http://old.localhost/other-prefix" {
		t.Errorf("other prefix changed: %q", v)
	}
	if v := s.value(ctx, "SELECT v FROM wp_aip_kv WHERE k = 'é' AND n = 995"); v != `a:1:{s:1:"u";s:26:"http://new.localhost/00995";}` {
		t.Errorf("kv value: %q", v)
	}
	if v := s.value(ctx, "SELECT COUNT(*) FROM wp_aip_kv WHERE v LIKE '%old.localhost%' OR w LIKE '%old.localhost%'"); v != "0" {
		t.Errorf("%s kv values still hold the old host", v)
	}
	if v := s.value(ctx, "SELECT COUNT(*) FROM wp_aip_kv WHERE b = 'http://old.localhost/blob'"); v != fmt.Sprint(kvRows) {
		t.Errorf("blob column changed (%s rows untouched)", v)
	}

	var got struct {
		Bad         []string          `json:"bad"`
		Widget      string            `json:"widget"`
		HeaderImage string            `json:"header_image"`
		HdURL       string            `json:"hd_url"`
		HdThumb     string            `json:"hd_thumb"`
		HdRatio     float64           `json:"hd_ratio"`
		Extra       map[string]string `json:"extra"`
		Double      map[string]string `json:"double"`
		Other       string            `json:"other"`
		JSON        map[string]string `json:"json"`
		Share       string            `json:"share"`
		Content     string            `json:"content"`
		GUID        string            `json:"guid"`
		CSS         string            `json:"css"`
		CSSOption   string            `json:"css_option"`
	}
	out := s.php(ctx, strings.Replace(verify, "(int) $argv[1]", fmt.Sprint(seeded.Post), 1))
	if err := json.Unmarshal([]byte(lastLine(out)), &got); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	check := func(name, v, want string) {
		t.Helper()
		if v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if len(got.Bad) > 0 {
		t.Errorf("options that no longer unserialise: %q", got.Bad)
	}
	check("widget", got.Widget, `<a href="http://new.localhost/about/">About</a> and <a href="http://old.localhost.example/x">another site</a>`)
	check("header_image", got.HeaderImage, "http://new.localhost/wp-content/uploads/h.jpg")
	check("header_image_data url", got.HdURL, "http://new.localhost/wp-content/uploads/h.jpg")
	check("header_image_data thumb", got.HdThumb, "https://new.localhost/wp-content/uploads/h-150.jpg")
	if got.HdRatio != 1.5 {
		t.Errorf("ratio %v", got.HdRatio)
	}
	check("nested serialised", got.Extra["u"], "http://new.localhost/n")
	check("nested serialised, other host", got.Extra["other"], "http://old.localhost.example/n")
	check("double serialised", got.Double["u"], "http://new.localhost/d")
	check("other host option", got.Other, "http://old.localhost.example/")
	check("json meta", got.JSON["url"], "http://new.localhost/j")
	check("json meta, other host", got.JSON["other"], "http://old.localhost.example/j")
	check("encoded link", got.Share, "https://share.example/?u="+"http%3A%2F%2Fnew.localhost%2Fp%2F")
	check("content", got.Content, `<!-- wp:image {"url":"http://new.localhost/i.png"} --><a href="http://new.localhost/p/">p</a> <a href="//new.localhost/r">r</a> <a href="http://old.localhost.example/">other</a><!-- /wp:image -->`)
	check("guid", got.GUID, guid)
	const css = "a:hover{color:#c00}\n.hero{background:url(http://new.localhost/bg.jpg)}"
	check("custom css", got.CSS, css)
	check("custom css in an array", got.CSSOption, css)

	// A second pass finds nothing to do.
	rep2, err := searchreplace.RewriteDatabase(ctx, s.db, "wp_", "http://old.localhost", "http://new.localhost", searchreplace.Options{BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.CellsChanged != 0 || rep2.RowsChanged != 0 {
		t.Errorf("second pass changed %d cells", rep2.CellsChanged)
	}
	// A dry run back reports without writing.
	rep3, err := searchreplace.RewriteDatabase(ctx, s.db, "wp_", "http://new.localhost", "http://old.localhost", searchreplace.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep3.CellsChanged == 0 || s.value(ctx, "SELECT option_value FROM wp_options WHERE option_name = 'home'") != "http://new.localhost" {
		t.Errorf("dry run: %d cells, wrote anyway?", rep3.CellsChanged)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
