package up

import (
	"context"
	"testing"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// fakeSites is a shard.Sites whose reports only count.
type fakeSites struct {
	shard.Sites
	reports int
}

func (f *fakeSites) UpdateStatus(context.Context, string, string, func(*site.Status)) error {
	f.reports++
	return nil
}

func (f *fakeSites) UpdateMove(context.Context, string, string, func(*site.Move)) error {
	f.reports++
	return nil
}

// A move report wakes the in-process shards (the other shard of the move
// has the next step); a status report wakes only the watches.
func TestNotifyingSitesWakesShardsOnMoveReports(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		report     func(n notifyingSites) error
		wantShards int
	}{
		{"move report", func(n notifyingSites) error {
			return n.UpdateMove(ctx, "a.localhost", "uid", func(*site.Move) {})
		}, 1},
		{"status report", func(n notifyingSites) error {
			return n.UpdateStatus(ctx, "a.localhost", "uid", func(*site.Status) {})
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var after, shards int
			f := &fakeSites{}
			n := notifyingSites{Sites: f, after: func() { after++ }, wakeShards: func() { shards++ }}
			if err := tt.report(n); err != nil {
				t.Fatal(err)
			}
			if f.reports != 1 || after != 1 || shards != tt.wantShards {
				t.Errorf("reports %d, watches woken %d, shards woken %d; want 1, 1, %d", f.reports, after, shards, tt.wantShards)
			}
		})
	}
}
