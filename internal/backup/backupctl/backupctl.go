// Package backupctl is the control plane leader's backup work: scheduled
// backups (as jobs on the shards, at most MaxPerShard at once per shard),
// retention (forgetting snapshots the site's policy no longer keeps),
// periodic prunes and verify-restores, the repositories' sizes and the
// sites' shares of them for their usage records (hourly, sizes.go), and
// the jobs the control plane runs itself: verify, prune and recover
// (disaster recovery of a lost shard).
//
// Everything takes its time from Config.Clock and runs in Pass, which Run
// calls every Tick; tests call Pass (and Wait) with a fake clock.
package backupctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/backup/schedule"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Defaults.
const (
	DefaultTick           = 30 * time.Second
	DefaultMaxPerShard    = 2
	DefaultRetryAfter     = 15 * time.Minute
	DefaultRetentionEvery = time.Hour
	DefaultPruneEvery     = 24 * time.Hour
	DefaultVerifyEvery    = 24 * time.Hour
	// DefaultLogMargin is Config.LogMargin.
	DefaultLogMargin = time.Hour
	// LogKeepWithoutSnapshot is how long the database log segments of a
	// site without any snapshot are kept (the log is of use only after
	// a snapshot; this lets a backup under way finish first).
	LogKeepWithoutSnapshot = 24 * time.Hour
)

// Config configures a Controller. Store and Policy are required.
type Config struct {
	Store store.Store
	// Repos opens the repositories. Nil: retention, verify and prune are
	// off (their jobs fail) and recoveries report snapshot times from the
	// catalog.
	Repos *repos.Manager
	// Policy returns a site's effective backup policy (api.BackupPolicy).
	Policy func(spec *site.Spec) site.BackupPolicy
	Clock  func() time.Time
	Logger *slog.Logger
	// Notify is called after the controller's writes (wakes watchers).
	Notify func()
	// Tick is how often Run makes a pass (default 30s).
	Tick time.Duration
	// MaxPerShard bounds the Pending and Running backup jobs per shard
	// that scheduling creates (default 2); manual backups do not wait.
	MaxPerShard int
	// RetryAfter is how long a site whose last backup failed waits before
	// the schedule tries again (default 15m).
	RetryAfter time.Duration
	// RetentionEvery, PruneEvery and VerifyEvery are how often retention
	// runs, a prune job is created and a verify-restore job is created per
	// shard (defaults 1h, 24h, 24h; negative: never).
	RetentionEvery, PruneEvery, VerifyEvery time.Duration
	// SizesEvery negative turns off the hourly measurement of the
	// repositories' sizes and the sites' backup bytes (sizes.go); any
	// other value measures once in each hour (UTC).
	SizesEvery time.Duration
	// Pick chooses an index in [0, n) for the verify-restore sample
	// (default math/rand/v2).
	Pick func(n int) int
	// LogMargin: retention forgets a site's database log segments
	// (package pitr) whose last transaction is older than the site's
	// oldest kept snapshot by more than this (default DefaultLogMargin):
	// a binary log's event time is when its statement began, so a long
	// transaction committed after the snapshot can carry an earlier time.
	LogMargin time.Duration
}

// Controller runs the backup work. Create it with New.
type Controller struct {
	cfg Config
	log *slog.Logger

	// lastGood caches each site's last good backup time (by UID) between
	// passes; a site that looks due is always looked up again.
	lastGood map[string]time.Time
	// neverBacked holds the sites (name → UID) found without any backup
	// job, so without a snapshot and without a failed attempt: schedule
	// and periodic skip their two lookups until a backup job of the site
	// is written (noticed through the jobs written after jobsRev, the
	// store revision read before the last lookups). A fleet of new sites
	// otherwise cost two queries per site per pass.
	neverBacked   map[string]string
	jobsRev       int64
	lastRetention time.Time
	// lastSizes is the usage hour sizes last measured fully.
	lastSizes string

	// coverage is what the last scheduling pass saw (Coverage), under
	// covMu.
	covMu    sync.Mutex
	coverage map[string]ShardCoverage
	// repoBytes is each repository's stored bytes as sizes measured
	// them last (RepositoryBytes), under covMu.
	repoBytes map[string]int64

	mu   sync.Mutex
	jobs *ctljobs.Runner // the control plane's own jobs this process runs
	kick chan struct{}
}

