package main

// The generated site: a WordPress database dump of about DumpBytes (in
// mariadb-dump's form: extended INSERTs, backslash escapes) whose content
// is full of the old host's URL in the forms a real site has them —
// links and images in post content, block attributes (JSON in the block
// comments), serialised options and postmeta (nested serialised strings),
// JSON postmeta with escaped slashes (page builders), comments — and
// uploads of various sizes (thumbnails to videos: random bytes, which
// compress no better than JPEGs). Everything is deterministic for a seed.

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// OldURL is the generated site's address on its old host.
const OldURL = "https://www.old-host.example"

// oldJSON is OldURL as json_encode writes it (escaped slashes).
var oldJSON = strings.ReplaceAll(OldURL, "/", `\/`)

// Plan is what to generate.
type Plan struct {
	DumpBytes   int64 // the dump's size, about
	UploadBytes int64 // the uploads' total size
	Seed        uint64
}

// Generated is what Generate wrote.
type Generated struct {
	ArchiveBytes int64 `json:"archive_bytes"`
	DumpBytes    int64 `json:"dump_bytes"`
	UploadBytes  int64 `json:"upload_bytes"`
	Uploads      int   `json:"uploads"`
	Posts        int   `json:"posts"`
	Rows         int64 `json:"rows"` // rows in the dump's INSERTs
}

var words = strings.Fields(`the a of and to in is was for on that with as by at from his her an which or
were are this be had have it not but been one their they all there when would who will more no if out so
said what up its about into than them can only other new some could time these two may then do first any
garden river mountain coffee morning evening letter window kitchen story village market harbour station
wordpress plugin theme gallery recipe travel review summer winter autumn spring photo journey notes`)

func sentence(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.String()
}

// sqlString quotes s as mariadb-dump does.
func sqlString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// ser is PHP's serialize() of a string, an int, a bool, a list ([]any) or
// an ordered map (kv: keys string or int).
func ser(v any) string {
	switch x := v.(type) {
	case string:
		return "s:" + strconv.Itoa(len(x)) + `:"` + x + `";`
	case int:
		return "i:" + strconv.Itoa(x) + ";"
	case bool:
		if x {
			return "b:1;"
		}
		return "b:0;"
	case []any:
		var b strings.Builder
		b.WriteString("a:" + strconv.Itoa(len(x)) + ":{")
		for i, e := range x {
			b.WriteString(ser(i) + ser(e))
		}
		return b.String() + "}"
	case kv:
		var b strings.Builder
		b.WriteString("a:" + strconv.Itoa(len(x)) + ":{")
		for _, e := range x {
			b.WriteString(ser(e.k) + ser(e.v))
		}
		return b.String() + "}"
	}
	panic(fmt.Sprintf("ser: %T", v))
}

type kv []struct{ k, v any }

func kvOf(pairs ...any) kv {
	var out kv
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, struct{ k, v any }{pairs[i], pairs[i+1]})
	}
	return out
}

