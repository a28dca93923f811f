package shard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// loginAs posts user's password to host's wp-login.php through the edge
// and reports whether WordPress signed the user in.
func (c *cluster) loginAs(host, user, password string) bool {
	c.t.Helper()
	hdr := http.Header{"Cookie": {"wordpress_test_cookie=WP%20Cookie%20check"}, "Content-Type": {"application/x-www-form-urlencoded"}}
	form := url.Values{"log": {user}, "pwd": {password}, "wp-submit": {"Log In"}, "redirect_to": {"/wp-admin/"}, "testcookie": {"1"}}
	code, rh, _ := c.request("POST", host, "/wp-login.php", strings.NewReader(form.Encode()), hdr)
	for _, ck := range (&http.Response{Header: rh}).Cookies() {
		if strings.HasPrefix(ck.Name, "wordpress_logged_in_") && ck.Value != "" && ck.Value != "deleted" {
			return code == 302
		}
	}
	return false
}

// TestTemplateClone: once the shard's template database is built, new
// sites are clones of it, each with its own admin (who signs in with their
// own password and no other), URL, title, email and salts, and nothing
// of the template's placeholders or of another site; a clone a crash cut
// short is redone; a broken template falls back to the installer.
func TestTemplateClone(t *testing.T) {
	c := newCluster(t)
	sh := c.start("s1")
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	// The first site: no template yet, the installer; the template is
	// built beside.
	first := c.create("first.localhost", "uid-first", "s1", "First", site.Admin{User: "admin", Email: "f@example.com", PasswordHash: hash("first-pw")})
	if p := first.Status.Provision; p == nil || p.Method != "installer" || len(p.Steps) == 0 {
		t.Fatalf("first site's provision record: %+v", p)
	}
	var tpl string
	for deadline := time.Now().Add(3 * time.Minute); tpl == ""; time.Sleep(200 * time.Millisecond) {
		var err error
		if tpl, err = shard.DefaultTemplate(c.ctx, sh); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("template database not built; log:\n%s", c.logs.String())
		}
	}

	type want struct{ name, uid, title, user, email, pw string }
	sites := []want{
		{"alpha.localhost", "uid-alpha", "Alpha Blog", "alice", "alice@alpha.example", "alpha-secret-1"},
		{"beta.localhost", "uid-beta", "Beta Blog", "bob.b", "bob@beta.example", "beta-secret-2"},
	}
	// A clone a crash cut short (tables copied, not made the site's, no
	// aipress_installed): the retry starts over and converges.
	nb := sh.NamesFor("uid-beta")
	for _, q := range []string{
		"CREATE DATABASE `" + nb.DB + "`",
		"CREATE TABLE `" + nb.DB + "`.wp_options LIKE `" + tpl + "`.wp_options",
		"INSERT INTO `" + nb.DB + "`.wp_options SELECT * FROM `" + tpl + "`.wp_options",
	} {
		if err := sh.DB().Exec(c.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range sites {
		got := c.create(w.name, w.uid, "s1", w.title, site.Admin{User: w.user, Email: w.email, PasswordHash: hash(w.pw)})
		if p := got.Status.Provision; p == nil || p.Method != "template" {
			t.Fatalf("%s: provision record %+v, want the template", w.name, p)
		}
	}
	q := func(db, query string) string {
		t.Helper()
		v, err := sh.DB().QueryString(c.ctx, strings.ReplaceAll(query, "DB", "`"+db+"`"))
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return v
	}
	for i, w := range sites {
		other := sites[1-i]
		n := sh.NamesFor(w.uid)
		url := "http://" + w.name + ":" + c.port
		for opt, v := range map[string]string{"siteurl": url, "home": url, "blogname": w.title, "admin_email": w.email} {
			if got := q(n.DB, "SELECT option_value FROM DB.wp_options WHERE option_name = '"+opt+"'"); got != v {
				t.Errorf("%s: option %s = %q, want %q", w.name, opt, got, v)
			}
		}
		if got := q(n.DB, "SELECT COUNT(*) FROM DB.wp_options WHERE option_name = 'aipress_installed'"); got != "1" {
			t.Errorf("%s: aipress_installed rows = %s", w.name, got)
		}
		if got := q(n.DB, "SELECT COUNT(*) FROM DB.wp_posts WHERE post_title = 'Hello world!'"); got != "1" {
			t.Errorf("%s: first posts = %s, want 1 (a redone clone must not double them)", w.name, got)
		}
		// No placeholder, and nothing of the other site, anywhere.
		cols, err := sh.DB().TextColumns(c.ctx, n.DB)
		if err != nil {
			t.Fatal(err)
		}
		on := sh.NamesFor(other.uid)
		for _, col := range cols {
			table, column, _ := strings.Cut(col, ".")
			for _, bad := range []string{shard.TemplateToken, other.name, other.email, other.title, on.DB} {
				if v := q(n.DB, "SELECT COUNT(*) FROM DB.`"+table+"` WHERE `"+column+"` LIKE '%"+bad+"%'"); v != "0" {
					t.Errorf("%s: %s holds %q (%s rows)", w.name, col, bad, v)
				}
			}
		}
		// Its own admin signs in with their own password, not the other's.
		if !c.loginAs(w.name, w.user, w.pw) {
			t.Errorf("%s: %s cannot sign in with their password", w.name, w.user)
		}
		if c.loginAs(w.name, w.user, other.pw) {
			t.Errorf("%s: %s signs in with the other site's password", w.name, w.user)
		}
		if c.loginAs(w.name, shard.TemplateToken, "") {
			t.Errorf("%s: the template's admin signs in", w.name)
		}
		code, _, body := c.request("GET", w.name, "/", nil, nil)
		if code != 200 || !strings.Contains(body, w.title) || !strings.Contains(body, url) {
			t.Errorf("%s: GET / = %d, want its title and URL\n%.300s", w.name, code, body)
		}
	}
	// Own salts (wp-config.php) and own password hashes.
	na, nb2 := sh.NamesFor("uid-alpha"), sh.NamesFor("uid-beta")
	if a, b := mustRead(t, na.Docroot+"/wp-config.php"), mustRead(t, nb2.Docroot+"/wp-config.php"); saltsOf(a) == "" || saltsOf(a) == saltsOf(b) {
		t.Error("two cloned sites share their salts (or have none)")
	}
	if a, b := q(na.DB, "SELECT user_pass FROM DB.wp_users"), q(nb2.DB, "SELECT user_pass FROM DB.wp_users"); a == b {
		t.Error("two cloned sites share their admin's password hash")
	}

	// A broken template: the installer installs the site.
	if err := sh.DB().Exec(c.ctx, "DROP TABLE `"+tpl+"`.wp_users"); err != nil {
		t.Fatal(err)
	}
	got := c.create("gamma.localhost", "uid-gamma", "s1", "Gamma", site.Admin{User: "gina", Email: "g@example.com", PasswordHash: hash("gamma-pw")})
	if p := got.Status.Provision; p == nil || p.Method != "installer" {
		t.Fatalf("gamma: provision record %+v, want the installer", p)
	}
	if !c.loginAs("gamma.localhost", "gina", "gamma-pw") {
		t.Error("gamma: the installed site's admin cannot sign in")
	}
	c.deleteAll()
}

// saltsOf is the salt definitions of a wp-config.php.
func saltsOf(cfg string) string {
	var b strings.Builder
	for _, l := range strings.Split(cfg, "\n") {
		if strings.Contains(l, "_SALT'") || strings.Contains(l, "_KEY'") {
			b.WriteString(l)
		}
	}
	return b.String()
}
