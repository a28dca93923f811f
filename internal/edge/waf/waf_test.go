package waf

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

// One Firewall for the whole package: building the CRS takes a while.
var (
	sharedOnce sync.Once
	sharedFW   *Firewall
	sharedLog  = &recordHandler{}
)

func firewall(t testing.TB) *Firewall {
	t.Helper()
	sharedOnce.Do(func() {
		fw, err := New(Config{Logger: slog.New(sharedLog)})
		if err != nil {
			t.Fatal(err)
		}
		sharedFW = fw
	})
	if sharedFW == nil {
		t.Fatal("no firewall")
	}
	return sharedFW
}

// recordHandler keeps the warn records it gets, by request id.
type recordHandler struct {
	mu   sync.Mutex
	recs map[string][]slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recs == nil {
		h.recs = map[string][]slog.Record{}
	}
	id := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "request_id" {
			id = a.Value.String()
		}
		return true
	})
	h.recs[id] = append(h.recs[id], r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) forRequest(id string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs[id])
}

// upstream stands for PHP: it records what reached it.
type upstream struct {
	called   bool
	body     []byte
	sum      [32]byte
	readErr  error
	consumed int64 // bytes the source body had given when the upstream was called
	src      *countingReader
	hook     func() // called when the upstream is called
}

// harness is a real edge.Server whose last middleware is the upstream (it
// never calls the edge's FastCGI handler).
type harness struct {
	srv  *edge.Server
	up   *upstream
	info *edge.RequestInfo
}

func newHarness(t testing.TB, mode string, pl int) *harness {
	return newHarnessFor(t, firewall(t), edge.Route{
		Host: "example.test", Site: "example.test", State: edge.Serving,
		Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock",
		Options: edge.RouteOptions{WAFMode: mode, WAFParanoia: pl},
	})
}

// newHarnessFor serves routes through fw.
func newHarnessFor(t testing.TB, fw *Firewall, routes ...edge.Route) *harness {
	h := &harness{up: &upstream{}}
	stub := func(edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			u := h.up
			u.called = true
			if u.src != nil {
				u.consumed = u.src.n
			}
			if u.hook != nil {
				u.hook()
			}
			hash := sha256.New()
			var keep bytes.Buffer
			_, u.readErr = io.Copy(io.MultiWriter(hash, &limitedBuffer{b: &keep, max: 1 << 20}), r.Body)
			copy(u.sum[:], hash.Sum(nil))
			u.body = keep.Bytes()
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "upstream ok")
			return nil
		}
	}
	h.srv = edge.New(edge.Config{
		Middlewares: []edge.Middleware{fw.Middleware(), stub},
		Observe:     func(_ *http.Request, info *edge.RequestInfo) { h.info = info },
	})
	h.srv.SetTable(edge.NewTable(routes))
	return h
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (h *harness) do(req *http.Request) *httptest.ResponseRecorder {
	h.up.called = false
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return rec
}

// browserRequest is a request as a browser sends it.
func browserRequest(method, target string, body io.Reader) *http.Request {
	req := httptest.NewRequest(method, target, body)
	req.Host = "example.test"
	req.RemoteAddr = "203.0.113.7:51234"
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.5")
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	return req
}

func formRequest(target string, form url.Values) *http.Request {
	body := form.Encode()
	req := browserRequest("POST", target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.ContentLength = int64(len(body))
	return req
}

type attack struct {
	name string
	req  func() *http.Request
}

var attacks = []attack{
	{"sqli query", func() *http.Request {
		return browserRequest("GET", "/?id="+url.QueryEscape("1' OR '1'='1' --"), nil)
	}},
	{"path traversal", func() *http.Request {
		return browserRequest("GET", "/index.php?file="+url.QueryEscape("../../etc/passwd"), nil)
	}},
	{"xss query", func() *http.Request {
		return browserRequest("GET", "/?s="+url.QueryEscape("<script>alert(1)</script>"), nil)
	}},
	{"xss form body", func() *http.Request {
		return formRequest("/wp-comments-post.php", url.Values{
			"comment": {"<script>alert(1)</script>"}, "author": {"eve"}, "email": {"eve@example.com"}, "comment_post_ID": {"1"},
		})
	}},
	{"command injection", func() *http.Request {
		return browserRequest("GET", "/?host="+url.QueryEscape("example.com;cat /etc/passwd"), nil)
	}},
	{"log4shell header", func() *http.Request {
		req := browserRequest("GET", "/", nil)
		req.Header.Set("X-Api-Version", "${jndi:ldap://x}")
		return req
	}},
}

func TestAttacksBlocked(t *testing.T) {
	h := newHarness(t, site.WAFBlock, 1)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			rec := h.do(a.req())
			body := rec.Body.String()
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403; body %.300s", rec.Code, body)
			}
			if h.up.called {
				t.Error("the upstream was called for a blocked request")
			}
			id := rec.Header().Get("X-Request-Id")
			if id == "" || !strings.Contains(body, id) || !strings.Contains(body, BlockedMessage) {
				t.Errorf("page lacks the request id %q or the message:\n%s", id, body)
			}
			if !h.info.WAFBlocked || !slices.Contains(h.info.WAFRules, 949110) || len(h.info.WAFRules) < 2 {
				t.Errorf("info: blocked=%v rules=%v", h.info.WAFBlocked, h.info.WAFRules)
			}
			recs := sharedLog.forRequest(id)
			if len(recs) < 2 {
				t.Fatalf("%d log records for the request, want one per rule", len(recs))
			}
			for _, r := range recs {
				if r.Level != slog.LevelWarn {
					t.Errorf("record %q at %v", r.Message, r.Level)
				}
				attrs := map[string]string{}
				r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
				for _, k := range []string{"site", "rule_id", "msg", "paranoia", "action"} {
					if attrs[k] == "" {
						t.Errorf("record lacks %s: %v", k, attrs)
					}
				}
				if attrs["action"] != "block" || attrs["site"] != "example.test" || attrs["client"] != "203.0.113.7" {
					t.Errorf("record attrs = %v", attrs)
				}
			}
		})
	}
}

