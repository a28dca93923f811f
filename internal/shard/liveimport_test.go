package shard_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/liveimport"
	"github.com/aipress/aipress/internal/liveimport/sshtest"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"golang.org/x/crypto/ssh"
)

// liveSource is a WordPress site served by an in-test SSH server: the
// Debian wordpress package's files with site uid's wp-content (copied,
// links followed) and a wp-config.php naming a MariaDB user that may
// read the site's database over TCP.
type liveSource struct {
	srv     *sshtest.Server
	docroot string
	src     liveimport.Source
	hostKey func() liveimport.Config
}

const (
	liveSSHUser     = "deploy"
	liveSSHPassword = "correct horse battery staple"
	liveDBUser      = "live_reader"
	liveDBPassword  = `p"a's\word`
)

func newLiveSource(t *testing.T, c *cluster, sh *shard.Shard, uid string) *liveSource {
	t.Helper()
	n := sh.NamesFor(uid)
	docroot := filepath.Join(t.TempDir(), "public_html")
	if out, err := exec.Command("cp", "-a", "/usr/share/wordpress", docroot).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	for _, p := range []string{"wp-content", "wp-config.php", ".htaccess"} {
		if err := os.RemoveAll(filepath.Join(docroot, p)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-rL", filepath.Join(n.Docroot, "wp-content"), filepath.Join(docroot, "wp-content")).CombinedOutput(); err != nil {
		t.Fatalf("cp wp-content: %v: %s", err, out)
	}
	// Links: one to a file inside the docroot (followed), two leading out
	// of it (not followed).
	up := filepath.Join(docroot, "wp-content", "uploads")
	for _, l := range [][2]string{{"2024/05/hello.txt", filepath.Join(up, "alias.txt")}, {"/etc", filepath.Join(up, "etc")}, {"/etc/passwd", filepath.Join(up, "passwd.txt")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	rootExec(t, c, sh, n.DB, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", liveDBUser, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(liveDBPassword)))
	t.Cleanup(func() { rootExec(t, c, sh, "mysql", fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", liveDBUser)) })
	rootExec(t, c, sh, n.DB, fmt.Sprintf("GRANT SELECT, LOCK TABLES, SHOW VIEW, TRIGGER ON `%s`.* TO '%s'@'127.0.0.1'", n.DB, liveDBUser))
	php := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace
	conf := fmt.Sprintf("<?php\ndefine( 'DB_NAME', '%s' );\ndefine( 'DB_USER', '%s' );\ndefine( 'DB_PASSWORD', '%s' );\ndefine( 'DB_HOST', '127.0.0.1:%d' );\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n",
		n.DB, liveDBUser, php(liveDBPassword), sh.DB().Port())
	if err := os.WriteFile(filepath.Join(docroot, "wp-config.php"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	srv, err := sshtest.Start(sshtest.Config{User: liveSSHUser, Password: liveSSHPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ls := &liveSource{srv: srv, docroot: docroot, src: liveimport.Source{User: liveSSHUser, Host: "127.0.0.1", Port: srv.Port(), Path: docroot}}
	ls.hostKey = func() liveimport.Config {
		hk, err := liveimport.HostKeyFingerprint(ssh.FingerprintSHA256(srv.HostKey))
		if err != nil {
			t.Fatal(err)
		}
		return liveimport.Config{Password: liveSSHPassword, HostKey: hk}
	}
	return ls
}

// pull pulls ls into a file (since: the previous listing, for a delta).
func (ls *liveSource) pull(t *testing.T, ctx context.Context, db liveimport.DB, since *liveimport.Listing) (string, *liveimport.Pulled) {
	t.Helper()
	conn, err := liveimport.Dial(ctx, ls.src, ls.hostKey())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	file := filepath.Join(t.TempDir(), "live.tar.gz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := conn.Pull(ctx, f, liveimport.PullOptions{DB: db, Since: since, Scratch: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return file, p
}

// TestLiveImport: a site served by an SSH server started here (SFTP for
// the files, an exec channel running the real mariadb-dump against the
// test MariaDB for the database) is pulled and imported under a new
// domain, and serves its content there; links leading out of the
// docroot are not followed; a wrong host key and a wrong password are
// refused with a clear error; the database through a tunnelled direct
// connection gives the same site.
func TestLiveImport(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	const host, uid = "live-source.localhost", "uid-live-source"
	c.create(host, uid, "alpha", "Live Source", adminFor(t))
	addContent(t, c, sh, uid)
	ls := newLiveSource(t, c, sh, uid)
	gone := filepath.Join(ls.docroot, "wp-content", "uploads", "2024", "05", "gone.txt")
	os.WriteFile(gone, []byte("deleted on the source before the re-sync\n"), 0o644)
	os.MkdirAll(filepath.Join(ls.docroot, "wp-content", "uploads", "evil"), 0o755)
	os.WriteFile(filepath.Join(ls.docroot, "wp-content", "uploads", "evil", "x.txt"), []byte("x\n"), 0o644)

	// Refusals first: nothing is read from a server not trusted.
	wrongKey := ls.hostKey()
	wrongKey.HostKey, _ = liveimport.HostKeyFingerprint("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if _, err := liveimport.Dial(c.ctx, ls.src, wrongKey); !errors.Is(err, liveimport.ErrHostKey) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(ls.srv.HostKey)) {
		t.Errorf("a wrong host key: %v", err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", ls.srv.Port(), ssh.MarshalAuthorizedKey(otherKey(t)))), 0o600)
	khcb, err := liveimport.HostKeyFromKnownHosts(kh)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey.HostKey = khcb
	if _, err := liveimport.Dial(c.ctx, ls.src, wrongKey); !errors.Is(err, liveimport.ErrHostKey) || !strings.Contains(err.Error(), "man-in-the-middle") {
		t.Errorf("a known_hosts with another key: %v", err)
	}
	wrongPW := ls.hostKey()
	wrongPW.Password = "wrong"
	if _, err := liveimport.Dial(c.ctx, ls.src, wrongPW); !errors.Is(err, liveimport.ErrAuth) {
		t.Errorf("a wrong password: %v", err)
	}
	os.WriteFile(kh, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", ls.srv.Port(), ssh.MarshalAuthorizedKey(ls.srv.HostKey))), 0o600)
	if khcb, err = liveimport.HostKeyFromKnownHosts(kh); err != nil {
		t.Fatal(err)
	}
	good := ls.hostKey()
	good.HostKey = khcb
	conn, err := liveimport.Dial(c.ctx, ls.src, good)
	if err != nil {
		t.Fatalf("with the right known_hosts: %v", err)
	}
	conn.Close()

	archive, pulled := ls.pull(t, c.ctx, liveimport.DB{}, nil)
	if !slices.ContainsFunc(pulled.Skipped, func(s string) bool { return strings.HasPrefix(s, "wp-content/uploads/etc ") }) ||
		!slices.ContainsFunc(pulled.Skipped, func(s string) bool { return strings.HasPrefix(s, "wp-content/uploads/passwd.txt ") }) {
		t.Errorf("the links out of the docroot are not reported skipped: %q", pulled.Skipped)
	}
	for _, f := range pulled.Listing.Files {
		if strings.HasPrefix(f.Path, "wp-content/uploads/etc/") || f.Path == "wp-content/uploads/passwd.txt" {
			t.Errorf("pulled %s: a link out of the docroot was followed", f.Path)
		}
	}
	if out, err := exec.Command("tar", "-tzf", archive).CombinedOutput(); err != nil || strings.Contains(string(out), "passwd") || !strings.Contains(string(out), "wp-includes/version.php\n") {
		t.Errorf("tar -tzf: %v\n%s", err, out)
	}

	const dest, destUID = "live-dest.localhost", "uid-live-dest"
	rep, err := sh.ImportSite(c.ctx, c.importTarget(dest, destUID, "alpha"), shard.ImportRequest{Archive: archive})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OldURL != "http://"+host+":"+c.port || rep.Layout.Docroot != "." || rep.WordPressVersion == "" {
		t.Errorf("report %+v %+v", rep.Inspection, rep.Layout)
	}
	c.convergeReady(dest, "alpha")
	c.check(dest, "/a-post-that-moved/", 200, "Carried across shards.")
	c.check(dest, "/wp-content/uploads/2024/05/hello.txt", 200, "uploaded before the move")
	c.check(dest, "/wp-content/uploads/alias.txt", 200, "uploaded before the move")
	nd := sh.NamesFor(destUID)
	for _, p := range []string{"etc", "passwd.txt"} {
		if _, err := os.Lstat(filepath.Join(nd.Docroot, "wp-content", "uploads", p)); err == nil {
			t.Errorf("wp-content/uploads/%s made on the new site", p)
		}
	}
	if v := queryList(t, c, sh, nd.DB, "SELECT option_value FROM wp_options WHERE option_name = 'home'"); !slices.Equal(v, []string{"http://" + dest + ":" + c.port}) {
		t.Errorf("home %q", v)
	}

	c.check(dest, "/wp-content/uploads/2024/05/gone.txt", 200, "deleted on the source")

	// Re-sync: a changed file, a deleted one and a new post reach the
	// site; nothing else is sent. A link the site's user planted where the
	// source has a directory is replaced, not followed.
	outside := t.TempDir()
	os.RemoveAll(filepath.Join(nd.Docroot, "wp-content", "uploads", "evil"))
	if err := os.Symlink(outside, filepath.Join(nd.Docroot, "wp-content", "uploads", "evil")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ls.docroot, "wp-content", "uploads", "evil", "x.txt"), []byte("changed x\n"), 0o644)
	os.WriteFile(filepath.Join(ls.docroot, "wp-content", "uploads", "2024", "05", "hello.txt"), []byte("changed on the source after the first pull\n"), 0o644)
	os.Remove(gone)
	rootExec(t, c, sh, sh.NamesFor(uid).DB, `INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_modified, post_modified_gmt,
		post_title, post_name, post_content, post_status, post_type, post_excerpt, to_ping, pinged, post_content_filtered)
		VALUES (1, NOW(), UTC_TIMESTAMP(), NOW(), UTC_TIMESTAMP(), 'Written Later', 'written-later', 'After the first pull.', 'publish', 'post', '', '', '', '')`)
	delta, dp := ls.pull(t, c.ctx, liveimport.DB{}, pulled.Listing)
	if dp.Files != 3 || !slices.Equal(dp.Deleted, []string{"wp-content/uploads/2024/05/gone.txt"}) || !dp.Delta {
		t.Errorf("delta: %d files, deleted %q (want hello.txt, the link to it and evil/x.txt, and gone.txt)", dp.Files, dp.Deleted)
	}
	rr, err := sh.ResyncSite(c.ctx, c.get(dest), delta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Files != 3 || len(rr.Deleted) != 1 || rr.Posts == 0 {
		t.Errorf("re-sync report %+v", rr)
	}
	c.check(dest, "/written-later/", 200, "After the first pull.")
	c.check(dest, "/wp-content/uploads/2024/05/hello.txt", 200, "changed on the source")
	c.check(dest, "/wp-content/uploads/2024/05/gone.txt", 404, "")
	c.check(dest, "/wp-content/uploads/evil/x.txt", 200, "changed x")
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the re-sync wrote through the planted link: %v", ents)
	}
	if v := queryList(t, c, sh, nd.DB, "SELECT option_value FROM wp_options WHERE option_name = 'home'"); !slices.Equal(v, []string{"http://" + dest + ":" + c.port}) {
		t.Errorf("home after the re-sync %q", v)
	}

	// A re-sync whose dump the sandboxed loader refuses midway (a GRANT
	// after the tables) leaves the site as it was: database and files.
	var dump bytes.Buffer
	if err := sh.DB().Dump(c.ctx, sh.NamesFor(uid).DB, &dump); err != nil {
		t.Fatal(err)
	}
	bad := strings.ReplaceAll(dump.String(), "After the first pull.", "Should not stay.") + "GRANT ALL PRIVILEGES ON *.* TO 'intruder'@'%';\n"
	var ar bytes.Buffer
	zw := gzip.NewWriter(&ar)
	tw := tar.NewWriter(zw)
	for _, e := range [][2]string{{"database.sql", bad}, {"wp-content/uploads/rollback.txt", "must not land\n"},
		{liveimport.ListingName, `{"format":1,"source":"test","delta":true,"listing":{"files":[]}}`}} {
		tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	zw.Close()
	refused := filepath.Join(t.TempDir(), "refused.tar.gz")
	os.WriteFile(refused, ar.Bytes(), 0o600)
	if _, err := sh.ResyncSite(c.ctx, c.get(dest), refused, nil); err == nil || !strings.Contains(err.Error(), "as it was") {
		t.Errorf("a refused re-sync: %v", err)
	}
	if v := queryList(t, c, sh, nd.DB, "SELECT post_content FROM wp_posts WHERE post_name = 'written-later'"); !slices.Equal(v, []string{"After the first pull."}) {
		t.Errorf("the post after a refused re-sync: %q", v)
	}
	c.check(dest, "/wp-content/uploads/rollback.txt", 404, "")
	if v := queryList(t, c, sh, nd.DB, "SELECT option_value FROM wp_options WHERE option_name = 'home'"); !slices.Equal(v, []string{"http://" + dest + ":" + c.port}) {
		t.Errorf("home after a refused re-sync %q", v)
	}

	// A pull that fails midway (the dump refused on the server) says
	// why and leaves nothing in its scratch directory.
	ls.srv.SetExec(func(string) error { return errors.New("mysqldump is not allowed here") })
	conn, err = liveimport.Dial(c.ctx, ls.src, ls.hostKey())
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	if _, err := conn.Pull(c.ctx, io.Discard, liveimport.PullOptions{Scratch: scratch}); err == nil || !strings.Contains(err.Error(), "mysqldump is not allowed here") {
		t.Errorf("a refused dump: %v", err)
	}
	conn.Close()
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("a failed pull left %v", ents)
	}
	ls.srv.SetExec(nil)

	// The database through a direct connection, tunnelled through SSH.
	archive2, _ := ls.pull(t, c.ctx, liveimport.DB{DSN: fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", liveDBUser, urlEscape(liveDBPassword), sh.DB().Port(), sh.NamesFor(uid).DB)}, nil)
	const dest2, dest2UID = "live-direct.localhost", "uid-live-direct"
	if _, err := sh.ImportSite(c.ctx, c.importTarget(dest2, dest2UID, "alpha"), shard.ImportRequest{Archive: archive2}); err != nil {
		t.Fatal(err)
	}
	c.convergeReady(dest2, "alpha")
	c.check(dest2, "/a-post-that-moved/", 200, "Carried across shards.")
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteByte(r)
		} else {
			fmt.Fprintf(&b, "%%%02X", r)
		}
	}
	return b.String()
}

func otherKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	srv, err := sshtest.Start(sshtest.Config{User: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	return srv.HostKey
}

// TestWriteFreeze: spec.write_freeze (the source's side of a live
// import's cut-over) takes the site's database writes away while it
// keeps serving, survives further convergence passes, and gives them back
// once cleared; the shard reports it in the WritesFrozen condition.
func TestWriteFreeze(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	const host, uid = "freeze.localhost", "uid-freeze"
	c.create(host, uid, "alpha", "Freeze", adminFor(t))
	c.convergeReady(host, "alpha")
	n := sh.NamesFor(uid)
	set := func(on bool) {
		t.Helper()
		if _, err := c.st.UpdateSite(c.ctx, host, func(s *site.Site) error { s.Spec.WriteFreeze = on; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (bool, string) {
		t.Helper()
		frozen, err := sh.DB().WritesFrozen(c.ctx, n.DB, n.DBUser)
		if err != nil {
			t.Fatal(err)
		}
		cond := c.get(host).Status.Condition(site.CondWritesFrozen)
		if cond == nil {
			return frozen, ""
		}
		return frozen, cond.Status
	}
	if frozen, cond := state(); frozen || cond != "" {
		t.Fatalf("a new site: frozen %v, condition %q", frozen, cond)
	}
	set(true)
	c.convergeReady(host, "alpha")
	if frozen, cond := state(); !frozen || cond != "True" {
		t.Fatalf("write_freeze set: frozen %v, condition %q", frozen, cond)
	}
	c.check(host, "/", 200, "Freeze")
	// Another full pass (a new generation) keeps it frozen.
	if _, err := c.st.UpdateSite(c.ctx, host, func(s *site.Site) error { s.Spec.Title = "Freeze 2"; return nil }); err != nil {
		t.Fatal(err)
	}
	c.convergeReady(host, "alpha")
	if frozen, cond := state(); !frozen || cond != "True" {
		t.Fatalf("after another pass: frozen %v, condition %q", frozen, cond)
	}
	set(false)
	c.convergeReady(host, "alpha")
	if frozen, cond := state(); frozen || cond != "False" {
		t.Fatalf("write_freeze cleared: frozen %v, condition %q", frozen, cond)
	}
}
