package pagecache

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// counter is an upstream RouteHandler that counts its calls; respond
// writes the response of call n (1-based).
type counter struct {
	calls   atomic.Int64
	respond func(w http.ResponseWriter, r *http.Request, n int64) error
}

func (u *counter) handle(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
	n := u.calls.Add(1)
	if u.respond != nil {
		return u.respond(w, r, n)
	}
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprintf(w, "page %s call %d", r.URL.Path, n)
	return nil
}

type harness struct {
	t     *testing.T
	c     *Cache
	clock *fakeClock
	up    *counter
	h     edge.RouteHandler
	rt    *edge.Route
}

func newHarness(t *testing.T, cfg Config) *harness {
	clock := newClock()
	cfg.Clock = clock.Now
	c := New(cfg)
	up := &counter{}
	return &harness{t: t, c: c, clock: clock, up: up, h: c.Middleware()(up.handle), rt: testRoute()}
}

// do serves one request; it fails the test when the handler returns an
// error unless wantErr.
func (h *harness) do(method, target string, header ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	rec, err := h.doErr(method, target, header...)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, target, err)
	}
	return rec
}

func (h *harness) doErr(method, target string, header ...string) (*httptest.ResponseRecorder, error) {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "blog.localhost"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	err := h.h(rec, r, h.rt)
	return rec, err
}

func expect(t *testing.T, rec *httptest.ResponseRecorder, xcache, body string) {
	t.Helper()
	if got := rec.Header().Get("X-Cache"); got != xcache {
		t.Errorf("X-Cache = %q, want %q (body %q)", got, xcache, rec.Body.String())
	}
	if body != "" && rec.Body.String() != body {
		t.Errorf("body = %q, want %q", rec.Body.String(), body)
	}
}

func TestHitAfterMiss(t *testing.T) {
	h := newHarness(t, Config{})
	expect(t, h.do("GET", "/hello/"), Miss, "page /hello/ call 1")
	h.clock.Advance(7 * time.Second)
	rec := h.do("GET", "/hello/")
	expect(t, rec, Hit, "page /hello/ call 1")
	if rec.Header().Get("Age") != "7" {
		t.Errorf("Age = %q, want 7", rec.Header().Get("Age"))
	}
	if rec.Header().Get("Content-Type") != "text/html" {
		t.Errorf("Content-Type = %q", rec.Header().Get("Content-Type"))
	}
	// Tracking parameters and order do not make another entry; HEAD shares it.
	expect(t, h.do("GET", "/hello/?utm_source=x"), Hit, "page /hello/ call 1")
	rec = h.do("HEAD", "/hello/")
	expect(t, rec, Hit, "")
	if rec.Body.Len() != 0 {
		t.Errorf("HEAD body = %q", rec.Body.String())
	}
	if n := h.up.calls.Load(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
	// A logged-in visitor bypasses, and is not served the cached page.
	expect(t, h.do("GET", "/hello/", "Cookie", "wordpress_logged_in_x=y"), Bypass, "page /hello/ call 2")
}

func TestHeadMissFetchesGet(t *testing.T) {
	h := newHarness(t, Config{})
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		if r.Method != "GET" {
			return fmt.Errorf("upstream got %s", r.Method)
		}
		fmt.Fprint(w, "full body")
		return nil
	}
	rec := h.do("HEAD", "/x/")
	expect(t, rec, Miss, "")
	if rec.Body.Len() != 0 {
		t.Errorf("HEAD miss body = %q", rec.Body.String())
	}
	expect(t, h.do("GET", "/x/"), Hit, "full body")
}

func TestTTLExpiry(t *testing.T) {
	h := newHarness(t, Config{StaleWhileRevalidate: -1, StaleIfError: -1})
	h.rt.Options.CacheTTL = time.Minute
	expect(t, h.do("GET", "/"), Miss, "page / call 1")
	h.clock.Advance(59 * time.Second)
	expect(t, h.do("GET", "/"), Hit, "page / call 1")
	h.clock.Advance(time.Second)
	expect(t, h.do("GET", "/"), Miss, "page / call 2")
	expect(t, h.do("GET", "/"), Hit, "page / call 2")
}

