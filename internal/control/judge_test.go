package control

import (
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

func TestJudge(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	fresh, stale := now.Add(-2*time.Second), now.Add(-time.Minute)
	c := New(Config{HeartbeatTimeout: 10 * time.Second})
	tests := []struct {
		name     string
		phase    store.ShardPhase
		provider store.ShardPhase
		beat     *time.Time
		want     store.ShardPhase
	}{
		{"new local shard waits", store.ShardPending, "", nil, store.ShardPending},
		{"local shard beats", store.ShardPending, "", &fresh, store.ShardReady},
		{"local shard goes silent", store.ShardReady, "", &stale, store.ShardUnhealthy},
		{"unhealthy local shard beats again", store.ShardUnhealthy, "", &fresh, store.ShardReady},
		{"pod not ready yet", store.ShardPending, store.ShardPending, &fresh, store.ShardPending},
		{"pod ready, no heartbeat yet", store.ShardPending, store.ShardReady, nil, store.ShardReady},
		{"pod ready, heartbeats stopped", store.ShardReady, store.ShardReady, &stale, store.ShardUnhealthy},
		{"pod not ready any more", store.ShardReady, store.ShardDegraded, &fresh, store.ShardDegraded},
		{"pod ready again", store.ShardDegraded, store.ShardReady, &fresh, store.ShardReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := store.Shard{Name: "s", Phase: tt.phase, ProviderPhase: tt.provider, LastHeartbeat: tt.beat}
			if got, why := c.judge(sh, now); got != tt.want {
				t.Errorf("judge = %s (%s), want %s", got, why, tt.want)
			}
		})
	}
}
