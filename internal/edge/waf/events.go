package waf

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

// maxEventsPerRequest bounds the events one request produces (a rule that
// matched many arguments makes one event per argument).
const maxEventsPerRequest = 20

// eventsFor returns the events of a request the WAF refused (or would
// have): one per matched rule and argument, the anomaly evaluation left
// out (it only adds up the others).
func (f *Firewall) eventsFor(tx types.Transaction, r *http.Request, rt *edge.Route, reqID string, pl int, block bool, it *types.Interruption) []site.WAFEvent {
	action := site.WAFActionDetect
	if block {
		action = site.WAFActionBlock
	}
	base := site.WAFEvent{
		Site: rt.Site, Time: f.clock().UTC(), RequestID: truncate(reqID, 64), Method: truncate(r.Method, 16), Path: truncate(r.URL.Path, 500),
		Action: action, Paranoia: pl,
	}
	var out []site.WAFEvent
	add := func(ev site.WAFEvent) {
		for _, o := range out {
			if o.RuleID == ev.RuleID && o.Variable == ev.Variable {
				return
			}
		}
		if len(out) < maxEventsPerRequest {
			out = append(out, ev)
		}
	}
	if it.RuleID == RuleMultipartFields {
		ev := base
		info, _ := LookupRule(RuleMultipartFields)
		ev.RuleID, ev.Message = RuleMultipartFields, info.Msg
		add(ev)
	}
	for _, mr := range tx.MatchedRules() {
		if !logged(mr) || anomalyEvaluation(mr.Rule().Tags()) {
			continue
		}
		ev := base
		ev.RuleID, ev.Message = mr.Rule().ID(), truncate(mr.Message(), 256)
		mds := mr.MatchedDatas()
		if len(mds) == 0 {
			add(ev)
			continue
		}
		for _, md := range mds {
			e := ev
			e.Variable, e.Argument = describeVariable(md)
			add(e)
		}
	}
	return out
}

func anomalyEvaluation(tags []string) bool {
	for _, t := range tags {
		if t == "anomaly-evaluation" {
			return true
		}
	}
	return false
}

// describeVariable returns what a match was in, as SecLang names it
// ("ARGS_GET:s"), and the request argument that is, if any (a JSON key
// without its "json." prefix: exclusions cover both).
func describeVariable(md types.MatchData) (variable, argument string) {
	v := md.Variable()
	variable = truncate(v.Name(), 64)
	key := md.Key()
	if key != "" {
		variable += ":" + truncate(key, 128)
	}
	switch v {
	case variables.Args, variables.ArgsGet, variables.ArgsPost,
		variables.ArgsNames, variables.ArgsGetNames, variables.ArgsPostNames:
		if a := strings.TrimPrefix(key, "json."); a != "" && len(a) <= site.MaxWAFArgument {
			argument = a
		}
	}
	return variable, argument
}

// Reporter collects WAF events from the request path and sends them in
// batches, so reporting never blocks or slows a request: Record only
// appends to a bounded queue (events beyond it, or beyond a site's share
// of one interval, are dropped and counted), and Run sends the queue every
// interval.
type Reporter struct {
	send       func(context.Context, []site.WAFEvent) error
	log        *slog.Logger
	interval   time.Duration
	maxQueue   int
	maxPerSite int
	maxBatch   int
	wake       chan struct{}

	mu      sync.Mutex
	queue   []site.WAFEvent
	perSite map[string]int
	dropped int
}

// ReporterConfig configures a Reporter. Send is required.
type ReporterConfig struct {
	// Send stores or forwards a batch (the control plane's store in
	// `aipress up`, the API for `aipress edge`). It is called from Run
	// only, one batch at a time.
	Send   func(ctx context.Context, events []site.WAFEvent) error
	Logger *slog.Logger
	// Interval between sends; default 2s.
	Interval time.Duration
	// MaxQueue bounds the events waiting; default 1000.
	MaxQueue int
	// MaxPerSite bounds one site's events per interval (an attack on one
	// site does not crowd out the others); default 50.
	MaxPerSite int
	// MaxBatch bounds the events of one Send; default 500 (what the API
	// takes in one report).
	MaxBatch int
}

// NewReporter returns a Reporter; call Run to send.
func NewReporter(cfg ReporterConfig) *Reporter {
	r := &Reporter{send: cfg.Send, log: cfg.Logger, interval: cfg.Interval, maxQueue: cfg.MaxQueue,
		maxPerSite: cfg.MaxPerSite, maxBatch: cfg.MaxBatch, wake: make(chan struct{}, 1), perSite: map[string]int{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.interval <= 0 {
		r.interval = 2 * time.Second
	}
	if r.maxQueue <= 0 {
		r.maxQueue = 1000
	}
	if r.maxPerSite <= 0 {
		r.maxPerSite = 50
	}
	if r.maxBatch <= 0 {
		r.maxBatch = 500
	}
	return r
}

// Record queues events; it never blocks.
func (r *Reporter) Record(events ...site.WAFEvent) {
	r.mu.Lock()
	for _, ev := range events {
		if len(r.queue) >= r.maxQueue || r.perSite[ev.Site] >= r.maxPerSite {
			r.dropped++
			continue
		}
		r.perSite[ev.Site]++
		r.queue = append(r.queue, ev)
	}
	full := len(r.queue) >= r.maxQueue/2
	r.mu.Unlock()
	if full {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Run sends the queued events every interval (sooner when the queue is
// half full) until ctx ends, then sends what is left (for at most 5s).
func (r *Reporter) Run(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = r.Flush(fctx)
			cancel()
			return
		case <-tick.C:
		case <-r.wake:
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := r.Flush(sctx); err != nil && ctx.Err() == nil {
			r.log.Warn("waf: reporting events failed; they are kept for the next try while there is room", "err", err)
		}
		cancel()
	}
}

// Flush sends the queued events now, in batches of at most MaxBatch. On a
// failure the events not sent go back to the front of the queue as far as
// it has room.
func (r *Reporter) Flush(ctx context.Context) error {
	r.mu.Lock()
	queued, dropped := r.queue, r.dropped
	r.queue, r.dropped = nil, 0
	clear(r.perSite)
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Warn("waf: events dropped (queue or per-site share full)", "dropped", dropped)
	}
	for len(queued) > 0 {
		n := min(len(queued), r.maxBatch)
		if err := r.send(ctx, queued[:n]); err != nil {
			r.mu.Lock()
			room := max(r.maxQueue-len(r.queue), 0)
			r.dropped += max(len(queued)-room, 0)
			r.queue = append(queued[:min(room, len(queued))], r.queue...)
			r.mu.Unlock()
			return err
		}
		queued = queued[n:]
	}
	return nil
}
