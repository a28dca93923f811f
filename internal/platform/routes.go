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
// store's revision moves (checked on wake and every 250 ms).
type routeSync struct {
	st     store.Store
	log    *slog.Logger
	target *edge.Server
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
	var routes []edge.Route
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
		for i := range page.Items {
			routes = append(routes, edge.RouteForSite(&page.Items[i]))
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	r.target.SetTable(edge.NewTable(routes))
	r.rev = rev
	return nil
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

func (n notifyingSites) Finalize(ctx context.Context, name, uid string) error {
	err := n.Sites.Finalize(ctx, name, uid)
	n.after()
	return err
}
