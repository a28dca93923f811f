package api

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// recPurger records purges; it removes 1 object per URL, 2 per tag and 10
// per site.
type recPurger struct {
	mu    sync.Mutex
	calls []string
}

func (p *recPurger) add(s string) { p.mu.Lock(); p.calls = append(p.calls, s); p.mu.Unlock() }
func (p *recPurger) PurgeURL(site, u string) int {
	p.add("url " + site + " " + u)
	return 1
}
func (p *recPurger) PurgeTag(site, tag string) int {
	p.add("tag " + site + " " + tag)
	return 2
}
func (p *recPurger) PurgeSite(site string) int {
	p.add("site " + site)
	return 10
}

func TestPurgeCallsPurger(t *testing.T) {
	e := newEnv(t)
	e.create(t, "blog.localhost")
	for _, body := range []any{
		nil,
		map[string]any{},
		map[string]any{"tag": "post-12"},
		map[string]any{"url": "/hello-world/?p=1#top"},
		map[string]any{"url": "HTTP://Blog.Localhost:8080/about/"},
	} {
		if code, m, _ := e.do(t, "POST", "/v1/sites/Blog.localhost/purge", adminSecret, body); code != 200 {
			t.Fatalf("purge %v: %d %v", body, code, m)
		}
	}
	want := []string{
		"site blog.localhost",
		"site blog.localhost",
		"tag blog.localhost post-12",
		"url blog.localhost http://blog.localhost:8080/hello-world/?p=1",
		"url blog.localhost http://Blog.Localhost:8080/about/",
	}
	if !slices.Equal(e.purger.calls, want) {
		t.Errorf("calls:\n%q\nwant\n%q", e.purger.calls, want)
	}
	// Purges are audited like every mutation.
	entries, err := e.store.ListAudit(context.Background(), store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Action == "site.purge" && en.Target == "blog.localhost" && en.Outcome == "success" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d site.purge audit entries, want 5", n)
	}
}

func TestPurgeWithoutPurger(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateToken(ctx, store.Token{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hashSecret(adminSecret), CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, handler: New(Config{Store: st, Placer: StaticPlacer("local")})}
	e.create(t, "blog.localhost")
	code, m, _ := e.do(t, "POST", "/v1/sites/blog.localhost/purge", adminSecret, nil)
	if code != 501 || errCode(m) != CodeUnimplemented {
		t.Fatalf("purge without a purger: %d %v", code, m)
	}
	// An unknown site is still 404.
	if code, _, _ := e.do(t, "POST", "/v1/sites/nope.localhost/purge", adminSecret, nil); code != 404 {
		t.Fatalf("unknown site: %d", code)
	}
}

func TestResolvePurgeURL(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"/", "http://blog.localhost:8080/"},
		{"/a/b/?x=1", "http://blog.localhost:8080/a/b/?x=1"},
		{"https://blog.localhost/a", "https://blog.localhost/a"},
		{"//blog.localhost/a", "http://blog.localhost/a"},
		{"a/b", ""},
		{"http://evil.localhost/", ""},
		{"ftp://blog.localhost/", ""},
		{"http://blog.localhost.evil/", ""},
	} {
		got, err := ResolvePurgeURL("http://blog.localhost:8080", "blog.localhost", tc.raw)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: got %q, want an error", tc.raw, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}
