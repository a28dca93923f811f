package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/aipress/aipress/internal/loginlink"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
	"github.com/aipress/aipress/internal/wordpress"
)

const (
	adminSecret  = "admin-secret"
	viewerSecret = "viewer-secret"
)

var testNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

type env struct {
	store    store.Store
	handler  http.Handler
	notifies atomic.Int64
	purger   *recPurger
	ca       *mtls.Authority // the mesh CA's first generation
	meshCA   *mtls.CA
	// mail holds what the API mailed (invitations, resets).
	mail *mailbox
	// siteMetrics is the handler's per-site time series.
	siteMetrics *sitemetrics.Store
	// uploads is the bucket of uploaded artefacts.
	uploads *blob.Bucket
	// observed are the routes Config.Observe was told of, in order.
	observedMu sync.Mutex
	observed   []string
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// newEnv builds the handler over a fresh store; opts change its Config.
func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hashSecret(adminSecret), CreatedAt: testNow},
		{ID: "tok-viewer", Name: "viewer", Role: store.RoleViewer, Hash: hashSecret(viewerSecret), CreatedAt: testNow},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{store: st, purger: &recPurger{}, mail: &mailbox{}}
	meshCA, err := mtls.NewCA(bytes.Repeat([]byte{7}, 32), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	if e.ca, err = meshCA.Generation(1); err != nil {
		t.Fatal(err)
	}
	e.meshCA = meshCA
	e.siteMetrics = sitemetrics.New(sitemetrics.Config{Clock: func() time.Time { return testNow }})
	if e.uploads, err = fileblob.OpenBucket(t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.uploads.Close() })
	cfg := Config{
		Uploads:        e.uploads,
		SiteMetrics:    e.siteMetrics,
		MeshCA:         meshCA,
		Purger:         e.purger,
		Store:          st,
		Placer:         StaticPlacer("local"),
		Notify:         func() { e.notifies.Add(1) },
		Clock:          func() time.Time { return testNow },
		Version:        "test",
		PublicURL:      func(d string) string { return "http://" + d + ":8080" },
		PublicHTTPSURL: func(d string) string { return "https://" + d + ":8443" },
		Auth:           AuthConfig{Mailer: e.mail},
		LoginKey:       func(uid string) []byte { return loginlink.Key(testPlatformSecret, uid) },
		Observe: func(route string, _ int, _ time.Duration) {
			e.observedMu.Lock()
			e.observed = append(e.observed, route)
			e.observedMu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.handler = New(cfg)
	return e
}

// inviteSecret is the secret of the last invitation e mailed.
func (e *env) inviteSecret(t *testing.T) string {
	t.Helper()
	body := e.mail.last(t).Body
	_, after, ok := strings.Cut(body, "/invite#")
	if !ok {
		t.Fatalf("no invitation link in %q", body)
	}
	return strings.Fields(after)[0]
}

// do sends a request and returns the status and decoded JSON body (nil if
// the body is not a JSON object).
func (e *env) do(t *testing.T, method, path, token string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m, rec.Header()
}

func (e *env) create(t *testing.T, domain string) map[string]any {
	t.Helper()
	code, m, _ := e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{
		"domain": domain, "title": "Blog", "admin_email": "me@example.com",
	})
	if code != http.StatusCreated {
		t.Fatalf("create %s: %d %v", domain, code, m)
	}
	return m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// get returns the value at a dotted path in m.
func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func TestScenarios(t *testing.T) {
	createBody := func(domain string) map[string]any {
		return map[string]any{"domain": domain, "title": "T", "admin_email": "me@example.com"}
	}
	tests := []struct {
		name     string
		setup    []string // sites created first
		method   string
		path     string
		token    string
		body     any
		status   int
		code     string         // error code, if an error
		fields   map[string]any // dotted path -> expected value
		contains string         // substring of the error message
	}{
		{name: "create ok", method: "POST", path: "/v1/sites", token: adminSecret,
			body:   map[string]any{"domain": "blog.localhost", "title": "Blog", "admin_email": "me@example.com", "labels": map[string]string{"team": "web"}},
			status: 201, fields: map[string]any{
				"domain": "blog.localhost", "status": "Pending", "shard": "local", "admin_user": "admin",
				"url": "http://blog.localhost:8080", "site.spec.plan": "basic", "site.spec.php.max_children": 5.0,
				"site.spec.php.memory_limit_mb": 256.0, "site.spec.php.upload_max_mb": 64.0,
				"site.spec.php.idle_timeout_seconds": 10.0, "site.metadata.generation": 1.0,
				"site.spec.admin.password_hash": nil, "site.metadata.labels.team": "web",
				"site.metadata.created_at": "2025-01-02T03:04:05Z",
			}},
		{name: "create upper-case domain lower-cased", method: "POST", path: "/v1/sites", token: adminSecret,
			body: createBody("Blog.Example.COM"), status: 201, fields: map[string]any{"domain": "blog.example.com"}},
		{name: "create punycode ok", method: "POST", path: "/v1/sites", token: adminSecret,
			body: createBody("xn--a.com"), status: 201},
		{name: "email with display name", method: "POST", path: "/v1/sites", token: adminSecret,
			body:   map[string]any{"domain": "a.com", "title": "T", "admin_email": "Me <me@example.com>", "admin_user": "boss", "plan": "business"},
			status: 400, code: "invalid_argument", contains: "admin_email"},
		{name: "wildcard", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("*.example.com"), status: 400, code: "invalid_domain", contains: "wildcard"},
		{name: "space", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("Exa mple.com"), status: 400, code: "invalid_domain"},
		{name: "empty label", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("a..b"), status: 400, code: "invalid_domain", contains: "empty label"},
		{name: "leading hyphen", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("-a.com"), status: 400, code: "invalid_domain", contains: "hyphen"},
		{name: "single label", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("localhost"), status: 400, code: "invalid_domain"},
		{name: "too long", method: "POST", path: "/v1/sites", token: adminSecret, body: createBody(strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 55) + ".com"), status: 400, code: "invalid_domain", contains: "253"},
		{name: "missing title", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "admin_email": "me@example.com"}, status: 400, code: "invalid_argument", contains: "title"},
		{name: "missing email", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "title": "T"}, status: 400, code: "invalid_argument", contains: "admin_email"},
		{name: "bad email", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "title": "T", "admin_email": "nope"}, status: 400, code: "invalid_argument"},
		{name: "unknown field", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com", "colour": "red"}, status: 400, code: "invalid_argument"},
		{name: "bad json", method: "POST", path: "/v1/sites", token: adminSecret, body: "{", status: 400, code: "invalid_argument"},
		{name: "unknown plan", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com", "plan": "gold"}, status: 400, code: "invalid_argument", contains: "plans are dev, basic, pro, business"},
		{name: "plan sets php", method: "POST", path: "/v1/sites", token: adminSecret, body: map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com", "plan": "business"}, status: 201,
			fields: map[string]any{"site.spec.plan": "business", "site.spec.php.max_children": 10.0, "site.spec.php.memory_limit_mb": 512.0}},
		{name: "duplicate", setup: []string{"blog.localhost"}, method: "POST", path: "/v1/sites", token: adminSecret, body: createBody("BLOG.localhost"), status: 409, code: "already_exists"},
		{name: "get ok case-insensitive", setup: []string{"blog.localhost"}, method: "GET", path: "/v1/sites/Blog.Localhost", token: viewerSecret, status: 200,
			fields: map[string]any{"metadata.name": "blog.localhost", "spec.admin.user": "admin", "spec.admin.password_hash": nil}},
		{name: "get unknown", method: "GET", path: "/v1/sites/nope.localhost", token: adminSecret, status: 404, code: "not_found", contains: `site "nope.localhost" not found`},
		{name: "missing token", method: "GET", path: "/v1/sites", status: 401, code: "unauthenticated"},
		{name: "wrong token", method: "GET", path: "/v1/sites", token: "wrong", status: 401, code: "unauthenticated"},
		{name: "openapi needs token", method: "GET", path: "/v1/openapi.yaml", status: 401, code: "unauthenticated"},
		{name: "viewer create forbidden", method: "POST", path: "/v1/sites", token: viewerSecret, body: createBody("a.com"), status: 403, code: "forbidden"},
		{name: "viewer delete forbidden", setup: []string{"a.com"}, method: "DELETE", path: "/v1/sites/a.com", token: viewerSecret, status: 403, code: "forbidden"},
		{name: "viewer list ok", method: "GET", path: "/v1/sites", token: viewerSecret, status: 200},
		{name: "whoami", method: "GET", path: "/v1/whoami", token: viewerSecret, status: 200, fields: map[string]any{"id": "tok-viewer", "name": "viewer", "role": "viewer"}},
		{name: "suspend", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/suspend", token: adminSecret, status: 200, fields: map[string]any{"spec.suspended": true, "metadata.generation": 2.0}},
		{name: "resume not suspended is a no-op", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/resume", token: adminSecret, status: 200, fields: map[string]any{"spec.suspended": false, "metadata.generation": 1.0}},
		{name: "suspend unknown", method: "POST", path: "/v1/sites/x.com/suspend", token: adminSecret, status: 404, code: "not_found"},
		{name: "delete", setup: []string{"a.com"}, method: "DELETE", path: "/v1/sites/a.com", token: adminSecret, status: 202, fields: map[string]any{"status.phase": "Deleting", "metadata.deletion_requested": "2025-01-02T03:04:05Z"}},
		{name: "delete unknown", method: "DELETE", path: "/v1/sites/x.com", token: adminSecret, status: 404, code: "not_found"},
		{name: "bad limit", method: "GET", path: "/v1/sites?limit=abc", token: adminSecret, status: 400, code: "invalid_argument"},
		{name: "limit too big", method: "GET", path: "/v1/sites?limit=1001", token: adminSecret, status: 400, code: "invalid_argument"},
		{name: "limit zero", method: "GET", path: "/v1/sites?limit=0", token: adminSecret, status: 400, code: "invalid_argument"},
		{name: "bad continue", method: "GET", path: "/v1/sites?continue=%21%21", token: adminSecret, status: 400, code: "invalid_argument"},
		{name: "purge site", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, status: 200, fields: map[string]any{"purged": 10.0}},
		{name: "purge tag", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/A.com/purge", token: adminSecret, body: map[string]any{"tag": "home"}, status: 200, fields: map[string]any{"purged": 2.0}},
		{name: "purge url", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"url": "/x/"}, status: 200, fields: map[string]any{"purged": 1.0}},
		{name: "purge url and tag", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"url": "/", "tag": "home"}, status: 400, code: "invalid_argument", contains: "not both"},
		{name: "purge bad tag", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"tag": "a b"}, status: 400, code: "invalid_argument"},
		{name: "purge other host", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"url": "http://b.com/"}, status: 400, code: "invalid_argument", contains: "not on a.com"},
		{name: "purge relative url", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"url": "x"}, status: 400, code: "invalid_argument"},
		{name: "purge unknown field", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: adminSecret, body: map[string]any{"all": true}, status: 400, code: "invalid_argument"},
		{name: "purge unknown site", method: "POST", path: "/v1/sites/x.com/purge", token: adminSecret, status: 404, code: "not_found"},
		{name: "viewer purge forbidden", setup: []string{"a.com"}, method: "POST", path: "/v1/sites/a.com/purge", token: viewerSecret, status: 403, code: "forbidden"},
		{name: "unknown route", method: "GET", path: "/v2/nothing", token: adminSecret, status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for _, d := range tt.setup {
				e.create(t, d)
			}
			code, m, hdr := e.do(t, tt.method, tt.path, tt.token, tt.body)
			if code != tt.status {
				t.Fatalf("status = %d, want %d; body %v", code, tt.status, m)
			}
			if got := errCode(m); got != tt.code {
				t.Errorf("error code = %q, want %q; body %v", got, tt.code, m)
			}
			if tt.contains != "" {
				if msg, _ := get(m, "error.message").(string); !strings.Contains(msg, tt.contains) {
					t.Errorf("error message %q does not contain %q", msg, tt.contains)
				}
			}
			for path, want := range tt.fields {
				if got := get(m, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if code == 401 && hdr.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
			}
			if code >= 400 && hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", hdr.Get("Content-Type"))
			}
		})
	}
}

