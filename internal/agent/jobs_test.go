package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/store"
)

func runJobs(t *testing.T, c *cp, shard, secret string) (*Jobs, *atomic.Int64) {
	t.Helper()
	var wakes atomic.Int64
	j := NewJobs(JobsConfig{Client: c.client(secret), Shard: shard, Wake: func() { wakes.Add(1) },
		Wait: 2 * time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = j.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return j, &wakes
}

func jobIDs(t *testing.T, j *Jobs, shard string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := j.ListJobs(ctx, shard)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range list {
		out = append(out, x.ID+"="+string(x.Phase))
	}
	return strings.Join(out, ",")
}

func (c *cp) createJob(id, shard string, created time.Time) {
	c.t.Helper()
	if err := c.store.CreateJob(context.Background(), &store.Job{ID: id, Kind: store.JobBackup, Site: "a.com", Shard: shard, CreatedAt: created}); err != nil {
		c.t.Fatal(err)
	}
}

// TestJobsFollowAndReport runs a job through the agent protocol as a shard
// does: list, claim, progress, result; another shard's jobs stay invisible.
func TestJobsFollowAndReport(t *testing.T) {
	c := newCP(t)
	c.place("a.com", "s1")
	c.createJob("job-1", "s1", created)
	c.createJob("job-other", "s2", created)
	j, wakes := runJobs(t, c, "s1", s1Secret)
	eventually(t, "the first list", func() bool { return jobIDs(t, j, "s1") == "job-1=Pending" })
	if _, err := j.ListJobs(context.Background(), "s2"); err == nil {
		t.Error("listing another shard's jobs worked")
	}

	// A new job wakes the shard.
	before := wakes.Load()
	c.createJob("job-2", "s1", created.Add(time.Minute))
	eventually(t, "job-2", func() bool { return jobIDs(t, j, "s1") == "job-1=Pending,job-2=Pending" })
	eventually(t, "a wake", func() bool { return wakes.Load() > before })

	ctx := context.Background()
	now := time.Now().UTC()
	claim := func(cur *store.Job) {
		cur.Phase = store.JobRunning
		cur.Attempts++
		cur.StartedAt = &now
		cur.Progress = store.JobProgress{Message: "started"}
	}
	if err := j.UpdateJob(ctx, "job-1", claim); err != nil {
		t.Fatal(err)
	}
	got, err := c.store.GetJob(ctx, "job-1")
	if err != nil || got.Phase != store.JobRunning || got.Attempts != 1 || got.StartedAt == nil || got.Progress.Message != "started" {
		t.Fatalf("claimed job = %+v, %v", got, err)
	}
	// fn changing nothing sends nothing.
	rv := got.ResourceVersion
	if err := j.UpdateJob(ctx, "job-1", func(*store.Job) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.store.GetJob(ctx, "job-1"); got.ResourceVersion != rv {
		t.Errorf("a no-op update wrote (resource version %d -> %d)", rv, got.ResourceVersion)
	}
	// A write by the control plane in between: the agent reads again.
	if _, err := c.store.UpdateJob(ctx, "job-1", func(x *store.Job) error { x.Progress.Message = "poked"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := j.UpdateJob(ctx, "job-1", func(cur *store.Job) { cur.Progress.Done, cur.Progress.Total = 5, 10 }); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.store.GetJob(ctx, "job-1"); got.Progress != (store.JobProgress{Done: 5, Total: 10, Message: "poked"}) {
		t.Errorf("progress = %+v", got.Progress)
	}
	res, _ := json.Marshal(store.BackupResult{Snapshot: "s1:abc", TotalBytes: 10})
	if err := j.UpdateJob(ctx, "job-1", func(cur *store.Job) { cur.Phase, cur.Result = store.JobSucceeded, res }); err != nil {
		t.Fatal(err)
	}
	if got := jobIDs(t, j, "s1"); got != "job-2=Pending" {
		t.Errorf("after success the local copy lists %s", got)
	}
	got, _ = c.store.GetJob(ctx, "job-1")
	if got.Phase != store.JobSucceeded || got.FinishedAt == nil || string(got.Result) != string(res) {
		t.Errorf("finished job = %+v", got)
	}
	// Another shard's job cannot be touched.
	err = j.UpdateJob(ctx, "job-other", claim)
	if !apiclient.IsNotFound(err) {
		t.Errorf("updating another shard's job: %v, want not found", err)
	}
}

// TestJobsResumeAfterRestart checks that jobs created while the control
// plane was down arrive once it is back.
func TestJobsResumeAfterRestart(t *testing.T) {
	c := newCP(t)
	j, _ := runJobs(t, c, "s1", s1Secret)
	eventually(t, "the first list", func() bool { return jobIDs(t, j, "s1") == "" && isSynced(j) })
	c.stop()
	c.createJob("job-1", "s1", created)
	c.start(c.addr)
	eventually(t, "job-1 after the restart", func() bool { return jobIDs(t, j, "s1") == "job-1=Pending" })
}

func isSynced(j *Jobs) bool {
	select {
	case <-j.Synced():
		return true
	default:
		return false
	}
}

// TestRepos opens the shard's own repository with the access the control
// plane gives, and is refused another shard's.
func TestRepos(t *testing.T) {
	c := newCP(t)
	dir := t.TempDir()
	kek, err := repos.LoadKEK(filepath.Join(dir, repos.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := repos.New(repos.Config{BaseURL: repos.DefaultBaseURL(dir), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(api.New(api.Config{Store: c.store, Backups: m}))
	defer srv.Close()

	r := &Repos{Client: apiclient.New(srv.URL, s1Secret)}
	defer r.Close()
	ctx := context.Background()
	own, err := r.Open(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Open(ctx, "s1")
	if err != nil || again != own {
		t.Errorf("second open: %p %v, want the same repository", again, err)
	}
	cpSide, err := m.Open(ctx, "s1", false)
	if err != nil || cpSide.ID() != own.ID() {
		t.Errorf("control plane's view: %v", err)
	}
	_, err = r.Open(ctx, "s2")
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("open s2: %v, want 403", err)
	}
}
