package cpmetrics_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aipress/aipress/internal/cpmetrics"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// TestMetrics drives a real SQLite store through the timed store: a job
// ends once (a second write of the final phase does not count it again),
// a shard heartbeats, and API answers are observed by route.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m := cpmetrics.New(cpmetrics.Config{Store: raw, Clock: func() time.Time { return now },
		Backups: func() map[string]cpmetrics.BackupCoverage {
			return map[string]cpmetrics.BackupCoverage{"s1": {States: map[string]int{"OK": 2, "LATE": 1}, Alerts: 1, OldestGood: now.Add(-50 * time.Hour)}}
		},
		BackupRepos: func() map[string]int64 { return map[string]int64{"s1": 123456} }})
	st := m.Store(raw)

	if err := st.CreateShard(ctx, &store.Shard{Name: "s1", Capacity: 40, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.Heartbeat(ctx, "s1", now.Add(-7*time.Second), store.Usage{Sites: 3, Serving: 2, DiskBytes: 1000}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j1", "j2", "j3"} {
		if err := st.CreateJob(ctx, &store.Job{ID: id, Kind: store.JobBackup, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(id string, p store.JobPhase) {
		t.Helper()
		if _, err := st.UpdateJob(ctx, id, func(j *store.Job) error { j.Phase = p; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("j1", store.JobRunning)
	set("j1", store.JobSucceeded)
	set("j1", store.JobSucceeded) // no change: not counted again
	set("j2", store.JobFailed)
	// j3 stays Pending.
	m.ObserveAPI("GET /v1/sites/{name}", 200, 3*time.Millisecond)
	m.ObserveAPI("GET /v1/sites/{name}", 404, time.Millisecond)
	m.SetLeading(true)

	for _, tc := range []struct {
		name, want string
	}{
		{"aipress_jobs_finished_total", `
# HELP aipress_jobs_finished_total Jobs this replica saw end, by kind and result (succeeded, failed).
# TYPE aipress_jobs_finished_total counter
aipress_jobs_finished_total{kind="backup",result="failed"} 1
aipress_jobs_finished_total{kind="backup",result="succeeded"} 1
`},
		{"aipress_jobs_active", `
# HELP aipress_jobs_active Jobs pending or running, by kind and phase.
# TYPE aipress_jobs_active gauge
aipress_jobs_active{kind="backup",phase="Pending"} 1
`},
		{"aipress_shard_heartbeat_age_seconds", `
# HELP aipress_shard_heartbeat_age_seconds Time since the shard's last heartbeat (absent before its first).
# TYPE aipress_shard_heartbeat_age_seconds gauge
aipress_shard_heartbeat_age_seconds{shard="s1"} 7
`},
		{"aipress_shard_placed_sites", `
# HELP aipress_shard_placed_sites Sites placed on the shard, as its heartbeat reports them.
# TYPE aipress_shard_placed_sites gauge
aipress_shard_placed_sites{shard="s1"} 3
`},
		{"aipress_shard_capacity_sites", `
# HELP aipress_shard_capacity_sites How many sites the shard takes (placement).
# TYPE aipress_shard_capacity_sites gauge
aipress_shard_capacity_sites{shard="s1"} 40
`},
		{"aipress_backup_sites", `
# HELP aipress_backup_sites Sites with scheduled backups by coverage state (OK, LATE, NONE, OFF), per shard, as the leader's scheduler saw them last.
# TYPE aipress_backup_sites gauge
aipress_backup_sites{shard="s1",state="LATE"} 1
aipress_backup_sites{shard="s1",state="OK"} 2
`},
		{"aipress_backup_sites_alerting", `
# HELP aipress_backup_sites_alerting Sites whose last good backup is older than their plan's window, or that have none a window after creation, per shard.
# TYPE aipress_backup_sites_alerting gauge
aipress_backup_sites_alerting{shard="s1"} 1
`},
		{"aipress_backup_oldest_good_age_seconds", `
# HELP aipress_backup_oldest_good_age_seconds Age of the oldest last good backup among a shard's sites (absent when none has one).
# TYPE aipress_backup_oldest_good_age_seconds gauge
aipress_backup_oldest_good_age_seconds{shard="s1"} 180000
`},
		{"aipress_backup_repository_bytes", `
# HELP aipress_backup_repository_bytes Bytes a shard's backup repository stores (its packs, compressed and encrypted), as the leader measured them last (hourly).
# TYPE aipress_backup_repository_bytes gauge
aipress_backup_repository_bytes{repository="s1"} 123456
`},
		{"aipress_controlplane_leader", `
# HELP aipress_controlplane_leader 1 if this control-plane replica runs the periodic work (controller, backups schedule).
# TYPE aipress_controlplane_leader gauge
aipress_controlplane_leader 1
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(tc.want), tc.name); err != nil {
				t.Error(err)
			}
		})
	}
	if n := testutil.CollectAndCount(m.Registry(), "aipress_api_request_duration_seconds"); n != 2 {
		t.Errorf("%d API series, want 2 (2xx and 4xx of one route)", n)
	}
	// Backup coverage is the leader's: not exported by a replica that
	// does not lead.
	m.SetLeading(false)
	if n := testutil.CollectAndCount(m.Registry(), "aipress_backup_sites", "aipress_backup_repository_bytes"); n != 0 {
		t.Errorf("%d backup series on a replica that does not lead", n)
	}
	// Timed: heartbeat, create_job, update_job (the scrape's own reads
	// are not).
	if n := testutil.CollectAndCount(m.Registry(), "aipress_store_operation_duration_seconds"); n != 3 {
		t.Errorf("%d store operations timed, want 3", n)
	}
}
