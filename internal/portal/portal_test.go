package portal

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedBuild(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	first, total := h.Sizes()
	// The budget: the first load is under 300 KB of compressed
	// JavaScript. A size, not a timing: the build is fixed.
	t.Logf("portal JavaScript, gzip: first load %.1f KB, all %.1f KB", float64(first)/1024, float64(total)/1024)
	if first == 0 {
		t.Fatal("no JavaScript found for the first load")
	}
	if first > 300*1024 {
		t.Errorf("first load is %d bytes of compressed JavaScript; the budget is 300 KB", first)
	}
}

func testHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := newHandler(fstest.MapFS{
		"index.html":         {Data: []byte(`<html><script type="module" crossorigin src="/assets/index-a.js"></script></html>`)},
		"assets/index-a.js":  {Data: []byte(`import{x}from"./vendor-b.js";const p=()=>import("./Page-c.js");` + strings.Repeat("console.log(1);", 100))},
		"assets/vendor-b.js": {Data: []byte(`export const x=1;`)},
		"assets/Page-c.js":   {Data: []byte(`export default 1;`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServe(t *testing.T) {
	h := testHandler(t)
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, cache string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/sites/blog.localhost", 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/sites/../../etc/passwd", 200, "text/html; charset=utf-8", "no-cache"},
		{"HEAD", "/jobs", 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/assets/index-a.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"GET", "/assets/missing-z.js", 404, "", ""},
		{"GET", "/favicon.ico", 404, "", ""},
		{"POST", "/", 405, "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			if tc.code != 200 {
				return
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := w.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
				t.Errorf("CSP %q", got)
			}
		})
	}
}

func TestGzipAndETag(t *testing.T) {
	h := testHandler(t)
	r := httptest.NewRequest("GET", "/assets/index-a.js", nil)
	r.Header.Set("Accept-Encoding", "br, gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not compressed: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if !strings.HasPrefix(string(b), `import{x}`) {
		t.Fatalf("body %q", b)
	}
	r = httptest.NewRequest("GET", "/assets/index-a.js", nil)
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d", w.Code)
	}
	r = httptest.NewRequest("GET", "/assets/index-a.js", nil)
	r.Header.Set("Accept-Encoding", "gzip;q=0")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 got gzip")
	}
}

func TestSizesFollowsStaticImportsOnly(t *testing.T) {
	h := testHandler(t)
	first, total := h.Sizes()
	page := gzLen(h.files["assets/Page-c.js"])
	if first != total-page {
		t.Fatalf("first load %d, total %d, lazy page %d: the lazy page must not count", first, total, page)
	}
}
