package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

// openLoop is the open-loop phase (-create-rate): after the closed-loop
// creates are placed and Ready, it creates -rate-creates more simulated
// sites at a fixed rate, each sent on its schedule whether the ones before
// were answered or not, so a slow answer does not slow the load down (the
// closed loop's p50 is its clients over its throughput). Latencies count
// from the scheduled send. It then waits until every one of them is Ready,
// so the later phases start from a settled fleet.
func (b *bench) openLoop(ctx context.Context) error {
	o := b.o
	if o.openLoopSites() == 0 {
		return nil
	}
	names := b.rateSites
	logf("open loop: %d creates at %d/s", len(names), o.createRate)
	var rec recorder
	var wg sync.WaitGroup
	every := time.Second / time.Duration(o.createRate)
	labels := map[string]string{labelTier: tierSim}
	start := time.Now()
	for i, name := range names {
		at := start.Add(time.Duration(i) * every)
		if err := benchplatform.Sleep(ctx, time.Until(at)); err != nil {
			wg.Wait()
			return err
		}
		wg.Go(func() {
			_, err := b.admin.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: name, Title: "Scale " + name,
				AdminEmail: "ops@scale.test", Plan: "dev", Labels: labels})
			now := time.Now()
			rec.add(now.Sub(at), err)
			if err == nil {
				b.tr.markCreated(name, now)
			}
		})
	}
	wg.Wait()
	b.f.RateWall = time.Since(start)
	b.f.RateCreate = rec.summary()
	if err := rec.firstErr(); err != nil {
		return fmt.Errorf("open loop: %w", err)
	}
	b.sites = append(b.sites, names...)
	want := len(b.sites) - len(b.realSites)
	if err := b.poll(ctx, 10*time.Minute, "every open-loop site Ready", func() (bool, error) {
		_, ready := b.tr.counts()
		return ready == want, nil
	}); err != nil {
		return err
	}
	b.f.RateDelivery = summarize(b.tr.latenciesOf(names, b.tr.delivered), 0)
	logf("open loop: %d creates in %s: create p50 %s, p99 %s; create → agent's watch p50 %s, p99 %s", b.f.RateCreate.N,
		b.f.RateWall.Round(time.Millisecond), ms(b.f.RateCreate.P50), ms(b.f.RateCreate.P99), ms(b.f.RateDelivery.P50), ms(b.f.RateDelivery.P99))
	return nil
}
