package shard

import (
	"sync"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// stepTimer times the steps of a site's first convergence
// (site.Status.Provision). A nil *stepTimer times nothing, so the steps of
// a convergence that is not a creation cost nothing.
type stepTimer struct {
	clock  func() time.Time
	seen   time.Time
	mu     sync.Mutex
	last   time.Time
	steps  []site.ProvisionStep
	method string
	poolMs float64
	pool   string
}

func newStepTimer(clock func() time.Time) *stepTimer {
	now := clock()
	return &stepTimer{clock: clock, seen: now, last: now}
}

func durMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// step ends the step named name: the time since the previous one.
func (t *stepTimer) step(name string) {
	if t == nil {
		return
	}
	now := t.clock()
	t.mu.Lock()
	t.steps = append(t.steps, site.ProvisionStep{Step: name, Ms: durMs(now.Sub(t.last))})
	t.last = now
	t.mu.Unlock()
}

// beside records how long starting the pool took, beside the other steps.
func (t *stepTimer) beside(d time.Duration) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.poolMs = durMs(d)
	t.mu.Unlock()
}

// via records how WordPress was installed ("template" or "installer").
func (t *stepTimer) via(method string) {
	if t != nil {
		t.method = method
	}
}

// poolVia records how the pool started ("spare" or "reload").
func (t *stepTimer) poolVia(how string) {
	if t != nil {
		t.mu.Lock()
		t.pool = how
		t.mu.Unlock()
	}
}

// provision is the record for generation gen (nil for a nil timer).
func (t *stepTimer) provision(gen int64) *site.Provision {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return &site.Provision{Generation: gen, Seen: t.seen, Steps: append([]site.ProvisionStep(nil), t.steps...),
		Method: t.method, PoolStartMs: t.poolMs, Pool: t.pool}
}
