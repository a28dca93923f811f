package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/revhub"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Long-poll bounds of GET /v1/agent/sites and GET /v1/routes.
const (
	DefaultWatchWait = 30 * time.Second
	MaxWatchWait     = 60 * time.Second
)

// WatchSitesResponse is the body of GET /v1/agent/sites. Without since it
// is the full list (Removed empty, More false); with since, what changed.
type WatchSitesResponse struct {
	Sites []site.Site `json:"sites"`
	// Removed: the site left the shard (moved away, or deleted).
	Removed  []store.Tombstone `json:"removed,omitempty"`
	Revision int64             `json:"revision"`
	// More: the answer was cut; ask again at once with Revision.
	More bool `json:"more,omitempty"`
}

// RoutesResponse is the body of GET /v1/routes: every site and shard
// without since, what changed with it. An edge drops a site on a Removed
// tombstone with Deleted set; other tombstones only say that a site left a
// shard, and the site's new state is in Sites.
type RoutesResponse struct {
	// SiteCount, in the list (without since) only, is how many sites the
	// store held just before the list was read: a hint a client may size
	// its copy by (the list may hold a few more or fewer sites). It comes
	// before the sites in the streamed list.
	SiteCount int               `json:"site_count,omitempty"`
	Sites     []site.Site       `json:"sites"`
	Shards    []store.Shard     `json:"shards"`
	Removed   []store.Tombstone `json:"removed,omitempty"`
	Revision  int64             `json:"revision"`
	More      bool              `json:"more,omitempty"`
}

// watchQuery is the since and wait of a watch request; list is true when
// since is absent.
type watchQuery struct {
	list  bool
	since int64
	wait  time.Duration
}

func parseWatchQuery(r *http.Request) (watchQuery, error) {
	q := r.URL.Query()
	wq := watchQuery{list: !q.Has("since"), wait: DefaultWatchWait}
	if !wq.list {
		n, err := strconv.ParseInt(q.Get("since"), 10, 64)
		if err != nil || n < 0 {
			return wq, badRequest("since must be a revision (an integer >= 0), got %q", q.Get("since"))
		}
		wq.since = n
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return wq, badRequest("wait must be a duration like 30s, got %q", v)
		}
		wq.wait = min(d, MaxWatchWait)
	}
	return wq, nil
}

// listAllSites returns every site (of shard, if not empty), following the
// store's pages, and the revision of the first page: changes after it are
// all reported by Changes, so a site written while the later pages were
// read is seen again, never missed.
func (s *server) listAllSites(ctx context.Context, shard string) ([]site.Site, int64, error) {
	return listAllSites(ctx, s.cfg.Store, shard)
}

func listAllSites(ctx context.Context, st store.Store, shard string) ([]site.Site, int64, error) {
	out := []site.Site{}
	opts := store.ListOptions{Shard: shard, Limit: store.MaxLimit}
	var rev int64 = -1
	for {
		page, err := st.ListSites(ctx, opts)
		if err != nil {
			return nil, 0, fmt.Errorf("list sites: %w", err)
		}
		if rev < 0 {
			rev = page.Revision
		}
		out = append(out, page.Items...)
		if page.Continue == "" {
			return out, rev, nil
		}
		opts.Continue = page.Continue
	}
}

// longPoll returns the changes after q.since as soon as there are any, or
// an empty list at the current revision when q.wait runs out. One query
// runs per wake-up of the revision hub, whose single poller is shared by
// every waiting watcher.
func (s *server) longPoll(c *call, q watchQuery, opts store.ChangeOptions) (*store.ChangeList, error) {
	c.longPoll = q.wait > 0
	return longPoll(c.r.Context(), s.cfg.Store, s.cfg.Hub, q, opts)
}

func longPoll(ctx context.Context, st store.Store, hub *revhub.Hub, q watchQuery, opts store.ChangeOptions) (*store.ChangeList, error) {
	waitCtx, cancel := context.WithTimeout(ctx, q.wait)
	defer cancel()
	since := q.since
	opts.Limit = store.MaxLimit
	for {
		cl, err := st.Changes(ctx, since, opts)
		switch {
		case errors.Is(err, store.ErrExpired):
			return nil, HTTPError{Status: http.StatusGone, Code: CodeExpired,
				Msg: fmt.Sprintf("revision %d is too old; list again", q.since), Err: err}
		case errors.Is(err, store.ErrInvalid):
			return nil, HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Msg: "invalid since", Err: err}
		case err != nil:
			return nil, internal(fmt.Errorf("changes since %d: %w", since, err))
		}
		if cl.More || len(cl.Sites)+len(cl.Shards)+len(cl.Removed) > 0 {
			return cl, nil
		}
		since = cl.Revision
		wait := hub.Wait
		if opts.Shard != "" {
			// An agent wakes only when its own shard's sites changed.
			wait = func(ctx context.Context, after int64) (int64, error) {
				return hub.WaitKey(ctx, after, opts.Shard)
			}
		}
		if _, err := wait(waitCtx, since); err != nil {
			// The wait ran out (or the client left): nothing changed.
			return cl, nil
		}
	}
}

