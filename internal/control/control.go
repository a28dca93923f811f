// Package control is the control plane's periodic work: the loops that only
// the elected leader runs (package leader decides which replica that is).
//
// A Controller keeps a placement.Index of every shard and every placed site
// in memory — built once from the store, then kept current by following the
// store's change feed (store.Store.Changes) — and on each pass:
//
//   - places new (unplaced) sites on shards, asking a placement.Provider
//     for a new shard when every shard is full (placement.PlaceOrGrow);
//   - judges shard health from heartbeats: a Ready shard that missed them for
//     HeartbeatTimeout becomes Unhealthy (the edge then answers 503 for its
//     sites, and each site gets a ShardReachable=False condition), and
//     becomes Ready again as soon as it beats; a provider that observes its
//     shards (ShardWatcher: Kubernetes) decides Pending and Degraded;
//   - deletes the infrastructure of shards whose record was deleted
//     (ShardLister);
//   - drains shards marked Draining, a few moves at a time (site.Move; the
//     shards do the copying, see package shard);
//   - prunes the store's tombstones older than TombstoneRetention.
//
// Each pass is idempotent and works from the store, so a new leader simply
// starts over; nothing here reaches into a shard.
//
// Placement constraints come from site labels: "region", "zone" and "tier"
// must match the shard's labels of the same name; "tenant" names the owner
// whose sites are spread over shards.
package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// ConditionShardReachable is the site condition the controller sets from its
// shard's health.
const ConditionShardReachable = "ShardReachable"

// Site labels the controller reads.
const (
	LabelTenant = "tenant"
)

// ConstraintLabels are the site labels that must match the shard's.
var constraintLabels = []string{"region", "zone", "tier"}

// Config configures a Controller. Store is required.
type Config struct {
	Store store.Store
	// Provider creates a shard when every shard is full; nil: sites wait
	// unplaced until an operator adds a shard.
	Provider placement.Provider
	// Placer is the placement policy (headroom).
	Placer placement.Placer
	Logger *slog.Logger
	Clock  func() time.Time
	// Interval is how often a pass runs when nothing wakes the controller
	// (default 250ms; a pass with nothing new costs one indexed query).
	Interval time.Duration
	// HeartbeatTimeout is how long a shard may go without a heartbeat
	// before it is Unhealthy (default 15s).
	HeartbeatTimeout time.Duration
	// MovesPerShard caps the moves out of one draining shard at a time
	// (default 2).
	MovesPerShard int
	// TombstoneRetention is how long tombstones are kept for watchers that
	// were away (default 10 minutes).
	TombstoneRetention time.Duration
	// CollectInterval is how often the infrastructure of deleted shards is
	// looked for (only for a provider that is a ShardLister; default 10s).
	CollectInterval time.Duration
	// Notify is called after the controller wrote to the store, so local
	// watchers wake at once. May be nil.
	Notify func()
}

// Controller runs the leader's loops. Create it with New; Run it while
// leading.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu         sync.Mutex // guards the fields below; one Run at a time
	idx        *placement.Index
	rev        int64 // the change feed's position; -1: rebuild
	lastHealth time.Time
	// lastCollect is when collectShards last ran.
	lastCollect time.Time
	// lastHandOver is when handOverCodeJobs last ran.
	lastHandOver time.Time
	revs         []revAt // recent revisions by time, for tombstone pruning
}

type revAt struct {
	at  time.Time
	rev int64
}

// New returns a Controller.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.MovesPerShard <= 0 {
		cfg.MovesPerShard = 2
	}
	if cfg.TombstoneRetention <= 0 {
		cfg.TombstoneRetention = 10 * time.Minute
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.CollectInterval <= 0 {
		cfg.CollectInterval = 10 * time.Second
	}
	return &Controller{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), rev: -1}
}

// Wake makes the next pass start now. It never blocks.
func (c *Controller) Wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run runs passes until ctx ends. Errors of a pass are logged and the pass
// retried; Run returns nil when ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev = -1 // a new term starts from the store
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	if w, ok := c.cfg.Provider.(ShardWatcher); ok {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := w.WatchShards(wctx, c.ReportShard); err != nil && wctx.Err() == nil {
				c.log.Error("watching the provider's shards stopped", "err", err)
			}
		}()
		defer func() { cancel(); <-done }()
	}
	for {
		if err := c.pass(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("control pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		case <-t.C:
		}
	}
}

