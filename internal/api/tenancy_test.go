package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// TestTenancyScenarios runs the real handlers as callers of the matrix
// fixture: what each organisation may see and do through lists, creation
// and the handlers that find their targets themselves.
func TestTenancyScenarios(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	j, err := createTestJob(ctx, e.store, "job-globex", "globex.test", "uid-other")
	if err != nil {
		t.Fatal(err)
	}
	_ = j
	if _, err := createTestJob(ctx, e.store, "job-acme", "acme.test", "uid-own"); err != nil {
		t.Fatal(err)
	}
	siteNames := func(m map[string]any) []string {
		var out []string
		items, _ := m["items"].([]any)
		for _, it := range items {
			out = append(out, get(it.(map[string]any), "metadata.name").(string))
		}
		return out
	}
	type step struct {
		name   string
		caller string
		method string
		path   string
		body   any
		code   int
		check  func(t *testing.T, m map[string]any)
	}
	steps := []step{
		{name: "owner lists only acme's sites", caller: "owner", method: "GET", path: "/v1/sites", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := siteNames(m); !slices.Equal(got, []string{"acme.test"}) {
					t.Errorf("sites = %v", got)
				}
			}},
		{name: "the partner lists its organisations' sites", caller: "partner", method: "GET", path: "/v1/sites", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := siteNames(m); !slices.Equal(got, []string{"acme.test"}) {
					t.Errorf("sites = %v", got)
				}
			}},
		{name: "billing lists no site", caller: "billing", method: "GET", path: "/v1/sites", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := siteNames(m); len(got) != 0 {
					t.Errorf("sites = %v", got)
				}
			}},
		{name: "a platform viewer lists every site", caller: "viewer", method: "GET", path: "/v1/sites", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := siteNames(m); !slices.Equal(got, []string{"acme.test", "globex.test"}) {
					t.Errorf("sites = %v", got)
				}
			}},
		{name: "another organisation's site reads as missing", caller: "developer", method: "GET", path: "/v1/sites/globex.test", code: 404,
			check: func(t *testing.T, m map[string]any) {
				if msg := get(m, "error.message"); msg != `site "globex.test" not found` {
					t.Errorf("message = %v: must read as for a site that does not exist", msg)
				}
			}},
		{name: "billing may not read a site", caller: "billing", method: "GET", path: "/v1/sites/acme.test", code: 403},
		{name: "a developer creates a site in acme (its only organisation)", caller: "developer", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "new.acme.test", "title": "T", "admin_email": "me@example.com"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				if org := get(m, "site.metadata.org"); org != "acme" {
					t.Errorf("org = %v", org)
				}
			}},
		{name: "a developer may not create in another organisation", caller: "developer", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "x.globex.test", "title": "T", "admin_email": "me@example.com", "org": "globex"}, code: 404},
		{name: "the partner creates a site in its organisation", caller: "partner", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "p.acme.test", "title": "T", "admin_email": "me@example.com", "org": "acme"}, code: 201},
		{name: "the partner may not create in another partner's (or no partner's) organisation", caller: "partner", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "p.globex.test", "title": "T", "admin_email": "me@example.com", "org": "globex"}, code: 404},
		{name: "the partner may not touch another organisation's site", caller: "partner", method: "PATCH", path: "/v1/sites/globex.test",
			body: map[string]any{"spec": map[string]any{"title": "pwned"}}, code: 404},
		{name: "a platform admin's site goes to the default organisation", caller: "admin", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "admin.test", "title": "T", "admin_email": "me@example.com"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				if org := get(m, "site.metadata.org"); org != store.DefaultOrg {
					t.Errorf("org = %v", org)
				}
			}},
		{name: "customers name the site of job lists", caller: "owner", method: "GET", path: "/v1/jobs", code: 400},
		{name: "jobs of an own site", caller: "owner", method: "GET", path: "/v1/jobs?site=acme.test", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if items, _ := m["items"].([]any); len(items) != 1 {
					t.Errorf("jobs = %v", m)
				}
			}},
		{name: "jobs of another organisation's site", caller: "owner", method: "GET", path: "/v1/jobs?site=globex.test", code: 404},
		{name: "a job of another organisation", caller: "owner", method: "GET", path: "/v1/jobs/job-globex", code: 404},
		{name: "a job of its own", caller: "orgviewer", method: "GET", path: "/v1/jobs/job-acme", code: 200},
		{name: "backups of another organisation's site", caller: "developer", method: "GET", path: "/v1/backups?site=globex.test", code: 404},
		{name: "point-in-time restore of another organisation's site", caller: "developer", method: "POST", path: "/v1/sites/globex.test/restore",
			body: map[string]any{"at": "2026-01-01T00:00:00Z", "in_place": true}, code: 404},
		{name: "an organisation viewer may not restore its site to a point in time", caller: "orgviewer", method: "POST", path: "/v1/sites/acme.test/restore",
			body: map[string]any{"at": "2026-01-01T00:00:00Z", "in_place": true}, code: 403},
		{name: "an organisation token reaches its organisation", caller: "devtoken", method: "GET", path: "/v1/sites/acme.test", code: 200},
		{name: "an owner reads its organisation's audit entries only", caller: "owner", method: "GET", path: "/v1/audit", code: 200,
			check: func(t *testing.T, m map[string]any) {
				items, _ := m["items"].([]any)
				if len(items) == 0 {
					t.Fatalf("no entries: %v", m)
				}
				for _, it := range items {
					if org := it.(map[string]any)["org"]; org != "acme" {
						t.Errorf("owner sees an entry of %v: %v", org, it)
					}
				}
			}},
		{name: "an owner may not read another organisation's audit", caller: "owner", method: "GET", path: "/v1/audit?org=globex", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if items, _ := m["items"].([]any); len(items) != 0 {
					t.Errorf("entries: %v", items)
				}
			}},
		{name: "a developer reads no audit entry", caller: "developer", method: "GET", path: "/v1/audit", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if items, _ := m["items"].([]any); len(items) != 0 {
					t.Errorf("entries: %v", items)
				}
			}},
		{name: "a platform viewer reads every organisation's entries", caller: "viewer", method: "GET", path: "/v1/audit", code: 200,
			check: func(t *testing.T, m map[string]any) {
				orgs := map[any]bool{}
				for _, it := range m["items"].([]any) {
					orgs[it.(map[string]any)["org"]] = true
				}
				if !orgs["acme"] || !orgs[store.DefaultOrg] {
					t.Errorf("orgs seen: %v", orgs)
				}
			}},
		{name: "support suspends a site", caller: "support", method: "POST", path: "/v1/sites/acme.test/suspend", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "spec.suspended_by") != "platform" {
					t.Errorf("spec = %v", m["spec"])
				}
			}},
		{name: "its owner may not resume what the platform suspended", caller: "owner", method: "POST", path: "/v1/sites/acme.test/resume", code: 403},
		{name: "nor suspend it again to take it over", caller: "owner", method: "POST", path: "/v1/sites/acme.test/suspend", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "spec.suspended_by") != "platform" {
					t.Errorf("spec = %v", m["spec"])
				}
			}},
		{name: "support resumes it", caller: "support", method: "POST", path: "/v1/sites/acme.test/resume", code: 200},
		{name: "an owner suspends its own site", caller: "owner", method: "POST", path: "/v1/sites/acme.test/suspend", code: 200},
		{name: "and resumes it", caller: "developer", method: "POST", path: "/v1/sites/acme.test/resume", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "spec.suspended") != false || get(m, "spec.suspended_by") != nil {
					t.Errorf("spec = %v", m["spec"])
				}
			}},
		{name: "whoami shows the caller's organisations", caller: "partner", method: "GET", path: "/v1/whoami", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "orgs.acme") != "owner" || get(m, "orgs.resell") != "owner" || get(m, "orgs.globex") != nil {
					t.Errorf("whoami = %v", m)
				}
			}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, m, _ := e.do(t, st.method, st.path, f.secrets[st.caller], st.body)
			if code != st.code {
				t.Fatalf("%s %s as %s: %d, want %d: %v", st.method, st.path, st.caller, code, st.code, m)
			}
			if st.check != nil {
				st.check(t, m)
			}
		})
	}
}