func (s *server) agentSites(c *call) (response, error) {
	q, err := parseWatchQuery(c.r)
	if err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	if q.list {
		sites, rev, err := s.listAllSites(c.r.Context(), shard)
		if err != nil {
			return response{}, internal(err)
		}
		for i := range sites {
			sites[i] = *forAgent(&sites[i])
		}
		return response{status: http.StatusOK, body: WatchSitesResponse{Sites: sites, Revision: rev}}, nil
	}
	cl, err := s.longPoll(c, q, store.ChangeOptions{Shard: shard})
	if err != nil {
		return response{}, err
	}
	out := WatchSitesResponse{Sites: make([]site.Site, 0, len(cl.Sites)), Removed: cl.Removed, Revision: cl.Revision, More: cl.More}
	for i := range cl.Sites {
		out.Sites = append(out.Sites, *forAgent(&cl.Sites[i]))
	}
	return response{status: http.StatusOK, body: out}, nil
}

func (s *server) watchRoutes(c *call) (response, error) {
	q, err := parseWatchQuery(c.r)
	if err != nil {
		return response{}, err
	}
	src := RouteSource{Store: s.cfg.Store, Hub: s.cfg.Hub}
	if q.list {
		return src.streamRoutes(c.r.Context())
	}
	c.longPoll = q.wait > 0
	out, err := src.watch(c.r.Context(), q)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: *out}, nil
}

// edgeSite is a site as forEdge leaves it, in the compact form the route
// list is streamed in: the same JSON names as site.Site, with every zero
// value left out (forEdge's copy is mostly zeros: about 650 bytes a site
// as a site.Site, 250 like this). It decodes into exactly the site.Site
// forEdge made; TestRoutesListStreamed holds it to that.
type edgeSite struct {
	Metadata struct {
		Name              string     `json:"name"`
		UID               string     `json:"uid"`
		Generation        int64      `json:"generation,omitempty"`
		DeletionRequested *time.Time `json:"deletion_requested,omitempty"`
		ResourceVersion   int64      `json:"resource_version,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Domain        string     `json:"domain,omitempty"`
		Suspended     bool       `json:"suspended,omitempty"`
		Cache         site.Cache `json:"cache,omitzero"`
		WAF           site.WAF   `json:"waf,omitzero"`
		HTTPSRedirect bool       `json:"https_redirect,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase      site.Phase       `json:"phase,omitempty"`
		Shard      string           `json:"shard,omitempty"`
		Conditions []site.Condition `json:"conditions,omitempty"`
		Endpoint   string           `json:"endpoint,omitempty"`
		Docroot    string           `json:"docroot,omitempty"`
	} `json:"status"`
	Move *site.Move `json:"move,omitempty"`
}

// compactEdgeSite is s (a forEdge copy) as an edgeSite.
func compactEdgeSite(s *site.Site) *edgeSite {
	var e edgeSite
	e.Metadata.Name, e.Metadata.UID, e.Metadata.Generation = s.Metadata.Name, s.Metadata.UID, s.Metadata.Generation
	e.Metadata.DeletionRequested, e.Metadata.ResourceVersion = s.Metadata.DeletionRequested, s.Metadata.ResourceVersion
	e.Spec.Domain, e.Spec.Suspended, e.Spec.Cache, e.Spec.WAF = s.Spec.Domain, s.Spec.Suspended, s.Spec.Cache, s.Spec.WAF
	e.Spec.HTTPSRedirect = s.Spec.HTTPSRedirect
	e.Status.Phase, e.Status.Shard, e.Status.Conditions = s.Status.Phase, s.Status.Shard, s.Status.Conditions
	e.Status.Endpoint, e.Status.Docroot = s.Status.Endpoint, s.Status.Docroot
	e.Move = s.Move
	return &e
}

