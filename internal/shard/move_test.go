package shard_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

const adminPassword = "move-me-correct-horse"

func adminFor(t *testing.T) site.Admin {
	h, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return site.Admin{User: "admin", Email: "a@example.com", PasswordHash: string(h)}
}

// login logs the admin in through the edge and returns the cookies.
func (c *cluster) login(host string) string {
	c.t.Helper()
	test := http.Header{"Cookie": {"wordpress_test_cookie=WP%20Cookie%20check"}}
	form := url.Values{"log": {"admin"}, "pwd": {adminPassword}, "wp-submit": {"Log In"}, "redirect_to": {"/wp-admin/"}, "testcookie": {"1"}}
	hdr := test.Clone()
	hdr.Set("Content-Type", "application/x-www-form-urlencoded")
	code, rh, body := c.request("POST", host, "/wp-login.php", strings.NewReader(form.Encode()), hdr)
	var cookies []string
	for _, ck := range (&http.Response{Header: rh}).Cookies() {
		if ck.Value != "" && ck.MaxAge >= 0 && !ck.Expires.Before(time.Now()) || ck.Expires.IsZero() {
			cookies = append(cookies, ck.Name+"="+ck.Value)
		}
	}
	jar := strings.Join(cookies, "; ")
	if code != 302 || !strings.Contains(jar, "wordpress_logged_in_") {
		c.t.Fatalf("login on %s = %d, cookies %q\n%.400s", host, code, jar, body)
	}
	return jar
}

// dashboard reports whether cookies reach the dashboard of host.
func (c *cluster) dashboard(host, cookies string) bool {
	c.t.Helper()
	code, _, body := c.request("GET", host, "/wp-admin/", nil, http.Header{"Cookie": {cookies}})
	return code == 200 && strings.Contains(body, "Dashboard")
}

