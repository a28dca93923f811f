package e2e

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// doRaw sends a request with any body and headers, with the client's
// cookies, as the browser's JavaScript would.
// The WAF blocks classic attacks on a real site (block mode, paranoia 1,
// the defaults) and lets WordPress's own flows through.
func testWAF(t *testing.T, p *platform) {
	c := p.createSite("waf.localhost", "WAF Site")
	vis := p.client("waf.localhost")
	vis.waitStatus("/", 200, 30*time.Second)

	attacks := []struct {
		name   string
		method string
		path   string
		hdr    http.Header
		body   string
	}{
		{"sqli", "GET", "/?id=" + url.QueryEscape("1' OR '1'='1' --"), nil, ""},
		{"path traversal", "GET", "/?file=" + url.QueryEscape("../../etc/passwd"), nil, ""},
		{"xss query", "GET", "/?s=" + url.QueryEscape("<script>alert(1)</script>"), nil, ""},
		{"xss form", "POST", "/wp-comments-post.php",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			url.Values{"comment": {"<script>alert(1)</script>"}, "author": {"eve"}, "email": {"eve@example.com"}, "comment_post_ID": {"1"}}.Encode()},
		{"command injection", "GET", "/?host=" + url.QueryEscape("example.com;cat /etc/passwd"), nil, ""},
		// The WAF guards PHP: a page answered from the cache runs no code, so
		// the header attack asks for a page that is not cached.
		{"log4shell", "GET", "/?p=1", http.Header{"X-Api-Version": {"${jndi:ldap://x}"}}, ""},
	}
	for _, a := range attacks {
		code, hdr, body := vis.doRaw(a.method, a.path, a.hdr, []byte(a.body))
		if x := hdr.Get("X-Cache"); x == "HIT" || x == "STALE" {
			t.Errorf("%s: answered from the cache (%s); the test must reach PHP", a.name, x)
		}
		id := hdr.Get("X-Request-Id")
		if code != 403 || id == "" || !strings.Contains(body, id) || !strings.Contains(body, "web application firewall") {
			t.Errorf("%s: %d (request id %q)\n%.400s", a.name, code, id, body)
		}
	}
	// The blocked comment was not posted.
	if _, body := vis.get("/hello-world/"); strings.Contains(body, "alert(1)") {
		t.Error("the blocked comment reached WordPress")
	}

	// Logging in.
	admin := p.client("waf.localhost")
	admin.get("/wp-login.php")
	code, hdr, body := admin.do("POST", "/wp-login.php", url.Values{
		"log": {c.AdminUser}, "pwd": {c.AdminPassword}, "wp-submit": {"Log In"},
		"redirect_to": {"http://waf.localhost/wp-admin/"}, "testcookie": {"1"},
	})
	if code != 302 || !hasCookie(hdr["Set-Cookie"], "wordpress_logged_in_") {
		t.Fatalf("login = %d\n%.400s", code, body)
	}
	dash := admin.waitStatus("/wp-admin/", 200, 10*time.Second)

	// A REST nonce, as the block editor gets it.
	code, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code != 200 || !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(nonce) {
		t.Fatalf("rest-nonce = %d %q", code, nonce)
	}
	rest := http.Header{"X-Wp-Nonce": {nonce}}

	// Publishing a post as the block editor does.
	content := `<!-- wp:heading {"level":2} --><h2 class="wp-block-heading">Queries, <em>explained</em></h2><!-- /wp:heading -->` +
		`<!-- wp:paragraph --><p>Hello <strong>world</strong> & "quotes" 'single'</p><!-- /wp:paragraph -->` +
		`<!-- wp:code --><pre class="wp-block-code"><code>SELECT * FROM wp_posts WHERE post_status = 'publish' OR 1=1; -- comment</code></pre><!-- /wp:code -->`
	post, _ := json.Marshal(map[string]string{"title": "WAF & 'friends'", "content": content, "status": "publish"})
	code, _, body = admin.doRaw("POST", "/wp-json/wp/v2/posts", withHeader(rest, "Content-Type", "application/json"), post)
	if code != 201 {
		t.Fatalf("POST /wp-json/wp/v2/posts = %d\n%.600s", code, body)
	}
	var created struct {
		Link string `json:"link"`
	}
	json.Unmarshal([]byte(body), &created)
	if u, err := url.Parse(created.Link); err != nil || u.Path == "" {
		t.Errorf("post link %q", created.Link)
	} else if code, page := vis.get(u.Path); code != 200 || !strings.Contains(page, "SELECT * FROM wp_posts") {
		t.Errorf("GET %s = %d\n%.300s", u.Path, code, page)
	}

	// Uploading media as the block editor does: the file is the body.
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.RGBA{200, 30, 30, 255})
	}
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, img)
	mediaHdr := withHeader(rest, "Content-Type", "image/png")
	mediaHdr.Set("Content-Disposition", "attachment; filename=x.png")
	if code, _, body := admin.doRaw("POST", "/wp-json/wp/v2/media", mediaHdr, pngBuf.Bytes()); code != 201 {
		t.Errorf("POST /wp-json/wp/v2/media = %d\n%.600s", code, body)
	}

	// The heartbeat with an autosave of the same content.
	if m := regexp.MustCompile(`"nonce":"([0-9a-f]{10})"`).FindStringSubmatch(dash); m != nil {
		code, _, body := admin.do("POST", "/wp-admin/admin-ajax.php", url.Values{
			"action": {"heartbeat"}, "_nonce": {m[1]}, "screen_id": {"post"}, "has_focus": {"true"}, "interval": {"60"},
			"data[wp_autosave][post_id]": {"1"}, "data[wp_autosave][post_title]": {"It's a 'title'"},
			"data[wp_autosave][content]": {content},
		})
		if code != 200 {
			t.Errorf("heartbeat = %d\n%.300s", code, body)
		}
	} else {
		t.Error("no heartbeat nonce on the dashboard")
	}

	// A visitor's comment.
	code, _, body = p.client("waf.localhost").do("POST", "/wp-comments-post.php", url.Values{
		"comment": {"Great post! I'd like to read more about this."}, "author": {"Ann O'Neil"},
		"email": {"ann@example.com"}, "url": {"https://ann.example.org/"}, "comment_post_ID": {"1"},
		"comment_parent": {"0"}, "submit": {"Post Comment"},
	})
	if code != 302 {
		t.Errorf("comment = %d\n%.400s", code, body)
	}
}

func withHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}