// New returns a Controller.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.MaxPerShard <= 0 {
		cfg.MaxPerShard = DefaultMaxPerShard
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.RetentionEvery == 0 {
		cfg.RetentionEvery = DefaultRetentionEvery
	}
	if cfg.PruneEvery == 0 {
		cfg.PruneEvery = DefaultPruneEvery
	}
	if cfg.VerifyEvery == 0 {
		cfg.VerifyEvery = DefaultVerifyEvery
	}
	if cfg.Pick == nil {
		cfg.Pick = rand.IntN
	}
	if cfg.LogMargin <= 0 {
		cfg.LogMargin = DefaultLogMargin
	}
	return &Controller{cfg: cfg, log: cfg.Logger, lastGood: map[string]time.Time{}, neverBacked: map[string]string{}, kick: make(chan struct{}, 1),
		jobs: ctljobs.New(ctljobs.Config{Store: cfg.Store, Clock: cfg.Clock, Notify: cfg.Notify})}
}

// Wake makes Run look at the control-plane jobs (recoveries, verifications,
// prunes) now rather than at the next Tick: a recovery then follows its
// sites as their shards report them. Schedules and retention keep to Tick.
// It never blocks.
func (c *Controller) Wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// jobsPass is the part of Pass that a Wake runs: control-plane jobs and
// recoveries, without listing every site.
func (c *Controller) jobsPass(ctx context.Context) error {
	return errors.Join(c.runJobs(ctx), c.trackRecoveries(ctx))
}

