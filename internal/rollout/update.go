package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteclone"
	"github.com/aipress/aipress/internal/store"
)

// Reasons of the jobs an update makes.
const (
	// ReasonUpdate is the CodeParams.Reason of an update's code jobs.
	ReasonUpdate = "update"
	// ReasonPreUpdate is the BackupParams.Reason of the backup an update
	// takes when the site has no fresh snapshot.
	ReasonPreUpdate = "pre-update"
)

// steps in order, for progress (Done of Total).
var steps = []string{store.UpdateStepSnapshot, store.UpdateStepStaging, store.UpdateStepStagingApply,
	store.UpdateStepSmoke, store.UpdateStepCleanup, store.UpdateStepApply, store.UpdateStepDone}

var stepMessages = map[string]string{
	store.UpdateStepSnapshot:     "finding the latest snapshot",
	store.UpdateStepStaging:      "creating the staging site from the snapshot",
	store.UpdateStepStagingApply: "applying the change on the staging site",
	store.UpdateStepSmoke:        "checking the staging site's smoke test",
	store.UpdateStepCleanup:      "deleting the staging site",
	store.UpdateStepApply:        "applying the change to the site",
	store.UpdateStepDone:         "done",
}

// updateRun is one run of a staged update.
type updateRun struct {
	c   *Controller
	job *store.Job
	p   store.UpdateParams
	res store.UpdateResult
}

// update runs a staged update job from the step its result records.
func (c *Controller) update(ctx context.Context, j *store.Job) (*store.UpdateResult, error) {
	u := &updateRun{c: c, job: j}
	if err := json.Unmarshal(j.Params, &u.p); err != nil {
		return nil, fmt.Errorf("update params: %w", err)
	}
	if len(j.Result) > 0 {
		if err := json.Unmarshal(j.Result, &u.res); err != nil {
			return nil, fmt.Errorf("update result: %w", err)
		}
	}
	err := u.run(ctx)
	if ctx.Err() != nil {
		return &u.res, ctx.Err()
	}
	u.res.Duration = c.cfg.Clock().Sub(j.CreatedAt).Round(time.Millisecond).String()
	if err != nil && u.res.Error == "" {
		u.res.Error = err.Error()
	}
	if err == nil && u.res.Error != "" {
		err = errors.New(u.res.Error)
	}
	return &u.res, err
}

// step moves to the next step and records it.
func (u *updateRun) step(ctx context.Context, s string) error {
	u.res.Step = s
	return u.save(ctx)
}

func (u *updateRun) save(ctx context.Context) error {
	i := 0
	for k, s := range steps {
		if s == u.res.Step {
			i = k
		}
	}
	msg := stepMessages[u.res.Step]
	if u.res.Error != "" && u.res.Step != store.UpdateStepDone {
		msg += " (the update failed: " + firstLine(u.res.Error) + ")"
	}
	return u.c.save(ctx, u.job.ID, u.res, store.JobProgress{Done: int64(i), Total: int64(len(steps) - 1), Message: msg})
}

// fail records why the update fails; the staging site (if any) is cleaned
// up next.
func (u *updateRun) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	u.res.Error = err.Error()
	return u.step(ctx, store.UpdateStepCleanup)
}

func (u *updateRun) run(ctx context.Context) error {
	if u.res.Step == "" {
		if err := u.start(ctx); err != nil {
			return err
		}
	}
	for {
		var err error
		switch u.res.Step {
		case store.UpdateStepSnapshot:
			err = u.snapshot(ctx)
		case store.UpdateStepStaging:
			err = u.staging(ctx)
		case store.UpdateStepStagingApply:
			err = u.stagingApply(ctx)
		case store.UpdateStepSmoke:
			err = u.smoke(ctx)
		case store.UpdateStepCleanup:
			err = u.cleanup(ctx)
		case store.UpdateStepApply:
			err = u.apply(ctx)
		case store.UpdateStepDone:
			return nil
		default:
			return fmt.Errorf("unknown update step %q", u.res.Step)
		}
		if err != nil {
			return err
		}
	}
}