// streamRoutes answers the list of GET /v1/routes as a stream: the first
// page of sites (its revision) and the shards are read before the answer
// starts, so their errors are statuses; then each page of sites is encoded
// item by item, compact (edgeSite: no zero values), as it is read. The
// server never holds more than one page (store.MaxLimit sites), however
// many sites there are, and the edge decodes while later pages are read. A store error after the first
// byte aborts the connection (response.stream): the edge sees a broken
// transfer and lists again. The document decodes into the same
// RoutesResponse as before, its fields in the order revision, shards, sites.
func (r RouteSource) streamRoutes(ctx context.Context) (response, error) {
	count, err := r.Store.CountAllSites(ctx)
	if err != nil {
		return response{}, internal(err)
	}
	opts := store.ListOptions{Limit: store.MaxLimit}
	page, err := r.Store.ListSites(ctx, opts)
	if err != nil {
		return response{}, internal(fmt.Errorf("list sites: %w", err))
	}
	// Shards are read after the sites' revision: later changes to them
	// come again through the watch.
	shards, err := r.Store.ListShards(ctx)
	if err != nil {
		return response{}, internal(fmt.Errorf("list shards: %w", err))
	}
	if shards == nil {
		shards = []store.Shard{}
	}
	return response{contentType: "application/json", stream: func(w http.ResponseWriter) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		fmt.Fprintf(bw, `{"revision":%d,"site_count":%d,"shards":`, page.Revision, count)
		if err := enc.Encode(shards); err != nil {
			return fmt.Errorf("encode shards: %w", err)
		}
		bw.WriteString(`,"sites":[`)
		first := true
		for {
			for i := range page.Items {
				if !first {
					bw.WriteByte(',')
				}
				first = false
				if err := enc.Encode(compactEdgeSite(forEdge(&page.Items[i]))); err != nil {
					return fmt.Errorf("encode site: %w", err)
				}
			}
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
			if page, err = r.Store.ListSites(ctx, opts); err != nil {
				return fmt.Errorf("list sites: %w", err)
			}
		}
		bw.WriteString("]}\n")
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write routes: %w", err)
		}
		return nil
	}}, nil
}

// RouteSource is the routing table read from the store, exactly as
// GET /v1/routes serves it (sites as edges see them): an edge in the
// control plane's process (`aipress up`) follows it with the same watch
// (agent.Routes) that an edge elsewhere runs over the API. Errors are
// HTTPErrors; an expired revision is a 410 wrapping store.ErrExpired.
type RouteSource struct {
	Store store.Store
	// Hub wakes the watch when the store's revision moves; the process
	// must Notify it after its writes (as for Config.Hub).
	Hub *revhub.Hub
}

// Routes lists every site and shard, and the revision to watch from.
func (r RouteSource) Routes(ctx context.Context) (*RoutesResponse, error) {
	sites, rev, err := listAllSites(ctx, r.Store, "")
	if err != nil {
		return nil, internal(err)
	}
	// Shards are read after the sites' revision: later changes to
	// them come again through the watch.
	shards, err := r.Store.ListShards(ctx)
	if err != nil {
		return nil, internal(fmt.Errorf("list shards: %w", err))
	}
	for i := range sites {
		sites[i] = *forEdge(&sites[i])
	}
	if shards == nil {
		shards = []store.Shard{}
	}
	return &RoutesResponse{SiteCount: len(sites), Sites: sites, Shards: shards, Revision: rev}, nil
}

// WatchRoutes returns the changes of sites and shards after since as soon
// as there are any, or none at the current revision when wait runs out
// (at most MaxWatchWait; 0: DefaultWatchWait).
func (r RouteSource) WatchRoutes(ctx context.Context, since int64, wait time.Duration) (*RoutesResponse, error) {
	if wait <= 0 {
		wait = DefaultWatchWait
	}
	return r.watch(ctx, watchQuery{since: since, wait: min(wait, MaxWatchWait)})
}

func (r RouteSource) watch(ctx context.Context, q watchQuery) (*RoutesResponse, error) {
	cl, err := longPoll(ctx, r.Store, r.Hub, q, store.ChangeOptions{})
	if err != nil {
		return nil, err
	}
	out := RoutesResponse{Sites: make([]site.Site, 0, len(cl.Sites)), Shards: cl.Shards, Removed: cl.Removed, Revision: cl.Revision, More: cl.More}
	if out.Shards == nil {
		out.Shards = []store.Shard{}
	}
	for i := range cl.Sites {
		out.Sites = append(out.Sites, *forEdge(&cl.Sites[i]))
	}
	return &out, nil
}
