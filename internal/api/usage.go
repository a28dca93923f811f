package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/store"
)

// UsageList is the body of GET /v1/usage: usage records of one period
// kind over [From, To), and the after= of the next page (Next) when there
// may be more.
type UsageList struct {
	Period string              `json:"period"`
	From   time.Time           `json:"from"`
	To     time.Time           `json:"to"`
	Items  []store.UsageRecord `json:"items"`
	Next   string              `json:"next,omitempty"`
}

// usageSpan reads month= (YYYY-MM) or from= and to= (RFC 3339 or
// YYYY-MM-DD, to exclusive); by default the current month (UTC).
func usageSpan(c *call, now time.Time) (from, to time.Time, err error) {
	q := c.r.URL.Query()
	month, f, t := q.Get("month"), q.Get("from"), q.Get("to")
	if month != "" && (f != "" || t != "") {
		return from, to, badRequest("give month= or from= and to=, not both")
	}
	if f == "" && t == "" {
		if month == "" {
			month = now.UTC().Format("2006-01")
		}
		m, err := time.Parse("2006-01", month)
		if err != nil {
			return from, to, badRequest("month=%q: want YYYY-MM", month)
		}
		return m, m.AddDate(0, 1, 0), nil
	}
	parse := func(name, v string) (time.Time, error) {
		if d, err := time.Parse("2006-01-02", v); err == nil {
			return d, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, badRequest("%s=%q: want YYYY-MM-DD or an RFC 3339 time", name, v)
		}
		return t.UTC(), nil
	}
	if f == "" || t == "" {
		return from, to, badRequest("from= and to= go together")
	}
	if from, err = parse("from", f); err != nil {
		return from, to, err
	}
	if to, err = parse("to", t); err != nil {
		return from, to, err
	}
	if !from.Before(to) || to.Sub(from) > store.MaxUsageSpan {
		return from, to, badRequest("from=%s to=%s: want from before to, at most %d days apart", f, t, int(store.MaxUsageSpan.Hours()/24))
	}
	return from, to, nil
}

// visibleSites returns the names and organisations of the sites of orgs
// (nil: every organisation), only of org when it is not empty.
func (s *server) visibleSites(ctx context.Context, orgs []string, org string) (map[string]string, error) {
	if org != "" {
		if orgs != nil && !slices.Contains(orgs, org) {
			orgs = []string{}
		} else {
			orgs = []string{org}
		}
	}
	out := map[string]string{}
	opts := store.ListOptions{Limit: store.MaxLimit, Orgs: orgs}
	for {
		page, err := s.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		for i := range page.Items {
			out[page.Items[i].Metadata.Name] = siteOrg(&page.Items[i])
		}
		if page.Continue == "" {
			return out, nil
		}
		opts.Continue = page.Continue
	}
}

// listUsage serves GET /v1/usage: the usage records of the sites the
// caller may read (site=, org= narrow them), by hour, day or month
// (period=, default day) over month= or from=/to=. Records of deleted
// sites are listed to platform roles only.
func (s *server) listUsage(c *call) (response, error) {
	q := c.r.URL.Query()
	from, to, err := usageSpan(c, s.cfg.Clock())
	if err != nil {
		return response{}, err
	}
	period := q.Get("period")
	if period == "" {
		period = store.PeriodDay
	}
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	opts := store.UsageListOptions{Period: period, From: from, To: to, Limit: limit, After: q.Get("after")}
	visible := c.who.visibleOrgs(permSiteRead)
	org, name := q.Get("org"), strings.ToLower(q.Get("site"))
	if visible != nil || org != "" {
		sites, err := s.visibleSites(c.r.Context(), visible, org)
		if err != nil {
			return response{}, internal(err)
		}
		opts.Sites = append([]string{}, slices.Sorted(maps.Keys(sites))...) // never nil: nil is every site
	}
	if name != "" {
		if opts.Sites != nil && !slices.Contains(opts.Sites, name) {
			opts.Sites = []string{}
		} else {
			opts.Sites = []string{name}
		}
	}
	items, err := s.cfg.Store.ListUsage(c.r.Context(), opts)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return response{}, badRequest("%v", err)
		}
		return response{}, internal(err)
	}
	out := UsageList{Period: period, From: from, To: to, Items: items}
	if len(items) == limit {
		out.Next = items[len(items)-1].Cursor()
	}
	return response{status: http.StatusOK, body: out}, nil
}

// CostReport is the body of GET /v1/cost: each site's part of its
// shard's cost in a month and its own costs (internal/cost), in cents of
// Currency. Shards (platform roles only) are the shards' costs and how
// many sites share each; Sites are the sites the caller may read (org=
// narrows them), a site once per shard it used that month. Total is the
// sum of Sites' totals.
type CostReport struct {
	Month      string         `json:"month"`
	Currency   string         `json:"currency"`
	Source     string         `json:"source"`
	Hours      float64        `json:"hours"`
	FixedShare float64        `json:"fixed_share"`
	Shards     []ShardCost    `json:"shards,omitempty"`
	Sites      []SiteCostLine `json:"sites"`
	Total      int64          `json:"total_cents"`
}

// ShardCost is one shard's cost in a CostReport.
type ShardCost struct {
	Shard string `json:"shard"`
	Sites int    `json:"sites"`
	Cost  int64  `json:"cost_cents"`
}