// Pass runs one pass (for tests and benchmarks; Run calls it in a loop).
func (c *Controller) Pass(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pass(ctx)
}

func (c *Controller) pass(ctx context.Context) error {
	changed, shardsChanged, err := c.sync(ctx)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	var errs []error
	now := c.cfg.Clock()
	// Health, drains and pruning look at shards and time: a burst of site
	// writes (every create wakes the controller) need not repeat them.
	if now.Sub(c.lastHealth) >= time.Second || shardsChanged {
		c.lastHealth = now
		errs = append(errs, c.checkHealth(ctx, now))
		errs = append(errs, c.drain(ctx))
		errs = append(errs, c.prune(ctx, now))
	}
	if now.Sub(c.lastCollect) >= c.cfg.CollectInterval {
		c.lastCollect = now
		errs = append(errs, c.collectShards(ctx))
	}
	if changed {
		errs = append(errs, c.placePending(ctx))
	}
	if changed || now.Sub(c.lastHandOver) >= time.Second {
		c.lastHandOver = now
		errs = append(errs, c.handOverCodeJobs(ctx))
	}
	return errors.Join(errs...)
}

// handOverCodeJobs gives each Pending code job that has no shard (its
// site was not placed when the API created it) to its site's shard once
// the site is placed, and fails the ones whose site is gone. The API
// looks again after creating such a job, so this only finishes what a
// placement racing with it left.
func (c *Controller) handOverCodeJobs(ctx context.Context) error {
	l, err := c.cfg.Store.ListJobs(ctx, store.JobListOptions{Kind: store.JobCode, Phases: []store.JobPhase{store.JobPending},
		Limit: store.MaxLimit})
	if err != nil {
		return fmt.Errorf("list code jobs: %w", err)
	}
	var errs []error
	wrote := false
	for _, j := range l.Items {
		if j.Shard != "" {
			continue
		}
		st, err := c.cfg.Store.GetSite(ctx, j.Site)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			errs = append(errs, err)
			continue
		case err == nil && st.Metadata.UID == j.SiteUID && st.Status.Shard == "":
			continue // not placed yet
		}
		now := c.cfg.Clock().UTC()
		_, err = c.cfg.Store.UpdateJob(ctx, j.ID, func(cur *store.Job) error {
			if cur.Shard != "" || cur.Phase != store.JobPending {
				return nil
			}
			if st == nil || st.Metadata.UID != cur.SiteUID || st.Metadata.DeletionRequested != nil {
				cur.Phase, cur.Error, cur.FinishedAt = store.JobFailed, "the site was deleted before it was placed", &now
				return nil
			}
			cur.Shard = st.Status.Shard
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("hand over code job %s: %w", j.ID, err))
			continue
		}
		wrote = true
	}
	if wrote {
		c.cfg.Notify()
	}
	return errors.Join(errs...)
}

// sync brings the index up to date with the store: a full build at the
// start of a term (or when the feed expired), then the changes since.
// It reports whether anything changed, and whether shards did.
func (c *Controller) sync(ctx context.Context) (changed, shardsChanged bool, err error) {
	if c.rev < 0 {
		return true, true, c.rebuild(ctx)
	}
	for {
		cl, err := c.cfg.Store.Changes(ctx, c.rev, store.ChangeOptions{Limit: store.MaxLimit})
		if errors.Is(err, store.ErrExpired) {
			c.log.Info("change feed expired; rebuilding the placement index")
			return true, true, c.rebuild(ctx)
		}
		if err != nil {
			return changed, shardsChanged, err
		}
		for _, sh := range cl.Shards {
			c.applyShard(sh)
		}
		for _, tb := range cl.Removed {
			if tb.Deleted {
				c.idx.Unassign(tb.Name)
			}
		}
		for i := range cl.Sites {
			c.applySite(&cl.Sites[i])
		}
		changed = changed || len(cl.Shards)+len(cl.Sites)+len(cl.Removed) > 0
		shardsChanged = shardsChanged || len(cl.Shards) > 0
		c.rev = cl.Revision
		if !cl.More {
			return changed, shardsChanged, nil
		}
	}
}

