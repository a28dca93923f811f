package edgenode

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

// usageSender sends an edge's usage reports (the bandwidth meter's Send)
// so that a report is counted once even when its answer is lost: each
// report gets a random ID, and one that failed is kept whole and sent
// again with its ID before anything newer (the control plane applies an
// ID once, store.AddUsage). The counts that arrive meanwhile wait in the
// meter and the traffic recorder for the next report. A report the
// control plane refuses as invalid is dropped (it would fail again and
// hold back every later one). The meter calls send one at a time.
type usageSender struct {
	reports Reports
	traffic *sitemetrics.Recorder
	log     *slog.Logger
	pending *api.UsageReport
	over    []string // the last answer's
}

func (u *usageSender) send(ctx context.Context, bytes map[string]int64) ([]string, error) {
	if u.pending != nil {
		over, err := u.reports.Usage(ctx, u.pending)
		if err != nil && !invalidReport(err) {
			return nil, err // the meter keeps bytes for the next report
		}
		if err != nil {
			u.log.Warn("usage: the control plane refused a report; dropped", "id", u.pending.ID, "err", err)
		} else {
			u.over = over
		}
		u.pending = nil
	}
	rep := &api.UsageReport{ID: rand.Text(), Bytes: bytes, Sites: u.traffic.Take()}
	over, err := u.reports.Usage(ctx, rep)
	switch {
	case err == nil:
		u.over = over
	case invalidReport(err):
		u.log.Warn("usage: the control plane refused a report; dropped", "id", rep.ID, "err", err)
	default:
		// Kept whole for the next flush, so the meter must not keep
		// its bytes as well: no error for it.
		u.pending = rep
		u.log.Warn("usage: report failed; it is sent again with the next", "id", rep.ID, "err", err)
	}
	return u.over, nil
}

// invalidReport reports whether err says the report itself is wrong.
func invalidReport(err error) bool {
	var ae *apiclient.Error
	return (errors.As(err, &ae) && ae.Status == http.StatusBadRequest) || errors.Is(err, store.ErrInvalid)
}
