package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// gitEnv is newEnv's store and tokens with a handler that has git sync.
func gitEnv(t *testing.T) (*env, *gitsync.Manager) {
	t.Helper()
	e := newEnv(t)
	key, err := gitsync.SealKey(testPlatformSecret)
	if err != nil {
		t.Fatal(err)
	}
	m, err := gitsync.NewManager(gitsync.ManagerConfig{Store: e.store, Key: key, Clock: func() time.Time { return testNow }, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = New(Config{Store: e.store, Clock: func() time.Time { return testNow }, GitSync: m})
	ctx := context.Background()
	for _, org := range []string{"acme", "globex"} {
		if err := e.store.CreateOrg(ctx, &store.Org{Name: org, Kind: store.OrgCustomer, Plan: "business", CreatedAt: testNow}); err != nil {
			t.Fatal(err)
		}
		name := org + ".test"
		if err := e.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + org, Org: org, CreatedAt: testNow},
			Spec: site.Spec{Domain: name, Plan: "basic"}}); err != nil {
			t.Fatal(err)
		}
	}
	return e, m
}

func TestGitRoutes(t *testing.T) {
	e, _ := gitEnv(t)
	cfg := map[string]any{"url": "https://git.example.com/acme/sites.git", "path": "sites/blog.yaml"}

	code, m, _ := e.do(t, "PUT", "/v1/sites/acme.test/git", adminSecret, cfg)
	if code != http.StatusCreated || get(m, "webhook.secret") == nil || get(m, "config.branch") != "main" || get(m, "org") != "acme" {
		t.Fatalf("first PUT: %d %v", code, m)
	}
	secret, id := get(m, "webhook.secret").(string), get(m, "webhook.id").(string)
	if get(m, "webhook.path") != "/v1/git/hooks/"+id {
		t.Errorf("webhook path %v", get(m, "webhook.path"))
	}
	cfg["interval"] = "1m"
	code, m, _ = e.do(t, "PUT", "/v1/sites/acme.test/git", adminSecret, cfg)
	if code != http.StatusOK || get(m, "webhook.secret") != nil || get(m, "webhook.id") != id || get(m, "config.interval") != "1m0s" {
		t.Fatalf("second PUT: %d %v; want the same webhook, no secret", code, m)
	}
	for _, bad := range []map[string]any{
		{"url": "ssh://git@example.com/x.git"},
		{"url": "https://example.com/x.git", "interval": "1s"},
		{"url": "https://example.com/x.git", "credentials": map[string]any{"secret": "missing"}},
		{"url": "https://example.com/x.git", "unknown": 1},
	} {
		if code, m, _ := e.do(t, "PUT", "/v1/sites/acme.test/git", adminSecret, bad); code != http.StatusBadRequest {
			t.Errorf("PUT %v: %d %v, want 400", bad, code, m)
		}
	}
	code, m, _ = e.do(t, "GET", "/v1/sites/acme.test/git", adminSecret, nil)
	if code != http.StatusOK || get(m, "webhook.secret") != nil || get(m, "config.url") != cfg["url"] {
		t.Fatalf("GET: %d %v", code, m)
	}
	requested := get(m, "sync_requested_at")

	// The webhook: a bad or missing signature is 401; a good one 202.
	body := []byte(`{"ref":"refs/heads/main"}`)
	hook := func(h map[string]string, id string) int {
		req := httptest.NewRequest("POST", "/v1/git/hooks/"+id, bytes.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec.Code
	}
	for name, h := range map[string]map[string]string{
		"missing": {},
		"wrong":   {"X-Hub-Signature-256": gitsync.Sign([]byte("guess"), body)},
		"gitea":   {"X-Gitea-Signature": strings.Repeat("ab", 32)},
	} {
		if code := hook(h, id); code != http.StatusUnauthorized {
			t.Errorf("hook with a %s signature: %d, want 401", name, code)
		}
	}
	if code := hook(map[string]string{"X-Hub-Signature-256": gitsync.Sign([]byte(secret), body)}, strings.Repeat("1", 32)); code != http.StatusUnauthorized {
		t.Errorf("hook of an unknown id: %d, want 401", code)
	}
	if _, m, _ := e.do(t, "GET", "/v1/sites/acme.test/git", adminSecret, nil); get(m, "sync_requested_at") != requested {
		t.Fatalf("a rejected delivery requested a sync: %v → %v", requested, get(m, "sync_requested_at"))
	}
	if code := hook(map[string]string{"X-Hub-Signature-256": gitsync.Sign([]byte(secret), body)}, id); code != http.StatusAccepted {
		t.Errorf("hook with a good signature: %d, want 202", code)
	}

	if code, m, _ := e.do(t, "POST", "/v1/sites/acme.test/git/sync", adminSecret, nil); code != http.StatusAccepted {
		t.Errorf("sync: %d %v", code, m)
	}

	// Credentials: stored sealed, listed by name, never read back.
	if code, m, _ := e.do(t, "PUT", "/v1/orgs/acme/git/credentials/deploy", adminSecret,
		map[string]any{"username": "bot", "password": "tok-123"}); code != http.StatusOK || get(m, "password") != nil {
		t.Fatalf("PUT credential: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "PUT", "/v1/orgs/acme/git/credentials/Bad%20Name", adminSecret,
		map[string]any{"username": "bot", "password": "x"}); code != http.StatusBadRequest {
		t.Errorf("PUT credential with a bad name: %d %v", code, m)
	}
	req := httptest.NewRequest("GET", "/v1/orgs/acme/git/credentials", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "tok-123") || !strings.Contains(rec.Body.String(), `"deploy"`) {
		t.Fatalf("list credentials: %d %s", rec.Code, rec.Body)
	}
	cfg["credentials"] = map[string]any{"secret": "deploy"}
	if code, m, _ := e.do(t, "PUT", "/v1/sites/acme.test/git", adminSecret, cfg); code != http.StatusOK || get(m, "config.credentials.secret") != "deploy" {
		t.Fatalf("PUT naming the credential: %d %v", code, m)
	}
	// globex cannot name acme's credential.
	if code, m, _ := e.do(t, "PUT", "/v1/sites/globex.test/git", adminSecret, cfg); code != http.StatusBadRequest {
		t.Fatalf("PUT naming another organisation's credential: %d %v", code, m)
	}
	if code, _, _ := e.do(t, "DELETE", "/v1/orgs/acme/git/credentials/deploy", adminSecret, nil); code != http.StatusNoContent {
		t.Errorf("DELETE credential: %d", code)
	}
	if code, _, _ := e.do(t, "DELETE", "/v1/orgs/acme/git/credentials/deploy", adminSecret, nil); code != http.StatusNotFound {
		t.Errorf("DELETE credential again: %d", code)
	}

	// An organisation's configuration; an unknown organisation is 404.
	if code, m, _ := e.do(t, "PUT", "/v1/orgs/acme/git", adminSecret, map[string]any{"url": "https://git.example.com/acme/sites.git", "path": "sites"}); code != http.StatusCreated || get(m, "kind") != "org" {
		t.Fatalf("PUT org: %d %v", code, m)
	}
	if code, _, _ := e.do(t, "PUT", "/v1/orgs/nope/git", adminSecret, map[string]any{"url": "https://git.example.com/x.git"}); code != http.StatusNotFound {
		t.Errorf("PUT of an unknown organisation: %d", code)
	}
	if code, _, _ := e.do(t, "POST", "/v1/orgs/acme/git/sync", adminSecret, nil); code != http.StatusAccepted {
		t.Errorf("org sync: %d", code)
	}

	if code, _, _ := e.do(t, "DELETE", "/v1/sites/acme.test/git", adminSecret, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test/git", adminSecret, nil); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d", code)
	}
	if code := hook(map[string]string{"X-Hub-Signature-256": gitsync.Sign([]byte(secret), body)}, id); code != http.StatusUnauthorized {
		t.Errorf("hook after DELETE: %d, want 401", code)
	}

	// Audited, with what was set.
	entries, err := e.store.ListAudit(context.Background(), store.AuditListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		if strings.Contains(en.Action, "git") && en.Outcome == "success" {
			actions = append(actions, en.Action)
		}
	}
	for _, want := range []string{"site.git.set", "site.git.sync", "org.git.credential.set", "org.git.credential.delete", "org.git.set", "site.git.delete"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit has no %s (%v)", want, actions)
		}
	}
}

