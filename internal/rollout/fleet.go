package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// FleetDefaults fills a fleet update's zero settings with the defaults
// (canary 1, waves of 10, 4 at once).
func FleetDefaults(p *store.FleetUpdateParams) {
	if p.Canary <= 0 {
		p.Canary = DefaultCanary
	}
	if p.WaveSize <= 0 {
		p.WaveSize = DefaultWaveSize
	}
	if p.Parallel <= 0 {
		p.Parallel = DefaultParallel
	}
}

// CheckFleet checks a fleet update's parameters (after FleetDefaults).
func CheckFleet(p store.FleetUpdateParams) error {
	if p.Change.Fleet != "" {
		return fmt.Errorf("change.fleet is set by the platform")
	}
	if p.Change.SkipStaging {
		return fmt.Errorf("change.skip_staging: a fleet update always tries the change on a staging copy of each site first")
	}
	if err := CheckChange(p.Change); err != nil {
		return fmt.Errorf("change: %w", err)
	}
	switch {
	case len(p.Sites) == 0:
		return fmt.Errorf("no sites to update")
	case len(p.Sites) > MaxFleetSites:
		return fmt.Errorf("at most %d sites in one fleet update, got %d", MaxFleetSites, len(p.Sites))
	case p.MaxFailureRate < 0 || p.MaxFailureRate > 1:
		return fmt.Errorf("max_failure_rate must be between 0 and 1, got %g", p.MaxFailureRate)
	case p.Parallel > MaxParallel:
		return fmt.Errorf("parallel: at most %d", MaxParallel)
	}
	seen := map[string]bool{}
	for _, s := range p.Sites {
		if seen[s] {
			return fmt.Errorf("site %s is listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

// Waves splits sites into waves: the first canary sites, then waves of
// size (both at least 1).
func Waves(sites []string, canary, size int) [][]string {
	canary, size = max(canary, 1), max(size, 1)
	var out [][]string
	for len(sites) > 0 {
		n := size
		if len(out) == 0 {
			n = canary
		}
		n = min(n, len(sites))
		out = append(out, sites[:n:n])
		sites = sites[n:]
	}
	return out
}

// TooManyFailures reports whether a wave with failed of total updates
// failed stops the rollout: its failure rate is above maxRate.
func TooManyFailures(failed, total int, maxRate float64) bool {
	return total > 0 && float64(failed)/float64(total) > maxRate
}

// fleetRun is one run of a fleet update.
type fleetRun struct {
	c   *Controller
	job *store.Job
	p   store.FleetUpdateParams

	mu  sync.Mutex
	res store.FleetUpdateResult
}

// fleet runs a fleet update job from the waves its result records.
func (c *Controller) fleet(ctx context.Context, j *store.Job) (*store.FleetUpdateResult, error) {
	f := &fleetRun{c: c, job: j}
	if err := json.Unmarshal(j.Params, &f.p); err != nil {
		return nil, fmt.Errorf("fleet update params: %w", err)
	}
	FleetDefaults(&f.p)
	if len(j.Result) > 0 {
		if err := json.Unmarshal(j.Result, &f.res); err != nil {
			return nil, fmt.Errorf("fleet update result: %w", err)
		}
	}
	if len(f.res.Waves) == 0 {
		for _, w := range Waves(f.p.Sites, f.p.Canary, f.p.WaveSize) {
			fw := store.FleetWave{Sites: []store.FleetSite{}}
			for _, s := range w {
				fw.Sites = append(fw.Sites, store.FleetSite{Site: s, State: store.FleetPending})
			}
			f.res.Waves = append(f.res.Waves, fw)
		}
		if err := f.save(ctx); err != nil {
			return nil, err
		}
	}
	for wi := range f.res.Waves {
		if f.res.Stopped != "" {
			break
		}
		if err := f.wave(ctx, wi); err != nil {
			return &f.res, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count()
	f.res.Duration = c.cfg.Clock().Sub(j.CreatedAt).Round(time.Millisecond).String()
	if f.res.Stopped != "" {
		return &f.res, errors.New("stopped: " + f.res.Stopped)
	}
	return &f.res, nil
}

// count sums the sites' states (f.mu held).
func (f *fleetRun) count() {
	f.res.Updated, f.res.Failed, f.res.Skipped = 0, 0, 0
	for _, w := range f.res.Waves {
		for _, s := range w.Sites {
			switch s.State {
			case store.FleetUpdated:
				f.res.Updated++
			case store.FleetFailed:
				f.res.Failed++
			case store.FleetSkipped:
				f.res.Skipped++
			}
		}
	}
}

// save records the result (f.mu must not be held).
func (f *fleetRun) save(ctx context.Context) error {
	f.mu.Lock()
	f.count()
	res := f.res
	raw, err := json.Marshal(res)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	var res2 store.FleetUpdateResult
	_ = json.Unmarshal(raw, &res2)
	total, done, wave := 0, 0, 0
	for k, w := range res2.Waves {
		for _, s := range w.Sites {
			total++
			if s.State != store.FleetPending && s.State != store.FleetRunning {
				done++
			}
		}
		if !w.Started.IsZero() {
			wave = k + 1
		}
	}
	msg := fmt.Sprintf("wave %d of %d: %d updated, %d failed, %d skipped", wave, len(res2.Waves), res2.Updated, res2.Failed, res2.Skipped)
	if res2.Stopped != "" {
		msg = "stopped: " + res2.Stopped
	}
	return f.c.save(ctx, f.job.ID, res2, store.JobProgress{Done: int64(done), Total: int64(total), Message: msg})
}

// wave runs one wave (the sites not done yet), Parallel at once, then
// decides whether the rollout goes on.
func (f *fleetRun) wave(ctx context.Context, wi int) error {
	f.mu.Lock()
	w := &f.res.Waves[wi]
	if !w.Finished.IsZero() {
		f.mu.Unlock()
		return nil
	}
	if w.Started.IsZero() {
		w.Started = f.c.cfg.Clock().UTC()
	}
	n := len(w.Sites)
	f.mu.Unlock()
	if err := f.save(ctx); err != nil {
		return err
	}
	sem := make(chan struct{}, f.p.Parallel)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for si := range n {
		f.mu.Lock()
		state := f.res.Waves[wi].Sites[si].State
		f.mu.Unlock()
		if state == store.FleetUpdated || state == store.FleetFailed || state == store.FleetSkipped {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[si] = f.site(ctx, wi, si)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.mu.Lock()
	w = &f.res.Waves[wi]
	w.Finished = f.c.cfg.Clock().UTC()
	failed := 0
	for _, s := range w.Sites {
		if s.State == store.FleetFailed {
			failed++
		}
	}
	if TooManyFailures(failed, len(w.Sites), f.p.MaxFailureRate) {
		f.res.Stopped = fmt.Sprintf("wave %d: %d of %d updates failed, more than the %g%% allowed",
			wi+1, failed, len(w.Sites), f.p.MaxFailureRate*100)
		for k := wi + 1; k < len(f.res.Waves); k++ {
			for s := range f.res.Waves[k].Sites {
				f.res.Waves[k].Sites[s].State = store.FleetSkipped
			}
		}
		f.c.log.Warn("fleet update stopped", "job", f.job.ID, "reason", f.res.Stopped)
	}
	f.mu.Unlock()
	return f.save(ctx)
}

// site runs (or follows) the update job of one site of a wave. Only the
// store's errors and ctx's end are returned: the site's failure is its
// state.
func (f *fleetRun) site(ctx context.Context, wi, si int) error {
	c := f.c
	f.mu.Lock()
	fs := f.res.Waves[wi].Sites[si]
	f.mu.Unlock()
	set := func(mut func(*store.FleetSite)) error {
		f.mu.Lock()
		mut(&f.res.Waves[wi].Sites[si])
		f.mu.Unlock()
		return f.save(ctx)
	}
	if fs.Job == "" {
		id, why, err := f.updateJob(ctx, fs.Site)
		if err != nil {
			return err
		}
		if why != "" {
			return set(func(s *store.FleetSite) { s.State, s.OK, s.Error = store.FleetFailed, false, why })
		}
		if err := set(func(s *store.FleetSite) { s.Job, s.State = id, store.FleetRunning }); err != nil {
			return err
		}
		fs.Job = id
		c.Wake() // start it now
	}
	j, err := c.waitJob(ctx, fs.Job, "the update of "+fs.Site)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return set(func(s *store.FleetSite) { s.State, s.OK, s.Error = store.FleetFailed, false, err.Error() })
	}
	var r store.UpdateResult
	_ = json.Unmarshal(j.Result, &r)
	if j.Phase == store.JobSucceeded && r.Applied {
		return set(func(s *store.FleetSite) { s.State, s.OK, s.Error = store.FleetUpdated, true, "" })
	}
	return set(func(s *store.FleetSite) {
		s.State, s.OK, s.Error = store.FleetFailed, false, cmpOr(r.Error, cmpOr(j.Error, "not applied"))
	})
}

// updateJob returns the update job of a site in this fleet: one a crashed
// run created, or a new one; why says why the site cannot be updated.
func (f *fleetRun) updateJob(ctx context.Context, name string) (id, why string, err error) {
	c := f.c
	jobs, err := ctljobs.List(ctx, c.cfg.Store, store.JobListOptions{Site: name, Kind: store.JobUpdate})
	if err != nil {
		return "", "", err
	}
	for _, j := range jobs {
		var p store.UpdateParams
		if json.Unmarshal(j.Params, &p) == nil && p.Fleet == f.job.ID {
			return j.ID, "", nil
		}
	}
	for _, j := range jobs {
		if !finished(&j) {
			return "", fmt.Sprintf("another update of the site is under way (job %s)", j.ID), nil
		}
	}
	st, err := c.cfg.Store.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", "the site does not exist", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("get site %s: %w", name, err)
	}
	if st.Metadata.DeletionRequested != nil {
		return "", "the site is being deleted", nil
	}
	p := f.p.Change
	p.Fleet = f.job.ID
	j, err := c.newJob(ctx, store.JobUpdate, name, st.Metadata.UID, "", p)
	if err != nil {
		return "", "", err
	}
	return j.ID, "", nil
}
