package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// TestSiteMetricsReported: an edge's usage report with per-site counts
// shows up in GET /v1/sites/{name}/metrics; shard and user tokens may not
// report; bad counts refuse the whole report; names of no site are dropped.
func TestSiteMetricsReported(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	hist := make([]int64, 15)
	hist[3] = 4 // four requests in (5 ms, 10 ms]
	good := map[string]any{
		"bytes": map[string]any{"acme.test": 5000, "gone.example": 7},
		"sites": map[string]any{
			"acme.test":    map[string]any{"requests": 4, "cache_hits": 3, "cache_misses": 1, "errors_5xx": 1, "waf_blocks": 2, "duration": hist, "php_requests": 1, "php_us": 20000},
			"gone.example": map[string]any{"requests": 9},
		},
	}
	reports := []struct {
		name   string
		caller string
		body   any
		status int
	}{
		{"edge", "edge", good, 200},
		{"admin as an edge", "admin", good, 200},
		{"shard", "shard", good, 403},
		{"owner", "owner", good, 403},
		{"viewer", "viewer", good, 403},
		{"short histogram", "edge", map[string]any{"sites": map[string]any{"acme.test": map[string]any{"requests": 1, "duration": []int{1}}}}, 400},
		{"negative", "edge", map[string]any{"sites": map[string]any{"acme.test": map[string]any{"requests": -1}}}, 400},
		{"too many", "edge", map[string]any{"sites": map[string]any{"acme.test": map[string]any{"cache_hits": 2e9}}}, 400},
		{"unknown field", "edge", map[string]any{"sites": map[string]any{"acme.test": map[string]any{"hits": 1}}}, 400},
		{"bad bytes refuse the counts too", "edge", map[string]any{"bytes": map[string]any{"acme.test": -1}, "sites": map[string]any{"acme.test": map[string]any{"requests": 100}}}, 400},
	}
	for _, r := range reports {
		t.Run(r.name, func(t *testing.T) {
			if code, m, _ := e.do(t, "POST", "/v1/edge/usage", f.secrets[r.caller], r.body); code != r.status {
				t.Fatalf("report = %d %v, want %d", code, m, r.status)
			}
		})
	}

	// Two accepted reports (edge, admin) in the current minute.
	code, m, _ := e.do(t, "GET", "/v1/sites/acme.test/metrics", f.secrets["owner"], nil)
	if code != 200 {
		t.Fatalf("metrics = %d %v", code, m)
	}
	if get(m, "site") != "acme.test" || get(m, "range") != "1h" || get(m, "step_seconds") != 60.0 {
		t.Errorf("series header = %v", m)
	}
	points, _ := m["points"].([]any)
	if len(points) != 60 {
		t.Fatalf("%d points, want 60", len(points))
	}
	last, _ := points[59].(map[string]any)
	wantLast := map[string]any{"t": testNow.Truncate(time.Minute).Format(time.RFC3339), "requests": 8.0, "cache_hits": 6.0, "cache_misses": 2.0,
		"errors_5xx": 2.0, "waf_blocks": 4.0, "bytes": 10000.0, "p50_ms": 7.5, "p99_ms": 9.95, "php_ms": 20.0}
	for k, v := range wantLast {
		if last[k] != v {
			t.Errorf("last point %s = %v, want %v", k, last[k], v)
		}
	}
	if got := get(m, "totals.cache_hit_ratio"); got != 0.75 {
		t.Errorf("totals.cache_hit_ratio = %v, want 0.75", got)
	}
	// Names of no site were dropped: they have no history.
	if _, _, ok := e.siteMetrics.Summary("gone.example"); ok {
		t.Error("a report for a name of no site made a history")
	}

	queries := []struct {
		name, caller, path string
		status             int
		steps              int
	}{
		{"6h", "orgviewer", "/v1/sites/acme.test/metrics?range=6h", 200, 360},
		{"24h", "admin", "/v1/sites/acme.test/metrics?range=24h", 200, 288},
		{"7d", "viewer", "/v1/sites/acme.test/metrics?range=7d", 200, 168},
		{"bad range", "owner", "/v1/sites/acme.test/metrics?range=2h", 400, 0},
		{"another organisation's site", "owner", "/v1/sites/globex.test/metrics", 404, 0},
		{"no such site", "owner", "/v1/sites/nobody.test/metrics", 404, 0},
		{"billing reads no site", "billing", "/v1/sites/acme.test/metrics", 403, 0},
		{"edge", "edge", "/v1/sites/acme.test/metrics", 403, 0},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			code, m, _ := e.do(t, "GET", q.path, f.secrets[q.caller], nil)
			if code != q.status {
				t.Fatalf("= %d %v, want %d", code, m, q.status)
			}
			if q.steps > 0 {
				pts, _ := m["points"].([]any)
				if len(pts) != q.steps || get(m, "totals.requests") != 8.0 {
					t.Errorf("%d points, totals %v; want %d points, 8 requests", len(pts), m["totals"], q.steps)
				}
			}
		})
	}
}

