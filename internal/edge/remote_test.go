package edge

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mtls"
)

// lyingShard is a static server that answers every request with what
// answer says, to check what the edge refuses to pass on.
func lyingShard(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	m := newTestMesh(t)
	addr := m.serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		answer(w, r)
	}))
	ed := New(Config{DialTimeout: time.Second, Mesh: m.edge})
	ed.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: "/nonexistent/htdocs",
		Gateway: addr, Shard: testShardName, State: Serving}}))
	return ed, &hits
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://site.test"+target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// PHP source, dot-files, dumps and logs are never relayed as static files,
// even from a shard that offers them.
func TestRemoteNeverServesForbiddenFiles(t *testing.T) {
	ed, hits := lyingShard(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerTry, "static")
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		io.WriteString(w, "SECRET from "+r.URL.Path)
	})
	for _, p := range []string{"/.htaccess", "/.git/config", "/wp-config.php", "/Upper.PHP", "/x.phtml", "/dump.sql",
		"/debug.log", "/readme.txt~", "/wp-config.php.save", "/dir/", "/%2eenv"} {
		rec := get(t, ed, "GET", p)
		if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "SECRET") {
			t.Errorf("%s: %d %q", p, rec.Code, rec.Body.String())
		}
	}
	// Dot segments are refused before the shard is even asked.
	before := hits.Load()
	get(t, ed, "GET", "/.htaccess")
	get(t, ed, "GET", "/a/.git/HEAD")
	if hits.Load() != before {
		t.Error("the edge asked the shard about a dot-file")
	}
	// A plain file is relayed.
	if rec := get(t, ed, "GET", "/style.css"); rec.Code != 200 || rec.Body.String() != "SECRET from /style.css" ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("style.css: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

// A script or redirect the edge would not choose itself is refused (502),
// never run or followed.
func TestRemoteRefusesBadDecisions(t *testing.T) {
	var decision atomic.Pointer[http.Header]
	ed, _ := lyingShard(t, func(w http.ResponseWriter, r *http.Request) {
		h := *decision.Load()
		for k, v := range h {
			w.Header()[k] = v
		}
		if h.Get("Location") != "" {
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for _, h := range []http.Header{
		{headerTry: {"php"}, headerScript: {"/wp-content/uploads/shell.php"}},
		{headerTry: {"php"}, headerScript: {"/a/../wp-content/uploads/shell.php"}},
		{headerTry: {"php"}, headerScript: {"/readme.txt"}},
		{headerTry: {"php"}, headerScript: {"/.hidden/x.php"}},
		{headerTry: {"php"}, headerScript: {"index.php"}},
		{headerTry: {"php"}, headerScript: {"/index.php"}, headerPathInfo: {"no-slash"}},
		{headerTry: {"redirect"}, "Location": {"//evil.example/"}},
		{headerTry: {"redirect"}, "Location": {"https://evil.example/"}},
		{headerTry: {"redirect"}, "Location": {"/\\evil.example"}},
		{headerTry: {"nonsense"}},
	} {
		decision.Store(&h)
		rec := get(t, ed, "GET", "/anything")
		if rec.Code != http.StatusBadGateway {
			t.Errorf("decision %v: %d, want 502", h, rec.Code)
		}
	}
}

// A shard that does not (yet) serve the site answers 421; the edge says
// "not available yet" with Retry-After. A shard that cannot be reached is
// a 502.
func TestRemoteShardStates(t *testing.T) {
	ed, _ := lyingShard(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMisdirectedRequest)
	})
	if rec := get(t, ed, "GET", "/"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("421 from the shard: %d %v", rec.Code, rec.Header())
	}
	m := newTestMesh(t)
	down := New(Config{DialTimeout: 200 * time.Millisecond, Mesh: m.edge})
	down.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: "/x",
		Gateway: "127.0.0.1:1", Shard: testShardName, State: Serving}}))
	if rec := get(t, down, "GET", "/style.css"); rec.Code != http.StatusBadGateway {
		t.Errorf("shard down: %d", rec.Code)
	}
	bad := New(Config{Mesh: m.edge})
	bad.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: "/x",
		Gateway: "file:///etc", Shard: testShardName, State: Serving}}))
	if rec := get(t, bad, "GET", "/style.css"); rec.Code != http.StatusBadGateway {
		t.Errorf("bad gateway address: %d", rec.Code)
	}
}

