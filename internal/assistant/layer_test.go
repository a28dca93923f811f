package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

const (
	adminSecret  = "aip_admin-secret-0123456789"
	viewerSecret = "aip_orgviewer-secret-0123456789"
)

var testNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

type apiEnv struct {
	store store.Store
	url   string
}

// newAPI runs the real API in-process over a SQLite store with an admin
// token and a user who is a viewer of organisation acme (session token).
func newAPI(t *testing.T) *apiEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateToken(ctx, store.Token{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: store.TokenHash(adminSecret), CreatedAt: testNow}))
	must(st.CreateOrg(ctx, &store.Org{Name: "acme", DisplayName: "Acme", Plan: "business", CreatedAt: testNow}))
	must(st.CreateUser(ctx, &store.User{ID: "usr-view", Email: "view@example.com", CreatedAt: testNow}))
	must(st.PutMembership(ctx, store.Membership{Org: "acme", UserID: "usr-view", Role: store.OrgViewer, CreatedAt: testNow}))
	must(st.CreateToken(ctx, store.Token{ID: "tok-view", Name: "view", Role: store.RoleUser, Kind: store.TokenSession,
		UserID: "usr-view", Hash: store.TokenHash(viewerSecret), CreatedAt: testNow}))
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("local"),
		Clock: func() time.Time { return testNow }}))
	t.Cleanup(srv.Close)
	return &apiEnv{store: st, url: srv.URL}
}

func (e *apiEnv) layer(t *testing.T, token, conv string) *Layer {
	t.Helper()
	l, err := NewLayer(Config{BaseURL: e.url, Token: token, Conversation: conv})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// callNow calls tool and, when it comes back as a proposal (a costly or
// destructive tool), confirms it at once: for tests that only need what
// the tool does (a site to exist), not the confirmation flow.
func callNow(t *testing.T, l *Layer, tool string, args map[string]any) *Result {
	t.Helper()
	ctx := context.Background()
	res, err := l.Call(ctx, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.Proposal != nil {
		if res, err = l.Confirm(ctx, res.Proposal.ID); err != nil {
			t.Fatalf("%s, confirmed: %v", tool, err)
		}
	}
	return res
}

// TestToolsMatchOperations: every allowed operation has its tool, with
// the operation's method and path, and a schema whose properties are
// exactly the operation's path/query parameters and body properties and
// whose required list is the operation's.
func TestToolsMatchOperations(t *testing.T) {
	tools, err := Tools()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPISpec(), &doc); err != nil {
		t.Fatal(err)
	}
	type opInfo struct{ method, path string }
	ops := map[string]opInfo{}
	for p, m := range doc.Paths {
		for meth, raw := range m {
			var op struct {
				ID string `json:"operationId"`
			}
			if json.Unmarshal(raw, &op) == nil && op.ID != "" {
				ops[op.ID] = opInfo{strings.ToUpper(meth), p}
			}
		}
	}
	want := map[string]struct {
		props    string // sorted, comma-separated
		required string
		effect   Effect
	}{
		"listSites":     {"continue,limit,org,q", "", Read},
		"getSite":       {"name", "name", Read},
		"createSite":    {"admin_email,admin_user,constants,core_version,domain,labels,options,org,plan,plugins,themes,title", "admin_email,domain,title", Costly},
		"updateSite":    {"cache,constants,core_version,https_redirect,if_generation,name,options,plan,plugins,themes,title,waf", "name", Write},
		"suspendSite":   {"name", "name", Destructive},
		"resumeSite":    {"name", "name", Write},
		"deleteSite":    {"name", "name", Destructive},
		"purgeSite":     {"name,tag,url", "name", Write},
		"createBackup":  {"name", "name", Costly},
		"listBackups":   {"continue,limit,site", "", Read},
		"restoreBackup": {"in_place,new_domain,ref,shard", "ref", Destructive},
		"restoreSite":   {"at,in_place,name,new_domain,shard", "at,name", Destructive},
		"moveSite":      {"name,target", "name,target", Destructive},
		"listJobs":      {"continue,kind,limit,phase,shard,site", "", Read},
		"getJob":        {"id", "id", Read},
		"whoami":        {"", "", Read},
		"listOrgs":      {"continue,limit,partner", "", Read},
	}
	if len(want) != len(Allowed) || len(tools) != len(Allowed) {
		t.Fatalf("%d tools, %d allowed, %d in this table", len(tools), len(Allowed), len(want))
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			tool := tools[id]
			if tool == nil {
				t.Fatalf("no tool")
			}
			if op := ops[id]; tool.Method != op.method || tool.Path != op.path {
				t.Errorf("tool calls %s %s, operation is %s %s", tool.Method, tool.Path, op.method, op.path)
			}
			var props []string
			for k := range tool.Schema["properties"].(map[string]any) {
				props = append(props, k)
			}
			sortStrings(props)
			req, _ := tool.Schema["required"].([]string)
			if got := strings.Join(props, ","); got != w.props {
				t.Errorf("properties %s, want %s", got, w.props)
			}
			if got := strings.Join(req, ","); got != w.required {
				t.Errorf("required %s, want %s", got, w.required)
			}
			if tool.Effect != w.effect {
				t.Errorf("effect %s, want %s", tool.Effect, w.effect)
			}
			if tool.Description == "" || tool.Schema["type"] != "object" {
				t.Errorf("description %q type %v", tool.Description, tool.Schema["type"])
			}
			// A schema must stand alone: a model gets no components.
			if b, _ := json.Marshal(tool.Schema); strings.Contains(string(b), "$ref") {
				t.Errorf("schema keeps a $ref: %s", b)
			}
		})
	}
	// Nested schemas come through: the WAF mode enum of updateSite.
	waf := tools["updateSite"].Schema["properties"].(map[string]any)["waf"].(map[string]any)
	mode := waf["properties"].(map[string]any)["mode"].(map[string]any)
	if b, _ := json.Marshal(mode["enum"]); string(b) != `["off","detect","block"]` {
		t.Errorf("waf.mode enum = %s", b)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestValidate(t *testing.T) {
	tools, err := Tools()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		err  string
	}{
		{"getSite", map[string]any{"name": "x.com"}, ""},
		{"getSite", map[string]any{}, `"name" is required`},
		{"getSite", map[string]any{"name": "x.com", "force": true}, `unknown argument "force"`},
		{"moveSite", map[string]any{"name": "x.com", "target": 2}, `"target" must be of type string`},
		{"listSites", map[string]any{"limit": 5}, ""},
		{"listSites", map[string]any{"limit": 5.5}, "must be of type integer"},
	} {
		err := tools[c.tool].Validate(c.args)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s %v: %v, want %q", c.tool, c.args, err, c.err)
		}
	}
}