// TestListSitesFiltersAndSummaries: GET /v1/sites?org=&q= and each item's
// summary.
func TestListSitesFiltersAndSummaries(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := t.Context()
	for _, name := range []string{"blog.acme.test", "shop.acme.test"} {
		code, m, _ := e.do(t, "POST", "/v1/sites", f.secrets["owner"], map[string]any{"domain": name, "title": "T", "admin_email": "me@example.com", "org": "acme"})
		if code != 201 {
			t.Fatalf("create %s: %d %v", name, code, m)
		}
	}
	names := func(m map[string]any) []string {
		var out []string
		items, _ := m["items"].([]any)
		for _, it := range items {
			out = append(out, fmt.Sprint(get(it.(map[string]any), "metadata.name")))
		}
		return out
	}
	tests := []struct {
		name, caller, query string
		status              int
		want                []string
	}{
		{"owner sees acme's", "owner", "", 200, []string{"acme.test", "blog.acme.test", "shop.acme.test"}},
		{"owner's own org", "owner", "?org=acme", 200, []string{"acme.test", "blog.acme.test", "shop.acme.test"}},
		{"another organisation is hidden", "owner", "?org=globex", 404, nil},
		{"an organisation that does not exist", "owner", "?org=nobody", 404, nil},
		{"billing may not list sites", "billing", "?org=acme", 403, nil},
		{"partner lists its customer's", "partner", "?org=acme&q=shop", 200, []string{"shop.acme.test"}},
		{"admin, another organisation", "admin", "?org=globex", 200, []string{"globex.test"}},
		{"admin, no such organisation", "admin", "?org=nobody", 404, nil},
		{"q is case-insensitive", "admin", "?q=ACME.T", 200, []string{"acme.test", "blog.acme.test", "shop.acme.test"}},
		{"q substring", "admin", "?q=bex", 200, []string{"globex.test"}},
		{"q matches nothing", "admin", "?q=zzz", 200, nil},
		{"q and another org", "owner", "?q=globex", 200, nil},
		{"q too long", "admin", "?q=" + strings.Repeat("a", 254), 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m, _ := e.do(t, "GET", "/v1/sites"+tt.query, f.secrets[tt.caller], nil)
			if code != tt.status {
				t.Fatalf("= %d %v, want %d", code, m, tt.status)
			}
			if code == 200 && !slices.Equal(names(m), tt.want) {
				t.Errorf("listed %v, want %v", names(m), tt.want)
			}
		})
	}
	t.Run("filtered pages", func(t *testing.T) {
		var got []string
		cont := ""
		for range 5 {
			code, m, _ := e.do(t, "GET", "/v1/sites?q=acme&limit=1"+cont, adminSecret, nil)
			if code != 200 {
				t.Fatal(m)
			}
			got = append(got, names(m)...)
			c, _ := m["continue"].(string)
			if c == "" {
				break
			}
			cont = "&continue=" + c
		}
		if want := []string{"acme.test", "blog.acme.test", "shop.acme.test"}; !slices.Equal(got, want) {
			t.Errorf("pages %v, want %v", got, want)
		}
	})

	// Backups: blog has an older kept snapshot and a newer forgotten one;
	// shop has one of an older site of the same name; acme.test none.
	uid := func(name string) string { return e.uid(t, name) }
	at := func(h int) time.Time { return testNow.Add(time.Duration(h) * time.Hour) }
	backup := func(id, site, siteUID string, h int, forgotten bool) {
		t.Helper()
		res := store.BackupResult{Snapshot: "local:" + id, Time: at(h)}
		if forgotten {
			ft := at(h + 1)
			res.ForgottenAt = &ft
		}
		raw, _ := json.Marshal(res)
		j := &store.Job{ID: id, Kind: store.JobBackup, Site: site, SiteUID: siteUID, Shard: "local", Phase: store.JobSucceeded,
			Result: raw, CreatedAt: at(h)}
		if err := e.store.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	backup("b1", "blog.acme.test", uid("blog.acme.test"), -30, false)
	backup("b2", "blog.acme.test", uid("blog.acme.test"), -2, true)
	backup("s1", "shop.acme.test", "uid-older-shop", -1, false)
	backup("g1", "globex.test", uid("globex.test"), -5, false)
	failed := &store.Job{ID: "b3", Kind: store.JobBackup, Site: "blog.acme.test", SiteUID: uid("blog.acme.test"), Phase: store.JobFailed, CreatedAt: at(-1)}
	if err := e.store.CreateJob(ctx, failed); err != nil {
		t.Fatal(err)
	}
	// Traffic for acme.test only.
	if code, m, _ := e.do(t, "POST", "/v1/edge/usage", f.secrets["edge"], map[string]any{
		"sites": map[string]any{"acme.test": map[string]any{"requests": 10, "cache_hits": 3, "cache_misses": 1}}}); code != 200 {
		t.Fatal(m)
	}
	code, m, _ := e.do(t, "GET", "/v1/sites", adminSecret, nil)
	if code != 200 {
		t.Fatal(m)
	}
	want := map[string]map[string]any{
		"acme.test":      {"requests_24h": 10.0, "cache_hit_ratio": 0.75},
		"blog.acme.test": {"last_backup": at(-30).Format(time.RFC3339)},
		"shop.acme.test": {},
		"globex.test":    {"last_backup": at(-5).Format(time.RFC3339)},
	}
	items, _ := m["items"].([]any)
	if len(items) != len(want) {
		t.Fatalf("%d items, want %d", len(items), len(want))
	}
	for _, it := range items {
		im := it.(map[string]any)
		name := fmt.Sprint(get(im, "metadata.name"))
		sum, ok := im["summary"].(map[string]any)
		if !ok {
			t.Errorf("%s has no summary", name)
			continue
		}
		if fmt.Sprint(sum) != fmt.Sprint(want[name]) {
			t.Errorf("summary of %s = %v, want %v", name, sum, want[name])
		}
	}
}

