package cli

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

// purger records purges and reports 3 objects per call.
type purger struct {
	mu    sync.Mutex
	calls []string
}

func (p *purger) add(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
	return 3
}
func (p *purger) PurgeURL(site, u string) int   { return p.add("url " + site + " " + u) }
func (p *purger) PurgeTag(site, tag string) int { return p.add("tag " + site + " " + tag) }
func (p *purger) PurgeSite(site string) int     { return p.add("site " + site) }

func TestSitePurge(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "T", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		out  string
	}{
		{[]string{"site", "purge", "blog.localhost"}, "purged all pages of blog.localhost: 3 cached objects removed\n"},
		{[]string{"site", "purge", "blog.localhost", "--tag", "home"}, "purged tag home of blog.localhost: 3 cached objects removed\n"},
		{[]string{"site", "purge", "blog.localhost", "--page", "/hello-world/?x=1"}, "purged http://blog.localhost:8080/hello-world/?x=1 of blog.localhost: 3 cached objects removed\n"},
		{[]string{"site", "purge", "blog.localhost", "--page", "http://blog.localhost/about/", "-o", "json"}, "{\n  \"purged\": 3\n}\n"},
	}
	for _, s := range steps {
		out, stderr, err := h.run(t, s.args...)
		if err != nil || out != s.out {
			t.Errorf("%v: %v %q (stderr %q), want %q", s.args, err, out, stderr, s.out)
		}
	}
	want := []string{
		"site blog.localhost",
		"tag blog.localhost home",
		"url blog.localhost http://blog.localhost:8080/hello-world/?x=1",
		"url blog.localhost http://blog.localhost/about/",
	}
	if !slices.Equal(h.purger.calls, want) {
		t.Errorf("calls = %q, want %q", h.purger.calls, want)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "purge", "blog.localhost", "--page", "/", "--tag", "home"}, "not both"},
		{[]string{"site", "purge", "blog.localhost", "--page", "http://other.localhost/"}, "not on blog.localhost"},
		{[]string{"site", "purge", "blog.localhost", "--page", "relative"}, "path starting with /"},
		{[]string{"site", "purge", "nope.localhost"}, `site "nope.localhost" not found`},
		{[]string{"site", "purge", "nope.localhost", "--page", "/"}, `site "nope.localhost" not found`},
	} {
		_, _, err := h.run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	h.env[EnvToken] = viewerSecret
	if _, _, err := h.run(t, "site", "purge", "blog.localhost"); err == nil || !strings.Contains(err.Error(), "may not perform site.purge") {
		t.Errorf("viewer purge: %v", err)
	}
	if len(h.purger.calls) != len(want) {
		t.Errorf("refused purges reached the purger: %q", h.purger.calls[len(want):])
	}
}

func TestSitePurgeHelp(t *testing.T) {
	h := newHarness(t)
	out, _, err := h.run(t, "site", "purge", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"--page", "--tag", "post-<ID>", "aipress site purge blog.localhost --tag home", "-o, --output"} {
		if !strings.Contains(out, s) {
			t.Errorf("help lacks %q:\n%s", s, out)
		}
	}
}
