package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// apiPost posts to the control plane's API with the admin token of
// client.json and decodes the JSON answer.
func (p *platform) apiPost(path string) (int, map[string]any) {
	p.t.Helper()
	var cfg struct{ URL, Token string }
	b, err := os.ReadFile(filepath.Join(p.dataDir, "client.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		p.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", cfg.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// A one-time link from POST /v1/sites/{name}/login-link, opened through
// the edge by a browser-like client, signs it into the site's wp-admin
// (the aipress-login mu-plugin, the site's key in its wp-config.php); the
// same link again, or on another site, is refused.
func testLoginLink(t *testing.T, p *platform) {
	const a, b = "login-a.localhost", "login-b.localhost"
	p.createSite(a, "Login A")
	p.createSite(b, "Login B")

	link := func(domain string) (pathQuery string, user string) {
		code, m := p.apiPost("/v1/sites/" + domain + "/login-link")
		if code != http.StatusOK {
			t.Fatalf("login-link %s: %d %v", domain, code, m)
		}
		u, err := url.Parse(m["url"].(string))
		if err != nil || u.Hostname() != domain || u.Query().Get("aipress_login") == "" {
			t.Fatalf("login-link %s: url %v", domain, m["url"])
		}
		return u.RequestURI(), m["user"].(string)
	}

	// Not signed in: wp-admin sends a browser to wp-login.php.
	anon := p.client(a)
	if code, hdr, _ := anon.do("GET", "/wp-admin/", nil); code != http.StatusFound || !strings.Contains(hdr.Get("Location"), "wp-login.php") {
		t.Fatalf("anonymous GET /wp-admin/: %d %q, want a redirect to wp-login.php", code, hdr.Get("Location"))
	}

	linkA, user := link(a)
	browser := p.client(a)
	code, hdr, body := browser.do("GET", linkA, nil)
	loc := hdr.Get("Location")
	if code != http.StatusFound || !strings.HasSuffix(loc, "/wp-admin/") || strings.Contains(loc, "aipress_login") {
		t.Fatalf("opening the link: %d Location %q, want a redirect to /wp-admin/ without the token; body %.300s", code, loc, body)
	}
	code, body = browser.get("/wp-admin/")
	if code != http.StatusOK || !strings.Contains(body, "<title>Dashboard") || !strings.Contains(body, "wp-admin-bar-my-account") {
		t.Fatalf("GET /wp-admin/ after the link: %d, want the dashboard signed in; body %.500s", code, body)
	}
	if !strings.Contains(body, user) {
		t.Errorf("the dashboard does not name the signed-in user %q", user)
	}

	// The same link again, from another browser: refused.
	again := p.client(a)
	code, _, body = again.do("GET", linkA, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Fatalf("the link a second time: %d %.300s, want 403 already used", code, body)
	}
	if code, _, _ := again.do("GET", "/wp-admin/", nil); code == http.StatusOK {
		t.Fatal("a replayed link signed a browser in")
	}

	// Site A's (fresh) link on site B's host: refused, and B's wp-admin
	// stays closed.
	linkA2, _ := link(a)
	other := p.client(b)
	code, _, body = other.do("GET", linkA2, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "not valid for this site") {
		t.Fatalf("site A's link on site B: %d %.300s, want 403", code, body)
	}
	if code, _, _ := other.do("GET", "/wp-admin/", nil); code == http.StatusOK {
		t.Fatal("site A's link signed a browser into site B")
	}
	// A tampered link: refused. The untouched one still works on A.
	tampered := strings.Replace(linkA2, "aipress_login=", "aipress_login=x", 1)
	if code, _, _ := p.client(a).do("GET", tampered, nil); code != http.StatusForbidden {
		t.Fatalf("a tampered link: %d, want 403", code)
	}
	if code, _, _ := p.client(a).do("GET", linkA2, nil); code != http.StatusFound {
		t.Fatalf("site A's second link on A after B refused it: %d, want 302", code)
	}
}
