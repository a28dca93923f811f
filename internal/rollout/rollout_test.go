package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// These tests run the controller against the real SQLite store; a
// simulated shard (sim) plays the shard's side: it makes sites Ready,
// deletes the sites whose deletion is requested, and ends backup and code
// jobs. A code job fails (rolled back, as the shard's would) when the
// site's spec runs an active plugin named "broken", or when the test's
// failOn says so. The end-to-end test on a real platform is in e2e/.

type sim struct {
	st store.Store
	// failOn makes a code job on a site fail (besides "broken").
	failOn func(st *site.Site) bool
	// hold keeps a job pending (a shard that has not got to it yet).
	hold func(j *store.Job) bool
	// onWrite is called after each write (wakes the controller).
	onWrite func()
	// latest, when set, is the catalogue's newest version of a plugin
	// for a code job on st: a code job installs it for each plugin its
	// spec does not pin, and reports it (Changes, Observed).
	latest func(st *site.Site, name string) string

	mu      sync.Mutex
	backups int
	wake    chan struct{}
}

func (s *sim) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sim) run(ctx context.Context) {
	for {
		if err := s.step(ctx); err != nil && ctx.Err() == nil {
			panic(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *sim) step(ctx context.Context) error {
	sites, err := s.st.ListSites(ctx, store.ListOptions{Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	for _, st := range sites.Items {
		switch {
		case st.Metadata.DeletionRequested != nil:
			if err := s.st.DeleteSite(ctx, st.Metadata.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			s.onWrite()
		case st.Status.Phase != site.PhaseReady || st.Status.ObservedGeneration < st.Metadata.Generation:
			if _, err := s.st.UpdateSite(ctx, st.Metadata.Name, func(x *site.Site) error {
				x.Status.Phase, x.Status.ObservedGeneration = site.PhaseReady, x.Metadata.Generation
				return nil
			}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			s.onWrite()
		}
	}
	jobs, err := s.st.ListJobs(ctx, store.JobListOptions{Phases: []store.JobPhase{store.JobPending}, Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	for _, j := range jobs.Items {
		if j.Shard == "" || (s.hold != nil && s.hold(&j)) {
			continue
		}
		var (
			res    any
			failed string
		)
		now := time.Now().UTC()
		switch j.Kind {
		case store.JobBackup:
			s.mu.Lock()
			s.backups++
			n := s.backups
			s.mu.Unlock()
			res = store.BackupResult{Snapshot: fmt.Sprintf("%s:snap%d", j.Shard, n), Time: now}
		case store.JobCode:
			st, err := s.st.GetSite(ctx, j.Site)
			if err != nil {
				failed = "site gone"
				break
			}
			cr := store.CodeResult{Generation: st.Metadata.Generation, Checks: []store.HealthCheck{{Name: "GET /", OK: true}}}
			if s.latest != nil {
				cr.Observed = &site.CodeStatus{}
				for _, p := range st.Spec.Plugins {
					v := p.Version
					if v == "" || v == "latest" {
						v = s.latest(st, p.Name)
						cr.Changes = append(cr.Changes, store.CodeChange{Action: "update", Kind: "plugin", Name: p.Name, To: v})
					}
					cr.Observed.Plugins = append(cr.Observed.Plugins, site.InstalledExtension{Name: p.Name, Version: v, Active: p.Active, Source: site.SourceWordPressOrg})
				}
			}
			broken := slices.ContainsFunc(st.Spec.Plugins, func(e site.Extension) bool { return e.Name == "broken" && e.Active })
			if broken || s.failOn != nil && s.failOn(st) {
				cr.Checks[0] = store.HealthCheck{Name: "GET /", OK: false, Detail: "status 500"}
				cr.RolledBack, cr.Error = true, "health check failed: GET / answered 500 (PHP Fatal error)"
				failed = cr.Error
			}
			res = cr
		default:
			failed = "unexpected job kind"
		}
		raw, _ := json.Marshal(res)
		if _, err := s.st.UpdateJob(ctx, j.ID, func(x *store.Job) error {
			x.Phase, x.Result, x.StartedAt, x.FinishedAt = store.JobSucceeded, raw, &now, &now
			if failed != "" {
				x.Phase, x.Error = store.JobFailed, failed
			}
			return nil
		}); err != nil {
			return err
		}
		s.onWrite()
	}
	return nil
}

type env struct {
	t   *testing.T
	ctx context.Context
	st  store.Store
	sim *sim
	c   *Controller
	// stop ends the controller (a crash: jobs stay Running).
	stop func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateShard(ctx, &store.Shard{Name: "s1", Phase: store.ShardReady, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, st: st}
	e.sim = &sim{st: st, wake: make(chan struct{}, 1), onWrite: func() {
		if e.c != nil {
			e.c.Wake()
		}
	}}
	simCtx, simCancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.sim.run(simCtx) }()
	t.Cleanup(func() { simCancel(); <-done })
	e.start()
	return e
}

// start runs a (new) controller.
func (e *env) start() {
	ctx, cancel := context.WithCancel(e.ctx)
	c := New(Config{Store: e.st, Poll: 5 * time.Millisecond, Tick: 10 * time.Millisecond, Notify: e.sim.Wake})
	e.c = c
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	e.stop = func() { cancel(); <-done }
	e.t.Cleanup(e.stop)
}

func ext(name, version string, active bool) site.Extension {
	return site.Extension{Name: name, Version: version, Active: active}
}

// addSite stores a Ready site on s1 with plugin hello 1.0 and, when
// snapshot, a succeeded backup (newer than any code job).
func (e *env) addSite(name string, snapshot bool) *site.Site {
	e.t.Helper()
	st := &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-" + name, Org: store.DefaultOrg, CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: name, Title: "T", Plan: "basic",
			Plugins: []site.Extension{ext("hello", "1.0", true)},
			Themes:  []site.Extension{{Name: "twentytwentythree", Source: site.ExtensionSource{Type: site.SourceBundled}, Active: true}}},
		Status: site.Status{Phase: site.PhaseReady, Shard: "s1", ObservedGeneration: 1},
	}
	if err := e.st.CreateSite(e.ctx, st); err != nil {
		e.t.Fatal(err)
	}
	if snapshot {
		now := time.Now().UTC()
		raw, _ := json.Marshal(store.BackupResult{Snapshot: "s1:old-" + name, Time: now})
		if err := e.st.CreateJob(e.ctx, &store.Job{ID: "job-backup-" + name, Kind: store.JobBackup, Site: name, SiteUID: st.Metadata.UID,
			Shard: "s1", Phase: store.JobSucceeded, Result: raw, CreatedAt: now, StartedAt: &now, FinishedAt: &now}); err != nil {
			e.t.Fatal(err)
		}
	}
	got, err := e.st.GetSite(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func (e *env) createJob(kind store.JobKind, siteName string, params any) *store.Job {
	e.t.Helper()
	uid := ""
	if siteName != "" {
		st, err := e.st.GetSite(e.ctx, siteName)
		if err != nil {
			e.t.Fatal(err)
		}
		uid = st.Metadata.UID
	}
	raw, _ := json.Marshal(params)
	j := &store.Job{ID: "job-" + string(kind) + "-" + siteName, Kind: kind, Site: siteName, SiteUID: uid, Params: raw,
		Phase: store.JobPending, CreatedAt: time.Now().UTC()}
	if err := e.st.CreateJob(e.ctx, j); err != nil {
		e.t.Fatal(err)
	}
	e.c.Wake()
	return j
}

// waitFor polls cond until it holds (the test's deadline bounds it).
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (e *env) waitJob(id string) *store.Job {
	e.t.Helper()
	var j *store.Job
	e.waitFor("job "+id+" to end", func() bool {
		var err error
		j, err = e.st.GetJob(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		return finished(j)
	})
	return j
}

func updateResult(t *testing.T, j *store.Job) store.UpdateResult {
	t.Helper()
	var r store.UpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		t.Fatalf("job %s result %s: %v", j.ID, j.Result, err)
	}
	return r
}

// jobsOf lists a site's jobs of a kind, oldest first.
func (e *env) jobsOf(siteName string, kind store.JobKind) []store.Job {
	e.t.Helper()
	l, err := ctljobs.List(e.ctx, e.st, store.JobListOptions{Site: siteName, Kind: kind})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(l)
	return l
}

func (e *env) stagingSites() []string {
	e.t.Helper()
	l, err := e.st.ListSites(e.ctx, store.ListOptions{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, s := range l.Items {
		if site.IsStaging(s.Metadata.Name) {
			out = append(out, s.Metadata.Name)
		}
	}
	return out
}

func pluginVersion(st *site.Site, name string) string {
	for _, p := range st.Spec.Plugins {
		if p.Name == name {
			return p.Version
		}
	}
	return ""
}

func TestStagedUpdateApplied(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", true)
	smoke := store.SmokeTest{Paths: []string{"/shop"}, Contains: "Welcome"}
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}, Smoke: smoke}).ID)
	r := updateResult(t, j)
	if j.Phase != store.JobSucceeded || !r.Applied || r.Step != store.UpdateStepDone || r.Error != "" {
		t.Fatalf("update: phase %s, result %+v, error %q", j.Phase, r, j.Error)
	}
	if r.Snapshot != "s1:old-blog.example.com" || r.BackupJob != "" {
		t.Errorf("snapshot %q, backup job %q: want the existing snapshot, no new backup", r.Snapshot, r.BackupJob)
	}
	if !site.IsStaging(r.Staging) || !strings.Contains(r.Staging, "blog-example-com") {
		t.Errorf("staging site %q", r.Staging)
	}
	if got := e.stagingSites(); len(got) != 0 {
		t.Errorf("staging sites left: %v", got)
	}
	st, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if v := pluginVersion(st, "hello"); v != "2.0" || st.Metadata.Generation != r.Generation {
		t.Errorf("site: hello %q at generation %d, want 2.0 at %d", v, st.Metadata.Generation, r.Generation)
	}
	// One code job on the staging site and one on the site, both with
	// the update's smoke test.
	for _, name := range []string{r.Staging, "blog.example.com"} {
		jobs := e.jobsOf(name, store.JobCode)
		if len(jobs) != 1 {
			t.Fatalf("%s: %d code jobs, want 1", name, len(jobs))
		}
		var p store.CodeParams
		_ = json.Unmarshal(jobs[0].Params, &p)
		if p.Reason != ReasonUpdate || !slices.Equal(p.Smoke.Paths, smoke.Paths) || p.Smoke.Contains != smoke.Contains {
			t.Errorf("%s: code params %+v", name, p)
		}
	}
	if r.StagingResult == nil || r.Result == nil || r.Before == nil || r.After == nil || r.Before.Plugins[0].Version != "1.0" {
		t.Errorf("report incomplete: %+v", r)
	}
}

// An update to the catalogue's latest version gives the site the version
// the staging site tested, pinned in its spec, even when the catalogue
// has a newer one by the time the change reaches the site.
func TestUpdateToLatestPinsTheTestedVersion(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", true)
	e.sim.latest = func(st *site.Site, name string) string {
		if site.IsStaging(st.Metadata.Name) {
			return "2.0" // the newest while the staging site is tested
		}
		return "3.0" // released since
	}
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "latest", false)}, KeepActive: true}).ID)
	r := updateResult(t, j)
	if j.Phase != store.JobSucceeded || !r.Applied {
		t.Fatalf("update: phase %s, result %+v, error %q", j.Phase, r, j.Error)
	}
	st, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if v := pluginVersion(st, "hello"); v != "2.0" {
		t.Errorf("site's spec: hello %q, want 2.0 (the version the staging site tested)", v)
	}
	if r.After == nil || r.After.Plugins[0].Version != "2.0" || !r.After.Plugins[0].Active {
		t.Errorf("report's after: %+v", r.After)
	}
	if obs := r.Result.Observed; obs == nil || obs.Plugins[0].Version != "2.0" {
		t.Errorf("the site's code job installed %+v, want hello 2.0", obs)
	}
}

// When the staging site's code job does not say which version it tested,
// an update to "latest" is refused rather than giving the site an untested
// version.
func TestUpdateToLatestRefusedWithoutTheTestedVersion(t *testing.T) {
	e := newEnv(t)
	before := e.addSite("blog.example.com", true)
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "", true)}}).ID)
	r := updateResult(t, j)
	if j.Phase != store.JobFailed || r.Applied || !strings.Contains(r.Error, "did not report which version of plugin hello") {
		t.Fatalf("update: phase %s, result %+v", j.Phase, r)
	}
	after, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if after.Metadata.Generation != before.Metadata.Generation {
		t.Errorf("the site changed: generation %d → %d", before.Metadata.Generation, after.Metadata.Generation)
	}
}