// SiteCostLine is one site's line of a CostReport, with the usage that
// priced it.
type SiteCostLine struct {
	cost.SiteCost
	Org          string `json:"org,omitempty"`
	Shard        string `json:"shard"`
	Requests     int64  `json:"requests"`
	BytesOut     int64  `json:"bytes_out"`
	PHPSeconds   int64  `json:"php_seconds"`
	StorageBytes int64  `json:"storage_bytes"`
	BackupBytes  int64  `json:"backup_bytes"`
}

// costReport serves GET /v1/cost (see CostReport). A month is priced over
// its hours up to now (the current month so far).
func (s *server) costReport(c *call) (response, error) {
	q := c.r.URL.Query()
	month := q.Get("month")
	now := s.cfg.Clock().UTC()
	if month == "" {
		month = now.Format("2006-01")
	}
	start, err := time.Parse("2006-01", month)
	if err != nil {
		return response{}, badRequest("month=%q: want YYYY-MM", month)
	}
	end := start.AddDate(0, 1, 0)
	until := end
	if now.Before(end) {
		until = now
	}
	hours := until.Sub(start).Hours()
	if hours <= 0 {
		return response{}, badRequest("month %s has not begun", month)
	}
	visible := c.who.visibleOrgs(permOrgRead)
	rep, err := s.priceMonth(c.r.Context(), month, start, end, hours)
	if err != nil {
		return response{}, internal(err)
	}
	org := q.Get("org")
	if visible != nil || org != "" {
		keep := rep.Sites[:0]
		for _, l := range rep.Sites {
			if (org == "" || l.Org == org) && (visible == nil || slices.Contains(visible, l.Org)) {
				keep = append(keep, l)
			}
		}
		rep.Sites = keep
	}
	if visible != nil {
		rep.Shards = nil // the platform's costs are not a customer's business
	}
	rep.Total = 0
	for _, l := range rep.Sites {
		rep.Total += l.Total
	}
	return response{status: http.StatusOK, body: rep}, nil
}

// priceMonth allocates every shard's cost in month over its sites: those
// with usage records on it that month and those on it now (idle sites
// pay their fixed share too).
func (s *server) priceMonth(ctx context.Context, month string, start, end time.Time, hours float64) (*CostReport, error) {
	sheet := s.cfg.Prices
	usage := map[string]map[string]*cost.SiteUsage{} // shard → site →
	at := func(shard, name string) *cost.SiteUsage {
		if usage[shard] == nil {
			usage[shard] = map[string]*cost.SiteUsage{}
		}
		u := usage[shard][name]
		if u == nil {
			u = &cost.SiteUsage{Site: name}
			usage[shard][name] = u
		}
		return u
	}
	opts := store.UsageListOptions{Period: store.PeriodMonth, From: start, To: end, Limit: store.MaxUsageLimit}
	for {
		page, err := s.cfg.Store.ListUsage(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		for _, r := range page {
			u := at(r.Shard, r.Site)
			// Gauges averaged over the hours measured, weighted by
			// those hours over the month's priced hours.
			w := float64(r.Hours) / hours
			u.Requests, u.PHPMicros, u.BytesOut = r.Requests, r.PHPMicros, r.BytesOut
			u.StorageBytes = int64(float64(r.DBBytes+r.FilesBytes) * w)
			u.BackupBytes = int64(float64(r.BackupBytes) * w)
		}
		if len(page) < opts.Limit {
			break
		}
		opts.After = page[len(page)-1].Cursor()
	}
	orgs := map[string]string{}
	lopts := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := s.cfg.Store.ListSites(ctx, lopts)
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		for i := range page.Items {
			st := &page.Items[i]
			orgs[st.Metadata.Name] = siteOrg(st)
			if st.Status.Shard != "" {
				at(st.Status.Shard, st.Metadata.Name)
			}
		}
		if page.Continue == "" {
			break
		}
		lopts.Continue = page.Continue
	}
	shards, err := s.cfg.Store.ListShards(ctx)
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	for _, sh := range shards {
		if usage[sh.Name] == nil {
			usage[sh.Name] = map[string]*cost.SiteUsage{}
		}
	}
	rep := &CostReport{Month: month, Currency: sheet.Currency, Source: sheet.Source, Hours: hours, FixedShare: sheet.FixedShare,
		Shards: []ShardCost{}, Sites: []SiteCostLine{}}
	for _, shard := range slices.Sorted(maps.Keys(usage)) {
		if shard == "" {
			continue // usage of a site not placed yet: no shard to share
		}
		var sites []cost.SiteUsage
		for _, u := range usage[shard] {
			sites = append(sites, *u)
		}
		a := sheet.Allocate(shard, hours, sites)
		rep.Shards = append(rep.Shards, ShardCost{Shard: shard, Sites: len(a.Sites), Cost: a.Cost})
		for _, sc := range a.Sites {
			u := usage[shard][sc.Site]
			rep.Sites = append(rep.Sites, SiteCostLine{SiteCost: sc, Org: orgs[sc.Site], Shard: shard, Requests: u.Requests,
				BytesOut: u.BytesOut, PHPSeconds: u.PHPMicros / 1e6, StorageBytes: u.StorageBytes, BackupBytes: u.BackupBytes})
		}
	}
	slices.SortStableFunc(rep.Sites, func(a, b SiteCostLine) int { return strings.Compare(a.Site, b.Site) })
	return rep, nil
}
