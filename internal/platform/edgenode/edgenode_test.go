package edgenode

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/metrics"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// freeAddr returns a loopback address nobody listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// bound returns the addresses of addrs that cannot be listened on.
func bound(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			out = append(out, a)
			continue
		}
		ln.Close()
	}
	return out
}

// An edge whose start fails after its listeners are bound leaves none of
// them open, whichever step fails: TLS, the purge secret, the metrics
// token (Open), or the edge itself (Start).
func TestFailedStartClosesEveryListener(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string, cfg *Config)
		start bool // Open succeeds; Start fails
	}{
		{name: "tls state unusable", setup: func(t *testing.T, dir string, _ *Config) {
			write(t, filepath.Join(dir, "tls"), "not a directory")
		}},
		{name: "purge secret unreadable", setup: func(t *testing.T, dir string, _ *Config) {
			if err := os.Mkdir(filepath.Join(dir, PurgeSecretFile), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "metrics token invalid", setup: func(t *testing.T, dir string, cfg *Config) {
			cfg.MetricsTokenFile = filepath.Join(dir, "short-token")
			write(t, cfg.MetricsTokenFile, "short")
		}},
		{name: "start without links", start: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{DataDir: dir, HTTPAddr: freeAddr(t), HTTPSAddr: freeAddr(t), MetricsAddr: freeAddr(t), ACMECA: ACMEOff}
			if tt.setup != nil {
				tt.setup(t, dir, &cfg)
			}
			var err error
			if tt.start {
				var n *Node
				if n, err = Open(cfg); err != nil {
					t.Fatalf("Open: %v", err)
				}
				if b := bound(cfg.HTTPAddr, cfg.HTTPSAddr, cfg.MetricsAddr); len(b) != 3 {
					t.Fatalf("after Open, only %v are bound", b)
				}
				err = n.Start(t.Context(), Links{})
				n.Close(t.Context()) // a no-op after a failed Start
			} else {
				_, err = Open(cfg)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if b := bound(cfg.HTTPAddr, cfg.HTTPSAddr, cfg.MetricsAddr); len(b) > 0 {
				t.Errorf("after %q (%v), still bound: %v", tt.name, err, b)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Run (`aipress edge`) follows a control plane's routing table over the
// API: once it has it (Ready), a site's host is known (503 while its shard
// is elsewhere and has no gateway) and others are not (404); when its
// context ends it returns and leaves no port bound.
func TestRunFollowsTheAPI(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: sum("admin-secret"), CreatedAt: now},
		{ID: "tok-edge", Name: "edge", Role: store.RoleEdge, Hash: sum("edge-secret"), CreatedAt: now},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("s1")}))
	defer srv.Close()
	if _, err := apiclient.New(srv.URL, "admin-secret").CreateSite(ctx, apiclient.CreateSiteRequest{Domain: "blog.example.com", Title: "Blog", AdminEmail: "me@example.com"}); err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Server: srv.URL, Token: "edge-secret", Config: Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), HTTPSAddr: freeAddr(t), MetricsAddr: freeAddr(t), ACMECA: ACMEOff}}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before the routing table: %v", err)
	}
	get := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+cfg.HTTPAddr+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("blog.example.com"); code != http.StatusServiceUnavailable {
		t.Errorf("the site: %d, want 503", code)
	}
	if code := get("unknown.example.com"); code != http.StatusNotFound {
		t.Errorf("an unknown host: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := bound(cfg.HTTPAddr, cfg.HTTPSAddr, cfg.MetricsAddr); len(b) > 0 {
		t.Errorf("after Run returned, still bound: %v", b)
	}
}

// Each snapshot of the routing table purges the cached pages of sites
// deleted or re-created under the same name (a new UID), and only those.
func TestApplyPurgesReplacedSites(t *testing.T) {
	var logs strings.Builder
	c := pagecache.New(pagecache.Config{})
	m := metrics.New()
	n := &Node{log: slog.New(slog.NewTextHandler(&logs, nil)), cache: c, ed: edge.New(edge.Config{}), extras: &extras{metrics: m}}
	php := func(edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, _ *http.Request, _ *edge.Route) error {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "page")
			return nil
		}
	}
	// Another edge over the same cache fills it.
	filler := edge.New(edge.Config{Middlewares: []edge.Middleware{c.Middleware(), php}})
	var routes []edge.Route
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		routes = append(routes, edge.Route{Host: name, Site: name, Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock",
			State: edge.Serving, Options: edge.RouteOptions{CacheTTL: time.Minute}})
	}
	filler.SetTable(edge.NewTable(routes))
	fill := func() {
		for _, rt := range routes {
			req := httptest.NewRequest("GET", "http://"+rt.Host+"/", nil)
			filler.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	mk := func(name, uid string) site.Site {
		return site.Site{Metadata: site.Metadata{Name: name, UID: uid}, Spec: site.Spec{Domain: name}}
	}
	n.apply(agent.Snapshot{Sites: []site.Site{mk("a.test", "1"), mk("b.test", "1"), mk("c.test", "1")}})
	fill()
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		m.Observe(httptest.NewRequest("GET", "http://"+name+"/", nil), &edge.RequestInfo{Site: name, Status: 200, Start: time.Now()})
	}
	if got := c.Stats().Entries; got != 3 {
		t.Fatalf("%d pages cached, want 3", got)
	}
	// b re-created, c deleted, a unchanged.
	n.apply(agent.Snapshot{Sites: []site.Site{mk("a.test", "1"), mk("b.test", "2")}})
	if got := c.Stats().Entries; got != 1 {
		t.Errorf("%d pages cached after b's re-creation and c's deletion, want 1 (a's)", got)
	}
	if strings.Count(logs.String(), "purged the page cache") != 2 {
		t.Errorf("log:\n%s", logs.String())
	}
	if _, ok := n.ed.Table().Lookup("b.test"); !ok {
		t.Error("the table lacks b.test")
	}
	// The deleted site's metric series are gone; the others' stay.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); strings.Contains(body, `site="c.test"`) || !strings.Contains(body, `site="a.test"`) || !strings.Contains(body, `site="b.test"`) {
		t.Errorf("metrics after c's deletion:\n%s", body)
	}
}

// serveWhenReady waits for the routing table and for the role's own
// condition, and reports a wait cut short.
func TestServeWhenReady(t *testing.T) {
	for _, tc := range []struct {
		name      string
		table     bool
		after     func(context.Context) bool
		cancelled bool
		want      bool
	}{
		{"table, no condition", true, nil, false, true},
		{"table and condition", true, func(context.Context) bool { return true }, false, true},
		{"condition failed", true, func(context.Context) bool { return false }, false, false},
		{"no table yet", false, nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ed := edge.New(edge.Config{})
			if tc.table {
				ed.SetTable(nil)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancelled {
				cancel()
			}
			defer cancel()
			if got := serveWhenReady(ctx, ed, tc.after); got != tc.want {
				t.Errorf("serveWhenReady = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOncePer: a repeated failure is let through once, then again only
// once the period has passed since the last time let through.
func TestOncePer(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	allow := oncePer(time.Minute, func() time.Time { return now })
	for _, step := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {0, false}, {59 * time.Second, false}, {time.Second, true}, {30 * time.Second, false}, {30 * time.Second, true}} {
		now = now.Add(step.after)
		if got := allow(); got != step.want {
			t.Fatalf("at %v: %v, want %v", now.Format(time.TimeOnly), got, step.want)
		}
	}
}