func TestAttacksDetected(t *testing.T) {
	h := newHarness(t, site.WAFDetect, 1)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			req := a.req()
			var sent []byte
			if req.Body != nil {
				sent, _ = io.ReadAll(req.Body)
				req.Body = io.NopCloser(bytes.NewReader(sent))
			}
			rec := h.do(req)
			if rec.Code != http.StatusOK || !h.up.called {
				t.Fatalf("status = %d, upstream called %v; want 200 through", rec.Code, h.up.called)
			}
			if !bytes.Equal(h.up.body, sent) {
				t.Errorf("upstream got body %q, want %q", h.up.body, sent)
			}
			if h.info.WAFBlocked || !slices.Contains(h.info.WAFRules, 949110) {
				t.Errorf("info: blocked=%v rules=%v", h.info.WAFBlocked, h.info.WAFRules)
			}
			for _, r := range sharedLog.forRequest(rec.Header().Get("X-Request-Id")) {
				r.Attrs(func(a slog.Attr) bool {
					if a.Key == "action" && a.Value.String() != "detect" {
						t.Errorf("action = %s in detect mode", a.Value)
					}
					return true
				})
			}
		})
	}
}

func TestOff(t *testing.T) {
	h := newHarness(t, site.WAFOff, 1)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			rec := h.do(a.req())
			if rec.Code != http.StatusOK || !h.up.called {
				t.Fatalf("status = %d, upstream called %v", rec.Code, h.up.called)
			}
			if h.info.WAFBlocked || len(h.info.WAFRules) != 0 {
				t.Errorf("info: blocked=%v rules=%v", h.info.WAFBlocked, h.info.WAFRules)
			}
			if n := len(sharedLog.forRequest(rec.Header().Get("X-Request-Id"))); n != 0 {
				t.Errorf("%d records logged with the WAF off", n)
			}
		})
	}
}

func TestBenign(t *testing.T) {
	for _, pl := range []int{1, 2} {
		h := newHarness(t, site.WAFBlock, pl)
		cases := []struct {
			name string
			req  *http.Request
		}{
			{"page", browserRequest("GET", "/2024/05/hello-world/", nil)},
			{"search", browserRequest("GET", "/?s="+url.QueryEscape("hello world"), nil)},
			{"static", browserRequest("GET", "/wp-includes/css/dashicons.min.css?ver=6.1.9", nil)},
			{"comment", formRequest("/wp-comments-post.php", url.Values{
				"comment": {"Nice post, thanks! I'll try it this weekend."}, "author": {"Ann O'Neil"},
				"email": {"ann@example.com"}, "url": {"https://ann.example.org/"}, "comment_post_ID": {"1"},
				"comment_parent": {"0"}, "submit": {"Post Comment"},
			})},
			{"login", formRequest("/wp-login.php", url.Values{
				"log": {"admin"}, "pwd": {`x' OR 1=1 -- <script>;cat /etc/passwd`}, "wp-submit": {"Log In"},
				"redirect_to": {"http://blog.localhost:8080/wp-admin/"}, "testcookie": {"1"},
			})},
		}
		for _, tc := range cases {
			if pl > 1 && tc.name == "comment" {
				// PL2 flags "I'll try" as a Unix command (932236): higher
				// levels trade false positives for coverage by design.
				continue
			}
			t.Run(fmt.Sprintf("PL%d/%s", pl, tc.name), func(t *testing.T) {
				rec := h.do(tc.req)
				if rec.Code != http.StatusOK || !h.up.called {
					t.Fatalf("status = %d (rules %v), want 200 through", rec.Code, h.info.WAFRules)
				}
				if pl == 1 && len(h.info.WAFRules) != 0 {
					t.Errorf("rules matched on a benign request: %v", h.info.WAFRules)
				}
			})
		}
	}
}

