package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
)

// ProbeReport is the body of POST /v1/edge/probes: the uptime probes'
// results an edge has not reported yet (uptime.Prober).
type ProbeReport struct {
	Results []uptime.Result `json:"results"`
}

func (s *server) reportProbes(c *call) (response, error) {
	var req ProbeReport
	// An edge's first report names every site.
	if err := decodeEdgeReport(c, &req); err != nil {
		return response{}, err
	}
	if len(req.Results) > MaxUsageReport {
		return response{}, badRequest("a report may carry at most %d sites, got %d", MaxUsageReport, len(req.Results))
	}
	for _, r := range req.Results {
		if r.Site == "" || r.At.IsZero() || len(r.Cause) > store.MaxIncidentCause {
			return response{}, badRequest("result of %q: a site, a time and a cause of at most %d bytes are required", r.Site, store.MaxIncidentCause)
		}
	}
	out, err := IngestProbes(c.r.Context(), s.cfg.Store, s.cfg.Clock(), req.Results)
	if err != nil {
		return response{}, internal(err)
	}
	// Incidents take no revision: nobody is to be woken.
	return response{status: http.StatusOK, body: out, unchanged: true}, nil
}

// EdgePeersWindow is how recently an edge's token must have been used
// for the edge to count as live in GET /v1/edge/peers: edges use theirs
// all the time (the routing table's long poll), and a token notes its use
// at most every touchEvery.
const EdgePeersWindow = 3 * touchEvery

// EdgePeers is the answer of GET /v1/edge/peers: the names (token IDs,
// what GET /v1/whoami calls ID) of the live edges, sorted.
type EdgePeers struct {
	Edges []string `json:"edges"`
}

// edgePeers lists the edge tokens, unexpired, used within
// EdgePeersWindow: the edges among which the uptime probes are shared
// (uptime.Assign). The caller's own token was noted on this request if its
// last note was older than touchEvery, so an edge always finds itself.
func (s *server) edgePeers(c *call) (response, error) {
	toks, err := s.cfg.Store.ListTokens(c.r.Context(), store.TokenFilter{Kind: store.TokenAPI})
	if err != nil {
		return response{}, internal(fmt.Errorf("list tokens: %w", err))
	}
	now := s.cfg.Clock()
	out := EdgePeers{Edges: []string{}}
	for _, t := range toks {
		if t.Role != store.RoleEdge || t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > EdgePeersWindow ||
			t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
			continue
		}
		out.Edges = append(out.Edges, t.ID)
	}
	slices.Sort(out.Edges)
	return response{status: http.StatusOK, body: out}, nil
}

// IngestProbes records an edge's probe results as incidents
// (uptime.Record) as of now; results of names that are no stored site
// are dropped. The in-process edge of `aipress up` calls it directly;
// remote edges through POST /v1/edge/probes.
func IngestProbes(ctx context.Context, st store.Store, now time.Time, results []uptime.Result) (uptime.Recorded, error) {
	known := make([]uptime.Result, 0, len(results))
	for _, r := range results {
		_, err := st.GetSite(ctx, r.Site)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return uptime.Recorded{}, fmt.Errorf("get site %q: %w", r.Site, err)
		}
		known = append(known, r)
	}
	return uptime.Record(ctx, st, known, now)
}

// IncidentList is a page of a site's incidents, oldest first; Next is
// the ?after= of the next page (0 on the last).
type IncidentList struct {
	Items []store.Incident `json:"items"`
	Next  int64            `json:"next,omitempty"`
}

func (s *server) listIncidents(c *call) (response, error) {
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	var after int64
	if v := c.r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return response{}, badRequest("after must be an incident ID, got %q", v)
		}
	}
	// A site re-created under its name does not inherit its
	// predecessor's incidents.
	items, err := s.cfg.Store.ListIncidents(c.r.Context(), store.IncidentListOptions{Sites: []string{st.Metadata.Name},
		From: st.Metadata.CreatedAt, AfterID: after, Limit: limit + 1})
	if err != nil {
		return response{}, internal(fmt.Errorf("list incidents of %q: %w", st.Metadata.Name, err))
	}
	items = slices.DeleteFunc(items, func(in store.Incident) bool { return in.Started.Before(st.Metadata.CreatedAt) })
	out := IncidentList{Items: items}
	if len(items) > limit {
		out.Items = items[:limit]
		out.Next = items[limit-1].ID
	}
	return response{status: http.StatusOK, body: out}, nil
}

