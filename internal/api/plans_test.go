package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// newPlansEnv is newEnv whose default organisation is on orgPlan, with
// the plans ps (nil: the defaults).
func newPlansEnv(t *testing.T, orgPlan string, ps *plans.Set) *env {
	t.Helper()
	e := newEnv(t)
	if _, err := e.store.UpdateOrg(context.Background(), store.DefaultOrg, func(o *store.Org) error { o.Plan = orgPlan; return nil }); err != nil {
		t.Fatal(err)
	}
	e.handler = New(Config{Store: e.store,
		Placer: StaticPlacer("local"), Clock: func() time.Time { return testNow }, Plans: ps})
	return e
}

func createOn(t *testing.T, e *env, domain, plan string) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"domain": domain, "title": "Blog", "admin_email": "me@example.com"}
	if plan != "" {
		body["plan"] = plan
	}
	code, m, _ := e.do(t, "POST", "/v1/sites", adminSecret, body)
	return code, m
}

func errMessage(m map[string]any) string {
	s, _ := get(m, "error.message").(string)
	return s
}

// TestQuotaSites: an organisation on basic (3 sites) gets its third site
// and not its fourth, with a message naming the plan and the limit; a
// deleted site frees its place only once it is gone.
func TestQuotaSites(t *testing.T) {
	e := newPlansEnv(t, "basic", nil)
	for i := range 3 {
		if code, m := createOn(t, e, fmt.Sprintf("s%d.example.com", i), ""); code != http.StatusCreated {
			t.Fatalf("site %d: %d %v", i+1, code, m)
		}
	}
	code, m := createOn(t, e, "s3.example.com", "")
	if code != http.StatusForbidden || errCode(m) != CodeQuotaExceeded || errMessage(m) != "organisation default's plan basic allows 3 sites; it has 3" {
		t.Fatalf("fourth site = %d %v, want 403 quota_exceeded naming the plan and the limit", code, m)
	}
	if _, err := e.store.GetSite(t.Context(), "s3.example.com"); err == nil {
		t.Error("the refused site was stored")
	}
	// A site being deleted still holds its resources.
	if code, _, _ := e.do(t, "DELETE", "/v1/sites/s0.example.com", adminSecret, nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := createOn(t, e, "s3.example.com", ""); code != http.StatusForbidden {
		t.Errorf("while s0 is being deleted: %d, want 403", code)
	}
	if err := e.store.DeleteSite(t.Context(), "s0.example.com"); err != nil {
		t.Fatal(err)
	}
	if code, m := createOn(t, e, "s3.example.com", ""); code != http.StatusCreated {
		t.Errorf("after s0 is gone: %d %v", code, m)
	}
}

// TestQuotaPlans: the plan scenarios of create and PATCH.
func TestQuotaPlans(t *testing.T) {
	e := newPlansEnv(t, "pro", nil)
	if code, m := createOn(t, e, "a.example.com", "basic"); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, m)
	}
	setDisk := func(mb int) {
		t.Helper()
		if _, err := e.store.UpdateSite(t.Context(), "a.example.com", func(s *site.Site) error { s.Status.DiskUsedMB = mb; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, method, path string
		body               map[string]any
		disk               int
		status             int
		code, msg          string
		php                int // the spec's php.max_children after, when 200
		diskMB             int // and limits.disk_mb
	}{
		{name: "create above the org plan", method: "POST", path: "/v1/sites",
			body:   map[string]any{"domain": "b.example.com", "title": "B", "admin_email": "me@example.com", "plan": "business"},
			status: 403, code: CodeQuotaExceeded,
			msg: "organisation default's plan pro allows sites on plans up to pro (dev, basic, pro); business is larger"},
		{name: "upgrade to the org plan", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "pro"},
			status: 200, php: 8, diskMB: 5120},
		{name: "upgrade above the org plan", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "business"},
			status: 403, code: CodeQuotaExceeded, msg: "business is larger"},
		{name: "unknown plan", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "gold"},
			status: 400, code: CodeInvalidArgument, msg: `unknown plan "gold"; plans are dev, basic, pro, business`},
		{name: "downgrade below use", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "dev"}, disk: 700,
			status: 403, code: CodeQuotaExceeded,
			msg: "site a.example.com stores 700 MB; plan dev allows 512 MB of disk: delete files first, or choose a larger plan"},
		{name: "downgrade within use", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "dev"}, disk: 300,
			status: 200, php: 2, diskMB: 512},
		{name: "the same plan again", method: "PATCH", path: "/v1/sites/a.example.com", body: map[string]any{"plan": "dev"}, disk: 900,
			status: 200, php: 2, diskMB: 512},
		{name: "plan of a missing site", method: "PATCH", path: "/v1/sites/nope.example.com", body: map[string]any{"plan": "dev"},
			status: 404, code: CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setDisk(tt.disk)
			before, _ := e.store.GetSite(t.Context(), "a.example.com")
			code, m, _ := e.do(t, tt.method, tt.path, adminSecret, tt.body)
			if code != tt.status || errCode(m) != tt.code || !strings.Contains(errMessage(m), tt.msg) {
				t.Fatalf("= %d %v; want %d %s %q", code, m, tt.status, tt.code, tt.msg)
			}
			after, _ := e.store.GetSite(t.Context(), "a.example.com")
			if code != 200 {
				if after.Metadata.Generation != before.Metadata.Generation {
					t.Error("a refused change was written")
				}
				return
			}
			if after.Spec.Plan != tt.body["plan"] || after.Spec.PHP.MaxChildren != tt.php || after.Spec.Limits.DiskMB != tt.diskMB {
				t.Errorf("spec after = plan %s php %+v limits %+v", after.Spec.Plan, after.Spec.PHP, after.Spec.Limits)
			}
			if before.Spec.Plan != after.Spec.Plan && after.Metadata.Generation == before.Metadata.Generation {
				t.Error("a plan change did not take a new generation (the shard would not apply it)")
			}
		})
	}
}