func createTestJob(ctx context.Context, st store.Store, id, siteName, uid string) (*store.Job, error) {
	j := &store.Job{ID: id, Kind: store.JobBackup, Site: siteName, SiteUID: uid, Shard: "local", CreatedAt: testNow}
	return j, st.CreateJob(ctx, j)
}

// TestTokenLifecycle: tokens never exceed their creator's rights, follow
// the user's current rights, expire, and rotate with an overlap window.
func TestTokenLifecycle(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	mk := func(caller string, body map[string]any, want int) map[string]any {
		t.Helper()
		code, m, _ := e.do(t, "POST", "/v1/tokens", f.secrets[caller], body)
		if code != want {
			t.Fatalf("create token %v as %s: %d, want %d: %v", body, caller, code, want, m)
		}
		return m
	}
	// A developer may not mint an owner token, nor a platform one.
	mk("developer", map[string]any{"name": "x", "role": "owner", "org": "acme"}, 403)
	mk("developer", map[string]any{"name": "x", "role": "admin"}, 403)
	mk("developer", map[string]any{"name": "x", "role": "viewer", "org": "globex"}, 404)
	mk("developer", map[string]any{"name": "x", "role": "shard", "subject": "s1"}, 403)
	// A viewer token of the developer reads but does not write.
	m := mk("developer", map[string]any{"name": "ci", "role": "viewer", "org": "acme"}, 201)
	secret, id := m["token"].(string), m["id"].(string)
	if prefix := m["prefix"].(string); len(prefix) != 12 || secret[:12] != prefix {
		t.Errorf("prefix %q of %q", prefix, secret)
	}
	if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test", secret, nil); code != 200 {
		t.Errorf("viewer token read: %d", code)
	}
	if code, _, _ := e.do(t, "POST", "/v1/sites/acme.test/suspend", secret, nil); code != 403 {
		t.Errorf("viewer token suspend: %d", code)
	}
	// Its use is recorded.
	toks, err := e.store.ListTokens(ctx, store.TokenFilter{UserID: "usr-developer"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.ID == id && (tk.LastUsedAt == nil || tk.LastUsedIP == "") {
			t.Errorf("last use not recorded: %+v", tk)
		}
	}
	// Lists: the developer sees its own tokens, the owner the organisation's,
	// another organisation's member none of them.
	for caller, want := range map[string]bool{"developer": true, "owner": true, "billing": false, "partner": true} {
		_, m, _ := e.do(t, "GET", "/v1/tokens", f.secrets[caller], nil)
		found := false
		for _, it := range m["items"].([]any) {
			found = found || it.(map[string]any)["id"] == id
		}
		if found != want {
			t.Errorf("%s sees token %s: %v, want %v", caller, id, found, want)
		}
	}
	if code, _, _ := e.do(t, "DELETE", "/v1/tokens/"+id, f.secrets["billing"], nil); code != 404 {
		t.Errorf("billing revoking another's token: %d, want 404", code)
	}
	// Removed from the organisation, the developer's token stops working.
	if err := e.store.DeleteMembership(ctx, "acme", "usr-developer"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test", secret, nil); code != 404 {
		t.Errorf("token of a removed member: %d, want 404", code)
	}
	// Expiry.
	m = mk("owner", map[string]any{"name": "short", "role": "viewer", "org": "acme", "expires_in_seconds": 60}, 201)
	short := m["token"].(string)
	if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test", short, nil); code != 200 {
		t.Errorf("fresh token: %d", code)
	}
	later := newEnvAt(t, e, testNow.Add(2*time.Minute))
	if code, m, _ := later.do(t, "GET", "/v1/sites/acme.test", short, nil); code != 401 {
		t.Errorf("expired token: %d %v", code, m)
	}
	// Rotation: both secrets work during the overlap, only the new one after.
	m = mk("owner", map[string]any{"name": "deploy", "role": "developer", "org": "acme"}, 201)
	oldSecret, oldID := m["token"].(string), m["id"].(string)
	code, m, _ := e.do(t, "POST", "/v1/tokens/"+oldID+"/rotate", f.secrets["owner"], map[string]any{"overlap_seconds": 600})
	if code != 201 {
		t.Fatalf("rotate: %d %v", code, m)
	}
	newSecret := m["token"].(string)
	for _, s := range []string{oldSecret, newSecret} {
		if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test", s, nil); code != 200 {
			t.Errorf("during the overlap: %d", code)
		}
	}
	if code, _, _ := e.do(t, "POST", "/v1/tokens/"+oldID+"/rotate", f.secrets["owner"], nil); code != 409 {
		t.Errorf("rotating a rotated token: %d, want 409", code)
	}
	after := newEnvAt(t, e, testNow.Add(11*time.Minute))
	if code, _, _ := after.do(t, "GET", "/v1/sites/acme.test", oldSecret, nil); code != 401 {
		t.Errorf("old secret after the overlap: %d, want 401", code)
	}
	if code, _, _ := after.do(t, "GET", "/v1/sites/acme.test", newSecret, nil); code != 200 {
		t.Errorf("new secret after the overlap: %d, want 200", code)
	}
}

