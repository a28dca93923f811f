package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const dumpServer = `<?php
header('Content-Type: application/json');
$_SERVER['X_SCRIPT'] = %q;
echo json_encode($_SERVER);
`

// fixture is a docroot, a php-fpm pool serving it and an edge in front.
type fixture struct {
	docroot string
	allowed string
	fpm     *testFPM
	edge    *Server
	ts      *httptest.Server
	port    string
	logs    *syncBuffer
	client  *http.Client
	// gateway is the shard's gateway (host:port) when the edge's routes
	// point to it (newRemoteFixture); staticHits counts the requests its
	// static server answered.
	gateway    string
	mesh       *testMesh
	staticHits *atomic.Int64
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T) *fixture { return newFixtureMode(t, false) }

// newRemoteFixture is newFixture with the docroot "on another machine": a
// StaticServer serves it, and the edge's Serving routes name its URL.
func newRemoteFixture(t *testing.T) *fixture { return newFixtureMode(t, true) }

func newFixtureMode(t *testing.T, remote bool) *fixture {
	fpm := startFPM(t)
	base := fpm.dir
	f := &fixture{
		docroot: filepath.Join(base, "sites", "site", "docroot"),
		allowed: filepath.Join(base, "usr-share-javascript"),
		fpm:     fpm,
		logs:    &syncBuffer{},
	}
	writeFiles(t, f.docroot, map[string]string{
		"index.php":  fmt.Sprintf(dumpServer, "index"),
		"server.php": fmt.Sprintf(dumpServer, "server"),
		"cookies.php": `<?php
setcookie('a', '1');
setcookie('b', '2');
http_response_code(201);
header('Location: /created/1');
echo 'created';`,
		"post.php": `<?php
header('Content-Type: text/plain');
echo $_SERVER['CONTENT_LENGTH'] ?? '', "\n", file_get_contents('php://input');`,
		"slow.php":       `<?php sleep(1); echo 'slow done';`,
		"longheader.php": `<?php header('X-Long: ' . str_repeat('a', 3000)); echo 'long ok';`,
		"stream.php": `<?php
while (ob_get_level()) { ob_end_flush(); }
header('Content-Type: text/plain');
echo "first\n"; flush();
sleep(1);
echo "second\n";`,
		"sub/index.php":                     `<?php echo 'sub index';`,
		"style.css":                         "body { color: red }\n",
		"wp-config.php":                     `<?php /* SECRET-wp-config */ echo 'config ran';`,
		".htaccess":                         "SECRET-htaccess",
		".git/config":                       "SECRET-git",
		"dump.sql":                          "SECRET-sql",
		"debug.log":                         "SECRET-log",
		"old.bak":                           "SECRET-bak",
		"readme.txt~":                       "SECRET-tilde",
		"Upper.PHP":                         `<?php /* SECRET-upper */`,
		"wp-content/uploads/x.php":          `<?php echo 'uploaded code ran'; // SECRET-upload`,
		"wp-content/uploads/2024/photo.txt": "a photo",
	})
	// Another site's secrets, outside this docroot.
	writeFiles(t, filepath.Join(base, "sites", "other", "docroot"), map[string]string{
		"wp-config.php": "<?php // SECRET-other-site",
		"secret.txt":    "SECRET-other-file",
	})
	writeFiles(t, f.allowed, map[string]string{"jquery/jquery.js": "/* jquery */\n"})
	uploads := filepath.Join(f.docroot, "wp-content", "uploads")
	symlink(t, filepath.Join(base, "sites", "other", "docroot", "wp-config.php"), filepath.Join(uploads, "evil.txt"))
	symlink(t, filepath.Join(base, "sites", "other", "docroot", "secret.txt"), filepath.Join(uploads, "evil2.txt"))
	symlink(t, filepath.Join(base, "sites", "other", "docroot"), filepath.Join(uploads, "otherdir"))
	symlink(t, "../../wp-config.php", filepath.Join(uploads, "config.txt"))
	symlink(t, filepath.Join(base, "sites", "other", "docroot", "wp-config.php"), filepath.Join(uploads, "evil.php"))
	symlink(t, filepath.Join(f.allowed, "jquery", "jquery.js"), filepath.Join(uploads, "jq.js"))

	f.edge = New(Config{
		Logger:              slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AllowedSymlinkRoots: []string{f.allowed},
		MaxBodyBytes:        1024,
		DialTimeout:         time.Second,
		PHPRetryWait:        300 * time.Millisecond, // "pool down" waits this long (retry_test.go)
		RetryAfter:          120 * time.Second,
		TempDir:             base,
	})
	routes := []Route{
		{Host: "site.test", Site: "site", Docroot: f.docroot, Endpoint: "unix:" + fpm.socket, State: Serving},
		{Host: "down.test", Site: "down", Docroot: f.docroot, Endpoint: "unix:" + filepath.Join(base, "nope.sock"), State: Serving},
		{Host: "suspended.test", Site: "suspended", Docroot: f.docroot, State: Suspended},
		{Host: "new.test", Site: "new", State: Unavailable},
		{Host: "shard-down.test", Site: "shard-down", Docroot: f.docroot, Endpoint: "unix:" + fpm.socket, State: ShardDown},
		{Host: "frozen.test", Site: "frozen", Docroot: f.docroot, Endpoint: "unix:" + fpm.socket, State: Serving, Options: RouteOptions{WritesFrozen: true}},
	}
	if remote {
		f.staticHits = &atomic.Int64{}
		// The shard's side knows its sites by host, docroot and pool.
		static := New(Config{
			Logger:              slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "shard"),
			AllowedSymlinkRoots: []string{f.allowed},
			StaticServer:        true,
			Observe:             func(*http.Request, *RequestInfo) { f.staticHits.Add(1) },
		})
		var shardRoutes []Route
		for _, rt := range routes {
			shardRoutes = append(shardRoutes, Route{Host: rt.Host, Site: rt.Site, Docroot: rt.Docroot, Endpoint: rt.Endpoint, State: Serving})
		}
		static.SetTable(NewTable(shardRoutes))
		f.mesh = newTestMesh(t)
		f.gateway = f.mesh.startGateway(t, static, slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "gateway"))
		for i := range routes {
			routes[i].Gateway, routes[i].Shard = f.gateway, testShardName
			routes[i].Endpoint = "" // reached through the gateway only
		}
		// The edge allows no symlink roots of its own: it reads no docroot.
		f.edge = New(Config{
			Logger:       slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			MaxBodyBytes: 1024,
			DialTimeout:  time.Second,
			PHPRetryWait: 300 * time.Millisecond,
			RetryAfter:   120 * time.Second,
			TempDir:      base,
			Mesh:         f.mesh.edge,
		})
	}
	f.edge.SetTable(NewTable(routes))
	f.ts = httptest.NewServer(f.edge)
	t.Cleanup(f.ts.Close)
	u, _ := url.Parse(f.ts.URL)
	f.port = u.Port()
	f.client = &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge log:\n%s", f.logs.String())
			b, _ := os.ReadFile(filepath.Join(base, "php-fpm.log"))
			t.Logf("php-fpm log:\n%s", b)
		}
	})
	return f
}

