package backupctl

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// sized sets the total bytes of the succeeded backup job of ref (the
// catalog's size of its snapshot).
func (e *env) sized(t *testing.T, ref string, total int64) {
	t.Helper()
	jobs := e.jobs(t, store.JobListOptions{Kind: store.JobBackup, Phases: []store.JobPhase{store.JobSucceeded}})
	for _, j := range jobs {
		var res store.BackupResult
		if json.Unmarshal(j.Result, &res) != nil || res.Snapshot != ref {
			continue
		}
		res.TotalBytes = total
		if _, err := e.st.UpdateJob(context.Background(), j.ID, func(x *store.Job) error {
			x.Result, _ = json.Marshal(res)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no job of %s", ref)
}

// TestSizes: once an hour the leader measures every repository's stored
// bytes (exported as a metric) and records each site's share of them,
// by its latest snapshot's size, as its backup bytes in its usage
// records: the shares of a repository add up to it.
func TestSizes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PruneEvery, c.VerifyEvery, c.RetentionEvery = -1, -1, -1 })
	ctx := context.Background()
	e.site(t, "a.com", "s1", "basic")
	e.site(t, "b.com", "s1", "basic")
	e.site(t, "c.com", "s2", "basic")
	e.site(t, "none.com", "s2", "basic")
	e.sized(t, e.snapshot(t, "s1", "a.com", t0.Add(-2*time.Hour)), 100) // an older one: not the latest
	e.sized(t, e.snapshot(t, "s1", "a.com", t0.Add(-time.Hour)), 3000)
	e.sized(t, e.snapshot(t, "s1", "b.com", t0.Add(-time.Hour)), 1000)
	e.snapshot(t, "s2", "c.com", t0.Add(-time.Hour))
	e.pass(t)

	stored := func(name string) int64 {
		t.Helper()
		r, err := e.repos.Open(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.StoredBytes
	}
	s1, s2 := stored("s1"), stored("s2")
	got := e.c.RepositoryBytes()
	if got["s1"] != s1 || got["s2"] != s2 || s1 <= 0 || s2 <= 0 || len(got) != 2 {
		t.Errorf("repository bytes %v, want s1 %d and s2 %d", got, s1, s2)
	}
	usage := func() map[string]int64 {
		t.Helper()
		recs, err := e.st.ListUsage(ctx, store.UsageListOptions{Period: store.PeriodHour, From: t0.Add(-time.Hour), To: t0.Add(3 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range recs {
			out[r.Site+"@"+r.Period[11:]+"/"+r.Shard] = r.BackupBytes
		}
		return out
	}
	u := usage()
	if len(u) != 3 || u["a.com@12/s1"]+u["b.com@12/s1"] < s1-1 || u["a.com@12/s1"]+u["b.com@12/s1"] > s1 ||
		u["a.com@12/s1"] != s1*3/4 || u["c.com@12/s2"] != s2 {
		t.Errorf("backup bytes %v: want a.com ¾ and b.com ¼ of s1's %d, c.com all of s2's %d, none.com none", u, s1, s2)
	}

	// The next hour: measured again, after another backup of c.com.
	e.clock.Advance(time.Hour)
	e.snapshot(t, "s2", "c.com", e.clock.Now())
	if stored("s2") <= s2 {
		t.Fatal("a second snapshot stored nothing")
	}
	e.pass(t)
	if u := usage(); u["c.com@13/s2"] != stored("s2") || u["c.com@12/s2"] != s2 {
		t.Errorf("backup bytes %v: want c.com's hour 13 at s2's %d, hour 12 kept", u, stored("s2"))
	}
}
