// Package ctljobs claims and runs the jobs the control plane runs itself
// (store.Job with Shard ""): Pending ones, and Running ones that no process
// runs any more (their runner died, or another replica led before), oldest
// first, each in its own goroutine. The backup controller (verify, prune,
// recover) and rollouts (staged and fleet updates) share it.
package ctljobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Config configures a Runner.
type Config struct {
	Store store.Store
	Clock func() time.Time
	// Notify is called after a claim (watchers wake).
	Notify func()
	// KeepStart keeps a resumed job's StartedAt (its first start) instead
	// of moving it to the resume.
	KeepStart bool
}

// Runner claims and runs jobs; its methods are safe for concurrent use.
type Runner struct {
	cfg     Config
	mu      sync.Mutex
	running map[string]bool // jobs this process runs
	wg      sync.WaitGroup
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	return &Runner{cfg: cfg, running: map[string]bool{}}
}

var active = []store.JobPhase{store.JobPending, store.JobRunning}

// Pass lists the control plane's active jobs of kinds, oldest first, and
// for each one that this process does not run yet and skip (when not nil)
// does not pass over, claims it — Running, Attempts+1 — and runs exec in a
// goroutine. A job that is no longer active when claimed is left alone.
func (r *Runner) Pass(ctx context.Context, kinds []store.JobKind, skip func(*store.Job) bool, exec func(context.Context, *store.Job)) error {
	for _, kind := range kinds {
		jobs, err := List(ctx, r.cfg.Store, store.JobListOptions{Kind: kind, Phases: active})
		if err != nil {
			return err
		}
		slices.Reverse(jobs) // oldest first
		for i := range jobs {
			j := &jobs[i]
			if j.Shard != "" || (skip != nil && skip(j)) {
				continue
			}
			r.mu.Lock()
			busy := r.running[j.ID]
			if !busy {
				r.running[j.ID] = true
			}
			r.mu.Unlock()
			if busy {
				continue
			}
			claimed, err := r.claim(ctx, j.ID)
			if err != nil || claimed == nil {
				r.done(j.ID)
				if err != nil {
					return err
				}
				continue
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer r.done(claimed.ID)
				exec(ctx, claimed)
			}()
		}
	}
	return nil
}

// Wait waits for the jobs Pass started.
func (r *Runner) Wait() { r.wg.Wait() }

func (r *Runner) done(id string) {
	r.mu.Lock()
	delete(r.running, id)
	r.mu.Unlock()
}

// claim marks a job Running (Attempts+1); nil when it is no longer to run.
func (r *Runner) claim(ctx context.Context, id string) (*store.Job, error) {
	now := r.cfg.Clock().UTC()
	var ok bool
	j, err := r.cfg.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		ok = j.Phase == store.JobPending || j.Phase == store.JobRunning
		if !ok {
			return nil
		}
		j.Phase = store.JobRunning
		j.Attempts++
		if !r.cfg.KeepStart || j.StartedAt == nil {
			j.StartedAt = &now
		}
		j.FinishedAt = nil
		j.Error = ""
		return nil
	})
	if err != nil || !ok {
		return nil, err
	}
	r.cfg.Notify()
	return j, nil
}

// List returns every job opts selects, reading all pages.
func List(ctx context.Context, st store.Store, opts store.JobListOptions) ([]store.Job, error) {
	opts.Limit = store.MaxLimit
	var out []store.Job
	for {
		l, err := st.ListJobs(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, l.Items...)
		if l.Continue == "" {
			return out, nil
		}
		opts.Continue = l.Continue
	}
}
