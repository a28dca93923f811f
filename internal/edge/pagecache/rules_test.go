package pagecache

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

func testRoute() *edge.Route {
	return &edge.Route{Host: "blog.localhost", Site: "blog", State: edge.Serving,
		Options: edge.RouteOptions{CacheTTL: 5 * time.Minute}}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name, host, target string
		tls                bool
		want               string
	}{
		{"plain", "blog.localhost", "/", false, "http://blog.localhost/"},
		{"port kept", "blog.localhost:8080", "/", false, "http://blog.localhost:8080/"},
		{"host lower-cased", "BLOG.Localhost:8080", "/a/", false, "http://blog.localhost:8080/a/"},
		{"https", "blog.localhost", "/", true, "https://blog.localhost/"},
		{"query sorted", "blog.localhost", "/?b=2&a=1", false, "http://blog.localhost/?a=1&b=2"},
		{"values of one key keep their order", "blog.localhost", "/?a=2&a=1", false, "http://blog.localhost/?a=2&a=1"},
		{"keys sorted, values in order", "blog.localhost", "/?b=1&a=2&a=1", false, "http://blog.localhost/?a=2&a=1&b=1"},
		{"tracking dropped", "blog.localhost", "/p/?utm_source=x&UTM_Medium=y&fbclid=1&gclid=2&dclid=3&msclkid=4&mc_cid=5&mc_eid=6&_ga=7&_gl=8&yclid=9&igshid=10&ref_src=11&page=2", false, "http://blog.localhost/p/?page=2"},
		{"only tracking", "blog.localhost", "/?utm_campaign=z", false, "http://blog.localhost/"},
		{"encoding normalised", "blog.localhost", "/?s=hello%20world&x=%41", false, "http://blog.localhost/?s=hello+world&x=A"},
		{"empty pairs", "blog.localhost", "/?&&a=1&", false, "http://blog.localhost/?a=1"},
		{"path case kept", "blog.localhost", "/Hello-World/", false, "http://blog.localhost/Hello-World/"},
		{"escaped path", "blog.localhost", "/caf%C3%A9/", false, "http://blog.localhost/caf%C3%A9/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			if got := Key(r, testRoute()); got != tc.want {
				t.Errorf("Key = %q, want %q", got, tc.want)
			}
		})
	}
	get := httptest.NewRequest("GET", "/x", nil)
	head := httptest.NewRequest("HEAD", "/x", nil)
	if Key(get, testRoute()) != Key(head, testRoute()) {
		t.Error("HEAD and GET have different keys")
	}
}

