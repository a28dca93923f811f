// Command provision benchmarks site provisioning on a real, freshly started
// AIPress platform (`aipress up` with its own MariaDB and php-fpm in a
// temporary data directory, on 127.0.0.1 only).
//
// It creates N sites one after another through the API and measures, for
// each, the time from the create call to the first HTTP 200 of `GET /` from
// the edge with the site's Host header. It then reports:
//
//   - p50, p95 and max time to first 200, and sites per minute over the run;
//   - that time split into the create path's steps, p50 and p95 each (API
//     call, the agent's wake-up, the shard's steps as the site's
//     status.provision records them, Ready → first 200);
//   - the memory (RSS and PSS from /proc/<pid>/smaps_rollup) of mariadbd, of
//     all php-fpm processes and of aipress, before any site, right after
//     creation and once the platform is idle (-idle-wait, 70 s: php-fpm
//     workers idle out, the binary-log shippers flush, idle Go heap goes
//     back to the OS), in total and per site, and by role the fixed cost
//     (before any site; per shard for mariadbd and php-fpm, goal ≤ 150 MB)
//     and what each idle site adds; with -half (the default) also idle at
//     N/2 sites (creation pauses there for -idle-wait), and the slope
//     between N/2 and N per role, which leaves out what the first sites
//     fill once (a shard's buffer pool and table caches);
//   - the php-fpm workers alive during each idle wait (sampled every 5 s:
//     mean and max), the workers the uptime probes' page refills start;
//   - the platform process's Go runtime (goroutines, heap in use, idle heap
//     not returned, stacks) before any site, at -profile-at sites and idle,
//     from its --debug-addr; with -profile-dir the heap profiles and
//     goroutine dumps too (go tool pprof -sample_index=inuse_space -base
//     base-heap.pb.gz bin/aipress idle-heap.pb.gz);
//   - for up to 10 idle sites, the first request to a pool with no live
//     worker (cold) and the request after it (warm);
//
// next to the goals (p50 ≤ 0.5 s and p95 ≤ 1 s to a serving site, ≤ 1 MB per idle site at
// 1,000 sites, cold pool first request ≤ 300 ms). It reports figures only:
// missing a goal does not change the exit code; failing to measure does.
//
// Run it as root (the platform creates one Unix user per site) after
// `make build`:
//
//	go run ./bench/provision -n 100 [-bin bin/aipress] [-keep] [-json]
//
// or `make bench-provision N=100` (SHARDS=K, PARALLEL=P pass -shards and
// -parallel). The sites are spread over -shards shards started up front
// (aipress up --shards K --shard-capacity ⌈N/K⌉); the default, 0, is one
// shard per 50 sites (aipress up's capacity): 1,000 sites on 20 shards.
// -parallel P creates P sites at once (each still timed alone), which a
// 1,000-site run needs to end in reasonable time on a small machine. Progress goes to stderr, the report to
// stdout. Unless -keep is given, the platform's data directory and the site
// Unix users it created are removed at the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
)

// Goals the figures are printed next to.
const (
	goalTTF200      = 500 * time.Millisecond // p50 (issue 14)
	goalTTF200P95   = time.Second
	goalIdlePerSite = 1 << 20 // bytes, at 1,000 sites
	goalColdFirst   = 300 * time.Millisecond
	goalShardFixed  = 150 << 20 // bytes: a shard's own processes before any site
)

type options struct {
	n           int
	bin         string
	keep        bool
	jsonOut     bool
	siteTimeout time.Duration
	timeout     time.Duration
	idleWait    time.Duration
	coldSites   int
	createFor   time.Duration
	// Memory and shards (density).
	shards     int    // local shards started up front; 0: one per siteCapacity sites
	parallel   int    // sites created at once
	profileDir string // where heap profiles and goroutine dumps go ("" : none)
	profileAt  int    // also profile once this many sites serve (0: never)
	bufferPool string // aipress up --db-buffer-pool ("": its default)
	half       bool   // idle figures at N/2 sites too
}

// siteCapacity is the sites per shard -shards 0 plans for: aipress up's
// default --shard-capacity.
const siteCapacity = 50

