package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// RotationConfig configures Rotations.
type RotationConfig struct {
	Store store.Store
	// Every returns how often a site's DB password is rotated (its plan's
	// plans.Set.RotationPolicy); 0 or less: never.
	Every  func(spec *site.Spec) time.Duration
	Logger *slog.Logger
	Clock  func() time.Time
	// Interval is how often due sites are looked for (default 1h).
	Interval time.Duration
	// Notify is called after jobs were created (wakes agents).
	Notify func()
}

// Rotations is the leader's scheduled secret rotation: it creates a
// secret.rotate job (kind db-password, reason "schedule") on the shard of
// every Ready or Suspended, settled site whose last succeeded DB password
// rotation (or, without one, its creation) is at least Every ago, unless a
// rotation of the site is already pending or running. A failed rotation
// counts as none: the next pass asks again (and the new job resumes it).
type Rotations struct {
	cfg RotationConfig
	log *slog.Logger
}

// NewRotations returns the scheduler; Run runs it.
func NewRotations(cfg RotationConfig) *Rotations {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	return &Rotations{cfg: cfg, log: cfg.Logger}
}

// Run makes a pass now and every Interval until ctx ends.
func (r *Rotations) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("scheduled secret rotation", "err", err)
		}
		if n, err := r.PruneTokens(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("prune expired tokens", "err", err)
		} else if n > 0 {
			r.log.Info("pruned expired tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass creates the jobs of the sites due now and returns them.
func (r *Rotations) Pass(ctx context.Context) ([]store.Job, error) {
	now := r.cfg.Clock().UTC()
	last := map[string]time.Time{} // by site UID: the last succeeded DB password rotation
	active := map[string]bool{}    // by site name: a rotation pending or running
	opts := store.JobListOptions{Kind: store.JobRotateSecret, Limit: 1000}
	for {
		page, err := r.cfg.Store.ListJobs(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list rotation jobs: %w", err)
		}
		for _, j := range page.Items {
			switch j.Phase {
			case store.JobPending, store.JobRunning:
				active[j.Site] = true
			case store.JobSucceeded:
				var p store.RotateParams
				if json.Unmarshal(j.Params, &p) != nil || p.Kind != store.SecretDBPassword || j.FinishedAt == nil {
					continue
				}
				if j.FinishedAt.After(last[j.SiteUID]) {
					last[j.SiteUID] = *j.FinishedAt
				}
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	var created []store.Job
	sopts := store.ListOptions{Limit: 1000}
	for {
		page, err := r.cfg.Store.ListSites(ctx, sopts)
		if err != nil {
			return created, fmt.Errorf("list sites: %w", err)
		}
		for i := range page.Items {
			st := &page.Items[i]
			every := r.cfg.Every(&st.Spec)
			if every <= 0 || active[st.Metadata.Name] || !settled(st) {
				continue
			}
			base, ok := last[st.Metadata.UID]
			if !ok {
				base = st.Metadata.CreatedAt
			}
			if now.Sub(base) < every {
				continue
			}
			j, err := r.newJob(ctx, st, now)
			if err != nil {
				return created, err
			}
			r.log.Info("scheduled DB password rotation", "site", st.Metadata.Name, "shard", j.Shard, "job", j.ID, "last", base)
			created = append(created, *j)
		}
		if page.Continue == "" {
			break
		}
		sopts.Continue = page.Continue
	}
	if len(created) > 0 {
		r.cfg.Notify()
	}
	return created, nil
}

// settled: placed, not moving or being deleted, Ready or Suspended.
func settled(st *site.Site) bool {
	return st.Metadata.DeletionRequested == nil && st.Status.Shard != "" && !st.Move.Active() &&
		(st.Status.Phase == site.PhaseReady || st.Status.Phase == site.PhaseSuspended)
}

func (r *Rotations) newJob(ctx context.Context, st *site.Site, now time.Time) (*store.Job, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	params, _ := json.Marshal(store.RotateParams{Kind: store.SecretDBPassword, Reason: "schedule"})
	j := &store.Job{ID: "job-" + hex.EncodeToString(b), Kind: store.JobRotateSecret, Site: st.Metadata.Name, SiteUID: st.Metadata.UID,
		Shard: st.Status.Shard, Params: params, Phase: store.JobPending, CreatedAt: now}
	if err := r.cfg.Store.CreateJob(ctx, j); err != nil {
		return nil, fmt.Errorf("create rotation job of %s: %w", st.Metadata.Name, err)
	}
	return j, nil
}

// tokenGrace is how long an expired token (a session, a rotated token's
// old secret) is kept before PruneTokens deletes it, so that lists still
// explain a fresh "token expired".
const tokenGrace = 7 * 24 * time.Hour

// PruneTokens deletes the tokens that expired more than a week ago
// (browser sessions and rotated tokens' old secrets would otherwise pile
// up) and returns how many it deleted.
func (r *Rotations) PruneTokens(ctx context.Context) (int, error) {
	toks, err := r.cfg.Store.ListTokens(ctx, store.TokenFilter{})
	if err != nil {
		return 0, fmt.Errorf("list tokens: %w", err)
	}
	cut := r.cfg.Clock().Add(-tokenGrace)
	n := 0
	for _, t := range toks {
		if t.ExpiresAt == nil || !t.ExpiresAt.Before(cut) {
			continue
		}
		if err := r.cfg.Store.DeleteToken(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("delete expired token %s: %w", t.ID, err)
		}
		n++
	}
	return n, nil
}
