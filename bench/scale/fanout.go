package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

// idleWindow is how long the server's idle CPU (heartbeats, long polls
// timing out) is measured, to take it out of the cost per change.
const idleWindow = 5 * time.Second

// fanout makes K site changes one after another, with every agent
// long-polling, and measures how long each takes to reach the owning agent,
// what it costs the server in CPU and how many agent watches it wakes.
func (b *bench) fanout(ctx context.Context) error {
	o := b.o
	sim := b.sites[len(b.realSites):]
	if o.changes == 0 || len(sim) == 0 {
		return nil
	}
	pid := b.cp.PID()
	// Let the long polls settle after the reads, then take the idle rate.
	if err := benchplatform.Sleep(ctx, time.Second); err != nil {
		return err
	}
	b.f.Watchers = int(b.agentsUp.Load()) + len(b.realProcs)
	c0, err := readCPU(pid)
	if err != nil {
		return fmt.Errorf("server cpu: %w", err)
	}
	if err := benchplatform.Sleep(ctx, idleWindow); err != nil {
		return err
	}
	c1, err := readCPU(pid)
	if err != nil {
		return fmt.Errorf("server cpu: %w", err)
	}
	idlePerSec := float64(c1-c0) / idleWindow.Seconds()

	rng := rand.New(rand.NewPCG(3, 4))
	var rec recorder
	wake0 := b.tr.wakeups.Load()
	cpu0, err := readCPU(pid)
	if err != nil {
		return fmt.Errorf("server cpu: %w", err)
	}
	start := time.Now()
	for i := range o.changes {
		name := sim[rng.IntN(len(sim))]
		d, err := b.change(ctx, name, i)
		rec.add(d, err)
		if err != nil && (ctx.Err() != nil || !errors.Is(err, errNotSeen)) {
			return err
		}
	}
	elapsed := time.Since(start)
	cpu1, err := readCPU(pid)
	if err != nil {
		return fmt.Errorf("server cpu: %w", err)
	}
	b.f.Changes = o.changes
	b.f.Fanout = rec.summary()
	b.f.WakeupsPerChage = float64(b.tr.wakeups.Load()-wake0) / float64(o.changes)
	net := float64(cpu1-cpu0) - idlePerSec*elapsed.Seconds()
	b.f.CPUPerChange = time.Duration(max(0, net) / float64(o.changes))
	logf("fan-out: %d changes, p50 %s, p99 %s, server CPU %s per change (idle %.0f ms/s taken out), %.2f agent wake-ups per change",
		o.changes, ms(b.f.Fanout.P50), ms(b.f.Fanout.P99), ms(b.f.CPUPerChange), idlePerSec/float64(time.Millisecond), b.f.WakeupsPerChage)
	return nil
}

var errNotSeen = errors.New("the owning agent did not see the change")

// change updates the site's title and returns the time from the PATCH's
// answer to its agent seeing the new generation (0 if the agent saw it
// first).
func (b *bench) change(ctx context.Context, name string, i int) (time.Duration, error) {
	// Expect before writing: the agent may see the change before the
	// answer arrives.
	seen := b.tr.expect(name)
	defer b.tr.forget(name)
	title := fmt.Sprintf("Changed %d", i)
	_, err := b.admin.UpdateSite(ctx, name, apiclient.UpdateSiteRequest{Title: &title})
	answered := time.Now()
	if err != nil {
		return 0, fmt.Errorf("patch %s: %w", name, err)
	}
	select {
	case at := <-seen:
		return max(0, at.Sub(answered)), nil
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("%s: %w within a minute", name, errNotSeen)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
