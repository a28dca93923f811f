package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// SitesConfig configures Sites.
type SitesConfig struct {
	// Client calls the control plane with the shard's token (role shard).
	Client *apiclient.Client
	// Shard is the shard's name, the token's subject.
	Shard string
	// Wake is called (it must not block) whenever the shard's sites
	// changed, so the shard converges at once. May be nil.
	Wake func()
	// Wait is the long poll's wait (default DefaultWait).
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after an error
	// (defaults DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Sites is shard.Sites over the agent protocol. Run keeps a local copy of
// the shard's sites current; ListSites answers from it once the first list
// arrived. Reports are sent only when they change something.
type Sites struct {
	cfg SitesConfig
	log *slog.Logger

	synced     chan struct{}
	syncedOnce sync.Once

	mu    sync.Mutex
	sites map[string]site.Site
	rev   int64
}

var _ shard.Sites = (*Sites)(nil)

// NewSites returns a Sites; call Run to fill and follow it.
func NewSites(cfg SitesConfig) *Sites {
	defaults(&cfg.Wait, &cfg.MinBackoff, &cfg.MaxBackoff, &cfg.Logger)
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	return &Sites{cfg: cfg, log: cfg.Logger, synced: make(chan struct{}), sites: map[string]site.Site{}}
}

// Run lists the shard's sites and follows their changes until ctx is done.
func (s *Sites) Run(ctx context.Context) error {
	return follower{list: s.list, watch: s.watch, minBackoff: s.cfg.MinBackoff, maxBackoff: s.cfg.MaxBackoff, log: s.log}.run(ctx)
}

// Synced is closed once the first list arrived.
func (s *Sites) Synced() <-chan struct{} { return s.synced }

// Revision is the revision the local copy is at.
func (s *Sites) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

func (s *Sites) list(ctx context.Context) error {
	resp, err := s.cfg.Client.AgentSites(ctx)
	if err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	s.mu.Lock()
	s.sites = make(map[string]site.Site, len(resp.Sites))
	for _, st := range resp.Sites {
		s.sites[st.Metadata.Name] = st
	}
	s.rev = resp.Revision
	s.mu.Unlock()
	s.log.Debug("listed sites", "sites", len(resp.Sites), "revision", resp.Revision)
	s.syncedOnce.Do(func() { close(s.synced) })
	s.cfg.Wake()
	return nil
}

func (s *Sites) watch(ctx context.Context) error {
	since := s.Revision()
	resp, err := s.cfg.Client.WatchAgentSites(ctx, since, s.cfg.Wait)
	if err != nil {
		return fmt.Errorf("watch sites since %d: %w", since, err)
	}
	s.mu.Lock()
	changed := applySites(s.sites, resp.Sites)
	changed = applyTombstones(s.sites, resp.Removed, false) || changed
	s.rev = resp.Revision
	s.mu.Unlock()
	if changed {
		s.cfg.Wake()
	}
	return nil
}

// applySites stores each site that is newer than (or another incarnation
// of) the one known, and reports whether any was.
func applySites(m map[string]site.Site, sites []site.Site) bool {
	changed := false
	for _, st := range sites {
		cur, ok := m[st.Metadata.Name]
		if ok && cur.Metadata.UID == st.Metadata.UID && cur.Metadata.ResourceVersion >= st.Metadata.ResourceVersion {
			continue
		}
		m[st.Metadata.Name] = st
		changed = true
	}
	return changed
}

// applyTombstones drops the sites the tombstones name (same UID, last seen
// at or before the tombstone: the write that made the site leave takes the
// tombstone's revision) and reports whether any was dropped; onlyDeleted
// keeps sites whose tombstone only says they left a shard.
func applyTombstones(m map[string]site.Site, removed []store.Tombstone, onlyDeleted bool) bool {
	changed := false
	for _, t := range removed {
		if onlyDeleted && !t.Deleted {
			continue
		}
		cur, ok := m[t.Name]
		if ok && cur.Metadata.UID == t.UID && cur.Metadata.ResourceVersion <= t.Revision {
			delete(m, t.Name)
			changed = true
		}
	}
	return changed
}

// ListSites returns the shard's sites from the local copy, ordered by name,
// waiting for the first list.
func (s *Sites) ListSites(ctx context.Context, shardName string) ([]site.Site, error) {
	if shardName != s.cfg.Shard {
		return nil, fmt.Errorf("list sites: this agent serves shard %q, not %q", s.cfg.Shard, shardName)
	}
	select {
	case <-s.synced:
	case <-ctx.Done():
		return nil, fmt.Errorf("list sites: waiting for the first list: %w", ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]site.Site, 0, len(s.sites))
	for _, name := range slices.Sorted(maps.Keys(s.sites)) {
		out = append(out, cloneSite(s.sites[name]))
	}
	return out, nil
}

// cached returns a copy of the named site if it is known with that UID.
func (s *Sites) cached(name, uid string) (site.Site, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sites[name]
	if !ok || st.Metadata.UID != uid {
		return site.Site{}, false
	}
	return cloneSite(st), true
}

// remember stores a site the control plane answered a report with, or
// drops it if the report made it leave the shard (a finished move).
func (s *Sites) remember(st *site.Site) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(st.Shards(), s.cfg.Shard) {
		if cur, ok := s.sites[st.Metadata.Name]; ok && cur.Metadata.UID == st.Metadata.UID {
			delete(s.sites, st.Metadata.Name)
		}
		return
	}
	applySites(s.sites, []site.Site{*st})
}