type request struct {
	method  string
	host    string // without port; the test server's port is appended
	target  string
	header  map[string]string
	body    string
	chunked bool
}

func (f *fixture) do(t *testing.T, rq request) (*http.Response, string) {
	t.Helper()
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	if rq.host == "" {
		rq.host = "site.test"
	}
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
		if rq.chunked {
			body = io.MultiReader(body) // hides the length
		}
	}
	req, err := http.NewRequest(rq.method, f.ts.URL+rq.target, body)
	if err != nil {
		t.Fatal(err)
	}
	if rq.chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	req.Host = rq.host + ":" + f.port
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", rq.method, rq.target, err)
	}
	if id := resp.Header.Get("X-Request-Id"); len(id) != 24 {
		t.Errorf("%s %s: X-Request-Id = %q", rq.method, rq.target, id)
	}
	return resp, string(b)
}

func serverVars(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("PHP did not return $_SERVER as JSON: %v\n%s", err, body)
	}
	return m
}

func wantVars(t *testing.T, m map[string]any, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("$_SERVER[%s] missing, want %q", k, v)
			continue
		}
		if fmt.Sprint(got) != v {
			t.Errorf("$_SERVER[%s] = %q, want %q", k, got, v)
		}
	}
}

func TestServerScenarios(t *testing.T) {
	t.Run("local", func(t *testing.T) { serverScenarios(t, newFixture(t)) })
	// The same scenarios with the docroot on a "remote" shard: every answer
	// must be the same, decided by the shard's static server.
	t.Run("remote", func(t *testing.T) {
		f := newRemoteFixture(t)
		serverScenarios(t, f)
		if f.staticHits.Load() == 0 {
			t.Error("the edge never asked the shard's static server")
		}
	})
}

