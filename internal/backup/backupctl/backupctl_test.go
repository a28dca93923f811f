package backupctl

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/backup/schedule"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

var plans = map[string]site.BackupPolicy{
	"basic":    {EveryHours: 24, Keep: site.Retention{Daily: 14, Weekly: 8, Monthly: 12}},
	"business": {EveryHours: 1, Keep: site.Retention{Hourly: 48, Daily: 14, Weekly: 8, Monthly: 12}},
}

type env struct {
	st    store.Store
	repos *repos.Manager
	clock *clock
	c     *Controller
	dir   string
}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := repos.LoadKEK(filepath.Join(dir, repos.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := repos.New(repos.Config{BaseURL: repos.DefaultBaseURL(dir), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e := &env{st: st, repos: m, clock: &clock{now: t0}, dir: dir}
	cfg := Config{Store: st, Repos: m, Clock: e.clock.Now,
		Policy: func(s *site.Spec) site.BackupPolicy { return schedule.Effective(s.Backup, plans[s.Plan]) },
		Pick:   func(int) int { return 0 }}
	if tweak != nil {
		tweak(&cfg)
	}
	e.c = New(cfg)
	for _, sh := range []string{"s1", "s2"} {
		if err := st.CreateShard(ctx, &store.Shard{Name: sh, Phase: store.ShardReady, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) site(t *testing.T, name, shard, plan string) *site.Site {
	t.Helper()
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: t0.Add(-30 * 24 * time.Hour)},
		Spec:     site.Spec{Domain: name, Plan: plan},
		Status:   site.Status{Phase: site.PhaseReady, Shard: shard, URL: "http://" + name},
	}
	if err := e.st.CreateSite(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) pass(t *testing.T) {
	t.Helper()
	if err := e.c.Pass(context.Background()); err != nil {
		t.Fatalf("pass: %v", err)
	}
	e.c.Wait()
}

func (e *env) jobs(t *testing.T, opts store.JobListOptions) []store.Job {
	t.Helper()
	out, err := ctljobs.List(context.Background(), e.st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot writes a real snapshot of name into the shard's repository and
// records its succeeded backup job at time at.
func (e *env) snapshot(t *testing.T, shard, name string, at time.Time) string {
	t.Helper()
	ctx := context.Background()
	r, err := e.repos.Open(ctx, shard, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: name, Host: shard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddStream(ctx, "database.sql", strings.NewReader(name+" at "+at.String())); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref := shard + ":" + snap.ID
	e.succeed(t, shard, name, ref, at)
	return ref
}

// succeed records a succeeded backup job of name with ref at time at.
func (e *env) succeed(t *testing.T, shard, name, ref string, at time.Time) {
	t.Helper()
	res, _ := json.Marshal(store.BackupResult{Snapshot: ref, Time: at})
	j := &store.Job{ID: fmt.Sprintf("job-%s-%d", name, at.UnixNano()), Kind: store.JobBackup, Site: name, SiteUID: "uid-" + name,
		Shard: shard, Phase: store.JobSucceeded, Result: res, CreatedAt: at, StartedAt: &at, FinishedAt: &at}
	if err := e.st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

// finishAll ends every active backup job: succeeded at now, or failed.
func (e *env) finishAll(t *testing.T, phase store.JobPhase) {
	t.Helper()
	now := e.clock.Now()
	for _, j := range e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: active}) {
		_, err := e.st.UpdateJob(context.Background(), j.ID, func(x *store.Job) error {
			x.Phase, x.FinishedAt, x.StartedAt = phase, &now, &now
			if phase == store.JobSucceeded {
				x.Result, _ = json.Marshal(store.BackupResult{Snapshot: x.Shard + ":" + x.ID, Time: now})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func siteNames(jobs []store.Job) string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Site+"@"+j.Shard)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestSchedule(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1 })
	for _, n := range []string{"a.com", "b.com", "c.com"} {
		e.site(t, n, "s1", "basic")
	}
	e.site(t, "biz.com", "s2", "business")
	off := e.site(t, "off.com", "s2", "basic")
	if _, err := e.st.UpdateSite(context.Background(), off.Metadata.Name, func(s *site.Site) error { s.Spec.Backup.EveryHours = -1; return nil }); err != nil {
		t.Fatal(err)
	}
	pending := e.site(t, "new.com", "s2", "basic")
	if _, err := e.st.UpdateSite(context.Background(), pending.Metadata.Name, func(s *site.Site) error { s.Status.Phase = site.PhaseCreating; return nil }); err != nil {
		t.Fatal(err)
	}
	// c.com was backed up an hour ago: not due for a day.
	e.succeed(t, "s1", "c.com", "s1:c1", t0.Add(-time.Hour))

	steps := []struct {
		name    string
		advance time.Duration
		before  func()
		want    string // active backup jobs after the pass
	}{
		{"first pass, two per shard at most", 0, nil, "a.com@s1,b.com@s1,biz.com@s2"},
		{"nothing new while they run", time.Minute, nil, "a.com@s1,b.com@s1,biz.com@s2"},
		{"all done: nothing due", time.Minute, func() { e.finishAll(t, store.JobSucceeded) }, ""},
		{"an hour later the business site", time.Hour, nil, "biz.com@s2"},
		{"its backup fails: no retry at once", time.Minute, func() { e.finishAll(t, store.JobFailed) }, ""},
		{"retried after RetryAfter", DefaultRetryAfter, nil, "biz.com@s2"},
		// c.com's backup is the oldest: it goes first.
		{"a day later the basic sites, oldest backup first", 24 * time.Hour, func() { e.finishAll(t, store.JobSucceeded) }, "a.com@s1,biz.com@s2,c.com@s1"},
		{"then b.com", time.Minute, func() { e.finishAll(t, store.JobSucceeded) }, "b.com@s1"},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		e.clock.Advance(s.advance)
		e.pass(t)
		if got := siteNames(e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: active})); got != s.want {
			t.Fatalf("%s: active backups %q, want %q", s.name, got, s.want)
		}
	}
	for _, j := range e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: active}) {
		if string(j.Params) != `{"reason":"schedule"}` {
			t.Errorf("params %s", j.Params)
		}
	}
}

func TestRetention(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery = -1, -1 })
	e.site(t, "a.com", "s1", "business")
	ctx := context.Background()
	if _, err := e.st.UpdateSite(ctx, "a.com", func(s *site.Site) error {
		s.Spec.Backup = site.BackupPolicy{EveryHours: 1, Keep: site.Retention{Hourly: 2}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for i := range 5 { // 08:00 … 12:00
		refs = append(refs, e.snapshot(t, "s1", "a.com", t0.Add(-time.Duration(4-i)*time.Hour)))
	}
	// A clone being built from the oldest snapshot protects it.
	clone := &site.Site{Metadata: site.Metadata{Name: "clone.com", UID: "uid-clone", CreatedAt: t0},
		Spec: site.Spec{Domain: "clone.com", Plan: "basic", Source: &site.Source{Snapshot: refs[0], FromSite: "a.com"}}}
	if err := e.st.CreateSite(ctx, clone); err != nil {
		t.Fatal(err)
	}
	e.pass(t)

	kept, err := catalog.All(ctx, e.st, "a.com", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range kept {
		got = append(got, k.Ref)
	}
	want := []string{refs[4], refs[3], refs[0]}
	if !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	r, err := e.repos.Open(ctx, "s1", false)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.ListSnapshots(ctx, repo.SnapshotFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 {
		t.Errorf("%d snapshots left in the repository, want 3", len(snaps))
	}
	all, _ := catalog.All(ctx, e.st, "a.com", true)
	if len(all) != 5 || all[2].Forgotten == nil || !all[2].Forgotten.Equal(t0) {
		t.Errorf("forgotten entries: %+v", all)
	}
	// The next pass within RetentionEvery does nothing; the one after
	// finds nothing more to forget.
	e.pass(t)
	e.clock.Advance(DefaultRetentionEvery)
	e.pass(t)
	if kept, _ := catalog.All(ctx, e.st, "a.com", false); len(kept) != 3 {
		t.Errorf("kept %d after more passes", len(kept))
	}
}

func jobOf(t *testing.T, e *env, id string) *store.Job {
	t.Helper()
	j, err := e.st.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestVerifyAndPrune(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1 })
	ctx := context.Background()
	e.site(t, "a.com", "s1", "basic")
	e.site(t, "b.com", "s2", "basic")
	refA := e.snapshot(t, "s1", "a.com", t0.Add(-time.Hour))
	e.snapshot(t, "s2", "b.com", t0.Add(-time.Hour))

	v, err := e.c.newJob(ctx, store.JobVerify, "", "", "", store.VerifyParams{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	j := jobOf(t, e, v.ID)
	var res store.VerifyResult
	_ = json.Unmarshal(j.Result, &res)
	if j.Phase != store.JobSucceeded || len(res.Repos) != 2 || !res.Repos[0].OK || res.Repos[0].Snapshots != 1 || j.Attempts != 1 {
		t.Fatalf("verify job = %+v, result %+v", j, res)
	}

	// Damage s1's packs: a full verify names a.com's snapshot only.
	packs, _ := filepath.Glob(filepath.Join(e.dir, "backups", "s1", "data", "*", "*"))
	damaged := 0
	for _, p := range packs {
		if strings.HasSuffix(p, ".attrs") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		damaged++
	}
	if damaged == 0 {
		t.Fatalf("no pack files found under %s", filepath.Join(e.dir, "backups", "s1"))
	}
	v, _ = e.c.newJob(ctx, store.JobVerify, "", "", "", store.VerifyParams{Full: true})
	e.pass(t)
	j = jobOf(t, e, v.ID)
	res = store.VerifyResult{}
	_ = json.Unmarshal(j.Result, &res)
	if j.Phase != store.JobFailed || len(res.Damaged) != 1 || res.Damaged[0].Ref != refA || res.Damaged[0].Site != "a.com" {
		t.Fatalf("verify of a damaged repository = %s %q, result %+v", j.Phase, j.Error, res)
	}
	// Limited to b.com, nothing is damaged.
	v, _ = e.c.newJob(ctx, store.JobVerify, "b.com", "", "", store.VerifyParams{Site: "b.com", Full: true})
	e.pass(t)
	if j = jobOf(t, e, v.ID); j.Phase != store.JobSucceeded {
		t.Errorf("verify of b.com = %s %q %s", j.Phase, j.Error, j.Result)
	}

	pr, _ := e.c.newJob(ctx, store.JobPrune, "", "", "", store.PruneParams{Repo: "s2"})
	e.pass(t)
	j = jobOf(t, e, pr.ID)
	var pres store.PruneResult
	_ = json.Unmarshal(j.Result, &pres)
	if j.Phase != store.JobSucceeded || len(pres.Repos) != 1 || pres.Repos[0].Repo != "s2" || j.Progress.Total != 1 {
		t.Errorf("prune job = %+v, result %+v", j, pres)
	}
}

func TestPeriodicJobs(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetentionEvery = -1 })
	e.site(t, "a.com", "s1", "dev")
	e.site(t, "b.com", "s1", "dev")
	e.snapshot(t, "s1", "b.com", t0.Add(-time.Hour))
	count := func(kind store.JobKind) int { return len(e.jobs(t, store.JobListOptions{Kind: kind})) }
	e.pass(t)
	vr := e.jobs(t, store.JobListOptions{Kind: store.JobVerifyRestore})
	// s1: a.com (picked first) has no snapshot, b.com has; s2 has no site.
	if count(store.JobPrune) != 1 || len(vr) != 1 || vr[0].Site != "b.com" || vr[0].Shard != "s1" {
		t.Fatalf("after the first pass: %d prunes, verify-restores %+v", count(store.JobPrune), vr)
	}
	e.clock.Advance(time.Hour)
	e.pass(t)
	if count(store.JobPrune) != 1 || count(store.JobVerifyRestore) != 1 {
		t.Errorf("an hour later: %d prunes, %d verify-restores", count(store.JobPrune), count(store.JobVerifyRestore))
	}
	e.clock.Advance(24 * time.Hour)
	e.pass(t)
	if count(store.JobPrune) != 2 || count(store.JobVerifyRestore) != 2 {
		t.Errorf("a day later: %d prunes, %d verify-restores", count(store.JobPrune), count(store.JobVerifyRestore))
	}
}

func TestRecover(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1 })
	ctx := context.Background()
	if _, err := e.st.UpdateShard(ctx, "s1", func(sh *store.Shard) error { sh.Phase, sh.Cordoned = store.ShardUnhealthy, true; return nil }); err != nil {
		t.Fatal(err)
	}
	e.site(t, "a.com", "s1", "basic")
	e.site(t, "b.com", "s1", "basic")
	e.site(t, "c.com", "s1", "basic")
	e.site(t, "other.com", "s2", "basic")
	refA := e.snapshot(t, "s1", "a.com", t0.Add(-3*time.Hour))
	e.snapshot(t, "s1", "b.com", t0.Add(-5*time.Hour))
	refB := e.snapshot(t, "s1", "b.com", t0.Add(-2*time.Hour))

	j, err := e.c.newJob(ctx, store.JobRecover, "", "", "", store.RecoverParams{From: "s1", To: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	got := jobOf(t, e, j.ID)
	_, res := decodeRecover(got)
	if got.Phase != store.JobRunning || got.Progress.Message != recoverRebuilding || len(res.Sites) != 3 {
		t.Fatalf("after the switch: %+v", got)
	}
	bySite := map[string]store.RecoveredSite{}
	for _, s := range res.Sites {
		bySite[s.Site] = s
	}
	// The snapshot time comes from the manifest (written now, in real
	// time; the catalog says t0-3h).
	if s := bySite["a.com"]; s.Snapshot != refA || s.SnapshotTime.IsZero() || s.Generation != 2 {
		t.Errorf("a.com: %+v", s)
	}
	if s := bySite["b.com"]; s.Snapshot != refB {
		t.Errorf("b.com recovers from %s, want its latest %s", s.Snapshot, refB)
	}
	if s := bySite["c.com"]; s.Snapshot != "" || s.Error == "" {
		t.Errorf("c.com without a snapshot: %+v", s)
	}
	for _, n := range []string{"a.com", "b.com"} {
		st, err := e.st.GetSite(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.Shard != "s2" || st.Status.Phase != site.PhasePending || st.Spec.Source == nil || st.Spec.Source.Snapshot != bySite[n].Snapshot ||
			st.Spec.Source.FromURL != "http://"+n || st.Metadata.Generation != bySite[n].Generation {
			t.Errorf("%s after the switch: %+v", n, st)
		}
	}
	if st, _ := e.st.GetSite(ctx, "c.com"); st.Status.Shard != "s1" {
		t.Errorf("c.com moved to %s", st.Status.Shard)
	}
	// A second pass neither switches again nor finishes.
	e.pass(t)
	if got := jobOf(t, e, j.ID); got.Phase != store.JobRunning || got.Attempts != 1 {
		t.Fatalf("second pass: %+v", got)
	}

	// s2 rebuilds a.com, then b.com.
	ready := func(name string) {
		t.Helper()
		if _, err := e.st.UpdateSite(ctx, name, func(s *site.Site) error {
			s.Status.Phase, s.Status.ObservedGeneration = site.PhaseReady, s.Metadata.Generation
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(4 * time.Minute)
	ready("a.com")
	e.pass(t)
	if got := jobOf(t, e, j.ID); got.Progress.Done != 1 || got.Progress.Total != 2 || got.Phase != store.JobRunning {
		t.Fatalf("one ready: %+v", got.Progress)
	}
	e.clock.Advance(6 * time.Minute)
	ready("b.com")
	e.pass(t)
	got = jobOf(t, e, j.ID)
	_, res = decodeRecover(got)
	if got.Phase != store.JobFailed || res.Duration != "10m0s" || !strings.Contains(got.Error, "1 site(s) had no snapshot") ||
		got.Progress.Done != 2 || got.FinishedAt == nil {
		t.Fatalf("finished recovery: %s %q %+v %+v", got.Phase, got.Error, got.Progress, res)
	}
}

func TestLogSegmentExpired(t *testing.T) {
	now := t0
	oldest := t0.Add(-10 * time.Hour)
	for _, tc := range []struct {
		name         string
		last, oldest time.Time
		want         bool
	}{
		{"newer than the oldest snapshot", oldest.Add(time.Minute), oldest, false},
		{"at the oldest snapshot", oldest, oldest, false},
		{"just before the oldest snapshot, within the margin", oldest.Add(-time.Second), oldest, false},
		{"at the margin", oldest.Add(-time.Hour), oldest, false},
		{"older than the oldest snapshot by more than the margin", oldest.Add(-time.Hour - time.Second), oldest, true},
		{"much older", oldest.Add(-30 * 24 * time.Hour), oldest, true},
		{"no snapshot, recent", now.Add(-time.Hour), time.Time{}, false},
		{"no snapshot, a day old", now.Add(-LogKeepWithoutSnapshot), time.Time{}, false},
		{"no snapshot, older than a day", now.Add(-LogKeepWithoutSnapshot - time.Second), time.Time{}, true},
		{"newer than now (clock skew)", now.Add(time.Minute), oldest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LogSegmentExpired(tc.last, tc.oldest, now, time.Hour); got != tc.want {
				t.Errorf("LogSegmentExpired(last %s, oldest %s) = %v, want %v", tc.last, tc.oldest, got, tc.want)
			}
		})
	}
}

// segment writes a database log segment (package pitr's format) of the
// site name (uid) into the shard's repository, its last transaction at
// last, and returns its id.
func (e *env) segment(t *testing.T, shard, name, uid string, last time.Time) string {
	t.Helper()
	ctx := context.Background()
	r, err := e.repos.Open(ctx, shard, true)
	if err != nil {
		t.Fatal(err)
	}
	m := pitr.SegmentMeta{Kind: pitr.SegmentKind, Version: pitr.SegmentVersion, Site: name, UID: uid, DB: "wp_x",
		FirstGTID: "0-1-1", LastGTID: "0-1-2", FirstTime: last.Add(-time.Minute), LastTime: last, Txns: 2}
	meta, _ := json.Marshal(m)
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: name, Host: shard, Tags: pitr.SegmentTags(m), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddStream(ctx, pitr.StreamName, strings.NewReader(name+" log at "+last.String())); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap.ID
}

// TestLogRetention: retention forgets a site's database log segments that
// end before its oldest kept snapshot (by more than LogMargin), never one
// after it, nor those of sites that are gone; a site without snapshots
// keeps a day of log.
func TestLogRetention(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery = -1, -1 })
	ctx := context.Background()
	e.site(t, "a.com", "s1", "business")
	e.site(t, "b.com", "s1", "business")
	if _, err := e.st.UpdateSite(ctx, "a.com", func(s *site.Site) error {
		s.Spec.Backup = site.BackupPolicy{EveryHours: 1, Keep: site.Retention{Hourly: 2}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // 08:00 … 12:00; retention keeps 11:00 and 12:00
		e.snapshot(t, "s1", "a.com", t0.Add(-time.Duration(4-i)*time.Hour))
	}
	oldestKept := t0.Add(-time.Hour)
	segs := map[string]bool{} // id → kept
	for _, s := range []struct {
		site, uid string
		last      time.Time
		kept      bool
	}{
		{"a.com", "uid-a.com", t0.Add(-4*time.Hour - 30*time.Minute), false},           // before every snapshot
		{"a.com", "uid-a.com", oldestKept.Add(-DefaultLogMargin - time.Second), false}, // before the oldest kept one, beyond the margin
		{"a.com", "uid-a.com", oldestKept.Add(-DefaultLogMargin + time.Second), true},  // within the margin
		{"a.com", "uid-a.com", oldestKept.Add(-time.Second), true},
		{"a.com", "uid-a.com", oldestKept.Add(time.Second), true}, // after the oldest kept snapshot: PITR from it needs it
		{"a.com", "uid-a.com", t0.Add(-10 * time.Minute), true},
		{"a.com", "uid-earlier-a.com", t0.Add(-30 * 24 * time.Hour), true},           // another incarnation: stays, as its snapshots do
		{"gone.com", "uid-gone.com", t0.Add(-30 * 24 * time.Hour), true},             // a deleted site's
		{"b.com", "uid-b.com", t0.Add(-LogKeepWithoutSnapshot - time.Minute), false}, // no snapshot: a day of log
		{"b.com", "uid-b.com", t0.Add(-LogKeepWithoutSnapshot + time.Minute), true},
	} {
		segs[e.segment(t, "s1", s.site, s.uid, s.last)] = s.kept
	}
	e.pass(t)

	r, err := e.repos.Open(ctx, "s1", false)
	if err != nil {
		t.Fatal(err)
	}
	left, err := r.ListSnapshots(ctx, repo.SnapshotFilter{Tags: []string{pitr.Tag}})
	if err != nil {
		t.Fatal(err)
	}
	there := map[string]bool{}
	for _, s := range left {
		there[s.ID] = true
	}
	for id, kept := range segs {
		if there[id] != kept {
			t.Errorf("segment %s: there %v, want %v", id[:8], there[id], kept)
		}
	}
	// The site snapshots retention keeps are untouched by the log's.
	if kept, _ := catalog.All(ctx, e.st, "a.com", false); len(kept) != 2 {
		t.Errorf("kept %d snapshots of a.com, want 2", len(kept))
	}
}

// TestCoverage: a scheduling pass records each shard's coverage for the
// metrics: states, alerts and the oldest last good backup.
func TestCoverage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1 })
	if got := e.c.Coverage(); len(got) != 0 {
		t.Fatalf("coverage before a pass: %v", got)
	}
	e.site(t, "never.com", "s1", "basic")
	e.site(t, "fresh.com", "s1", "basic")
	e.succeed(t, "s1", "fresh.com", "s1:f1", t0.Add(-time.Hour))
	e.site(t, "late.com", "s2", "basic")
	e.succeed(t, "s2", "late.com", "s2:l1", t0.Add(-10*24*time.Hour))
	off := e.site(t, "off.com", "s2", "basic")
	if _, err := e.st.UpdateSite(context.Background(), off.Metadata.Name, func(s *site.Site) error { s.Spec.Backup.EveryHours = -1; return nil }); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	want := map[string]ShardCoverage{
		"s1": {States: map[schedule.State]int{schedule.None: 1, schedule.OK: 1}, Alerts: 1, OldestGood: t0.Add(-time.Hour)},
		"s2": {States: map[schedule.State]int{schedule.Late: 1, schedule.Off: 1}, Alerts: 1, OldestGood: t0.Add(-10 * 24 * time.Hour)},
	}
	got := e.c.Coverage()
	if len(got) != len(want) {
		t.Fatalf("coverage %+v, want %+v", got, want)
	}
	for shard, w := range want {
		g := got[shard]
		if !maps.Equal(g.States, w.States) || g.Alerts != w.Alerts || !g.OldestGood.Equal(w.OldestGood) {
			t.Errorf("%s: %+v, want %+v", shard, g, w)
		}
	}
}

// jobCounter counts ListJobs calls.
type jobCounter struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (c *jobCounter) ListJobs(ctx context.Context, opts store.JobListOptions) (*store.JobList, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Store.ListJobs(ctx, opts)
}

func (c *jobCounter) calls() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// Sites that never had a backup job are looked up once, not on every
// pass; a backup job written for one of them makes the next pass look it
// up again.
func TestScheduleNeverBackedLookedUpOnce(t *testing.T) {
	var jc *jobCounter
	e := newEnv(t, func(c *Config) {
		c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1
		jc = &jobCounter{Store: c.Store}
		c.Store = jc
	})
	const n = 20
	for i := range n {
		e.site(t, fmt.Sprintf("s%02d.com", i), "s1", "basic")
	}
	e.pass(t) // looks every site up; schedules two
	before := jc.calls()
	e.clock.Advance(time.Minute)
	e.pass(t)
	if got := jc.calls() - before; got >= n {
		t.Errorf("second pass made %d job lookups for %d sites never backed up, want fewer than one a site", got, n)
	}
	// Every site backed up (s05 by other means, a manual backup) is not
	// due for a day: none is scheduled again meanwhile.
	backed := map[string]bool{"s05.com": true}
	finish := func() {
		for _, j := range e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: active}) {
			backed[j.Site] = true
		}
		e.finishAll(t, store.JobSucceeded)
	}
	finish()
	e.succeed(t, "s1", "s05.com", "s1:manual", e.clock.Now())
	for range n {
		e.clock.Advance(time.Minute)
		e.pass(t)
		for _, j := range e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: active}) {
			if backed[j.Site] {
				t.Fatalf("%s scheduled again right after its backup", j.Site)
			}
		}
		finish()
	}
	if len(backed) != n {
		t.Errorf("%d of %d sites backed up after %d passes", len(backed), n, n)
	}
}