// UpdateStatus applies fn to the known status of the site and reports the
// result if fn changed it. A 409 or 404 means the site changed under us
// (moved, re-created, deleted): the report is dropped and the watch brings
// the new state.
func (s *Sites) UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error {
	cur, ok := s.cached(name, uid)
	if !ok {
		return nil
	}
	next := cloneSite(cur).Status
	fn(&next)
	if same, err := jsonEqual(cur.Status, next); err != nil || same {
		return err
	}
	got, err := s.cfg.Client.ReportStatus(ctx, name, uid, next)
	if apiclient.IsConflict(err) || apiclient.IsNotFound(err) {
		s.log.Debug("status report refused; the site changed", "site", name, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("report status of %s: %w", name, err)
	}
	s.remember(got)
	return nil
}

// UpdateMove applies fn to the known move of the site and reports the result
// if fn changed it; the control plane keeps only the fields this shard may
// report and advances the move.
func (s *Sites) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	cur, ok := s.cached(name, uid)
	if !ok || cur.Move == nil {
		return nil
	}
	next := *cur.Move
	fn(&next)
	if same, err := jsonEqual(cur.Move, &next); err != nil || same {
		return err
	}
	got, err := s.cfg.Client.ReportMove(ctx, name, uid, next)
	if apiclient.IsConflict(err) || apiclient.IsNotFound(err) {
		s.log.Debug("move report refused; the site changed", "site", name, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("report move of %s: %w", name, err)
	}
	s.remember(got)
	return nil
}

// Finalize removes the record of a site whose teardown is done.
func (s *Sites) Finalize(ctx context.Context, name, uid string) error {
	err := s.cfg.Client.Finalize(ctx, name, uid)
	if apiclient.IsConflict(err) || apiclient.IsNotFound(err) {
		s.log.Debug("finalize refused; the site changed", "site", name, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize %s: %w", name, err)
	}
	s.mu.Lock()
	if st, ok := s.sites[name]; ok && st.Metadata.UID == uid {
		delete(s.sites, name)
	}
	s.mu.Unlock()
	return nil
}

// cloneSite copies what a caller could modify in place.
func cloneSite(s site.Site) site.Site {
	c := s
	c.Metadata.Labels = maps.Clone(s.Metadata.Labels)
	c.Status.Conditions = slices.Clone(s.Status.Conditions)
	if s.Move != nil {
		m := *s.Move
		c.Move = &m
	}
	return c
}

func jsonEqual(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	return string(ja) == string(jb), nil
}