// slaReport answers GET /v1/sla: the month's report of the sites the
// caller may read (?org=, ?q= and ?site= narrow it).
func (s *server) slaReport(c *call) (response, error) {
	q := c.r.URL.Query()
	now := s.cfg.Clock()
	month := q.Get("month")
	if month == "" {
		month = plans.Month(now)
	}
	if _, _, err := uptime.MonthRange(month); err != nil {
		return response{}, badRequest("%v", err)
	}
	var sites []site.Site
	if name := q.Get("site"); name != "" {
		st, err := s.allowSite(c, name)
		if err != nil {
			return response{}, err
		}
		sites = []site.Site{*st}
	} else {
		opts := store.ListOptions{Limit: store.MaxLimit, Orgs: c.who.visibleOrgs(permSiteRead)}
		if err := s.listSitesFilters(c, &opts); err != nil {
			return response{}, err
		}
		var err error
		if sites, err = s.allSites(c.r.Context(), opts); err != nil {
			return response{}, internal(err)
		}
	}
	rep, err := s.buildSLA(c.r.Context(), month, sites, now)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: rep}, nil
}

// allSites lists every site opts selects.
func (s *server) allSites(ctx context.Context, opts store.ListOptions) ([]site.Site, error) {
	var out []site.Site
	for {
		page, err := s.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		out = append(out, page.Items...)
		if page.Continue == "" {
			return out, nil
		}
		opts.Continue = page.Continue
	}
}

// buildSLA is month's report of sites as of now (a month not begun: 400).
func (s *server) buildSLA(ctx context.Context, month string, sites []site.Site, now time.Time) (*uptime.Report, error) {
	from, to, err := uptime.MonthRange(month)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if !now.After(from) {
		return nil, badRequest("month %s has not begun", month)
	}
	ps := s.plans()
	in := make([]uptime.Site, 0, len(sites))
	names := make([]string, 0, len(sites))
	for i := range sites {
		m := &sites[i].Metadata
		plan := sites[i].Spec.Plan
		if _, ok := ps.Get(plan); !ok {
			plan = ps.Default().Name
		}
		in = append(in, uptime.Site{Name: m.Name, Org: m.Org, Plan: plan, Created: m.CreatedAt})
		names = append(names, m.Name)
	}
	incidents, err := allIncidents(ctx, s.cfg.Store, store.IncidentListOptions{Sites: names, From: from, To: to})
	if err != nil {
		return nil, internal(err)
	}
	rep, err := uptime.Build(month, in, incidents, func(plan string) float64 {
		p, _ := ps.Get(plan)
		return p.SLAPercent
	}, now)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return rep, nil
}

// allIncidents lists every incident opts selects (its AfterID and Limit
// are the pager's).
func allIncidents(ctx context.Context, st store.Store, opts store.IncidentListOptions) ([]store.Incident, error) {
	var out []store.Incident
	opts.Limit = store.MaxIncidentList
	for {
		page, err := st.ListIncidents(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, page...)
		if len(page) < opts.Limit {
			return out, nil
		}
		opts.AfterID = page[len(page)-1].ID
	}
}

// StatusPageSetting is the body and answer of PUT and GET
// /v1/sites/{name}/status-page.
type StatusPageSetting struct {
	// Public: the site's status page is served to anyone at Path.
	Public bool   `json:"public"`
	Path   string `json:"path,omitempty"`
}

// statusPageKey is the setting that makes a site's status page public:
// by UID, so that a site re-created under the name starts private.
func statusPageKey(st *site.Site) string { return "status-page." + st.Metadata.UID }

func (s *server) statusPagePublic(ctx context.Context, st *site.Site) (*store.Setting, error) {
	set, err := s.cfg.Store.GetSetting(ctx, statusPageKey(st))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("status page setting of %q: %w", st.Metadata.Name, err)
	}
	return set, nil
}

func statusPageAnswer(st *site.Site, public bool) StatusPageSetting {
	out := StatusPageSetting{Public: public}
	if public {
		out.Path = "/status/" + st.Metadata.Name
	}
	return out
}

func (s *server) getStatusPage(c *call) (response, error) {
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	set, err := s.statusPagePublic(c.r.Context(), st)
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, body: statusPageAnswer(st, set != nil)}, nil
}

func (s *server) putStatusPage(c *call) (response, error) {
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	var req StatusPageSetting
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, badRequest("invalid JSON body: %v", err)
	}
	ctx := c.r.Context()
	set, err := s.statusPagePublic(ctx, st)
	if err != nil {
		return response{}, internal(err)
	}
	switch {
	case req.Public && set == nil:
		_, err = s.cfg.Store.PutSetting(ctx, statusPageKey(st), []byte("public"), 0)
	case !req.Public && set != nil:
		err = s.cfg.Store.DeleteSetting(ctx, statusPageKey(st), set.Version)
	}
	// A concurrent change to the same value: what was asked holds.
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return response{}, internal(fmt.Errorf("status page of %q: %w", st.Metadata.Name, err))
	}
	c.detail = fmt.Sprintf("public=%t", req.Public)
	return response{status: http.StatusOK, body: statusPageAnswer(st, req.Public), unchanged: true}, nil
}

// statusPageMonths is how many months a status page shows.
const statusPageMonths = 3

