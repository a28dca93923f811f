package uptime

import (
	"math"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

func at(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ended(s string) *time.Time {
	t := at(s)
	return &t
}

func targets(plan string) float64 {
	return map[string]float64{"basic": 99.9, "pro": 99.95, "business": 99.99}[plan]
}

// November 2026 has 30 days: 2,592,000 s.
var novSites = []Site{
	{Name: "a.example", Org: "o1", Plan: "basic", Created: at("2026-01-01 00:00:00")},
	{Name: "b.example", Org: "o1", Plan: "pro", Created: at("2026-01-01 00:00:00")},
	{Name: "c.example", Org: "o2", Plan: "business", Created: at("2026-11-16 00:00:00")},
	{Name: "d.example", Org: "o2", Plan: "dev", Created: at("2026-01-01 00:00:00")},
	{Name: "e.example", Org: "o2", Plan: "basic", Created: at("2026-12-01 00:00:00")}, // after the month
	{Name: "f.example", Org: "o2", Plan: "basic", Created: at("2026-01-01 00:00:00")}, // never down
}

var novIncidents = []store.Incident{
	// a: 45 minutes down on the 10th.
	{ID: 1, Site: "a.example", Started: at("2026-11-10 12:00:00"), Ended: ended("2026-11-10 12:45:00")},
	// b: one from October (10 min in November), one overlapping it
	// (until 00:20): 20 minutes in all.
	{ID: 2, Site: "b.example", Started: at("2026-10-31 23:50:00"), Ended: ended("2026-11-01 00:10:00")},
	{ID: 3, Site: "b.example", Started: at("2026-11-01 00:05:00"), Ended: ended("2026-11-01 00:20:00")},
	// b: one of December, outside the month.
	{ID: 4, Site: "b.example", Started: at("2026-12-01 00:00:00"), Ended: ended("2026-12-01 01:00:00")},
	// c: open since the month's last minute.
	{ID: 5, Site: "c.example", Started: at("2026-11-30 23:59:00")},
	// d: an hour, no SLA.
	{ID: 6, Site: "d.example", Started: at("2026-11-20 08:00:00"), Ended: ended("2026-11-20 09:00:00")},
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestBuildKnownOutage: the report of a month with known outages, with
// exact figures, as of a day after the month and in the middle of it.
func TestBuildKnownOutage(t *testing.T) {
	type row struct {
		site                                       string
		measured, down, allowed, availability, tgt float64
		incidents                                  int
		met                                        bool
	}
	for _, tc := range []struct {
		name     string
		now      time.Time
		complete bool
		sites    []row
		plans    []PlanSLA
	}{
		{
			name: "after the month", now: at("2026-12-05 00:00:00"), complete: true,
			sites: []row{
				// (2,592,000 − 2,700) / 2,592,000 = 99.895833…%: under 99.9 (2,592 s allowed).
				{"a.example", 2592000, 2700, 2592, 99.89583333333333, 99.9, 1, false},
				// 1,200 s of 2,592,000: 99.953703…% ≥ 99.95 (1,296 s allowed).
				{"b.example", 2592000, 1200, 1296, 99.95370370370371, 99.95, 2, true},
				// From its creation (15 days, 1,296,000 s); 60 s: 99.995370…%.
				{"c.example", 1296000, 60, 129.6, 99.99537037037037, 99.99, 1, true},
				// No SLA: met whatever the downtime.
				{"d.example", 2592000, 3600, 0, 99.86111111111111, 0, 1, true},
				{"f.example", 2592000, 0, 2592, 100, 99.9, 0, true},
			},
			plans: []PlanSLA{
				{Plan: "basic", TargetPercent: 99.9, Sites: 2, SitesMet: 1, MeasuredSeconds: 5184000, DowntimeSeconds: 2700, AvailabilityPercent: 99.94791666666667, Incidents: 1},
				{Plan: "business", TargetPercent: 99.99, Sites: 1, SitesMet: 1, MeasuredSeconds: 1296000, DowntimeSeconds: 60, AvailabilityPercent: 99.99537037037037, Incidents: 1},
				{Plan: "dev", Sites: 1, SitesMet: 1, MeasuredSeconds: 2592000, DowntimeSeconds: 3600, AvailabilityPercent: 99.86111111111111, Incidents: 1},
				{Plan: "pro", TargetPercent: 99.95, Sites: 1, SitesMet: 1, MeasuredSeconds: 2592000, DowntimeSeconds: 1200, AvailabilityPercent: 99.95370370370371, Incidents: 2},
			},
		},
		{
			// During a's outage: it counts until now (30 min of
			// 9 d 12.5 h = 822,600 s); c does not exist yet.
			name: "during the outage", now: at("2026-11-10 12:30:00"),
			sites: []row{
				{"a.example", 822600, 1800, 822.6, 99.78118161925602, 99.9, 1, false},
				{"b.example", 822600, 1200, 411.3, 99.85412107950401, 99.95, 2, false},
				{"d.example", 822600, 0, 0, 100, 0, 0, true},
				{"f.example", 822600, 0, 822.6, 100, 99.9, 0, true},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Build("2026-11", novSites, novIncidents, targets, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Complete != tc.complete || !rep.From.Equal(at("2026-11-01 00:00:00")) {
				t.Errorf("complete %v from %v", rep.Complete, rep.From)
			}
			if len(rep.Sites) != len(tc.sites) {
				t.Fatalf("sites %+v, want %d", rep.Sites, len(tc.sites))
			}
			for i, w := range tc.sites {
				g := rep.Sites[i]
				if g.Site != w.site || !near(g.MeasuredSeconds, w.measured) || !near(g.DowntimeSeconds, w.down) ||
					!near(g.AllowedDowntimeSeconds, w.allowed) || !near(g.AvailabilityPercent, w.availability) ||
					g.TargetPercent != w.tgt || g.Incidents != w.incidents || g.Met != w.met {
					t.Errorf("site %d = %+v, want %+v", i, g, w)
				}
			}
			if tc.plans == nil {
				return
			}
			if len(rep.Plans) != len(tc.plans) {
				t.Fatalf("plans %+v", rep.Plans)
			}
			for i, w := range tc.plans {
				g := rep.Plans[i]
				if g.Plan != w.Plan || g.TargetPercent != w.TargetPercent || g.Sites != w.Sites || g.SitesMet != w.SitesMet ||
					!near(g.MeasuredSeconds, w.MeasuredSeconds) || !near(g.DowntimeSeconds, w.DowntimeSeconds) ||
					!near(g.AvailabilityPercent, w.AvailabilityPercent) || g.Incidents != w.Incidents {
					t.Errorf("plan %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		month string
		now   time.Time
	}{
		{"2026-13", at("2027-01-01 00:00:00")},
		{"november", at("2027-01-01 00:00:00")},
		{"2026-12", at("2026-11-30 00:00:00")}, // not begun
	} {
		if _, err := Build(tc.month, novSites, nil, targets, tc.now); err == nil {
			t.Errorf("Build(%q) at %v: no error", tc.month, tc.now)
		}
	}
}