// schema is WordPress 6.1's (wp-admin/includes/schema.php) as mariadb-dump
// writes it, with the wp_ prefix.
const schema = `CREATE TABLE wp_commentmeta (meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, comment_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext DEFAULT NULL, PRIMARY KEY (meta_id), KEY comment_id (comment_id), KEY meta_key (meta_key(191))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_comments (comment_ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, comment_post_ID bigint(20) unsigned NOT NULL DEFAULT 0, comment_author tinytext NOT NULL, comment_author_email varchar(100) NOT NULL DEFAULT '', comment_author_url varchar(200) NOT NULL DEFAULT '', comment_author_IP varchar(100) NOT NULL DEFAULT '', comment_date datetime NOT NULL DEFAULT '0000-00-00 00:00:00', comment_date_gmt datetime NOT NULL DEFAULT '0000-00-00 00:00:00', comment_content text NOT NULL, comment_karma int(11) NOT NULL DEFAULT 0, comment_approved varchar(20) NOT NULL DEFAULT '1', comment_agent varchar(255) NOT NULL DEFAULT '', comment_type varchar(20) NOT NULL DEFAULT 'comment', comment_parent bigint(20) unsigned NOT NULL DEFAULT 0, user_id bigint(20) unsigned NOT NULL DEFAULT 0, PRIMARY KEY (comment_ID), KEY comment_post_ID (comment_post_ID), KEY comment_approved_date_gmt (comment_approved,comment_date_gmt), KEY comment_date_gmt (comment_date_gmt), KEY comment_parent (comment_parent), KEY comment_author_email (comment_author_email(10))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_links (link_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, link_url varchar(255) NOT NULL DEFAULT '', link_name varchar(255) NOT NULL DEFAULT '', link_image varchar(255) NOT NULL DEFAULT '', link_target varchar(25) NOT NULL DEFAULT '', link_description varchar(255) NOT NULL DEFAULT '', link_visible varchar(20) NOT NULL DEFAULT 'Y', link_owner bigint(20) unsigned NOT NULL DEFAULT 1, link_rating int(11) NOT NULL DEFAULT 0, link_updated datetime NOT NULL DEFAULT '0000-00-00 00:00:00', link_rel varchar(255) NOT NULL DEFAULT '', link_notes mediumtext NOT NULL, link_rss varchar(255) NOT NULL DEFAULT '', PRIMARY KEY (link_id), KEY link_visible (link_visible)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_options (option_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, option_name varchar(191) NOT NULL DEFAULT '', option_value longtext NOT NULL, autoload varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (option_id), UNIQUE KEY option_name (option_name), KEY autoload (autoload)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_postmeta (meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, post_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext DEFAULT NULL, PRIMARY KEY (meta_id), KEY post_id (post_id), KEY meta_key (meta_key(191))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_posts (ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, post_author bigint(20) unsigned NOT NULL DEFAULT 0, post_date datetime NOT NULL DEFAULT '0000-00-00 00:00:00', post_date_gmt datetime NOT NULL DEFAULT '0000-00-00 00:00:00', post_content longtext NOT NULL, post_title text NOT NULL, post_excerpt text NOT NULL, post_status varchar(20) NOT NULL DEFAULT 'publish', comment_status varchar(20) NOT NULL DEFAULT 'open', ping_status varchar(20) NOT NULL DEFAULT 'open', post_password varchar(255) NOT NULL DEFAULT '', post_name varchar(200) NOT NULL DEFAULT '', to_ping text NOT NULL, pinged text NOT NULL, post_modified datetime NOT NULL DEFAULT '0000-00-00 00:00:00', post_modified_gmt datetime NOT NULL DEFAULT '0000-00-00 00:00:00', post_content_filtered longtext NOT NULL, post_parent bigint(20) unsigned NOT NULL DEFAULT 0, guid varchar(255) NOT NULL DEFAULT '', menu_order int(11) NOT NULL DEFAULT 0, post_type varchar(20) NOT NULL DEFAULT 'post', post_mime_type varchar(100) NOT NULL DEFAULT '', comment_count bigint(20) NOT NULL DEFAULT 0, PRIMARY KEY (ID), KEY post_name (post_name(191)), KEY type_status_date (post_type,post_status,post_date,ID), KEY post_parent (post_parent), KEY post_author (post_author)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_term_relationships (object_id bigint(20) unsigned NOT NULL DEFAULT 0, term_taxonomy_id bigint(20) unsigned NOT NULL DEFAULT 0, term_order int(11) NOT NULL DEFAULT 0, PRIMARY KEY (object_id,term_taxonomy_id), KEY term_taxonomy_id (term_taxonomy_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_term_taxonomy (term_taxonomy_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, term_id bigint(20) unsigned NOT NULL DEFAULT 0, taxonomy varchar(32) NOT NULL DEFAULT '', description longtext NOT NULL, parent bigint(20) unsigned NOT NULL DEFAULT 0, count bigint(20) NOT NULL DEFAULT 0, PRIMARY KEY (term_taxonomy_id), UNIQUE KEY term_id_taxonomy (term_id,taxonomy), KEY taxonomy (taxonomy)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_termmeta (meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, term_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext DEFAULT NULL, PRIMARY KEY (meta_id), KEY term_id (term_id), KEY meta_key (meta_key(191))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_terms (term_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, name varchar(200) NOT NULL DEFAULT '', slug varchar(200) NOT NULL DEFAULT '', term_group bigint(10) NOT NULL DEFAULT 0, PRIMARY KEY (term_id), KEY slug (slug(191)), KEY name (name(191))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_usermeta (umeta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext DEFAULT NULL, PRIMARY KEY (umeta_id), KEY user_id (user_id), KEY meta_key (meta_key(191))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_users (ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_login varchar(60) NOT NULL DEFAULT '', user_pass varchar(255) NOT NULL DEFAULT '', user_nicename varchar(50) NOT NULL DEFAULT '', user_email varchar(100) NOT NULL DEFAULT '', user_url varchar(100) NOT NULL DEFAULT '', user_registered datetime NOT NULL DEFAULT '0000-00-00 00:00:00', user_activation_key varchar(255) NOT NULL DEFAULT '', user_status int(11) NOT NULL DEFAULT 0, display_name varchar(250) NOT NULL DEFAULT '', PRIMARY KEY (ID), KEY user_login_key (user_login), KEY user_nicename (user_nicename), KEY user_email (user_email)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
`