// getSite reads the site the job updates; it must be the same
// incarnation.
func (u *updateRun) getSite(ctx context.Context) (*site.Site, error) {
	st, err := u.c.cfg.Store.GetSite(ctx, u.job.Site)
	if errors.Is(err, store.ErrNotFound) || err == nil && st.Metadata.UID != u.job.SiteUID {
		return nil, fmt.Errorf("site %s was deleted", u.job.Site)
	}
	if err != nil {
		return nil, fmt.Errorf("get site %s: %w", u.job.Site, err)
	}
	return st, nil
}

// start records the site's code before and after the change.
func (u *updateRun) start(ctx context.Context) error {
	st, err := u.getSite(ctx)
	if err != nil {
		return err
	}
	before := st.Spec.Code()
	spec := st.Spec
	spec.SetCode(before)
	if err := ApplyChange(&spec, u.p); err != nil {
		return fmt.Errorf("the change does not apply to the site's spec: %w", err)
	}
	after := spec.Code()
	u.res.Before, u.res.After = &before, &after
	if u.p.SkipStaging {
		return u.step(ctx, store.UpdateStepApply)
	}
	return u.step(ctx, store.UpdateStepSnapshot)
}

// snapshot finds the site's latest snapshot taken after its last code
// change, or takes one.
func (u *updateRun) snapshot(ctx context.Context) error {
	c := u.c
	st, err := u.getSite(ctx)
	if err != nil {
		return u.fail(ctx, err)
	}
	if u.res.BackupJob == "" {
		var since time.Time
		l, err := c.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: st.Metadata.Name, Kind: store.JobCode,
			Phases: []store.JobPhase{store.JobSucceeded, store.JobFailed}, Limit: 1})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 && l.Items[0].FinishedAt != nil {
			since = *l.Items[0].FinishedAt
		}
		e, err := catalog.Latest(ctx, c.cfg.Store, st.Metadata.Name, st.Metadata.UID)
		if err != nil {
			return err
		}
		if e != nil && !e.Time.Before(since) {
			u.res.Snapshot = e.Ref
			return u.step(ctx, store.UpdateStepStaging)
		}
		// Take one (or adopt the backup already under way).
		l, err = c.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: st.Metadata.Name, Kind: store.JobBackup, Phases: active, Limit: 1})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 && l.Items[0].SiteUID == st.Metadata.UID {
			u.res.BackupJob = l.Items[0].ID
		} else {
			if st.Status.Shard == "" {
				return u.fail(ctx, fmt.Errorf("site %s is not placed on a shard", st.Metadata.Name))
			}
			j, err := c.newJob(ctx, store.JobBackup, st.Metadata.Name, st.Metadata.UID, st.Status.Shard, store.BackupParams{Reason: ReasonPreUpdate})
			if err != nil {
				return err
			}
			u.res.BackupJob = j.ID
		}
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	j, err := c.waitJob(ctx, u.res.BackupJob, "the backup before the update")
	if err != nil {
		return u.fail(ctx, err)
	}
	e, ok := catalog.FromJob(j)
	if !ok {
		return u.fail(ctx, fmt.Errorf("the backup before the update failed (job %s): %s", j.ID, j.Error))
	}
	u.res.Snapshot = e.Ref
	return u.step(ctx, store.UpdateStepStaging)
}

