package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// watchWait is the long-poll wait the simulated agents ask for.
const watchWait = 30 * time.Second

// tracker is what the simulated agents tell the benchmark: when each site
// was created (by the load), first delivered to its agent, first taken up
// by the agent's converge loop (placed) and reported Ready, and when a
// watched change reached its agent.
type tracker struct {
	mu      sync.Mutex
	created map[string]time.Time
	placed  map[string]time.Time
	ready   map[string]time.Time
	// delivered: when the site's agent's watch first brought it
	// placed on the shard (the agent's copy has it), before the agent's
	// converge loop takes it up (placed).
	delivered map[string]time.Time
	gens      map[string]int64 // the generation each site's agent saw last
	expects   map[string]expectation

	// wakeups counts the agents' wake-ups: watch answers that changed
	// their copy of their sites.
	wakeups atomic.Int64
	// reportErrs counts failed status reports.
	reportErrs atomic.Int64
	lastErr    atomic.Value // error
}

// expectation is a change the fan-out phase waits for: the site at
// generation gen or later reaching its agent.
type expectation struct {
	gen  int64
	seen chan time.Time
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, placed: map[string]time.Time{},
		ready: map[string]time.Time{}, delivered: map[string]time.Time{}, gens: map[string]int64{}, expects: map[string]expectation{}}
}

func (t *tracker) markCreated(name string, at time.Time) {
	t.mu.Lock()
	t.created[name] = at
	t.mu.Unlock()
}

// saw records that an agent saw s on its shard at time at.
func (t *tracker) saw(s *site.Site, at time.Time) {
	name := s.Metadata.Name
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.placed[name]; !ok {
		t.placed[name] = at
	}
	t.gens[name] = max(t.gens[name], s.Metadata.Generation)
	if e, ok := t.expects[name]; ok && s.Metadata.Generation >= e.gen {
		e.seen <- at // buffered, and deleted now: sent once
		delete(t.expects, name)
	}
}

// delivered records the time at for each site of l placed on shard that
// was not delivered before (called when a watch answer changed an agent's
// copy of its sites).
func (t *tracker) deliver(shard string, l []site.Site, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range l {
		if l[i].Status.Shard != shard {
			continue
		}
		if _, ok := t.delivered[l[i].Metadata.Name]; !ok {
			t.delivered[l[i].Metadata.Name] = at
		}
	}
}

func (t *tracker) markReady(name string, at time.Time) {
	t.mu.Lock()
	if _, ok := t.ready[name]; !ok {
		t.ready[name] = at
	}
	t.mu.Unlock()
}

// expect registers the next change of the site to wait for (a generation
// above the one its agent saw last); the channel receives the time the
// owning agent sees it.
func (t *tracker) expect(name string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	t.mu.Lock()
	t.expects[name] = expectation{gen: t.gens[name] + 1, seen: ch}
	t.mu.Unlock()
	return ch
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.expects, name)
	t.mu.Unlock()
}

// counts returns how many sites were seen placed and reported Ready.
func (t *tracker) counts() (placed, ready int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.placed), len(t.ready)
}

// latest returns the latest time in m.
func latest(m map[string]time.Time) time.Time {
	var l time.Time
	for _, at := range m {
		if at.After(l) {
			l = at
		}
	}
	return l
}

// placementLatencies returns, per site of seen (placed or delivered), the
// time from its create answer to then (0 when the agent was faster than the
// answer).
func (t *tracker) placementLatencies(seen map[string]time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Duration, 0, len(seen))
	for name, at := range seen {
		if c, ok := t.created[name]; ok {
			out = append(out, max(0, at.Sub(c)))
		}
	}
	return out
}

// latenciesOf is placementLatencies of the sites names only.
func (t *tracker) latenciesOf(names []string, seen map[string]time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Duration, 0, len(names))
	for _, name := range names {
		at, ok := seen[name]
		c, ok2 := t.created[name]
		if ok && ok2 {
			out = append(out, max(0, at.Sub(c)))
		}
	}
	return out
}

func (t *tracker) fail(err error) {
	t.reportErrs.Add(1)
	t.lastErr.Store(err)
}

