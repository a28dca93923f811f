// Package bandwidth is the edge's side of the plans' monthly bandwidth:
// a Meter counts the response bytes the edge sends per site (its Observe
// is chained after the metrics'), reports them to the control plane in
// batches (never on the request path: Run flushes every Interval), and
// learns from each report's answer which sites are over their plan's
// bandwidth this month. Its middleware answers those sites' visitors 509
// (Bandwidth Limit Exceeded) with a page saying why and a Retry-After to
// the start of the next month (UTC), until the control plane says
// otherwise (a larger plan, a new month).
//
// Counts that could not be sent are kept for the next report; those of
// the last Interval before an edge stops unexpectedly are lost (the
// accounting errs in the customer's favour). Several edges each report
// their own counts; the control plane adds them up.
package bandwidth

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

// StatusBandwidthExceeded is the status over-limit sites answer with
// (509, as Apache's and cPanel's bandwidth limits).
const StatusBandwidthExceeded = 509

// Message is what a visitor of an over-limit site reads.
const Message = "This site has used all the bandwidth its plan includes this month. It will be back at the start of next month, or sooner if its owner moves it to a larger plan."

// DefaultInterval is how often Run reports.
const DefaultInterval = 10 * time.Second

// Config configures a Meter.
type Config struct {
	// Send reports the bytes each site sent since the last report and
	// returns the sites that are over their bandwidth now (all of them,
	// not only those in the report). Required.
	Send func(ctx context.Context, bytes map[string]int64) (over []string, err error)
	// Interval between reports (default DefaultInterval).
	Interval time.Duration
	// Clock (default time.Now) dates the Retry-After of 509 answers.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Meter counts, reports and enforces. It is safe for concurrent use.
type Meter struct {
	cfg    Config
	mu     sync.Mutex
	counts map[string]int64
	over   atomic.Pointer[map[string]bool]
	sendMu sync.Mutex // one report at a time
}

// New returns a Meter.
func New(cfg Config) *Meter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Meter{cfg: cfg, counts: map[string]int64{}}
	m.over.Store(&map[string]bool{})
	return m
}

// Observe counts one answered request's body bytes for its site (requests
// for unknown hosts count for nobody); it goes into edge.Config.Observe.
func (m *Meter) Observe(_ *http.Request, info *edge.RequestInfo) {
	if info == nil || info.Site == "" || info.Bytes <= 0 {
		return
	}
	m.mu.Lock()
	m.counts[info.Site] += info.Bytes
	m.mu.Unlock()
}

// Over reports whether site is over its bandwidth, as the last report's
// answer said.
func (m *Meter) Over(site string) bool { return (*m.over.Load())[site] }

// Flush sends the counts since the last report and takes the answer's
// over-limit sites. On failure the counts are kept for the next report and
// the over-limit sites stay as they were.
func (m *Meter) Flush(ctx context.Context) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	m.mu.Lock()
	batch := m.counts
	m.counts = map[string]int64{}
	m.mu.Unlock()
	over, err := m.cfg.Send(ctx, batch)
	if err != nil {
		m.mu.Lock()
		for site, n := range batch {
			m.counts[site] += n
		}
		m.mu.Unlock()
		return err
	}
	next := make(map[string]bool, len(over))
	for _, s := range over {
		next[s] = true
	}
	if !maps.Equal(next, *m.over.Load()) {
		m.cfg.Logger.Info("bandwidth: sites over their plan's monthly bandwidth", "sites", over)
	}
	m.over.Store(&next)
	return nil
}

// Run reports every Interval until ctx ends, then once more (bounded by
// the Interval) so a clean stop loses nothing.
func (m *Meter) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Interval)
			if err := m.Flush(fctx); err != nil {
				m.cfg.Logger.Warn("bandwidth: last report failed; its counts are lost", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Logger.Warn("bandwidth: report failed; kept for the next one", "err", err)
			}
		}
	}
}

// Middleware answers requests for over-limit sites with 509 and a page
// saying why; it goes before the page cache (cached pages use bandwidth
// too).
func (m *Meter) Middleware() edge.Middleware {
	return func(next edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			if !m.Over(rt.Site) {
				return next(w, r, rt)
			}
			now := m.cfg.Clock().UTC()
			nextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			w.Header().Set("Retry-After", strconv.Itoa(int(nextMonth.Sub(now).Seconds())+1))
			return &edge.HTTPError{Status: StatusBandwidthExceeded, Message: Message}
		}
	}
}
