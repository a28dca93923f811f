package shard_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
)

// importTarget stores a Pending site placed on shard without converging
// it: what an import creates.
func (c *cluster) importTarget(name, uid, shardName string) *site.Site {
	c.t.Helper()
	return c.importTargetWith(name, uid, shardName, nil)
}

// importTargetWith is importTarget with tweak applied to the site before
// it is stored.
func (c *cluster) importTargetWith(name, uid, shardName string, tweak func(*site.Site)) *site.Site {
	c.t.Helper()
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: uid, CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: name, Title: "Imported", Plan: "basic", Admin: adminFor(c.t), WAF: site.WAF{Mode: site.WAFOff}},
		Status:   site.Status{Phase: site.PhasePending, Shard: shardName},
	}
	if tweak != nil {
		tweak(s)
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		c.t.Fatal(err)
	}
	return c.get(name)
}

// convergeReady converges shard until site name is Ready.
func (c *cluster) convergeReady(name, shardName string) {
	c.t.Helper()
	for i := 0; ; i++ {
		err := c.converge(shardName)
		if c.get(name).Status.Phase == site.PhaseReady {
			c.routes()
			return
		}
		if i == 5 {
			c.t.Fatalf("site %s not Ready: %v; status %+v", name, err, c.get(name).Status)
		}
	}
}

