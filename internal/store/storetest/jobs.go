package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// newJob returns a backup job with every field the API sets at creation.
func newJob(id string, created time.Time) *store.Job {
	return &store.Job{
		ID:        id,
		Kind:      store.JobBackup,
		Site:      "blog.example.com",
		SiteUID:   "uid-blog.example.com",
		Shard:     "shard-1",
		Params:    json.RawMessage(`{"reason":"manual"}`),
		CreatedAt: created,
	}
}

func mustCreateJob(t *testing.T, s store.Store, j *store.Job) *store.Job {
	t.Helper()
	if err := s.CreateJob(t.Context(), j); err != nil {
		t.Fatalf("create job %q: %v", j.ID, err)
	}
	return j
}

func mustGetJob(t *testing.T, s store.Store, id string) *store.Job {
	t.Helper()
	j, err := s.GetJob(t.Context(), id)
	if err != nil {
		t.Fatalf("get job %q: %v", id, err)
	}
	return j
}

// canonicalJob renders j for comparison, times in UTC.
func canonicalJob(t *testing.T, j *store.Job) string {
	t.Helper()
	c := *j
	c.CreatedAt = c.CreatedAt.UTC()
	for _, p := range []**time.Time{&c.StartedAt, &c.FinishedAt} {
		if *p != nil {
			u := (**p).UTC()
			*p = &u
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertJobEqual(t *testing.T, got, want *store.Job) {
	t.Helper()
	if g, w := canonicalJob(t, got), canonicalJob(t, want); g != w {
		t.Errorf("job differs\ngot:  %s\nwant: %s", g, w)
	}
}

func testJobCreateGet(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	rev := revision(t, s)
	j := newJob("job-1", base)
	mustCreateJob(t, s, j)
	if j.Phase != store.JobPending {
		t.Errorf("phase = %q, want Pending filled in", j.Phase)
	}
	after := revision(t, s)
	if after != rev+1 || j.ResourceVersion != after {
		t.Errorf("create: resource version %d, revision %d -> %d; want one revision taken", j.ResourceVersion, rev, after)
	}
	assertJobEqual(t, mustGetJob(t, s, "job-1"), j)

	// Every field round-trips, a given phase is kept.
	started, finished := base.Add(time.Second), base.Add(time.Minute)
	full := &store.Job{
		ID: "job-full", Kind: store.JobRestore, Site: "a.example.com", SiteUID: "uid-a", Shard: "shard-2",
		Params: json.RawMessage(`{"snapshot":"shard-1:abc","in_place":true}`), Phase: store.JobFailed, Attempts: 3,
		Progress: store.JobProgress{Done: 10, Total: 20, Message: "restoring database"},
		Result:   json.RawMessage(`{"x":1}`), Error: "it broke: \u00e9",
		CreatedAt: base.In(time.FixedZone("X", 3600)), StartedAt: &started, FinishedAt: &finished,
	}
	mustCreateJob(t, s, full)
	got := mustGetJob(t, s, "job-full")
	assertJobEqual(t, got, full)
	if !got.CreatedAt.Equal(base) {
		t.Errorf("created_at = %v, want %v", got.CreatedAt, base)
	}
	// A control-plane job: no shard, no site.
	mustCreateJob(t, s, &store.Job{ID: "job-cp", Kind: "verify", CreatedAt: base})
	assertJobEqual(t, mustGetJob(t, s, "job-cp"), &store.Job{ID: "job-cp", Kind: "verify", Phase: store.JobPending, CreatedAt: base, ResourceVersion: revision(t, s)})

	rev = revision(t, s)
	if err := s.CreateJob(ctx, newJob("job-1", base.Add(time.Hour))); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("duplicate id: err = %v, want ErrAlreadyExists", err)
	}
	for _, tc := range []struct {
		name string
		job  *store.Job
	}{
		{"nil", nil},
		{"no id", &store.Job{Kind: store.JobBackup, CreatedAt: base}},
		{"no kind", &store.Job{ID: "job-nokind", CreatedAt: base}},
		{"no created_at", &store.Job{ID: "job-notime", Kind: store.JobBackup}},
	} {
		if err := s.CreateJob(ctx, tc.job); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	if after := revision(t, s); after != rev {
		t.Errorf("refused creates moved revision %d -> %d", rev, after)
	}
	assertJobEqual(t, mustGetJob(t, s, "job-1"), j)
}

func testJobNotFound(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	if _, err := s.GetJob(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get: err = %v, want ErrNotFound", err)
	}
	called := false
	if _, err := s.UpdateJob(ctx, "nope", func(*store.Job) error { called = true; return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update: err = %v, want ErrNotFound", err)
	}
	if called {
		t.Error("update of an unknown job ran mutate")
	}
}

func testJobUpdate(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	started := base.Add(time.Minute)
	for _, tc := range []struct {
		name      string
		mutate    func(*store.Job)
		wantWrite bool
		wantErr   error
	}{
		{"claim", func(j *store.Job) { j.Phase = store.JobRunning; j.StartedAt = &started; j.Attempts++ }, true, nil},
		{"progress", func(j *store.Job) { j.Progress = store.JobProgress{Done: 5, Total: 10, Message: "dumping"} }, true, nil},
		{"result", func(j *store.Job) {
			j.Phase = store.JobSucceeded
			j.Result = json.RawMessage(`{"snapshot":"abc","total_bytes":7}`)
			j.FinishedAt = &started
		}, true, nil},
		{"failure", func(j *store.Job) { j.Phase = store.JobFailed; j.Error = "disk full" }, true, nil},
		{"reassigned shard", func(j *store.Job) { j.Shard = "shard-9" }, true, nil},
		{"nothing", func(*store.Job) {}, false, nil},
		{"same values", func(j *store.Job) { j.Site = "blog.example.com"; j.Params = json.RawMessage(`{"reason":"manual"}`) }, false, nil},
		{"created_at same instant", func(j *store.Job) { j.CreatedAt = j.CreatedAt.In(time.FixedZone("X", 3600)) }, false, nil},
		{"resource version ignored", func(j *store.Job) { j.ResourceVersion = 4242 }, false, nil},
		{"id", func(j *store.Job) { j.ID = "renamed" }, false, store.ErrInvalid},
		{"kind", func(j *store.Job) { j.Kind = store.JobRestore }, false, store.ErrInvalid},
		{"created_at", func(j *store.Job) { j.CreatedAt = j.CreatedAt.Add(time.Second) }, false, store.ErrInvalid},
		{"kind with progress", func(j *store.Job) { j.Kind = store.JobRestore; j.Progress.Done = 1 }, false, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("job-%d", rand.Int64())
			mustCreateJob(t, s, newJob(id, base))
			before := mustGetJob(t, s, id)
			rev := revision(t, s)
			want := mustGetJob(t, s, id)
			tc.mutate(want)
			want.CreatedAt = before.CreatedAt

			got, err := s.UpdateJob(ctx, id, func(j *store.Job) error { tc.mutate(j); return nil })
			after := revision(t, s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if after != rev {
					t.Errorf("refused update moved revision %d -> %d", rev, after)
				}
				assertJobEqual(t, mustGetJob(t, s, id), before)
				if _, err := s.GetJob(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("renamed job appeared: err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if tc.wantWrite {
				if after != rev+1 || got.ResourceVersion != after {
					t.Errorf("update: resource version %d, revision %d -> %d; want one revision taken", got.ResourceVersion, rev, after)
				}
				want.ResourceVersion = after
			} else {
				if after != rev || got.ResourceVersion != before.ResourceVersion {
					t.Errorf("no-op update: resource version %d -> %d, revision %d -> %d", before.ResourceVersion, got.ResourceVersion, rev, after)
				}
				want.ResourceVersion = before.ResourceVersion
			}
			assertJobEqual(t, got, want)
			assertJobEqual(t, mustGetJob(t, s, id), want)
		})
	}
	t.Run("mutate error", func(t *testing.T) {
		mustCreateJob(t, s, newJob("err", base))
		before := mustGetJob(t, s, "err")
		rev := revision(t, s)
		sentinel := errors.New("mutate refused")
		got, err := s.UpdateJob(ctx, "err", func(j *store.Job) error { j.Phase = store.JobRunning; return sentinel })
		if err != sentinel { //nolint:errorlint // the contract says "as is"
			t.Errorf("err = %v, want the mutate error as is", err)
		}
		if got != nil {
			t.Errorf("update returned %+v with an error", got)
		}
		if after := revision(t, s); after != rev {
			t.Errorf("failed mutate moved revision %d -> %d", rev, after)
		}
		assertJobEqual(t, mustGetJob(t, s, "err"), before)
	})
	t.Run("filters follow updates", func(t *testing.T) {
		j := newJob("moving", base)
		j.Site, j.Shard = "filters.example.com", "shard-a"
		mustCreateJob(t, s, j)
		if _, err := s.UpdateJob(ctx, "moving", func(j *store.Job) error {
			j.Phase, j.Shard = store.JobRunning, "shard-b"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ids := func(opts store.JobListOptions) []string {
			opts.Site = "filters.example.com"
			return jobIDs(t, listAllJobs(t, s, opts))
		}
		if got := ids(store.JobListOptions{Shard: "shard-a"}); len(got) != 0 {
			t.Errorf("old shard still lists %v", got)
		}
		if got := ids(store.JobListOptions{Shard: "shard-b", Phases: []store.JobPhase{store.JobRunning}}); !slices.Equal(got, []string{"moving"}) {
			t.Errorf("new shard, Running = %v, want [moving]", got)
		}
		if got := ids(store.JobListOptions{Phases: []store.JobPhase{store.JobPending}}); len(got) != 0 {
			t.Errorf("old phase still lists %v", got)
		}
	})
	t.Run("changed after", func(t *testing.T) {
		a := newJob("changed-a", base)
		a.Site = "changed.example.com"
		mustCreateJob(t, s, a)
		b := newJob("changed-b", base.Add(time.Second))
		b.Site = "changed.example.com"
		mustCreateJob(t, s, b)
		mid := revision(t, s)
		if _, err := s.UpdateJob(ctx, "changed-a", func(j *store.Job) error {
			j.Phase = store.JobRunning
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ids := func(after int64) []string {
			return jobIDs(t, listAllJobs(t, s, store.JobListOptions{Site: "changed.example.com", ChangedAfter: after}))
		}
		if got := ids(mid); !slices.Equal(got, []string{"changed-a"}) {
			t.Errorf("ChangedAfter %d = %v, want [changed-a] (updated after it)", mid, got)
		}
		if got := ids(revision(t, s)); len(got) != 0 {
			t.Errorf("ChangedAfter the current revision = %v, want none", got)
		}
		if got := ids(0); !slices.Equal(got, []string{"changed-b", "changed-a"}) {
			t.Errorf("ChangedAfter 0 = %v, want every job, newest first", got)
		}
	})
}

// listAllJobs follows the continue tokens to the end.
func listAllJobs(t *testing.T, s store.Store, opts store.JobListOptions) []store.Job {
	t.Helper()
	var out []store.Job
	for range 1000 {
		l, err := s.ListJobs(t.Context(), opts)
		if err != nil {
			t.Fatalf("list jobs %+v: %v", opts, err)
		}
		if opts.Limit > 0 && len(l.Items) > opts.Limit {
			t.Fatalf("page of %d jobs, limit %d", len(l.Items), opts.Limit)
		}
		out = append(out, l.Items...)
		if l.Continue == "" {
			return out
		}
		if len(l.Items) == 0 {
			t.Fatal("empty page with a continue token")
		}
		opts.Continue = l.Continue
	}
	t.Fatal("too many pages")
	return nil
}

func jobIDs(t *testing.T, jobs []store.Job) []string {
	t.Helper()
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func testJobList(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	type spec struct {
		id, site, shard string
		kind            store.JobKind
		phase           store.JobPhase
		at              time.Duration // after base
	}
	// Created out of order; j3 and j4 share a CreatedAt (then IDs order).
	specs := []spec{
		{"j5", "b.example.com", "s2", store.JobRestore, store.JobPending, 5 * time.Second},
		{"j1", "a.example.com", "s1", store.JobBackup, store.JobSucceeded, time.Second},
		{"j3", "a.example.com", "s1", store.JobBackup, store.JobFailed, 3 * time.Second},
		{"j4", "b.example.com", "s1", store.JobBackup, store.JobRunning, 3 * time.Second},
		{"j2", "", "", "verify", store.JobSucceeded, 2 * time.Second},
		{"j6", "a.example.com", "s2", store.JobVerifyRestore, store.JobPending, 6*time.Second + time.Nanosecond},
		{"j7", "a.example.com", "s1", store.JobBackup, store.JobPending, 6 * time.Second},
	}
	for _, sp := range specs {
		mustCreateJob(t, s, &store.Job{ID: sp.id, Kind: sp.kind, Site: sp.site, Shard: sp.shard, Phase: sp.phase, CreatedAt: base.Add(sp.at)})
	}
	all := []string{"j6", "j7", "j5", "j4", "j3", "j2", "j1"}
	for _, tc := range []struct {
		name string
		opts store.JobListOptions
		want []string
	}{
		{"all newest first", store.JobListOptions{}, all},
		{"site", store.JobListOptions{Site: "a.example.com"}, []string{"j6", "j7", "j3", "j1"}},
		{"shard", store.JobListOptions{Shard: "s1"}, []string{"j7", "j4", "j3", "j1"}},
		{"kind", store.JobListOptions{Kind: store.JobBackup}, []string{"j7", "j4", "j3", "j1"}},
		{"one phase", store.JobListOptions{Phases: []store.JobPhase{store.JobSucceeded}}, []string{"j2", "j1"}},
		{"active on a shard", store.JobListOptions{Shard: "s2", Phases: []store.JobPhase{store.JobPending, store.JobRunning}}, []string{"j6", "j5"}},
		{"site and kind and phase", store.JobListOptions{Site: "a.example.com", Kind: store.JobBackup, Phases: []store.JobPhase{store.JobSucceeded, store.JobFailed}}, []string{"j3", "j1"}},
		{"no match", store.JobListOptions{Site: "c.example.com"}, []string{}},
		{"sites", store.JobListOptions{Sites: []string{"b.example.com", "a.example.com"}}, []string{"j6", "j7", "j5", "j4", "j3", "j1"}},
		{"sites and kind and phase", store.JobListOptions{Sites: []string{"a.example.com", "b.example.com", "c.example.com"}, Kind: store.JobBackup, Phases: []store.JobPhase{store.JobSucceeded, store.JobRunning}}, []string{"j4", "j1"}},
		{"one of the sites", store.JobListOptions{Sites: []string{"b.example.com"}}, []string{"j5", "j4"}},
		{"empty sites select none", store.JobListOptions{Sites: []string{}}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{0, 1, 2, 3, 1000, 5000} {
				opts := tc.opts
				opts.Limit = limit
				if got := jobIDs(t, listAllJobs(t, s, opts)); !slices.Equal(got, tc.want) {
					t.Errorf("limit %d: %v, want %v", limit, got, tc.want)
				}
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		l, err := s.ListJobs(ctx, store.JobListOptions{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := jobIDs(t, l.Items); !slices.Equal(got, all[:3]) || l.Continue == "" {
			t.Errorf("first page %v continue %q, want %v and a token", got, l.Continue, all[:3])
		}
		// A job created meanwhile, older than the page's end, shows on
		// a later page; a newer one does not disturb the pages.
		mustCreateJob(t, s, &store.Job{ID: "j0", Kind: store.JobBackup, CreatedAt: base})
		mustCreateJob(t, s, &store.Job{ID: "j9", Kind: store.JobBackup, CreatedAt: base.Add(time.Hour)})
		rest := listAllJobs(t, s, store.JobListOptions{Limit: 3, Continue: l.Continue})
		if got, want := jobIDs(t, rest), append(slices.Clone(all[3:]), "j0"); !slices.Equal(got, want) {
			t.Errorf("later pages %v, want %v", got, want)
		}
		l, err = s.ListJobs(ctx, store.JobListOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if l.Continue != "" || len(l.Items) != len(all)+2 {
			t.Errorf("one page of everything: %d jobs, continue %q", len(l.Items), l.Continue)
		}
	})

	t.Run("invalid continue", func(t *testing.T) {
		for _, tok := range []string{"!!", "bm9wZQ", store.EncodeContinue("a.example.com"), strings.Repeat("A", 8)} {
			if _, err := s.ListJobs(ctx, store.JobListOptions{Continue: tok}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("continue %q: err = %v, want ErrInvalid", tok, err)
			}
		}
	})

	t.Run("default and max limit", func(t *testing.T) {
		s := h.fresh(t)
		for i := range store.DefaultLimit + 1 {
			mustCreateJob(t, s, &store.Job{ID: fmt.Sprintf("job-%04d", i), Kind: store.JobBackup, CreatedAt: base.Add(time.Duration(i) * time.Millisecond)})
		}
		l, err := s.ListJobs(ctx, store.JobListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != store.DefaultLimit || l.Continue == "" {
			t.Errorf("default page: %d jobs, continue %q; want %d and a token", len(l.Items), l.Continue, store.DefaultLimit)
		}
		if l.Items[0].ID != fmt.Sprintf("job-%04d", store.DefaultLimit) {
			t.Errorf("first = %s, want the newest", l.Items[0].ID)
		}
	})
}

// testJobReopen checks that jobs and the revisions they took survive a
// reopen.
func testJobReopen(t *testing.T, h *harness) {
	dir := t.TempDir()
	s := h.open(t, dir)
	j := newJob("kept", base)
	if err := s.CreateJob(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, dir)
	assertJobEqual(t, mustGetJob(t, s, "kept"), j)
	if got := revision(t, s); got != rev {
		t.Errorf("revision after reopen = %d, want %d", got, rev)
	}
	mustCreateJob(t, s, newJob("next", base))
	if got := mustGetJob(t, s, "next").ResourceVersion; got != rev+1 {
		t.Errorf("next job's resource version = %d, want %d", got, rev+1)
	}
}