func (c *Controller) rebuild(ctx context.Context) error {
	// The feed position is read first: whatever is written while the
	// index is built shows up again in the next sync (applying is
	// idempotent).
	head, err := c.cfg.Store.Changes(ctx, 1<<62, store.ChangeOptions{Limit: 1})
	if err != nil {
		return err
	}
	c.idx = placement.NewIndex(c.cfg.Placer)
	shards, err := c.cfg.Store.ListShards(ctx)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		c.applyShard(sh)
	}
	opts := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := c.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return err
		}
		for i := range page.Items {
			c.applySite(&page.Items[i])
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	c.rev = head.Revision
	return nil
}

// placementShard is what placement needs of a store shard.
func placementShard(sh store.Shard) placement.Shard {
	return placement.Shard{
		Name: sh.Name, Labels: sh.Labels, Capacity: sh.Capacity,
		Cordoned: sh.Cordoned, Draining: sh.Draining,
		Healthy:  sh.Phase == store.ShardReady,
		Starting: sh.Phase == store.ShardPending || sh.Phase == "",
	}
}

func (c *Controller) applyShard(sh store.Shard) {
	ps := placementShard(sh)
	if err := c.idx.Update(ps); errors.Is(err, placement.ErrUnknownShard) {
		_ = c.idx.Add(ps)
	}
}

// placedOn is the shard a site counts against: a move's target while the
// move is active (its room is reserved there), else its shard.
func placedOn(s *site.Site) string {
	if s.Move.Active() && s.Move.Phase != site.MoveAborting {
		return s.Move.Target
	}
	return s.Status.Shard
}

func (c *Controller) applySite(s *site.Site) {
	name := s.Metadata.Name
	want := placedOn(s)
	cur, ok := c.idx.ShardOf(name)
	switch {
	case want == "":
		if ok {
			c.idx.Unassign(name)
		}
	case !ok:
		if err := c.idx.Assign(name, s.Metadata.Labels[LabelTenant], want); err != nil {
			c.log.Warn("site on a shard the index does not know", "site", name, "shard", want, "err", err)
		}
	case cur != want:
		if err := c.idx.Move(name, want); err != nil {
			c.log.Warn("site moved to a shard the index does not know", "site", name, "shard", want, "err", err)
		}
	}
}

func request(s *site.Site) placement.Request {
	req := placement.Request{Site: s.Metadata.Name, Tenant: s.Metadata.Labels[LabelTenant]}
	for _, k := range constraintLabels {
		if v, ok := s.Metadata.Labels[k]; ok {
			if req.Constraints == nil {
				req.Constraints = map[string]string{}
			}
			req.Constraints[k] = v
		}
	}
	return req
}

var errSkip = errors.New("skip")

// placePending places every unplaced site. A site whose deletion was
// requested before it was placed is removed at once: no shard holds it.
func (c *Controller) placePending(ctx context.Context) error {
	var errs []error
	wrote := false
	defer func() {
		if wrote {
			c.cfg.Notify()
		}
	}()
	// Placed sites leave the unplaced set, so paging by name past each
	// page visits every site once even though the set shrinks meanwhile.
	opts := store.ListOptions{Unplaced: true, Limit: store.MaxLimit}
	for {
		page, err := c.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return err
		}
		// Choices are made in order (the index is the truth for
		// capacity) and written in batches, one transaction each.
		var batch []choice
		for i := range page.Items {
			s := &page.Items[i]
			if s.Metadata.DeletionRequested != nil {
				if err := c.cfg.Store.DeleteSite(ctx, s.Metadata.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
					errs = append(errs, err)
					continue
				}
				wrote = true
				continue
			}
			shard, err := c.choose(ctx, s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			batch = append(batch, choice{name: s.Metadata.Name, uid: s.Metadata.UID, shard: shard})
			if len(batch) == placementBatch {
				placed, err := c.record(ctx, batch)
				wrote, errs = wrote || placed, append(errs, err)
				batch = batch[:0]
			}
		}
		placed, err := c.record(ctx, batch)
		wrote, errs = wrote || placed, append(errs, err)
		if page.Continue == "" {
			return errors.Join(errs...)
		}
		opts.Continue = page.Continue
	}
}

// placementBatch is how many placements one transaction writes at most: a
// write transaction holds up the API's writes meanwhile (SQLite has one
// writer; PostgreSQL serialises revisions).
const placementBatch = 100

// choice is a site's place the index chose.
type choice struct{ name, uid, shard string }