// simAgent is a simulated shard agent: the real agent client (package
// agent: registration, heartbeat, the watch of its sites and the status
// reports) with a fake shard behind it that reports every site Ready at once
// with a fake endpoint and creates nothing.
type simAgent struct {
	name      string
	cl        *apiclient.Client
	reg       store.Shard // what it registers: capacity, labels, version, provider
	heartbeat time.Duration
	tr        *tracker
	log       *slog.Logger
}

// layout is where the simulated shard says it keeps its sites (a
// directory that does not exist).
func (a *simAgent) layout() shardlayout.Layout {
	return shardlayout.Layout{Name: a.name, Dir: "/nonexistent/aipress-sim/" + a.name}
}

// run registers the shard, calls up, then heartbeats, watches and
// converges until ctx ends.
func (a *simAgent) run(ctx context.Context, up func(error)) {
	reg := apiclient.RegisterRequest{Capacity: a.reg.Capacity, Labels: a.reg.Labels, AgentVersion: a.reg.AgentVersion, Provider: a.reg.Provider,
		Dir: a.layout().Dir}
	err := retry(ctx, 5, func() error {
		_, err := agent.Register(ctx, a.cl, reg)
		return err
	})
	if err != nil {
		up(fmt.Errorf("%s: %w", a.name, err))
		return
	}
	kick := make(chan struct{}, 1)
	var sites *agent.Sites
	sites = agent.NewSites(agent.SitesConfig{Client: a.cl, Shard: a.name, Wait: watchWait, Logger: a.log,
		Wake: func() {
			a.tr.wakeups.Add(1)
			if l, err := sites.ListSites(ctx, a.name); err == nil {
				a.tr.deliver(a.name, l, time.Now())
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}})
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = agent.Heartbeat(ctx, agent.HeartbeatConfig{Client: a.cl, Interval: a.heartbeat, Register: &reg, Logger: a.log,
			Usage: func(context.Context) (store.Usage, error) {
				return store.Usage{Sites: int(n.Load()), Serving: int(n.Load())}, nil
			}})
	}()
	go func() { defer wg.Done(); _ = sites.Run(ctx) }()
	select {
	case <-sites.Synced():
		up(nil)
	case <-ctx.Done():
		up(ctx.Err())
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-kick:
		}
		a.converge(ctx, sites, &n)
	}
}

// converge reports every site of the shard that is not Ready at its
// generation yet as Ready.
func (a *simAgent) converge(ctx context.Context, sites *agent.Sites, n *atomic.Int64) {
	now := time.Now()
	list, err := sites.ListSites(ctx, a.name)
	if err != nil {
		return // ctx ended
	}
	n.Store(int64(len(list)))
	for i := range list {
		s := &list[i]
		if s.Status.Shard != a.name {
			continue // a move's target: not ours yet
		}
		a.tr.saw(s, now)
		st := s.Status
		if st.Phase == site.PhaseReady && st.ObservedGeneration == s.Metadata.Generation && st.Endpoint != "" {
			a.tr.markReady(s.Metadata.Name, now)
			continue
		}
		uid, gen := s.Metadata.UID, s.Metadata.Generation
		l := a.layout()
		err := sites.UpdateStatus(ctx, s.Metadata.Name, uid, func(st *site.Status) {
			st.Phase = site.PhaseReady
			st.ObservedGeneration = gen
			// Where the site would live on this shard: the control plane
			// accepts no other path (shardlayout); nothing is created.
			st.Endpoint = l.Endpoint(uid)
			st.Docroot = l.Site(uid).Docroot
		})
		switch {
		case err == nil:
			a.tr.markReady(s.Metadata.Name, time.Now())
		case ctx.Err() == nil:
			a.tr.fail(err)
		}
	}
}

// retry calls fn up to n times, a little longer apart each time, while it
// fails with anything but a 4xx answer.
func retry(ctx context.Context, n int, fn func() error) error {
	var err error
	for i := range n {
		if err = fn(); err == nil {
			return nil
		}
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			return err
		}
		if serr := benchplatform.Sleep(ctx, time.Duration(i+1)*200*time.Millisecond); serr != nil {
			return err
		}
	}
	return err
}

// warnCounter is a slog.Handler that counts the agents' warnings and errors
// (failed heartbeats, watches, reports) into the tracker and drops the rest.
type warnCounter struct{ tr *tracker }

func (h warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h warnCounter) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.tr.fail(errors.New(msg))
	return nil
}

func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnCounter) WithGroup(string) slog.Handler      { return h }
