// Command rotate benchmarks rotating sites' database passwords under load
// on a real, freshly started AIPress platform (`aipress up` with its own
// MariaDB and php-fpm in a temporary data directory, on 127.0.0.1 only).
//
// It creates N sites, puts HTTP load on all of them through the edge (a Go
// load generator: W workers, each sending GET / round-robin over the sites
// with the site's Host header and a cookie that passes the edge's page
// cache, so every request runs WordPress and its database connection),
// requests a DB password rotation of every site at once (secret.rotate
// jobs; each shard runs a few at a time), keeps the load on until every
// rotation ended and a little after, and prints:
//
//   - sites, requests, failed requests (an answer of 400 or more, or a
//     socket error), requests per second, p50 and p99 latency;
//   - the rotation time per site (p50 and max of the jobs' own figure) and
//     the wall time until every rotation was done.
//
// The goal is 0 failed requests; the exit code is 1 when any failed (or
// when measuring failed). Run it as root after `make build`:
//
//	go run ./bench/rotate -sites 50 [-workers 8] [-bin bin/aipress] [-keep] [-json]
//
// or `make bench-rotate SITES=50`. Progress goes to stderr, the report to
// stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

type options struct {
	sites, workers int
	bin            string
	keep, jsonOut  bool
	settle         time.Duration // load before the rotations and after them
	timeout        time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.sites, "sites", 50, "number of sites")
	flag.IntVar(&o.workers, "workers", 8, "load generator workers (concurrent requests)")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and site Unix users")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "load before the rotations start and after they end")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 10m + 30s per site)")
	flag.Parse()
	if o.sites < 1 || o.workers < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: rotate -sites N [-workers W] [-bin bin/aipress] [-keep] [-json]")
		os.Exit(2)
	}
	if o.timeout <= 0 {
		o.timeout = 10*time.Minute + time.Duration(o.sites)*30*time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rotate:", err)
		os.Exit(1)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.table().Print(os.Stdout)
	}
	if res.Failed > 0 {
		fmt.Fprintf(os.Stderr, "rotate: %d request(s) failed; first: %s\n", res.Failed, res.FirstFailure)
		os.Exit(1)
	}
}

// Result holds every figure; durations are in milliseconds.
type Result struct {
	Sites         int     `json:"sites"`
	Workers       int     `json:"workers"`
	Requests      int64   `json:"requests"`
	Failed        int64   `json:"failed"`
	FirstFailure  string  `json:"first_failure,omitempty"`
	ReqPerSec     float64 `json:"requests_per_second"`
	P50Ms         float64 `json:"latency_p50_ms"`
	P99Ms         float64 `json:"latency_p99_ms"`
	RotateP50Secs float64 `json:"rotation_per_site_p50_seconds"`
	RotateMaxSecs float64 `json:"rotation_per_site_max_seconds"`
	RotateAllSecs float64 `json:"rotation_all_sites_seconds"`
	LoadSecs      float64 `json:"load_seconds"`
}