// TestGitRoutesUnconfigured: without a manager the routes answer 501 (the
// webhook too).
func TestGitRoutesUnconfigured(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.do(t, "GET", "/v1/orgs/default/git", adminSecret, nil); code != http.StatusNotImplemented {
		t.Errorf("GET: %d, want 501", code)
	}
	if code, _, _ := e.do(t, "POST", "/v1/git/hooks/"+strings.Repeat("0", 32), "", "{}"); code != http.StatusNotImplemented {
		t.Errorf("hook: %d, want 501", code)
	}
}

// TestGitApplierIdentity: the applier acts as a developer of the
// configuration's organisation only: a site of another organisation is
// not found, an unknown organisation refused.
func TestGitApplierIdentity(t *testing.T) {
	e, _ := gitEnv(t)
	ap := GitApplier(Config{Store: e.store, Clock: func() time.Time { return testNow }})
	ctx := context.Background()
	if _, err := ap.Apply(ctx, gitsync.ApplyRequest{Org: "acme", Site: "globex.test", Doc: []byte("{}"), DryRun: true}); err == nil ||
		!strings.Contains(err.Error(), "not found") {
		t.Errorf("another organisation's site: %v, want not found", err)
	}
	if _, err := ap.Apply(ctx, gitsync.ApplyRequest{Org: "nope", Doc: []byte("{}"), DryRun: true}); err == nil {
		t.Error("an unknown organisation: no error")
	}
}