// TestLayerAgainstAPI runs tools through the real API: the caller's rights
// apply (an organisation viewer cannot delete, 403), destructive and
// costly tools (createSite) wait for Confirm, secrets are redacted and the audit log records the
// assistant channel and the conversation's request IDs.
func TestLayerAgainstAPI(t *testing.T) {
	e := newAPI(t)
	ctx := context.Background()
	admin := e.layer(t, adminSecret, "conv-admin")
	viewer := e.layer(t, viewerSecret, "conv-view")

	// Creating a site costs: first a proposal, nothing created...
	res, err := admin.Call(ctx, "createSite", map[string]any{"domain": "shop.example.com", "title": "Shop",
		"admin_email": "me@example.com", "org": "acme"})
	if err != nil || res.Proposal == nil || res.Status != 0 || res.Data != nil {
		t.Fatalf("createSite: %+v %v, want a proposal", res, err)
	}
	if res.Proposal.Request.Method != "POST" || res.Proposal.Request.Path != "/v1/sites" ||
		!strings.Contains(res.Proposal.Summary, "needs confirmation") {
		t.Errorf("createSite proposal %+v", res.Proposal)
	}
	if _, err := e.store.GetSite(ctx, "shop.example.com"); err == nil {
		t.Fatalf("a createSite proposal created the site")
	}
	// ...then, confirmed, the site exists.
	if res, err = admin.Confirm(ctx, res.Proposal.ID); err != nil || res.Status != 201 {
		t.Fatalf("confirmed createSite: %+v %v", res, err)
	}
	if _, err := e.store.GetSite(ctx, "shop.example.com"); err != nil {
		t.Fatalf("site after the confirmed createSite: %v", err)
	}
	data := res.Data.(map[string]any)
	if data["admin_password"] != Redacted {
		t.Errorf("admin_password not redacted: %v", data["admin_password"])
	}
	if b, _ := json.Marshal(res.Data); strings.Contains(string(b), "$argon2") {
		t.Errorf("a hash reached the result: %s", b)
	}

	// The viewer sees the site through the assistant...
	res, err = viewer.Call(ctx, "listSites", nil)
	if err != nil {
		t.Fatal(err)
	}
	if items := res.Data.(map[string]any)["items"].([]any); len(items) != 1 {
		t.Fatalf("viewer lists %d sites, want 1", len(items))
	}
	// ...but cannot delete it: first a proposal, then 403 on confirmation.
	res, err = viewer.Call(ctx, "deleteSite", map[string]any{"name": "shop.example.com"})
	if err != nil || res.Proposal == nil || res.Status != 0 {
		t.Fatalf("delete by viewer: %+v %v, want a proposal", res, err)
	}
	if res.Proposal.Request.Method != "DELETE" || res.Proposal.Request.Path != "/v1/sites/shop.example.com" {
		t.Errorf("proposal %+v", res.Proposal.Request)
	}
	_, err = viewer.Confirm(ctx, res.Proposal.ID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(err.Error(), "your role does not allow this") {
		t.Fatalf("viewer's confirmed delete: %v, want a clear 403", err)
	}
	if _, err := viewer.Confirm(ctx, res.Proposal.ID); err == nil {
		t.Errorf("a proposal confirmed twice")
	}
	// Nothing was deleted by the proposal alone.
	res, err = admin.Call(ctx, "deleteSite", map[string]any{"name": "shop.example.com"})
	if err != nil || res.Proposal == nil {
		t.Fatalf("admin delete: %+v %v", res, err)
	}
	s, err := e.store.GetSite(ctx, "shop.example.com")
	if err != nil || s.Metadata.DeletionRequested != nil {
		t.Fatalf("site after a mere proposal: %+v %v", s, err)
	}
	// Another conversation cannot confirm it.
	if _, err := viewer.Confirm(ctx, res.Proposal.ID); err == nil {
		t.Errorf("a proposal confirmed from another conversation")
	}
	if res, err = admin.Confirm(ctx, res.Proposal.ID); err != nil || res.Status != 202 {
		t.Fatalf("admin's confirmed delete: %+v %v", res, err)
	}
	if s, err = e.store.GetSite(ctx, "shop.example.com"); err != nil || s.Metadata.DeletionRequested == nil {
		t.Fatalf("site after the confirmed delete: %+v %v", s, err)
	}

	// The audit log ties the calls to their conversations.
	entries, err := e.store.ListAudit(ctx, store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, en := range entries {
		if en.Channel != store.ChannelAssistant {
			t.Errorf("audit entry %s %s: channel %q", en.Action, en.Target, en.Channel)
		}
		conv := "?"
		for _, c := range []string{"conv-admin", "conv-view"} {
			if strings.HasPrefix(en.RequestID, c+"-") {
				conv = c
			}
		}
		seen[en.Action+" "+conv+" "+en.Outcome] = true
	}
	for _, w := range []string{"site.create conv-admin success", "site.delete conv-view forbidden", "site.delete conv-admin success"} {
		if !seen[w] {
			t.Errorf("audit lacks %q; has %v", w, seen)
		}
	}
}

func TestRedact(t *testing.T) {
	in := map[string]any{
		"admin_password": "hunter2", "token": "aip_abcdefgh1234", "db_password": "x", "private_key": "k",
		"token_hash": "ab12", "wp_salts": "s", "tokenID": "tok-1", "prefix": "aip_ab", "name": "blog.example.com",
		"note":   "use inv_abcdef123456 to join; reset aipr_zzzzzzzz99",
		"nested": []any{map[string]any{"secret": "s", "apiKey": "k", "id": "keep"}},
		"empty":  map[string]any{"password": ""},
	}
	got, _ := json.Marshal(Redact(in))
	want := `{"admin_password":"[redacted]","db_password":"[redacted]","empty":{"password":""},"name":"blog.example.com",` +
		`"nested":[{"apiKey":"[redacted]","id":"keep","secret":"[redacted]"}],` +
		`"note":"use [redacted] to join; reset [redacted]","prefix":"aip_ab","private_key":"[redacted]",` +
		`"token":"[redacted]","tokenID":"tok-1","token_hash":"[redacted]","wp_salts":"[redacted]"}`
	if string(got) != want {
		t.Errorf("Redact:\n got %s\nwant %s", got, want)
	}
}

// TestSensitiveArgsNeedConfirm: a write tool runs at once unless its
// arguments weaken a site's protection or change its plan; then it is
// only proposed, and the API is not called until Confirm.
func TestSensitiveArgsNeedConfirm(t *testing.T) {
	e := newAPI(t)
	ctx := context.Background()
	admin := e.layer(t, adminSecret, "conv-sensitive")
	callNow(t, admin, "createSite", map[string]any{"domain": "guard.example.com", "title": "Guard", "admin_email": "me@example.com", "org": "acme"})
	for _, c := range []struct {
		args    map[string]any
		propose bool
	}{
		{map[string]any{"name": "guard.example.com", "cache": map[string]any{"ttl_seconds": 60}}, false},
		{map[string]any{"name": "guard.example.com", "title": "New title"}, false},
		{map[string]any{"name": "guard.example.com", "waf": map[string]any{"mode": "off"}}, true},
		{map[string]any{"name": "guard.example.com", "https_redirect": false}, true},
		{map[string]any{"name": "guard.example.com", "plan": "pro"}, true},
	} {
		res, err := admin.Call(ctx, "updateSite", c.args)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := res.Proposal != nil; got != c.propose {
			t.Errorf("updateSite %v: proposed %v, want %v", c.args, got, c.propose)
		}
	}
	s, err := e.store.GetSite(ctx, "guard.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if s.Spec.WAF.Mode == "off" {
		t.Errorf("a proposal turned the WAF off before any confirmation")
	}
	if s.Spec.Title != "New title" {
		t.Errorf("a title change did not run at once: %q", s.Spec.Title)
	}
}