func TestStagedUpdateRefusedNeverTouchesTheSite(t *testing.T) {
	e := newEnv(t)
	before := e.addSite("blog.example.com", true)
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("broken", "2.0", true)}}).ID)
	r := updateResult(t, j)
	if j.Phase != store.JobFailed || r.Applied || !strings.Contains(r.Error, "refused") || !strings.Contains(r.Error, "PHP Fatal") {
		t.Fatalf("update: phase %s, error %q, result %+v", j.Phase, j.Error, r)
	}
	if r.StagingResult == nil || !r.StagingResult.RolledBack || r.Result != nil || r.Generation != 0 {
		t.Errorf("report: %+v", r)
	}
	after, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if after.Metadata.Generation != before.Metadata.Generation || pluginVersion(after, "broken") != "" {
		t.Errorf("the site changed: generation %d → %d, plugins %+v", before.Metadata.Generation, after.Metadata.Generation, after.Spec.Plugins)
	}
	if jobs := e.jobsOf("blog.example.com", store.JobCode); len(jobs) != 0 {
		t.Errorf("code jobs on the site: %d", len(jobs))
	}
	if got := e.stagingSites(); len(got) != 0 {
		t.Errorf("staging sites left: %v", got)
	}
}

func TestUpdateTakesASnapshotWhenNoneIsFresh(t *testing.T) {
	e := newEnv(t)
	e.addSite("a.example.com", false) // no snapshot at all
	e.addSite("b.example.com", true)
	// b's snapshot is older than its last code job.
	now := time.Now().UTC().Add(time.Second)
	if err := e.st.CreateJob(e.ctx, &store.Job{ID: "job-code-b", Kind: store.JobCode, Site: "b.example.com", SiteUID: "uid-b.example.com",
		Shard: "s1", Phase: store.JobSucceeded, CreatedAt: now, FinishedAt: &now, Params: []byte(`{"generation":1}`)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example.com", "b.example.com"} {
		j := e.waitJob(e.createJob(store.JobUpdate, name, store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}).ID)
		r := updateResult(t, j)
		if !r.Applied || r.BackupJob == "" {
			t.Fatalf("%s: %+v", name, r)
		}
		b, _ := e.st.GetJob(e.ctx, r.BackupJob)
		var p store.BackupParams
		_ = json.Unmarshal(b.Params, &p)
		if p.Reason != ReasonPreUpdate || !strings.HasPrefix(r.Snapshot, "s1:snap") {
			t.Errorf("%s: backup reason %q, snapshot %q", name, p.Reason, r.Snapshot)
		}
	}
}