// TestPlansFromConfig: an operator's plans replace the built-in ones.
func TestPlansFromConfig(t *testing.T) {
	ps, err := plans.Parse([]byte(`default: tiny
plans:
- {name: tiny, max_sites: 1, disk_mb: 64, db_connections: 3, php: {max_children: 1, memory_limit_mb: 64, upload_max_mb: 8, idle_timeout_seconds: 5, request_timeout_seconds: 30}, backup: {every_hours: -1}, bandwidth_gb: 1}
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newPlansEnv(t, "tiny", ps)
	code, m := createOn(t, e, "a.example.com", "")
	if code != http.StatusCreated || get(m, "site.spec.plan") != "tiny" || get(m, "site.spec.limits.disk_mb") != float64(64) || get(m, "site.spec.php.max_children") != float64(1) {
		t.Fatalf("create = %d %v", code, m)
	}
	if code, m := createOn(t, e, "b.example.com", "basic"); code != 400 || !strings.Contains(errMessage(m), `unknown plan "basic"; plans are tiny`) {
		t.Errorf("a built-in plan the operator dropped = %d %v", code, m)
	}
	if code, m := createOn(t, e, "b.example.com", ""); code != 403 || errMessage(m) != "organisation default's plan tiny allows 1 site; it has 1" {
		t.Errorf("second site = %d %v", code, m)
	}
}

// TestOrgUsage: what an organisation uses, from the store.
func TestOrgUsage(t *testing.T) {
	e := newPlansEnv(t, "pro", nil)
	for _, d := range []string{"a.example.com", "b.example.com"} {
		createOn(t, e, d, "basic")
	}
	if _, err := e.store.UpdateSite(t.Context(), "a.example.com", func(s *site.Site) error { s.Status.DiskUsedMB = 42; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddBandwidth(t.Context(), plans.Month(testNow), map[string]int64{"a.example.com": 3 * plans.GB, "other.example.com": 9}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddBandwidth(t.Context(), "1999-01", map[string]int64{"a.example.com": 5 * plans.GB}); err != nil {
		t.Fatal(err)
	}
	u, err := OrgUsage(t.Context(), e.store, plans.Defaults(), store.Org{Name: store.DefaultOrg, Plan: "pro"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if u.Sites != (plans.Count{Used: 2, Limit: 10}) || u.Bandwidth.UsedGB != 3 || u.Bandwidth.LimitGB != 200 || len(u.PerSite) != 2 ||
		u.PerSite[0].DiskMB != (plans.Count{Used: 42, Limit: 1024}) || u.PerSite[0].Bandwidth.UsedGB != 3 || u.PerSite[1].Bandwidth.UsedGB != 0 {
		t.Errorf("usage = %+v", u)
	}
}

// TestReportUsage: POST /v1/edge/usage takes an edge's counts and answers
// with the sites over their plan's bandwidth; bad reports are refused
// whole; other roles may not report.
func TestReportUsage(t *testing.T) {
	e := fedEnv(t) // a.com on basic: 100 GB a month
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		over   []any
	}{
		{"below the limit", edgeSecret, map[string]any{"bytes": map[string]any{"a.com": 60 * plans.GB}}, 200, "", []any{}},
		{"empty report", edgeSecret, map[string]any{}, 200, "", []any{}},
		{"over the limit", edgeSecret, map[string]any{"bytes": map[string]any{"a.com": 41 * plans.GB, "gone.example": 1}}, 200, "", []any{"a.com"}},
		{"still over", edgeSecret, map[string]any{"bytes": map[string]any{}}, 200, "", []any{"a.com"}},
		{"negative", edgeSecret, map[string]any{"bytes": map[string]any{"a.com": -5}}, 400, CodeInvalidArgument, nil},
		{"more than an edge can send between reports", edgeSecret, map[string]any{"bytes": map[string]any{"a.com": int64(9e18)}}, 400, CodeInvalidArgument, nil},
		{"unknown field", edgeSecret, map[string]any{"sites": 1}, 400, CodeInvalidArgument, nil},
		{"viewer", viewerSecret, map[string]any{"bytes": map[string]any{"a.com": 1}}, 403, CodeForbidden, nil},
		{"shard", shard1Secret, map[string]any{"bytes": map[string]any{"a.com": 1}}, 403, CodeForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m, _ := e.do(t, "POST", "/v1/edge/usage", tt.token, tt.body)
			if code != tt.status || errCode(m) != tt.code {
				t.Fatalf("= %d %v, want %d %s", code, m, tt.status, tt.code)
			}
			if tt.over != nil && (get(m, "month") != plans.Month(testNow) || fmt.Sprint(get(m, "over")) != fmt.Sprint(tt.over)) {
				t.Errorf("= %v, want over %v", m, tt.over)
			}
		})
	}
	used, err := e.store.ListBandwidth(t.Context(), store.BandwidthListOptions{Month: plans.Month(testNow)})
	if err != nil || used["a.com"] != 101*plans.GB || len(used) != 1 {
		t.Errorf("stored %v %v, want only a.com, 101 GB (refused reports and names of no site add nothing)", used, err)
	}
}
