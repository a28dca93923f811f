package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Snapshot is a consistent view of the routing table: every site and
// every shard, as of Revision.
type Snapshot struct {
	Sites    []site.Site   // ordered by name
	Shards   []store.Shard // ordered by name
	Revision int64
}

// RouteSource is where Routes reads the routing table: the control
// plane's API (*apiclient.Client with an edge or admin token, GET
// /v1/routes) or, in the control plane's own process, the store
// (api.RouteSource). An expired revision is an error for which
// apiclient.IsExpired or errors.Is(err, store.ErrExpired) holds.
type RouteSource interface {
	// Routes lists every site and shard, and the revision to watch from.
	Routes(ctx context.Context) (*apiclient.RoutesResponse, error)
	// WatchRoutes returns the changes after since, waiting up to wait
	// for some.
	WatchRoutes(ctx context.Context, since int64, wait time.Duration) (*apiclient.RoutesResponse, error)
}

// RoutesConfig configures Routes.
type RoutesConfig struct {
	// Source is where the routing table comes from.
	Source RouteSource
	// OnChange receives a snapshot after the first list and after every
	// batch of changes (a watch answer and the ones its More asked for);
	// it runs on Run's goroutine and should not block for long.
	OnChange func(Snapshot)
	// Wait is the long poll's wait (default DefaultWait).
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after an error.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Routes is an edge's watch of the routing table: over GET /v1/routes for
// an edge of its own (`aipress edge`), over the store for the edge inside
// `aipress up` — the same code either way.
type Routes struct {
	cfg RoutesConfig
	log *slog.Logger

	mu     sync.Mutex
	sites  map[string]site.Site
	shards map[string]store.Shard
	rev    int64
}

// NewRoutes returns a Routes; Run fills and follows it.
func NewRoutes(cfg RoutesConfig) *Routes {
	defaults(&cfg.Wait, &cfg.MinBackoff, &cfg.MaxBackoff, &cfg.Logger)
	if cfg.OnChange == nil {
		cfg.OnChange = func(Snapshot) {}
	}
	return &Routes{cfg: cfg, log: cfg.Logger, sites: map[string]site.Site{}, shards: map[string]store.Shard{}}
}

// Run lists the routing table and follows its changes until ctx is done.
func (r *Routes) Run(ctx context.Context) error {
	return follower{list: r.list, watch: r.watch, minBackoff: r.cfg.MinBackoff, maxBackoff: r.cfg.MaxBackoff, log: r.log}.run(ctx)
}

// Snapshot returns the current view.
func (r *Routes) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

func (r *Routes) snapshotLocked() Snapshot {
	snap := Snapshot{Revision: r.rev, Sites: make([]site.Site, 0, len(r.sites)), Shards: make([]store.Shard, 0, len(r.shards))}
	for _, name := range slices.Sorted(maps.Keys(r.sites)) {
		snap.Sites = append(snap.Sites, cloneSite(r.sites[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(r.shards)) {
		snap.Shards = append(snap.Shards, r.shards[name])
	}
	return snap
}

func (r *Routes) list(ctx context.Context) error {
	resp, err := r.cfg.Source.Routes(ctx)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	r.mu.Lock()
	r.sites = make(map[string]site.Site, len(resp.Sites))
	for _, st := range resp.Sites {
		r.sites[st.Metadata.Name] = st
	}
	r.shards = make(map[string]store.Shard, len(resp.Shards))
	for _, sh := range resp.Shards {
		r.shards[sh.Name] = sh
	}
	r.rev = resp.Revision
	snap := r.snapshotLocked()
	r.mu.Unlock()
	r.cfg.OnChange(snap)
	return nil
}

// watch follows one batch of changes (through every More) and then
// reports a snapshot if anything changed.
func (r *Routes) watch(ctx context.Context) error {
	changed := false
	for {
		r.mu.Lock()
		since := r.rev
		r.mu.Unlock()
		resp, err := r.cfg.Source.WatchRoutes(ctx, since, r.cfg.Wait)
		if err != nil {
			if changed {
				r.cfg.OnChange(r.Snapshot())
			}
			return fmt.Errorf("watch routes since %d: %w", since, err)
		}
		r.mu.Lock()
		changed = applySites(r.sites, resp.Sites) || changed
		// Only a deletion removes a site from the table; a site that left
		// a shard comes in Sites with its new shard.
		changed = applyTombstones(r.sites, resp.Removed, true) || changed
		for _, sh := range resp.Shards {
			if cur, ok := r.shards[sh.Name]; ok && cur.ResourceVersion >= sh.ResourceVersion {
				continue
			}
			r.shards[sh.Name] = sh
			changed = true
		}
		r.rev = resp.Revision
		r.mu.Unlock()
		if !resp.More {
			break
		}
	}
	if changed {
		r.cfg.OnChange(r.Snapshot())
	}
	return nil
}