// addContent publishes a post (as root, in SQL) and puts a file in uploads
// (as the site's user).
func addContent(t *testing.T, c *cluster, sh *shard.Shard, uid string) {
	t.Helper()
	n := sh.NamesFor(uid)
	db, err := sh.DB().OpenRoot(n.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(c.ctx, `INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_modified, post_modified_gmt,
		post_title, post_name, post_content, post_status, post_type, post_excerpt, to_ping, pinged, post_content_filtered)
		VALUES (1, NOW(), UTC_TIMESTAMP(), NOW(), UTC_TIMESTAMP(), 'A Post That Moved', 'a-post-that-moved', 'Carried across shards.', 'publish', 'post', '', '', '', '')`); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(n.Docroot, "wp-content", "uploads", "2024", "05")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(file, []byte("uploaded before the move\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup(n.Unix); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{filepath.Join(n.Docroot, "wp-content", "uploads", "2024"), dir, file} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rootExec runs q in database db of sh as MariaDB's root.
func rootExec(t *testing.T, c *cluster, sh *shard.Shard, db, q string) {
	t.Helper()
	conn, err := sh.DB().OpenRoot(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c.ctx, q); err != nil {
		t.Fatal(err)
	}
}

// startMove starts a move in phase Exporting: without a pre-copy (as an
// older control plane recorded moves).
func (c *cluster) startMove(name, id, source, target string) {
	c.t.Helper()
	c.startMoveIn(name, id, source, target, site.MoveExporting)
}

func (c *cluster) startMoveIn(name, id, source, target string, phase site.MovePhase) {
	c.t.Helper()
	if err := c.src.setMove(c.ctx, name, func(s *site.Site) {
		s.Move = &site.Move{ID: id, Source: source, Target: target, Phase: phase, RequestedAt: time.Now().UTC()}
	}); err != nil {
		c.t.Fatal(err)
	}
}

// runMove converges source and target (in that order) until the move of
// name reaches phase want.
func (c *cluster) runMove(name string, want site.MovePhase, shards ...string) *site.Site {
	c.t.Helper()
	var last error
	for i := 0; i < 12; i++ {
		s := c.get(name)
		if s.Move.Phase == want {
			return s
		}
		last = c.converge(shards...)
	}
	s := c.get(name)
	c.t.Fatalf("move of %s not %s: phase %s, error %q, last converge: %v", name, want, s.Move.Phase, s.Move.Error, last)
	return nil
}

// gone checks that sh has nothing left of site uid.
func gone(t *testing.T, c *cluster, sh *shard.Shard, uid string) {
	t.Helper()
	n := sh.NamesFor(uid)
	if ok, _ := sh.DB().DatabaseExists(c.ctx, n.DB); ok {
		t.Errorf("database %s remains", n.DB)
	}
	if ok, _ := sh.DB().UserExists(c.ctx, n.DBUser); ok {
		t.Errorf("db user %s remains", n.DBUser)
	}
	if _, err := os.Stat(sh.FPM().PoolFile(n.Pool)); !os.IsNotExist(err) {
		t.Errorf("pool %s remains", n.Pool)
	}
	if _, err := os.Stat(n.Dir); !os.IsNotExist(err) {
		t.Errorf("site dir %s remains", n.Dir)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(n.Unix); err == nil {
			t.Errorf("unix user %s remains", n.Unix)
		}
	}
}

// transferFiles lists the regular files left in the transfer store.
func transferFiles(t *testing.T, c *cluster) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(c.dir, "transfer"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestMoveSite(t *testing.T) {
	c := newCluster(t)
	a := c.start("alpha")
	b := c.start("beta")
	defer c.deleteAll()
	const host, uid = "m.localhost", "uid-move"
	c.create(host, uid, "alpha", "Moving Site", adminFor(t))
	addContent(t, c, a, uid)
	if code, _, body := c.request("GET", host, "/", nil, nil); code != 200 || !strings.Contains(body, "A Post That Moved") {
		t.Fatalf("GET / on alpha = %d\n%.300s", code, body)
	}
	cookies := c.login(host)
	if !c.dashboard(host, cookies) {
		t.Fatal("the admin's cookies do not reach the dashboard on alpha")
	}

	c.startMove(host, "move-1", "alpha", "beta")
	// The source's first pass freezes and exports.
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	s := c.get(host)
	if s.Move.Phase != site.MoveImporting || s.Move.FreezeStarted == nil || s.Move.Artifact == "" {
		t.Fatalf("after the source's pass: %+v", s.Move)
	}
	na := a.NamesFor(uid)
	if frozen, err := a.DB().WritesFrozen(c.ctx, na.DB, na.DBUser); err != nil || !frozen {
		t.Fatalf("source not frozen: %v %v", frozen, err)
	}
	// The export is root's alone.
	for _, f := range transferFiles(t, c) {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("transfer object %s mode %v, %v", f, st.Mode(), err)
		}
	}
	if st, err := os.Stat(filepath.Join(c.dir, "transfer")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("transfer dir mode: %v %v", st.Mode(), err)
	}
	// A changed export is refused before anything of it is used.
	refusesTamperedExports(t, c, "beta", host, uid)
	s = c.get(host)
	// Before the switch the target writes no status.
	rv := s.Metadata.ResourceVersion
	if err := c.converge("beta"); err != nil {
		t.Fatal(err)
	}
	s = c.get(host)
	if s.Move.Phase != site.MoveCleaningUp || s.Status.Shard != "beta" {
		t.Fatalf("after the target's pass: shard %s, move %+v", s.Status.Shard, s.Move)
	}
	if s.Metadata.ResourceVersion != rv+1 {
		t.Errorf("the target's import made %d writes, want 1 (the move report)", s.Metadata.ResourceVersion-rv)
	}
	s = c.runMove(host, site.MoveDone, "alpha", "beta")
	t.Logf("freeze window (FreezeStarted → Switched): %s", s.Move.FreezeWindow(time.Now()))
	if s.Status.Shard != "beta" || s.Status.Phase != site.PhaseReady {
		t.Fatalf("after the move: %+v", s.Status)
	}
	c.routes()

	// The site, its post and its upload are served by beta.
	nb := b.NamesFor(uid)
	if !strings.Contains(s.Status.Endpoint, filepath.Join(c.dir, "shard-beta")) || s.Status.Docroot != nb.Docroot {
		t.Errorf("status endpoint %s docroot %s", s.Status.Endpoint, s.Status.Docroot)
	}
	if code, _, body := c.request("GET", host, "/", nil, nil); code != 200 || !strings.Contains(body, "A Post That Moved") {
		t.Fatalf("GET / on beta = %d\n%.300s", code, body)
	}
	if code, _, body := c.request("GET", host, "/wp-content/uploads/2024/05/hello.txt", nil, nil); code != 200 || body != "uploaded before the move\n" {
		t.Fatalf("upload on beta = %d %q", code, body)
	}
	if v, err := b.DB().QueryString(c.ctx, "SELECT COUNT(*) FROM "+nb.DB+".wp_posts WHERE post_title = 'A Post That Moved'"); err != nil || v != "1" {
		t.Fatalf("post in beta's database: %q %v", v, err)
	}
	if os.Geteuid() == 0 {
		st, err := os.Stat(filepath.Join(nb.Docroot, "wp-content", "uploads", "2024", "05", "hello.txt"))
		u, _ := user.Lookup(nb.Unix)
		if err != nil || u == nil || strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid)) != u.Uid {
			t.Errorf("upload on beta not owned by %s: %v", nb.Unix, err)
		}
	}
	// Logged in on alpha, still logged in on beta (same salts, same
	// session tokens); and logging in afresh works.
	if !c.dashboard(host, cookies) {
		t.Error("alpha's login cookies do not reach beta's dashboard")
	}
	if !c.dashboard(host, c.login(host)) {
		t.Error("a fresh login on beta does not reach the dashboard")
	}
	// Its own database password, not the source's.
	if mustRead(t, filepath.Join(nb.Dir, "secrets.json")) == "" {
		t.Fatal("no secrets on beta")
	}
	// Nothing of the site is left on alpha, nor in the transfer store.
	gone(t, c, a, uid)
	if left := transferFiles(t, c); len(left) != 0 {
		t.Errorf("transfer objects left: %v", left)
	}
	// beta converges the site normally from now on, and never reinstalls.
	for i := 0; i < 2; i++ {
		if err := c.converge(); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := b.DB().QueryString(c.ctx, "SELECT COUNT(*) FROM "+nb.DB+".wp_posts WHERE post_title = 'A Post That Moved'"); v != "1" {
		t.Fatal("beta reinstalled over the moved site")
	}
	if s := c.get(host); s.Status.Phase != site.PhaseReady || s.Status.Shard != "beta" {
		t.Fatalf("after beta's normal passes: %+v", s.Status)
	}
}

// failImport is Sites whose report of a finished import fails, as if the
// target crashed between finishing the import and reporting it.
type failImport struct{ *moveSites }

func (f failImport) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	cur, err := f.get(ctx, name)
	if err != nil || cur.Move == nil {
		return err
	}
	probe := *cur.Move
	fn(&probe)
	if probe.Imported != nil {
		return errors.New("injected: crash before reporting the import")
	}
	return f.moveSites.UpdateMove(ctx, name, uid, fn)
}

func TestMoveResumesAndAborts(t *testing.T) {
	c := newCluster(t)
	a := c.start("alpha")
	b := c.start("beta")
	defer c.deleteAll()
	const host, uid = "r.localhost", "uid-resume"
	c.create(host, uid, "alpha", "Resumed Site", adminFor(t))
	addContent(t, c, a, uid)

	// A partial export of an earlier try is detected and redone.
	c.startMove(host, "move-r", "alpha", "beta")
	junk := filepath.Join(c.dir, "transfer", "moves", uid, "move-r", "partial", "database.sql.gz")
	if err := os.MkdirAll(filepath.Dir(junk), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("half a dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("partial export not removed: %v", err)
	}
	if s := c.get(host); s.Move.Phase != site.MoveImporting {
		t.Fatalf("after export: %+v", s.Move)
	}

	// The target finishes an import but crashes before reporting it (an
	// interruption at a deterministic point: a timed cancellation may
	// land before, during or after the import) …
	if err := b.Converge(c.ctx, failImport{c.src}); err == nil {
		t.Fatal("the injected report failure was not returned")
	}
	nb := b.NamesFor(uid)
	markers, _ := filepath.Glob(filepath.Join(nb.Dir, "imported.*"))
	if len(markers) != 1 {
		t.Fatalf("import markers: %v", markers)
	}
	if s := c.get(host); s.Move.Phase != site.MoveImporting || s.Move.Error == "" || s.Status.Shard != "alpha" {
		t.Fatalf("after the failed report: shard %s, move %+v", s.Status.Shard, s.Move)
	}
	// … and its marker is lost: the next pass imports again from scratch.
	if err := os.Remove(markers[0]); err != nil {
		t.Fatal(err)
	}
	rootExec(t, c, b, nb.DB, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('stale_from_a_partial_import', 'x', 'no')")
	// Meanwhile the operator aborts the move (it has not switched).
	if err := c.src.setMove(c.ctx, host, func(s *site.Site) { s.Move.Phase = site.MoveAborting }); err != nil {
		t.Fatal(err)
	}
	s := c.runMove(host, site.MoveAborted, "alpha", "beta")
	t.Logf("freeze window of the aborted move (FreezeStarted → Unfrozen): %s", s.Move.FreezeWindow(time.Now()))
	gone(t, c, b, uid)
	if left := transferFiles(t, c); len(left) != 0 {
		t.Errorf("transfer objects left after the abort: %v", left)
	}
	na := a.NamesFor(uid)
	if frozen, err := a.DB().WritesFrozen(c.ctx, na.DB, na.DBUser); err != nil || frozen {
		t.Fatalf("source still frozen after the abort: %v %v", frozen, err)
	}
	if err := c.converge(); err != nil {
		t.Fatal(err)
	}
	c.routes()
	if code, _, body := c.request("GET", host, "/", nil, nil); code != 200 || !strings.Contains(body, "A Post That Moved") {
		t.Fatalf("GET / on alpha after the abort = %d\n%.300s", code, body)
	}
	// Writes work again: logging in stores a session token.
	if !c.dashboard(host, c.login(host)) {
		t.Error("login on alpha after the abort fails")
	}

	// Move again; this time the import is interrupted and then resumed.
	c.startMove(host, "move-r2", "alpha", "beta")
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	if err := b.Converge(c.ctx, failImport{c.src}); err == nil {
		t.Fatal("the injected report failure was not returned")
	}
	markers, _ = filepath.Glob(filepath.Join(nb.Dir, "imported.*"))
	if len(markers) != 1 {
		t.Fatalf("import markers: %v", markers)
	}
	if err := os.Remove(markers[0]); err != nil {
		t.Fatal(err)
	}
	rootExec(t, c, b, nb.DB, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('stale_from_a_partial_import', 'x', 'no')")
	s = c.runMove(host, site.MoveDone, "alpha", "beta")
	t.Logf("freeze window of the resumed move (FreezeStarted → Switched): %s", s.Move.FreezeWindow(time.Now()))
	if v, _ := b.DB().QueryString(c.ctx, "SELECT COUNT(*) FROM "+nb.DB+".wp_options WHERE option_name = 'stale_from_a_partial_import'"); v != "0" {
		t.Error("the redone import kept rows of the interrupted one")
	}
	gone(t, c, a, uid)
	c.routes()
	if code, _, body := c.request("GET", host, "/", nil, nil); code != 200 || !strings.Contains(body, "A Post That Moved") {
		t.Fatalf("GET / on beta = %d\n%.300s", code, body)
	}
}

// A move with a pre-copy: the source exports while it serves (not
// frozen), the target imports that and warms it up; then the freeze, and
// the final export goes over the pre-copy. What the site wrote after the
// pre-copy (a post, an upload, a deleted upload) is on the target after
// the switch, and an interrupted final import is redone over the
// pre-copy without keeping rows of the interrupted one.
func TestMovePreCopy(t *testing.T) {
	c := newCluster(t)
	a := c.start("alpha")
	b := c.start("beta")
	defer c.deleteAll()
	const host, uid = "p.localhost", "uid-precopy"
	c.create(host, uid, "alpha", "Pre-copied Site", adminFor(t))
	addContent(t, c, a, uid)
	cookies := c.login(host)
	na, nb := a.NamesFor(uid), b.NamesFor(uid)

	c.startMoveIn(host, "move-p", "alpha", "beta", site.MoveCopying)
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	s := c.get(host)
	if s.Move.Phase != site.MoveCopying || s.Move.PreExported == nil || s.Move.PreArtifact == "" || s.Move.FreezeStarted != nil {
		t.Fatalf("after the source's pre-copy pass: %+v", s.Move)
	}
	if frozen, err := a.DB().WritesFrozen(c.ctx, na.DB, na.DBUser); err != nil || frozen {
		t.Fatalf("the source is frozen during the pre-copy: %v %v", frozen, err)
	}
	if err := c.converge("beta"); err != nil {
		t.Fatal(err)
	}
	s = c.get(host)
	if s.Move.Phase != site.MoveExporting || s.Move.PreImported == nil || s.Status.Shard != "alpha" {
		t.Fatalf("after the target's pre-copy pass: shard %s, move %+v", s.Status.Shard, s.Move)
	}
	if v, err := b.DB().QueryString(c.ctx, "SELECT COUNT(*) FROM "+nb.DB+".wp_posts WHERE post_title = 'A Post That Moved'"); err != nil || v != "1" {
		t.Fatalf("the pre-copy lacks the post: %q %v", v, err)
	}

	// The site keeps writing after the pre-copy was exported: a post, a
	// new upload, and the upload of before is deleted.
	rootExec(t, c, a, na.DB, `INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_modified, post_modified_gmt,
		post_title, post_name, post_content, post_status, post_type, post_excerpt, to_ping, pinged, post_content_filtered)
		VALUES (1, NOW(), UTC_TIMESTAMP(), NOW(), UTC_TIMESTAMP(), 'Written During The Pre-Copy', 'written-during', 'Late.', 'publish', 'post', '', '', '', '')`)
	uploads := filepath.Join(na.Docroot, "wp-content", "uploads", "2024", "05")
	if err := os.WriteFile(filepath.Join(uploads, "late.txt"), []byte("uploaded during the pre-copy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup(na.Unix); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(filepath.Join(uploads, "late.txt"), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(uploads, "hello.txt")); err != nil {
		t.Fatal(err)
	}
	// … and its schema changes: a column added (no row written), a table
	// dropped, a table made.
	rootExec(t, c, a, na.DB, "ALTER TABLE wp_links ADD COLUMN moved_col INT NULL")
	rootExec(t, c, a, na.DB, "DROP TABLE wp_termmeta")
	rootExec(t, c, a, na.DB, "CREATE TABLE wp_plugin_made (id INT PRIMARY KEY) ENGINE=InnoDB")

	// The freeze and the final export; the final import over the
	// pre-copy finishes but its report fails (a crash), its marker is
	// lost, and a stale row is left: the next pass redoes it.
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	if s := c.get(host); s.Move.Phase != site.MoveImporting || s.Move.FreezeStarted == nil {
		t.Fatalf("after the source's freeze pass: %+v", s.Move)
	}
	// The final export sends only the tables changed since the pre-copy.
	if man := mustRead(t, filepath.Join(c.dir, "transfer", "moves", uid, "move-p", "manifest.json")); !strings.Contains(man, `"delta":true`) {
		t.Errorf("the final export is not a delta of the pre-copy: %.600s", man)
	}
	if err := b.Converge(c.ctx, failImport{c.src}); err == nil {
		t.Fatal("the injected report failure was not returned")
	}
	for _, m := range []string{"imported.", "precopied."} {
		if l, _ := filepath.Glob(filepath.Join(nb.Dir, m+"*")); len(l) != 1 {
			t.Fatalf("%s* markers after the final import: %v (was it not over the pre-copy?)", m, l)
		}
	}
	l, _ := filepath.Glob(filepath.Join(nb.Dir, "imported.*"))
	if err := os.Remove(l[0]); err != nil {
		t.Fatal(err)
	}
	// (A final import touches only the tables of its delta — wp_posts
	// among them — the others are the pre-copy's, which nothing writes.)
	rootExec(t, c, b, nb.DB, `INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_modified, post_modified_gmt,
		post_title, post_name, post_content, post_status, post_type, post_excerpt, to_ping, pinged, post_content_filtered)
		VALUES (1, NOW(), UTC_TIMESTAMP(), NOW(), UTC_TIMESTAMP(), 'Stale From A Partial Import', 'stale', '', 'publish', 'post', '', '', '', '')`)
	s = c.runMove(host, site.MoveDone, "alpha", "beta")
	t.Logf("freeze window (FreezeStarted → Switched): %s", s.Move.FreezeWindow(time.Now()))
	if s.Status.Shard != "beta" || s.Status.Phase != site.PhaseReady {
		t.Fatalf("after the move: %+v", s.Status)
	}
	if l, _ := filepath.Glob(filepath.Join(nb.Dir, "precopied.*")); len(l) != 1 {
		t.Errorf("the redone final import was not over the pre-copy: markers %v", l)
	}
	for _, q := range []struct{ what, query, want string }{
		{"the post of before", "SELECT COUNT(*) FROM " + nb.DB + ".wp_posts WHERE post_title = 'A Post That Moved'", "1"},
		{"the post written during the pre-copy", "SELECT COUNT(*) FROM " + nb.DB + ".wp_posts WHERE post_title = 'Written During The Pre-Copy'", "1"},
		{"the interrupted import's row", "SELECT COUNT(*) FROM " + nb.DB + ".wp_posts WHERE post_title = 'Stale From A Partial Import'", "0"},
		{"the column added", "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '" + nb.DB + "' AND TABLE_NAME = 'wp_links' AND COLUMN_NAME = 'moved_col'", "1"},
		{"the table dropped", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + nb.DB + "' AND TABLE_NAME = 'wp_termmeta'", "0"},
		{"the table made", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + nb.DB + "' AND TABLE_NAME = 'wp_plugin_made'", "1"},
	} {
		if v, err := b.DB().QueryString(c.ctx, q.query); err != nil || v != q.want {
			t.Errorf("%s on beta: %q %v, want %s", q.what, v, err, q.want)
		}
	}
	c.routes()
	if code, _, body := c.request("GET", host, "/wp-content/uploads/2024/05/late.txt", nil, nil); code != 200 || body != "uploaded during the pre-copy\n" {
		t.Errorf("the upload of during the pre-copy on beta = %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(nb.Docroot, "wp-content", "uploads", "2024", "05", "hello.txt")); !os.IsNotExist(err) {
		t.Errorf("the upload deleted after the pre-copy is on beta: %v", err)
	}
	if code, _, body := c.request("GET", host, "/", nil, nil); code != 200 || !strings.Contains(body, "Written During The Pre-Copy") {
		t.Fatalf("GET / on beta = %d\n%.300s", code, body)
	}
	if !c.dashboard(host, cookies) {
		t.Error("alpha's login cookies do not reach beta's dashboard")
	}
	gone(t, c, a, uid)
	if left := transferFiles(t, c); len(left) != 0 {
		t.Errorf("transfer objects left: %v", left)
	}
}
