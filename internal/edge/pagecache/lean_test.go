package pagecache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/edge/lean"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/metrics"
	"github.com/aipress/aipress/internal/ratelimit"
	"github.com/aipress/aipress/internal/site"
)

type leanKey struct{}

// TestLeanPathSameAnswers runs the edge's chain (bandwidth, rate limit,
// page cache, WAF, metrics) in front of a real php-fpm pool, once behind
// the lean HTTP/1.1 path and once behind net/http alone, and sends both
// the same raw requests: cache hits (plain, gzip, HEAD, Range,
// conditional, tracking parameters), static files, a WAF block, an
// unknown host, dot segments. Status, headers (but Date, Age and the
// request id) and body must be the same, the lean path must serve every
// one of them, and what the observers saw (status, bytes, cache, WAF,
// request id) must be the same.
func TestLeanPathSameAnswers(t *testing.T) {
	pool := startPool(t)
	css := strings.Repeat("body { color: red; }\n", 300)
	if err := os.WriteFile(filepath.Join(pool.docroot, "style.css"), []byte(css), 0o644); err != nil {
		t.Fatal(err)
	}
	fw, err := waf.New(waf.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent map[string]int64
	meter := bandwidth.New(bandwidth.Config{Send: func(_ context.Context, b map[string]int64) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		sent = b
		return nil, nil
	}})
	limiter := ratelimit.New(ratelimit.Config{IPRate: 1e6, SiteRate: 1e6})
	m := metrics.New()
	var last edge.RequestInfo
	var leanSeen int
	ed := edge.New(edge.Config{
		Middlewares:    []edge.Middleware{meter.Middleware(), limiter.Middleware, New(Config{}).Middleware()},
		PHPMiddlewares: []edge.Middleware{fw.Middleware()},
		Observe: func(r *http.Request, info *edge.RequestInfo) {
			m.Observe(r, info)
			meter.Observe(r, info)
			mu.Lock()
			defer mu.Unlock()
			last = *info
			if r.Context().Value(leanKey{}) != nil {
				leanSeen++
			}
		},
	})
	ed.SetTable(edge.NewTable([]edge.Route{{
		Host: "blog.localhost", Site: "blog", Docroot: pool.docroot, Endpoint: "unix:" + pool.socket,
		State: edge.Serving, Options: edge.RouteOptions{CacheTTL: time.Hour, WAFMode: site.WAFBlock, WAFParanoia: 1},
	}}))
	tag := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fmt.Sprintf("%T", w) == "*lean.response" {
			r = r.WithContext(context.WithValue(r.Context(), leanKey{}, true))
		}
		ed.ServeHTTP(w, r)
	})
	addrs := map[bool]string{}
	for _, useLean := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: tag, ReadHeaderTimeout: 10 * time.Second}
		var srv interface {
			Serve(net.Listener) error
			Close() error
		} = hs
		if useLean {
			srv = &lean.Server{HTTP: hs}
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		addrs[useLean] = ln.Addr().String()
	}
	do := func(useLean bool, raw string) (string, edge.RequestInfo) {
		t.Helper()
		c, err := net.Dial("tcp", addrs[useLean])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, raw)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(raw)[0]})
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		body, _ := io.ReadAll(res.Body)
		id := res.Header.Get("X-Request-Id")
		// The observers run once the handler returns, which may be
		// after the last bytes reached the client: wait for this
		// request's observation (under load it came after the read).
		var info edge.RequestInfo
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			info = last
			mu.Unlock()
			if info.ID == id || time.Now().After(deadline) {
				break
			}
		}
		if id == "" || id != info.ID {
			t.Errorf("%q: X-Request-Id %q, observed id %q", raw, id, info.ID)
		}
		body = []byte(strings.ReplaceAll(string(body), id, "<id>"))
		for _, k := range []string{"Date", "Age", "X-Request-Id"} {
			res.Header.Del(k)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s cl=%d\n", res.Status, res.ContentLength)
		res.Header.Write(&b)
		b.WriteString("\n")
		b.Write(body)
		return b.String(), edge.RequestInfo{Site: info.Site, Status: info.Status, Bytes: info.Bytes, Cache: info.Cache,
			WAFBlocked: info.WAFBlocked, WAFRules: info.WAFRules}
	}
	get := func(target string, hdr ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: blog.localhost\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\n" + strings.Join(hdr, "") + "\r\n"
	}
	// Fill the cache (net/http), then compare.
	if out, info := do(false, get("/hello/")); info.Cache != Miss {
		t.Fatalf("first request: %s", out)
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, raw := range []string{
		get("/hello/"),
		get("/hello/", "Accept-Encoding: gzip\r\n"),
		"HEAD /hello/ HTTP/1.1\r\nHost: blog.localhost\r\n\r\n",
		get("/hello/", "Range: bytes=0-3\r\n"),
		get("/hello/", "If-Modified-Since: "+future+"\r\n"),
		get("/hello/?utm_source=news"),
		get("/style.css"),
		get("/style.css", "Accept-Encoding: gzip\r\n"),
		get("/style.css", "Range: bytes=5-9\r\n"),
		get("/style.css", "If-Modified-Since: "+future+"\r\n"),
		"HEAD /style.css HTTP/1.1\r\nHost: blog.localhost\r\n\r\n",
		get("/style.css/"),
		get("/a/../style.css"),
		get("/%2e%2e/%2e%2e/etc/passwd"),
		get("/state/../style.css"),
		get("/?s=union+select+tutorial"),
		"GET /hello/ HTTP/1.1\r\nHost: unknown.localhost\r\n\r\n",
	} {
		gotNet, infoNet := do(false, raw)
		before := leanSeen
		gotLean, infoLean := do(true, raw)
		if gotNet != gotLean {
			t.Errorf("%q:\nnet/http:\n%s\nlean:\n%s", raw, gotNet, gotLean)
		}
		if fmt.Sprint(infoNet) != fmt.Sprint(infoLean) {
			t.Errorf("%q: observed\nnet/http %+v\nlean     %+v", raw, infoNet, infoLean)
		}
		if leanSeen != before+1 {
			t.Errorf("%q: not served on the lean path", raw)
		}
		if strings.Contains(raw, "union") && (!infoLean.WAFBlocked || infoLean.Status != http.StatusForbidden) {
			t.Errorf("the WAF did not block on the lean path: %+v", infoLean)
		}
	}
	if err := meter.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sent["blog"] <= 0 {
		t.Errorf("bandwidth counted %v", sent)
	}
}