// shardPlan returns how many shards to start and each one's capacity for n
// sites: shards 0 means one per siteCapacity sites (1,000 sites: 20). The
// capacity is what spreads the sites evenly; the platform fills a shard
// before it uses the next.
func shardPlan(n, shards int) (k, capacity int) {
	k = shards
	if k <= 0 {
		k = (n + siteCapacity - 1) / siteCapacity
	}
	return k, (n + k - 1) / k
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 100, "number of sites to create")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and site Unix users")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	flag.DurationVar(&o.siteTimeout, "site-timeout", 5*time.Minute, "longest wait for one site's first 200")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 10m + 30s per site)")
	flag.DurationVar(&o.idleWait, "idle-wait", 70*time.Second, "wait before the idle figures: php-fpm workers idle out (30 s), the shards' binary-log shippers flush what creation wrote (every 60 s) and the platform returns idle heap to the OS (every minute)")
	flag.IntVar(&o.coldSites, "cold", 10, "sites to measure the cold pool first request on")
	flag.DurationVar(&o.createFor, "create-for", 0, "start no site creation after this long (0: no limit); the figures are then those of the sites created, the shards those planned for -n")
	flag.IntVar(&o.shards, "shards", 0, "local shards to start up front (aipress up --shards), the sites spread evenly over them; 0: one per 50 sites")
	flag.IntVar(&o.parallel, "parallel", 1, "sites created at once (each still timed from its create call to its first 200)")
	flag.StringVar(&o.profileDir, "profile-dir", "", "save the platform's heap profiles and goroutine dumps here (baseline, at -profile-at sites, idle)")
	flag.IntVar(&o.profileAt, "profile-at", 100, "also profile the platform once this many sites serve (0: not)")
	flag.StringVar(&o.bufferPool, "db-buffer-pool", "", "each shard's InnoDB buffer pool (aipress up --db-buffer-pool, e.g. 32M; empty: its default)")
	flag.BoolVar(&o.half, "half", true, "pause creation at N/2 sites for -idle-wait and take idle figures there too: the per-site slope between N/2 and N")
	flag.Parse()
	if o.n < 1 || o.parallel < 1 || o.shards < 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: provision -n N [-bin bin/aipress] [-keep] [-json]")
		os.Exit(2)
	}
	if o.timeout <= 0 {
		o.timeout = 10*time.Minute + time.Duration(o.n)*30*time.Second/time.Duration(o.parallel)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

// logf writes a progress line to stderr.
var logf = benchplatform.Logf

// platform is the running aipress process, with the requests the benchmark
// sends to its edge.
type platform struct{ *benchplatform.Platform }

// startPlatform starts the platform; its Stop fails when a mariadbd or
// php-fpm process of it outlived aipress.
func startPlatform(bin string, extra []string) (*platform, error) {
	bp, err := benchplatform.Start(bin, benchplatform.Options{Extra: extra, AfterExit: func(bp *benchplatform.Platform) error {
		if procs, err := listProcs(); err == nil {
			pp := findPlatformProcs(procs, bp.PID(), bp.DataDir)
			if n := len(pp.mariadb) + len(pp.fpmMasters) + len(pp.fpmWorkers); n > 0 {
				return fmt.Errorf("%d mariadbd/php-fpm process(es) outlived aipress", n)
			}
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	return &platform{bp}, nil
}

// Result holds every figure. Durations are in milliseconds.
type Result struct {
	Sites          int     `json:"sites"`
	Requested      int     `json:"requested"` // -n; more than Sites when -create-for stopped creation
	Shards         int     `json:"shards"`
	ShardCapacity  int     `json:"shard_capacity"`
	Parallel       int     `json:"parallel"`
	Binary         string  `json:"binary"`
	CPUs           int     `json:"cpus"`
	TTF200P50      float64 `json:"ttf200_p50_ms"`
	TTF200P95      float64 `json:"ttf200_p95_ms"`
	TTF200Max      float64 `json:"ttf200_max_ms"`
	CreateCallP50  float64 `json:"create_call_p50_ms"`
	CreationSecs   float64 `json:"creation_seconds"`
	SitesPerMinute float64 `json:"sites_per_minute"`
	// Steps splits the time to first 200 (steps.go).
	Steps          []StepFigure   `json:"steps"`
	InstallMethods map[string]int `json:"install_methods"`
	PoolStarts     map[string]int `json:"pool_starts"`

	MemBaseline      MemSnapshot `json:"mem_baseline"`
	MemAfterCreation MemSnapshot `json:"mem_after_creation"`
	MemIdle          MemSnapshot `json:"mem_idle"`
	IdleWaitSecs     float64     `json:"idle_wait_seconds"`
	// With -half: the idle figures at HalfSites sites (0: none taken).
	HalfSites   int         `json:"half_sites"`
	MemHalfIdle MemSnapshot `json:"mem_half_idle"`
	// php-fpm workers alive during the idle waits (at HalfSites and at N).
	WorkersHalfIdle WorkerSamples `json:"fpm_workers_half_idle_wait"`
	WorkersIdle     WorkerSamples `json:"fpm_workers_idle_wait"`
	// The platform process's Go runtime: before any site, at GoAtSites
	// sites (-profile-at) and idle (after the idle figures).
	GoBaseline GoMem `json:"go_baseline"`
	GoAt       GoMem `json:"go_at"`
	GoAtSites  int   `json:"go_at_sites"`
	GoIdle     GoMem `json:"go_idle"`
	GoHalfIdle GoMem `json:"go_half_idle"` // with -half: idle at HalfSites
	// Per site: total / N, and (total - baseline) / N, which is what a site
	// costs once the fixed cost is spread over many sites.
	PerSiteAfterCreation    Mem `json:"per_site_after_creation"`
	PerSiteIdle             Mem `json:"per_site_idle"`
	PerSiteIdleMarginal     Mem `json:"per_site_idle_marginal"`
	PerSiteAfterCreationMgl Mem `json:"per_site_after_creation_marginal"`
	// Costs splits the idle memory by role into fixed and per-site parts.
	Costs Costs `json:"costs"`

	ColdSamples int     `json:"cold_samples"`
	ColdP50     float64 `json:"cold_first_request_p50_ms"`
	ColdMax     float64 `json:"cold_first_request_max_ms"`
	WarmP50     float64 `json:"warm_request_p50_ms"`

	Goals struct {
		TTF200P50Ms       float64 `json:"ttf200_p50_ms"`
		TTF200P95Ms       float64 `json:"ttf200_p95_ms"`
		IdlePerSiteBytes  uint64  `json:"idle_per_site_bytes_at_1000_sites"`
		ColdFirstReqP50Ms float64 `json:"cold_first_request_ms"`
		ShardFixedBytes   uint64  `json:"shard_fixed_bytes"`
	} `json:"goals"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func run(ctx context.Context, o options) (err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return err
	}
	shards, capacity := shardPlan(o.n, o.shards)
	debugPort, err := benchplatform.FreePort()
	if err != nil {
		return err
	}
	debugAddr := fmt.Sprintf("127.0.0.1:%d", debugPort)
	extra := []string{"--shards", strconv.Itoa(shards), "--shard-capacity", strconv.Itoa(capacity), "--debug-addr", debugAddr}
	if o.bufferPool != "" {
		extra = append(extra, "--db-buffer-pool", o.bufferPool)
	}
	if o.parallel > 1 {
		// Several pollers on one client IP would meet the edge's per-IP limit.
		extra = append(extra, "--rate-ip", "0")
	}
	p, err := startPlatform(bin, extra)
	if err != nil {
		return err
	}
	defer func() {
		p.Finish(o.keep, err != nil)
	}()

	cl, err := p.Ready(ctx)
	if err != nil {
		return err
	}

	res := Result{Sites: o.n, Requested: o.n, Binary: bin, CPUs: runtime.NumCPU(), Shards: shards, ShardCapacity: capacity, Parallel: o.parallel}
	res.Goals.TTF200P50Ms = ms(goalTTF200)
	res.Goals.TTF200P95Ms = ms(goalTTF200P95)
	res.Goals.IdlePerSiteBytes = goalIdlePerSite
	res.Goals.ColdFirstReqP50Ms = ms(goalColdFirst)
	res.Goals.ShardFixedBytes = goalShardFixed
	prof, err := newProfiler(p.DataDir, debugAddr, o.profileDir)
	if err != nil {
		return err
	}
	if res.GoBaseline, err = prof.snapshot(ctx, "base"); err != nil {
		return fmt.Errorf("profile (baseline): %w", err)
	}
	if res.MemBaseline, err = measureMem(p.PID(), p.DataDir); err != nil {
		return fmt.Errorf("memory (baseline): %w", err)
	}

	hc := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	type created struct{ domain, pool string }
	sites := make([]created, o.n)
	var (
		mu          sync.Mutex
		ttf, calls  []time.Duration
		steps       stepTimes
		firstErr    error
		profileErr  error
		next        = 0
		wg          sync.WaitGroup
		begin       = time.Now()
		cctx, abort = context.WithCancel(ctx)
	)
	defer abort()
	one := func(i int) error {
		domain := fmt.Sprintf("bench-%d.localhost", i)
		t0 := time.Now()
		resp, err := cl.CreateSite(cctx, apiclient.CreateSiteRequest{Domain: domain, Title: "Bench " + strconv.Itoa(i), AdminEmail: "admin@" + domain})
		if err != nil {
			return fmt.Errorf("create %s: %w", domain, err)
		}
		call := time.Since(t0)
		reqStart, err := p.waitServing(cctx, hc, domain, t0.Add(o.siteTimeout))
		if err != nil {
			detail := ""
			if s, gerr := cl.GetSite(context.WithoutCancel(ctx), domain); gerr == nil {
				b, _ := json.Marshal(s.Status)
				detail = "; status: " + string(b)
			}
			return fmt.Errorf("site %s: %w%s", domain, err, detail)
		}
		served := time.Now()
		d := served.Sub(t0)
		got, err := cl.GetSite(cctx, domain)
		if err != nil {
			return fmt.Errorf("get %s: %w", domain, err)
		}
		pool := ""
		if resp.Site != nil {
			pool = shard.SiteID(resp.Site.Metadata.UID)
		}
		mu.Lock()
		defer mu.Unlock()
		sites[i-1] = created{domain, "wp_" + pool}
		calls, ttf = append(calls, call), append(ttf, d)
		if err := steps.record(t0, call, reqStart, served, got); err != nil {
			return err
		}
		done := len(ttf)
		if done%10 == 0 || done == o.n {
			last := ttf[max(0, len(ttf)-10):]
			logf("%4d/%d sites  last %d: p50 %v max %v  elapsed %v", done, o.n, len(last),
				percentile(last, 50).Round(time.Millisecond), percentile(last, 100).Round(time.Millisecond),
				time.Since(begin).Round(time.Second))
		}
		if done%100 == 0 && done < o.n {
			// Figures on the way, for a run that does not reach the end.
			if m, err := measureMem(p.PID(), p.DataDir); err == nil {
				b := res.MemBaseline
				logf("at %d sites: PSS mariadbd %s (+%s/site), php-fpm %s, aipress %s (+%s/site), total +%s/site over the baseline",
					done, mib(m.MariaDB.PSS), kib(delta(m.MariaDB.PSS, b.MariaDB.PSS)/uint64(done)), mib(m.PHPFPM.PSS),
					mib(m.AIPress.PSS), kib(delta(m.AIPress.PSS, b.AIPress.PSS)/uint64(done)), kib(delta(m.Total.PSS, b.Total.PSS)/uint64(done)))
			}
		}
		if done == o.profileAt && done < o.n {
			// The other workers wait: a heap profile of a platform
			// mid-request is the same platform, but fewer moving parts.
			g, err := prof.snapshot(ctx, fmt.Sprintf("at%d", done))
			if err != nil {
				profileErr = fmt.Errorf("profile at %d sites: %w", done, err)
			} else {
				res.GoAt, res.GoAtSites = g, done
				logf("at %d sites: %d goroutines, heap in use %s, retained %s", done, g.Goroutines, mib(g.HeapInuse), mib(g.HeapRetained))
			}
		}
		return nil
	}
	var paused time.Duration // the idle wait at N/2, not creation time
	// create creates sites up to last, o.parallel at once.
	create := func(last int) {
		for range o.parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					stop := next >= last || firstErr != nil || o.createFor > 0 && time.Since(begin)-paused > o.createFor
					if !stop {
						next++
					}
					i := next
					mu.Unlock()
					if stop {
						return
					}
					if err := one(i); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						abort()
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	if half := o.n / 2; o.half && half > 0 {
		create(half)
		if firstErr == nil && profileErr == nil && len(ttf) == half {
			t0 := time.Now()
			logf("at %d sites: waiting %v for the idle figures at N/2", half, o.idleWait)
			if res.WorkersHalfIdle, err = p.idleWait(ctx, o.idleWait); err != nil {
				return err
			}
			if res.MemHalfIdle, err = measureMem(p.PID(), p.DataDir); err != nil {
				return fmt.Errorf("memory (idle at %d sites): %w", half, err)
			}
			if res.GoHalfIdle, err = prof.snapshot(ctx, fmt.Sprintf("half%d", half)); err != nil {
				return fmt.Errorf("profile (idle at %d sites): %w", half, err)
			}
			res.HalfSites = half
			paused = time.Since(t0)
		}
	}
	create(o.n)
	if firstErr != nil {
		return firstErr
	}
	if profileErr != nil {
		return profileErr
	}
	elapsed := time.Since(begin) - paused
	if len(ttf) < o.n {
		// -create-for: the sites started before the limit all serve
		// (an error ends the run above), and they are the first ones.
		logf("creation stopped after %v: %d of %d sites", o.createFor, len(ttf), o.n)
		o.n, sites = len(ttf), sites[:len(ttf)]
		res.Sites = o.n
	}
	res.TTF200P50, res.TTF200P95, res.TTF200Max = ms(percentile(ttf, 50)), ms(percentile(ttf, 95)), ms(percentile(ttf, 100))
	res.CreateCallP50 = ms(percentile(calls, 50))
	res.Steps, res.InstallMethods, res.PoolStarts = steps.figures(), steps.methods, steps.pools
	res.CreationSecs = elapsed.Seconds()
	res.SitesPerMinute = float64(o.n) / elapsed.Minutes()

	if res.MemAfterCreation, err = measureMem(p.PID(), p.DataDir); err != nil {
		return fmt.Errorf("memory (after creation): %w", err)
	}
	logf("waiting %v for php-fpm workers to go idle", o.idleWait)
	idleStart := time.Now()
	if res.WorkersIdle, err = p.idleWait(ctx, o.idleWait); err != nil {
		return err
	}
	res.IdleWaitSecs = time.Since(idleStart).Seconds()
	if res.MemIdle, err = measureMem(p.PID(), p.DataDir); err != nil {
		return fmt.Errorf("memory (idle): %w", err)
	}
	if res.GoIdle, err = prof.snapshot(ctx, "idle"); err != nil {
		return fmt.Errorf("profile (idle): %w", err)
	}
	perSite := func(m, base Mem) (Mem, Mem) {
		n := uint64(o.n)
		mgl := Mem{}
		if m.RSS > base.RSS {
			mgl.RSS = (m.RSS - base.RSS) / n
		}
		if m.PSS > base.PSS {
			mgl.PSS = (m.PSS - base.PSS) / n
		}
		return Mem{RSS: m.RSS / n, PSS: m.PSS / n}, mgl
	}
	res.PerSiteAfterCreation, res.PerSiteAfterCreationMgl = perSite(res.MemAfterCreation.Total.Mem, res.MemBaseline.Total.Mem)
	res.PerSiteIdle, res.PerSiteIdleMarginal = perSite(res.MemIdle.Total.Mem, res.MemBaseline.Total.Mem)
	res.Costs = costs(res.MemBaseline, res.MemHalfIdle, res.MemIdle, res.HalfSites, o.n)

	// Cold pool first request, on sites spread over the run.
	k := min(o.coldSites, o.n)
	var cold, warm []time.Duration
	for j := range k {
		s := sites[j*o.n/k]
		procs, err := listProcs()
		if err != nil {
			return err
		}
		if w := findPlatformProcs(procs, p.PID(), p.DataDir).poolWorkers(s.pool); w > 0 {
			logf("cold: %s still has %d worker(s); skipped", s.domain, w)
			continue
		}
		c, err := p.timedGet(ctx, hc, s.domain)
		if err != nil {
			return fmt.Errorf("cold request %s: %w", s.domain, err)
		}
		w, err := p.timedGet(ctx, hc, s.domain)
		if err != nil {
			return fmt.Errorf("warm request %s: %w", s.domain, err)
		}
		cold, warm = append(cold, c), append(warm, w)
	}
	res.ColdSamples = len(cold)
	res.ColdP50, res.ColdMax, res.WarmP50 = ms(percentile(cold, 50)), ms(percentile(cold, 100)), ms(percentile(warm, 50))

	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printTable(os.Stdout, &res)
	return nil
}

// get sends GET / for domain to the edge and returns the status code.
func (p *platform) get(ctx context.Context, hc *http.Client, domain string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Edge+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = domain
	// Past the edge's page cache: every figure here is about PHP and its pool.
	req.Header.Set("Cookie", "wordpress_no_cache=1")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if x := resp.Header.Get("X-Cache"); x == "HIT" || x == "STALE" {
		return 0, fmt.Errorf("GET / on %s answered from the page cache (%s); the benchmark must reach PHP", domain, x)
	}
	return resp.StatusCode, err
}

// waitServing polls GET / every 5 ms for 2 s, then every 200 ms, until it
// answers 200 or deadline, and returns when the request that answered 200
// was sent. Until the site's route is published the edge
// answers at once without PHP, so the short interval costs little and
// adds at most 5 ms to the figure; once a poll reaches PHP the next waits
// for its answer (a poll that reaches PHP costs a PHP request: many sites
// polled often for long would be the load that slows them).
func (p *platform) waitServing(ctx context.Context, hc *http.Client, domain string, deadline time.Time) (time.Time, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	var last string
	for {
		sent := time.Now()
		code, err := p.get(ctx, hc, domain)
		if err == nil && code == http.StatusOK {
			return sent, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "HTTP " + strconv.Itoa(code)
		}
		if derr := p.Died(); derr != nil {
			return time.Time{}, derr
		}
		every := 5 * time.Millisecond
		if time.Since(start) > 2*time.Second {
			every = 200 * time.Millisecond
		}
		if err := benchplatform.Sleep(ctx, every); err != nil {
			return time.Time{}, fmt.Errorf("no 200 for GET / (last: %s): %w", last, err)
		}
	}
}

// timedGet times one GET / that must answer 200.
func (p *platform) timedGet(ctx context.Context, hc *http.Client, domain string) (time.Duration, error) {
	t0 := time.Now()
	code, err := p.get(ctx, hc, domain)
	d := time.Since(t0)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d", code)
	}
	return d, err
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b uint64) string { return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10)) }
func msStr(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// table is the shared aligned text table.
type table = benchplatform.Table

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "AIPress provisioning benchmark: %d sites on %d shard(s) of capacity %d, created %d at a time, %d CPUs, %s\n\n",
		r.Sites, r.Shards, r.ShardCapacity, r.Parallel, r.CPUs, r.Binary)
	if r.Requested > r.Sites {
		fmt.Fprintf(w, "creation stopped by -create-for at %d of the %d sites asked for; the figures are those of %d sites\n\n", r.Sites, r.Requested, r.Sites)
	}
	table{
		{"Provisioning", "figure", "goal"},
		{"time to first 200, p50", msStr(r.TTF200P50), "≤ 500 ms"},
		{"time to first 200, p95", msStr(r.TTF200P95), "≤ 1 s"},
		{"time to first 200, max", msStr(r.TTF200Max), ""},
		{"create API call, p50", msStr(r.CreateCallP50), ""},
		{"sites per minute", fmt.Sprintf("%.1f", r.SitesPerMinute), ""},
		{"total creation time", fmt.Sprintf("%.1f s", r.CreationSecs), ""},
	}.Print(w)
	fmt.Fprintln(w)
	printSteps(w, r)

	snaps := []MemSnapshot{r.MemBaseline, r.MemAfterCreation, r.MemIdle}
	t := table{
		{"Memory", "RSS base", "PSS base", "RSS created", "PSS created", "RSS idle", "PSS idle"},
	}
	if r.HalfSites > 0 {
		snaps = []MemSnapshot{r.MemBaseline, r.MemHalfIdle, r.MemAfterCreation, r.MemIdle}
		h := strconv.Itoa(r.HalfSites)
		t[0] = []string{"Memory", "RSS base", "PSS base", "RSS idle " + h, "PSS idle " + h, "RSS created", "PSS created", "RSS idle", "PSS idle"}
	}
	for _, g := range []struct {
		name string
		get  func(MemSnapshot) Group
	}{
		{"mariadbd", func(s MemSnapshot) Group { return s.MariaDB }},
		{"php-fpm (master + workers)", func(s MemSnapshot) Group { return s.PHPFPM }},
		{"aipress", func(s MemSnapshot) Group { return s.AIPress }},
		{"total", func(s MemSnapshot) Group { return s.Total }},
	} {
		cells := []string{g.name}
		for _, s := range snaps {
			cells = append(cells, mib(g.get(s).RSS), mib(g.get(s).PSS))
		}
		t = append(t, cells)
	}
	workers := []string{"php-fpm workers"}
	for _, s := range snaps {
		workers = append(workers, strconv.Itoa(s.FPMWorkers), "")
	}
	pad := []string{"", ""} // no per-site figures at base (nor at N/2)
	if r.HalfSites > 0 {
		pad = append(pad, "", "")
	}
	t = append(t, workers,
		append(append([]string{"per site: total / N"}, pad...), kib(r.PerSiteAfterCreation.RSS), kib(r.PerSiteAfterCreation.PSS), kib(r.PerSiteIdle.RSS), kib(r.PerSiteIdle.PSS)),
		append(append([]string{"per site: (total - baseline) / N"}, pad...), kib(r.PerSiteAfterCreationMgl.RSS), kib(r.PerSiteAfterCreationMgl.PSS), kib(r.PerSiteIdleMarginal.RSS), kib(r.PerSiteIdleMarginal.PSS)),
	)
	t.Print(w)
	if r.HalfSites > 0 {
		fmt.Fprintf(w, "base: before any site; idle %d: after %.0f s without creation at %d sites; created: right after the last site served; idle: %.0f s later\n",
			r.HalfSites, r.IdleWaitSecs, r.HalfSites, r.IdleWaitSecs)
	} else {
		fmt.Fprintf(w, "base: before any site; created: right after the last site served; idle: %.0f s later\n", r.IdleWaitSecs)
	}
	ws := func(s WorkerSamples) string { return fmt.Sprintf("mean %.1f, max %d", s.Mean, s.Max) }
	if r.HalfSites > 0 {
		fmt.Fprintf(w, "php-fpm workers alive during the idle waits (counted every %v): at %d sites %s; at %d sites %s\n",
			workerSampleEvery, r.HalfSites, ws(r.WorkersHalfIdle), r.Sites, ws(r.WorkersIdle))
	} else {
		fmt.Fprintf(w, "php-fpm workers alive during the idle wait (counted every %v): %s\n", workerSampleEvery, ws(r.WorkersIdle))
	}
	fmt.Fprintf(w, "goal: ≤ 1 MB per idle site at 1,000 sites (compare idle PSS per site; measured here at N = %d)\n\n", r.Sites)

	c := r.Costs
	slope := r.HalfSites > 0
	head := []string{"Cost by role (PSS; RSS)", "fixed (no site)", "per idle site"}
	if slope {
		head = append(head, fmt.Sprintf("per idle site, %d → %d sites", r.HalfSites, r.Sites))
	}
	ct := table{append(head, "goal")}
	for _, rc := range c.Roles {
		goal := ""
		if rc.Role == "total" {
			goal = "≤ 1 MB per idle site"
		}
		row := []string{rc.Role, mib(rc.Fixed.PSS) + "; " + mib(rc.Fixed.RSS), kib(rc.PerSite.PSS) + "; " + kib(rc.PerSite.RSS)}
		if slope {
			row = append(row, kib(rc.Slope.PSS)+"; "+kib(rc.Slope.RSS))
		}
		ct = append(ct, append(row, goal))
	}
	last := []string{fmt.Sprintf("per shard: mariadbd + php-fpm (%d shard(s))", c.ShardsBase), mib(c.ShardFixed.PSS) + "; " + mib(c.ShardFixed.RSS), ""}
	if slope {
		last = append(last, "")
	}
	ct = append(ct, append(last, "≤ 150 MB per shard"))
	ct.Print(w)
	if c.ShardsIdle != c.ShardsBase {
		fmt.Fprintf(w, "%d shard(s) before any site, %d once idle: the added shards' fixed cost is in the per-site figures\n", c.ShardsBase, c.ShardsIdle)
	}
	fmt.Fprintln(w, "fixed: before any site (the platform process holds the control plane, the edge and the shard agents); per idle site: (idle − fixed) / N")
	if slope {
		fmt.Fprintf(w, "per idle site, %d → %d sites: (idle at %d − idle at %d) / %d, without what the first sites fill once (buffer pools, table caches)\n",
			r.HalfSites, r.Sites, r.Sites, r.HalfSites, r.Sites-r.HalfSites)
	}
	fmt.Fprintln(w)

	printGoMem(w, r)

	table{
		{fmt.Sprintf("Idle pool, first request (%d sites)", r.ColdSamples), "figure", "goal"},
		{"cold (no live worker), p50", msStr(r.ColdP50), "≤ 300 ms"},
		{"cold (no live worker), max", msStr(r.ColdMax), ""},
		{"warm (right after), p50", msStr(r.WarmP50), ""},
	}.Print(w)
}

// printGoMem prints where the platform process's memory goes by the Go
// runtime's own account, before any site, at -profile-at sites and idle.
func printGoMem(w io.Writer, r *Result) {
	head := []string{"aipress Go runtime", "base"}
	cols := []GoMem{r.GoBaseline}
	if r.HalfSites > 0 {
		head, cols = append(head, fmt.Sprintf("%d sites idle", r.HalfSites)), append(cols, r.GoHalfIdle)
	}
	if r.GoAtSites > 0 {
		head, cols = append(head, fmt.Sprintf("%d sites", r.GoAtSites)), append(cols, r.GoAt)
	}
	head, cols = append(head, fmt.Sprintf("%d sites idle", r.Sites), "per idle site"), append(cols, r.GoIdle)
	per := func(f func(GoMem) uint64) string {
		b, i := f(r.GoBaseline), f(r.GoIdle)
		if i < b {
			return "0"
		}
		return fmt.Sprintf("%.1f KiB", float64(i-b)/float64(r.Sites)/1024)
	}
	t := table{head}
	for _, row := range []struct {
		name string
		f    func(GoMem) uint64
		fmt  func(uint64) string
	}{
		{"goroutines", func(g GoMem) uint64 { return uint64(g.Goroutines) }, func(v uint64) string { return strconv.FormatUint(v, 10) }},
		{"heap in use", func(g GoMem) uint64 { return g.HeapInuse }, mib},
		{"heap idle, not returned to the OS", func(g GoMem) uint64 { return g.HeapRetained }, mib},
		{"goroutine stacks", func(g GoMem) uint64 { return g.StackInuse }, mib},
		{"obtained from the OS (Sys)", func(g GoMem) uint64 { return g.Sys }, mib},
	} {
		cells := []string{row.name}
		for _, c := range cols {
			cells = append(cells, row.fmt(row.f(c)))
		}
		p := per(row.f)
		if row.name == "goroutines" && r.GoIdle.Goroutines >= r.GoBaseline.Goroutines {
			p = fmt.Sprintf("%.2f", float64(r.GoIdle.Goroutines-r.GoBaseline.Goroutines)/float64(r.Sites))
		}
		t = append(t, append(cells, p))
	}
	t.Print(w)
	fmt.Fprintln(w, "runtime.MemStats after a GC (heap profile of --debug-addr); idle: after the idle memory figures")
	fmt.Fprintln(w)
}

// delta is a − b, 0 when b is larger.
func delta(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