func TestUpdateFailingOnTheSiteRevertsTheSpec(t *testing.T) {
	e := newEnv(t)
	before := e.addSite("blog.example.com", true)
	e.sim.failOn = func(st *site.Site) bool { return st.Metadata.Name == "blog.example.com" }
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}).ID)
	r := updateResult(t, j)
	if j.Phase != store.JobFailed || r.Applied || !r.Reverted || !strings.Contains(r.Error, "rolled back") || r.StagingResult == nil || r.Result == nil {
		t.Fatalf("update: phase %s, result %+v", j.Phase, r)
	}
	after, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if pluginVersion(after, "hello") != "1.0" || after.Metadata.Generation != before.Metadata.Generation+2 {
		t.Errorf("spec not put back: hello %q, generation %d (was %d)", pluginVersion(after, "hello"), after.Metadata.Generation, before.Metadata.Generation)
	}
}

func TestSkipStaging(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", false)
	j := e.waitJob(e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}, SkipStaging: true}).ID)
	r := updateResult(t, j)
	if !r.Applied || r.Staging != "" || r.Snapshot != "" || len(e.jobsOf("blog.example.com", store.JobBackup)) != 0 {
		t.Fatalf("skip staging: %+v", r)
	}
}

func TestUpdateRefusesWhenTheSpecChangedMeanwhile(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", true)
	// The staging code job waits until the site's spec is changed by
	// someone else.
	changed := make(chan struct{})
	e.sim.hold = func(j *store.Job) bool {
		select {
		case <-changed:
			return false
		default:
			return j.Kind == store.JobCode
		}
	}
	id := e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}).ID
	e.waitFor("the staging code job", func() bool {
		return len(e.stagingSites()) == 1 && len(e.jobsOf(e.stagingSites()[0], store.JobCode)) == 1
	})
	if _, err := e.st.UpdateSite(e.ctx, "blog.example.com", func(s *site.Site) error {
		s.Spec.Plugins = append(s.Spec.Plugins, ext("other", "1.0", false))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(changed)
	j := e.waitJob(id)
	r := updateResult(t, j)
	if r.Applied || !strings.Contains(r.Error, "changed while the update ran") {
		t.Fatalf("update: %+v", r)
	}
	st, _ := e.st.GetSite(e.ctx, "blog.example.com")
	if pluginVersion(st, "hello") != "1.0" {
		t.Errorf("the site got the change: %+v", st.Spec.Plugins)
	}
}

// A crash (the controller stops) while the staging site's code job runs:
// a new controller resumes the update with the same staging site and code
// job, and finishes it.
func TestUpdateResumesAfterACrash(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", true)
	var release sync.Once
	held := make(chan struct{})
	e.sim.hold = func(j *store.Job) bool {
		select {
		case <-held:
			return false
		default:
			return j.Kind == store.JobCode
		}
	}
	id := e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}).ID
	e.waitFor("the staging code job", func() bool {
		j, _ := e.st.GetJob(e.ctx, id)
		return len(j.Result) > 0 && updateResult(t, j).StagingJob != ""
	})
	e.stop() // crash
	j, _ := e.st.GetJob(e.ctx, id)
	mid := updateResult(t, j)
	if j.Phase != store.JobRunning || mid.Step != store.UpdateStepStagingApply {
		t.Fatalf("after the crash: phase %s step %q", j.Phase, mid.Step)
	}
	e.start()
	release.Do(func() { close(held) })
	j = e.waitJob(id)
	r := updateResult(t, j)
	if !r.Applied || r.Staging != mid.Staging || r.StagingJob != mid.StagingJob || j.Attempts != 2 {
		t.Fatalf("resumed update: attempts %d, %+v (before the crash: %+v)", j.Attempts, r, mid)
	}
	if n := len(e.jobsOf(mid.Staging, store.JobCode)); n != 1 {
		t.Errorf("%d code jobs on the staging site, want 1", n)
	}
	if got := e.stagingSites(); len(got) != 0 {
		t.Errorf("staging sites left: %v", got)
	}
}