func TestCreatePasswordHash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.create(t, "blog.localhost")
	pw, _ := m["admin_password"].(string)
	if len(pw) != PasswordLength {
		t.Fatalf("admin_password %q has length %d", pw, len(pw))
	}
	st, err := e.store.GetSite(ctx, "blog.localhost")
	if err != nil {
		t.Fatal(err)
	}
	// WordPress's own phpass checks it (TestPortableHashWordPress), at
	// the least rounds.
	if h := st.Spec.Admin.PasswordHash; !wordpress.CheckPortable(pw, h) || h[3] != '5' {
		t.Fatalf("stored hash %q does not verify, or not at 2^7 rounds", h)
	}
	if st.Metadata.UID == "" || st.Metadata.UID == "00000000-0000-0000-0000-000000000000" {
		t.Errorf("uid = %q", st.Metadata.UID)
	}
	if st.Status.Phase != site.PhasePending || st.Status.Shard != "local" {
		t.Errorf("status = %+v", st.Status)
	}
	// The password and its hash never appear in reads.
	req := httptest.NewRequest("GET", "/v1/sites/blog.localhost", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if body := rec.Body.String(); strings.Contains(body, pw) || strings.Contains(body, "password_hash") || strings.Contains(body, "$2a$") {
		t.Errorf("GET leaks the password or its hash: %s", body)
	}
	// A second site gets a different password.
	if m2 := e.create(t, "other.localhost"); m2["admin_password"] == pw {
		t.Error("two sites got the same password")
	}
}

