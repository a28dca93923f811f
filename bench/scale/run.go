package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/postgres/pgtest"
)

// Labels that keep the simulated and the real sites apart: a site's tier
// label is a placement constraint, matched against the shard's.
const (
	labelTier = "tier"
	tierSim   = "sim"
	tierReal  = "real"
)

// bench is one run: one control plane and its shards.
type bench struct {
	o     options
	dir   string
	cp    *serverProc
	admin *apiclient.Client
	tr    *tracker
	f     *figures

	simNames  []string // the simulated shards
	realNames []string
	sites     []string // every site, the real ones first
	rateSites []string // the open-loop phase's (openloop.go), not in sites until created
	realSites []string
	edgeToken string
	realProcs []*realShard
	agentsUp  atomic.Int64
}

// runStore runs the whole benchmark against a fresh control plane on store
// kind and returns its figures. Everything it started is stopped and removed
// before it returns, also when ctx is cancelled.
func runStore(ctx context.Context, o options, kind string) (_ *figures, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	logf("=== %s: %d sites over %d simulated + %d real shards", kind, o.sites, o.simShards(), o.real)
	dir, err := os.MkdirTemp("", "aipress-scale-")
	if err != nil {
		return nil, err
	}
	// The data dirs of real shards must be reachable by their site users.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	b := &bench{o: o, dir: dir, tr: newTracker(), f: &figures{Store: kind, Sites: o.sites, RateCreates: o.createRate,
		SimShards: o.simShards(), RealShards: o.real, RealSites: o.realSites}}
	defer func() {
		if o.keep {
			logf("kept %s", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	var spec string
	if kind == storePostgres {
		pg, err := pgtest.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		defer func() {
			if perr := pg.Stop(); perr != nil {
				err = errors.Join(err, fmt.Errorf("stop postgres: %w", perr))
			}
		}()
		if err := pg.CreateDatabase(ctx, "aipress_scale"); err != nil {
			return nil, err
		}
		spec = pg.URL("aipress_scale")
		logf("postgres up (fsync=off, synchronous_commit=off: pgtest's throwaway settings)")
	}

	if !hasServerCommand(ctx, o.bin) {
		return nil, fmt.Errorf("%s has no `server` command: run `make build`", o.bin)
	}
	b.names()
	dataDir := filepath.Join(dir, "server")
	if o.seed > 0 {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		if err := b.seed(ctx, spec, dataDir); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	cp, err := startServer(ctx, o.bin, dataDir, filepath.Join(dir, "server.log"), spec, o.cpuProfile != "")
	if err != nil {
		return nil, err
	}
	b.cp = cp
	defer func() {
		if serr := cp.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if o.seed > 0 {
		// The leader places the seeded sites on the seeded shards at
		// once, before any agent runs: its cost alone.
		at, err := b.waitSeededPlaced(ctx, spec, dataDir)
		if err != nil {
			return nil, err
		}
		b.f.Seeded, b.f.SeedPlace = o.seed, at.Sub(t0)
		logf("leader placed the %d seeded sites %s after the server started", o.seed, b.f.SeedPlace.Round(time.Millisecond))
	}
	b.admin = apiclient.New(cp.URL(), cp.Token())
	b.admin.HTTPClient = newHTTPClient(o.concurrency)

	agentCtx, stopAgents := context.WithCancel(ctx)
	var agents sync.WaitGroup
	defer func() {
		stopAgents()
		agents.Wait()
		for _, r := range b.realProcs {
			if serr := r.stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()
	if err := b.setup(ctx, agentCtx, &agents); err != nil {
		return nil, err
	}
	profDone := make(chan error, 1)
	if o.cpuProfile != "" {
		path := filepath.Join(o.cpuProfile, kind+"-cpu.pprof")
		go func() { profDone <- cp.cpuProfile(ctx, o.profileFor, path) }()
		defer func() {
			if perr := <-profDone; perr != nil {
				err = errors.Join(err, perr)
			} else {
				logf("server CPU profile of %s from the first create: %s", o.profileFor, path)
			}
		}()
	}
	if err := b.load(ctx); err != nil {
		return nil, err
	}
	if err := b.openLoop(ctx); err != nil {
		return nil, err
	}
	if err := b.reads(ctx); err != nil {
		return nil, err
	}
	if err := b.edge(ctx); err != nil {
		return nil, err
	}
	if err := b.fanout(ctx); err != nil {
		return nil, err
	}
	if err := b.scrape(ctx); err != nil {
		return nil, err
	}
	m, err := readMem(cp.PID())
	if err != nil {
		return nil, fmt.Errorf("server memory: %w", err)
	}
	b.f.ServerRSS, b.f.ServerHWM = m.RSS, m.HWM
	if n := b.tr.reportErrs.Load(); n > 0 {
		logf("warning: %d agent errors; last: %v", n, b.tr.lastErr.Load())
	}
	logf("=== %s done", kind)
	return b.f, nil
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error (the others still run to the end unless ctx ends).
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// setup creates the shard and edge tokens, starts the real shards and the
// simulated agents, and waits until every shard is Ready.
func (b *bench) setup(ctx, agentCtx context.Context, agents *sync.WaitGroup) error {
	start := time.Now()
	o := b.o
	all := append(append([]string(nil), b.simNames...), b.realNames...)
	tokens := make([]string, len(all))
	err := parallel(ctx, len(all), o.concurrency, func(i int) error {
		t, err := b.admin.CreateToken(ctx, apiclient.CreateTokenRequest{Name: "agent-" + all[i], Role: store.RoleShard, Subject: all[i]})
		if err != nil {
			return fmt.Errorf("token for %s: %w", all[i], err)
		}
		tokens[i] = t.Secret
		return nil
	})
	if err != nil {
		return err
	}
	et, err := b.admin.CreateToken(ctx, apiclient.CreateTokenRequest{Name: "bench-edge", Role: store.RoleEdge})
	if err != nil {
		return fmt.Errorf("edge token: %w", err)
	}
	b.edgeToken = et.Secret
	logf("created %d shard tokens and an edge token in %s", len(all), time.Since(start).Round(time.Millisecond))

	// Real shards first: their MariaDB and php-fpm take a while.
	labels := []string{labelTier + "=" + tierReal}
	for i, name := range b.realNames {
		tf := filepath.Join(b.dir, "token-"+name)
		if err := os.WriteFile(tf, []byte(tokens[len(b.simNames)+i]+"\n"), 0o600); err != nil {
			return err
		}
		r, err := startRealShard(o.bin, b.dir, name, b.cp.URL(), tf, o.realCapacity(), labels)
		if err != nil {
			return err
		}
		b.realProcs = append(b.realProcs, r)
	}

	// One HTTP client for all simulated agents: a connection per long poll.
	hc := newHTTPClient(len(b.simNames) + 64)
	agentLog := slog.New(warnCounter{b.tr})
	errs := make(chan error, len(b.simNames))
	// Registrations are spread over a few seconds as a fleet's would be;
	// at most concurrency at a time.
	sem := make(chan struct{}, o.concurrency)
	for i, name := range b.simNames {
		cl := apiclient.New(b.cp.URL(), tokens[i])
		cl.HTTPClient = hc
		a := &simAgent{name: name, cl: cl, reg: o.simRegistration(i), heartbeat: o.heartbeat, tr: b.tr, log: agentLog}
		agents.Add(1)
		sem <- struct{}{}
		go func() {
			defer agents.Done()
			a.run(agentCtx, func(err error) {
				<-sem
				if err != nil {
					errs <- err
					return
				}
				b.agentsUp.Add(1)
			})
		}()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := b.poll(ctx, 5*time.Minute, "simulated agents registered", func() (bool, error) {
		select {
		case err := <-errs:
			return false, err
		default:
		}
		return int(b.agentsUp.Load()) == len(b.simNames), nil
	}); err != nil {
		return err
	}
	logf("%d simulated agents registered and heartbeating (%s)", len(b.simNames), time.Since(start).Round(time.Millisecond))
	if err := b.poll(ctx, 10*time.Minute, "every shard Ready", func() (bool, error) {
		ready, n, err := b.readyShards(ctx)
		if err != nil {
			return false, err
		}
		for _, r := range b.realProcs {
			if err := r.died(); err != nil {
				return false, err
			}
		}
		return ready == len(all) && n == len(all), nil
	}); err != nil {
		return err
	}
	b.f.Setup = time.Since(start)
	logf("all %d shards Ready (%s)", len(all), b.f.Setup.Round(time.Millisecond))
	return nil
}

// names fills in the shards' and sites' names: the real sites first.
func (b *bench) names() {
	o := b.o
	for i := range o.simShards() {
		b.simNames = append(b.simNames, fmt.Sprintf("sim-%04d", i+1))
	}
	for i := range o.real {
		b.realNames = append(b.realNames, fmt.Sprintf("real-%d", i+1))
	}
	for i := range o.realSites {
		b.realSites = append(b.realSites, fmt.Sprintf("real%d.scale.test", i+1))
	}
	b.sites = append(b.sites, b.realSites...)
	for i := range o.simSites() {
		b.sites = append(b.sites, fmt.Sprintf("s%06d.scale.test", i+1))
	}
	for i := range o.openLoopSites() {
		b.rateSites = append(b.rateSites, fmt.Sprintf("s%06d.scale.test", o.simSites()+i+1))
	}
}

// readyShards returns how many shards are Ready and how many there are.
func (b *bench) readyShards(ctx context.Context) (ready, n int, err error) {
	opts := apiclient.ListOptions{Limit: 1000}
	for {
		page, err := b.admin.ListShards(ctx, opts)
		if err != nil {
			return 0, 0, err
		}
		for _, sh := range page.Items {
			n++
			if sh.Phase == store.ShardReady {
				ready++
			}
		}
		if page.Continue == "" {
			return ready, n, nil
		}
		opts.Continue = page.Continue
	}
}

// poll calls fn every 250 ms until it reports done, fails, the server dies,
// limit passes or ctx ends.
func (b *bench) poll(ctx context.Context, limit time.Duration, what string, fn func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		done, err := fn()
		if done {
			return nil
		}
		if err != nil && !isTransient(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if derr := b.cp.Died(); derr != nil {
			return derr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %s (last error: %v)", what, limit, err)
		}
		if serr := benchplatform.Sleep(ctx, 250*time.Millisecond); serr != nil {
			return fmt.Errorf("%s: %w", what, serr)
		}
	}
}

// isTransient reports whether a polled call may succeed later: a server
// error or a failed connection, not a refusal.
func isTransient(err error) bool {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	return false
}

// load creates the sites (the few real ones first, then the simulated ones
// with -concurrency clients), then waits until every site is placed and
// every site is Ready.
func (b *bench) load(ctx context.Context) error {
	o := b.o
	var rec recorder
	var done atomic.Int64
	create := func(name string, labels map[string]string) error {
		t0 := time.Now()
		_, err := b.admin.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: name, Title: "Scale " + name,
			AdminEmail: "ops@scale.test", Plan: "dev", Labels: labels})
		now := time.Now()
		rec.add(now.Sub(t0), err)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		b.tr.markCreated(name, now)
		if n := done.Add(1); n%5000 == 0 {
			logf("created %d sites", n)
		}
		return nil
	}
	cpu0, err := readCPU(b.cp.PID())
	if err != nil {
		return fmt.Errorf("server CPU: %w", err)
	}
	start := time.Now()
	realLabels := map[string]string{labelTier: tierReal}
	for _, name := range b.realSites {
		if err := create(name, realLabels); err != nil {
			return err
		}
	}
	sim := b.sites[len(b.realSites):]
	viaAPI := sim[o.seed:]
	tierLabels := map[string]string{labelTier: tierSim}
	err = parallel(ctx, len(viaAPI), o.concurrency, func(i int) error { return create(viaAPI[i], tierLabels) })
	b.f.CreateWall = time.Since(start)
	b.f.Create = rec.summary()
	if err != nil {
		return err
	}
	logf("created %d sites through the API in %s (create p50 %s, p99 %s)", b.f.Create.N, b.f.CreateWall.Round(time.Millisecond), ms(b.f.Create.P50), ms(b.f.Create.P99))

	var realPlacedAt, realReadyAt time.Time
	check := func(needReady bool) func() (bool, error) {
		return func() (bool, error) {
			placed, ready := b.tr.counts()
			rp, rr, err := b.realStatus(ctx)
			if err != nil {
				return false, err
			}
			if rp == len(b.realSites) && realPlacedAt.IsZero() {
				realPlacedAt = time.Now()
			}
			if rr == len(b.realSites) && realReadyAt.IsZero() {
				realReadyAt = time.Now()
			}
			if needReady {
				return ready == len(sim) && rr == len(b.realSites), nil
			}
			return placed == len(sim) && rp == len(b.realSites), nil
		}
	}
	if err := b.poll(ctx, 30*time.Minute, "every site placed", check(false)); err != nil {
		placed, _ := b.tr.counts()
		return fmt.Errorf("%w (%d of %d simulated sites seen placed)", err, placed, len(sim))
	}
	b.tr.mu.Lock()
	last := latest(b.tr.placed)
	b.tr.mu.Unlock()
	b.f.PlacedWall = maxTime(last, realPlacedAt).Sub(start)
	b.f.PlaceLatency = summarize(b.tr.placementLatencies(b.tr.placed), 0)
	b.f.Delivery = summarize(b.tr.placementLatencies(b.tr.delivered), 0)
	logf("every site placed %s after the first create", b.f.PlacedWall.Round(time.Millisecond))
	if err := b.poll(ctx, 30*time.Minute, "every site Ready", check(true)); err != nil {
		_, ready := b.tr.counts()
		return fmt.Errorf("%w (%d of %d simulated sites Ready)", err, ready, len(sim))
	}
	b.tr.mu.Lock()
	last = latest(b.tr.ready)
	b.tr.mu.Unlock()
	b.f.Converge = maxTime(last, realReadyAt).Sub(start)
	cpu1, err := readCPU(b.cp.PID())
	if err != nil {
		return fmt.Errorf("server CPU: %w", err)
	}
	if n := b.f.Create.N; n > 0 {
		b.f.CPUPerCreate = (cpu1 - cpu0) / time.Duration(n)
	}
	logf("every site Ready %s after the first create", b.f.Converge.Round(time.Millisecond))
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// realStatus returns how many real sites are placed and how many Ready (a
// Failed one may still recover: the shard retries).
func (b *bench) realStatus(ctx context.Context) (placed, ready int, err error) {
	for _, r := range b.realProcs {
		if err := r.died(); err != nil {
			return 0, 0, err
		}
	}
	for _, name := range b.realSites {
		s, err := b.admin.GetSite(ctx, name)
		if err != nil {
			return 0, 0, err
		}
		if s.Status.Shard != "" {
			placed++
		}
		if s.Status.Phase == site.PhaseReady {
			ready++
		}
	}
	return placed, ready, nil
}

// reads times GET /v1/sites/{name} of random sites and walks the list.
func (b *bench) reads(ctx context.Context) error {
	o := b.o
	var gets recorder
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, o.gets)
	for i := range names {
		names[i] = b.sites[rng.IntN(len(b.sites))]
	}
	err := parallel(ctx, len(names), o.concurrency, func(i int) error {
		t0 := time.Now()
		_, err := b.admin.GetSite(ctx, names[i])
		gets.add(time.Since(t0), err)
		return err
	})
	b.f.Get = gets.summary()
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	logf("%d gets: p50 %s, p99 %s", b.f.Get.N, ms(b.f.Get.P50), ms(b.f.Get.P99))

	// One client walks the pages in order, as a UI or a script would,
	// starting over at the end.
	var list recorder
	opts := apiclient.ListOptions{Limit: o.listLimit}
	seen := 0
	for range o.listPages {
		t0 := time.Now()
		page, err := b.admin.ListSites(ctx, opts)
		list.add(time.Since(t0), err)
		if err != nil {
			b.f.List = list.summary()
			return fmt.Errorf("list: %w", err)
		}
		seen += len(page.Items)
		opts.Continue = page.Continue
	}
	b.f.List = list.summary()
	b.f.ListSites = seen
	logf("%d list pages of %d: p50 %s, p99 %s", b.f.List.N, o.listLimit, ms(b.f.List.P50), ms(b.f.List.P99))
	return nil
}
