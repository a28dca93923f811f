package purge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/edge"
)

// recorder is a Purger that remembers its calls and purges 2 per tag,
// 1 per URL and 10 per site.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) PurgeURL(site, u string) int {
	r.add("url " + site + " " + u)
	return 1
}
func (r *recorder) PurgeTag(site, tag string) int {
	r.add("tag " + site + " " + tag)
	return 2
}
func (r *recorder) PurgeSite(site string) int {
	r.add("site " + site)
	return 10
}

var secret = bytes.Repeat([]byte{7}, 32)

// serve runs one request through an edge.Server with the purge middleware
// followed by one that answers 418 to every request it sees.
func serve(t *testing.T, rec *recorder, logBuf *bytes.Buffer, method, target, remote, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	var log *slog.Logger
	if logBuf != nil {
		log = slog.New(slog.NewTextHandler(logBuf, nil))
	}
	var p edge.Purger
	if rec != nil {
		p = rec
	}
	srv := edge.New(edge.Config{Middlewares: []edge.Middleware{Middleware(secret, p, log), teapot}})
	dir := t.TempDir()
	srv.SetTable(edge.NewTable([]edge.Route{
		{Host: "blog.localhost", Site: "blog.localhost", Docroot: dir, Endpoint: "unix:" + filepath.Join(dir, "none.sock"), State: edge.Serving},
		{Host: "other.localhost", Site: "other.localhost", Docroot: dir, Endpoint: "unix:" + filepath.Join(dir, "none.sock"), State: edge.Serving},
	}))
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = remote
	if key != "" {
		req.Header.Set(KeyHeader, key)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	return w
}

func teapot(edge.RouteHandler) edge.RouteHandler {
	return func(w http.ResponseWriter, _ *http.Request, _ *edge.Route) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	}
}

func TestKey(t *testing.T) {
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
	if got := Key([]byte("key"), "The quick brown fox jumps over the lazy dog"); got != "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatalf("Key = %s", got)
	}
	if Key(secret, "a.localhost") == Key(secret, "b.localhost") {
		t.Fatal("two sites share a key")
	}
}

func TestPurge(t *testing.T) {
	good := Key(secret, "blog.localhost")
	tests := []struct {
		name, method, host, remote, key, body string
		status                                int
		purged                                int
		calls                                 []string
	}{
		{name: "tags", body: `{"tags":["post-12","home"]}`, status: 200, purged: 4,
			calls: []string{"tag blog.localhost post-12", "tag blog.localhost home"}},
		{name: "all wins over tags", body: `{"tags":["home"],"all":true}`, status: 200, purged: 10,
			calls: []string{"site blog.localhost"}},
		{name: "urls resolved against the host", body: `{"urls":["/hello-world/?a=1","http://BLOG.localhost:8080/x"]}`, status: 200, purged: 2,
			calls: []string{"url blog.localhost http://blog.localhost:8080/hello-world/?a=1", "url blog.localhost http://BLOG.localhost:8080/x"}},
		{name: "ipv6 loopback", remote: "[::1]:5555", body: `{"tags":["feed"]}`, status: 200, purged: 2, calls: []string{"tag blog.localhost feed"}},
		{name: "empty body object purges nothing", body: `{}`, status: 200, purged: 0},
		{name: "not loopback", remote: "192.0.2.1:5555", body: `{"all":true}`, status: 403},
		{name: "no key", key: "-", body: `{"all":true}`, status: 403},
		{name: "wrong key", key: strings.Repeat("0", 64), body: `{"all":true}`, status: 403},
		{name: "other site's key", key: Key(secret, "other.localhost"), body: `{"all":true}`, status: 403},
		{name: "key of another secret", key: Key([]byte("x"), "blog.localhost"), body: `{"all":true}`, status: 403},
		{name: "GET", method: "GET", status: 403},
		{name: "bad json", body: `{"tags":`, status: 400},
		{name: "unknown field", body: `{"tag":"home"}`, status: 400},
		{name: "trailing data", body: `{} {}`, status: 400},
		{name: "bad tag", body: `{"tags":["a b"]}`, status: 400},
		{name: "url of another host", body: `{"urls":["http://other.localhost/"]}`, status: 400},
		{name: "url with another scheme", body: `{"urls":["ftp://blog.localhost/"]}`, status: 400},
		{name: "too big", body: `{"tags":["` + strings.Repeat("a", MaxBodyBytes) + `"]}`, status: 400},
		{name: "too many", body: `{"tags":[` + strings.TrimSuffix(strings.Repeat(`"a",`, MaxItems+1), ",") + `]}`, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.method == "" {
				tt.method = "POST"
			}
			if tt.remote == "" {
				tt.remote = "127.0.0.1:40000"
			}
			switch tt.key {
			case "":
				tt.key = good
			case "-":
				tt.key = ""
			}
			rec := &recorder{}
			var logBuf bytes.Buffer
			w := serve(t, rec, &logBuf, tt.method, "http://blog.localhost:8080"+Path, tt.remote, tt.key, tt.body)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", w.Header().Get("Content-Type"))
			}
			if tt.status != 200 {
				if len(rec.calls) != 0 {
					t.Errorf("refused request purged: %v", rec.calls)
				}
				// Never say why.
				if b := w.Body.String(); strings.Contains(b, "key") || strings.Contains(b, "loopback") {
					t.Errorf("refusal explains itself: %s", b)
				}
				if !strings.Contains(logBuf.String(), "edge: purge refused") {
					t.Errorf("refusal not logged: %s", logBuf.String())
				}
				return
			}
			var resp Response
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Purged != tt.purged {
				t.Errorf("body = %s (%v), want purged %d", w.Body, err, tt.purged)
			}
			if !slices.Equal(rec.calls, tt.calls) {
				t.Errorf("calls = %q, want %q", rec.calls, tt.calls)
			}
			if !strings.Contains(logBuf.String(), `msg="edge: purge" site=blog.localhost`) ||
				(len(tt.calls) > 0 && strings.HasPrefix(tt.calls[0], "tag") && !strings.Contains(logBuf.String(), "tag_list="+strings.TrimPrefix(tt.calls[0], "tag blog.localhost "))) {
				t.Errorf("purge not logged: %s", logBuf.String())
			}
		})
	}
}

func TestOtherPathsPassThrough(t *testing.T) {
	rec := &recorder{}
	for _, p := range []string{"/", "/.aipress/purge/x", "/.aipress/purgex"} {
		w := serve(t, rec, nil, "POST", "http://blog.localhost"+p, "127.0.0.1:1", Key(secret, "blog.localhost"), `{"all":true}`)
		if w.Code != http.StatusTeapot {
			t.Errorf("POST %s = %d, want 418 from the next handler", p, w.Code)
		}
	}
	if len(rec.calls) != 0 {
		t.Errorf("purged: %v", rec.calls)
	}
}

func TestNilPurgerIsNop(t *testing.T) {
	w := serve(t, nil, nil, "POST", "http://blog.localhost"+Path, "127.0.0.1:1", Key(secret, "blog.localhost"), `{"all":true}`)
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"purged":0}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "purge-secret")
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) != SecretBytes {
		t.Fatalf("create: %d bytes, %v", len(a), err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode().Perm(), err)
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("reload gave another secret: %v", err)
	}
	other, _ := LoadOrCreateSecret(filepath.Join(t.TempDir(), "s"))
	if bytes.Equal(a, other) {
		t.Fatal("two secrets are equal")
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Fatal("a truncated secret was accepted")
	}
}