func TestBypassReason(t *testing.T) {
	tests := []struct {
		name, method, target string
		header               map[string]string
		feeds                bool
		ttl                  time.Duration
		bypass               bool
	}{
		{name: "home", target: "/"},
		{name: "post", target: "/hello-world/"},
		{name: "index.php", target: "/index.php"},
		{name: "index.php path info", target: "/index.php/hello-world/"},
		{name: "search is cached", target: "/?s=hello"},
		{name: "HEAD", method: "HEAD", target: "/"},
		{name: "POST", method: "POST", target: "/", bypass: true},
		{name: "PURGE", method: "PURGE", target: "/", bypass: true},
		{name: "ttl 0", target: "/", ttl: -1, bypass: true},
		{name: "wp-admin", target: "/wp-admin/", bypass: true},
		{name: "wp-admin no slash", target: "/wp-admin", bypass: true},
		{name: "wp-admin upper case", target: "/WP-ADMIN/", bypass: true},
		{name: "wp-admin dot segments", target: "/x/../wp-admin/edit.php", bypass: true},
		{name: "wp-admin ajax", target: "/wp-admin/admin-ajax.php?action=x", bypass: true},
		{name: "wp-login", target: "/wp-login.php", bypass: true},
		{name: "wp-login path info", target: "/wp-login.php/x", bypass: true},
		{name: "wp-cron", target: "/wp-cron.php", bypass: true},
		{name: "xmlrpc", target: "/xmlrpc.php", bypass: true},
		{name: "comments post", target: "/wp-comments-post.php", bypass: true},
		{name: "wp-json", target: "/wp-json/wp/v2/posts", bypass: true},
		{name: "wp-json through PATH_INFO", target: "/index.php/wp-json/wp/v2/posts", bypass: true},
		{name: "rest_route", target: "/?rest_route=/wp/v2/posts", bypass: true},
		{name: "feed", target: "/feed/", bypass: true},
		{name: "post feed", target: "/hello-world/feed/", bypass: true},
		{name: "feed query", target: "/?feed=rss2", bypass: true},
		{name: "feed allowed", target: "/feed/", feeds: true},
		{name: "sitemap", target: "/wp-sitemap.xml", bypass: true},
		{name: "sitemap part", target: "/wp-sitemap-posts-post-1.xml", bypass: true},
		{name: "sitemap allowed", target: "/wp-sitemap.xml", feeds: true},
		{name: "preview", target: "/?p=12&preview=true", bypass: true},
		{name: "preview nonce", target: "/?preview_id=12&preview_nonce=abc", bypass: true},
		{name: "static css", target: "/wp-includes/css/dashicons.min.css", bypass: true},
		{name: "static image", target: "/wp-content/uploads/a.JPG", bypass: true},
		{name: "authorization", target: "/", header: map[string]string{"Authorization": "Basic eDp5"}, bypass: true},
		{name: "logged in cookie", target: "/", header: map[string]string{"Cookie": "wordpress_logged_in_abc=admin"}, bypass: true},
		{name: "sec cookie", target: "/", header: map[string]string{"Cookie": "wordpress_sec_abc=x"}, bypass: true},
		{name: "auth cookie", target: "/", header: map[string]string{"Cookie": "wordpress_0123abcd=x"}, bypass: true},
		{name: "test cookie alone", target: "/", header: map[string]string{"Cookie": "wordpress_test_cookie=WP%20Cookie%20check"}},
		{name: "analytics cookie", target: "/", header: map[string]string{"Cookie": "_ga=GA1.1.1; theme=dark"}},
		{name: "test cookie and logged in", target: "/", header: map[string]string{"Cookie": "wordpress_test_cookie=x; wordpress_logged_in_1=y"}, bypass: true},
		{name: "postpass", target: "/", header: map[string]string{"Cookie": "wp-postpass_abc=x"}, bypass: true},
		{name: "comment author", target: "/", header: map[string]string{"Cookie": "comment_author_abc=Bob"}, bypass: true},
		{name: "no cache cookie", target: "/", header: map[string]string{"Cookie": "wordpress_no_cache=1"}, bypass: true},
		{name: "cart", target: "/", header: map[string]string{"Cookie": "woocommerce_items_in_cart=1"}, bypass: true},
		{name: "woo session", target: "/", header: map[string]string{"Cookie": "wp_woocommerce_session_abc=x"}, bypass: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = "GET"
			}
			r := httptest.NewRequest(m, tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			rt := testRoute()
			if tc.ttl < 0 {
				rt.Options.CacheTTL = 0
			}
			got := BypassReason(r, rt, tc.feeds)
			if (got != "") != tc.bypass {
				t.Errorf("BypassReason = %q, want bypass %v", got, tc.bypass)
			}
		})
	}
}

func TestStorableTTL(t *testing.T) {
	const ttl = 5 * time.Minute
	tests := []struct {
		name   string
		status int
		header map[string]string
		want   time.Duration
	}{
		{"200", 200, nil, ttl},
		{"301", 301, map[string]string{"Location": "/x/"}, ttl},
		{"404 short", 404, nil, Max404TTL},
		{"302", 302, nil, 0},
		{"500", 500, nil, 0},
		{"502", 502, nil, 0},
		{"206", 206, nil, 0},
		{"304", 304, nil, 0},
		{"set-cookie", 200, map[string]string{"Set-Cookie": "a=b"}, 0},
		{"private", 200, map[string]string{"Cache-Control": "private, max-age=60"}, 0},
		{"no-store", 200, map[string]string{"Cache-Control": "no-store"}, 0},
		{"no-cache WordPress", 200, map[string]string{"Cache-Control": "no-cache, must-revalidate, max-age=0"}, 0},
		{"public", 200, map[string]string{"Cache-Control": "public"}, ttl},
		{"max-age caps", 200, map[string]string{"Cache-Control": "max-age=60"}, time.Minute},
		{"s-maxage wins", 200, map[string]string{"Cache-Control": "max-age=0, s-maxage=120"}, 2 * time.Minute},
		{"max-age 0", 200, map[string]string{"Cache-Control": "max-age=0"}, 0},
		{"max-age above ttl", 200, map[string]string{"Cache-Control": "max-age=86400"}, ttl},
		{"vary star", 200, map[string]string{"Vary": "*"}, 0},
		{"vary cookie", 200, map[string]string{"Vary": "Accept-Encoding, Cookie"}, 0},
		{"vary accept-encoding", 200, map[string]string{"Vary": "Accept-Encoding"}, ttl},
		{"vary user-agent not stored", 200, map[string]string{"Vary": "User-Agent"}, 0},
		{"vary accept-language not stored", 200, map[string]string{"Vary": "Accept-Encoding, Accept-Language"}, 0},
		{"vary accept-encoding stored", 200, map[string]string{"Vary": "Accept-Encoding"}, ttl},
		{"too large", 200, map[string]string{"Content-Length": "2000"}, 0},
		{"small enough", 200, map[string]string{"Content-Length": "1000"}, ttl},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, reason := StorableTTL(tc.status, h, ttl, 1000)
			if got != tc.want {
				t.Errorf("StorableTTL = %v (%s), want %v", got, reason, tc.want)
			}
		})
	}
}