func queryList(t *testing.T, c *cluster, sh *shard.Shard, db, q string) []string {
	t.Helper()
	conn, err := sh.DB().OpenRoot(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(c.ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestExportImportRoundTrip exports a site with content, checks the
// archive with tar and the mariadb client, and imports it under a new
// domain: posts, options, users, uploads and pages match, URLs are the
// new site's.
func TestExportImportRoundTrip(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	const host, uid = "orig.localhost", "uid-orig"
	c.create(host, uid, "alpha", "Original", adminFor(t))
	addContent(t, c, sh, uid)
	oldURL := "http://" + host + ":" + c.port
	n := sh.NamesFor(uid)
	widget := phpSerialize(map[int]map[string]string{2: {"title": "Links", "text": `<a href="` + oldURL + `/about/">About ` + host + `</a>`}})
	rootExec(t, c, sh, n.DB, "UPDATE wp_options SET option_value = '"+strings.ReplaceAll(widget, `'`, `''`)+"' WHERE option_name = 'widget_text'")
	rootExec(t, c, sh, n.DB, `UPDATE wp_posts SET post_content = '<img src="`+oldURL+`/wp-content/uploads/2024/05/hello.txt">' WHERE post_name = 'a-post-that-moved'`)
	rootExec(t, c, sh, n.DB, `INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_modified, post_modified_gmt, post_title, post_name, post_content, post_status, post_type, post_excerpt, to_ping, pinged, post_content_filtered)
		VALUES (1, NOW(), UTC_TIMESTAMP(), NOW(), UTC_TIMESTAMP(), 'About Us', 'about', 'We make things. <a href="`+oldURL+`/a-post-that-moved/">Read</a>', 'publish', 'page', '', '', '', '')`)
	rootExec(t, c, sh, n.DB, `INSERT INTO wp_comments (comment_post_ID, comment_author, comment_date, comment_date_gmt, comment_content, comment_approved) SELECT ID, 'Reader', NOW(), UTC_TIMESTAMP(), 'Nice post', '1' FROM wp_posts WHERE post_name = 'a-post-that-moved'`)
	rootExec(t, c, sh, n.DB, `INSERT INTO wp_users (user_login, user_pass, user_nicename, user_email, user_url, user_registered, display_name) VALUES ('editor', '$P$Bxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.', 'editor', 'ed@example.com', '`+oldURL+`', NOW(), 'Ed')`)

	// Export.
	dir := t.TempDir()
	archive := filepath.Join(dir, "orig.tar.gz")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sh.ExportSite(c.ctx, c.get(host), f, nil)
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	if m.Domain != host || m.URL != oldURL || m.TablePrefix != "wp_" || m.WordPressVersion == "" || m.DBVersion == "" || m.DatabaseBytes == 0 {
		t.Errorf("manifest %+v", m)
	}
	list, err := exec.Command("tar", "-tzf", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzf: %v: %s", err, list)
	}
	for _, want := range []string{"database.sql", "manifest.json", "wp-content/uploads/2024/05/hello.txt", "wp-content/themes/"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("the archive lacks %s:\n%.2000s", want, list)
		}
	}
	// The dump loads into a fresh database with the plain mariadb client.
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	if b, err := exec.Command("tar", "-xzf", archive, "-C", x, "database.sql").CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	sqlText, _ := os.ReadFile(filepath.Join(x, "database.sql"))
	if bytes.Contains(sqlText, []byte("DEFINER")) {
		t.Error("database.sql has a DEFINER")
	}
	if err := sh.DB().CreateSchema(c.ctx, "plainload"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mariadb", "--defaults-file="+filepath.Join(sh.DB().Dir, "root-client.cnf"), "plainload")
	cmd.Stdin = bytes.NewReader(sqlText)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb < database.sql: %v: %s", err, b)
	}
	postsQ := "SELECT CONCAT(post_type, ':', post_name, ':', post_title) FROM wp_posts WHERE post_status = 'publish' ORDER BY ID"
	origPosts := queryList(t, c, sh, n.DB, postsQ)
	if got := queryList(t, c, sh, "plainload", postsQ); !slices.Equal(got, origPosts) || len(got) < 3 {
		t.Errorf("posts loaded by mariadb: %q, want %q", got, origPosts)
	}

	// A dry run reports and makes nothing.
	const dest, destUID = "imported.localhost", "uid-imported"
	target := c.importTarget(dest, destUID, "alpha")
	nd := sh.NamesFor(destUID)
	var steps []string
	dry, err := sh.ImportSite(c.ctx, target, shard.ImportRequest{Archive: archive, DryRun: true,
		Progress: func(step string, done, total int64) { steps = append(steps, step) }})
	if err != nil {
		t.Fatal(err)
	}
	newURL := "http://" + dest + ":" + c.port
	if dry.TablePrefix != "wp_" || dry.PrefixRenamed || dry.OldURL != oldURL || dry.NewURL != newURL || dry.Manifest == nil ||
		dry.Dump != "database.sql" || dry.WordPressVersion != m.WordPressVersion || dry.DBVersion != m.DBVersion || len(dry.Themes) == 0 || !slices.Contains(steps, "unpack") {
		t.Errorf("dry run report %+v (steps %q)", dry, steps)
	}
	if ok, _ := sh.DB().DatabaseExists(c.ctx, nd.DB); ok || fileExists(nd.Dir) {
		t.Fatal("a dry run created the database or the site's directory")
	}

	rep, err := sh.ImportSite(c.ctx, target, shard.ImportRequest{Archive: archive})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsChanged == 0 || rep.Posts == 0 || rep.Users != 2 || rep.CoreVersion == "" {
		t.Errorf("import report %+v", rep)
	}
	c.convergeReady(dest, "alpha")
	if got := queryList(t, c, sh, nd.DB, postsQ); !slices.Equal(got, origPosts) {
		t.Errorf("imported posts %q, want %q", got, origPosts)
	}
	usersQ := "SELECT CONCAT(user_login, ':', user_email) FROM wp_users ORDER BY ID"
	if got, want := queryList(t, c, sh, nd.DB, usersQ), queryList(t, c, sh, n.DB, usersQ); !slices.Equal(got, want) {
		t.Errorf("imported users %q, want %q", got, want)
	}
	commentsQ := "SELECT comment_content FROM wp_comments ORDER BY comment_ID"
	if got, want := queryList(t, c, sh, nd.DB, commentsQ), queryList(t, c, sh, n.DB, commentsQ); !slices.Equal(got, want) {
		t.Errorf("imported comments %q, want %q", got, want)
	}
	optQ := "SELECT option_value FROM wp_options WHERE option_name IN ('blogname', 'siteurl', 'home', 'widget_text') ORDER BY option_name"
	wantOpts := []string{"Original", newURL, newURL, phpSerialize(map[int]map[string]string{2: {"title": "Links", "text": `<a href="` + newURL + `/about/">About ` + host + `</a>`}})}
	if got := queryList(t, c, sh, nd.DB, optQ); !slices.Equal(got, wantOpts) {
		t.Errorf("imported options %q, want %q", got, wantOpts)
	}
	c.check(dest, "/wp-content/uploads/2024/05/hello.txt", 200, "uploaded before the move")
	c.check(dest, "/a-post-that-moved/", 200, newURL+"/wp-content/uploads/2024/05/hello.txt")
	c.check(dest, "/about/", 200, newURL+"/a-post-that-moved/")
	if _, _, body := c.request("GET", dest, "/", nil, nil); strings.Contains(body, oldURL) || !strings.Contains(body, "A Post That Moved") {
		t.Errorf("the imported home page:\n%.800s", body)
	}
	if !c.dashboard(dest, c.login(dest)) {
		t.Error("the imported admin cannot reach the dashboard")
	}
	// The original is unchanged.
	c.check(host, "/a-post-that-moved/", 200, oldURL+"/wp-content/uploads/")
	// Importing again into the same site is refused.
	if _, err := sh.ImportSite(c.ctx, c.get(dest), shard.ImportRequest{Archive: archive}); !errors.Is(err, shard.ErrSiteExists) {
		t.Errorf("a second import: %v", err)
	}
}

// TestImportForeignArchive imports what another host makes: wp-content
// only, a gzip dump with another table prefix, CREATE DATABASE/USE, LOCK
// TABLES and a trigger with a DEFINER.
func TestImportForeignArchive(t *testing.T) {
	c := newCluster(t)
	// The control plane's uploads (POST /v1/imports keeps the archive's
	// plugins there, packed by siteport.PackExtensions, as this test
	// does below).
	uploaded := map[string][]byte{}
	store_, err := artefact.Open(artefact.Config{Dir: filepath.Join(c.dir, "artefacts"), AllowPrivateNetworks: true,
		Uploads: func(_ context.Context, sha string) (io.ReadCloser, error) {
			b, ok := uploaded[sha]
			if !ok {
				return nil, fs.ErrNotExist
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	c.artefacts = store_
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "legacy.localhost", "uid-legacy"
	c.create(host, uid, "alpha", "Legacy Blog", adminFor(t))
	addContent(t, c, sh, uid)
	n := sh.NamesFor(uid)
	var dump bytes.Buffer
	if err := sh.DB().Dump(c.ctx, n.DB, &dump); err != nil {
		t.Fatal(err)
	}
	foreign := "/*!40101 SET NAMES utf8mb4 */;\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `legacy` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `legacy`;\n" + dump.String()
	for _, r := range [][2]string{{"`wp_", "`blog7_"}, {"'wp_user_roles'", "'blog7_user_roles'"}, {"'wp_capabilities'", "'blog7_capabilities'"}, {"'wp_user_level'", "'blog7_user_level'"}} {
		foreign = strings.ReplaceAll(foreign, r[0], r[1])
	}
	if !strings.Contains(foreign, "LOCK TABLES `blog7_options` WRITE") {
		foreign = strings.Replace(foreign, "INSERT INTO `blog7_options`", "LOCK TABLES `blog7_options` WRITE;\nINSERT INTO `blog7_options`", 1) + "UNLOCK TABLES;\n"
	}
	// The dump has the plugin active.
	const hello = catalogtest.HelloPlugin
	active := fmt.Sprintf(`'active_plugins','a:1:{i:0;s:%d:\"%s/%s.php\";}'`, len(hello)*2+5, hello, hello)
	if !strings.Contains(foreign, "'active_plugins','a:0:{}'") {
		t.Fatal("the dump has no empty active_plugins to replace")
	}
	foreign = strings.Replace(foreign, "'active_plugins','a:0:{}'", active, 1)
	foreign += "DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `t` BEFORE INSERT ON `blog7_posts` FOR EACH ROW SET NEW.post_title = 'x' */;;\nDELIMITER ;\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(foreign))
	zw.Close()
	var ar bytes.Buffer
	tw := tar.NewWriter(&ar)
	add := func(name string, body []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	add("uploads/2024/05/hello.txt", []byte("from the old host\n"))
	// A plugin the artefact store takes, and one it refuses (no
	// "Plugin Name:" header): that one stays in the site's tree.
	for f, body := range catalogtest.PluginFiles(hello, "3.0") {
		add("plugins/"+hello+"/"+f, []byte(body))
	}
	add("plugins/legacy-widgets/legacy-widgets.php", []byte("<?php\n// no header: not a plugin WordPress lists\n"))
	add("backup-2024.sql.gz", gz.Bytes())
	tw.Close()
	archive := filepath.Join(t.TempDir(), "legacy.tar")
	os.WriteFile(archive, ar.Bytes(), 0o600)

	// What POST /v1/imports does: inspect with Pack, keep each storable
	// extension as an upload of the organisation, name it in the spec.
	scratch, pack := t.TempDir(), t.TempDir()
	in, err := siteport.Inspect(c.ctx, siteport.InspectRequest{Archive: archive, Scratch: scratch, Pack: pack})
	if err != nil {
		t.Fatal(err)
	}
	var plugins []site.Extension
	for _, e := range in.Extensions {
		if !e.Storable {
			continue
		}
		b, err := os.ReadFile(e.Zip)
		if err != nil {
			t.Fatal(err)
		}
		uploaded[e.SHA256] = b
		plugins = append(plugins, site.Extension{Name: e.Name, Version: e.Version, Active: e.Active,
			Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: e.SHA256}})
	}
	if len(plugins) != 1 || plugins[0].Name != hello || !plugins[0].Active {
		t.Fatalf("storable plugins %+v, want %s, active (inspection %+v)", plugins, hello, in.Extensions)
	}
	withPlugins := func(s *site.Site) { s.Metadata.Org = "acme"; s.Spec.Plugins = plugins }
	if err := c.st.CreateOrg(c.ctx, &store.Org{Name: "acme", DisplayName: "acme", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}

	const dest, destUID = "newhome.localhost", "uid-newhome"
	rep, err := sh.ImportSite(c.ctx, c.importTargetWith(dest, destUID, "alpha", withPlugins), shard.ImportRequest{Archive: archive})
	if err != nil {
		t.Fatal(err)
	}
	exts := map[string]siteport.Extension{}
	for _, e := range rep.Extensions {
		exts[e.Name] = e
	}
	if e := exts[hello]; !e.Storable || e.SHA256 != plugins[0].Source.SHA256 {
		t.Errorf("report: %s %+v, want it in the artefact store", hello, e)
	}
	if e := exts["legacy-widgets"]; e.Storable || !strings.Contains(e.Reason, "Plugin Name") {
		t.Errorf("report: legacy-widgets %+v, want it kept in the tree for its missing header", e)
	}
	oldURL := "http://" + host + ":" + c.port
	if rep.TablePrefix != "blog7_" || !rep.PrefixRenamed || rep.OldURL != oldURL || rep.Layout.WPContent != "." || rep.Dump != "backup-2024.sql.gz" ||
		rep.Removed["trigger or routine block"] != 1 || rep.Removed["USE"] != 1 || !slices.Contains(rep.Plugins, "legacy-widgets") {
		t.Errorf("report %+v", rep)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name)
		if p.Seconds < 0 {
			t.Errorf("phase %+v", p)
		}
	}
	if want := []string{"unpack", "prepare", "load", "rename", "files", "rewrite", "finish"}; !slices.Equal(phases, want) {
		t.Errorf("phases %q, want %q", phases, want)
	}
	if rep.RowsScanned < rep.RowsChanged || rep.RowsChanged == 0 || rep.BytesScanned == 0 {
		t.Errorf("rewrite: scanned %d rows (%d bytes), changed %d", rep.RowsScanned, rep.BytesScanned, rep.RowsChanged)
	}
	c.convergeReady(dest, "alpha")
	nd := sh.NamesFor(destUID)
	if tables := queryList(t, c, sh, nd.DB, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'blog7%'"); len(tables) != 0 {
		t.Errorf("tables left with the old prefix: %q", tables)
	}
	newURL := "http://" + dest + ":" + c.port
	c.check(dest, "/a-post-that-moved/", 200, "Carried across shards.")
	c.check(dest, "/wp-content/uploads/2024/05/hello.txt", 200, "from the old host")
	if !fileExists(filepath.Join(nd.Docroot, "wp-content", "plugins", "legacy-widgets", "legacy-widgets.php")) {
		t.Error("the archive's refused plugin is not in the site's tree")
	}
	// The code job links the stored plugin (it is active: its marker is
	// on the page); a second site of the organisation importing the same
	// archive shares the store's folder.
	linkOf := func(host, uid string) string {
		t.Helper()
		if j, _ := c.codeJob(host, store.CodeParams{}); j.Phase != store.JobSucceeded {
			t.Fatalf("code job of %s: %s %s", host, j.Phase, j.Error)
		}
		c.check(host, "/", 200, catalogtest.Marker(hello, "3.0"))
		l, err := os.Readlink(filepath.Join(sh.NamesFor(uid).Docroot, "wp-content", "plugins", hello))
		if err != nil || !strings.HasPrefix(l, store_.Root()+"/plugin/") {
			t.Fatalf("%s: plugin %s links to %q (%v), want the artefact store", host, hello, l, err)
		}
		return l
	}
	first := linkOf(dest, destUID)
	const dest2, dest2UID = "newhome2.localhost", "uid-newhome2"
	if _, err := sh.ImportSite(c.ctx, c.importTargetWith(dest2, dest2UID, "alpha", withPlugins), shard.ImportRequest{Archive: archive}); err != nil {
		t.Fatal(err)
	}
	c.convergeReady(dest2, "alpha")
	if second := linkOf(dest2, dest2UID); second != first {
		t.Errorf("two imports of one plugin: %s and %s, want one folder of the store", first, second)
	}
	if v := queryList(t, c, sh, nd.DB, "SELECT option_value FROM wp_options WHERE option_name = 'home'"); !slices.Equal(v, []string{newURL}) {
		t.Errorf("home %q", v)
	}
	// The renamed capabilities work: the admin reaches the dashboard.
	if !c.dashboard(dest, c.login(dest)) {
		t.Error("the imported admin cannot reach the dashboard (capabilities not renamed?)")
	}
}

// TestImportRefusedLeavesNothing: hostile or broken archives are refused
// with the reason, and a failure after the database was made removes it,
// the site's files and its Unix user.
func TestImportRefusedLeavesNothing(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	dir := t.TempDir()
	archives := 0
	tarOf := func(ents map[string]string, links map[string]string) string {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for name, body := range ents {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			tw.Write([]byte(body))
		}
		for name, target := range links {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target})
		}
		tw.Close()
		archives++
		f := filepath.Join(dir, fmt.Sprintf("archive-%d.tar", archives))
		os.WriteFile(f, b.Bytes(), 0o600)
		return f
	}
	okDump := "CREATE TABLE `wp_options` (`option_id` bigint unsigned NOT NULL AUTO_INCREMENT, `option_name` varchar(191) NOT NULL, `option_value` longtext NOT NULL, `autoload` varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (`option_id`));\n" +
		"CREATE TABLE `wp_posts` (`ID` bigint unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (`ID`));\n" +
		"INSERT INTO `wp_options` VALUES (1,'siteurl','http://old.example','yes');\n"
	for i, tc := range []struct {
		name, archive, want string
	}{
		{"zip-slip", tarOf(map[string]string{"wp-content/uploads/a": "a", "wp-content/../../../../tmp/evil.php": "<?php", "db.sql": okDump}, nil), "zip-slip"},
		{"escaping symlink", tarOf(map[string]string{"wp-content/uploads/a": "a", "db.sql": okDump}, map[string]string{"wp-content/uploads/etc": "../../../../etc"}), "points outside"},
		{"no options table", tarOf(map[string]string{"wp-content/uploads/a": "a", "db.sql": "CREATE TABLE `wp_posts` (x int);\n"}, nil), "missing tables"},
		{"latin1 dump", tarOf(map[string]string{"wp-content/uploads/a": "a", "db.sql": "/*!40101 SET NAMES latin1 */;\n" + okDump}, nil), "latin1"},
		{"no dump", tarOf(map[string]string{"wp-content/uploads/a": "a"}, nil), "no SQL dump"},
		// Refused by the sandboxed loader after the database, its user,
		// the Unix user and the site's directory exist.
		{"privilege escalation", tarOf(map[string]string{"wp-content/uploads/a": "a", "db.sql": okDump + "GRANT ALL ON *.* TO 'x'@'%' IDENTIFIED BY 'x';\n"}, nil), "load the dump"},
		{"another database", tarOf(map[string]string{"wp-content/uploads/a": "a", "db.sql": okDump + "INSERT INTO mysql.user VALUES ();\n"}, nil), "load the dump"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "bad" + string(rune('a'+i)) + ".localhost"
			uid := "uid-bad-" + string(rune('a'+i))
			// The site's record names a shard nobody runs: alpha's own
			// convergence would otherwise create the pending site the
			// moment the failed import lets go of it.
			_, err := sh.ImportSite(c.ctx, c.importTarget(name, uid, "nowhere"), shard.ImportRequest{Archive: tc.archive})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			nd := sh.NamesFor(uid)
			if ok, _ := sh.DB().DatabaseExists(c.ctx, nd.DB); ok {
				t.Error("the database is left")
			}
			if users, _ := sh.DB().ListUsers(c.ctx, nd.DB); len(users) > 0 {
				t.Errorf("database users left: %q", users)
			}
			if fileExists(nd.Dir) {
				t.Errorf("the site's directory %s is left", nd.Dir)
			}
			if _, err := user.Lookup(nd.Unix); err == nil {
				t.Errorf("the Unix user %s is left", nd.Unix)
			}
			if fileExists("/tmp/evil.php") {
				t.Error("/tmp/evil.php was written")
			}
			if err := c.st.DeleteSite(c.ctx, name); err != nil {
				t.Log(err)
			}
		})
	}
	if users, _ := sh.DB().LoadUsers(c.ctx); len(users) > 0 {
		t.Errorf("load users left: %q", users)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestImportGivesUpOnPermanentFailure: a site created from an archive
// whose dump the database refuses (a GRANT) turns Failed once, with the
// reason, and further convergence passes leave it Failed instead of
// importing again (and again) as "retrying".
func TestImportGivesUpOnPermanentFailure(t *testing.T) {
	c := newCluster(t)
	c.start("alpha")
	defer c.deleteAll()
	dump := "CREATE TABLE `wp_options` (`option_id` bigint unsigned NOT NULL AUTO_INCREMENT, `option_name` varchar(191) NOT NULL, `option_value` longtext NOT NULL, `autoload` varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (`option_id`));\n" +
		"CREATE TABLE `wp_posts` (`ID` bigint unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (`ID`));\n" +
		"INSERT INTO `wp_options` VALUES (1,'siteurl','http://old.example','yes');\n" +
		"GRANT ALL ON *.* TO 'x'@'%' IDENTIFIED BY 'x';\n"
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range map[string]string{"wp-content/uploads/a.txt": "a", "database.sql": dump} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	const key = "imports/giveup/archive"
	p := filepath.Join(c.dir, "transfer", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	const name = "giveup.localhost"
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-giveup", CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: name, Title: "Imported", Plan: "basic", Admin: adminFor(t), WAF: site.WAF{Mode: site.WAFOff},
			Source: &site.Source{FromURL: "http://old.example", Import: &site.ImportSource{Key: key, Prefix: "wp_"}}},
		Status: site.Status{Phase: site.PhasePending, Shard: "alpha"},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		t.Fatal(err)
	}
	// The import runs beside convergence: pass until the site turns Failed
	// (each pass reports the previous attempt's outcome).
	var got *site.Site
	for i := 0; ; i++ {
		_ = c.converge("alpha")
		got = c.get(name)
		if got.Status.Phase == site.PhaseFailed || i == 600 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cond := got.Status.Condition(shard.CondInstalled)
	if got.Status.Phase != site.PhaseFailed || cond == nil || cond.Reason != shard.ReasonImportFailed ||
		!strings.Contains(cond.Message, "not retried") || !strings.Contains(cond.Message, "refused a statement of the dump") {
		t.Fatalf("phase %s, Installed %+v; want Failed, %s", got.Status.Phase, cond, shard.ReasonImportFailed)
	}
	t.Logf("Installed: %s", cond.Message)
	for range 3 {
		if err := c.converge("alpha"); err != nil {
			t.Errorf("converge: %v", err)
		}
		again := c.get(name)
		if c2 := again.Status.Condition(shard.CondInstalled); again.Status.Phase != site.PhaseFailed || c2 == nil || *c2 != *cond {
			t.Fatalf("after another pass: phase %s, Installed %+v (the import was tried again)", again.Status.Phase, c2)
		}
	}
	// A pass that read the site before another pass turned it Failed (the
	// shard's own pass and this test's overlap; so may two passes under
	// load) sees it still importing: it must not import again either.
	if err := c.src.UpdateStatus(c.ctx, name, s.Metadata.UID, func(st *site.Status) {
		st.Phase = site.PhaseCreating
		st.SetCondition(site.Condition{Type: shard.CondInstalled, Status: "False", Reason: "Restoring", Message: "importing from an archive"}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	_ = c.converge("alpha")
	again := c.get(name)
	if c2 := again.Status.Condition(shard.CondInstalled); again.Status.Phase != site.PhaseFailed || c2 == nil || c2.Reason != shard.ReasonImportFailed {
		t.Fatalf("a pass with the site as it was before it failed: phase %s, Installed %+v (the import was tried again)", again.Status.Phase, c2)
	}
}