// An update that ended while its staging site still exists (a crash, then
// an operator failed the job): the pass deletes the orphan.
func TestOrphanedStagingSitesAreCollected(t *testing.T) {
	e := newEnv(t)
	e.addSite("blog.example.com", true)
	e.sim.hold = func(j *store.Job) bool { return j.Kind == store.JobCode }
	id := e.createJob(store.JobUpdate, "blog.example.com", store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}).ID
	e.waitFor("the staging site", func() bool { return len(e.stagingSites()) == 1 })
	e.stop()
	if _, err := e.st.UpdateJob(e.ctx, id, func(j *store.Job) error { j.Phase = store.JobFailed; return nil }); err != nil {
		t.Fatal(err)
	}
	// A customer's site with the labels is not a staging site.
	if _, err := e.st.UpdateSite(e.ctx, "blog.example.com", func(s *site.Site) error {
		s.Metadata.Labels = map[string]string{site.LabelUpdateJob: id, site.LabelStagingOf: "x"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitFor("the orphan's deletion", func() bool { return len(e.stagingSites()) == 0 })
	if _, err := e.st.GetSite(e.ctx, "blog.example.com"); err != nil {
		t.Fatalf("the site: %v", err)
	}
}

func fleetResult(t *testing.T, j *store.Job) store.FleetUpdateResult {
	t.Helper()
	var r store.FleetUpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		t.Fatalf("fleet result %s: %v", j.Result, err)
	}
	return r
}

func states(r store.FleetUpdateResult) [][]string {
	var out [][]string
	for _, w := range r.Waves {
		var ws []string
		for _, s := range w.Sites {
			ws = append(ws, s.Site+"="+s.State)
		}
		out = append(out, ws)
	}
	return out
}

func TestFleetCanaryFailureSkipsTheRest(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		e.addSite(n, true)
	}
	// The change breaks a (on its staging copy).
	e.sim.failOn = func(st *site.Site) bool { return st.Metadata.Labels[site.LabelStagingOf] == "a.example.com" }
	j := e.waitJob(e.createJob(store.JobFleetUpdate, "", store.FleetUpdateParams{
		Change: store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}},
		Sites:  []string{"a.example.com", "b.example.com", "c.example.com"}, Canary: 1, WaveSize: 10, MaxFailureRate: 0.2,
	}).ID)
	r := fleetResult(t, j)
	want := [][]string{{"a.example.com=failed"}, {"b.example.com=skipped", "c.example.com=skipped"}}
	if j.Phase != store.JobFailed || r.Stopped == "" || r.Failed != 1 || r.Skipped != 2 || r.Updated != 0 || fmt.Sprint(states(r)) != fmt.Sprint(want) {
		t.Fatalf("fleet: phase %s, %+v, states %v", j.Phase, r, states(r))
	}
	if r.Waves[0].Sites[0].Job == "" || !strings.Contains(r.Waves[0].Sites[0].Error, "refused") {
		t.Errorf("canary: %+v", r.Waves[0].Sites[0])
	}
	for _, n := range []string{"b.example.com", "c.example.com"} {
		if jobs := e.jobsOf(n, store.JobUpdate); len(jobs) != 0 {
			t.Errorf("%s: %d update jobs, want none", n, len(jobs))
		}
		if st, _ := e.st.GetSite(e.ctx, n); pluginVersion(st, "hello") != "1.0" {
			t.Errorf("%s was changed", n)
		}
	}
	// The canary's own update job reports with Fleet set.
	uj := e.jobsOf("a.example.com", store.JobUpdate)
	var p store.UpdateParams
	if len(uj) != 1 || json.Unmarshal(uj[0].Params, &p) != nil || p.Fleet != j.ID {
		t.Errorf("canary update jobs: %+v", uj)
	}
}

