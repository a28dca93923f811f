package edge

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStaticGzipVariant: a small text file is kept with a gzip variant,
// sent (from the first request on) to visitors that accept gzip; the
// identity bytes go to the others, to ranges and to q=0; both say Vary.
// Files that are not text get neither.
func TestStaticGzipVariant(t *testing.T) {
	dir := t.TempDir()
	css := strings.Repeat("body { color: red; }\n", 300)
	png := strings.Repeat("\x89PNG", 1000)
	for name, body := range map[string]string{"style.css": css, "logo.png": png, "tiny.css": "a{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "style.css"), mod, mod)
	s := New(Config{})
	s.SetTable(NewTable([]Route{{Host: "site.test", Site: "site.test", Docroot: dir, Endpoint: "unix:/nonexistent.sock", State: Serving}}))
	tests := []struct {
		name, path, method string
		header             []string
		status             int
		wantGzip, wantVary bool
		want               string
	}{
		{"plain", "/style.css", "GET", nil, 200, false, true, css},
		{"gzip", "/style.css", "GET", []string{"Accept-Encoding", "gzip, br"}, 200, true, true, css},
		{"gzip again (memory)", "/style.css", "GET", []string{"Accept-Encoding", "gzip"}, 200, true, true, css},
		{"q=0", "/style.css", "GET", []string{"Accept-Encoding", "gzip;q=0"}, 200, false, true, css},
		{"range", "/style.css", "GET", []string{"Accept-Encoding", "gzip", "Range", "bytes=0-3"}, 206, false, true, css[:4]},
		{"HEAD gzip", "/style.css", "HEAD", []string{"Accept-Encoding", "gzip"}, 200, true, true, ""},
		{"not modified", "/style.css", "GET", []string{"Accept-Encoding", "gzip", "If-Modified-Since", mod.Format(http.TimeFormat)}, 304, false, true, ""},
		{"modified since", "/style.css", "GET", []string{"Accept-Encoding", "gzip", "If-Modified-Since", mod.Add(-time.Hour).Format(http.TimeFormat)}, 200, true, true, css},
		{"image", "/logo.png", "GET", []string{"Accept-Encoding", "gzip"}, 200, false, false, png},
		{"tiny", "/tiny.css", "GET", []string{"Accept-Encoding", "gzip"}, 200, false, false, "a{}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://site.test"+tc.path, nil)
			for i := 0; i+1 < len(tc.header); i += 2 {
				r.Header.Set(tc.header[i], tc.header[i+1])
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			h := w.Header()
			if got := h.Get("Vary") == "Accept-Encoding"; got != tc.wantVary {
				t.Errorf("Vary = %q", h.Get("Vary"))
			}
			if tc.status == 304 {
				return
			}
			if ct := h.Get("Content-Type"); ct != map[bool]string{true: "text/css; charset=utf-8", false: "image/png"}[strings.HasSuffix(tc.path, ".css")] {
				t.Errorf("Content-Type = %q", ct)
			}
			gz := h.Get("Content-Encoding") == "gzip"
			if gz != tc.wantGzip {
				t.Fatalf("Content-Encoding = %q, want gzip %v", h.Get("Content-Encoding"), tc.wantGzip)
			}
			body := w.Body.Bytes()
			if tc.method == "HEAD" {
				if len(body) != 0 || h.Get("Content-Length") == strconv.Itoa(len(css)) {
					t.Errorf("HEAD: %d body bytes, Content-Length %s", len(body), h.Get("Content-Length"))
				}
				return
			}
			// http.ServeContent (conditional requests) leaves an encoded
			// body's length to the server.
			if cl := h.Get("Content-Length"); cl != strconv.Itoa(len(body)) && (cl != "" || !gz) {
				t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
			}
			if gz {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(body) != tc.want {
				t.Errorf("body: %d bytes, want %d", len(body), len(tc.want))
			}
		})
	}
}
