package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// TestUsageAndCost: an edge's report is counted once however often it is
// sent, lands in the hourly usage records (and the month's bandwidth),
// GET /v1/usage shows each caller the sites it may read, and GET /v1/cost
// splits each shard's cost over its sites, idle ones included, to the
// cent.
func TestUsageAndCost(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	for name, shard := range map[string]string{"acme.test": "s1", "globex.test": "s1"} {
		if _, err := e.store.UpdateSite(ctx, name, func(s *site.Site) error { s.Status.Shard = shard; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "idle.test", UID: "uid-idle", Org: "acme", CreatedAt: testNow},
		Spec: site.Spec{Domain: "idle.test", Plan: "basic"}, Status: site.Status{Shard: "s1"}}); err != nil {
		t.Fatal(err)
	}
	report := map[string]any{"id": "r1",
		"bytes": map[string]any{"acme.test": 5000, "globex.test": 100, "gone.example": 7},
		"sites": map[string]any{"acme.test": map[string]any{"requests": 4, "cache_hits": 3, "php_requests": 1, "php_us": 20000},
			"globex.test": map[string]any{"requests": 1, "php_requests": 1, "php_us": 60000}}}
	for range 3 { // the edge did not hear the first two answers
		if code, m, _ := e.do(t, "POST", "/v1/edge/usage", f.secrets["edge"], report); code != 200 {
			t.Fatalf("report = %d %v", code, m)
		}
	}
	if code, m, _ := e.do(t, "POST", "/v1/edge/usage", f.secrets["edge"], map[string]any{"id": string(make([]byte, 129)), "bytes": map[string]any{}}); code != 400 {
		t.Errorf("a 129-character id = %d %v, want 400", code, m)
	}
	bw, err := e.store.ListBandwidth(ctx, store.BandwidthListOptions{Month: "2025-01"})
	if err != nil || bw["acme.test"] != 5000 || bw["globex.test"] != 100 {
		t.Errorf("bandwidth = %v, %v; want 5000 and 100 (once)", bw, err)
	}
	if got := e.siteMetrics.Query("acme.test", "1h").Totals.Requests; got != 4 {
		t.Errorf("chart requests = %d, want 4 (once)", got)
	}

	for _, tc := range []struct {
		caller, query string
		want          string // site:requests:bytes_out:cache_hits:php_us of each item
	}{
		{"admin", "period=hour&month=2025-01", "acme.test:4:5000:3:20000 globex.test:1:100:0:60000"},
		{"admin", "period=month&site=globex.test", "globex.test:1:100:0:60000"},
		{"owner", "period=day&from=2025-01-01&to=2025-01-03", "acme.test:4:5000:3:20000"},
		{"owner", "site=globex.test", ""},
		{"owner", "org=globex", ""},
		{"billing", "", ""}, // billing members read no site
		{"admin", "month=2024-12", ""},
	} {
		code, m, _ := e.do(t, "GET", "/v1/usage?"+tc.query, f.secrets[tc.caller], nil)
		if code != 200 {
			t.Fatalf("%s %s: %d %v", tc.caller, tc.query, code, m)
		}
		got := ""
		for _, it := range m["items"].([]any) {
			r := it.(map[string]any)
			got += fmt.Sprintf(" %v:%v:%v:%v:%v", r["site"], r["requests"], r["bytes_out"], r["cache_hits"], r["php_us"])
		}
		if want := tc.want; (got == "" && want != "") || (got != "" && got[1:] != want) {
			t.Errorf("%s %s: %q, want %q", tc.caller, tc.query, got, want)
		}
	}
	for _, q := range []string{"period=week", "month=2025-13", "month=2025-01&from=2025-01-01", "from=2025-01-01", "from=2025-01-02&to=2025-01-01", "limit=0"} {
		if code, m, _ := e.do(t, "GET", "/v1/usage?"+q, adminSecret, nil); code != 400 {
			t.Errorf("usage?%s = %d %v, want 400", q, code, m)
		}
	}

	// Cost: s1's cost over January's first 51 hours is shared by three
	// sites, idle.test too.
	code, m, _ := e.do(t, "GET", "/v1/cost?month=2025-01", adminSecret, nil)
	if code != 200 {
		t.Fatalf("cost = %d %v", code, m)
	}
	shards := m["shards"].([]any)
	if len(shards) != 1 || get(shards[0].(map[string]any), "shard") != "s1" || get(shards[0].(map[string]any), "sites") != 3.0 {
		t.Fatalf("shards = %v", shards)
	}
	shardCost := get(shards[0].(map[string]any), "cost_cents").(float64)
	var sum, total float64
	lines := map[string]map[string]any{}
	for _, it := range m["sites"].([]any) {
		l := it.(map[string]any)
		lines[l["site"].(string)] = l
		sum += l["share_cents"].(float64)
		total += l["total_cents"].(float64)
	}
	if sum != shardCost || total != m["total_cents"].(float64) || shardCost == 0 {
		t.Errorf("shares add up to %v, shard costs %v; totals %v vs %v", sum, shardCost, total, m["total_cents"])
	}
	idle, busy := lines["idle.test"], lines["globex.test"]
	if idle == nil || idle["fixed_cents"] != busy["fixed_cents"] || idle["usage_cents"].(float64) >= busy["usage_cents"].(float64) || idle["org"] != "acme" {
		t.Errorf("idle %v vs globex (3× acme's PHP time) %v: want the same fixed part and a smaller usage part", idle, busy)
	}
	code, m, _ = e.do(t, "GET", "/v1/cost?month=2025-01", f.secrets["owner"], nil)
	if code != 200 || m["shards"] != nil || len(m["sites"].([]any)) != 2 {
		t.Errorf("owner's cost = %d %v: want acme's two sites, no shards", code, m)
	}
	code, m, _ = e.do(t, "GET", "/v1/cost?month=2025-01&org=globex", f.secrets["owner"], nil)
	if code != 200 || len(m["sites"].([]any)) != 0 || m["total_cents"] != 0.0 {
		t.Errorf("owner's cost of globex = %d %v: want nothing", code, m)
	}
	if code, m, _ := e.do(t, "GET", "/v1/cost?month=2025-02", adminSecret, nil); code != 400 {
		t.Errorf("cost of a month not begun = %d %v, want 400", code, m)
	}
}
