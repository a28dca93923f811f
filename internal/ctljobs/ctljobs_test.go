package ctljobs

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// TestPass checks what both controllers rely on: only the control plane's
// active jobs of the named kinds run, each once while it
// runs, skip is honoured, a claim makes the job Running with Attempts+1,
// and KeepStart keeps a resumed job's first start.
func TestPass(t *testing.T) {
	for _, keep := range []bool{false, true} {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		first := t0.Add(-time.Hour)
		add := func(id string, kind store.JobKind, shard string, phase store.JobPhase, at time.Time, started *time.Time) {
			t.Helper()
			if err := st.CreateJob(ctx, &store.Job{ID: id, Kind: kind, Shard: shard, CreatedAt: at}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpdateJob(ctx, id, func(j *store.Job) error { j.Phase, j.StartedAt = phase, started; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		add("b-new", store.JobPrune, "", store.JobPending, t0.Add(2*time.Minute), nil)
		add("a-old", store.JobPrune, "", store.JobPending, t0, nil)
		add("resumed", store.JobVerify, "", store.JobRunning, t0.Add(time.Minute), &first)
		add("on-shard", store.JobPrune, "s1", store.JobPending, t0, nil)
		add("done", store.JobPrune, "", store.JobSucceeded, t0, nil)
		add("other-kind", store.JobRecover, "", store.JobPending, t0, nil)
		add("skipped", store.JobPrune, "", store.JobPending, t0.Add(3*time.Minute), nil)

		notified := 0
		r := New(Config{Store: st, Clock: func() time.Time { return t0.Add(time.Hour) }, Notify: func() { notified++ }, KeepStart: keep})
		release := make(chan struct{})
		var mu sync.Mutex
		var ran []string
		exec := func(_ context.Context, j *store.Job) {
			mu.Lock()
			ran = append(ran, j.ID)
			mu.Unlock()
			<-release
		}
		skip := func(j *store.Job) bool { return j.ID == "skipped" }
		kinds := []store.JobKind{store.JobPrune, store.JobVerify}
		if err := r.Pass(ctx, kinds, skip, exec); err != nil {
			t.Fatal(err)
		}
		// A second pass while they run starts nothing again.
		if err := r.Pass(ctx, kinds, skip, exec); err != nil {
			t.Fatal(err)
		}
		close(release)
		r.Wait()
		slices.Sort(ran)
		if want := []string{"a-old", "b-new", "resumed"}; !slices.Equal(ran, want) {
			t.Errorf("keep=%v: ran %v, want %v", keep, ran, want)
		}
		if notified != 3 {
			t.Errorf("keep=%v: notified %d times, want 3 (one per claim)", keep, notified)
		}
		j, err := st.GetJob(ctx, "resumed")
		if err != nil {
			t.Fatal(err)
		}
		if j.Phase != store.JobRunning || j.Attempts != 1 {
			t.Errorf("keep=%v: resumed job %s attempts %d, want Running 1", keep, j.Phase, j.Attempts)
		}
		wantStart := t0.Add(time.Hour)
		if keep {
			wantStart = first
		}
		if j.StartedAt == nil || !j.StartedAt.Equal(wantStart) {
			t.Errorf("keep=%v: StartedAt %v, want %v", keep, j.StartedAt, wantStart)
		}
		for _, id := range []string{"on-shard", "other-kind", "skipped"} {
			if j, _ := st.GetJob(ctx, id); j.Phase != store.JobPending {
				t.Errorf("keep=%v: %s is %s, want it left Pending", keep, id, j.Phase)
			}
		}
	}
}