func TestStaleWhileRevalidate(t *testing.T) {
	h := newHarness(t, Config{StaleWhileRevalidate: time.Minute})
	h.rt.Options.CacheTTL = time.Minute
	release := make(chan struct{})
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		if n == 2 {
			<-release // the background refresh waits until both stale hits are served
		}
		fmt.Fprintf(w, "v%d", n)
		return nil
	}
	expect(t, h.do("GET", "/"), Miss, "v1")
	h.clock.Advance(90 * time.Second)
	expect(t, h.do("GET", "/"), Stale, "v1")
	expect(t, h.do("GET", "/"), Stale, "v1")
	close(release)
	h.c.bg.Wait()
	if n := h.up.calls.Load(); n != 2 {
		t.Errorf("upstream calls = %d, want 2 (one refresh)", n)
	}
	expect(t, h.do("GET", "/"), Hit, "v2")
	// Past the stale window: a plain miss.
	h.clock.Advance(3 * time.Minute)
	expect(t, h.do("GET", "/"), Miss, "v3")
}

func TestStaleIfError(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(w http.ResponseWriter) error
	}{
		{"502 status", func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "bad gateway")
			return nil
		}},
		{"503 status", func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusServiceUnavailable)
			return nil
		}},
		{"error", func(w http.ResponseWriter) error {
			return &edge.HTTPError{Status: 502, Message: "Bad gateway", Cause: errors.New("dial: connection refused")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{StaleWhileRevalidate: -1, StaleIfError: 10 * time.Minute})
			h.rt.Options.CacheTTL = time.Minute
			failing := false
			h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
				if failing {
					return tc.fail(w)
				}
				fmt.Fprintf(w, "v%d", n)
				return nil
			}
			expect(t, h.do("GET", "/"), Miss, "v1")
			failing = true
			h.clock.Advance(5 * time.Minute)
			rec := h.do("GET", "/")
			expect(t, rec, Stale, "v1")
			if rec.Code != 200 {
				t.Errorf("status = %d, want 200", rec.Code)
			}
			// Beyond StaleIfError the failure shows.
			h.clock.Advance(10 * time.Minute)
			rec, err := h.doErr("GET", "/")
			if err == nil && rec.Code < 500 {
				t.Errorf("past stale-if-error: %d %q, want a failure", rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("X-Cache"); got != Miss {
				t.Errorf("X-Cache = %q, want MISS", got)
			}
		})
	}
}

func TestCoalescing(t *testing.T) {
	h := newHarness(t, Config{})
	const n = 100
	var waiting sync.WaitGroup
	waiting.Add(n - 1)
	h.c.onWait = waiting.Done
	release := make(chan struct{})
	extra := make(chan struct{}, 1)
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		if n > 1 { // not coalesced: fail instead of hanging
			select {
			case extra <- struct{}{}:
			default:
			}
			return errors.New("second upstream call")
		}
		<-release
		fmt.Fprintf(w, "shared %d", n)
		return nil
	}
	recs := make([]*httptest.ResponseRecorder, n)
	errs := make([]error, n)
	var done sync.WaitGroup
	for i := range n {
		done.Go(func() { recs[i], errs[i] = h.doErr("GET", "/cold/") })
	}
	allWaiting := make(chan struct{})
	go func() { waiting.Wait(); close(allWaiting) }()
	select {
	case <-allWaiting: // 99 wait for the one that asked PHP
	case <-extra:
		t.Error("a second request went to PHP while the first was running")
	}
	close(release)
	done.Wait()
	if c := h.up.calls.Load(); c != 1 {
		t.Fatalf("upstream calls = %d, want 1", c)
	}
	for i := range n {
		if errs[i] != nil || recs[i].Body.String() != "shared 1" || recs[i].Header().Get("X-Cache") != Miss {
			t.Fatalf("request %d: %v %q X-Cache %q", i, errs[i], recs[i].Body.String(), recs[i].Header().Get("X-Cache"))
		}
	}
	expect(t, h.do("GET", "/cold/"), Hit, "shared 1")
}

func TestNotStorable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header [2]string
		status int
	}{
		{"set-cookie", [2]string{"Set-Cookie", "comment_author_x=Bob; path=/"}, 200},
		{"private", [2]string{"Cache-Control", "private"}, 200},
		{"no-store", [2]string{"Cache-Control", "no-store"}, 200},
		{"no-cache", [2]string{"Cache-Control", "no-cache, must-revalidate, max-age=0"}, 200},
		{"vary cookie", [2]string{"Vary", "Cookie"}, 200},
		{"302", [2]string{"Location", "/elsewhere/"}, 302},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
				w.Header().Set(tc.header[0], tc.header[1])
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, "v%d", n)
				return nil
			}
			for i := 1; i <= 3; i++ {
				rec := h.do("GET", "/")
				expect(t, rec, Miss, fmt.Sprintf("v%d", i))
				if rec.Header().Get(tc.header[0]) != tc.header[1] {
					t.Errorf("%s not passed to the visitor", tc.header[0])
				}
			}
		})
	}
}

