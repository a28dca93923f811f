package cli

import (
	"gocloud.dev/blob/fileblob"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/assistant"
	"github.com/aipress/aipress/internal/platform/up"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

const (
	adminSecret  = "admin-secret"
	viewerSecret = "viewer-secret"
)

var (
	created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cliNow  = created.Add(90 * time.Minute)
)

type harness struct {
	// logs is the directory of the sites' access logs the API reads.
	logs   string
	purger *purger
	store  store.Store
	url    string
	env    map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hash(adminSecret), CreatedAt: created},
		{ID: "tok-viewer", Name: "viewer", Role: store.RoleViewer, Hash: hash(viewerSecret), CreatedAt: created},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	p := &purger{}
	// The assistant (aipress ask) calls this same API in process.
	var h http.Handler
	asst, err := assistant.NewService(assistant.ServiceConfig{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) })})
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uploads.Close() })
	logs := t.TempDir()
	h = api.New(api.Config{
		Logs:      api.LocalLogs{AccessDir: logs},
		Uploads:   uploads,
		Assistant: asst,
		Purger:    p,
		Store:     st,
		Placer:    api.StaticPlacer("local"),
		Clock:     func() time.Time { return created },
		PublicURL: func(d string) string { return "http://" + d + ":8080" },
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{logs: logs, purger: p, store: st, url: srv.URL, env: map[string]string{EnvURL: srv.URL, EnvToken: adminSecret}}
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (h *harness) deps() deps {
	return deps{
		now:    func() time.Time { return cliNow },
		getenv: func(k string) string { return h.env[k] },
		run:    func(context.Context, up.Config) error { return errors.New("not in tests") },
		poll:   5 * time.Millisecond,
	}
}

// run executes the CLI in-process.
func (h *harness) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCmd(t, h.deps(), args...)
}

func runCmd(t *testing.T, d deps, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot("test", d)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

var masks = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uid>"},
	{regexp.MustCompile(`("admin_password": "|Admin password: |admin_password: )[A-Za-z0-9]{24}`), "${1}<password>"},
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	for _, m := range masks {
		got = m.re.ReplaceAllString(got, m.repl)
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch (go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// startShard converges sites in the store like a shard would, one step per
// tick: Pending -> Creating -> Ready/Suspended, and deletes sites whose
// deletion was requested. failDomain ends up Failed.
func startShard(t *testing.T, st store.Store, failDomain string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			list, err := st.ListSites(ctx, store.ListOptions{Limit: 1000})
			if err != nil {
				continue
			}
			for _, s := range list.Items {
				if s.Metadata.DeletionRequested != nil {
					_ = st.DeleteSite(ctx, s.Metadata.Name)
					continue
				}
				_, _ = st.UpdateSite(ctx, s.Metadata.Name, func(s *site.Site) error {
					now := time.Now()
					g := s.Metadata.Generation
					switch {
					case s.Status.Phase == site.PhasePending:
						s.Status.Phase = site.PhaseCreating
						s.Status.SetCondition(site.Condition{Type: "Database", Status: "True", Message: "Database ready", ObservedGeneration: g}, now)
					case s.Metadata.Name == failDomain:
						s.Status.Phase = site.PhaseFailed
						s.Status.SetCondition(site.Condition{Type: "Installed", Status: "False", Message: "wp core install exited 1", ObservedGeneration: g}, now)
						s.Status.ObservedGeneration = g
					case s.Spec.Suspended:
						s.Status.Phase = site.PhaseSuspended
						s.Status.ObservedGeneration = g
					default:
						s.Status.Phase = site.PhaseReady
						s.Status.SetCondition(site.Condition{Type: "Installed", Status: "True", Message: "Installed", ObservedGeneration: g}, now)
						s.Status.ObservedGeneration = g
					}
					return nil
				})
			}
		}
	}()
}

func TestSiteCommandsGolden(t *testing.T) {
	h := newHarness(t)
	steps := []struct {
		golden string
		args   []string
	}{
		{"create_table", []string{"site", "create", "Blog.localhost", "--title", "My blog", "--admin-email", "me@example.com", "--wait=false"}},
		{"create_json", []string{"site", "create", "shop.localhost", "--title", "Shop", "--admin-email", "ops@example.com", "--admin-user", "boss", "--plan", "business", "--label", "team=web", "--wait=false", "-o", "json"}},
		{"list_table", []string{"site", "list"}},
		{"get_json", []string{"site", "get", "BLOG.localhost", "-o", "json"}},
		{"get_yaml", []string{"site", "get", "blog.localhost", "-o", "yaml"}},
		{"suspend_table", []string{"site", "suspend", "blog.localhost", "--wait=false"}},
		{"delete_table", []string{"site", "delete", "shop.localhost", "--wait=false"}},
		{"list_json", []string{"site", "list", "-o", "json"}},
	}
	for _, s := range steps {
		out, stderr, err := h.run(t, s.args...)
		if err != nil {
			t.Fatalf("%v: %v (stderr %q)", s.args, err, stderr)
		}
		golden(t, s.golden, out)
	}
}

func TestCreateWaitsUntilReady(t *testing.T) {
	h := newHarness(t)
	startShard(t, h.store, "")
	out, stderr, err := h.run(t, "site", "create", "blog.localhost", "--title", "Blog", "--admin-email", "me@example.com")
	if err != nil {
		t.Fatalf("create: %v (stderr %q)", err, stderr)
	}
	if !strings.Contains(out, "Site blog.localhost is Ready (shard local).") || !regexp.MustCompile(`Admin password: [A-Za-z0-9]{24}\n`).MatchString(out) {
		t.Errorf("stdout:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if !strings.HasPrefix(lines[0], "creating blog.localhost: ") || lines[len(lines)-1] != "creating blog.localhost: Ready: Installed" {
		t.Errorf("progress:\n%s", stderr)
	}

	// suspend, resume and delete wait for the shard too.
	for _, c := range []struct{ verb, want string }{{"suspend", "Suspended"}, {"resume", "Ready"}} {
		out, stderr, err = h.run(t, "site", c.verb, "blog.localhost", "-o", "json")
		if err != nil || !strings.Contains(out, `"phase": "`+c.want+`"`) {
			t.Fatalf("%s: %v\n%s\n%s", c.verb, err, out, stderr)
		}
	}
	out, stderr, err = h.run(t, "site", "delete", "blog.localhost")
	if err != nil || out != "site blog.localhost deleted\n" {
		t.Fatalf("delete: %v %q %q", err, out, stderr)
	}
	if _, _, err := h.run(t, "site", "get", "blog.localhost"); err == nil || err.Error() != `site "blog.localhost" not found` {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestCreateFailed(t *testing.T) {
	h := newHarness(t)
	startShard(t, h.store, "bad.localhost")
	_, _, err := h.run(t, "site", "create", "bad.localhost", "--title", "Bad", "--admin-email", "me@example.com")
	if err == nil || !strings.Contains(err.Error(), "wp core install exited 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	h := newHarness(t) // no shard: the site stays Pending
	_, _, err := h.run(t, "site", "create", "slow.localhost", "--title", "Slow", "--admin-email", "me@example.com", "--timeout", "50ms")
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("err = %v", err)
	}
}

func TestErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"site", "get", "nope.localhost"}, want: `site "nope.localhost" not found`},
		{args: []string{"site", "delete", "nope.localhost"}, want: `site "nope.localhost" not found`},
		{args: []string{"site", "create", "*.localhost", "--title", "T", "--admin-email", "me@example.com"}, want: "wildcards are not allowed"},
		{args: []string{"site", "create", "a.localhost", "--admin-email", "me@example.com"}, want: `required flag(s) "title" not set`},
		{args: []string{"site", "list", "-o", "xml"}, want: `unknown output format "xml"`},
		{args: []string{"site", "list", "--limit", "5000"}, want: "limit must be"},
		{args: []string{"site", "create", "a.localhost", "--title", "T", "--admin-email", "me@example.com"}, env: map[string]string{EnvToken: viewerSecret}, want: "may not perform site.create"},
		{args: []string{"site", "list"}, env: map[string]string{EnvToken: "wrong"}, want: "invalid token"},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			h.env[k] = v
		}
		_, _, err := h.run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
		for k := range tt.env {
			h.env[k] = harnessDefault(h, k)
		}
	}
}

func harnessDefault(h *harness, k string) string {
	switch k {
	case EnvURL:
		return h.url
	case EnvToken:
		return adminSecret
	}
	return ""
}

func TestListAll(t *testing.T) {
	h := newHarness(t)
	for _, d := range []string{"e.localhost", "a.localhost", "c.localhost", "b.localhost", "d.localhost"} {
		if _, _, err := h.run(t, "site", "create", d, "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := h.run(t, "site", "list", "--limit", "2")
	if err != nil || strings.Count(out, "Pending") != 2 || !strings.Contains(stderr, "--all") {
		t.Fatalf("one page: %v\n%s\n%s", err, out, stderr)
	}
	out, _, err = h.run(t, "site", "list", "--limit", "2", "--all")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "list_all_table", out)
}