func TestParseTagsAndEncoding(t *testing.T) {
	got := parseTags([]string{"post-12,home term-3", " home,,feed "})
	want := []string{"post-12", "home", "term-3", "feed"}
	if len(got) != len(want) {
		t.Fatalf("parseTags = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parseTags = %q, want %q", got, want)
		}
	}
	for _, tc := range []struct {
		accept, enc string
		want        bool
	}{
		{"", "", true}, {"", "gzip", false}, {"gzip, br", "gzip", true}, {"br", "gzip", false},
		{"*", "gzip", true}, {"gzip;q=0", "gzip", false}, {"GZIP;q=0.5", "gzip", true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Encoding", tc.accept)
		}
		if got := acceptsEncoding(r, tc.enc); got != tc.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v, want %v", tc.accept, tc.enc, got, tc.want)
		}
	}
}

func TestKeyedRequest(t *testing.T) {
	tests := []struct {
		name, target string
		wantURI      string // RequestURI PHP gets
		unchanged    bool   // the same *http.Request comes back
	}{
		{name: "no query", target: "/hello/", wantURI: "/hello/", unchanged: true},
		{name: "plain query", target: "/?p=1&s=a+b", wantURI: "/?p=1&s=a+b", unchanged: true},
		{name: "utm dropped", target: "/?utm_source=x&p=1", wantURI: "/?p=1"},
		{name: "every tracker", target: "/?fbclid=1&gclid=2&dclid=3&msclkid=4&mc_cid=5&mc_eid=6&_ga=7&_gl=8&yclid=9&igshid=10&ref_src=11&utm_x=12", wantURI: "/"},
		{name: "case and escapes", target: "/?UTM_SOURCE=x&%75tm_medium=y&Fbclid=z&a=1", wantURI: "/?a=1"},
		{name: "utm array", target: "/?utm_source[]=x&b=2", wantURI: "/?b=2"},
		{name: "order kept", target: "/?b=2&utm_campaign=x&a=1", wantURI: "/?b=2&a=1"},
		{name: "empty parts and keys", target: "/?&a=1&&=x&b", wantURI: "/?a=1&b="},
		{name: "raw bytes encoded", target: "/?q=<script>", wantURI: "/?q=%3Cscript%3E"},
		{name: "raw path encoded", target: "/<p>/", wantURI: "/%3Cp%3E/"},
		{name: "empty query mark", target: "/x?", wantURI: "/x"},
		{name: "lower-case escapes kept", target: "/caf%c3%a9/?s=caf%C3%A9", wantURI: "/caf%c3%a9/?s=caf%C3%A9", unchanged: true},
	}
	rt := testRoute()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			got := keyedRequest(r)
			if (got == r) != tc.unchanged {
				t.Errorf("keyedRequest returned the request itself: %v, want %v", got == r, tc.unchanged)
			}
			if got.RequestURI != tc.wantURI {
				t.Errorf("RequestURI = %q, want %q", got.RequestURI, tc.wantURI)
			}
			if _, q, _ := strings.Cut(tc.wantURI, "?"); got.URL.RawQuery != q {
				t.Errorf("RawQuery = %q, want %q", got.URL.RawQuery, q)
			}
			if Key(got, rt) != Key(r, rt) {
				t.Errorf("the key changed: %q, was %q", Key(got, rt), Key(r, rt))
			}
			if r.RequestURI != tc.target {
				t.Errorf("the visitor's request was modified: %q", r.RequestURI)
			}
			// Idempotent: what PHP sees is already in key form.
			if again := keyedRequest(got); again != got {
				t.Errorf("keyedRequest is not idempotent: %q then %q", got.RequestURI, again.RequestURI)
			}
		})
	}
}
