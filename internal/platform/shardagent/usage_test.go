package shardagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// TestUsageReporter: the reporter sends each site's statements since the
// last measurement (a server restart starts them again), its sizes as
// measured, a failed report again with its ID before the next, and drops
// one the control plane refuses.
func TestUsageReporter(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	type step struct {
		uptime  float64
		stmts   map[string]int64 // nil entry: not read
		sendErr error
		want    string // the reports sent in this step
	}
	var sent []string
	var sendErr error
	var cur step
	u := &usageReporter{log: slog.New(slog.DiscardHandler),
		measure: func(context.Context) (shard.Measurement, error) {
			m := shard.Measurement{DBUptime: cur.uptime, Sites: map[string]shard.SiteMeasure{}}
			for name, n := range cur.stmts {
				sm := shard.SiteMeasure{DBBytes: i64(100), FilesBytes: i64(200)}
				if n >= 0 {
					sm.DBStatements = i64(n)
				}
				m.Sites[name] = sm
			}
			return m, nil
		},
		send: func(_ context.Context, rep *api.ShardUsageReport) error {
			s := rep.ID[:4]
			for _, name := range []string{"a", "b"} {
				if su, ok := rep.Sites[name]; ok {
					s += fmt.Sprintf(" %s:%d", name, su.DBQueries)
				}
			}
			sent = append(sent, s)
			return sendErr
		},
	}
	cur = step{uptime: 100, stmts: map[string]int64{"a": 10}}
	u.next(context.Background()) // the agent's first measurement: the base
	var lastID string
	for i, st := range []step{
		{uptime: 110, stmts: map[string]int64{"a": 25, "b": 7}, want: "a:15 b:0"}, // b new: its base
		{uptime: 120, stmts: map[string]int64{"a": 30, "b": 9}, want: "a:5 b:2"},  //
		{uptime: 130, stmts: map[string]int64{"a": 31, "b": -1}, want: "a:1 b:0"}, // b not read
		{uptime: 140, stmts: map[string]int64{"a": 31, "b": 12}, want: "a:0 b:3"}, // b from its kept base
		{uptime: 5, stmts: map[string]int64{"a": 40, "b": 50}, want: "a:40 b:50"}, // restarted (uptime)
		{uptime: 15, stmts: map[string]int64{"a": 2, "b": 51}, want: "a:2 b:1"},   // reset (counter)
		{uptime: 25, stmts: map[string]int64{"a": 3, "b": 51}, sendErr: errors.New("down"), // kept
			want: "a:1 b:0"},
		{uptime: 35, stmts: map[string]int64{"a": 5, "b": 51}, sendErr: errors.New("down"), // the kept one again, alone
			want: "SAME a:1 b:0"},
		{uptime: 45, stmts: map[string]int64{"a": 8, "b": 51}, want: "SAME a:1 b:0|a:5 b:0"}, // then the new one covers both intervals
		{uptime: 55, stmts: map[string]int64{"a": 9, "b": 51}, sendErr: fmt.Errorf("bad: %w", store.ErrInvalid), want: "a:1 b:0"},
		{uptime: 65, stmts: map[string]int64{"a": 10, "b": 51}, want: "a:1 b:0"}, // the refused one was dropped
	} {
		cur, sendErr, sent = st, st.sendErr, nil
		u.report(context.Background())
		got := ""
		for k, s := range sent {
			if k > 0 {
				got += "|"
			}
			if s[:4] == lastID {
				got += "SAME" + s[4:]
			} else {
				got += s[5:]
			}
		}
		if got != st.want {
			t.Errorf("step %d: sent %q, want %q", i, got, st.want)
		}
		if len(sent) > 0 {
			lastID = sent[len(sent)-1][:4]
		}
	}
}
