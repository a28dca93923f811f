package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge/purge"
)

// WordPress purges the edge through the aipress-cache mu-plugin when the
// block editor publishes a post, a term is created or a site-wide option
// changes; the edge authenticates those purges by the site's key; the CLI
// purges through the API.
func testPurge(t *testing.T, p *platform) {
	const domain = "news.localhost"
	c := p.createSite(domain, "Purge News")
	vis := p.client(domain)

	// With the page cache wired, the home page is a HIT on the second view.
	logMark := len(p.log.String())
	_, hdr, _ := vis.do("GET", "/", nil)
	cached := hdr.Get("X-Cache") != ""
	if cached {
		if _, hdr, _ = vis.do("GET", "/", nil); hdr.Get("X-Cache") != "HIT" {
			t.Fatalf("second anonymous GET / has X-Cache %q, want HIT", hdr.Get("X-Cache"))
		}
	} else {
		t.Log("no X-Cache header: no page cache is wired; checking the purge requests only")
	}
	// The mu-plugin tags the home page. The page cache indexes the tags and
	// strips the header, so with a cache the tag is checked by purging it.
	if cached {
		if tags := hdr.Get(purge.TagsHeader); tags != "" {
			t.Errorf("the page cache let %s through: %q", purge.TagsHeader, tags)
		}
		out, err := p.cli("site", "purge", domain, "--tag", "home", "-o", "json")
		if err != nil || !strings.Contains(out, `"purged": 1`) {
			t.Fatalf("purging tag home of a cached home page: %v %s", err, out)
		}
		if _, hdr, _ = vis.do("GET", "/", nil); hdr.Get("X-Cache") != "MISS" {
			t.Fatalf("GET / after purging tag home has X-Cache %q, want MISS", hdr.Get("X-Cache"))
		}
		vis.do("GET", "/", nil)
	} else if tags := hdr.Get(purge.TagsHeader); !strings.HasPrefix(tags, "home, post-") {
		t.Errorf("GET / %s = %q, want home, post-…", purge.TagsHeader, tags)
	}

	// Visitors never purge (a site's first view adds default options).
	vis.get("/hello-world/")
	vis.get("/feed/")
	if strings.Contains(p.log.String()[logMark:], "site="+domain+" ") {
		t.Errorf("anonymous views purged:\n%s", p.log.String()[logMark:])
	}

	admin := login(t, p, domain, c)
	code, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code != 200 || len(nonce) < 8 || len(nonce) > 20 {
		t.Fatalf("rest-nonce = %d %.200q", code, nonce)
	}

	// Publish a post as the block editor does.
	logMark = len(p.log.String())
	title := "Fresh off the press " + fmt.Sprint(time.Now().UnixNano())
	code, body := admin.doJSON("POST", "/wp-json/wp/v2/posts", nonce, map[string]any{
		"title":   title,
		"content": "<!-- wp:paragraph --><p>Purged at once.</p><!-- /wp:paragraph -->",
		"status":  "publish",
	})
	var post struct {
		ID     int    `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &post); code != 201 || err != nil || post.Status != "publish" {
		t.Fatalf("POST /wp-json/wp/v2/posts = %d %v\n%.400s", code, err, body)
	}
	// The plugin purged before the REST response completed: the edge has
	// logged the authenticated purge already.
	line := purgeLogLine(t, p, logMark, domain, "post-"+fmt.Sprint(post.ID))
	for _, want := range []string{"home", "feed", "archive", "term-"} {
		if !strings.Contains(line, want) {
			t.Errorf("purge log line lacks %q: %s", want, line)
		}
	}
	if cached {
		code, hdr, body := vis.do("GET", "/", nil)
		if code != 200 || !strings.Contains(body, title) {
			t.Errorf("GET / right after publishing (X-Cache %q) does not show the new post", hdr.Get("X-Cache"))
		}
	} else if code, body := vis.get("/"); code != 200 || !strings.Contains(body, title) {
		t.Errorf("GET / = %d does not show the new post", code)
	}

	// An approved comment purges its post's pages.
	logMark = len(p.log.String())
	if code, body = admin.doJSON("POST", "/wp-json/wp/v2/comments", nonce, map[string]any{"post": post.ID, "content": "First!"}); code != 201 {
		t.Fatalf("POST /wp-json/wp/v2/comments = %d\n%.400s", code, body)
	}
	purgeLogLine(t, p, logMark, domain, fmt.Sprintf("tag_list=post-%d,feed", post.ID))

	// A new category purges its term tag; a new site title purges everything.
	logMark = len(p.log.String())
	code, body = admin.doJSON("POST", "/wp-json/wp/v2/categories", nonce, map[string]any{"name": "Purge Topics"})
	var term struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &term); code != 201 || err != nil {
		t.Fatalf("POST /wp-json/wp/v2/categories = %d %v\n%.400s", code, err, body)
	}
	purgeLogLine(t, p, logMark, domain, "term-"+fmt.Sprint(term.ID))
	logMark = len(p.log.String())
	if code, body = admin.doJSON("POST", "/wp-json/wp/v2/settings", nonce, map[string]any{"title": "Purge News Renamed"}); code != 200 {
		t.Fatalf("POST /wp-json/wp/v2/settings = %d\n%.400s", code, body)
	}
	purgeLogLine(t, p, logMark, domain, "all=true")

	// The endpoint itself: only the site's key, only by POST.
	secret, err := os.ReadFile(filepath.Join(p.dataDir, "purge-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(p.dataDir, "purge-secret")); st == nil || st.Mode().Perm() != 0o600 || len(secret) != 32 {
		t.Errorf("purge-secret: %v, %d bytes", st, len(secret))
	}
	for _, tc := range []struct {
		name, method, key string
		want              int
	}{
		{"wrong key", "POST", strings.Repeat("ab", 32), 403},
		{"no key", "POST", "", 403},
		{"another site's key", "POST", purge.Key(secret, "blog.localhost"), 403},
		{"GET with the key", "GET", purge.Key(secret, domain), 403},
		{"right key", "POST", purge.Key(secret, domain), 200},
	} {
		code, body := rawPurge(t, p, tc.method, domain, tc.key, `{"tags":["home"]}`)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
		if code == 403 && strings.Contains(strings.ToLower(body), "key") {
			t.Errorf("%s: the refusal explains itself: %s", tc.name, body)
		}
	}
	if !p.waitLog(0, "edge: purge refused") {
		t.Error("refused purges are not logged")
	}

	// The CLI purges through the API.
	out, err := p.cli("site", "purge", domain, "--tag", "home", "-o", "json")
	var resp struct {
		Purged *int `json:"purged"`
	}
	if err != nil || json.Unmarshal([]byte(out), &resp) != nil || resp.Purged == nil {
		t.Fatalf("site purge --tag home: %v\n%s", err, out)
	}
	if out, err := p.cli("site", "purge", domain, "--page", "/"); err != nil || !strings.HasPrefix(out, "purged http://"+domain+":") {
		t.Fatalf("site purge --page /: %v\n%s", err, out)
	}
	if cached {
		vis.get("/")
		if _, hdr, _ := vis.do("GET", "/", nil); hdr.Get("X-Cache") != "HIT" {
			t.Fatalf("GET / not cached again: X-Cache %q", hdr.Get("X-Cache"))
		}
		if out, err := p.cli("site", "purge", domain, "-o", "json"); err != nil || !strings.Contains(out, `"purged"`) || strings.Contains(out, `"purged": 0`) {
			t.Errorf("whole-site purge of a cached site: %v %s", err, out)
		}
		if _, hdr, _ := vis.do("GET", "/", nil); hdr.Get("X-Cache") == "HIT" {
			t.Error("GET / still a HIT after a whole-site purge")
		}
	}
}

// login logs in as the site's admin.
func login(t *testing.T, p *platform, domain string, c created) *client {
	t.Helper()
	admin := p.client(domain)
	admin.get("/wp-login.php") // sets the test cookie
	code, hdr, body := admin.do("POST", "/wp-login.php", url.Values{
		"log": {c.AdminUser}, "pwd": {c.AdminPassword}, "wp-submit": {"Log In"},
		"redirect_to": {"/wp-admin/"}, "testcookie": {"1"},
	})
	if code != 302 || !hasCookie(hdr["Set-Cookie"], "wordpress_logged_in_") {
		t.Fatalf("login = %d, cookies %v\n%.400s", code, hdr["Set-Cookie"], body)
	}
	return admin
}

// doJSON sends a JSON body with the REST nonce and the client's cookies.
func (c *client) doJSON(method, path, nonce string, body any) (int, string) {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = c.host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-WP-Nonce", nonce)
	for _, ck := range c.http.Jar.Cookies(&url.URL{Scheme: "http", Host: c.host, Path: req.URL.Path}) {
		req.AddCookie(ck)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// rawPurge posts body to the edge's purge endpoint for host.
func rawPurge(t *testing.T, p *platform, method, host, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.httpAddr+purge.Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if key != "" {
		req.Header.Set(purge.KeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// purgeLogLine returns the first "edge: purge" line for site in the
// platform log after offset from, waiting up to wait (0: it must be there).
func purgeLogLine(t *testing.T, p *platform, from int, site, want string) string {
	t.Helper()
	// The edge logs a purge before it answers the plugin, but its log reaches
	// this process through a pipe that another goroutine copies: wait for it
	// (bounded), and for the line that carries what this step expects, not an
	// earlier purge's line that arrived late.
	var found string
	if !p.waitLogFunc(from, func(line string) bool {
		if strings.Contains(line, `msg="edge: purge"`) && strings.Contains(line, "site="+site+" ") && strings.Contains(line, want) {
			found = line
			return true
		}
		return false
	}) {
		t.Fatalf("no authenticated purge for %s with %q reached the edge; log since:\n%s", site, want, p.log.String()[from:])
	}
	return found
}
