package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

// SiteMetrics keeps the sites' recent traffic (sitemetrics.Store, in
// memory, implements it; a durable store can replace it).
//
// Contract: Record adds each site's counts at the current time (the
// deltas are valid, sitemetrics.Delta.Validate, and name stored sites);
// Query returns a site's series over a range, with a point for every step
// (zero for steps without traffic, an unknown site's all zero); Summary
// returns a site's last 24 hours (ok false when it knows nothing of the
// site). All are safe for concurrent use and cheap enough for the request
// path (Summary runs once per site of a sites list page).
type SiteMetrics interface {
	Record(deltas map[string]sitemetrics.Delta)
	Query(site string, r sitemetrics.Range) *sitemetrics.Series
	Summary(site string) (requests int64, cacheHitRatio *float64, ok bool)
	// Forget drops a site's history. A new site starts without any: a
	// name can come back, for another organisation, after a deletion.
	Forget(site string)
}

var _ SiteMetrics = (*sitemetrics.Store)(nil)

// getSiteMetrics answers GET /v1/sites/{name}/metrics?range=1h|6h|24h|7d
// (the route's scope has checked the caller may read the site).
func (s *server) getSiteMetrics(c *call) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	r, err := sitemetrics.ParseRange(c.r.URL.Query().Get("range"))
	if err != nil {
		return response{}, badRequest("%v", err)
	}
	return response{status: http.StatusOK, body: s.cfg.SiteMetrics.Query(name, r)}, nil
}

// SiteSummary is a site's summary in GET /v1/sites; absent fields are
// unknown (no backup yet, no traffic since the control plane started).
type SiteSummary struct {
	LastBackup    *time.Time `json:"last_backup,omitempty"`
	CacheHitRatio *float64   `json:"cache_hit_ratio,omitempty"` // of the last 24 hours
	Requests24h   *int64     `json:"requests_24h,omitempty"`
}

// SiteListItem is one site of GET /v1/sites: the site and its summary.
type SiteListItem struct {
	site.Site
	Summary SiteSummary `json:"summary"`
}

// SiteListResponse is the body of GET /v1/sites.
type SiteListResponse struct {
	Items    []SiteListItem `json:"items"`
	Continue string         `json:"continue,omitempty"`
	Revision int64          `json:"revision"`
}

// summaries returns the summary of each site of a page (in order): the
// traffic from SiteMetrics, the last backups from one bulk query
// (lastBackups).
func (s *server) summaries(ctx context.Context, sites []site.Site) ([]SiteSummary, error) {
	last, err := lastBackups(ctx, s.cfg.Store, sites)
	if err != nil {
		return nil, err
	}
	out := make([]SiteSummary, len(sites))
	for i := range sites {
		name := sites[i].Metadata.Name
		if t, ok := last[name]; ok {
			out[i].LastBackup = &t
		}
		if req, ratio, ok := s.cfg.SiteMetrics.Summary(name); ok {
			out[i].Requests24h, out[i].CacheHitRatio = &req, ratio
		}
	}
	return out, nil
}

// lastBackups returns the time of the newest snapshot of each site that
// has one (not forgotten, of the site with its current UID), as
// catalog.Latest does for one site, but for a page of sites at once: one
// query over the succeeded backup jobs of all of them, newest first,
// paged by store.MaxLimit, stopping as soon as every site has its answer
// (usually the first page: each site's newest job is its answer).
func lastBackups(ctx context.Context, st store.Store, sites []site.Site) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(sites) == 0 {
		return out, nil
	}
	uids := make(map[string]string, len(sites))
	names := make([]string, 0, len(sites))
	for i := range sites {
		uids[sites[i].Metadata.Name] = sites[i].Metadata.UID
		names = append(names, sites[i].Metadata.Name)
	}
	opts := store.JobListOptions{Sites: names, Kind: store.JobBackup, Phases: []store.JobPhase{store.JobSucceeded}, Limit: store.MaxLimit}
	for {
		jobs, err := st.ListJobs(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("last backups: %w", err)
		}
		for i := range jobs.Items {
			e, ok := catalog.FromJob(&jobs.Items[i])
			if _, done := out[e.Site]; !ok || done || e.Forgotten != nil || (uids[e.Site] != "" && e.SiteUID != uids[e.Site]) {
				continue
			}
			out[e.Site] = e.Time
		}
		if jobs.Continue == "" || len(out) == len(sites) {
			return out, nil
		}
		opts.Continue = jobs.Continue
	}
}

// maxSiteQuery bounds ?q= of GET /v1/sites (the longest domain).
const maxSiteQuery = 253

// listSitesFilters applies ?org= and ?q= of GET /v1/sites to opts. Both
// are pushed down to the store, so pages stay full and continue tokens
// stay valid. org must be an organisation the caller may list the sites
// of: one it may not see is not found (404), one it sees without
// site.read (billing) is forbidden.
func (s *server) listSitesFilters(c *call, opts *store.ListOptions) error {
	q := c.r.URL.Query()
	if org := q.Get("org"); org != "" {
		if err := c.allow(org, orgNotFound(org)); err != nil {
			return err
		}
		if _, err := s.cfg.Store.GetOrg(c.r.Context(), org); errors.Is(err, store.ErrNotFound) {
			return orgNotFound(org)
		} else if err != nil {
			return internal(fmt.Errorf("get organisation %q: %w", org, err))
		}
		opts.Orgs = []string{org}
	}
	if text := q.Get("q"); text != "" {
		if len(text) > maxSiteQuery {
			return badRequest("q is longer than %d characters", maxSiteQuery)
		}
		opts.NameContains = strings.ToLower(text)
	}
	return nil
}
