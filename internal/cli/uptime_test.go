package cli

import (
	"context"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// TestSLAAndIncidents: `aipress sla` (table, csv, --plans) and `aipress
// site incidents` of December 2024 with known outages (golden files).
func TestSLAAndIncidents(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, s := range []struct{ name, plan string }{{"a.test", "basic"}, {"b.test", "pro"}, {"c.test", "dev"}} {
		if err := h.store.CreateSite(ctx, &site.Site{
			Metadata: site.Metadata{Name: s.name, UID: "uid-" + s.name, CreatedAt: time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)},
			Spec:     site.Spec{Domain: s.name, Plan: s.plan},
		}); err != nil {
			t.Fatal(err)
		}
	}
	down := func(name string, from time.Time, d time.Duration, cause string) {
		t.Helper()
		if _, _, err := h.store.OpenIncident(ctx, name, from, cause); err != nil {
			t.Fatal(err)
		}
		if d > 0 {
			if _, err := h.store.CloseIncident(ctx, name, from.Add(d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	down("a.test", time.Date(2024, 12, 10, 0, 0, 0, 0, time.UTC), time.Hour, "HTTP 503")
	down("a.test", time.Date(2024, 12, 20, 12, 0, 0, 0, time.UTC), 90*time.Second, "HTTP 200 without a WordPress page")
	down("b.test", time.Date(2024, 12, 31, 23, 59, 0, 0, time.UTC), 0, "timeout") // still open
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"sla_table", []string{"sla", "--month", "2024-12"}},
		{"sla_csv", []string{"sla", "--month", "2024-12", "-o", "csv"}},
		{"sla_plans_csv", []string{"sla", "--month", "2024-12", "--plans", "-o", "csv"}},
		{"incidents_table", []string{"site", "incidents", "a.test"}},
		{"incidents_page", []string{"site", "incidents", "a.test", "--limit", "1"}},
	} {
		out, _, err := h.run(t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		golden(t, tc.golden, out)
	}
}