// TestSiteMetricsStartEmpty: a site made under the name of a deleted one
// (perhaps for another organisation) does not show the old site's
// traffic.
func TestSiteMetricsStartEmpty(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	report := map[string]any{"sites": map[string]any{"acme.test": map[string]any{"requests": 5}}}
	if code, m, _ := e.do(t, "POST", "/v1/edge/usage", f.secrets["edge"], report); code != 200 {
		t.Fatalf("report = %d %v", code, m)
	}
	requests := func() any {
		code, m, _ := e.do(t, "GET", "/v1/sites/acme.test/metrics", f.secrets["admin"], nil)
		if code != 200 {
			t.Fatalf("metrics = %d %v", code, m)
		}
		return get(m, "totals.requests")
	}
	if got := requests(); got != 5.0 {
		t.Fatalf("requests before = %v, want 5", got)
	}
	if err := e.store.DeleteSite(t.Context(), "acme.test"); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"domain": "acme.test", "title": "Reborn", "admin_email": "me@example.com", "org": "globex"}
	if code, m, _ := e.do(t, "POST", "/v1/sites", f.secrets["admin"], body); code != 201 {
		t.Fatalf("create = %d %v", code, m)
	}
	if got := requests(); got != nil && got != 0.0 {
		t.Errorf("the new acme.test shows the old one's %v requests", got)
	}
}