func (r *Result) table() benchplatform.Table {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	return benchplatform.Table{
		{"sites", strconv.Itoa(r.Sites)},
		{"load workers", strconv.Itoa(r.Workers)},
		{"requests", strconv.FormatInt(r.Requests, 10)},
		{"failed requests (goal 0)", strconv.FormatInt(r.Failed, 10)},
		{"requests/s", f(r.ReqPerSec, 1)},
		{"latency p50 (ms)", f(r.P50Ms, 1)},
		{"latency p99 (ms)", f(r.P99Ms, 1)},
		{"rotation per site p50 (s)", f(r.RotateP50Secs, 2)},
		{"rotation per site max (s)", f(r.RotateMaxSecs, 2)},
		{"all rotations done after (s)", f(r.RotateAllSecs, 2)},
		{"load ran for (s)", f(r.LoadSecs, 1)},
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var logf = benchplatform.Logf

func run(ctx context.Context, o options) (res *Result, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the platform creates a Unix user per site")
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("binary: %w (run make build)", err)
	}
	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-rotate-"})
	if err != nil {
		return nil, err
	}
	defer func() { p.Finish(o.keep, err != nil) }()
	cl, err := p.Ready(ctx)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{MaxIdleConnsPerHost: o.workers}}

	// Sites, created one after another, each serving before the next.
	var domains []string
	for i := 1; i <= o.sites; i++ {
		d := fmt.Sprintf("rot-%d.localhost", i)
		if _, err := cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: d, Title: "Rotate " + strconv.Itoa(i), AdminEmail: "admin@" + d}); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		domains = append(domains, d)
	}
	if err := p.Poll(ctx, 10*time.Minute+time.Duration(o.sites)*10*time.Second, 200*time.Millisecond, "every site serving", func() (bool, error) {
		for _, d := range domains {
			if code, _, err := get(ctx, hc, p.Edge, d); err != nil || code != http.StatusOK {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	logf("%d sites serving; load with %d workers", len(domains), o.workers)

	// Load.
	l := startLoad(ctx, hc, p.Edge, domains, o.workers)
	loadStart := time.Now()
	if err := benchplatform.Sleep(ctx, o.settle); err != nil {
		l.stop()
		return nil, err
	}

	// Every site's rotation at once.
	rotStart := time.Now()
	jobs := map[string]*store.Job{}
	for _, d := range domains {
		j, err := cl.RotateSiteSecret(ctx, d, store.SecretDBPassword)
		if err != nil {
			l.stop()
			return nil, fmt.Errorf("rotate %s: %w", d, err)
		}
		jobs[d] = j
	}
	var perSite []time.Duration
	var jobErr error
	err = p.Poll(ctx, 5*time.Minute+time.Duration(o.sites)*30*time.Second, 500*time.Millisecond, "every rotation done", func() (bool, error) {
		for d, j := range jobs {
			if j.Phase == store.JobSucceeded {
				continue
			}
			cur, err := cl.GetJob(ctx, j.ID)
			if err != nil {
				return false, err
			}
			jobs[d] = cur
			switch cur.Phase {
			case store.JobFailed:
				jobErr = fmt.Errorf("rotation of %s failed: %s", d, cur.Error)
				return true, nil
			case store.JobSucceeded:
				var r store.RotateResult
				_ = json.Unmarshal(cur.Result, &r)
				perSite = append(perSite, time.Duration(r.Seconds*float64(time.Second)))
			default:
				return false, nil
			}
		}
		return true, nil
	})
	rotAll := time.Since(rotStart)
	if err == nil {
		err = jobErr
	}
	if err != nil {
		l.stop()
		return nil, err
	}
	logf("all %d rotations done after %v", len(jobs), rotAll.Round(time.Millisecond))
	if err := benchplatform.Sleep(ctx, o.settle); err != nil {
		l.stop()
		return nil, err
	}
	l.stop()
	loadFor := time.Since(loadStart)

	res = &Result{Sites: o.sites, Workers: o.workers, Failed: l.failed, FirstFailure: l.firstErr,
		Requests: int64(len(l.lat)) + l.failed, LoadSecs: loadFor.Seconds(),
		P50Ms: ms(percentile(l.lat, 50)), P99Ms: ms(percentile(l.lat, 99)),
		RotateP50Secs: percentile(perSite, 50).Seconds(), RotateMaxSecs: percentile(perSite, 100).Seconds(),
		RotateAllSecs: rotAll.Seconds()}
	res.ReqPerSec = float64(res.Requests) / loadFor.Seconds()
	return res, nil
}

// get sends GET / for domain to the edge past its page cache.
func get(ctx context.Context, hc *http.Client, edge, domain string) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+edge+"/", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Host = domain
	req.Header.Set("Cookie", "wordpress_no_cache=1")
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(t0), err
}

// load is the running load generator; its figures are valid after stop.
type load struct {
	mu       sync.Mutex
	lat      []time.Duration
	failed   int64
	firstErr string
	stop     func()
}

func startLoad(ctx context.Context, hc *http.Client, edge string, domains []string, workers int) *load {
	l := &load{}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var failed int64
			var first string
			for i := w; ctx.Err() == nil; i++ {
				d := domains[i%len(domains)]
				code, took, err := get(ctx, hc, edge, d)
				if ctx.Err() != nil {
					break
				}
				switch {
				case err != nil:
					failed++
					if first == "" {
						first = d + ": " + err.Error()
					}
				case code >= 400:
					failed++
					if first == "" {
						first = d + ": HTTP " + strconv.Itoa(code)
					}
				default:
					lat = append(lat, took)
				}
			}
			l.mu.Lock()
			l.lat = append(l.lat, lat...)
			l.failed += failed
			if l.firstErr == "" {
				l.firstErr = first
			}
			l.mu.Unlock()
		}()
	}
	l.stop = func() { cancel(); wg.Wait() }
	return l
}
