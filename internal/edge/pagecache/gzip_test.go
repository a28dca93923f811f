package pagecache

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestGzipVariant: a stored text page gets a gzip variant, sent to the
// visitors that accept gzip; the others, ranges and q=0 get the identity
// bytes; both say Vary: Accept-Encoding.
func TestGzipVariant(t *testing.T) {
	h := newHarness(t, Config{})
	page := strings.Repeat("<p>WordPress says hello.</p>\n", 200)
	h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Header().Set("Etag", `"v1"`)
		io.WriteString(w, page)
		return nil
	}
	expect(t, h.do("GET", "/"), Miss, page)
	tests := []struct {
		name     string
		method   string
		header   []string
		wantGzip bool
		status   int
	}{
		{"no Accept-Encoding", "GET", nil, false, 200},
		{"gzip", "GET", []string{"Accept-Encoding", "gzip, deflate, br"}, true, 200},
		{"x-gzip", "GET", []string{"Accept-Encoding", "x-gzip"}, true, 200},
		{"star", "GET", []string{"Accept-Encoding", "*"}, true, 200},
		{"gzip q=0", "GET", []string{"Accept-Encoding", "gzip;q=0, br"}, false, 200},
		{"gzip q=0 star", "GET", []string{"Accept-Encoding", "gzip;q=0.0, *"}, false, 200},
		{"br only", "GET", []string{"Accept-Encoding", "br"}, false, 200},
		{"range", "GET", []string{"Accept-Encoding", "gzip", "Range", "bytes=0-9"}, false, 206},
		{"HEAD gzip", "HEAD", []string{"Accept-Encoding", "gzip"}, true, 200},
		{"If-None-Match weak", "GET", []string{"Accept-Encoding", "gzip", "If-None-Match", `W/"v1"`}, true, 304},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(tc.method, "/", tc.header...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get("X-Cache"); got != Hit {
				t.Errorf("X-Cache = %q", got)
			}
			if got := rec.Header().Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary = %q, want Accept-Encoding", got)
			}
			gz := rec.Header().Get("Content-Encoding") == "gzip"
			if tc.status == 304 {
				return
			}
			if gz != tc.wantGzip {
				t.Fatalf("Content-Encoding = %q, want gzip %v", rec.Header().Get("Content-Encoding"), tc.wantGzip)
			}
			etag := rec.Header().Get("Etag")
			if gz && etag != `W/"v1"` || !gz && etag != `"v1"` {
				t.Errorf("Etag = %s", etag)
			}
			body := rec.Body.Bytes()
			if tc.method == "HEAD" {
				if len(body) != 0 {
					t.Errorf("HEAD body of %d bytes", len(body))
				}
				if cl := rec.Header().Get("Content-Length"); cl == "" || cl == "5800" {
					t.Errorf("HEAD Content-Length = %q, want the gzip variant's", cl)
				}
				return
			}
			if gz {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if rec.Header().Get("Content-Length") != itoa(rec.Body.Len()) {
					t.Errorf("Content-Length %s, body %d", rec.Header().Get("Content-Length"), rec.Body.Len())
				}
			}
			want := page
			if tc.status == 206 {
				want = page[:10]
			}
			if string(body) != want {
				t.Errorf("body differs: %d bytes, want %d", len(body), len(want))
			}
		})
	}
	if n := h.up.calls.Load(); n != 1 {
		t.Errorf("PHP called %d times, want 1", n)
	}
}

// TestGzipVariantOnlyForText: images, small pages and pages PHP compressed
// itself get no variant.
func TestGzipVariantOnlyForText(t *testing.T) {
	for _, tc := range []struct{ name, ctype, enc, body string }{
		{"image", "image/png", "", strings.Repeat("x", 4096)},
		{"small", "text/html", "", "tiny page"},
		{"compressed by PHP", "text/html", "br", strings.Repeat("x", 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.up.respond = func(w http.ResponseWriter, r *http.Request, n int64) error {
				w.Header().Set("Content-Type", tc.ctype)
				if tc.enc != "" {
					w.Header().Set("Content-Encoding", tc.enc)
				}
				io.WriteString(w, tc.body)
				return nil
			}
			h.do("GET", "/p/", "Accept-Encoding", "gzip, br")
			rec := h.do("GET", "/p/", "Accept-Encoding", "gzip, br")
			expect(t, rec, Hit, tc.body)
			if got := rec.Header().Get("Content-Encoding"); got != tc.enc {
				t.Errorf("Content-Encoding = %q, want %q", got, tc.enc)
			}
			if got := rec.Header().Get("Vary"); got != "" {
				t.Errorf("Vary = %q", got)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