// statusPageIncidents bounds the incidents a site's status page lists
// (those of the last 90 days, newest first).
const statusPageIncidents = 20

// publicSiteStatus answers GET /status/{name}: the site's status page
// when its organisation made it public, else the same 404 as for a site
// that does not exist.
func (s *server) publicSiteStatus(c *call) (response, error) {
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	set, err := s.statusPagePublic(ctx, st)
	if err != nil {
		return response{}, internal(err)
	}
	if set == nil {
		return response{}, siteNotFound(st.Metadata.Name)
	}
	now := s.cfg.Clock()
	page := uptime.SitePage{Site: st.Metadata.Name, Now: now}
	page.Months, err = s.monthFigures(ctx, []site.Site{*st}, now)
	if err != nil {
		return response{}, err
	}
	from := now.AddDate(0, 0, -90)
	if st.Metadata.CreatedAt.After(from) {
		from = st.Metadata.CreatedAt
	}
	recent, err := allIncidents(ctx, s.cfg.Store, store.IncidentListOptions{Sites: []string{st.Metadata.Name}, From: from})
	if err != nil {
		return response{}, internal(err)
	}
	recent = slices.DeleteFunc(recent, func(in store.Incident) bool { return in.Started.Before(st.Metadata.CreatedAt) })
	slices.Reverse(recent)
	for i := range recent {
		if recent[i].Ended == nil && page.Open == nil {
			page.Open = &recent[i]
		}
	}
	page.Incidents = recent[:min(len(recent), statusPageIncidents)]
	body, err := uptime.RenderSite(page)
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, raw: body, contentType: "text/html; charset=utf-8"}, nil
}

// monthFigures is the availability of sites (all together) in this
// month and the ones before it, back to statusPageMonths, skipping
// months before the first site existed.
func (s *server) monthFigures(ctx context.Context, sites []site.Site, now time.Time) ([]uptime.MonthFigure, error) {
	out := []uptime.MonthFigure{}
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := range statusPageMonths {
		m := first.AddDate(0, -i, 0)
		rep, err := s.buildSLA(ctx, plans.Month(m), sites, now)
		if err != nil {
			return nil, err
		}
		var measured, down float64
		for _, r := range rep.Sites {
			measured += r.MeasuredSeconds
			down += r.DowntimeSeconds
		}
		if measured == 0 {
			break
		}
		out = append(out, uptime.MonthFigure{Month: rep.Month, Percent: 100 * (measured - down) / measured})
	}
	return out, nil
}

// platformStatusTTL is how long the platform's status page is served
// from memory: building it reads every site.
const platformStatusTTL = 30 * time.Second

// pageCache keeps the platform's status page for platformStatusTTL.
type pageCache struct {
	mu   sync.Mutex
	at   time.Time
	page []byte
}

// publicPlatformStatus answers GET /status: the platform's status page
// (counts only; no site is named).
func (s *server) publicPlatformStatus(c *call) (response, error) {
	now := s.cfg.Clock()
	pc := s.statusPage
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.page == nil || now.Sub(pc.at) >= platformStatusTTL || now.Before(pc.at) {
		ctx := c.r.Context()
		sites, err := s.allSites(ctx, store.ListOptions{Limit: store.MaxLimit})
		if err != nil {
			return response{}, internal(err)
		}
		shards, err := s.cfg.Store.ListShards(ctx)
		if err != nil {
			return response{}, internal(fmt.Errorf("list shards: %w", err))
		}
		page := uptime.PlatformPage{Now: now, Shards: len(shards), Sites: len(sites)}
		for _, sh := range shards {
			if sh.Phase == store.ShardReady {
				page.ShardsUp++
			}
		}
		open, err := allIncidents(ctx, s.cfg.Store, store.IncidentListOptions{OpenOnly: true})
		if err != nil {
			return response{}, internal(err)
		}
		created := make(map[string]time.Time, len(sites))
		for i := range sites {
			created[sites[i].Metadata.Name] = sites[i].Metadata.CreatedAt
		}
		for _, in := range open {
			// Not a deleted site's, nor a predecessor's.
			if c, ok := created[in.Site]; ok && !in.Started.Before(c) {
				page.SitesDown++
			}
		}
		day, err := allIncidents(ctx, s.cfg.Store, store.IncidentListOptions{From: now.Add(-24 * time.Hour)})
		if err != nil {
			return response{}, internal(err)
		}
		page.IncidentsLastDay = len(day)
		if page.Months, err = s.monthFigures(ctx, sites, now); err != nil {
			return response{}, err
		}
		body, err := uptime.RenderPlatform(page)
		if err != nil {
			return response{}, internal(err)
		}
		pc.page, pc.at = body, now
	}
	return response{status: http.StatusOK, raw: pc.page, contentType: "text/html; charset=utf-8"}, nil
}
