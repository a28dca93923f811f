package gitsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/aipress/aipress/internal/gitsync/gittest"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// fakeApplier stands in for the API's apply path: it checks a site
// file's fields (an unknown field is an error naming its line and column,
// as the real one does), keeps the applied files by site and records
// every call.
type fakeApplier struct {
	mu    sync.Mutex
	sites map[string]string // site → applied file
	calls []ApplyRequest
}

func (f *fakeApplier) Apply(_ context.Context, req ApplyRequest) (*ApplyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	var root yaml.Node
	if err := yaml.Unmarshal(req.Doc, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", req.File, err)
	}
	allowed := map[string][]string{"": {"apiVersion", "kind", "metadata", "spec"},
		"metadata": {"name", "org"}, "spec": {"title", "options", "themes", "plugins"}}
	name := ""
	var walk func(n *yaml.Node, at string) error
	walk = func(n *yaml.Node, at string) error {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !slices.Contains(allowed[at], k.Value) {
				return fmt.Errorf("%s:%d:%d: %s: unknown field", req.File, k.Line, k.Column, strings.TrimPrefix(at+"."+k.Value, "."))
			}
			if at == "metadata" && k.Value == "name" {
				name = v.Value
			}
			if _, ok := allowed[k.Value]; ok && v.Kind == yaml.MappingNode {
				if err := walk(v, k.Value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:1:1: not a mapping", req.File)
	}
	if err := walk(root.Content[0], ""); err != nil {
		return nil, err
	}
	if req.Site != "" && name != req.Site {
		return nil, fmt.Errorf("the file names %q, not %q", name, req.Site)
	}
	cur, ok := f.sites[name]
	res := &ApplyResult{Site: name, Create: !ok}
	if cur != string(req.Doc) {
		res.Changes = []store.CodeChange{{Action: "update", Kind: "spec", Name: name, Reason: "the file differs"}}
	}
	if !req.DryRun {
		f.sites[name] = string(req.Doc)
	}
	return res, nil
}

func (f *fakeApplier) site(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sites[name]
}

// applied returns the sources of the non-dry calls since from.
func (f *fakeApplier) applied(from int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls[from:] {
		if !c.DryRun {
			out = append(out, c.File+" "+c.Source)
		}
	}
	return out
}

func (f *fakeApplier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fixture struct {
	st store.Store
	m  *Manager
	p  *Poller
	ap *fakeApplier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := SealKey([]byte("platform secret of the test"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Store: st, Key: key, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	ap := &fakeApplier{sites: map[string]string{}}
	p, err := NewPoller(PollerConfig{Manager: m, Applier: ap, CacheDir: filepath.Join(dir, "cache"), AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, m: m, p: p, ap: ap}
}

func (fx *fixture) sync(t *testing.T, tg Target) *View {
	t.Helper()
	if err := fx.p.Sync(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	v, err := fx.m.Get(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const blogFile = `apiVersion: aipress.dev/v1
kind: Site
metadata:
  name: blog.example.com
  org: acme
spec:
  title: Blog
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options:
    blogname: %s
`

// TestSyncCommitsInOrder: commits are applied in order; a bad commit stops
// the sync with its position, leaves the site as it was and waits; the
// commit that fixes it is applied; a file naming another organisation is
// refused; drift is shown.
func TestSyncCommitsInOrder(t *testing.T) {
	fx := newFixture(t)
	repo := gittest.New(t, "", "")
	tg := Target{Kind: KindOrg, Name: "acme"}
	c1 := repo.Commit("create the blog", map[string]string{"sites/blog.yaml": fmt.Sprintf(blogFile, "First"), "README.md": "hello"})
	v, err := fx.m.Put(t.Context(), tg, "acme", Config{URL: repo.URL, Path: "sites/"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Webhook.Secret == "" || v.Webhook.ID == "" || v.Config.Branch != "main" || v.Config.Path != "sites" || v.Config.Interval != "5m0s" {
		t.Fatalf("Put = %+v; want a webhook with its secret and defaults", v)
	}
	v = fx.sync(t, tg)
	if v.Status.LastApplied == nil || v.Status.LastApplied.Hash != c1 || v.Status.LastError != nil || v.Status.Head != c1 {
		t.Fatalf("after commit 1: %+v", v.Status)
	}
	if got := fx.ap.site("blog.example.com"); !strings.Contains(got, "blogname: First") {
		t.Fatalf("site after commit 1 = %q", got)
	}
	n := fx.ap.count()
	// No new commit: nothing applied again.
	fx.sync(t, tg)
	if got := fx.ap.applied(n); len(got) != 0 {
		t.Fatalf("a sync without new commits applied %q", got)
	}

	c2 := repo.Commit("rename", map[string]string{"sites/blog.yaml": fmt.Sprintf(blogFile, "Second")})
	c3 := repo.Commit("a typo", map[string]string{"sites/blog.yaml": fmt.Sprintf(blogFile, "Third") + "  bogus: 1\n"})
	n = fx.ap.count()
	v = fx.sync(t, tg)
	if got, want := fx.ap.applied(n), []string{"sites/blog.yaml git " + repo.URL + "@" + c2}; !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
	st := v.Status
	if st.LastApplied == nil || st.LastApplied.Hash != c2 || st.LastError == nil {
		t.Fatalf("after the bad commit: %+v", st)
	}
	if le := st.LastError; le.Commit != c3 || le.File != "sites/blog.yaml" || le.Line != 12 || le.Column != 3 ||
		le.Message != "spec.bogus: unknown field" {
		t.Errorf("last error = %+v; want commit 3, the file, 12:3 and the message without them", le)
	}
	if st.PendingCount != 1 || len(st.Pending) != 1 || st.Pending[0].Hash != c3 || st.Pending[0].Subject != "a typo" {
		t.Errorf("pending = %d %+v, want commit 3", st.PendingCount, st.Pending)
	}
	if got := fx.ap.site("blog.example.com"); !strings.Contains(got, "blogname: Second") {
		t.Fatalf("site after the bad commit = %q, want commit 2's", got)
	}
	// Retried while it is the head: still failing, nothing applied.
	n = fx.ap.count()
	if v = fx.sync(t, tg); v.Status.LastError == nil || v.Status.LastError.Commit != c3 || len(fx.ap.applied(n)) != 0 {
		t.Fatalf("retry of the bad head: %+v, applied %q", v.Status, fx.ap.applied(n))
	}

	c4 := repo.Commit("fix the typo", map[string]string{"sites/blog.yaml": fmt.Sprintf(blogFile, "Fourth")})
	n = fx.ap.count()
	v = fx.sync(t, tg)
	if got, want := fx.ap.applied(n), []string{"sites/blog.yaml git " + repo.URL + "@" + c4}; !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
	if st := v.Status; st.LastApplied.Hash != c4 || st.LastError != nil || st.PendingCount != 0 || !strings.Contains(st.Notice, "skipped") {
		t.Fatalf("after the fix: %+v", st)
	}
	if len(v.Status.Drift) != 0 {
		t.Errorf("drift right after applying: %+v", v.Status.Drift)
	}

	// Another organisation's file is refused; the commit waits.
	c5 := repo.Commit("not ours", map[string]string{"sites/shop.yaml": strings.ReplaceAll(strings.ReplaceAll(
		fmt.Sprintf(blogFile, "Shop"), "org: acme", "org: other"), "blog.", "shop.")})
	v = fx.sync(t, tg)
	if le := v.Status.LastError; le == nil || le.Commit != c5 || le.File != "sites/shop.yaml" || !strings.Contains(le.Message, "metadata.org") {
		t.Fatalf("a file of another organisation: %+v", v.Status)
	}
	if fx.ap.site("shop.example.com") != "" {
		t.Fatal("another organisation's site was applied")
	}
	repo.Commit("drop it", map[string]string{"sites/shop.yaml": ""})
	if v = fx.sync(t, tg); v.Status.LastError != nil {
		t.Fatalf("after dropping the file: %+v", v.Status.LastError)
	}

	// A change made outside git is drift.
	fx.ap.mu.Lock()
	fx.ap.sites["blog.example.com"] = "changed by hand"
	fx.ap.mu.Unlock()
	if _, err := fx.m.RequestSync(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	if err := fx.p.SyncDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, _ = fx.m.Get(t.Context(), tg)
	if d := v.Status.Drift; len(d) != 1 || d[0].Site != "blog.example.com" || d[0].Kind != "spec" {
		t.Fatalf("drift = %+v, want the blog's spec", d)
	}
}

// TestSyncSiteTarget: a site's configuration applies one file and refuses
// a file naming another site.
func TestSyncSiteTarget(t *testing.T) {
	fx := newFixture(t)
	repo := gittest.New(t, "", "")
	c1 := repo.Commit("one", map[string]string{"site.yaml": fmt.Sprintf(blogFile, "One")})
	tg := Target{Kind: KindSite, Name: "blog.example.com"}
	if _, err := fx.m.Put(t.Context(), tg, "acme", Config{URL: repo.URL}); err != nil {
		t.Fatal(err)
	}
	if v := fx.sync(t, tg); v.Status.LastApplied == nil || v.Status.LastApplied.Hash != c1 {
		t.Fatalf("status %+v", v.Status)
	}
	if fx.ap.calls[len(fx.ap.calls)-1].Site != "blog.example.com" || fx.ap.calls[len(fx.ap.calls)-1].Org != "acme" {
		t.Errorf("apply request %+v; want the site and its org", fx.ap.calls[len(fx.ap.calls)-1])
	}
	c2 := repo.Commit("other", map[string]string{"site.yaml": strings.ReplaceAll(fmt.Sprintf(blogFile, "Two"), "blog.", "shop.")})
	if v := fx.sync(t, tg); v.Status.LastError == nil || v.Status.LastError.Commit != c2 || !strings.Contains(v.Status.LastError.Message, "metadata.name") {
		t.Fatalf("status %+v; want the other site refused", v.Status)
	}
	// A missing file is an error naming it.
	c3 := repo.Commit("moved", map[string]string{"site.yaml": "", "elsewhere.yaml": fmt.Sprintf(blogFile, "Three")})
	if v := fx.sync(t, tg); v.Status.LastError == nil || v.Status.LastError.Commit != c3 || !strings.Contains(v.Status.LastError.Message, "site.yaml: no such file") {
		t.Fatalf("status %+v; want the missing file", v.Status)
	}
}

// TestWebhook: a delivery signed with the webhook's secret requests a sync
// and wakes the poller, which applies the new commit; a bad or missing
// signature (or an unknown webhook) changes nothing.
func TestWebhook(t *testing.T) {
	fx := newFixture(t)
	repo := gittest.New(t, "", "")
	repo.Commit("one", map[string]string{"blog.yaml": fmt.Sprintf(blogFile, "One")})
	tg := Target{Kind: KindOrg, Name: "acme"}
	v, err := fx.m.Put(t.Context(), tg, "acme", Config{URL: repo.URL, Interval: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := v.Webhook.ID, []byte(v.Webhook.Secret)
	fx.sync(t, tg)
	<-fx.m.Woken() // Put's wake-up
	c2 := repo.Commit("two", map[string]string{"blog.yaml": fmt.Sprintf(blogFile, "Two")})
	body := []byte(`{"ref":"refs/heads/main","after":"` + c2 + `"}`)
	before, _ := fx.m.Get(t.Context(), tg)

	for _, tc := range []struct {
		name string
		id   string
		h    http.Header
	}{
		{"missing signature", id, http.Header{}},
		{"wrong secret", id, http.Header{"X-Hub-Signature-256": {Sign([]byte("guess"), body)}}},
		{"signature of another body", id, http.Header{"X-Hub-Signature-256": {Sign(secret, []byte("{}"))}}},
		{"no sha256= prefix", id, http.Header{"X-Hub-Signature-256": {strings.TrimPrefix(Sign(secret, body), "sha256=")}}},
		{"bad gitea signature", id, http.Header{"X-Gitea-Signature": {"00" + strings.TrimPrefix(Sign(secret, body), "sha256=")[2:]}}},
		{"unknown webhook", strings.Repeat("0", 32), http.Header{"X-Hub-Signature-256": {Sign(secret, body)}}},
		{"malformed id", "../x", http.Header{"X-Hub-Signature-256": {Sign(secret, body)}}},
	} {
		if _, err := fx.m.Hook(t.Context(), tc.id, tc.h, body); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Hook = %v, want ErrBadSignature", tc.name, err)
		}
	}
	after, _ := fx.m.Get(t.Context(), tg)
	if !after.SyncRequestedAt.Equal(*before.SyncRequestedAt) || len(fx.m.Woken()) != 0 {
		t.Fatal("a rejected delivery requested a sync")
	}
	if due(mustRecord(t, fx.m, tg), fx.p.cfg.Clock()) {
		t.Fatal("due without a request")
	}

	// A good delivery wakes a running poller (whose tick is far away),
	// which applies commit 2.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fx.p.cfg.Tick = 24 * 60 * 60e9
	done := make(chan error, 1)
	go func() { done <- fx.p.Run(ctx) }()
	// Run's first pass finds nothing due; a delivery then wakes it.
	gitea := http.Header{"X-Gitea-Signature": {strings.TrimPrefix(Sign(secret, body), "sha256=")}}
	if got, err := fx.m.Hook(t.Context(), id, gitea, body); err != nil || got != tg {
		t.Fatalf("Hook = %v, %v", got, err)
	}
	for {
		v, err := fx.m.Get(t.Context(), tg)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status.LastApplied != nil && v.Status.LastApplied.Hash == c2 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("poller stopped: %v", err)
		case <-t.Context().Done():
			t.Fatal("the webhook did not lead to a sync")
		default:
			runtimeGosched()
		}
	}
	cancel()
	<-done
	if !strings.Contains(fx.ap.site("blog.example.com"), "blogname: Two") {
		t.Fatal("commit 2 not applied")
	}
	// Deleting the configuration removes its webhook.
	if err := fx.m.Delete(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.m.Hook(t.Context(), id, http.Header{"X-Hub-Signature-256": {Sign(secret, body)}}, body); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Hook after Delete = %v", err)
	}
	if _, err := fx.m.Get(t.Context(), tg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
}

func mustRecord(t *testing.T, m *Manager, tg Target) *record {
	t.Helper()
	rec, err := m.load(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestCredentials: a repository behind HTTP basic auth syncs with the
// referenced credential, fails clearly without it or with a wrong one; a
// credential of another organisation cannot be named.
func TestCredentials(t *testing.T) {
	fx := newFixture(t)
	repo := gittest.New(t, "deploy", "s3cret-token")
	c1 := repo.Commit("one", map[string]string{"blog.yaml": fmt.Sprintf(blogFile, "One")})
	tg := Target{Kind: KindOrg, Name: "acme"}
	ctx := t.Context()

	if _, err := fx.m.Put(ctx, tg, "acme", Config{URL: repo.URL}); err != nil {
		t.Fatal(err)
	}
	if v := fx.sync(t, tg); v.Status.LastError == nil || !strings.Contains(v.Status.LastError.Message, "requires authentication") {
		t.Fatalf("without a credential: %+v", v.Status)
	}
	if _, err := fx.m.Put(ctx, tg, "acme", Config{URL: repo.URL, Credentials: &CredentialsRef{Secret: "deploy"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Put naming a missing credential = %v, want ErrInvalid", err)
	}
	if err := fx.m.PutCredential(ctx, "other", "deploy", Credential{Username: "deploy", Password: "s3cret-token"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.m.Put(ctx, tg, "acme", Config{URL: repo.URL, Credentials: &CredentialsRef{Secret: "deploy"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Put naming another organisation's credential = %v, want ErrInvalid", err)
	}
	if err := fx.m.PutCredential(ctx, "acme", "deploy", Credential{Username: "deploy", Password: "wrong"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.m.Put(ctx, tg, "acme", Config{URL: repo.URL, Credentials: &CredentialsRef{Secret: "deploy"}}); err != nil {
		t.Fatal(err)
	}
	if v := fx.sync(t, tg); v.Status.LastError == nil || !strings.Contains(v.Status.LastError.Message, "refused the credential") {
		t.Fatalf("with a wrong credential: %+v", v.Status)
	}
	if err := fx.m.PutCredential(ctx, "acme", "deploy", Credential{Username: "deploy", Password: "s3cret-token"}); err != nil {
		t.Fatal(err)
	}
	if v := fx.sync(t, tg); v.Status.LastError != nil || v.Status.LastApplied == nil || v.Status.LastApplied.Hash != c1 {
		t.Fatalf("with the credential: %+v", v.Status)
	}
	// The stored credential is sealed; lists show names, not secrets.
	set, err := fx.st.GetSetting(ctx, credKey("acme", "deploy"))
	if err != nil || strings.Contains(string(set.Value), "s3cret-token") {
		t.Fatalf("stored credential %q, %v: the password in clear", set.Value, err)
	}
	if l, err := fx.m.ListCredentials(ctx, "acme"); err != nil || len(l) != 1 || l[0] != (CredentialInfo{Name: "deploy", Username: "deploy"}) {
		t.Fatalf("ListCredentials = %+v, %v", l, err)
	}
	if err := fx.m.DeleteCredential(ctx, "acme", "deploy"); err != nil {
		t.Fatal(err)
	}
	if v := fx.sync(t, tg); v.Status.LastError == nil || !strings.Contains(v.Status.LastError.Message, "no git credential") {
		t.Fatalf("after the credential was deleted: %+v", v.Status)
	}
}

func TestConfigNormalize(t *testing.T) {
	for _, tc := range []struct {
		kind string
		in   Config
		want string // error substring; "" ok
	}{
		{KindSite, Config{URL: "https://git.example.com/a.git"}, ""},
		{KindSite, Config{URL: "http://127.0.0.1:3000/a.git"}, "plain http is not allowed"},
		{KindSite, Config{URL: "https://127.0.0.1:3000/a.git"}, "loopback address"},
		{KindSite, Config{URL: "https://169.254.169.254/a.git"}, "link-local address"},
		{KindSite, Config{URL: "https://10.0.0.2/a.git"}, "private address"},
		{KindSite, Config{URL: "https://localhost/a.git"}, "loopback name"},
		{KindSite, Config{URL: "http://git.example.com/a.git"}, "plain http is not allowed"},
		{KindSite, Config{URL: "ssh://git@example.com/a.git"}, "scheme must be https"},
		{KindSite, Config{URL: "https://user:pw@example.com/a.git"}, "credentials do not belong in the URL"},
		{KindSite, Config{URL: ""}, "url: required"},
		{KindSite, Config{URL: "https://x/a.git", Branch: "-x"}, "branch"},
		{KindSite, Config{URL: "https://x/a.git", Branch: "a..b"}, "branch"},
		{KindSite, Config{URL: "https://x/a.git", Path: "../etc/passwd"}, "path"},
		{KindSite, Config{URL: "https://x/a.git", Path: "a/./b"}, "path"},
		{KindSite, Config{URL: "https://x/a.git", Interval: "1s"}, "interval"},
		{KindSite, Config{URL: "https://x/a.git", Interval: "soon"}, "interval"},
		{KindOrg, Config{URL: "https://x/a.git", Credentials: &CredentialsRef{Secret: "Bad Name"}}, "credentials.secret"},
		{KindOrg, Config{URL: "https://x/a.git", Path: "."}, ""},
	} {
		c := tc.in
		err := c.Normalize(tc.kind, false)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestPollerGuarded: a poller without AllowPrivateNetworks does not fetch
// a loopback repository, neither a record stored while private fetches
// were allowed nor (go-git's transport is guarded) a fetch that skips the
// URL check.
func TestPollerGuarded(t *testing.T) {
	fx := newFixture(t)
	repo := gittest.New(t, "", "")
	repo.Commit("one", map[string]string{"site.yaml": fmt.Sprintf(blogFile, "One")})
	tg := Target{Kind: KindSite, Name: "blog.example.com"}
	if _, err := fx.m.Put(t.Context(), tg, "acme", Config{URL: repo.URL}); err != nil {
		t.Fatal(err)
	}
	p, err := NewPoller(PollerConfig{Manager: fx.m, Applier: fx.ap, CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	v, err := fx.m.Get(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.LastError == nil || !strings.Contains(v.Status.LastError.Message, "not allowed") || fx.ap.count() != 0 {
		t.Fatalf("guarded poller: status %+v, %d applies; want refused", v.Status, fx.ap.count())
	}
	cfg := Config{URL: strings.Replace(repo.URL, "127.0.0.1", "localhost", 1), Branch: "main", Path: "site.yaml"}
	if _, _, err := fetch(t.Context(), t.TempDir(), 1, cfg, nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("guarded fetch of %s: %v, want a refused loopback address", cfg.URL, err)
	}
}

// TestConfigNormalizeAllowPrivate: with private fetches allowed (tests,
// private mirrors), loopback and plain http are accepted.
func TestConfigNormalizeAllowPrivate(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:3000/a.git", "https://10.0.0.2/a.git", "http://mirror.internal/a.git"} {
		c := Config{URL: u}
		if err := c.Normalize(KindSite, true); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestPosition(t *testing.T) {
	for msg, want := range map[string][2]int{
		"site.yaml:12:3: spec.bogus: unknown field": {12, 3},
		"line 4, column 7: bad":                     {4, 7},
		"no position here":                          {0, 0},
	} {
		if l, c := position(msg); l != want[0] || c != want[1] {
			t.Errorf("position(%q) = %d:%d, want %v", msg, l, c, want)
		}
	}
}

func runtimeGosched() { runtime.Gosched(); time.Sleep(10 * time.Millisecond) }