// staging creates the staging site (once: its name comes from the job's
// ID) and waits until it is Ready.
func (u *updateRun) staging(ctx context.Context) error {
	c := u.c
	name := site.StagingName(u.job.Site, u.job.ID)
	if u.res.Staging != name {
		u.res.Staging = name
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	if _, err := u.getStaging(ctx); errors.Is(err, errNoStaging) {
		st, err := u.getSite(ctx)
		if err != nil {
			return u.fail(ctx, err)
		}
		uid, err := newUID()
		if err != nil {
			return err
		}
		spec := st.Spec
		spec.SetCode(*u.res.Before)
		spec.Backup.EveryHours = -1
		spec.HTTPSRedirect = false
		clone := siteclone.New(siteclone.Request{
			Spec: spec, Snapshot: u.res.Snapshot, FromSite: st.Metadata.Name,
			Domain: name, UID: uid, Org: st.Metadata.Org, Now: c.cfg.Clock(),
			Labels: map[string]string{site.LabelStagingOf: st.Metadata.Name, site.LabelUpdateJob: u.job.ID},
			Shard:  st.Status.Shard, URL: c.cfg.PublicURL(name),
		}, c.cfg.Plans)
		if err := c.cfg.Store.CreateSite(ctx, clone); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create staging site %s: %w", name, err)
		}
		c.cfg.Notify()
		c.log.Info("staging site created", "job", u.job.ID, "site", u.job.Site, "staging", name, "snapshot", u.res.Snapshot)
	} else if err != nil {
		return u.fail(ctx, err)
	}
	err := c.waitUntil(ctx, "the staging site "+name+" to be Ready", func(ctx context.Context) (bool, error) {
		st, err := u.getStaging(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case st.Status.Phase == site.PhaseFailed:
			return false, fmt.Errorf("the staging site %s failed: %s", name, conditionsText(st))
		case st.Status.Phase == site.PhaseReady && st.Status.ObservedGeneration >= st.Metadata.Generation:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return u.fail(ctx, err)
	}
	return u.step(ctx, store.UpdateStepStagingApply)
}

var errNoStaging = errors.New("the staging site is gone")

// getStaging reads the staging site; errNoStaging when it does not exist
// (or is not this job's).
func (u *updateRun) getStaging(ctx context.Context) (*site.Site, error) {
	st, err := u.c.cfg.Store.GetSite(ctx, u.res.Staging)
	if errors.Is(err, store.ErrNotFound) || err == nil && st.Metadata.Labels[site.LabelUpdateJob] != u.job.ID {
		return nil, errNoStaging
	}
	if err != nil {
		return nil, fmt.Errorf("get staging site: %w", err)
	}
	return st, nil
}

// stagingApply puts the change into the staging site's spec and runs a
// code job there with the update's smoke test.
func (u *updateRun) stagingApply(ctx context.Context) error {
	c := u.c
	if u.res.StagingJob == "" {
		st, err := u.getStaging(ctx)
		if err != nil {
			return u.fail(ctx, err)
		}
		if !reflect.DeepEqual(st.Spec.Code(), *u.res.After) {
			st, err = c.cfg.Store.UpdateSite(ctx, st.Metadata.Name, func(s *site.Site) error {
				s.Spec.SetCode(*u.res.After)
				return nil
			})
			if err != nil {
				return fmt.Errorf("change the staging site's spec: %w", err)
			}
			c.cfg.Notify()
		}
		id, err := u.codeJob(ctx, st)
		if err != nil {
			return err
		}
		u.res.StagingJob = id
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	j, err := c.waitJob(ctx, u.res.StagingJob, "the code job on the staging site")
	if err != nil {
		return u.fail(ctx, err)
	}
	u.res.StagingResult = codeResult(j)
	return u.step(ctx, store.UpdateStepSmoke)
}

// codeJob returns the update's code job on st at its generation: the one a
// crashed run created, or a new one.
func (u *updateRun) codeJob(ctx context.Context, st *site.Site) (string, error) {
	jobs, err := ctljobs.List(ctx, u.c.cfg.Store, store.JobListOptions{Site: st.Metadata.Name, Kind: store.JobCode})
	if err != nil {
		return "", err
	}
	for _, j := range jobs {
		var p store.CodeParams
		if j.SiteUID == st.Metadata.UID && json.Unmarshal(j.Params, &p) == nil && p.Reason == ReasonUpdate &&
			p.Generation == st.Metadata.Generation && j.CreatedAt.After(u.job.CreatedAt.Add(-time.Second)) {
			return j.ID, nil
		}
	}
	if st.Status.Shard == "" {
		return "", fmt.Errorf("site %s is not placed on a shard", st.Metadata.Name)
	}
	j, err := u.c.newJob(ctx, store.JobCode, st.Metadata.Name, st.Metadata.UID, st.Status.Shard,
		store.CodeParams{Generation: st.Metadata.Generation, Reason: ReasonUpdate, Smoke: u.p.Smoke})
	if err != nil {
		return "", err
	}
	return j.ID, nil
}

// codeResult reads a finished code job's result (a job that failed
// without one gets its error).
func codeResult(j *store.Job) *store.CodeResult {
	var r store.CodeResult
	if len(j.Result) > 0 && json.Unmarshal(j.Result, &r) == nil {
		if j.Phase == store.JobFailed && r.Error == "" {
			r.Error = j.Error
		}
		return &r
	}
	return &store.CodeResult{Error: cmpOr(j.Error, "the code job reported no result")}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// judge says whether a code job passed: it succeeded, did not roll back,
// and every check it ran passed; else why not.
func judge(j *store.Job, r *store.CodeResult) (bool, string) {
	var failed []string
	for _, ch := range r.Checks {
		if !ch.OK {
			failed = append(failed, strings.TrimSpace(ch.Name+": "+ch.Detail))
		}
	}
	switch {
	case r.RolledBack:
		return false, "rolled back: " + cmpOr(r.Error, j.Error)
	case j.Phase != store.JobSucceeded:
		return false, cmpOr(r.Error, cmpOr(j.Error, "the code job failed"))
	case r.Error != "":
		return false, r.Error
	case len(failed) > 0:
		return false, "failed checks: " + strings.Join(failed, "; ")
	}
	return true, ""
}

// smoke judges the staging site's code job.
func (u *updateRun) smoke(ctx context.Context) error {
	j, err := u.c.cfg.Store.GetJob(ctx, u.res.StagingJob)
	if err != nil {
		return fmt.Errorf("get job %s: %w", u.res.StagingJob, err)
	}
	if u.res.StagingResult == nil {
		u.res.StagingResult = codeResult(j)
	}
	if ok, why := judge(j, u.res.StagingResult); !ok {
		u.res.Error = "refused: the change failed on the staging site, the site was not touched: " + why
	} else if after, err := pinTested(*u.res.After, u.p, u.res.StagingResult); err != nil {
		u.res.Error = "refused: " + err.Error() + "; the site was not touched"
	} else {
		u.res.After = &after
	}
	return u.step(ctx, store.UpdateStepCleanup)
}

// pinTested returns after with every catalogue extension the change
// names without a version ("" or "latest") pinned to the version the
// staging site's code job installed (r): the site then gets exactly what
// the staging site tested, even when the catalogue has a newer version
// by the time the change reaches the site.
func pinTested(after site.CodeSpec, p store.UpdateParams, r *store.CodeResult) (site.CodeSpec, error) {
	after.Plugins, after.Themes = slices.Clone(after.Plugins), slices.Clone(after.Themes)
	for _, l := range []struct {
		kind    string
		changed []site.Extension
		list    []site.Extension
	}{{"plugin", p.Plugins, after.Plugins}, {"theme", p.Themes, after.Themes}} {
		for i, e := range l.list {
			if !slices.ContainsFunc(l.changed, func(c site.Extension) bool { return c.Name == e.Name }) ||
				e.Source.SourceType() != site.SourceWordPressOrg || e.Version != "" && e.Version != "latest" {
				continue
			}
			v := testedVersion(r, l.kind, e.Name)
			if v == "" {
				return after, fmt.Errorf("the staging site's code job did not report which version of %s %s it tested", l.kind, e.Name)
			}
			l.list[i].Version = v
		}
	}
	only := site.Spec{Plugins: after.Plugins, Themes: after.Themes}
	if err := only.ValidateCode(); err != nil {
		return after, fmt.Errorf("the version the staging site tested cannot be pinned: %w", err)
	}
	return after, nil
}

// testedVersion is the version of kind name that the code job (r)
// installed, or else the one it observed; "" when it reported neither.
func testedVersion(r *store.CodeResult, kind, name string) string {
	if r == nil {
		return ""
	}
	for _, c := range r.Changes {
		if c.Kind == kind && c.Name == name && (c.Action == "install" || c.Action == "update") && c.To != "" && c.To != "latest" {
			return c.To
		}
	}
	if r.Observed == nil {
		return ""
	}
	list := r.Observed.Plugins
	if kind == "theme" {
		list = r.Observed.Themes
	}
	for _, x := range list {
		if x.Name == name && x.Version != "" {
			return x.Version
		}
	}
	return ""
}

// cleanup deletes the staging site and waits until it is gone; then the
// update applies the change to the site, or ends when it failed.
func (u *updateRun) cleanup(ctx context.Context) error {
	c := u.c
	if u.res.Staging != "" {
		st, err := u.getStaging(ctx)
		switch {
		case errors.Is(err, errNoStaging):
		case err != nil:
			return err
		default:
			if err := c.requestDeletion(ctx, st.Metadata.Name, st.Metadata.UID); err != nil {
				return err
			}
			err := c.waitUntil(ctx, "the staging site "+u.res.Staging+" to be deleted", func(ctx context.Context) (bool, error) {
				_, err := u.getStaging(ctx)
				if errors.Is(err, errNoStaging) {
					return true, nil
				}
				return false, err
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// The deletion goes on; orphans are collected.
				c.log.Warn("staging site not deleted yet", "job", u.job.ID, "staging", u.res.Staging, "err", err)
			} else {
				c.log.Info("staging site deleted", "job", u.job.ID, "staging", u.res.Staging)
			}
		}
	}
	if u.res.Error != "" {
		return u.step(ctx, store.UpdateStepDone)
	}
	return u.step(ctx, store.UpdateStepApply)
}

// apply changes the site's spec (unless someone changed its code since the
// update started) and runs its code job; when that fails (and rolled the
// site back), the spec is put back too.
func (u *updateRun) apply(ctx context.Context) error {
	c := u.c
	if u.res.Generation == 0 {
		var changed bool
		st, err := c.cfg.Store.UpdateSite(ctx, u.job.Site, func(s *site.Site) error {
			if s.Metadata.UID != u.job.SiteUID {
				return fmt.Errorf("site %s was deleted", u.job.Site)
			}
			if s.Metadata.DeletionRequested != nil {
				return fmt.Errorf("site %s is being deleted", u.job.Site)
			}
			code := s.Spec.Code()
			switch {
			case reflect.DeepEqual(code, *u.res.After):
				// A crashed run changed it already.
			case reflect.DeepEqual(code, *u.res.Before):
				s.Spec.SetCode(*u.res.After)
				changed = true
			default:
				return fmt.Errorf("the site's code (spec) changed while the update ran; nothing was applied: start a new update")
			}
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("site %s was deleted", u.job.Site)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			u.res.Error = err.Error()
			return u.step(ctx, store.UpdateStepDone)
		}
		if changed {
			c.cfg.Notify()
		}
		u.res.Generation = st.Metadata.Generation
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	if u.res.Job == "" {
		st, err := u.getSite(ctx)
		if err != nil {
			u.res.Error = err.Error()
			return u.step(ctx, store.UpdateStepDone)
		}
		// The job is created for the update's generation (a later
		// change of the spec is applied by it too, as any code job does).
		at := *st
		at.Metadata.Generation = u.res.Generation
		id, err := u.codeJob(ctx, &at)
		if err != nil {
			return err
		}
		u.res.Job = id
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	j, err := c.waitJob(ctx, u.res.Job, "the code job on the site")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		u.res.Error = "the change is in the site's spec but its code job did not end: " + err.Error()
		return u.step(ctx, store.UpdateStepDone)
	}
	u.res.Result = codeResult(j)
	if ok, why := judge(j, u.res.Result); ok {
		u.res.Applied = true
		return u.step(ctx, store.UpdateStepDone)
	} else {
		u.res.Error = "the change failed on the site and was rolled back: " + why
	}
	// Put the spec back, unless it changed again since.
	_, err = c.cfg.Store.UpdateSite(ctx, u.job.Site, func(s *site.Site) error {
		if s.Metadata.UID != u.job.SiteUID || s.Metadata.Generation != u.res.Generation {
			return errSkip
		}
		s.Spec.SetCode(*u.res.Before)
		return nil
	})
	switch {
	case err == nil:
		u.res.Reverted = true
		c.cfg.Notify()
	case errors.Is(err, errSkip), errors.Is(err, store.ErrNotFound):
	default:
		return fmt.Errorf("put the site's spec back: %w", err)
	}
	return u.step(ctx, store.UpdateStepDone)
}

func conditionsText(st *site.Site) string {
	var parts []string
	for _, cd := range st.Status.Conditions {
		if cd.Status != "True" && cd.Message != "" {
			parts = append(parts, cd.Type+": "+cd.Message)
		}
	}
	if len(parts) == 0 {
		return string(st.Status.Phase)
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