func TestFleetWavesWithTolerance(t *testing.T) {
	e := newEnv(t)
	names := []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com", "e.example.com"}
	for _, n := range names {
		e.addSite(n, true)
	}
	// d fails; its wave (c, d) is at 50%, within the 60% allowed.
	e.sim.failOn = func(st *site.Site) bool { return st.Metadata.Labels[site.LabelStagingOf] == "d.example.com" }
	j := e.waitJob(e.createJob(store.JobFleetUpdate, "", store.FleetUpdateParams{
		Change: store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}},
		Sites:  names, Canary: 1, WaveSize: 2, MaxFailureRate: 0.6, Parallel: 2,
	}).ID)
	r := fleetResult(t, j)
	want := [][]string{{"a.example.com=updated"}, {"b.example.com=updated", "c.example.com=updated"}, {"d.example.com=failed", "e.example.com=updated"}}
	if j.Phase != store.JobSucceeded || r.Stopped != "" || r.Updated != 4 || r.Failed != 1 || fmt.Sprint(states(r)) != fmt.Sprint(want) {
		t.Fatalf("fleet: phase %s (%s), %+v, states %v", j.Phase, j.Error, r, states(r))
	}
	for _, w := range r.Waves {
		if w.Started.IsZero() || w.Finished.IsZero() {
			t.Errorf("wave times: %+v", w)
		}
	}
	// Waves ran in order: each wave's updates were created after the
	// previous wave finished.
	for k := 1; k < len(r.Waves); k++ {
		for _, s := range r.Waves[k].Sites {
			uj, _ := e.st.GetJob(e.ctx, s.Job)
			if uj.CreatedAt.Before(r.Waves[k-1].Finished) {
				t.Errorf("%s's update started before wave %d ended", s.Site, k)
			}
		}
	}
}

