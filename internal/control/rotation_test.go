package control

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// TestScheduledRotations drives the scheduler with a fake clock: a site is
// due its plan's interval after its creation, then after its last
// succeeded rotation; a pending rotation is not doubled, a failed one is
// asked for again; sites of a plan without rotation, unsettled or moving
// sites get none.
func TestScheduledRotations(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	const every = 90 * 24 * time.Hour
	for _, s := range []struct {
		name, plan string
		phase      site.Phase
		move       bool
	}{
		{"a.com", "business", site.PhaseReady, false},
		{"b.com", "basic", site.PhaseReady, false},
		{"c.com", "business", site.PhasePending, false},
		{"d.com", "business", site.PhaseReady, true},
		{"e.com", "business", site.PhaseSuspended, false},
	} {
		x := &site.Site{
			Metadata: site.Metadata{Name: s.name, UID: "uid-" + s.name, CreatedAt: t0},
			Spec:     site.Spec{Domain: s.name, Title: "T", Plan: s.plan, Admin: site.Admin{User: "admin", Email: "a@a.com", PasswordHash: "$2a$10$x"}},
			Status:   site.Status{Phase: s.phase, Shard: "s1"},
		}
		if s.move {
			x.Move = &site.Move{ID: "m1", Source: "s1", Target: "s2", Phase: site.MoveExporting}
		}
		if err := st.CreateSite(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRotations(RotationConfig{Store: st, Clock: clock.Now, Every: func(spec *site.Spec) time.Duration {
		if spec.Plan == "business" {
			return every
		}
		return 0
	}})
	pass := func(want ...string) []store.Job {
		t.Helper()
		jobs, err := r.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.Site)
			if j.Kind != store.JobRotateSecret || j.Shard != "s1" || j.Phase != store.JobPending || string(j.Params) != `{"kind":"db-password","reason":"schedule"}` {
				t.Errorf("job %+v", j)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("at %s: jobs for %v, want %v", clock.Now().Sub(t0), got, want)
		}
		return jobs
	}
	end := func(j store.Job, phase store.JobPhase) {
		t.Helper()
		if _, err := st.UpdateJob(ctx, j.ID, func(cur *store.Job) error {
			now := clock.Now()
			cur.Phase, cur.StartedAt, cur.FinishedAt = phase, &now, &now
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	clock.Add(every - time.Minute)
	pass() // not yet due
	clock.Add(time.Minute)
	jobs := pass("a.com", "e.com") // due since creation
	pass()                         // pending: not doubled
	end(jobs[0], store.JobSucceeded)
	end(jobs[1], store.JobFailed)
	again := pass("e.com") // the failed one is asked for again
	end(again[0], store.JobSucceeded)
	clock.Add(every - time.Hour)
	pass() // the last success was less than every ago
	clock.Add(time.Hour)
	pass("a.com", "e.com")
}

// TestPruneTokens: tokens that expired over a week ago go; live ones,
// recently expired ones and ones without expiry stay.
func TestPruneTokens(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	for i, exp := range []*time.Time{nil, at(time.Hour), at(-time.Hour), at(-6 * 24 * time.Hour), at(-8 * 24 * time.Hour), at(-400 * 24 * time.Hour)} {
		tok := store.Token{ID: fmt.Sprintf("tok-%d", i), Name: "t", Role: store.RoleViewer, Hash: store.TokenHash(fmt.Sprint("secret", i)),
			CreatedAt: now.Add(-500 * 24 * time.Hour), ExpiresAt: exp}
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRotations(RotationConfig{Store: st, Every: func(*site.Spec) time.Duration { return 0 }, Clock: func() time.Time { return now }})
	n, err := r.PruneTokens(ctx)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	left, _ := st.ListTokens(ctx, store.TokenFilter{})
	var ids []string
	for _, tk := range left {
		ids = append(ids, tk.ID)
	}
	if want := []string{"tok-0", "tok-1", "tok-2", "tok-3"}; !slices.Equal(ids, want) {
		t.Errorf("left %v, want %v", ids, want)
	}
}