// The edge talks only to the shard the route names, and the gateway only to
// edges of the platform's CA: a gateway holding another shard's certificate,
// an edge without credentials and a client of another CA get nothing.
func TestGatewayIdentities(t *testing.T) {
	f := newRemoteFixture(t)
	// The route names shard s2, but the gateway proves s1.
	wrong := New(Config{DialTimeout: time.Second, Mesh: f.mesh.edge})
	wrong.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: f.docroot,
		Gateway: f.gateway, Shard: "s2", State: Serving}}))
	for _, p := range []string{"/style.css", "/"} {
		if rec := get(t, wrong, "GET", p); rec.Code != http.StatusBadGateway || strings.Contains(rec.Body.String(), "color") {
			t.Errorf("%s from a gateway that is not the route's shard: %d", p, rec.Code)
		}
	}
	// No credentials at all.
	none := New(Config{DialTimeout: time.Second})
	none.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: f.docroot,
		Gateway: f.gateway, Shard: testShardName, State: Serving}}))
	if rec := get(t, none, "GET", "/"); rec.Code != http.StatusBadGateway {
		t.Errorf("edge without credentials: %d", rec.Code)
	}
	// A client that is a shard (not an edge), and one of another CA.
	other := newTestMesh(t) // same test secret: same CA, other keys
	shardAsClient := other.shard.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: testShardName}, ProtoFastCGI)
	if c, err := tls.Dial("tcp", f.gateway, shardAsClient); err == nil {
		_, err = c.Write([]byte("site.test\n"))
		buf := make([]byte, 10)
		n, rerr := c.Read(buf)
		c.Close()
		if rerr == nil && n > 0 {
			t.Errorf("a shard's certificate reached the FastCGI relay: %q", buf[:n])
		}
	}
	foreign, err := mtls.NewAuthority(bytes.Repeat([]byte{1}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	fm := &testMesh{ca: foreign}
	fe := fm.creds(t, mtls.Identity{Role: mtls.RoleEdge, Name: "e1"})
	stranger := New(Config{DialTimeout: time.Second, Mesh: fe})
	stranger.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: f.docroot,
		Gateway: f.gateway, Shard: testShardName, State: Serving}}))
	for _, p := range []string{"/style.css", "/"} {
		if rec := get(t, stranger, "GET", p); rec.Code != http.StatusBadGateway {
			t.Errorf("%s by an edge of another CA: %d", p, rec.Code)
		}
	}
	// A plain TCP client gets no FastCGI relay either.
	c, err := net.Dial("tcp", f.gateway)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("site.test\n\x01\x01\x00\x01\x00\x08\x00\x00"))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Close()
	if bytes.Contains(buf[:n], []byte("ok")) {
		t.Errorf("plain TCP got %q", buf[:n])
	}
	// Hosts the shard does not serve get no pool.
	conn, err := tls.Dial("tcp", f.gateway, f.mesh.edge.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: testShardName}, ProtoFastCGI))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("elsewhere.test\n"))
	line, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(line), "error") {
		t.Errorf("unknown host: %q", line)
	}
}