// A fleet update interrupted in its second wave resumes without making a
// second update job for any site.
func TestFleetResumesAfterACrash(t *testing.T) {
	e := newEnv(t)
	names := []string{"a.example.com", "b.example.com", "c.example.com"}
	for _, n := range names {
		e.addSite(n, true)
	}
	held := make(chan struct{})
	e.sim.hold = func(j *store.Job) bool {
		select {
		case <-held:
			return false
		default:
			return j.Kind == store.JobCode && strings.Contains(j.Site, "c-example-com")
		}
	}
	id := e.createJob(store.JobFleetUpdate, "", store.FleetUpdateParams{
		Change: store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}}, Sites: names, Canary: 1, WaveSize: 2,
	}).ID
	e.waitFor("c's staging code job", func() bool {
		for _, s := range e.stagingSites() {
			if strings.Contains(s, "c-example-com") && len(e.jobsOf(s, store.JobCode)) == 1 {
				return true
			}
		}
		return false
	})
	e.stop()
	e.start()
	close(held)
	j := e.waitJob(id)
	r := fleetResult(t, j)
	if j.Phase != store.JobSucceeded || r.Updated != 3 {
		t.Fatalf("fleet: %s %+v", j.Phase, states(r))
	}
	for _, n := range names {
		if got := len(e.jobsOf(n, store.JobUpdate)); got != 1 {
			t.Errorf("%s: %d update jobs", n, got)
		}
	}
	if got := e.stagingSites(); len(got) != 0 {
		t.Errorf("staging sites left: %v", got)
	}
}

