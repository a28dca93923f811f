// Package rollout runs staged and fleet updates: the control plane's
// store.JobUpdate and store.JobFleetUpdate jobs.
//
// A staged update tries a change (plugins, themes, core) on a throw-away
// copy of the site before it touches the site: the site's latest snapshot
// (a fresh backup when none is newer than its last code change), a staging
// site cloned from it on the same shard (site.StagingName, never routed by
// the edge, no backups), the change applied there by a code job with the
// update's smoke test, the staging site deleted (always), and only when
// the change passed there, the change in the site's spec and a code job on
// the site (which itself rolls back on failure; the spec is then put back).
// Each step is recorded in the job's result (UpdateResult.Step and the
// fields it fills) before and after it acts, so a run interrupted by a
// crash or a change of leader resumes where it stopped.
//
// A fleet update makes one staged update job per site (UpdateParams.Fleet
// names the fleet job), in waves: a canary wave first, then waves of
// WaveSize, at most Parallel updates at once; after a wave whose share of
// failures is above MaxFailureRate the remaining sites are skipped.
//
// The Controller runs on the control plane's leader (internal/platform/controlplane),
// like package backupctl: Run makes a pass every Tick and on Wake; a pass
// claims the Pending update jobs, and Running ones no process runs, and
// collects orphaned staging sites.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Defaults.
const (
	DefaultTick        = 30 * time.Second
	DefaultPoll        = 2 * time.Second
	DefaultStepTimeout = time.Hour
	DefaultCanary      = 1
	DefaultWaveSize    = 10
	DefaultParallel    = 4
	MaxParallel        = 50
	MaxFleetSites      = 10000
)