func TestTooLargeStreamsThrough(t *testing.T) {
	h := newHarness(t, Config{MaxObjectBytes: 1000})
	big := strings.Repeat("x", 5000)
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		for i := 0; i < 5; i++ {
			w.Write([]byte(big[:1000]))
		}
		return nil
	}
	for range 2 {
		rec := h.do("GET", "/big/")
		expect(t, rec, Miss, big)
	}
	if h.up.calls.Load() != 2 {
		t.Errorf("upstream calls = %d, want 2", h.up.calls.Load())
	}
}

func TestTagsHeaderStripped(t *testing.T) {
	h := newHarness(t, Config{})
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("X-AIPress-Tags", "post-1,home")
		w.Header().Set("X-Request-Id", "upstream-id")
		fmt.Fprint(w, "tagged")
		return nil
	}
	for _, want := range []string{Miss, Hit} {
		rec := h.do("GET", "/")
		expect(t, rec, want, "tagged")
		if v := rec.Header().Get("X-AIPress-Tags"); v != "" {
			t.Errorf("%s: tags header reached the visitor: %q", want, v)
		}
	}
	rec := h.do("POST", "/")
	expect(t, rec, Bypass, "tagged")
	if v := rec.Header().Get("X-AIPress-Tags"); v != "" {
		t.Errorf("bypass: tags header reached the visitor: %q", v)
	}
}

func TestLRUEviction(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 35_000})
	body := strings.Repeat("b", 10_000)
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("X-AIPress-Tags", "page"+r.URL.Path[1:2])
		fmt.Fprint(w, body)
		return nil
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		expect(t, h.do("GET", p), Miss, "")
	}
	expect(t, h.do("GET", "/a"), Hit, "")  // a is now the most recent
	expect(t, h.do("GET", "/d"), Miss, "") // evicts b
	if s := h.c.Stats(); s.Entries != 3 || s.Bytes > 35_000 {
		t.Errorf("stats = %+v, want 3 entries within budget", s)
	}
	if n := h.c.PurgeTag("blog", "pageb"); n != 0 {
		t.Errorf("tag index still has evicted page: purged %d", n)
	}
	expect(t, h.do("GET", "/a"), Hit, "")
	expect(t, h.do("GET", "/c"), Hit, "")
	expect(t, h.do("GET", "/b"), Miss, "")
}

func TestPurge(t *testing.T) {
	h := newHarness(t, Config{})
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		switch r.URL.Path {
		case "/post/":
			w.Header().Set("X-AIPress-Tags", "post-12, home")
		case "/":
			w.Header().Set("X-AIPress-Tags", "home")
		}
		fmt.Fprintf(w, "v%d", n)
		return nil
	}
	fill := func() {
		for _, p := range []string{"/", "/post/", "/other/", "/post/?b=2&a=1"} {
			h.do("GET", p)
			expect(t, h.do("GET", p), Hit, "")
		}
	}
	fill()
	// Every scheme, port and query order of the URL.
	if n := h.c.PurgeURL("blog", "https://blog.localhost:8443/post/?utm_source=x&a=1&b=2"); n != 1 {
		t.Errorf("PurgeURL = %d, want 1", n)
	}
	expect(t, h.do("GET", "/post/?a=1&b=2"), Miss, "")
	expect(t, h.do("GET", "/post/"), Hit, "")
	if n := h.c.PurgeURL("blog", "/post/"); n != 1 {
		t.Errorf("PurgeURL(path) = %d, want 1", n)
	}
	expect(t, h.do("GET", "/post/"), Miss, "")
	if n := h.c.PurgeURL("other-site", "http://blog.localhost/"); n != 0 {
		t.Errorf("PurgeURL of another site = %d, want 0", n)
	}

	if n := h.c.PurgeTag("blog", "home"); n != 3 { // /, /post/ and /post/?a=1&b=2
		t.Errorf("PurgeTag(home) = %d, want 3", n)
	}
	expect(t, h.do("GET", "/"), Miss, "")
	expect(t, h.do("GET", "/other/"), Hit, "")
	if n := h.c.PurgeTag("blog", "post-12"); n != 0 {
		t.Errorf("second PurgeTag = %d, want 0", n)
	}

	fill()
	if n := h.c.PurgeSite("blog"); n != 4 {
		t.Errorf("PurgeSite = %d, want 4", n)
	}
	if s := h.c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("after PurgeSite: %+v", s)
	}
	expect(t, h.do("GET", "/other/"), Miss, "")
}

