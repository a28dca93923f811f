package pagecache

import (
	"crypto/md5"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

const phpFPM = "/usr/sbin/php-fpm8.2"

// routerPHP is the docroot's index.php: a tiny front controller whose
// pages count their invocations in a file.
const routerPHP = `<?php
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$f = __DIR__ . '/state/count-' . md5($path);
$fp = fopen($f, 'c+'); flock($fp, LOCK_EX);
$n = (int) stream_get_contents($fp) + 1;
ftruncate($fp, 0); rewind($fp); fwrite($fp, (string) $n); fclose($fp);
header('Content-Type: text/html; charset=UTF-8');
switch ($path) {
case '/cookie/':
	setcookie('comment_author_abc', 'Bob', 0, '/');
	break;
case '/tagged/':
	header('X-AIPress-Tags: post-7, home');
	break;
case '/reflect/':
	// A page that reflects its URL, as many themes and plugins do.
	echo 'utm=' . ($_GET['utm_source'] ?? '') . ' q=' . ($_GET['q'] ?? '') .
		' qs=' . $_SERVER['QUERY_STRING'] . ' uri=' . $_SERVER['REQUEST_URI'] . ' ';
	break;
}
echo "path=$path n=$n";
`

// fpmPool is a real php-fpm master with one pool serving docroot.
type fpmPool struct {
	docroot, socket string
	stop            func()
}

// startPool starts php-fpm (as in internal/edge/fpm_test.go) and waits for
// its socket.
func startPool(t *testing.T) *fpmPool {
	t.Helper()
	if _, err := os.Stat(phpFPM); err != nil {
		t.Skipf("php-fpm not available: %v", err)
	}
	dir, err := os.MkdirTemp("", "aipress-pagecache-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	docroot := filepath.Join(dir, "htdocs")
	state := filepath.Join(docroot, "state")
	for _, d := range []string{dir, docroot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o777) // the pool runs as nobody
	if err := os.WriteFile(filepath.Join(docroot, "index.php"), []byte(routerPHP), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &fpmPool{docroot: docroot, socket: filepath.Join(dir, "pool.sock")}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/php-fpm.pid
error_log = %[1]s/php-fpm.log
daemonize = no

[test]
%[2]slisten = %[3]s
listen.mode = 0666
pm = ondemand
pm.max_children = 4
pm.process_idle_timeout = 10s
`, dir, user, p.socket)
	confPath := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(phpFPM, "--nodaemonize", "--fpm-config", confPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php-fpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.stop = func() {
		cmd.Process.Signal(os.Interrupt) // php-fpm stops its workers and exits
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", p.socket)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "php-fpm.log"))
			t.Fatalf("php-fpm exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm socket not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *fpmPool) invocations(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.docroot, "state", fmt.Sprintf("count-%x", md5sum(path))))
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(string(b), &n)
	return n
}

// TestWithPHPFPM runs the cache in the real edge.Server in front of a real
// php-fpm pool.
func TestWithPHPFPM(t *testing.T) {
	pool := startPool(t)
	clock := newClock()
	cache := New(Config{Clock: clock.Now, StaleWhileRevalidate: -1, StaleIfError: 10 * time.Minute})
	var infos []string
	srv := edge.New(edge.Config{
		Middlewares: []edge.Middleware{cache.Middleware()},
		Observe:     func(r *http.Request, info *edge.RequestInfo) { infos = append(infos, info.Cache) },
	})
	srv.SetTable(edge.NewTable([]edge.Route{{
		Host: "blog.localhost", Site: "blog", Docroot: pool.docroot, Endpoint: "unix:" + pool.socket,
		State: edge.Serving, Options: edge.RouteOptions{CacheTTL: time.Minute},
	}}))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Host = "blog.localhost"
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	check := func(path, want, wantBody string, header ...string) *http.Response {
		t.Helper()
		resp, body := get(path, header...)
		if got := resp.Header.Get("X-Cache"); got != want || resp.StatusCode != 200 || (wantBody != "" && body != wantBody) {
			t.Fatalf("GET %s: %d X-Cache %q body %q; want 200 %s %q", path, resp.StatusCode, got, body, want, wantBody)
		}
		if v := resp.Header.Get("X-AIPress-Tags"); v != "" {
			t.Errorf("GET %s: tags header reached the visitor: %q", path, v)
		}
		return resp
	}

	// MISS then HIT with one PHP invocation.
	check("/hello/", Miss, "path=/hello/ n=1")
	check("/hello/", Hit, "path=/hello/ n=1")
	if n := pool.invocations(t, "/hello/"); n != 1 {
		t.Errorf("PHP ran %d times for /hello/, want 1", n)
	}
	if len(infos) != 2 || infos[0] != Miss || infos[1] != Hit {
		t.Errorf("RequestInfo.Cache = %q, want [MISS HIT]", infos)
	}
	// A logged-in visitor goes to PHP.
	check("/hello/", Bypass, "path=/hello/ n=2", "Cookie", "wordpress_logged_in_abc=admin")

	// A page that sets a cookie is never cached.
	for i := 1; i <= 2; i++ {
		resp := check("/cookie/", Miss, fmt.Sprintf("path=/cookie/ n=%d", i))
		if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "comment_author_abc=Bob") {
			t.Errorf("Set-Cookie = %q", resp.Header.Get("Set-Cookie"))
		}
	}

	// Tagged page: cached, then purged by tag.
	check("/tagged/", Miss, "path=/tagged/ n=1")
	check("/tagged/", Hit, "path=/tagged/ n=1")
	if n := cache.PurgeTag("blog", "post-7"); n != 1 {
		t.Errorf("PurgeTag = %d, want 1", n)
	}
	check("/tagged/", Miss, "path=/tagged/ n=2")
	check("/tagged/", Hit, "path=/tagged/ n=2")

	// The pool stops: the edge cannot dial it (502), the expired page is
	// served stale.
	pool.stop()
	clock.Advance(2 * time.Minute)
	check("/tagged/", Stale, "path=/tagged/ n=2")
	resp, _ := get("/never-cached/")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Cache") != Miss {
		t.Errorf("uncached page with the pool down: %d X-Cache %q, want 502 MISS", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
}

func md5sum(s string) [16]byte { return md5.Sum([]byte(s)) }

// TestTrackingParamsNeverReachPHP: the key leaves tracking parameters out,
// so on a cacheable request PHP must not see them either — else a page that
// reflects utm_source is stored with the first visitor's value and served
// to everyone. Visitors who bypass the cache keep their parameters.
func TestTrackingParamsNeverReachPHP(t *testing.T) {
	pool := startPool(t)
	cache := New(Config{Clock: newClock().Now})
	srv := edge.New(edge.Config{Middlewares: []edge.Middleware{cache.Middleware()}})
	srv.SetTable(edge.NewTable([]edge.Route{{
		Host: "blog.localhost", Site: "blog", Docroot: pool.docroot, Endpoint: "unix:" + pool.socket,
		State: edge.Serving, Options: edge.RouteOptions{CacheTTL: time.Minute},
	}}))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	do := func(method, target string, header ...string) (string, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "blog.localhost"
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, target, resp.StatusCode, b)
		}
		return resp.Header.Get("X-Cache"), string(b)
	}
	const evil = "EVIL-payload"
	tests := []struct {
		name, method, target string
		header               []string
		wantCache, wantBody  string
	}{
		{name: "attacker fills the cache", method: "GET", target: "/reflect/?utm_source=" + evil + "&p=1&fbclid=x",
			wantCache: Miss, wantBody: "utm= q= qs=p=1 uri=/reflect/?p=1 path=/reflect/ n=1"},
		{name: "visitor gets the clean page", method: "GET", target: "/reflect/?p=1",
			wantCache: Hit, wantBody: "utm= q= qs=p=1 uri=/reflect/?p=1 path=/reflect/ n=1"},
		{name: "upper-case and encoded names too", method: "GET", target: "/reflect/?%55TM_Source=" + evil + "&p=1",
			wantCache: Hit, wantBody: "utm= q= qs=p=1 uri=/reflect/?p=1 path=/reflect/ n=1"},
		// The key spells "<" as %3C: PHP must see what the key says, not
		// the raw "<" that a later visitor of the %3C URL would be served.
		{name: "raw bytes are spelled as in the key", method: "GET", target: "/reflect/?q=<b>&utm_medium=" + evil,
			wantCache: Miss, wantBody: "utm= q=<b> qs=q=%3Cb%3E uri=/reflect/?q=%3Cb%3E path=/reflect/ n=2"},
		{name: "logged in keeps its parameters", method: "GET", target: "/reflect/?utm_source=" + evil + "&p=1",
			header:    []string{"Cookie", "wordpress_logged_in_abc=admin"},
			wantCache: Bypass, wantBody: "utm=" + evil + " q= qs=utm_source=" + evil + "&p=1 uri=/reflect/?utm_source=" + evil + "&p=1 path=/reflect/ n=3"},
		{name: "POST keeps its parameters", method: "POST", target: "/reflect/?utm_source=" + evil,
			wantCache: Bypass, wantBody: "utm=" + evil + " q= qs=utm_source=" + evil + " uri=/reflect/?utm_source=" + evil + " path=/reflect/ n=4"},
	}
	for _, tc := range tests {
		gotCache, gotBody := do(tc.method, tc.target, tc.header...)
		if gotCache != tc.wantCache || gotBody != tc.wantBody {
			t.Errorf("%s: %s %s = X-Cache %s, body %q; want %s, %q", tc.name, tc.method, tc.target, gotCache, gotBody, tc.wantCache, tc.wantBody)
		}
	}
}