// The static server answers edges only: GET and HEAD, a valid method
// header, known hosts.
func TestStaticServerProtocol(t *testing.T) {
	f := newRemoteFixture(t)
	do := func(method, host, target string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(method, "https://"+f.gateway+target, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := f.edge.remote.client(testShardName).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := do("POST", "site.test", "/style.css"); r.StatusCode != 405 {
		t.Errorf("POST: %d", r.StatusCode)
	}
	if r := do("GET", "site.test", "/", "X-AIPress-Method", "GET /x"); r.StatusCode != 400 {
		t.Errorf("bad method header: %d", r.StatusCode)
	}
	if r := do("GET", "other.test", "/style.css"); r.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("unknown host: %d", r.StatusCode)
	}
	r := do("GET", "site.test", "/hello/", "X-AIPress-Method", "POST")
	if r.StatusCode != 204 || r.Header.Get(headerTry) != "php" || r.Header.Get(headerScript) != "/index.php" {
		t.Errorf("permalink: %d %v", r.StatusCode, r.Header)
	}
	r = do("GET", "site.test", "/index.php/a%20b/c")
	if r.Header.Get(headerScript) != "/index.php" || r.Header.Get(headerPathInfo) != "/a%20b/c" {
		t.Errorf("path info: %v", r.Header)
	}
	// PHP in uploads is not named as a script, nor is its source served.
	if r := do("GET", "site.test", "/wp-content/uploads/x.php"); r.StatusCode != 404 || r.Header.Get(headerTry) != "" {
		t.Errorf("uploads php: %d %v", r.StatusCode, r.Header)
	}
	if r := do("GET", "site.test", "/wp-content/uploads/evil.php"); r.StatusCode != 404 {
		t.Errorf("php symlink out of the docroot: %d %v", r.StatusCode, r.Header)
	}
}

// Small remote files are served from memory while fresh, then revalidated:
// a changed file is fetched again, an unchanged one is confirmed with 304.
func TestRemoteStaticCache(t *testing.T) {
	old := remoteFresh
	remoteFresh = 300 * time.Millisecond
	t.Cleanup(func() { remoteFresh = old })
	f := newRemoteFixture(t)
	fetch := func(hdr ...string) (int, string) {
		m := map[string]string{}
		for i := 0; i+1 < len(hdr); i += 2 {
			m[hdr[i]] = hdr[i+1]
		}
		resp, body := f.do(t, request{target: "/style.css", header: m})
		return resp.StatusCode, body
	}
	if code, body := fetch(); code != 200 || body != "body { color: red }\n" {
		t.Fatalf("first: %d %q", code, body)
	}
	hits := f.staticHits.Load()
	if code, body := fetch(); code != 200 || body != "body { color: red }\n" {
		t.Fatalf("cached: %d %q", code, body)
	}
	if code, body := fetch("Range", "bytes=5-9"); code != 206 || body != "{ col" {
		t.Fatalf("cached range: %d %q", code, body)
	}
	if f.staticHits.Load() != hits {
		t.Errorf("fresh cached file asked the shard %d times", f.staticHits.Load()-hits)
	}
	time.Sleep(350 * time.Millisecond)
	if code, body := fetch(); code != 200 || body != "body { color: red }\n" {
		t.Fatalf("revalidated: %d %q", code, body)
	}
	if f.staticHits.Load() != hits+1 {
		t.Errorf("revalidation: %d requests to the shard, want 1", f.staticHits.Load()-hits)
	}
	p := filepath.Join(f.docroot, "style.css")
	if err := os.WriteFile(p, []byte("body { color: green }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	time.Sleep(350 * time.Millisecond)
	if code, body := fetch(); code != 200 || body != "body { color: green }\n" {
		t.Fatalf("after change: %d %q", code, body)
	}
	// Removed: the shard now says front controller, and so does the edge.
	os.Remove(p)
	time.Sleep(350 * time.Millisecond)
	if code, body := fetch(); code != 200 || !strings.Contains(body, `"X_SCRIPT":"index"`) {
		t.Fatalf("after removal: %d %.200q", code, body)
	}
}

// A large file streams through with ranges and conditional requests passed
// on to the shard.
func TestRemoteLargeFileStreams(t *testing.T) {
	f := newRemoteFixture(t)
	big := strings.Repeat("0123456789", 40<<10) // 400 KiB, above the memory limit
	writeFiles(t, f.docroot, map[string]string{"wp-content/uploads/big.bin": big})
	resp, body := f.do(t, request{target: "/wp-content/uploads/big.bin"})
	if resp.StatusCode != 200 || body != big || resp.Header.Get("Content-Length") != "409600" {
		t.Fatalf("big: %d len %d %v", resp.StatusCode, len(body), resp.Header)
	}
	resp, body = f.do(t, request{target: "/wp-content/uploads/big.bin", header: map[string]string{"Range": "bytes=400000-400009"}})
	if resp.StatusCode != 206 || body != big[400000:400010] || resp.Header.Get("Content-Range") != "bytes 400000-400009/409600" {
		t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	lm := resp.Header.Get("Last-Modified")
	resp, _ = f.do(t, request{target: "/wp-content/uploads/big.bin", header: map[string]string{"If-Modified-Since": lm}})
	if resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
}