// choose chooses (or grows) a shard for s in the index, which records the
// site there at once.
func (c *Controller) choose(ctx context.Context, s *site.Site) (string, error) {
	req := request(s)
	var shard string
	var err error
	if c.cfg.Provider != nil {
		shard, err = placement.PlaceOrGrow(ctx, c.idx, c.cfg.Provider, req)
	} else {
		shard, err = c.idx.Place(req)
	}
	if err != nil {
		return "", fmt.Errorf("place %s: %w", s.Metadata.Name, err)
	}
	return shard, nil
}

// record writes the choices on their sites, in one transaction, except on
// a site that changed meanwhile (deleted and created again, or placed by
// someone else): the index forgets those, and the next sync sees what
// happened instead. It reports whether it wrote any.
func (c *Controller) record(ctx context.Context, batch []choice) (bool, error) {
	if len(batch) == 0 {
		return false, nil
	}
	byName := make(map[string]choice, len(batch))
	names := make([]string, len(batch))
	for i, ch := range batch {
		byName[ch.name], names[i] = ch, ch.name
	}
	siteErrs, err := c.cfg.Store.UpdateSites(ctx, names, func(cur *site.Site) error {
		ch := byName[cur.Metadata.Name]
		if cur.Metadata.UID != ch.uid || cur.Status.Shard != "" {
			return errSkip
		}
		cur.Status.Shard = ch.shard
		return nil
	})
	if err != nil {
		for _, ch := range batch {
			c.idx.Unassign(ch.name)
		}
		return false, fmt.Errorf("place %d sites: %w", len(batch), err)
	}
	var errs []error
	placed := false
	for i, ch := range batch {
		switch err := siteErrs[i]; {
		case err == nil:
			placed = true
			c.log.Info("placed site", "site", ch.name, "shard", ch.shard)
		case errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound):
			c.idx.Unassign(ch.name)
		default:
			c.idx.Unassign(ch.name)
			errs = append(errs, fmt.Errorf("place %s on %s: %w", ch.name, ch.shard, err))
		}
	}
	if placed {
		c.cfg.Notify() // agents learn of their new sites now, not after the pass
	}
	return placed, errors.Join(errs...)
}

