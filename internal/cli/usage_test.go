package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// TestUsageAndCostCommands: `aipress usage` and `aipress cost` print the
// API's records and costs as tables, CSV and JSON (golden files).
func TestUsageAndCostCommands(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	if err := h.store.CreateOrg(ctx, &store.Org{Name: "acme", Kind: store.OrgCustomer, Plan: "business", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"blog.example.com", "idle.example.com", "shop.example.com"} {
		s := &site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name, Org: "acme", CreatedAt: created},
			Spec: site.Spec{Domain: name, Plan: "basic"}, Status: site.Status{Shard: []string{"s1", "s1", "s2"}[i]}}
		if err := h.store.CreateSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	n := func(v int64) *int64 { return &v }
	jan1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		at   time.Time
		site string
		d    store.UsageDelta
	}{
		{jan1.Add(1 * time.Hour), "blog.example.com", store.UsageDelta{Shard: "s1", Requests: 1200, BytesOut: 3 << 30, CacheHits: 900, PHPMicros: 45_000_000, DBBytes: n(40 << 20), FilesBytes: n(200 << 20)}},
		{jan1.Add(2 * time.Hour), "blog.example.com", store.UsageDelta{Shard: "s1", Requests: 300, BytesOut: 1 << 20, CacheHits: 100, PHPMicros: 15_000_000, DBQueries: 5000, BackupBytes: n(100 << 20)}},
		{jan1.Add(26 * time.Hour), "shop.example.com", store.UsageDelta{Shard: "s2", Requests: 50, BytesOut: 500_000, PHPMicros: 3_000_000}},
	} {
		if _, err := h.store.AddUsage(ctx, store.UsageKey{Source: "test"}, r.at, map[string]store.UsageDelta{r.site: r.d}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args   []string
		golden string
	}{
		{[]string{"usage", "--month", "2025-01"}, "usage_day_table"},
		{[]string{"usage", "--period", "hour", "--site", "blog.example.com", "--from", "2025-01-01", "--to", "2025-01-02", "-o", "csv"}, "usage_hour_csv"},
		{[]string{"cost", "--month", "2025-01"}, "cost_table"},
		{[]string{"cost", "--month", "2025-01", "--org", "acme", "-o", "csv"}, "cost_csv"},
	} {
		out, stderr, err := h.run(t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v %s", tc.args, err, stderr)
		}
		golden(t, tc.golden, out)
	}
	// JSON: the API's report; a shard's shares add up to its cost.
	out, _, err := h.run(t, "cost", "--month", "2025-01", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep api.CostReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, sh := range rep.Shards {
		var sum int64
		for _, l := range rep.Sites {
			if l.Shard == sh.Shard {
				sum += l.Share
			}
		}
		if sum != sh.Cost {
			t.Errorf("shard %s: shares %d, cost %d", sh.Shard, sum, sh.Cost)
		}
	}
	// Pages.
	out, stderr, err := h.run(t, "usage", "--month", "2025-01", "--period", "hour", "--limit", "2")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(stderr, "--after '2025-01-01T02|blog.example.com|s1'") {
		t.Errorf("--limit 2: %v\n%s%s", err, out, stderr)
	}
	if out, _, err = h.run(t, "usage", "--month", "2025-01", "--period", "hour", "--limit", "1", "--all", "-o", "csv"); err != nil || strings.Count(out, "\n") != 4 {
		t.Errorf("--all: %v\n%s", err, out)
	}
	if _, _, err := h.run(t, "usage", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "or csv") {
		t.Errorf("-o xml: %v", err)
	}
}