// Run makes a pass every Tick until ctx ends, then waits for the jobs it
// started.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	defer c.Wait()
	for {
		if err := c.Pass(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("backup pass", "err", err)
		}
		for woken := true; woken; {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				woken = false
			case <-c.kick:
				if err := c.jobsPass(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("backup jobs pass", "err", err)
				}
				// At most one such pass a second, however busy the
				// store is.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// Wait waits for the control-plane jobs started by passes.
func (c *Controller) Wait() { c.jobs.Wait() }

// Pass does one round of the backup work.
func (c *Controller) Pass(ctx context.Context) error {
	var errs []error
	sites, err := allSites(ctx, c.cfg.Store)
	if err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func(context.Context, []site.Site) error
	}{
		{"schedule", c.schedule},
		{"retention", c.retention},
		{"periodic jobs", c.periodic},
		{"sizes", c.sizes},
		{"control-plane jobs", func(ctx context.Context, _ []site.Site) error { return c.runJobs(ctx) }},
		{"recoveries", func(ctx context.Context, _ []site.Site) error { return c.trackRecoveries(ctx) }},
	}
	for _, s := range steps {
		if err := s.fn(ctx, sites); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

func allSites(ctx context.Context, st store.Store) ([]site.Site, error) {
	var out []site.Site
	opts := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := st.ListSites(ctx, opts)
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

var active = []store.JobPhase{store.JobPending, store.JobRunning}

func (c *Controller) newJob(ctx context.Context, kind store.JobKind, siteName, uid, shard string, params any) (*store.Job, error) {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	j := &store.Job{ID: fmt.Sprintf("job-%x", b), Kind: kind, Site: siteName, SiteUID: uid, Shard: shard,
		Params: raw, Phase: store.JobPending, CreatedAt: c.cfg.Clock().UTC()}
	if err := c.cfg.Store.CreateJob(ctx, j); err != nil {
		return nil, fmt.Errorf("create %s job: %w", kind, err)
	}
	c.cfg.Notify()
	return j, nil
}

// forgetBacked drops from neverBacked the sites with a backup job written
// since the last call, and moves jobsRev to the store's current revision
// (read first: a job written meanwhile is seen by the next call).
func (c *Controller) forgetBacked(ctx context.Context) error {
	cl, err := c.cfg.Store.Changes(ctx, math.MaxInt64, store.ChangeOptions{Limit: 1})
	if err != nil {
		return fmt.Errorf("read revision: %w", err)
	}
	rev := cl.Revision
	if c.jobsRev <= 0 {
		clear(c.neverBacked)
		c.jobsRev = rev
		return nil
	}
	opts := store.JobListOptions{Kind: store.JobBackup, ChangedAfter: c.jobsRev, Limit: store.MaxLimit}
	for {
		l, err := c.cfg.Store.ListJobs(ctx, opts)
		if err != nil {
			return err
		}
		for _, j := range l.Items {
			delete(c.neverBacked, j.Site)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	c.jobsRev = rev
	return nil
}

// schedulable reports whether a site takes scheduled backups now.
func schedulable(st *site.Site) bool {
	return st.Status.Shard != "" && st.Metadata.DeletionRequested == nil && !st.Move.Active() &&
		(st.Status.Phase == site.PhaseReady || st.Status.Phase == site.PhaseSuspended)
}

// schedule creates the backup jobs of due sites, oldest backup first, at
// most MaxPerShard active per shard.
func (c *Controller) schedule(ctx context.Context, sites []site.Site) error {
	now := c.cfg.Clock()
	jobs, err := ctljobs.List(ctx, c.cfg.Store, store.JobListOptions{Kind: store.JobBackup, Phases: active})
	if err != nil {
		return err
	}
	if err := c.forgetBacked(ctx); err != nil {
		return err
	}
	perShard := map[string]int{}
	busy := map[string]bool{}
	for _, j := range jobs {
		perShard[j.Shard]++
		busy[j.Site] = true
	}
	type cand struct {
		st   *site.Site
		last time.Time
	}
	var cands []cand
	seen := map[string]bool{}
	for i := range sites {
		st := &sites[i]
		uid := st.Metadata.UID
		seen[uid] = true
		interval := schedule.Interval(c.cfg.Policy(&st.Spec))
		if !schedulable(st) || interval == 0 || busy[st.Metadata.Name] {
			continue
		}
		if last, ok := c.lastGood[uid]; ok && !schedule.Due(last, interval, now) {
			continue
		}
		if c.neverBacked[st.Metadata.Name] == uid {
			c.lastGood[uid] = time.Time{}
			cands = append(cands, cand{st, time.Time{}})
			continue
		}
		e, err := catalog.Latest(ctx, c.cfg.Store, st.Metadata.Name, uid)
		if err != nil {
			return err
		}
		var last time.Time
		if e != nil {
			last = e.Time
		}
		c.lastGood[uid] = last
		if !schedule.Due(last, interval, now) {
			continue
		}
		// A failed attempt waits RetryAfter before the next.
		l, err := c.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: st.Metadata.Name, Kind: store.JobBackup, Limit: 1})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 {
			j := l.Items[0]
			if j.Phase == store.JobFailed && j.FinishedAt != nil && now.Sub(*j.FinishedAt) < c.cfg.RetryAfter {
				continue
			}
		} else if e == nil {
			c.neverBacked[st.Metadata.Name] = uid
		}
		cands = append(cands, cand{st, last})
	}
	for uid := range c.lastGood {
		if !seen[uid] {
			delete(c.lastGood, uid)
		}
	}
	for name, uid := range c.neverBacked {
		if !seen[uid] {
			delete(c.neverBacked, name)
		}
	}
	c.setCoverage(sites, now)
	slices.SortStableFunc(cands, func(a, b cand) int { return a.last.Compare(b.last) })
	for _, cd := range cands {
		shard := cd.st.Status.Shard
		if perShard[shard] >= c.cfg.MaxPerShard {
			continue
		}
		if _, err := c.newJob(ctx, store.JobBackup, cd.st.Metadata.Name, cd.st.Metadata.UID, shard, store.BackupParams{Reason: "schedule"}); err != nil {
			return err
		}
		perShard[shard]++
		c.log.Info("scheduled backup", "site", cd.st.Metadata.Name, "shard", shard, "last_good", cd.last)
	}
	return nil
}

// protectedRefs are the snapshots retention must not forget: sites'
// sources and the snapshots of active restores.
func (c *Controller) protectedRefs(ctx context.Context, sites []site.Site) (map[string]bool, error) {
	out := map[string]bool{}
	for _, st := range sites {
		if st.Spec.Source != nil {
			out[st.Spec.Source.Snapshot] = true
		}
	}
	for _, kind := range []store.JobKind{store.JobRestore, store.JobVerifyRestore} {
		jobs, err := ctljobs.List(ctx, c.cfg.Store, store.JobListOptions{Kind: kind, Phases: active})
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			var p store.RestoreParams
			if json.Unmarshal(j.Params, &p) == nil {
				out[p.Snapshot] = true
			}
		}
	}
	return out, nil
}

// retention forgets, every RetentionEvery, the snapshots of each site that
// its policy's keep rules no longer keep (snapshots of the site's current
// incarnation only; those of deleted sites stay).
func (c *Controller) retention(ctx context.Context, sites []site.Site) error {
	now := c.cfg.Clock()
	if c.cfg.Repos == nil || c.cfg.RetentionEvery < 0 || (!c.lastRetention.IsZero() && now.Sub(c.lastRetention) < c.cfg.RetentionEvery) {
		return nil
	}
	protected, err := c.protectedRefs(ctx, sites)
	if err != nil {
		return err
	}
	var errs []error
	forgot := 0
	logs := map[string]*siteLog{} // by site uid
	for i := range sites {
		st := &sites[i]
		entries, err := catalog.All(ctx, c.cfg.Store, st.Metadata.Name, true)
		if err != nil {
			return err
		}
		sl := &siteLog{repos: map[string]bool{}}
		if st.Status.Shard != "" {
			sl.repos[st.Status.Shard] = true
		}
		logs[st.Metadata.UID] = sl
		for _, e := range entries {
			if e.SiteUID == st.Metadata.UID {
				sl.repos[e.Repo] = true
			}
		}
		entries = slices.DeleteFunc(entries, func(e catalog.Entry) bool { return e.SiteUID != st.Metadata.UID || e.Forgotten != nil })
		times := make([]time.Time, len(entries))
		for k, e := range entries {
			times[k] = e.Time
		}
		keep := schedule.Keep(times, c.cfg.Policy(&st.Spec).Keep, time.UTC)
		for k, e := range entries {
			if keep[k] || protected[e.Ref] {
				sl.keep(e.Time)
				continue
			}
			if err := c.forget(ctx, e, now); err != nil {
				sl.keep(e.Time) // still there
				errs = append(errs, err)
				continue
			}
			forgot++
		}
	}
	if forgot > 0 {
		c.log.Info("retention forgot snapshots", "snapshots", forgot)
		c.cfg.Notify()
	}
	if err := c.logRetention(ctx, logs, now); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		c.lastRetention = now
	}
	return errors.Join(errs...)
}

// siteLog is what log retention knows of a current site: the
// repositories its snapshots (and so its log segments) are in, and the
// time of its oldest snapshot that retention keeps.
type siteLog struct {
	repos  map[string]bool
	oldest time.Time // zero: no snapshot kept
}

func (l *siteLog) keep(t time.Time) {
	if l.oldest.IsZero() || t.Before(l.oldest) {
		l.oldest = t
	}
}

// LogSegmentExpired is the retention rule of a site's database log
// (package pitr): a segment whose last transaction's time is last may be
// forgotten when it is older than the site's oldest kept snapshot
// (oldest; zero: the site has none) by more than margin, so that every
// transaction after any kept snapshot stays and a restore to any time
// after it can replay from it; a site without snapshots keeps its log
// for LogKeepWithoutSnapshot (a backup may be under way). A segment newer
// than the oldest kept snapshot is never forgotten.
func LogSegmentExpired(last, oldest, now time.Time, margin time.Duration) bool {
	if oldest.IsZero() {
		return last.Before(now.Add(-LogKeepWithoutSnapshot))
	}
	return last.Before(oldest.Add(-margin))
}

// logRetention forgets the log segments of current sites (by uid) that
// LogSegmentExpired says are of no more use, in every repository holding
// the sites' snapshots or serving them. Segments of sites that are gone
// (another uid) stay, as their snapshots do.
func (c *Controller) logRetention(ctx context.Context, logs map[string]*siteLog, now time.Time) error {
	repoNames := map[string]bool{}
	for _, l := range logs {
		for r := range l.repos {
			repoNames[r] = true
		}
	}
	var errs []error
	forgot := 0
	for _, name := range slices.Sorted(maps.Keys(repoNames)) {
		r, err := c.cfg.Repos.Open(ctx, name, false)
		if errors.Is(err, repo.ErrNotInitialized) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("log retention: repository %s: %w", name, err))
			continue
		}
		snaps, err := r.ListSnapshots(ctx, repo.SnapshotFilter{Tags: []string{pitr.Tag}})
		if err != nil {
			errs = append(errs, fmt.Errorf("log retention: repository %s: %w", name, err))
			continue
		}
		for _, snap := range snaps {
			var m pitr.SegmentMeta
			if err := json.Unmarshal(snap.Meta, &m); err != nil || m.Kind != pitr.SegmentKind {
				continue
			}
			l := logs[m.UID]
			if l == nil || !l.repos[name] {
				continue
			}
			last := m.LastTime
			if last.IsZero() { // no time known: when it was written (after all it holds)
				last = snap.Time
			}
			if !LogSegmentExpired(last, l.oldest, now, c.cfg.LogMargin) {
				continue
			}
			if err := r.DeleteSnapshot(ctx, snap.ID); err != nil && !errors.Is(err, repo.ErrSnapshotNotFound) {
				errs = append(errs, fmt.Errorf("forget log segment %s:%s: %w", name, snap.ID, err))
				continue
			}
			forgot++
		}
	}
	if forgot > 0 {
		c.log.Info("retention forgot database log segments", "segments", forgot)
	}
	return errors.Join(errs...)
}