// createTable matches a CREATE TABLE of schema, whose name gets quoted.
var createTable = regexp.MustCompile(`CREATE TABLE (wp_\w+) \(`)

// tables are the schema's tables, in the order above.
var tables = []string{"commentmeta", "comments", "links", "options", "postmeta", "posts", "term_relationships", "term_taxonomy", "termmeta", "terms", "usermeta", "users"}

// dumpWriter writes extended INSERTs of about 1 MiB each (mariadb-dump's
// --net-buffer-length default) and counts bytes and rows.
type dumpWriter struct {
	w       *bufio.Writer
	n       int64
	rows    int64
	table   string // the open INSERT's table ("" none)
	stmtLen int
}

func (d *dumpWriter) write(s string) {
	n, _ := d.w.WriteString(s)
	d.n += int64(n)
}

// row adds one row (its values already SQL literals) to table.
func (d *dumpWriter) row(table string, values ...string) {
	v := "(" + strings.Join(values, ",") + ")"
	if d.table != table || d.stmtLen+len(v) > 1<<20 {
		d.end()
		d.write("INSERT INTO `wp_" + table + "` VALUES ")
		d.table, d.stmtLen = table, 0
	} else {
		d.write(",")
	}
	d.write(v)
	d.stmtLen += len(v)
	d.rows++
}

func (d *dumpWriter) end() {
	if d.table != "" {
		d.write(";\n")
		d.table = ""
	}
}

func q(s string) string { return sqlString(s) }
func n(i int64) string  { return strconv.FormatInt(i, 10) }
func date(i int) string {
	return q(time.Date(2019, 1, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * 97 * time.Minute).Format("2006-01-02 15:04:05"))
}
func upPath(i int) string { return fmt.Sprintf("%d/%02d/photo-%05d.jpg", 2019+i/1200, 1+(i/100)%12, i) }

