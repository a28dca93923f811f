package platform

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// routeSync rebuilds the edge's routing table from the store whenever the
// store's revision moves (checked on wake and every 250 ms). When a site
// disappears or is re-created under the same name (a new UID), its cached
// pages are purged, so a new site never shows its predecessor's pages.
type routeSync struct {
	st     store.Store
	log    *slog.Logger
	target *edge.Server
	purger edge.Purger       // nil: no page cache
	uids   map[string]string // site name → UID at the last sync
	kick   chan struct{}
	rev    int64
}

func newRouteSync(st store.Store, log *slog.Logger) *routeSync {
	return &routeSync{st: st, log: log, kick: make(chan struct{}, 1), rev: -1}
}

func (r *routeSync) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *routeSync) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("routing table sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-t.C:
		}
	}
}

func (r *routeSync) sync(ctx context.Context) error {
	head, err := r.st.ListSites(ctx, store.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	if head.Revision == r.rev {
		return nil
	}
	shards, err := r.st.ListShards(ctx)
	if err != nil {
		return err
	}
	var sites []site.Site
	opts := store.ListOptions{Limit: 1000}
	rev := int64(-1)
	for {
		page, err := r.st.ListSites(ctx, opts)
		if err != nil {
			return err
		}
		if rev < 0 {
			rev = page.Revision
		}
		sites = append(sites, page.Items...)
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	routes, roots := buildRoutes(sites, shards)
	r.target.AddAllowedSymlinkRoots(roots...)
	uids := make(map[string]string, len(sites))
	for i := range sites {
		uids[sites[i].Metadata.Name] = sites[i].Metadata.UID
	}
	r.target.SetTable(edge.NewTable(routes))
	if r.purger != nil {
		for name, uid := range r.uids {
			if uids[name] != uid {
				n := r.purger.PurgeSite(name)
				r.log.Info("purged the page cache of a deleted or re-created site", "site", name, "pages", n)
			}
		}
	}
	r.uids = uids
	r.rev = rev
	return nil
}

// buildRoutes derives the edge's routes from the sites and the shards: a
// site whose shard is Unhealthy or Degraded is ShardDown (503, Retry-After) unless it is
// suspended anyway. It also returns every shard's symlink roots, which the
// edge must allow to serve the shards' shared WordPress cores.
func buildRoutes(sites []site.Site, shards []store.Shard) ([]edge.Route, []string) {
	down := map[string]bool{}
	var roots []string
	for _, sh := range shards {
		if sh.Phase == store.ShardUnhealthy || sh.Phase == store.ShardDegraded {
			down[sh.Name] = true
		}
		roots = append(roots, sh.Roots...)
	}
	routes := make([]edge.Route, 0, len(sites))
	for i := range sites {
		rt := edge.RouteForSite(&sites[i])
		if down[sites[i].Status.Shard] && rt.State != edge.Suspended {
			rt.State = edge.ShardDown
		}
		routes = append(routes, rt)
	}
	return routes, roots
}

// atomicHandler is an http.Handler that can be replaced while serving.
type atomicHandler struct{ h atomic.Pointer[http.Handler] }

func (a *atomicHandler) set(h http.Handler) { a.h.Store(&h) }

func (a *atomicHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*a.h.Load()).ServeHTTP(w, r)
}

// notifyingSites wakes the route sync whenever the shard reports, so a site
// is routed the moment it is ready rather than at the next tick.
type notifyingSites struct {
	shard.Sites
	after func()
}

func (n notifyingSites) UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error {
	err := n.Sites.UpdateStatus(ctx, name, uid, fn)
	n.after()
	return err
}

func (n notifyingSites) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	err := n.Sites.UpdateMove(ctx, name, uid, fn)
	n.after()
	return err
}

func (n notifyingSites) Finalize(ctx context.Context, name, uid string) error {
	err := n.Sites.Finalize(ctx, name, uid)
	n.after()
	return err
}
