package edge

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// retryFixture is a docroot served by a real php-fpm pool, and an edge
// whose route names pool (a socket path the test controls) with retries
// as in production, its hooks recording what happened.
type retryFixture struct {
	t       *testing.T
	fpm     *testFPM
	docroot string
	pool    string // the route's socket
	edge    *Server
	ts      *httptest.Server
	logs    *syncBuffer

	mu      sync.Mutex
	retries []string       // reasons, in order
	infos   []*RequestInfo // Observe
}

func newRetryFixture(t *testing.T, wait time.Duration, onRetry func(reason string)) *retryFixture {
	fpm := startFPM(t)
	f := &retryFixture{t: t, fpm: fpm, docroot: filepath.Join(fpm.dir, "docroot"), pool: filepath.Join(fpm.dir, "route.sock"), logs: &syncBuffer{}}
	writeFiles(t, f.docroot, map[string]string{
		"index.php": `<?php echo 'served by php';`,
		"post.php":  `<?php echo 'posted ', file_get_contents('php://input');`,
		// WordPress with the shard's db-error.php drop-in, while its
		// database is down: the first calls are marked 503s.
		"db.php": `<?php
$f = __DIR__ . '/state/calls';
$n = (int) @file_get_contents($f) + 1;
file_put_contents($f, (string) $n);
if ($n <= (int) ($_GET['fail'] ?? 2)) {
	http_response_code(503);
	header('Retry-After: 5');
	header('X-Aipress-Retry: database');
	echo 'Error establishing a database connection';
	exit;
}
echo 'database back after ', $n - 1, ' failures';`,
	})
	state := filepath.Join(f.docroot, "state")
	if err := os.MkdirAll(state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil { // the pool runs as nobody
		t.Fatal(err)
	}
	f.edge = New(Config{
		Logger:       slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PHPRetryWait: wait,
		TempDir:      fpm.dir,
		Observe: func(_ *http.Request, info *RequestInfo) {
			f.mu.Lock()
			f.infos = append(f.infos, info)
			f.mu.Unlock()
		},
	})
	f.edge.onRetry = func(reason string) {
		f.mu.Lock()
		f.retries = append(f.retries, reason)
		n := len(f.retries)
		f.mu.Unlock()
		if onRetry != nil && n == 1 {
			onRetry(reason)
		}
	}
	f.edge.SetTable(NewTable([]Route{{Host: "site.test", Site: "site", Docroot: f.docroot, Endpoint: "unix:" + f.pool, State: Serving}}))
	f.ts = httptest.NewServer(f.edge)
	t.Cleanup(f.ts.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge log:\n%s", f.logs.String())
		}
	})
	return f
}

// do sends one request and returns its status, body and RequestInfo.
func (f *retryFixture) do(method, target, body string) (*http.Response, string, *RequestInfo) {
	f.t.Helper()
	f.mu.Lock()
	f.retries, f.infos = nil, nil
	f.mu.Unlock()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.ts.URL+target, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Host = "site.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.infos) != 1 {
		f.t.Fatalf("%d observations, want 1", len(f.infos))
	}
	return resp, string(b), f.infos[0]
}

// staleSocket leaves a Unix socket file nothing listens on (what a
// killed php-fpm master leaves): connecting to it is refused.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		t.Fatal("stale socket accepts connections")
	}
}

// TestRetryPoolAppears: the route's pool socket is missing (a restarting
// php-fpm master has not created it yet) or refuses (a dead master's
// socket) when the request arrives, and appears once the edge has failed
// once: a GET and a POST with a body (the failure is at dial time, nothing
// of the request has left) are answered by PHP, not with a 502.
func TestRetryPoolAppears(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, pool string)
		reason string
	}{
		{"missing socket", func(*testing.T, string) {}, RetryPoolMissing},
		{"refused socket", staleSocket, RetryPoolRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rq := range []struct{ method, target, body, want string }{
				{"GET", "/", "", "served by php"},
				{"HEAD", "/", "", ""},
				{"POST", "/post.php", "a=1", "posted a=1"},
			} {
				var f *retryFixture
				f = newRetryFixture(t, time.Minute, func(string) {
					// The new master's socket: renamed over the old one, as
					// a restart does (unlink, then bind).
					tmp := f.pool + ".new"
					if err := os.Symlink(f.fpm.socket, tmp); err != nil {
						t.Error(err)
					}
					if err := os.Rename(tmp, f.pool); err != nil {
						t.Error(err)
					}
				})
				tc.before(t, f.pool)
				resp, body, info := f.do(rq.method, rq.target, rq.body)
				if resp.StatusCode != http.StatusOK || body != rq.want {
					t.Errorf("%s %s: %d %q, want 200 %q", rq.method, rq.target, resp.StatusCode, body, rq.want)
				}
				if info.PHPRetry.Retries < 1 || info.PHPRetry.Reason != tc.reason || info.PHPRetry.GaveUp {
					t.Errorf("%s: PHPRetry = %+v, want ≥ 1 retry for %s, recovered", rq.method, info.PHPRetry, tc.reason)
				}
			}
		})
	}
}