// forget deletes a snapshot's manifest and marks its job.
func (c *Controller) forget(ctx context.Context, e catalog.Entry, now time.Time) error {
	r, err := c.cfg.Repos.Open(ctx, e.Repo, false)
	if err != nil && !errors.Is(err, repo.ErrNotInitialized) {
		return err
	}
	if err == nil {
		if err := r.DeleteSnapshot(ctx, e.ID); err != nil && !errors.Is(err, repo.ErrSnapshotNotFound) {
			return fmt.Errorf("forget %s: %w", e.Ref, err)
		}
	}
	return catalog.Forget(ctx, c.cfg.Store, e.Job, now.UTC())
}

// periodic creates the prune job every PruneEvery and one verify-restore
// job per Ready shard every VerifyEvery (of a random site's latest
// snapshot), measured from the last such job in the store.
func (c *Controller) periodic(ctx context.Context, sites []site.Site) error {
	now := c.cfg.Clock()
	due := func(opts store.JobListOptions, every time.Duration) (bool, error) {
		if every < 0 {
			return false, nil
		}
		opts.Limit = 1
		l, err := c.cfg.Store.ListJobs(ctx, opts)
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0 || now.Sub(l.Items[0].CreatedAt) >= every, nil
	}
	if c.cfg.Repos != nil {
		if ok, err := due(store.JobListOptions{Kind: store.JobPrune}, c.cfg.PruneEvery); err != nil {
			return err
		} else if ok {
			if _, err := c.newJob(ctx, store.JobPrune, "", "", "", store.PruneParams{}); err != nil {
				return err
			}
		}
	}
	shards, err := c.cfg.Store.ListShards(ctx)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if sh.Phase != store.ShardReady {
			continue
		}
		ok, err := due(store.JobListOptions{Kind: store.JobVerifyRestore, Shard: sh.Name}, c.cfg.VerifyEvery)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var onShard []*site.Site
		for i := range sites {
			if sites[i].Status.Shard == sh.Name && schedulable(&sites[i]) {
				onShard = append(onShard, &sites[i])
			}
		}
		// Try sites from a random start until one has a snapshot.
		for k := range onShard {
			if k == 0 && len(onShard) > 0 {
				start := c.cfg.Pick(len(onShard))
				onShard = append(onShard[start:], onShard[:start]...)
			}
			st := onShard[k]
			if c.neverBacked[st.Metadata.Name] == st.Metadata.UID {
				continue // no snapshot
			}
			e, err := catalog.Latest(ctx, c.cfg.Store, st.Metadata.Name, st.Metadata.UID)
			if err != nil {
				return err
			}
			if e == nil {
				continue
			}
			if _, err := c.newJob(ctx, store.JobVerifyRestore, st.Metadata.Name, st.Metadata.UID, sh.Name, store.RestoreParams{Snapshot: e.Ref}); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// runJobs starts the control plane's own Pending jobs, and Running ones no
// process runs (their runner died), each in a goroutine.
func (c *Controller) runJobs(ctx context.Context) error {
	// A recover job that waits for its sites to come back is watched by
	// the recover pass, not run.
	skip := func(j *store.Job) bool {
		return j.Kind == store.JobRecover && j.Phase == store.JobRunning && j.Progress.Message == recoverRebuilding
	}
	return c.jobs.Pass(ctx, []store.JobKind{store.JobVerify, store.JobPrune, store.JobRecover}, skip, c.exec)
}

// finish records a job's end.
func (c *Controller) finish(ctx context.Context, id string, result any, jobErr error) {
	now := c.cfg.Clock().UTC()
	var raw json.RawMessage
	if result != nil {
		raw, _ = json.Marshal(result)
	}
	_, err := c.cfg.Store.UpdateJob(context.WithoutCancel(ctx), id, func(j *store.Job) error {
		j.FinishedAt = &now
		j.Result = raw
		j.Phase = store.JobSucceeded
		j.Error = ""
		if jobErr != nil {
			j.Phase, j.Error = store.JobFailed, jobErr.Error()
		}
		return nil
	})
	if err != nil {
		c.log.Warn("record job end", "job", id, "err", err)
	}
	c.cfg.Notify()
}

func (c *Controller) progress(ctx context.Context, id string, p store.JobProgress) {
	if _, err := c.cfg.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		if j.Phase == store.JobRunning {
			j.Progress = p
		}
		return nil
	}); err != nil && ctx.Err() == nil {
		c.log.Warn("report job progress", "job", id, "err", err)
	}
	c.cfg.Notify()
}