// checkHealth judges every shard's Phase (see judge) and mirrors a change
// onto its sites' ShardReachable condition.
func (c *Controller) checkHealth(ctx context.Context, now time.Time) error {
	shards, err := c.cfg.Store.ListShards(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sh := range shards {
		phase, reason := c.judge(sh, now)
		if phase == sh.Phase {
			continue
		}
		updated, err := c.cfg.Store.UpdateShard(ctx, sh.Name, func(cur *store.Shard) error {
			cur.Phase, cur.PhaseReason = phase, reason
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", sh.Name, err))
			continue
		}
		c.applyShard(*updated)
		c.log.Warn("shard health changed", "shard", sh.Name, "phase", phase, "reason", reason)
		errs = append(errs, c.markSites(ctx, sh.Name, phase == store.ShardReady, reason, now))
		c.cfg.Notify()
	}
	return errors.Join(errs...)
}

// judge returns the Phase shard sh should have, and why.
//
// Without a provider's observation (ProviderPhase empty: local shards and
// shards that registered on their own) heartbeats decide: a shard that beat
// within HeartbeatTimeout is Ready, a Ready one that stopped is Unhealthy,
// anything else keeps its phase. With one, the provider's Pending or
// Degraded wins (its pod is not ready: no new sites), and a provider-Ready
// shard is Ready unless its heartbeats, once started, stopped (Unhealthy).
// A Kubernetes shard's pod is ready only once its agent converged and
// registered, so it needs no heartbeat to become Ready.
func (c *Controller) judge(sh store.Shard, now time.Time) (store.ShardPhase, string) {
	fresh := sh.LastHeartbeat != nil && now.Sub(*sh.LastHeartbeat) < c.cfg.HeartbeatTimeout
	stale := func() string {
		return fmt.Sprintf("no heartbeat for %s", now.Sub(*sh.LastHeartbeat).Round(time.Second))
	}
	switch sh.ProviderPhase {
	case store.ShardPending, store.ShardDegraded:
		return sh.ProviderPhase, sh.ProviderReason
	case store.ShardReady:
		if sh.LastHeartbeat != nil && !fresh {
			return store.ShardUnhealthy, stale()
		}
		return store.ShardReady, "provider reports ready"
	}
	switch {
	case fresh && sh.Phase != store.ShardReady:
		return store.ShardReady, "heartbeating"
	case !fresh && sh.Phase == store.ShardReady:
		return store.ShardUnhealthy, stale()
	}
	return sh.Phase, sh.PhaseReason
}

// ReportShard records what a provider observed of a shard (see
// ShardWatcher) in the store and wakes the controller; the next pass
// derives the shard's Phase from it. Unchanged reports write nothing.
func (c *Controller) ReportShard(ctx context.Context, st ShardStatus) error {
	changed := false
	_, err := c.cfg.Store.UpdateShard(ctx, st.Name, func(cur *store.Shard) error {
		if cur.ProviderPhase == st.Phase && cur.ProviderReason == st.Reason {
			return errSkip
		}
		cur.ProviderPhase, cur.ProviderReason = st.Phase, st.Reason
		changed = true
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report shard %s: %w", st.Name, err)
	}
	if changed {
		c.log.Info("provider reports shard", "shard", st.Name, "phase", st.Phase, "reason", st.Reason)
		c.Wake()
	}
	return nil
}

// collectShards deletes, through the provider, the shards whose
// infrastructure exists but whose store record is gone (an operator ran
// `aipress shard delete`, which the API refuses while the shard holds
// sites). The provider's list is read before the store's: a shard being
// created has its record written before its infrastructure, so it is never
// taken for an orphan.
func (c *Controller) collectShards(ctx context.Context) error {
	sp, ok := c.cfg.Provider.(ShardProvider)
	lister, ok2 := c.cfg.Provider.(ShardLister)
	if !ok || !ok2 {
		return nil
	}
	names, err := lister.ListShards(ctx)
	if err != nil {
		return fmt.Errorf("list the provider's shards: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	shards, err := c.cfg.Store.ListShards(ctx)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(shards))
	for _, sh := range shards {
		known[sh.Name] = true
	}
	var errs []error
	for _, n := range names {
		if known[n] {
			continue
		}
		c.log.Info("deleting the infrastructure of a deleted shard", "shard", n, "provider", sp.Kind())
		if err := sp.DeleteShard(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("delete shard %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// markSites sets the ShardReachable condition of the sites on shard.
func (c *Controller) markSites(ctx context.Context, shard string, up bool, reason string, now time.Time) error {
	status, why := "True", "ShardHeartbeating"
	if !up {
		status, why = "False", "ShardUnhealthy"
	}
	opts := store.ListOptions{Shard: shard, Limit: store.MaxLimit}
	var errs []error
	for {
		page, err := c.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return err
		}
		for _, s := range page.Items {
			if s.Status.Shard != shard {
				continue
			}
			if up && s.Status.Condition(ConditionShardReachable) == nil {
				// Nothing to clear, as mutate would find (only this
				// controller writes the condition): no write transaction
				// for each site of every shard that comes up.
				continue
			}
			_, err := c.cfg.Store.UpdateSite(ctx, s.Metadata.Name, func(cur *site.Site) error {
				if cur.Status.Shard != shard {
					return errSkip
				}
				if up && cur.Status.Condition(ConditionShardReachable) == nil {
					// Never marked unreachable: nothing to clear (a new
					// shard's first heartbeat writes none of its sites).
					return errSkip
				}
				cur.Status.SetCondition(site.Condition{
					Type: ConditionShardReachable, Status: status, Reason: why,
					Message: "shard " + shard + ": " + reason, ObservedGeneration: cur.Metadata.Generation,
				}, now)
				return nil
			})
			if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
			}
		}
		if page.Continue == "" {
			return errors.Join(errs...)
		}
		opts.Continue = page.Continue
	}
}

// drain starts moves out of every draining shard, at most MovesPerShard in
// flight per shard.
func (c *Controller) drain(ctx context.Context) error {
	var errs []error
	for _, sh := range c.idx.Shards() {
		if !sh.Draining {
			continue
		}
		errs = append(errs, c.drainShard(ctx, sh.Name))
	}
	return errors.Join(errs...)
}

func (c *Controller) drainShard(ctx context.Context, name string) error {
	// Sites still on the shard: those without a move, and those whose
	// move is in flight (counted against the cap).
	var ready []site.Site
	active := 0
	opts := store.ListOptions{Shard: name, Limit: store.MaxLimit}
	for {
		page, err := c.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return err
		}
		for _, s := range page.Items {
			switch {
			case s.Status.Shard != name:
			case s.Move.Active():
				active++
			case s.Status.Phase == site.PhaseReady || s.Status.Phase == site.PhaseSuspended:
				ready = append(ready, s)
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	room := c.cfg.MovesPerShard - active
	if room <= 0 || len(ready) == 0 {
		return nil
	}
	// A site whose code changes (a code job or a staged update in
	// progress) moves after the change: a later pass takes it.
	busy, err := c.changingCode(ctx, ready)
	if err != nil {
		return err
	}
	ready = slices.DeleteFunc(ready, func(s site.Site) bool { return busy[s.Metadata.Name] })
	if len(ready) == 0 {
		return nil
	}
	labels := map[string]map[string]string{}
	for _, s := range ready {
		labels[s.Metadata.Name] = request(&s).Constraints
	}
	plan, planErr := c.idx.PlanDrain(name, func(s string) map[string]string { return labels[s] })
	byName := map[string]site.Site{}
	for _, s := range ready {
		byName[s.Metadata.Name] = s
	}
	var errs []error
	if planErr != nil {
		errs = append(errs, planErr)
	}
	for _, mv := range plan {
		if room == 0 {
			break
		}
		s, ok := byName[mv.Site]
		if !ok {
			continue // not ready yet, or already moving
		}
		if err := c.startMove(ctx, &s, mv.To); err != nil {
			errs = append(errs, err)
			continue
		}
		room--
	}
	return errors.Join(errs...)
}

// changingCode returns the names of the sites (of sites) that have a code
// job or a staged update Pending or Running.
func (c *Controller) changingCode(ctx context.Context, sites []site.Site) (map[string]bool, error) {
	uids := map[string]string{}
	for _, s := range sites {
		uids[s.Metadata.Name] = s.Metadata.UID
	}
	busy := map[string]bool{}
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(uids)), store.MaxLimit) {
		for _, kind := range []store.JobKind{store.JobCode, store.JobUpdate} {
			opts := store.JobListOptions{Sites: chunk, Kind: kind, Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit}
			for {
				page, err := c.cfg.Store.ListJobs(ctx, opts)
				if err != nil {
					return nil, fmt.Errorf("list %s jobs: %w", kind, err)
				}
				for _, j := range page.Items {
					if j.SiteUID == "" || j.SiteUID == uids[j.Site] {
						busy[j.Site] = true
					}
				}
				if page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
		}
	}
	return busy, nil
}

// NewMoveID returns a random identifier for a move (the key of its export
// in the transfer store).
func NewMoveID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startMove sets a move of s to target on the site, unless the site changed.
func (c *Controller) startMove(ctx context.Context, s *site.Site, target string) error {
	uid, source := s.Metadata.UID, s.Status.Shard
	now := c.cfg.Clock().UTC()
	updated, err := c.cfg.Store.UpdateSite(ctx, s.Metadata.Name, func(cur *site.Site) error {
		if cur.Metadata.UID != uid || cur.Status.Shard != source || cur.Move.Active() || cur.Metadata.DeletionRequested != nil {
			return errSkip
		}
		cur.Move = &site.Move{ID: NewMoveID(), Source: source, Target: target, Phase: site.MoveCopying, RequestedAt: now}
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drain %s: move %s: %w", source, s.Metadata.Name, err)
	}
	c.applySite(updated)
	c.log.Info("draining: moving site", "site", s.Metadata.Name, "from", source, "to", target, "move", updated.Move.ID)
	c.cfg.Notify()
	return nil
}

// prune drops tombstones older than TombstoneRetention: it remembers which
// revision the store was at over time and prunes below the one seen
// TombstoneRetention ago.
func (c *Controller) prune(ctx context.Context, now time.Time) error {
	c.revs = append(c.revs, revAt{at: now, rev: c.rev})
	cut := -1
	for i, r := range c.revs {
		if now.Sub(r.at) >= c.cfg.TombstoneRetention {
			cut = i
		}
	}
	if cut < 0 {
		return nil
	}
	before := c.revs[cut].rev
	c.revs = c.revs[cut+1:]
	if before <= 0 {
		return nil
	}
	n, err := c.cfg.Store.PruneTombstones(ctx, before)
	if err != nil {
		return fmt.Errorf("prune tombstones: %w", err)
	}
	if n > 0 {
		c.log.Info("pruned tombstones", "count", n, "before_revision", before)
	}
	return nil
}