func TestWaves(t *testing.T) {
	s := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		sites, canary int
		size          int
		want          string
	}{
		{"none", 0, 1, 10, "[]"},
		{"canary only", 1, 1, 10, "[[0]]"},
		{"canary then one wave", 3, 1, 10, "[[0] [1 2]]"},
		{"even waves", 7, 1, 2, "[[0] [1 2] [3 4] [5 6]]"},
		{"last wave short", 6, 2, 3, "[[0 1] [2 3 4] [5]]"},
		{"canary larger than fleet", 2, 5, 3, "[[0 1]]"},
		{"zero sizes read as 1", 3, 0, 0, "[[0] [1] [2]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(Waves(s(tc.sites), tc.canary, tc.size)); got != tc.want && !(tc.want == "[]" && got == "[]") {
				t.Errorf("Waves(%d, %d, %d) = %s, want %s", tc.sites, tc.canary, tc.size, got, tc.want)
			}
		})
	}
}

func TestTooManyFailures(t *testing.T) {
	for _, tc := range []struct {
		failed, total int
		rate          float64
		want          bool
	}{
		{0, 1, 0, false},
		{1, 1, 0, true},
		{1, 1, 0.99, true},
		{1, 1, 1, false},
		{1, 5, 0.2, false}, // exactly the limit goes on
		{2, 5, 0.2, true},
		{1, 10, 0.2, false},
		{0, 0, 0, false},
	} {
		if got := TooManyFailures(tc.failed, tc.total, tc.rate); got != tc.want {
			t.Errorf("TooManyFailures(%d, %d, %g) = %v, want %v", tc.failed, tc.total, tc.rate, got, tc.want)
		}
	}
}