// postContent is a post's block content: paragraphs with links to other
// posts, an image block and a cover block with the URL in its JSON
// attributes, about 3–6 KB; one post in four has no URL at all.
func postContent(rng *rand.Rand, id, uploads int) string {
	var b strings.Builder
	plain := id%4 == 0
	for p := 0; p < 3+rng.IntN(4); p++ {
		b.WriteString("<!-- wp:paragraph -->\n<p>" + sentence(rng, 40+rng.IntN(60)))
		if !plain {
			fmt.Fprintf(&b, ` <a href="%s/%d/%02d/%s/">%s</a> `, OldURL, 2019+rng.IntN(6), 1+rng.IntN(12), strings.ReplaceAll(sentence(rng, 3), " ", "-"), sentence(rng, 3))
		}
		b.WriteString(sentence(rng, 30) + "</p>\n<!-- /wp:paragraph -->\n\n")
	}
	if !plain && uploads > 0 {
		img := rng.IntN(uploads)
		fmt.Fprintf(&b, "<!-- wp:image {\"id\":%d,\"sizeSlug\":\"large\"} -->\n<figure class=\"wp-block-image size-large\"><img src=\"%s/wp-content/uploads/%s\" alt=\"%s\" class=\"wp-image-%d\"/></figure>\n<!-- /wp:image -->\n\n",
			100000+img, OldURL, upPath(img), sentence(rng, 4), 100000+img)
		img = rng.IntN(uploads)
		fmt.Fprintf(&b, "<!-- wp:cover {\"url\":\"%s/wp-content/uploads/%s\",\"id\":%d,\"dimRatio\":50} -->\n<div class=\"wp-block-cover\"><p>%s</p></div>\n<!-- /wp:cover -->\n",
			OldURL, upPath(img), 100000+img, sentence(rng, 8))
	}
	return b.String()
}

