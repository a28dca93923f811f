package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// watchWait is the long-poll wait the simulated agents ask for.
const watchWait = 30 * time.Second

// tracker is what the simulated agents tell the benchmark: when each site
// was created (by the load), first seen placed and reported Ready (by its
// agent), and when a watched change reached its agent.
type tracker struct {
	mu      sync.Mutex
	created map[string]time.Time
	placed  map[string]time.Time
	ready   map[string]time.Time
	gens    map[string]int64 // the generation each site's agent saw last
	expects map[string]expectation

	// wakeups counts watch responses that carried changes.
	wakeups atomic.Int64
	// polls counts the long polls open now.
	polls atomic.Int64
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
		ready: map[string]time.Time{}, gens: map[string]int64{}, expects: map[string]expectation{}}
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

// placementLatencies returns, per site seen placed, the time from its
// create answer to its agent seeing it (0 when the agent was faster than
// the answer).
func (t *tracker) placementLatencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Duration, 0, len(t.placed))
	for name, at := range t.placed {
		if c, ok := t.created[name]; ok {
			out = append(out, max(0, at.Sub(c)))
		}
	}
	return out
}

func (t *tracker) fail(err error) {
	t.reportErrs.Add(1)
	t.lastErr.Store(err)
}

// simAgent is a simulated shard agent: it speaks the agent protocol
// (register, heartbeat, watch, report) and reports every site Ready at once
// with a fake endpoint, creating nothing.
type simAgent struct {
	name      string
	cl        *apiclient.Client
	capacity  int
	labels    map[string]string
	heartbeat time.Duration
	tr        *tracker

	sites map[string]bool // the sites the shard holds, for heartbeats
	count atomic.Int64
}

// run registers the shard, sends its first heartbeat, calls up, then
// heartbeats and watches until ctx ends.
func (a *simAgent) run(ctx context.Context, up func(error)) {
	err := retry(ctx, 5, func() error {
		_, err := a.cl.Register(ctx, apiclient.RegisterRequest{Capacity: a.capacity, Labels: a.labels, AgentVersion: "bench-scale", Provider: "bench"})
		if err != nil {
			return fmt.Errorf("register %s: %w", a.name, err)
		}
		if err := a.cl.Heartbeat(ctx, store.Usage{}); err != nil {
			return fmt.Errorf("heartbeat %s: %w", a.name, err)
		}
		return nil
	})
	up(err)
	if err != nil {
		return
	}
	go a.heartbeats(ctx)
	a.sites = map[string]bool{}
	for ctx.Err() == nil {
		if err := a.watch(ctx); err != nil && ctx.Err() == nil {
			a.tr.fail(err)
			_ = benchplatform.Sleep(ctx, time.Second)
		}
	}
}

func (a *simAgent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := int(a.count.Load())
		err := retry(ctx, 3, func() error { return a.cl.Heartbeat(ctx, store.Usage{Sites: n, Serving: n}) })
		if err != nil && ctx.Err() == nil {
			a.tr.fail(fmt.Errorf("heartbeat %s: %w", a.name, err))
		}
	}
}

// watch lists the shard's sites, then follows their changes until an error
// (a 410 means list again).
func (a *simAgent) watch(ctx context.Context) error {
	list, err := a.cl.AgentSites(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", a.name, err)
	}
	clear(a.sites)
	a.handle(ctx, list.Sites, nil)
	rev := list.Revision
	for ctx.Err() == nil {
		a.tr.polls.Add(1)
		resp, err := a.cl.WatchAgentSites(ctx, rev, watchWait)
		a.tr.polls.Add(-1)
		if apiclient.IsExpired(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("watch %s: %w", a.name, err)
		}
		if len(resp.Sites)+len(resp.Removed) > 0 {
			a.tr.wakeups.Add(1)
		}
		a.handle(ctx, resp.Sites, resp.Removed)
		rev = resp.Revision
	}
	return nil
}

// handle reports every site of the shard that is not Ready at its
// generation yet as Ready.
func (a *simAgent) handle(ctx context.Context, sites []site.Site, removed []store.Tombstone) {
	now := time.Now()
	for _, tb := range removed {
		delete(a.sites, tb.Name)
	}
	for i := range sites {
		s := &sites[i]
		if s.Status.Shard != a.name {
			continue // a move's target: not ours yet
		}
		a.sites[s.Metadata.Name] = true
		a.tr.saw(s, now)
		st := s.Status
		if st.Phase == site.PhaseReady && st.ObservedGeneration == s.Metadata.Generation && st.Endpoint != "" {
			continue
		}
		uid := s.Metadata.UID
		st.Phase = site.PhaseReady
		st.ObservedGeneration = s.Metadata.Generation
		st.Endpoint = "unix:/nonexistent/" + uid + ".sock"
		st.Docroot = "/nonexistent/" + uid + "/htdocs"
		err := retry(ctx, 3, func() error {
			_, err := a.cl.ReportStatus(ctx, s.Metadata.Name, uid, st)
			return err
		})
		switch {
		case err == nil:
			a.tr.markReady(s.Metadata.Name, time.Now())
		case apiclient.IsConflict(err) || apiclient.IsNotFound(err):
			// Moved, deleted or re-created meanwhile: the watch tells.
		case ctx.Err() == nil:
			a.tr.fail(fmt.Errorf("report %s: %w", s.Metadata.Name, err))
		}
	}
	a.count.Store(int64(len(a.sites)))
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