// newEnvAt returns an API over e's store whose clock reads now.
func newEnvAt(t *testing.T, e *env, now time.Time) *env {
	t.Helper()
	return &env{store: e.store, handler: New(Config{Store: e.store, Clock: func() time.Time { return now }})}
}

// TestTokenRotationUnderLoad: programs keep calling with a token while it
// is rotated; during the overlap window neither the old nor the new
// secret fails a single request.
func TestTokenRotationUnderLoad(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	code, m, _ := e.do(t, "POST", "/v1/tokens", f.secrets["owner"], map[string]any{"name": "ci", "role": "developer", "org": "acme"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	oldSecret, id := m["token"].(string), m["id"].(string)
	var newSecret atomic.Value
	newSecret.Store("")
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				secret := oldSecret
				if s := newSecret.Load().(string); s != "" && (i+w)%2 == 0 {
					secret = s
				}
				req := httptest.NewRequest("GET", "/v1/sites/acme.test", nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				rec := httptest.NewRecorder()
				e.handler.ServeHTTP(rec, req)
				done.Add(1)
				if rec.Code != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	for done.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	code, m, _ = e.do(t, "POST", "/v1/tokens/"+id+"/rotate", f.secrets["owner"], map[string]any{"overlap_seconds": 3600})
	if code != 201 {
		t.Fatalf("rotate: %d %v", code, m)
	}
	newSecret.Store(m["token"].(string))
	before := done.Load()
	for done.Load() < before+400 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the token's rotation", failed.Load(), done.Load())
	}
	t.Logf("%d requests, 0 failed, across the rotation of %s", done.Load(), id)
}

// TestTokenEscalation: a narrower token of a user never reaches the user's
// wider rights — not through the user's other tokens, rotations, new
// tokens or device approvals — and an owner cannot take over a member's
// token by rotating it.
func TestTokenEscalation(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	if err := e.store.CreateUser(ctx, &store.User{ID: "usr-boss", Email: "boss@example.com", PlatformRole: store.RoleAdmin, CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutMembership(ctx, store.Membership{Org: "acme", UserID: "usr-boss", Role: store.OrgOwner, CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateToken(ctx, store.Token{ID: "tok-boss", Name: "boss", Role: store.RoleUser, Kind: store.TokenSession,
		UserID: "usr-boss", Hash: hashSecret("secret-boss"), CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	mk := func(secret string, body map[string]any) (string, string) {
		t.Helper()
		code, m, _ := e.do(t, "POST", "/v1/tokens", secret, body)
		if code != 201 {
			t.Fatalf("create %v: %d %v", body, code, m)
		}
		return m["id"].(string), m["token"].(string)
	}
	ciID, ci := mk("secret-boss", map[string]any{"name": "ci", "role": "viewer", "org": "acme"})
	_, mon := mk("secret-boss", map[string]any{"name": "mon", "role": "viewer"})
	type step struct {
		name, secret, method, path string
		body                       any
		code                       int
	}
	for _, st := range []step{
		{"a scoped token does not see its user's other tokens", ci, "GET", "/v1/tokens", nil, 200},
		{"a scoped token may not rotate its user's sign-in", ci, "POST", "/v1/tokens/tok-boss/rotate", nil, 404},
		{"a scoped token may not revoke its user's sign-in", ci, "DELETE", "/v1/tokens/tok-boss", nil, 404},
		{"a scoped token mints nothing beyond itself", ci, "POST", "/v1/tokens", map[string]any{"name": "x", "role": "owner", "org": "acme"}, 403},
		{"a viewer token of an admin may not mint an admin token", mon, "POST", "/v1/tokens", map[string]any{"name": "x", "role": "admin"}, 403},
		{"a viewer token of an admin may mint a viewer token", mon, "POST", "/v1/tokens", map[string]any{"name": "x", "role": "viewer"}, 201},
		{"a scoped token may not approve a device sign-in", ci, "POST", "/v1/auth/device/approve", map[string]any{"user_code": "ABCD-EFGH"}, 403},
		{"a token may rotate itself", ci, "POST", "/v1/tokens/" + ciID + "/rotate", nil, 201},
	} {
		t.Run(st.name, func(t *testing.T) {
			code, m, _ := e.do(t, st.method, st.path, st.secret, st.body)
			if code != st.code {
				t.Fatalf("%s %s: %d, want %d: %v", st.method, st.path, code, st.code, m)
			}
			if st.path == "/v1/tokens" && st.method == "GET" {
				var ids []any
				for _, it := range m["items"].([]any) {
					ids = append(ids, it.(map[string]any)["id"])
				}
				if len(ids) != 1 || ids[0] != ciID {
					t.Errorf("the scoped token sees %v, want only itself (%s)", ids, ciID)
				}
			}
		})
	}
	// An owner may revoke a member's token but not rotate it (its new
	// secret would act as the member).
	devID, _ := mk(f.secrets["developer"], map[string]any{"name": "dev-ci", "role": "developer", "org": "acme"})
	if code, m, _ := e.do(t, "POST", "/v1/tokens/"+devID+"/rotate", f.secrets["owner"], map[string]any{"overlap_seconds": -1}); code != 403 {
		t.Errorf("owner rotating a member's token: %d %v", code, m)
	}
	if code, _, _ := e.do(t, "DELETE", "/v1/tokens/"+devID, f.secrets["owner"], nil); code != 204 {
		t.Errorf("owner revoking a member's token: %d", code)
	}
	// A partner's owner makes a working token for one of its organisations.
	_, pt := mk(f.secrets["partner"], map[string]any{"name": "p", "role": "developer", "org": "acme"})
	if code, _, _ := e.do(t, "GET", "/v1/sites/acme.test", pt, nil); code != 200 {
		t.Errorf("partner's organisation token: %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/v1/sites/globex.test", pt, nil); code != 404 {
		t.Errorf("partner's organisation token on another organisation: %d", code)
	}
}

// TestLocalPath: where a sign-in sends the browser back stays on this site.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/sites":                        "/sites",
		"/sites?x=1#y":                  "/sites?x=1#y",
		"":                              "/",
		"https://evil.example/":         "/",
		"//evil.example":                "/",
		"/\\evil.example":               "/",
		"/\t/evil.example":              "/",
		"/\n/evil.example":              "/",
		"/a\\b":                         "/",
		"javascript:alert(1)":           "/",
		"/%09/evil.example":             "/%09/evil.example", // stays a path: browsers do not decode it into "//"
		"/" + strings.Repeat("a", 1100): "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOrgNameNotReused: a deleted organisation's name cannot be taken
// again, or its new owner would read the old one's audit entries.
func TestOrgNameNotReused(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	if code, m, _ := e.do(t, "POST", "/v1/orgs", adminSecret, map[string]any{"name": "initech", "plan": "basic"}); code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "DELETE", "/v1/orgs/initech", adminSecret, nil); code != 204 {
		t.Fatalf("delete: %d %v", code, m)
	}
	code, m, _ := e.do(t, "POST", "/v1/orgs", adminSecret, map[string]any{"name": "initech", "plan": "basic"})
	if code != 409 || !strings.Contains(errMessage(m), "was used before") {
		t.Fatalf("re-create: %d %v", code, m)
	}
	// A refused attempt on a name that never existed does not take it.
	if code, _, _ := e.do(t, "POST", "/v1/orgs", f.secrets["developer"], map[string]any{"name": "hooli"}); code != 403 {
		t.Fatalf("developer creating an organisation: %d", code)
	}
	if code, m, _ := e.do(t, "POST", "/v1/orgs", adminSecret, map[string]any{"name": "hooli", "plan": "basic"}); code != 201 {
		t.Fatalf("create hooli: %d %v", code, m)
	}
}