// WriteDump writes the site's dump to w; it stops adding posts once about
// p.DumpBytes are written. It returns the posts and rows written.
func WriteDump(w io.Writer, p Plan, uploads int) (posts int, rows, bytes int64, err error) {
	d := &dumpWriter{w: bufio.NewWriterSize(w, 1<<20)}
	d.write("-- AIPress bench-import: a generated WordPress site (" + OldURL + ")\n/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n")
	for _, t := range tables {
		d.write("DROP TABLE IF EXISTS `wp_" + t + "`;\n")
	}
	d.write(createTable.ReplaceAllString(schema, "CREATE TABLE `$1` ("))
	rng := rand.New(rand.NewPCG(p.Seed, 1))
	// Options: the core's, serialised ones holding the URL, plugins'.
	caps := kv{}
	for _, c := range []string{"switch_themes", "edit_themes", "activate_plugins", "edit_plugins", "edit_users", "edit_files", "manage_options",
		"moderate_comments", "manage_categories", "manage_links", "upload_files", "import", "unfiltered_html", "edit_posts", "edit_others_posts",
		"edit_published_posts", "publish_posts", "edit_pages", "read", "level_10", "level_0", "edit_others_pages", "edit_published_pages",
		"publish_pages", "delete_pages", "delete_posts", "delete_others_posts", "delete_published_posts", "list_users", "create_users",
		"delete_users", "promote_users", "install_plugins", "update_plugins", "delete_plugins", "install_themes", "update_themes",
		"update_core", "edit_theme_options", "export", "delete_themes", "edit_dashboard", "customize", "delete_site"} {
		caps = append(caps, struct{ k, v any }{c, true})
	}
	roles := kvOf("administrator", kvOf("name", "Administrator", "capabilities", caps),
		"subscriber", kvOf("name", "Subscriber", "capabilities", kvOf("read", true, "level_0", true)))
	opts := [][2]string{
		{"siteurl", OldURL}, {"home", OldURL}, {"blogname", "Old Host Blog"}, {"blogdescription", "A site that moves"},
		{"users_can_register", "0"}, {"admin_email", "admin@old-host.example"}, {"start_of_week", "1"}, {"permalink_structure", "/%year%/%monthnum%/%postname%/"},
		{"template", "twentytwentythree"}, {"stylesheet", "twentytwentythree"}, {"db_version", "53496"}, {"initial_db_version", "53496"},
		{"wp_user_roles", ser(roles)}, {"default_role", "subscriber"}, {"posts_per_page", "10"}, {"show_on_front", "posts"},
		{"upload_url_path", ""}, {"active_plugins", ser([]any{})}, {"fresh_site", "0"},
		{"widget_text", ser(kvOf(2, kvOf("title", "About", "text", `<a href="`+OldURL+`/about/">About us</a>`), "_multiwidget", 1))},
		{"theme_mods_twentytwentythree", ser(kvOf("custom_logo", 17, "header_image", OldURL+"/wp-content/uploads/2019/01/header.jpg",
			"nested", ser(kvOf("bg", OldURL+"/wp-content/uploads/bg.png"))))},
	}
	for i := 0; i < 200; i++ {
		opts = append(opts, [2]string{fmt.Sprintf("bench_plugin_%03d", i), ser(kvOf("enabled", true, "endpoint", fmt.Sprintf("%s/wp-json/bench/v1/%d", OldURL, i),
			"labels", []any{sentence(rng, 3), sentence(rng, 3)}, "json", `{"url":"`+oldJSON+`\/x"}`))})
	}
	for i, o := range opts {
		d.row("options", n(int64(i+1)), q(o[0]), q(o[1]), q("yes"))
	}
	d.end()
	d.row("users", "1", q("admin"), q("$P$BrUqNgqZ8nXd5S1Fuld8YdYj3vSeLK."), q("admin"), q("admin@old-host.example"), q(OldURL), q("2019-01-01 00:00:00"), q(""), "0", q("admin"))
	d.end()
	for i, m := range [][2]string{{"wp_capabilities", ser(kvOf("administrator", true))}, {"wp_user_level", "10"}, {"nickname", "admin"}, {"session_tokens", ""}} {
		d.row("usermeta", n(int64(i+1)), "1", q(m[0]), q(m[1]))
	}
	d.end()
	d.row("terms", "1", q("Uncategorized"), q("uncategorized"), "0")
	d.end()
	d.row("term_taxonomy", "1", "1", q("category"), q(""), "0", "0")
	d.end()
	// Posts, each followed in its own statements by its meta, comments
	// and category: as many as fit in the size.
	var metaID, commentID int64
	for id := 1; d.n < p.DumpBytes || id == 1; id++ {
		title := sentence(rng, 6)
		slug := strings.ReplaceAll(title, " ", "-") + "-" + strconv.Itoa(id)
		d.row("posts", n(int64(id)), "1", date(id), date(id), q(postContent(rng, id, uploads)), q(title), q(""), q("publish"), q("open"), q("open"), q(""),
			q(slug), q(""), q(""), date(id), date(id), q(""), "0", q(fmt.Sprintf("%s/?p=%d", OldURL, id)), "0", q("post"), q(""), "2")
		meta := [][2]string{
			{"_edit_last", "1"},
			{"_bench_gallery", ser(kvOf("images", []any{OldURL + "/wp-content/uploads/" + upPath(id%max(uploads, 1)), OldURL + "/wp-content/uploads/" + upPath((id*7)%max(uploads, 1))},
				"link", ser(kvOf("href", fmt.Sprintf("%s/?p=%d", OldURL, id), "target", "_blank")), "columns", 3))},
			{"_builder_data", fmt.Sprintf(`[{"id":"a%d","elType":"section","settings":{"background_image":{"url":"%s\/wp-content\/uploads\/%s","id":%d}},"elements":[{"widgetType":"text-editor","settings":{"editor":"<p>%s <a href=\"%s\/contact\/\">contact<\/a><\/p>"}}]}]`,
				id, oldJSON, strings.ReplaceAll(upPath(id%max(uploads, 1)), "/", `\/`), id, sentence(rng, 20), oldJSON)},
			{"_seo_canonical", fmt.Sprintf("%s/%s/", OldURL, slug)},
		}
		if id%4 == 0 {
			meta = meta[:1]
		}
		for _, m := range meta {
			metaID++
			d.row("postmeta", n(metaID), n(int64(id)), q(m[0]), q(m[1]))
		}
		for c := 0; c < 2; c++ {
			commentID++
			d.row("comments", n(commentID), n(int64(id)), q(sentence(rng, 2)), q("reader@example.org"), q("https://reader.example.org"), q("192.0.2.1"),
				date(id), date(id), q(sentence(rng, 25)+" see "+OldURL+"/about/"), "0", q("1"), q("Mozilla/5.0"), q("comment"), "0", "0")
		}
		d.row("term_relationships", n(int64(id)), "1", "0")
		posts = id
		d.end()
	}
	d.write("/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n")
	if err := d.w.Flush(); err != nil {
		return 0, 0, 0, err
	}
	return posts, d.rows, d.n, nil
}