func TestSuspendResumeDeleteIdempotent(t *testing.T) {
	e := newEnv(t)
	e.create(t, "a.com")
	steps := []struct {
		method, path string
		status       int
		field        string
		want         any
	}{
		{"POST", "/v1/sites/a.com/suspend", 200, "spec.suspended", true},
		{"POST", "/v1/sites/a.com/suspend", 200, "metadata.generation", 2.0},
		{"POST", "/v1/sites/a.com/resume", 200, "spec.suspended", false},
		{"POST", "/v1/sites/a.com/resume", 200, "metadata.generation", 3.0},
		{"DELETE", "/v1/sites/A.com", 202, "status.phase", "Deleting"},
		{"DELETE", "/v1/sites/a.com", 202, "status.phase", "Deleting"},
		{"POST", "/v1/sites/a.com/suspend", 409, "error.code", "conflict"},
		{"GET", "/v1/sites/a.com", 200, "status.phase", "Deleting"},
	}
	for _, s := range steps {
		code, m, _ := e.do(t, s.method, s.path, adminSecret, nil)
		if code != s.status || get(m, s.field) != s.want {
			t.Fatalf("%s %s: %d %s=%v, want %d %v; body %v", s.method, s.path, code, s.field, get(m, s.field), s.status, s.want, m)
		}
	}
	// The shard finishes the deletion.
	if err := e.store.DeleteSite(context.Background(), "a.com"); err != nil {
		t.Fatal(err)
	}
	if code, m, _ := e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil); code != 404 {
		t.Fatalf("delete after removal: %d %v", code, m)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	want := []string{"a.com", "b.com", "c.com", "d.com", "e.com"}
	for _, d := range []string{"c.com", "a.com", "e.com", "b.com", "d.com"} {
		e.create(t, d)
	}
	var got []string
	path := "/v1/sites?limit=2"
	pages := 0
	for {
		code, m, _ := e.do(t, "GET", path, viewerSecret, nil)
		if code != 200 {
			t.Fatalf("list: %d %v", code, m)
		}
		pages++
		items, _ := m["items"].([]any)
		if len(items) > 2 {
			t.Fatalf("page has %d items", len(items))
		}
		for _, it := range items {
			got = append(got, get(it.(map[string]any), "metadata.name").(string))
			if get(it.(map[string]any), "spec.admin.password_hash") != nil {
				t.Error("list leaks password hash")
			}
		}
		cont, _ := m["continue"].(string)
		if cont == "" {
			break
		}
		path = "/v1/sites?limit=2&continue=" + cont
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 3 {
		t.Fatalf("got %v in %d pages, want %v in 3", got, pages, want)
	}
	// Empty list is [] not null.
	e2 := newEnv(t)
	_, m, _ := e2.do(t, "GET", "/v1/sites", adminSecret, nil)
	if items, ok := m["items"].([]any); !ok || len(items) != 0 {
		t.Errorf("empty list items = %#v", m["items"])
	}
}

func TestAuditAndNotify(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.create(t, "a.com")
	e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com"})
	e.do(t, "POST", "/v1/sites/a.com/suspend", adminSecret, nil)
	e.do(t, "DELETE", "/v1/sites/a.com", viewerSecret, nil)
	e.do(t, "GET", "/v1/sites/a.com", adminSecret, nil) // reads are not audited
	e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil)
	entries, err := e.store.ListAudit(ctx, store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ actor, action, target, outcome string }
	want := map[key]bool{
		{"tok-admin", "site.create", "a.com", "success"}:        true,
		{"tok-admin", "site.create", "a.com", "already_exists"}: true,
		{"tok-admin", "site.suspend", "a.com", "success"}:       true,
		{"tok-viewer", "site.delete", "a.com", "forbidden"}:     true,
		{"tok-admin", "site.delete", "a.com", "success"}:        true,
	}
	if len(entries) != len(want) {
		t.Errorf("got %d audit entries, want %d: %+v", len(entries), len(want), entries)
	}
	for _, en := range entries {
		k := key{en.Actor, en.Action, en.Target, en.Outcome}
		if !want[k] {
			t.Errorf("unexpected audit entry %+v", en)
		}
		if !en.Time.Equal(testNow) {
			t.Errorf("audit time = %v", en.Time)
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("missing audit entries: %v", want)
	}
	if n := e.notifies.Load(); n != 3 {
		t.Errorf("Notify called %d times, want 3 (successful mutations)", n)
	}
}

// TestFreezeUnfreeze: POST …/freeze and …/unfreeze set and clear
// spec.write_freeze (a new generation each, the same one again is a
// no-op); a site being deleted refuses a freeze; a viewer may not.
func TestFreezeUnfreeze(t *testing.T) {
	e := newEnv(t)
	e.create(t, "a.com")
	steps := []struct {
		method, path, token string
		status              int
		field               string
		want                any
	}{
		{"POST", "/v1/sites/a.com/freeze", viewerSecret, 403, "error.code", "forbidden"},
		{"POST", "/v1/sites/a.com/freeze", adminSecret, 200, "spec.write_freeze", true},
		{"POST", "/v1/sites/a.com/freeze", adminSecret, 200, "metadata.generation", 2.0},
		{"POST", "/v1/sites/a.com/unfreeze", adminSecret, 200, "spec.write_freeze", nil},
		{"POST", "/v1/sites/a.com/unfreeze", adminSecret, 200, "metadata.generation", 3.0},
		{"DELETE", "/v1/sites/a.com", adminSecret, 202, "status.phase", "Deleting"},
		{"POST", "/v1/sites/a.com/freeze", adminSecret, 409, "error.code", "conflict"},
	}
	for _, s := range steps {
		code, m, _ := e.do(t, s.method, s.path, s.token, nil)
		if code != s.status || get(m, s.field) != s.want {
			t.Fatalf("%s %s = %d, %s = %v (want %d, %v): %v", s.method, s.path, code, s.field, get(m, s.field), s.status, s.want, m)
		}
	}
}
