package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// gitHarness is newHarness's store and tokens behind an API with git sync.
func gitHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	key, err := gitsync.SealKey([]byte("cli test platform secret"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := gitsync.NewManager(gitsync.ManagerConfig{Store: h.store, Key: key, Clock: func() time.Time { return created }, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: h.store, Clock: func() time.Time { return created }, GitSync: m}))
	t.Cleanup(srv.Close)
	h.url, h.env[EnvURL] = srv.URL, srv.URL
	ctx := context.Background()
	if err := h.store.CreateOrg(ctx, &store.Org{Name: "acme", Kind: store.OrgCustomer, Plan: "business", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "blog.example.com", UID: "uid-blog", Org: "acme", CreatedAt: created},
		Spec: site.Spec{Domain: "blog.example.com", Plan: "basic"}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGitCommands(t *testing.T) {
	h := gitHarness(t)
	out, _, err := h.run(t, "site", "git", "set", "blog.example.com", "--url", "https://git.example.com/acme/blog.git")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"repository    https://git.example.com/acme/blog.git", "branch        main", "path          site.yaml",
		"interval      5m0s", "webhook secret: ", "webhook URL:    " + h.url + "/v1/git/hooks/", "last applied  none"} {
		if !strings.Contains(out, want) {
			t.Errorf("set: no %q in\n%s", want, out)
		}
	}
	if _, _, err := h.run(t, "site", "git", "set", "blog.example.com", "--interval", "1s"); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("a bad interval: %v", err)
	}
	if _, _, err := h.run(t, "org", "git", "set", "acme", "--path", "sites"); err == nil || !strings.Contains(err.Error(), "give --url") {
		t.Errorf("set without --url of a new configuration: %v", err)
	}
	// A change keeps what is not given.
	out, _, err = h.run(t, "site", "git", "set", "blog.example.com", "--branch", "production", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v gitsync.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Config.URL != "https://git.example.com/acme/blog.git" || v.Config.Branch != "production" || v.Webhook.Secret != "" {
		t.Errorf("after changing the branch: %+v", v)
	}
	if out, _, err = h.run(t, "site", "git", "show", "blog.example.com"); err != nil || !strings.Contains(out, "branch        production") ||
		strings.Contains(out, "secret") {
		t.Errorf("show: %v\n%s", err, out)
	}
	if out, _, err = h.run(t, "site", "git", "sync", "blog.example.com", "--wait=false"); err != nil || !strings.Contains(out, "target") {
		t.Errorf("sync: %v\n%s", err, out)
	}

	// Credentials: the password from standard input, never printed.
	root := newRoot("test", h.deps())
	var stdout strings.Builder
	root.SetOut(&stdout)
	root.SetErr(&strings.Builder{})
	root.SetIn(strings.NewReader("tok-123\n"))
	root.SetArgs([]string{"org", "git", "credential", "set", "acme", "deploy", "--username", "bot"})
	if err := root.ExecuteContext(context.Background()); err != nil || !strings.Contains(stdout.String(), "stored git credential deploy of acme") {
		t.Fatalf("credential set: %v %s", err, stdout.String())
	}
	if out, _, err = h.run(t, "org", "git", "credential", "list", "acme"); err != nil || !strings.Contains(out, "deploy  bot") || strings.Contains(out, "tok-123") {
		t.Errorf("credential list: %v\n%s", err, out)
	}
	if out, _, err = h.run(t, "site", "git", "set", "blog.example.com", "--credentials-secret", "deploy"); err != nil || !strings.Contains(out, "credentials   deploy") {
		t.Errorf("set the credential: %v\n%s", err, out)
	}
	if _, _, err = h.run(t, "org", "git", "credential", "delete", "acme", "deploy"); err != nil {
		t.Error(err)
	}

	if out, _, err = h.run(t, "site", "git", "unset", "blog.example.com"); err != nil || out != "site blog.example.com no longer syncs from git\n" {
		t.Errorf("unset: %v %q", err, out)
	}
	if _, _, err = h.run(t, "site", "git", "show", "blog.example.com"); err == nil || !strings.Contains(err.Error(), "no git sync") {
		t.Errorf("show after unset: %v", err)
	}
}

// An invalid file's problems are one a row, aligned with the others; the
// first gets the commit and the position.
func TestPrintGitError(t *testing.T) {
	v := &gitsync.View{Target: gitsync.Target{Kind: gitsync.KindSite, Name: "blog.example.com"}, Org: "acme",
		Status: gitsync.Status{
			LastError: &gitsync.SyncError{Commit: "78ff7202de52998f64d60e6485b898f3ad56a3de", File: "site.yaml", Line: 7, Column: 3,
				Message: "spec.bogus: unknown field \"bogus\"\nsite.yaml:9:5: spec.plugins[0].activ: unknown field \"activ\""},
			Pending:      []gitsync.Commit{{Hash: "78ff7202de52998f64d60e6485b898f3ad56a3de", Subject: "a typo"}},
			PendingCount: 1,
		}}
	var b strings.Builder
	printGit(&b, "http://api", v)
	for _, want := range []string{
		"\nerror         commit 78ff7202de52 site.yaml:7:3: spec.bogus: unknown field \"bogus\"\n" +
			"              site.yaml:9:5: spec.plugins[0].activ: unknown field \"activ\"\n" +
			"pending       1 commit(s)\n",
		"\ndrift         none\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}