// upload is one generated file.
type upload struct {
	Path string
	Size int64
	Seed uint64
}

// planUploads plans files until total bytes: 70 % of the files are
// thumbnails (8–64 KiB), 28 % photos (200 KiB–2 MiB), 2 % large media
// (8–32 MiB) — the last one cut to fit.
func planUploads(total int64, seed uint64) []upload {
	rng := rand.New(rand.NewPCG(seed, 2))
	var out []upload
	var sum int64
	for i := 0; sum < total; i++ {
		var size int64
		switch r := rng.IntN(100); {
		case r < 70:
			size = int64(8<<10 + rng.IntN(56<<10))
		case r < 98:
			size = int64(200<<10 + rng.IntN(1848<<10))
		default:
			size = int64(8<<20 + rng.IntN(24<<20))
		}
		size = min(size, total-sum)
		out = append(out, upload{Path: upPath(i), Size: size, Seed: seed<<32 | uint64(i)})
		sum += size
	}
	return out
}

type randomReader struct{ r *rand.ChaCha8 }

func (r randomReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func seedBytes(n uint64) [32]byte {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(n >> (8 * i))
	}
	return s
}

// Generate writes the site's archive (tar.gz: database.sql, then
// wp-content/ with a theme stub and the uploads) to archivePath, and the
// dump also to dumpPath (the anchor loads it too).
func Generate(p Plan, archivePath, dumpPath string) (*Generated, error) {
	plan := planUploads(p.UploadBytes, p.Seed)
	df, err := os.Create(dumpPath)
	if err != nil {
		return nil, err
	}
	posts, rows, dumpBytes, err := WriteDump(df, p, len(plan))
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	g := &Generated{DumpBytes: dumpBytes, Posts: posts, Rows: rows, Uploads: len(plan)}
	af, err := os.Create(archivePath)
	if err != nil {
		return nil, err
	}
	defer af.Close()
	bw := bufio.NewWriterSize(af, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	mtime := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	file := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, r, size)
		return err
	}
	dr, err := os.Open(dumpPath)
	if err != nil {
		return nil, err
	}
	err = file("database.sql", dumpBytes, dr)
	dr.Close()
	if err != nil {
		return nil, err
	}
	style := "/*\nTheme Name: Old Host Child\nTemplate: twentytwentythree\n*/\nbody{background:url(" + OldURL + "/wp-content/uploads/bg.png)}\n"
	if err := file("wp-content/themes/oldhost-child/style.css", int64(len(style)), strings.NewReader(style)); err != nil {
		return nil, err
	}
	for _, u := range plan {
		if err := file("wp-content/uploads/"+u.Path, u.Size, randomReader{rand.NewChaCha8(seedBytes(u.Seed))}); err != nil {
			return nil, err
		}
		g.UploadBytes += u.Size
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	fi, err := af.Stat()
	if err != nil {
		return nil, err
	}
	g.ArchiveBytes = fi.Size()
	return g, af.Close()
}