func serverScenarios(t *testing.T, f *fixture) {
	secretFree := func(t *testing.T, body string) {
		t.Helper()
		if strings.Contains(body, "SECRET") {
			t.Errorf("response leaks a secret:\n%s", body)
		}
	}
	tests := []struct {
		name       string
		req        request
		wantStatus int
		check      func(t *testing.T, resp *http.Response, body string)
	}{
		{
			name: "permalink fallback reaches index.php with REQUEST_URI intact",
			req:  request{target: "/hello-world/?a=1"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				wantVars(t, serverVars(t, body), map[string]string{
					"X_SCRIPT":        "index",
					"REQUEST_URI":     "/hello-world/?a=1",
					"QUERY_STRING":    "a=1",
					"SCRIPT_NAME":     "/index.php",
					"SCRIPT_FILENAME": filepath.Join(f.docroot, "index.php"),
					"DOCUMENT_ROOT":   f.docroot,
					"DOCUMENT_URI":    "/index.php",
				})
			},
		},
		{
			name: "CGI params and HTTP_HOST with port",
			req: request{target: "/server.php?x=1&y=%2F", header: map[string]string{
				"X-Forwarded-For": "6.6.6.6", "X_Forwarded_For": "7.7.7.7", "Proxy": "http://evil",
				"X-Custom-Thing": "v", "Cookie": "c=1; d=2",
			}},
			wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				m := serverVars(t, body)
				wantVars(t, m, map[string]string{
					"X_SCRIPT":               "server",
					"HTTP_HOST":              "site.test:" + f.port,
					"SERVER_NAME":            "site.test",
					"SERVER_PORT":            f.port,
					"SERVER_SOFTWARE":        "aipress",
					"SERVER_PROTOCOL":        "HTTP/1.1",
					"GATEWAY_INTERFACE":      "CGI/1.1",
					"REQUEST_METHOD":         "GET",
					"REQUEST_URI":            "/server.php?x=1&y=%2F",
					"QUERY_STRING":           "x=1&y=%2F",
					"SCRIPT_NAME":            "/server.php",
					"SCRIPT_FILENAME":        filepath.Join(f.docroot, "server.php"),
					"REMOTE_ADDR":            "127.0.0.1",
					"HTTP_X_FORWARDED_FOR":   "127.0.0.1",
					"HTTP_X_FORWARDED_PROTO": "http",
					"HTTP_X_FORWARDED_HOST":  "site.test:" + f.port,
					"HTTP_X_CUSTOM_THING":    "v",
					"HTTP_COOKIE":            "c=1; d=2",
				})
				if _, ok := m["HTTP_PROXY"]; ok {
					t.Error("Proxy header passed to PHP (httpoxy)")
				}
				if _, ok := m["HTTPS"]; ok {
					t.Error("HTTPS set on a plain HTTP request")
				}
				if p, _ := m["REMOTE_PORT"].(string); p == "" {
					t.Error("REMOTE_PORT missing")
				}
			},
		},
		{
			name: "PATH_INFO",
			req:  request{target: "/index.php/foo/bar?q=1"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				wantVars(t, serverVars(t, body), map[string]string{
					"X_SCRIPT": "index", "SCRIPT_NAME": "/index.php", "PATH_INFO": "/foo/bar",
					"REQUEST_URI": "/index.php/foo/bar?q=1",
				})
			},
		},
		{
			name: "directory without slash redirects", req: request{target: "/sub?x=1"}, wantStatus: 301,
			check: func(t *testing.T, resp *http.Response, _ string) {
				if loc := resp.Header.Get("Location"); loc != "/sub/?x=1" {
					t.Errorf("Location = %q, want /sub/?x=1", loc)
				}
			},
		},
		{
			name: "directory index.php runs", req: request{target: "/sub/"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				if body != "sub index" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{
			name: "directory without index goes to the front controller", req: request{target: "/wp-content/uploads/2024/"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				wantVars(t, serverVars(t, body), map[string]string{"X_SCRIPT": "index", "REQUEST_URI": "/wp-content/uploads/2024/"})
			},
		},
		{
			name: "status, two cookies and Location from PHP", req: request{target: "/cookies.php"}, wantStatus: 201,
			check: func(t *testing.T, resp *http.Response, body string) {
				if loc := resp.Header.Get("Location"); loc != "/created/1" {
					t.Errorf("Location = %q", loc)
				}
				c := resp.Header.Values("Set-Cookie")
				if len(c) != 2 || !strings.HasPrefix(c[0], "a=1") || !strings.HasPrefix(c[1], "b=2") {
					t.Errorf("Set-Cookie = %q, want a=1 and b=2", c)
				}
				if body != "created" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{
			name: "POST body reaches PHP", wantStatus: 200,
			req: request{method: "POST", target: "/post.php", body: "hello=world", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
			check: func(t *testing.T, _ *http.Response, body string) {
				if body != "11\nhello=world" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{
			name: "chunked POST body is spooled with a CONTENT_LENGTH", wantStatus: 200,
			req: request{method: "POST", target: "/post.php", body: strings.Repeat("z", 1000), chunked: true},
			check: func(t *testing.T, _ *http.Response, body string) {
				if body != "1000\n"+strings.Repeat("z", 1000) {
					t.Errorf("body = %.40q…", body)
				}
			},
		},
		{name: "oversize body", req: request{method: "POST", target: "/post.php", body: strings.Repeat("z", 2000)}, wantStatus: 413},
		{name: "oversize chunked body", req: request{method: "POST", target: "/post.php", body: strings.Repeat("z", 2000), chunked: true}, wantStatus: 413},
		{name: "oversize body to permalink", req: request{method: "POST", target: "/wp-comments-post/", body: strings.Repeat("z", 2000)}, wantStatus: 413},
		{
			name: "response header longer than 1 KiB", req: request{target: "/longheader.php"}, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body string) {
				if len(resp.Header.Get("X-Long")) != 3000 || body != "long ok" {
					t.Errorf("X-Long has %d bytes, body %q", len(resp.Header.Get("X-Long")), body)
				}
			},
		},
		{
			name: "static css", req: request{target: "/style.css"}, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body string) {
				if ct := resp.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				if body != "body { color: red }\n" {
					t.Errorf("body = %q", body)
				}
				if resp.Header.Get("Last-Modified") == "" {
					t.Error("no Last-Modified")
				}
			},
		},
		{
			name: "static range", req: request{target: "/style.css", header: map[string]string{"Range": "bytes=0-3"}}, wantStatus: 206,
			check: func(t *testing.T, _ *http.Response, body string) {
				if body != "body" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{
			name: "static If-Modified-Since", wantStatus: 304,
			req: request{target: "/style.css", header: map[string]string{"If-Modified-Since": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}},
		},
		{name: "static POST not allowed", req: request{method: "POST", target: "/style.css", body: "x"}, wantStatus: 405},
		{
			name: "wp-config.php runs, its source is never served", req: request{target: "/wp-config.php"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				if body != "config ran" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{name: ".htaccess", req: request{target: "/.htaccess"}, wantStatus: 404},
		{name: ".git/config", req: request{target: "/.git/config"}, wantStatus: 404},
		{name: "dot segment via ..", req: request{target: "/sub/../.git/config"}, wantStatus: 404},
		{name: "encoded dot segment", req: request{target: "/%2egit/config"}, wantStatus: 404},
		{name: "sql dump", req: request{target: "/dump.sql"}, wantStatus: 404},
		{name: "log file", req: request{target: "/debug.log"}, wantStatus: 404},
		{name: "backup file", req: request{target: "/old.bak"}, wantStatus: 404},
		{name: "editor backup", req: request{target: "/readme.txt~"}, wantStatus: 404},
		{name: "upper-case .PHP source", req: request{target: "/Upper.PHP"}, wantStatus: 404},
		{name: "php in uploads neither runs nor leaks", req: request{target: "/wp-content/uploads/x.php"}, wantStatus: 404},
		{name: "php in uploads via PATH_INFO", req: request{target: "/wp-content/uploads/x.php/foo"}, wantStatus: 404},
		{name: "symlink in uploads to another site", req: request{target: "/wp-content/uploads/evil.txt"}, wantStatus: 404},
		{name: "symlink in uploads to another site's file", req: request{target: "/wp-content/uploads/evil2.txt"}, wantStatus: 404},
		{name: "symlinked dir in uploads to another site", req: request{target: "/wp-content/uploads/otherdir/secret.txt"}, wantStatus: 404},
		{name: "php symlink in uploads to another site", req: request{target: "/wp-content/uploads/evil.php"}, wantStatus: 404},
		{name: "symlink in uploads to own wp-config.php", req: request{target: "/wp-content/uploads/config.txt"}, wantStatus: 404},
		{
			name: "symlink into an allowed root is served", req: request{target: "/wp-content/uploads/jq.js"}, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body string) {
				if body != "/* jquery */\n" {
					t.Errorf("body = %q", body)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") && !strings.HasPrefix(ct, "application/javascript") {
					t.Errorf("Content-Type = %q", ct)
				}
			},
		},
		{name: "plain upload", req: request{target: "/wp-content/uploads/2024/photo.txt"}, wantStatus: 200},
		{
			name: "missing static file goes to the front controller", req: request{target: "/wp-content/uploads/missing.jpg"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				wantVars(t, serverVars(t, body), map[string]string{"X_SCRIPT": "index", "SCRIPT_NAME": "/index.php", "REQUEST_URI": "/wp-content/uploads/missing.jpg"})
			},
		},
		{
			name: "POST to a permalink", req: request{method: "POST", target: "/wp-comments-post/", body: "a=1"}, wantStatus: 200,
			check: func(t *testing.T, _ *http.Response, body string) {
				wantVars(t, serverVars(t, body), map[string]string{"X_SCRIPT": "index", "REQUEST_METHOD": "POST"})
			},
		},
		{
			name: "HEAD of a static file", req: request{method: "HEAD", target: "/style.css"}, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body string) {
				if body != "" || resp.Header.Get("Content-Length") != "20" {
					t.Errorf("HEAD: Content-Length %q, body %q", resp.Header.Get("Content-Length"), body)
				}
			},
		},
		{name: "unknown host", req: request{host: "unknown.test", target: "/"}, wantStatus: 404},
		{
			name: "suspended", req: request{host: "suspended.test", target: "/"}, wantStatus: 503,
			check: func(t *testing.T, resp *http.Response, body string) {
				if ra := resp.Header.Get("Retry-After"); ra != "120" {
					t.Errorf("Retry-After = %q", ra)
				}
				if !strings.Contains(body, "maintenance") {
					t.Errorf("body = %q", body)
				}
			},
		},
		{
			name: "unavailable", req: request{host: "NEW.test", target: "/"}, wantStatus: 503,
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "not available yet") {
					t.Errorf("Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
				}
			},
		},
		{
			// A shard that stopped heartbeating: its route keeps its
			// endpoint, but nothing is served from it.
			name: "shard down", req: request{host: "shard-down.test", target: "/robots.txt"}, wantStatus: 503,
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.Header.Get("Retry-After") != "120" || !strings.Contains(body, "not responding") {
					t.Errorf("Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
				}
			},
		},
		{name: "frozen site reads", req: request{host: "frozen.test", target: "/robots.txt"}, wantStatus: 200},
		{
			name: "frozen site refuses writes", req: request{method: "POST", host: "frozen.test", target: "/", body: "a=1"}, wantStatus: 503,
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.Header.Get("Retry-After") != "120" || !strings.Contains(body, "being moved") {
					t.Errorf("Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
				}
			},
		},
		{
			name: "pool down", req: request{host: "down.test", target: "/"}, wantStatus: 502,
			check: func(t *testing.T, _ *http.Response, body string) {
				if strings.Contains(body, "nope.sock") {
					t.Errorf("502 page leaks the cause: %s", body)
				}
				if !strings.Contains(f.logs.String(), "nope.sock") {
					t.Error("cause of the 502 not logged")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, tc.req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d\n%s", resp.StatusCode, tc.wantStatus, body)
			}
			secretFree(t, body)
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}
}

// TestManyLargeHeaders sends more header bytes than fit in one FastCGI
// record: every pair must arrive intact (php-fpm parses records one by one).
func TestManyLargeHeaders(t *testing.T) {
	f := newFixture(t)
	h := map[string]string{}
	for i := range 30 {
		h[fmt.Sprintf("X-Big-%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 3000)
	}
	resp, body := f.do(t, request{target: "/server.php", header: h})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	m := serverVars(t, body)
	for k, v := range h {
		key := "HTTP_" + strings.ReplaceAll(strings.ToUpper(k), "-", "_")
		if m[key] != v {
			t.Errorf("%s: got %d bytes", key, len(fmt.Sprint(m[key])))
		}
	}
}

// TestTableSwapDuringRequest swaps in a table without the site while a slow
// PHP request runs: that request completes, later ones see the new table.
func TestTableSwapDuringRequest(t *testing.T) {
	f := newFixture(t)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.ts.URL+"/slow.php", nil)
		req.Host = "site.test:" + f.port
		resp, err := f.client.Do(req)
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b)}
	}()
	time.Sleep(300 * time.Millisecond)
	f.edge.SetTable(NewTable([]Route{{Host: "other.test", State: Suspended}}))
	if resp, _ := f.do(t, request{target: "/style.css"}); resp.StatusCode != 404 {
		t.Errorf("after swap: status %d, want 404", resp.StatusCode)
	}
	r := <-done
	if r.status != 200 || r.body != "slow done" {
		t.Fatalf("in-flight request: status %d body %q", r.status, r.body)
	}
}

// TestStreamingResponse checks that output PHP flushes reaches the client
// before the script ends.
func TestStreamingResponse(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("GET", f.ts.URL+"/stream.php", nil)
	req.Host = "site.test:" + f.port
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "first\n" {
		t.Fatalf("first chunk %q", buf)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("first chunk after %v: response is not streamed", d)
	}
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

// TestRequestIDsAreUnique checks the id on edge-generated pages.
func TestRequestIDsAreUnique(t *testing.T) {
	s := New(Config{})
	seen := map[string]bool{}
	for range 1000 {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "http://x.test/", nil))
		id := rec.Header().Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("duplicate request id %q", id)
		}
		seen[id] = true
		if rec.Code != 404 {
			t.Fatalf("empty table: status %d", rec.Code)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in, network, addr string
		ok                bool
	}{
		{"unix:/run/php/x.sock", "unix", "/run/php/x.sock", true},
		{"tcp:127.0.0.1:9000", "", "", false}, // pools are never on TCP
		{"tcp:[::1]:9000", "", "", false},
		{"unix:relative.sock", "", "", false},
		{"tcp:nohost", "", "", false},
		{"udp:1.2.3.4:5", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		n, a, err := parseEndpoint(tc.in)
		if (err == nil) != tc.ok || n != tc.network || a != tc.addr {
			t.Errorf("parseEndpoint(%q) = %q, %q, %v", tc.in, n, a, err)
		}
	}
}

func TestSplitPathInfo(t *testing.T) {
	tests := []struct{ in, script, info string }{
		{"/index.php/foo", "/index.php", "/foo"},
		{"/index.php/foo/bar.php/x", "/index.php", "/foo/bar.php/x"},
		{"/a/b.php/", "/a/b.php", "/"},
		{"/index.php", "", ""},
		{"/foo/bar", "", ""},
		{"/x.phpx/y", "", ""},
	}
	for _, tc := range tests {
		s, i, ok := splitPathInfo(tc.in)
		if s != tc.script || i != tc.info || ok != (tc.script != "") {
			t.Errorf("splitPathInfo(%q) = %q, %q, %v", tc.in, s, i, ok)
		}
	}
}

func TestForbiddenName(t *testing.T) {
	for name, want := range map[string]bool{
		"style.css": false, "photo.JPG": false, "readme.txt": false, "x.php.txt": false,
		"index.php": true, "A.PHP": true, "x.phtml": true, "x.Phar": true, "wp-config.php": true,
		"dump.sql": true, "debug.log": true, "x.bak": true, "x~": true, "wp-config.php.save": true,
		"wp-config.php.orig": true, ".env": true,
	} {
		if got := forbiddenName(name); got != want {
			t.Errorf("forbiddenName(%q) = %v, want %v", name, got, want)
		}
	}
}

// PHP middlewares (the WAF) see exactly the requests that run PHP, with the
// script that will run; static files never pass through them.
func TestPHPMiddlewaresGuardOnlyPHP(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var seen []string
	record := func(next RouteHandler) RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *Route) error {
			mu.Lock()
			seen = append(seen, PHPScript(r.Context()))
			mu.Unlock()
			if r.URL.Query().Get("block") != "" {
				return &HTTPError{Status: http.StatusForbidden, Message: "blocked"}
			}
			return next(w, r, rt)
		}
	}
	ed := New(Config{AllowedSymlinkRoots: []string{f.allowed}, TempDir: f.fpm.dir, PHPMiddlewares: []Middleware{record}})
	ed.SetTable(f.edge.Table())
	ts := httptest.NewServer(ed)
	defer ts.Close()
	tests := []struct {
		target     string
		wantStatus int
		wantScript string // "" = the PHP middlewares must not see it
	}{
		{"/style.css", 200, ""},
		{"/wp-content/uploads/2024/photo.txt", 200, ""},
		{"/server.php", 200, "/server.php"},
		{"/hello-world/", 200, "/index.php"},
		{"/index.php/extra/path", 200, "/index.php"},
		{"/hello-world/?block=1", 403, "/index.php"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			req, _ := http.NewRequest("GET", ts.URL+tt.target, nil)
			req.Host = "site.test"
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case tt.wantScript == "" && len(seen) != 0:
				t.Errorf("PHP middlewares saw a static request: %v", seen)
			case tt.wantScript != "" && (len(seen) != 1 || seen[0] != tt.wantScript):
				t.Errorf("PHP middlewares saw %v, want [%s]", seen, tt.wantScript)
			}
		})
	}
}

// Static files served from memory follow changes on disk, once the stat
// of the file is older than statValidity (statCache).
func TestStaticCacheFollowsChanges(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	now := time.Now()
	f.edge.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	get := func() string {
		_, body := f.do(t, request{host: "site.test", target: "/style.css"})
		return body
	}
	if got := get(); got != "body { color: red }\n" {
		t.Fatalf("first = %q", got)
	}
	get() // now from memory
	p := filepath.Join(f.docroot, "style.css")
	if err := os.WriteFile(p, []byte("body { color: blue; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if got := get(); got != "body { color: red }\n" {
		t.Fatalf("within statValidity after the change = %q, want the file as it was", got)
	}
	mu.Lock()
	now = now.Add(statValidity)
	mu.Unlock()
	if got := get(); got != "body { color: blue; }\n" {
		t.Fatalf("after change = %q", got)
	}
	// Removed: front controller (PHP), once the stat is old.
	os.Remove(p)
	mu.Lock()
	now = now.Add(statValidity)
	mu.Unlock()
	if got := get(); strings.Contains(got, "color") {
		t.Fatalf("after removal = %q", got)
	}
}

// A file in uploads swapped for a symlink to the site's own wp-config.php
// after it was served once is not served: neither a cached resolution nor
// a link followed at open time gets past the name checks.
func TestSwappedUploadSymlinkNotServed(t *testing.T) {
	f := newFixture(t)
	uploads := filepath.Join(f.docroot, "wp-content", "uploads")
	writeFiles(t, f.docroot, map[string]string{"wp-content/uploads/swap.txt": "harmless"})
	if _, body := f.do(t, request{host: "site.test", target: "/wp-content/uploads/swap.txt"}); body != "harmless" {
		t.Fatalf("first = %q", body)
	}
	f.do(t, request{host: "site.test", target: "/wp-content/uploads/swap.txt"}) // from the caches
	p := filepath.Join(uploads, "swap.txt")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	symlink(t, "../../wp-config.php", p)
	resp, body := f.do(t, request{host: "site.test", target: "/wp-content/uploads/swap.txt"})
	if strings.Contains(body, "DB_") || strings.Contains(body, "<?php") || resp.StatusCode == 200 {
		t.Fatalf("swapped link served: %d %q", resp.StatusCode, body)
	}
}

// In uploads, the tree a site's user writes, the edge (root) serves only
// files with one name owned by the owner of uploads: a hard link to a file
// the site cannot read, a file of another uid, and a root-owned file are
// 404, also when a copy of the file is in the edge's memory; the shard's
// static server (remote) runs the same checks.
func TestUploadsHardLinksAndForeignOwnersRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown and hard-link foreign files")
	}
	const siteUID, otherUID = 64101, 64102
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "remote"}[remote], func(t *testing.T) {
			f := newFixtureMode(t, remote)
			base := filepath.Dir(filepath.Dir(filepath.Dir(f.docroot)))
			uploads := filepath.Join(f.docroot, "wp-content", "uploads")
			// A root-only secret outside every docroot (the CA key, say),
			// and a file of the site's user outside its uploads.
			secret := filepath.Join(base, "root-only.key")
			if err := os.WriteFile(secret, []byte("SECRET-root-only"), 0o600); err != nil {
				t.Fatal(err)
			}
			ownElsewhere := filepath.Join(base, "own-elsewhere.txt")
			if err := os.WriteFile(ownElsewhere, []byte("own but linked"), 0o644); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, f.docroot, map[string]string{
				"wp-content/uploads/2025/own.txt":      "own upload",
				"wp-content/uploads/2025/foreign.txt":  "SECRET-foreign",
				"wp-content/uploads/2025/rootfile.txt": "SECRET-root-owned",
				"wp-content/uploads/2025/cached.txt":   "cached upload",
			})
			// Created as root, so fs.protected_hardlinks does not matter.
			for link, target := range map[string]string{"hard.txt": secret, "hard-own.txt": ownElsewhere} {
				if err := os.Link(target, filepath.Join(uploads, "2025", link)); err != nil {
					t.Fatal(err)
				}
			}
			chown := func(p string, uid int) {
				t.Helper()
				if err := os.Lchown(p, uid, uid); err != nil {
					t.Fatal(err)
				}
			}
			chown(uploads, siteUID)
			chown(filepath.Join(uploads, "2025"), siteUID)
			chown(ownElsewhere, siteUID)
			for _, name := range []string{"own.txt", "cached.txt"} {
				chown(filepath.Join(uploads, "2025", name), siteUID)
			}
			chown(filepath.Join(uploads, "2025", "foreign.txt"), otherUID)

			tests := []struct {
				name, target string
				want         int
				body         string
			}{
				{"own upload", "/wp-content/uploads/2025/own.txt", 200, "own upload"},
				{"hard link to a root-only file", "/wp-content/uploads/2025/hard.txt", 404, ""},
				{"hard link to an own file", "/wp-content/uploads/2025/hard-own.txt", 404, ""},
				{"another uid's file", "/wp-content/uploads/2025/foreign.txt", 404, ""},
				{"root-owned file", "/wp-content/uploads/2025/rootfile.txt", 404, ""},
				{"own upload again", "/wp-content/uploads/2025/own.txt", 200, "own upload"},
			}
			for _, tc := range tests {
				resp, body := f.do(t, request{target: tc.target})
				if resp.StatusCode != tc.want || (tc.body != "" && body != tc.body) || strings.Contains(body, "SECRET") || strings.Contains(body, "linked") {
					t.Errorf("%s: GET %s = %d %q, want %d %q", tc.name, tc.target, resp.StatusCode, body, tc.want, tc.body)
				}
			}
			if remote {
				return // the edge keeps the shard's answers a few seconds itself
			}
			// In memory, then handed to another uid (same size and mtime):
			// the copy in memory is not served either.
			cached := filepath.Join(uploads, "2025", "cached.txt")
			for range 2 {
				if resp, body := f.do(t, request{target: "/wp-content/uploads/2025/cached.txt"}); resp.StatusCode != 200 || body != "cached upload" {
					t.Fatalf("cached.txt = %d %q", resp.StatusCode, body)
				}
			}
			chown(cached, otherUID)
			if resp, body := f.do(t, request{target: "/wp-content/uploads/2025/cached.txt"}); resp.StatusCode != 404 {
				t.Errorf("cached.txt of another uid = %d %q, want 404", resp.StatusCode, body)
			}
			chown(cached, siteUID)
			if err := os.Link(cached, filepath.Join(base, "second-name")); err != nil {
				t.Fatal(err)
			}
			if resp, body := f.do(t, request{target: "/wp-content/uploads/2025/cached.txt"}); resp.StatusCode != 404 {
				t.Errorf("cached.txt with a second name = %d %q, want 404", resp.StatusCode, body)
			}
		})
	}
}
