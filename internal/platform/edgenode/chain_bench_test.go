package edgenode

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/metrics"
	"github.com/aipress/aipress/internal/sitelog"
)

// BenchmarkCacheHitChain measures the edge's CPU cost of a page-cache hit
// through the middlewares `aipress up` installs (purge endpoint, page
// cache, metrics, the site's access log), without the network: what limits
// `make bench-edge`'s cache-hit row once the wire is taken away.
func BenchmarkCacheHitChain(b *testing.B) {
	page := make([]byte, 40<<10)
	for i := range page {
		page[i] = 'a' + byte(i%26)
	}
	php := func(next edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			w.Write(page)
			return nil
		}
	}
	c := pagecache.New(pagecache.Config{})
	m := metrics.New()
	logs, err := sitelog.NewWriter(sitelog.WriterConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer logs.Close()
	ed := edge.New(edge.Config{
		Middlewares: []edge.Middleware{purge.Middleware(make([]byte, 32), c, nil), c.Middleware(), php},
		Observe:     observeAll(m.Observe, accessLogger(logs, time.Now, slog.New(slog.DiscardHandler))),
	})
	ed.SetTable(edge.NewTable([]edge.Route{{Host: "blog.localhost", Site: "blog.localhost", Docroot: "/nonexistent",
		Endpoint: "unix:/nonexistent.sock", State: edge.Serving, Options: edge.RouteOptions{CacheTTL: 300e9}}}))
	req := httptest.NewRequest("GET", "http://blog.localhost/", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	w := httptest.NewRecorder()
	ed.ServeHTTP(w, req)
	w = httptest.NewRecorder()
	ed.ServeHTTP(w, req)
	if w.Header().Get("X-Cache") != "HIT" {
		b.Fatalf("second request X-Cache = %q", w.Header().Get("X-Cache"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ed.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the edge and not a recorder's buffer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkStaticChain measures the edge's CPU cost of a small static file
// (a theme's CSS) through the same middlewares, without the network.
func BenchmarkStaticChain(b *testing.B) {
	dir := b.TempDir()
	css := make([]byte, 18<<10)
	for i := range css {
		css[i] = 'a' + byte(i%26)
	}
	if err := os.WriteFile(filepath.Join(dir, "style.css"), css, 0o644); err != nil {
		b.Fatal(err)
	}
	c := pagecache.New(pagecache.Config{})
	m := metrics.New()
	ed := edge.New(edge.Config{
		Middlewares: []edge.Middleware{purge.Middleware(make([]byte, 32), c, nil), c.Middleware()},
		Observe:     m.Observe,
	})
	ed.SetTable(edge.NewTable([]edge.Route{{Host: "blog.localhost", Site: "blog.localhost", Docroot: dir,
		Endpoint: "unix:/nonexistent.sock", State: edge.Serving, Options: edge.RouteOptions{CacheTTL: 300e9}}}))
	req := httptest.NewRequest("GET", "http://blog.localhost/style.css", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	w := httptest.NewRecorder()
	ed.ServeHTTP(w, req)
	if w.Code != 200 || w.Body.Len() != len(css) {
		b.Fatalf("GET /style.css = %d, %d bytes", w.Code, w.Body.Len())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ed.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	}
}