func TestPurgeRacingFill(t *testing.T) {
	h := newHarness(t, Config{})
	started := make(chan struct{})
	release := make(chan struct{})
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		if n == 1 {
			close(started)
			<-release
		}
		w.Header().Set("X-AIPress-Tags", "post-1")
		fmt.Fprintf(w, "v%d", n)
		return nil
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- h.do("GET", "/p/") }()
	<-started
	// The page PHP is rendering predates the purge: it must not be stored.
	h.c.PurgeTag("blog", "post-1")
	close(release)
	expect(t, <-done, Miss, "v1")
	expect(t, h.do("GET", "/p/"), Miss, "v2")
	expect(t, h.do("GET", "/p/"), Hit, "v2")
}

func TestBypassNotStored(t *testing.T) {
	h := newHarness(t, Config{})
	expect(t, h.do("GET", "/wp-login.php"), Bypass, "page /wp-login.php call 1")
	expect(t, h.do("GET", "/wp-login.php"), Bypass, "page /wp-login.php call 2")
	// A bypassing visitor's response is not stored for anonymous ones.
	expect(t, h.do("GET", "/", "Cookie", "wordpress_logged_in_1=admin"), Bypass, "page / call 3")
	expect(t, h.do("GET", "/"), Miss, "page / call 4")
	h.rt.Options.CacheTTL = 0
	expect(t, h.do("GET", "/"), Bypass, "page / call 5")
}

// Cached pages answer conditional requests with 304 from the stored
// validators (ETag and Last-Modified sent by PHP).
func TestHitConditional(t *testing.T) {
	h := newHarness(t, Config{})
	lastMod := "Wed, 01 Jan 2025 00:00:00 GMT"
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", lastMod)
		fmt.Fprint(w, "page")
		return nil
	}
	expect(t, h.do("GET", "/c/"), Miss, "page")
	if rec := h.do("GET", "/c/", "If-None-Match", `"v1"`); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match on a hit = %d, want 304", rec.Code)
	}
	if rec := h.do("GET", "/c/", "If-Modified-Since", lastMod); rec.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since on a hit = %d, want 304", rec.Code)
	}
	if rec := h.do("GET", "/c/", "If-None-Match", `"v0"`); rec.Code != 200 || rec.Body.String() != "page" {
		t.Errorf("stale If-None-Match = %d %q, want 200 page", rec.Code, rec.Body.String())
	}
}

// Peeking requests (the uptime probes) are served cached pages and fill
// the cache on a miss like a visitor, but never get a stale page in place
// of PHP's failure.
func TestPeekFillsButSeesFailures(t *testing.T) {
	h := newHarness(t, Config{Peek: func(r *http.Request) bool { return r.Header.Get("X-Test-Peek") != "" }, StaleIfError: 10 * time.Minute})
	h.rt.Options.CacheTTL = time.Minute
	failing := false
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		if failing {
			w.WriteHeader(http.StatusBadGateway)
			return nil
		}
		fmt.Fprintf(w, "v%d", n)
		return nil
	}
	expect(t, h.do("GET", "/", "X-Test-Peek", "1"), Miss, "v1")
	expect(t, h.do("GET", "/", "X-Test-Peek", "1"), Hit, "v1")
	expect(t, h.do("GET", "/"), Hit, "v1")
	if n := h.c.Stats().Entries; n != 1 {
		t.Errorf("%d entries, want 1", n)
	}
	// Expired beyond stale-while-revalidate, within stale-if-error, and
	// PHP fails: a visitor gets the stale page, a probe the failure.
	failing = true
	h.clock.Advance(5 * time.Minute)
	expect(t, h.do("GET", "/"), Stale, "v1")
	rec, err := h.doErr("GET", "/", "X-Test-Peek", "1")
	if err == nil && rec.Code < 500 {
		t.Errorf("probe while PHP fails: %d %q, want the failure", rec.Code, rec.Body.String())
	}
}

// TestStoredBodyTrimmed: a page PHP sends in pieces is stored without the
// spare capacity its fill buffer grew (which MaxBytes would not count),
// and served whole.
func TestStoredBodyTrimmed(t *testing.T) {
	h := newHarness(t, Config{})
	piece := strings.Repeat("x", 20000)
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Content-Type", "image/png") // no gzip variant
		for range 3 {
			if _, err := w.Write([]byte(piece)); err != nil {
				return err
			}
		}
		return nil
	}
	expect(t, h.do("GET", "/big/"), Miss, "")
	expect(t, h.do("GET", "/big/"), Hit, strings.Repeat(piece, 3))
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if len(h.c.entries) != 1 {
		t.Fatalf("%d entries, want 1", len(h.c.entries))
	}
	for _, e := range h.c.entries {
		if len(e.body) != 60000 || cap(e.body) > len(e.body)+len(e.body)/8 {
			t.Errorf("stored body: len %d, cap %d; want 60000 and at most 1/8 spare", len(e.body), cap(e.body))
		}
	}
}
