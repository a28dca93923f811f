package shardagent

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// DefaultUsageInterval is Config.UsageInterval's default: the shard's
// file sizes are measured at most every shard.DiskInterval (5 minutes)
// anyway, and at 1,000 shards of 50 sites a report every 5 minutes is
// about 170 record writes a second on the control plane's store.
const DefaultUsageInterval = 5 * time.Minute

// usageReporter turns the shard's measurements (shard.Measure) into usage
// reports for the control plane: the sizes as measured, and the
// statements each site's database accounts ran since the previous
// measurement (USER_STATISTICS counts from the server's start: a counter
// lower than before, or a server uptime lower than before, means the
// server restarted, and the new count is all new). A site's first
// measurement by this agent is the base the next counts from: statements
// run while no agent ran, or before the agent first saw the site, are not
// counted.
//
// A report gets a random ID; one whose answer was lost is kept whole and
// sent again with its ID before anything newer (the control plane applies
// an ID once). A report the control plane refuses as invalid is dropped.
type usageReporter struct {
	send    func(context.Context, *api.ShardUsageReport) error
	measure func(context.Context) (shard.Measurement, error)
	log     *slog.Logger

	base    map[string]int64 // statements by site at the last measurement
	uptime  float64
	pending *api.ShardUsageReport
}

// next measures and returns the next report (nil: nothing measured).
func (u *usageReporter) next(ctx context.Context) *api.ShardUsageReport {
	m, err := u.measure(ctx)
	if err != nil {
		u.log.Warn("usage: measuring the sites", "err", err)
	}
	restarted := m.DBUptime > 0 && m.DBUptime < u.uptime
	if m.DBUptime > 0 {
		u.uptime = m.DBUptime
	}
	rep := &api.ShardUsageReport{ID: rand.Text(), Sites: map[string]api.SiteShardUsage{}}
	base := map[string]int64{}
	for name, sm := range m.Sites {
		su := api.SiteShardUsage{DBBytes: sm.DBBytes, FilesBytes: sm.FilesBytes}
		if sm.DBStatements != nil {
			n := *sm.DBStatements
			base[name] = n
			prev, seen := u.base[name]
			switch {
			case restarted:
				su.DBQueries = n
			case !seen:
				// The base: a site new to this agent (or this
				// agent new) counts from now.
			case n < prev: // reset (a restart uptime did not show)
				su.DBQueries = n
			default:
				su.DBQueries = n - prev
			}
		} else if prev, seen := u.base[name]; seen {
			base[name] = prev // not read this time: keep the base
		}
		if su != (api.SiteShardUsage{}) {
			rep.Sites[name] = su
		}
	}
	u.base = base
	if len(rep.Sites) == 0 {
		return nil
	}
	return rep
}

// report sends what is pending, then a new report.
func (u *usageReporter) report(ctx context.Context) {
	if u.pending != nil {
		err := u.send(ctx, u.pending)
		if err != nil && !invalidUsage(err) {
			u.log.Warn("usage: report failed; it is sent again with the next", "id", u.pending.ID, "err", err)
			return // measured again next time: counters carry over
		}
		if err != nil {
			u.log.Warn("usage: the control plane refused a report; dropped", "id", u.pending.ID, "err", err)
		}
		u.pending = nil
	}
	rep := u.next(ctx)
	if rep == nil {
		return
	}
	err := u.send(ctx, rep)
	switch {
	case err == nil:
	case invalidUsage(err):
		u.log.Warn("usage: the control plane refused a report; dropped", "id", rep.ID, "err", err)
	default:
		u.pending = rep
		u.log.Warn("usage: report failed; it is sent again with the next", "id", rep.ID, "err", err)
	}
}

// run reports every interval until ctx ends, the first one interval after
// the start (the base of the statement counts is taken at once).
func (u *usageReporter) run(ctx context.Context, every time.Duration) {
	u.next(ctx) // the base; its sizes are reported with the next
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			u.report(ctx)
		}
	}
}

// invalidUsage reports whether err says the report itself is wrong.
func invalidUsage(err error) bool {
	var ae *apiclient.Error
	return (errors.As(err, &ae) && ae.Status == http.StatusBadRequest) || errors.Is(err, store.ErrInvalid)
}
