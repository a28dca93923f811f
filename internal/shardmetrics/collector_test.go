package shardmetrics

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/pooler"
	"github.com/aipress/aipress/internal/replwatch"
	"github.com/aipress/aipress/internal/shard"
)

// fakeSource is a shard without servers, pooler or sites: only its data
// directory and replica.
type fakeSource struct {
	dir     string
	replica *replwatch.Status // nil: no replica
}

func (f fakeSource) SiteRefs() []shard.SiteRef  { return nil }
func (f fakeSource) SiteDisk() map[string]int64 { return nil }
func (f fakeSource) Pooler() *pooler.Pooler     { return nil }
func (f fakeSource) DB() *mariadb.Server        { return nil }
func (f fakeSource) FPM() *phpfpm.Master        { return nil }
func (f fakeSource) Dir() string                { return f.dir }
func (f fakeSource) ReplicaStatus() (replwatch.Status, bool) {
	if f.replica == nil {
		return replwatch.Status{}, false
	}
	return *f.replica, true
}

// series gathers m: values by name{label=value,…} (labels sorted, the
// shard label left out), of the names given.
func series(t *testing.T, m *Metrics, names ...string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !slices.Contains(names, f.GetName()) {
			continue
		}
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				if l.GetName() != "shard" {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
			}
			v := mt.GetGauge().GetValue()
			if mt.Counter != nil {
				v = mt.GetCounter().GetValue()
			}
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

// TestFilesystem: the size and available bytes of the data directory's
// file system are statfs's; a directory that cannot be read is counted as
// an error and exports neither.
func TestFilesystem(t *testing.T) {
	dir := t.TempDir()
	m := New(fakeSource{dir: dir}, Config{Shard: "s1"})
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	got := series(t, m, "aipress_shard_filesystem_size_bytes", "aipress_shard_filesystem_avail_bytes", "aipress_shard_metrics_errors")
	size, avail := got["aipress_shard_filesystem_size_bytes{}"], got["aipress_shard_filesystem_avail_bytes{}"]
	if want := float64(st.Blocks) * float64(st.Bsize); size != want || size <= 0 {
		t.Errorf("size %v, want %v", size, want)
	}
	if avail <= 0 || avail > size {
		t.Errorf("avail %v of size %v", avail, size)
	}
	if e, ok := got["aipress_shard_metrics_errors{source=filesystem}"]; !ok || e != 0 {
		t.Errorf("filesystem errors %v (present %v), want 0", e, ok)
	}

	gone := series(t, New(fakeSource{dir: filepath.Join(dir, "gone")}, Config{Shard: "s1"}),
		"aipress_shard_filesystem_size_bytes", "aipress_shard_filesystem_avail_bytes", "aipress_shard_metrics_errors")
	want := map[string]float64{"aipress_shard_metrics_errors{source=filesystem}": 1,
		"aipress_shard_metrics_errors{source=database}": 0, "aipress_shard_metrics_errors{source=pool_status}": 0}
	if !maps.Equal(gone, want) {
		t.Errorf("missing directory: got %v, want %v", gone, want)
	}
}

// TestReplica: no series without a replica or before its first
// observation; the lag is the larger of Seconds_Behind_Master and how long
// the replica has lacked the primary's transactions.
func TestReplica(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	behind := func(s int64) *int64 { return &s }
	for _, tc := range []struct {
		name    string
		replica *replwatch.Status
		want    map[string]float64
	}{
		{"no replica", nil, map[string]float64{}},
		{"not observed yet", &replwatch.Status{}, map[string]float64{}},
		{"healthy", &replwatch.Status{Healthy: true, ObservedAt: now.Add(-time.Second), IORunning: true, SQLRunning: true, SecondsBehind: behind(0)},
			map[string]float64{"aipress_replica_healthy{}": 1, "aipress_replica_lag_seconds{}": 0, "aipress_replica_observation_age_seconds{}": 1,
				"aipress_replica_thread_running{thread=io}": 1, "aipress_replica_thread_running{thread=sql}": 1}},
		{"behind by its own count", &replwatch.Status{ObservedAt: now, IORunning: true, SQLRunning: true, SecondsBehind: behind(40), Behind: true, Lag: 12 * time.Second},
			map[string]float64{"aipress_replica_healthy{}": 0, "aipress_replica_lag_seconds{}": 40, "aipress_replica_observation_age_seconds{}": 0,
				"aipress_replica_thread_running{thread=io}": 1, "aipress_replica_thread_running{thread=sql}": 1}},
		{"io thread stopped, primary ahead", &replwatch.Status{ObservedAt: now, SQLRunning: true, Behind: true, Lag: 90 * time.Second},
			map[string]float64{"aipress_replica_healthy{}": 0, "aipress_replica_lag_seconds{}": 90, "aipress_replica_observation_age_seconds{}": 0,
				"aipress_replica_thread_running{thread=io}": 0, "aipress_replica_thread_running{thread=sql}": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(fakeSource{dir: t.TempDir(), replica: tc.replica}, Config{Shard: "s1", Clock: clock})
			got := series(t, m, "aipress_replica_healthy", "aipress_replica_lag_seconds", "aipress_replica_observation_age_seconds", "aipress_replica_thread_running")
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