// The block editor's save passes with the admin's cookie and nonce; the
// same body from an anonymous client is inspected in full and blocked.
func TestBlockEditorExclusion(t *testing.T) {
	h := newHarness(t, site.WAFBlock, 1)
	body := `{"title":"Hello & \"quotes\" 'single'","status":"publish","content":` +
		`"<!-- wp:heading {\"level\":2} --><h2 class=\"wp-block-heading\">It's here</h2><!-- /wp:heading -->` +
		`<!-- wp:paragraph --><p>Hello <strong>world</strong> &amp; \"quotes\" 'single'</p><!-- /wp:paragraph -->` +
		`<!-- wp:code --><pre class=\"wp-block-code\"><code>SELECT * FROM wp_posts WHERE 1=1 OR 'a'='a'; -- &lt;script&gt;alert(1)&lt;/script&gt;</code></pre><!-- /wp:code -->"}`
	mk := func(admin bool) *http.Request {
		req := browserRequest("POST", "/wp-json/wp/v2/posts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if admin {
			req.Header.Set("X-WP-Nonce", "0123456789")
			req.AddCookie(&http.Cookie{Name: "wordpress_logged_in_0123456789abcdef0123456789abcdef", Value: "admin|1700000000|tok|hash"})
		}
		return req
	}
	if rec := h.do(mk(true)); rec.Code != http.StatusOK || string(h.up.body) != body {
		t.Fatalf("admin's save = %d (rules %v), body intact %v", rec.Code, h.info.WAFRules, string(h.up.body) == body)
	}
	if rec := h.do(mk(false)); rec.Code != http.StatusForbidden {
		t.Fatalf("anonymous save = %d (rules %v), want 403", rec.Code, h.info.WAFRules)
	}
}

// A 5 MB multipart upload, with form fields before and after the file,
// reaches the upstream intact. The WAF reads it whole before it hands it
// over (into a temporary file beyond the body limit), so the fields after
// the file are inspected too (TestBodyLimits).
func TestLargeUpload(t *testing.T) {
	h := newHarness(t, site.WAFBlock, 1)
	body, ctype := multipartBody(t, []part{
		{name: "name", value: "holiday.jpg"},
		{name: "action", value: "upload-attachment"},
		{name: "async-upload", file: "holiday.jpg", value: string(randomBytes(5 << 20))},
		{name: "html-upload", value: "Upload"},
	})
	want := sha256.Sum256(body)
	src := &countingReader{r: bytes.NewReader(body)}
	h.up.src = src
	defer func() { h.up.src = nil }()
	req := browserRequest("POST", "/wp-admin/async-upload.php", io.NopCloser(src))
	req.Header.Set("Content-Type", ctype)
	req.ContentLength = int64(len(body))
	rec := h.do(req)
	if rec.Code != http.StatusOK || !h.up.called {
		t.Fatalf("status = %d (rules %v), want 200 through", rec.Code, h.info.WAFRules)
	}
	if h.up.readErr != nil || h.up.sum != want {
		t.Fatalf("upstream body differs (err %v)", h.up.readErr)
	}
	if h.up.consumed != int64(len(body)) {
		t.Errorf("the WAF had read %d of %d bytes when it handed over, want all", h.up.consumed, len(body))
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

type part struct {
	name, file, value string
}

func multipartBody(t testing.TB, parts []part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.file != "" {
			w, err = mw.CreateFormFile(p.name, p.file)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.value)
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func BenchmarkWAF(b *testing.B) {
	h := newHarness(b, site.WAFBlock, 1)
	if err := firewall(b).Prepare(1); err != nil {
		b.Fatal(err)
	}
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := browserRequest("GET", "/2024/05/hello-world/?replytocom=12", nil)
			req.AddCookie(&http.Cookie{Name: "wp-settings-time-1", Value: "1700000000"})
			if rec := h.do(req); rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	form := url.Values{
		"comment": {"Thanks for the write-up. I tried it on my own blog and it worked on the first go."},
		"author":  {"Ann"}, "email": {"ann@example.com"}, "url": {"https://ann.example.org/"},
		"comment_post_ID": {"1"}, "comment_parent": {"0"}, "submit": {"Post Comment"},
	}
	b.Run("POST", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rec := h.do(formRequest("/wp-comments-post.php", form)); rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
}