// exec runs a claimed control-plane job.
func (c *Controller) exec(ctx context.Context, j *store.Job) {
	log := c.log.With("job", j.ID, "kind", j.Kind)
	log.Info("job started", "attempt", j.Attempts)
	var (
		result any
		err    error
	)
	switch j.Kind {
	case store.JobVerify:
		result, err = c.verify(ctx, j)
	case store.JobPrune:
		result, err = c.prune(ctx, j)
	case store.JobRecover:
		err = c.recoverSwitch(ctx, j)
		if err == nil {
			return // followed by trackRecoveries
		}
	default:
		err = fmt.Errorf("unknown job kind %q", j.Kind)
	}
	if ctx.Err() != nil {
		log.Info("job interrupted; the next leader runs it again")
		return
	}
	c.finish(ctx, j.ID, result, err)
	if err != nil {
		log.Warn("job failed", "err", err)
	} else {
		log.Info("job succeeded")
	}
}

// repoNames returns the repositories a verify or prune covers: one named,
// a site's (those its snapshots are in), or every shard's.
func (c *Controller) repoNames(ctx context.Context, one, siteName string) ([]string, error) {
	if one != "" {
		return []string{one}, nil
	}
	set := map[string]bool{}
	if siteName != "" {
		entries, err := catalog.All(ctx, c.cfg.Store, siteName, false)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			set[e.Repo] = true
		}
	} else {
		shards, err := c.cfg.Store.ListShards(ctx)
		if err != nil {
			return nil, err
		}
		for _, sh := range shards {
			set[sh.Name] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

var errNoRepos = errors.New("backups are not configured on this control plane")

func (c *Controller) verify(ctx context.Context, j *store.Job) (*store.VerifyResult, error) {
	if c.cfg.Repos == nil {
		return nil, errNoRepos
	}
	var p store.VerifyParams
	_ = json.Unmarshal(j.Params, &p)
	names, err := c.repoNames(ctx, "", p.Site)
	if err != nil {
		return nil, err
	}
	// A site's verify reports only its snapshots.
	mine := map[string]bool{}
	if p.Site != "" {
		entries, err := catalog.All(ctx, c.cfg.Store, p.Site, false)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			mine[e.Ref] = true
		}
	}
	res := &store.VerifyResult{Repos: []store.RepoVerify{}}
	failed := 0
	for k, name := range names {
		c.progress(ctx, j.ID, store.JobProgress{Done: int64(k), Total: int64(len(names)), Message: "verifying " + name})
		rv := store.RepoVerify{Repo: name}
		r, err := c.cfg.Repos.Open(ctx, name, false)
		if errors.Is(err, repo.ErrNotInitialized) {
			continue // the shard never backed anything up
		}
		if err != nil {
			rv.Error = err.Error()
			res.Repos = append(res.Repos, rv)
			failed++
			continue
		}
		rep, err := r.Verify(ctx, repo.VerifyOptions{ReadData: p.Full})
		if err != nil {
			rv.Error = err.Error()
			res.Repos = append(res.Repos, rv)
			failed++
			continue
		}
		rv.OK, rv.Snapshots, rv.Packs, rv.Chunks, rv.BytesRead, rv.Problems = rep.OK(), rep.Snapshots, rep.Packs, rep.Chunks, rep.BytesRead, len(rep.Problems)
		res.Repos = append(res.Repos, rv)
		for _, id := range rep.AffectedSnapshots {
			ref := name + ":" + id
			if p.Site != "" && !mine[ref] {
				continue
			}
			d := store.DamagedSnapshot{Ref: ref}
			if snap, err := r.LoadSnapshot(ctx, id); err == nil {
				d.Site = snap.Site
			}
			res.Damaged = append(res.Damaged, d)
		}
		if !rep.OK() && p.Site == "" {
			failed++
		}
	}
	c.progress(ctx, j.ID, store.JobProgress{Done: int64(len(names)), Total: int64(len(names)), Message: "verified"})
	switch {
	case len(res.Damaged) > 0:
		return res, fmt.Errorf("%d damaged snapshot(s)", len(res.Damaged))
	case failed > 0:
		return res, fmt.Errorf("%d repositor(ies) with problems", failed)
	}
	return res, nil
}

func (c *Controller) prune(ctx context.Context, j *store.Job) (*store.PruneResult, error) {
	if c.cfg.Repos == nil {
		return nil, errNoRepos
	}
	var p store.PruneParams
	_ = json.Unmarshal(j.Params, &p)
	names, err := c.repoNames(ctx, p.Repo, "")
	if err != nil {
		return nil, err
	}
	res := &store.PruneResult{Repos: []store.RepoPrune{}}
	var errs []error
	for k, name := range names {
		c.progress(ctx, j.ID, store.JobProgress{Done: int64(k), Total: int64(len(names)), Message: "pruning " + name})
		r, err := c.cfg.Repos.Open(ctx, name, false)
		if errors.Is(err, repo.ErrNotInitialized) {
			continue
		}
		rp := store.RepoPrune{Repo: name}
		if err == nil {
			var rep repo.PruneReport
			rep, err = r.Prune(ctx, repo.PruneOptions{})
			rp.PacksDeleted, rp.PacksRepacked, rp.BytesFreed = rep.PacksDeleted, rep.PacksRepacked, rep.BytesFreed
		}
		if err != nil {
			rp.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		res.Repos = append(res.Repos, rp)
	}
	c.progress(ctx, j.ID, store.JobProgress{Done: int64(len(names)), Total: int64(len(names)), Message: "pruned"})
	return res, errors.Join(errs...)
}

// ShardCoverage is the backup coverage of one shard's sites as the last
// scheduling pass saw it (the control plane's metrics, package
// cpmetrics): sites by schedule state (OK, LATE, NONE, OFF), how many of
// them are alerts (schedule.Coverage: late, or never backed up a window
// after creation), and the oldest last good backup among them (zero: none
// has one).
type ShardCoverage struct {
	States     map[schedule.State]int
	Alerts     int
	OldestGood time.Time
}

// setCoverage records the coverage of the sites that take scheduled
// backups, from the last good times the pass knows (a site's is looked up
// again whenever it looks due, so a late site is never counted OK).
func (c *Controller) setCoverage(sites []site.Site, now time.Time) {
	cov := map[string]ShardCoverage{}
	for i := range sites {
		st := &sites[i]
		if !schedulable(st) {
			continue
		}
		sc, ok := cov[st.Status.Shard]
		if !ok {
			sc = ShardCoverage{States: map[schedule.State]int{}}
		}
		interval := schedule.Interval(c.cfg.Policy(&st.Spec))
		last, known := c.lastGood[st.Metadata.UID]
		if interval > 0 && !known {
			continue // busy with a backup now, not looked up yet
		}
		state, alert := schedule.Off, false
		if interval > 0 {
			state, alert = schedule.Coverage(last, st.Metadata.CreatedAt, interval, now)
		}
		sc.States[state]++
		if alert {
			sc.Alerts++
		}
		if !last.IsZero() && (sc.OldestGood.IsZero() || last.Before(sc.OldestGood)) {
			sc.OldestGood = last
		}
		cov[st.Status.Shard] = sc
	}
	c.covMu.Lock()
	c.coverage = cov
	c.covMu.Unlock()
}

// Coverage returns the backup coverage by shard as the last scheduling
// pass saw it; empty before the first pass (and on a replica that does
// not lead).
func (c *Controller) Coverage() map[string]ShardCoverage {
	c.covMu.Lock()
	defer c.covMu.Unlock()
	return c.coverage
}