// TestRetryPoolStaysDown: a pool that does not come back within the wait
// is a 502 once the wait is over; with retries off, at once.
func TestRetryPoolStaysDown(t *testing.T) {
	for _, tc := range []struct {
		name        string
		wait        time.Duration
		wantRetries bool
	}{
		{"bounded wait", 200 * time.Millisecond, true},
		{"retries off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRetryFixture(t, tc.wait, nil)
			resp, body, info := f.do("GET", "/", "")
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not be reached") {
				t.Errorf("GET: %d %q, want 502", resp.StatusCode, body)
			}
			if (info.PHPRetry.Retries > 0) != tc.wantRetries || !info.PHPRetry.GaveUp || info.PHPRetry.Reason != RetryPoolMissing {
				t.Errorf("PHPRetry = %+v (want retries: %v), want gave up on %s", info.PHPRetry, tc.wantRetries, RetryPoolMissing)
			}
		})
	}
}

// resetPool listens on path and closes the first `resets` connections
// once it has read the request's beginning (a master killed while it held
// them); later ones are passed to the real pool at upstream.
func resetPool(t *testing.T, path, upstream string, resets int) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				if n <= int64(resets) {
					buf := make([]byte, 64)
					_, _ = io.ReadAtLeast(c, buf, 8) // the request reached "PHP"
					return
				}
				up, err := net.Dial("unix", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return &conns
}

// TestRetryReset: a pool that closes the connection before any response
// byte (its master died holding it) may have started the request. A GET
// is sent again and answered; a POST is not (it may have run): it gets a
// clear 502, and the pool saw it once.
func TestRetryReset(t *testing.T) {
	for _, tc := range []struct {
		method, target, body string
		wantStatus           int
		wantBody             string
		wantConns            int64
	}{
		{"GET", "/", "", http.StatusOK, "served by php", 2},
		{"POST", "/post.php", "a=1", http.StatusBadGateway, "could not be reached", 1},
	} {
		t.Run(tc.method, func(t *testing.T) {
			f := newRetryFixture(t, time.Minute, nil)
			conns := resetPool(t, f.pool, f.fpm.socket, 1)
			resp, body, info := f.do(tc.method, tc.target, tc.body)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Errorf("the pool saw %d connections, want %d", got, tc.wantConns)
			}
			if info.PHPRetry.Reason != RetryPoolReset || info.PHPRetry.GaveUp != (tc.wantStatus != http.StatusOK) {
				t.Errorf("PHPRetry = %+v", info.PHPRetry)
			}
		})
	}
}

// TestRetryDatabase: WordPress's marked 503 (its database restarting) is
// asked again for a GET until it answers; a POST, and a GET whose wait
// runs out, get PHP's 503 with its Retry-After, without the marker.
func TestRetryDatabase(t *testing.T) {
	for _, tc := range []struct {
		name, method, target string
		wait                 time.Duration
		wantStatus           int
		wantBody             string
		wantCalls            string
	}{
		{"GET recovers", "GET", "/db.php?fail=2", time.Minute, http.StatusOK, "database back after 2 failures", "3"},
		{"POST not repeated", "POST", "/db.php?fail=2", time.Minute, http.StatusServiceUnavailable, "Error establishing a database connection", "1"},
		{"GET wait runs out", "GET", "/db.php?fail=1000", 300 * time.Millisecond, http.StatusServiceUnavailable, "Error establishing a database connection", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRetryFixture(t, tc.wait, nil)
			if err := os.Symlink(f.fpm.socket, f.pool); err != nil {
				t.Fatal(err)
			}
			resp, body, info := f.do(tc.method, tc.target, "")
			if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if v := resp.Header.Get(RetryHeader); v != "" {
				t.Errorf("the visitor got %s: %s", RetryHeader, v)
			}
			if tc.wantStatus == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "5" {
				t.Errorf("Retry-After = %q, want PHP's 5", resp.Header.Get("Retry-After"))
			}
			calls, _ := os.ReadFile(filepath.Join(f.docroot, "state", "calls"))
			if tc.wantCalls != "" && string(calls) != tc.wantCalls {
				t.Errorf("PHP ran %s times, want %s", calls, tc.wantCalls)
			}
			if n, _ := strconv.Atoi(string(calls)); tc.wantCalls == "" && n < 2 {
				t.Errorf("PHP ran %s times, want retries", calls)
			}
			if info.PHPRetry.Reason != RetryDatabase || info.PHPRetry.GaveUp != (tc.wantStatus != http.StatusOK) {
				t.Errorf("PHPRetry = %+v", info.PHPRetry)
			}
		})
	}
}
