package uptime

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Site is what the SLA report needs of a site.
type Site struct {
	Name, Org, Plan string
	// Created starts the site's measured period when it is inside the
	// month.
	Created time.Time
}

// SiteSLA is one site's month.
type SiteSLA struct {
	Site string `json:"site"`
	Org  string `json:"org"`
	Plan string `json:"plan"`
	// TargetPercent is the plan's sla_percent (0: the plan has no SLA).
	TargetPercent float64 `json:"target_percent"`
	// From and To are the measured period: the month, from the site's
	// creation when later, until now when the month is not over.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// MeasuredSeconds is To - From; DowntimeSeconds the part of it in
	// incidents; AllowedDowntimeSeconds what the target allows of it (to
	// the millisecond).
	MeasuredSeconds        float64 `json:"measured_seconds"`
	DowntimeSeconds        float64 `json:"downtime_seconds"`
	AllowedDowntimeSeconds float64 `json:"allowed_downtime_seconds"`
	// AvailabilityPercent is 100 × (measured − downtime) / measured (100
	// when nothing was measured).
	AvailabilityPercent float64 `json:"availability_percent"`
	// Incidents counts the incidents that overlap the period.
	Incidents int `json:"incidents"`
	// Met: the availability reached the target (true without a target).
	Met bool `json:"met"`
}

// PlanSLA sums a plan's sites.
type PlanSLA struct {
	Plan          string  `json:"plan"`
	TargetPercent float64 `json:"target_percent"`
	Sites         int     `json:"sites"`
	SitesMet      int     `json:"sites_met"`
	// AvailabilityPercent is over all its sites' measured time.
	AvailabilityPercent float64 `json:"availability_percent"`
	MeasuredSeconds     float64 `json:"measured_seconds"`
	DowntimeSeconds     float64 `json:"downtime_seconds"`
	Incidents           int     `json:"incidents"`
}

// Report is a month's SLA report.
type Report struct {
	Month string    `json:"month"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// Complete: the month is over (To is its end, not now).
	Complete bool      `json:"complete"`
	Sites    []SiteSLA `json:"sites"`
	Plans    []PlanSLA `json:"plans"`
}

// MonthRange returns the UTC calendar month "YYYY-MM": its first instant
// and the first of the next month.
func MonthRange(month string) (time.Time, time.Time, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("month %q is not YYYY-MM", month)
	}
	return t, t.AddDate(0, 1, 0), nil
}

// Build computes month's report for sites from their incidents (those
// overlapping the month; others are ignored), against target (a plan's
// sla_percent, 0: none), as of now. Sites created after the month or
// after now are left out, and so are incidents begun before their site
// was created (a predecessor's under the same name); a month that has
// not begun is an error.
func Build(month string, sites []Site, incidents []store.Incident, target func(plan string) float64, now time.Time) (*Report, error) {
	from, to, err := MonthRange(month)
	if err != nil {
		return nil, err
	}
	if !now.After(from) {
		return nil, fmt.Errorf("month %s has not begun", month)
	}
	rep := &Report{Month: month, From: from, To: to, Complete: !now.Before(to), Sites: []SiteSLA{}, Plans: []PlanSLA{}}
	if now.Before(to) {
		rep.To = now
	}
	bySite := map[string][]store.Incident{}
	for _, in := range incidents {
		bySite[in.Site] = append(bySite[in.Site], in)
	}
	plans := map[string]*PlanSLA{}
	for _, s := range sites {
		start := from
		if s.Created.After(start) {
			start = s.Created
		}
		if !start.Before(rep.To) {
			continue
		}
		// Incidents begun before the site was created were its
		// predecessor's (a site re-created under the name).
		own := slices.DeleteFunc(slices.Clone(bySite[s.Name]), func(in store.Incident) bool { return in.Started.Before(s.Created) })
		down, n := downtime(own, start, rep.To)
		measured := rep.To.Sub(start)
		row := SiteSLA{Site: s.Name, Org: s.Org, Plan: s.Plan, TargetPercent: target(s.Plan), From: start, To: rep.To,
			MeasuredSeconds: measured.Seconds(), DowntimeSeconds: down.Seconds(), Incidents: n,
			AvailabilityPercent: availability(measured, down)}
		// To the millisecond: 99.9 % has no exact binary fraction.
		row.AllowedDowntimeSeconds = math.Round(measured.Seconds()*(100-row.TargetPercent)*10) / 1000
		if row.TargetPercent == 0 {
			row.AllowedDowntimeSeconds = 0
		}
		row.Met = row.TargetPercent == 0 || row.AvailabilityPercent >= row.TargetPercent
		rep.Sites = append(rep.Sites, row)
		p := plans[s.Plan]
		if p == nil {
			p = &PlanSLA{Plan: s.Plan, TargetPercent: row.TargetPercent}
			plans[s.Plan] = p
		}
		p.Sites++
		if row.Met {
			p.SitesMet++
		}
		p.MeasuredSeconds += row.MeasuredSeconds
		p.DowntimeSeconds += row.DowntimeSeconds
		p.Incidents += n
	}
	for _, p := range plans {
		p.AvailabilityPercent = 100
		if p.MeasuredSeconds > 0 {
			p.AvailabilityPercent = 100 * (p.MeasuredSeconds - p.DowntimeSeconds) / p.MeasuredSeconds
		}
		rep.Plans = append(rep.Plans, *p)
	}
	slices.SortFunc(rep.Sites, func(a, b SiteSLA) int { return cmp.Compare(a.Site, b.Site) })
	slices.SortFunc(rep.Plans, func(a, b PlanSLA) int { return cmp.Compare(a.Plan, b.Plan) })
	return rep, nil
}

func availability(measured, down time.Duration) float64 {
	if measured <= 0 {
		return 100
	}
	return 100 * float64(measured-down) / float64(measured)
}

// downtime is the time within [from, to) covered by the incidents
// (overlaps counted once; open incidents last until to), and how many
// of them overlap it.
func downtime(ins []store.Incident, from, to time.Time) (time.Duration, int) {
	type span struct{ a, b time.Time }
	var spans []span
	for _, in := range ins {
		a, b := in.Started, to
		if in.Ended != nil && in.Ended.Before(b) {
			b = *in.Ended
		}
		if a.Before(from) {
			a = from
		}
		if !a.Before(b) {
			continue
		}
		spans = append(spans, span{a, b})
	}
	slices.SortFunc(spans, func(x, y span) int { return x.a.Compare(y.a) })
	var total time.Duration
	var cur span
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case !s.a.After(cur.b):
			if s.b.After(cur.b) {
				cur.b = s.b
			}
		default:
			total += cur.b.Sub(cur.a)
			cur = s
		}
	}
	if len(spans) > 0 {
		total += cur.b.Sub(cur.a)
	}
	return total, len(spans)
}