var (
	coreVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,3}$`)
	smokePathRE   = regexp.MustCompile(`^/[^\s\x00-\x1f\x7f]{0,199}$`)
)

// Config configures a Controller. Store is required.
type Config struct {
	Store store.Store
	// Plans give a staging site what its plan gives (nil: plans.Defaults()).
	Plans *plans.Set
	// PublicURL is a site's public URL by domain (default http://domain).
	PublicURL func(domain string) string
	Clock     func() time.Time
	Logger    *slog.Logger
	// Notify is called after the controller's writes (wakes watchers and
	// shards).
	Notify func()
	// Tick is how often Run looks for jobs without a Wake (default 30s).
	Tick time.Duration
	// Poll is how often a waiting step reads the store again without a
	// Wake (default 2s).
	Poll time.Duration
	// StepTimeout bounds each wait for a shard (a backup, the staging
	// site, a code job, a deletion; default 1h): the update then fails
	// (and cleans up).
	StepTimeout time.Duration
}

// Controller runs update jobs. Create it with New.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	jobs *ctljobs.Runner // the control plane's own jobs this process runs
	kick chan struct{}

	sigMu sync.Mutex
	sig   chan struct{} // closed and replaced on every Wake
}

// New returns a Controller.
func New(cfg Config) *Controller {
	if cfg.Plans == nil {
		cfg.Plans = plans.Defaults()
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = func(d string) string { return "http://" + d }
	}
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
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = DefaultStepTimeout
	}
	return &Controller{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), sig: make(chan struct{}),
		// A resumed update keeps its first start: its steps go on.
		jobs: ctljobs.New(ctljobs.Config{Store: cfg.Store, Clock: cfg.Clock, Notify: cfg.Notify, KeepStart: true})}
}

// Wake makes Run look for new jobs now and the waiting steps read the
// store again (call it after writes to sites and jobs). It never blocks.
func (c *Controller) Wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
	c.sigMu.Lock()
	close(c.sig)
	c.sig = make(chan struct{})
	c.sigMu.Unlock()
}

func (c *Controller) signal() <-chan struct{} {
	c.sigMu.Lock()
	defer c.sigMu.Unlock()
	return c.sig
}

// Run makes a pass every Tick and on Wake until ctx ends, then waits for
// the jobs it started (they stop where they are; the next leader resumes
// them). A Wake (every API write) only starts jobs: orphaned staging sites,
// which only a crash leaves, are collected on the first pass and every
// Tick.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	defer c.Wait()
	full := true
	for {
		pass := c.runJobs
		if full {
			pass = c.Pass
		}
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			full = true
		case <-c.kick:
			full = false
		}
	}
}

// Wait waits for the jobs started by passes.
func (c *Controller) Wait() { c.jobs.Wait() }

// Pass starts the Pending update jobs (and Running ones no process runs)
// and deletes orphaned staging sites.
func (c *Controller) Pass(ctx context.Context) error {
	return errors.Join(c.runJobs(ctx), c.collectStaging(ctx))
}

var active = []store.JobPhase{store.JobPending, store.JobRunning}

func finished(j *store.Job) bool { return j.Phase == store.JobSucceeded || j.Phase == store.JobFailed }

// runJobs claims the control plane's update jobs, oldest first, each run in
// a goroutine.
func (c *Controller) runJobs(ctx context.Context) error {
	return c.jobs.Pass(ctx, []store.JobKind{store.JobFleetUpdate, store.JobUpdate}, nil, c.exec)
}

// exec runs a claimed job to its end, or until ctx ends (then it stays
// Running, to be resumed).
func (c *Controller) exec(ctx context.Context, j *store.Job) {
	log := c.log.With("job", j.ID, "kind", j.Kind, "site", j.Site)
	log.Info("job started", "attempt", j.Attempts)
	var (
		result any
		err    error
	)
	switch j.Kind {
	case store.JobUpdate:
		result, err = c.update(ctx, j)
	case store.JobFleetUpdate:
		result, err = c.fleet(ctx, j)
	default:
		err = fmt.Errorf("unknown job kind %q", j.Kind)
	}
	if ctx.Err() != nil {
		log.Info("job interrupted; the next leader resumes it")
		return
	}
	c.finish(ctx, j.ID, result, err)
	if err != nil {
		log.Warn("job failed", "err", err)
	} else {
		log.Info("job succeeded")
	}
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
		if raw != nil {
			j.Result = raw
		}
		j.Phase, j.Error = store.JobSucceeded, ""
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

// save records a running job's result and progress.
func (c *Controller) save(ctx context.Context, id string, result any, p store.JobProgress) error {
	raw, err := json.Marshal(result)
	if err != nil {
		return err
	}
	_, err = c.cfg.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		j.Result, j.Progress = raw, p
		return nil
	})
	if err != nil {
		return fmt.Errorf("record progress of job %s: %w", id, err)
	}
	c.cfg.Notify()
	return nil
}

// newJob stores a Pending job.
func (c *Controller) newJob(ctx context.Context, kind store.JobKind, siteName, uid, shard string, params any) (*store.Job, error) {
	id, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	j := &store.Job{ID: "job-" + id, Kind: kind, Site: siteName, SiteUID: uid, Shard: shard,
		Params: raw, Phase: store.JobPending, CreatedAt: c.cfg.Clock().UTC()}
	if err := c.cfg.Store.CreateJob(ctx, j); err != nil {
		return nil, fmt.Errorf("create %s job: %w", kind, err)
	}
	c.cfg.Notify()
	return j, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func newUID() (string, error) {
	h, err := randomHex(16)
	if err != nil {
		return "", err
	}
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[b[16]%4]
	h = string(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// errTimeout marks a wait that took longer than StepTimeout.
var errTimeout = errors.New("timed out")

// waitUntil calls check until it reports done or fails, again on every
// Wake and every Poll, for at most StepTimeout.
func (c *Controller) waitUntil(ctx context.Context, what string, check func(context.Context) (bool, error)) error {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.StepTimeout)
	defer cancel()
	for {
		sig := c.signal()
		done, err := check(wctx)
		if err != nil || done {
			if err != nil && ctx.Err() == nil && wctx.Err() != nil {
				return fmt.Errorf("%w after %s waiting for %s", errTimeout, c.cfg.StepTimeout, what)
			}
			return err
		}
		t := time.NewTimer(c.cfg.Poll)
		select {
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w after %s waiting for %s", errTimeout, c.cfg.StepTimeout, what)
		case <-sig:
			t.Stop()
		case <-t.C:
		}
	}
}

// waitJob waits until a job ends and returns it.
func (c *Controller) waitJob(ctx context.Context, id, what string) (*store.Job, error) {
	var out *store.Job
	err := c.waitUntil(ctx, what+" (job "+id+")", func(ctx context.Context) (bool, error) {
		j, err := c.cfg.Store.GetJob(ctx, id)
		if err != nil {
			return false, fmt.Errorf("get job %s: %w", id, err)
		}
		out = j
		return finished(j), nil
	})
	return out, err
}

// collectStaging deletes staging sites whose update job has ended or is
// gone (an update deletes its own; this catches what a crash left).
func (c *Controller) collectStaging(ctx context.Context) error {
	var errs []error
	// Only names with the staging suffix are read: a pass runs on every
	// API write, and reading (and decoding) every site each time cost
	// the control plane a third of its CPU under a burst of creates at
	// 10,000 sites (bench/scale).
	opts := store.ListOptions{Limit: store.MaxLimit, NameContains: site.StagingSuffix}
	for {
		page, err := c.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return fmt.Errorf("list sites: %w", err)
		}
		for i := range page.Items {
			st := &page.Items[i]
			if !site.IsStaging(st.Metadata.Name) || st.Metadata.DeletionRequested != nil {
				continue
			}
			owner := st.Metadata.Labels[site.LabelUpdateJob]
			if owner != "" {
				j, err := c.cfg.Store.GetJob(ctx, owner)
				if err == nil && !finished(j) {
					continue
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs = append(errs, err)
					continue
				}
			}
			c.log.Info("deleting orphaned staging site", "site", st.Metadata.Name, "job", owner)
			if err := c.requestDeletion(ctx, st.Metadata.Name, st.Metadata.UID); err != nil {
				errs = append(errs, err)
			}
		}
		if page.Continue == "" {
			return errors.Join(errs...)
		}
		opts.Continue = page.Continue
	}
}

// requestDeletion asks the shard to delete a site (as DELETE /v1/sites
// does); a site already gone, or another with that name, is left alone.
func (c *Controller) requestDeletion(ctx context.Context, name, uid string) error {
	now := c.cfg.Clock().UTC()
	_, err := c.cfg.Store.UpdateSite(ctx, name, func(st *site.Site) error {
		if st.Metadata.UID != uid {
			return errSkip
		}
		if st.Metadata.DeletionRequested == nil {
			st.Metadata.DeletionRequested = &now
		}
		st.Status.Phase = site.PhaseDeleting
		return nil
	})
	switch {
	case errors.Is(err, errSkip), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("delete site %s: %w", name, err)
	}
	c.cfg.Notify()
	return nil
}

var errSkip = errors.New("skip")
