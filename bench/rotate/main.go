// Command rotate benchmarks rotating sites' database passwords under load
// on a real, freshly started AIPress platform (`aipress up` with its own
// MariaDB and php-fpm in a temporary data directory, on 127.0.0.1 only).
//
// It creates N sites, puts wrk load on all of them through the edge (`wrk
// -t T -c C --timeout 30s --latency -s load.lua`: a generated Lua script
// sends GET / round robin over the sites' Host headers with a cookie that
// passes the edge's page cache, so every request runs WordPress and its
// database connection), and after a warm-up requests a DB password
// rotation of every site at once (secret.rotate jobs; each shard runs a few
// at a time). wrk keeps running until every rotation ended and a little
// after; then it gets SIGINT, prints its report and the script's totals.
// The benchmark checks that wrk ran the whole time (it is started with a -d
// longer than the run may take) and prints one table:
//
//   - sites, load duration, requests, requests per second, failed requests
//     as wrk counts them (answers other than 2xx/3xx) and socket errors
//     (connect, read, write, timeout), p50 and p99 latency;
//   - rotations done, rotation time per site (p50 and max of the jobs' own
//     figure), the wall time until every rotation was done, and the
//     requests answered while rotations ran;
//   - "goal: 0 failed" with PASS or MISS.
//
// The exit code is 1 when a request failed, a rotation failed, the load did
// not cover the rotations, or measuring failed. Run it as root after `make
// build`, with wrk installed (scripts/deps.sh):
//
//	go run ./bench/rotate -sites 50 [-threads 2] [-connections 16] [-bin bin/aipress] [-keep] [-json]
//
// or `make bench-rotate ROTATE_SITES=50`. Progress goes to stderr, the
// report to stdout.
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

type options struct {
	sites, threads, connections int
	bin, wrk                    string
	keep, jsonOut               bool
	warmup                      time.Duration // load before the rotations start
	after                       time.Duration // load after the last rotation ended
	timeout                     time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.sites, "sites", 50, "number of sites")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.connections, "connections", 16, "wrk connections (-c): concurrent requests")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary (scripts/deps.sh installs Debian's)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory (with the wrk script and output) and site Unix users")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "wrk load before the rotations start")
	flag.DurationVar(&o.after, "after", 3*time.Second, "wrk load after the last rotation ended")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 10m + 30s per site)")
	flag.Parse()
	if o.sites < 1 || o.threads < 1 || o.connections < o.threads || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: rotate -sites N [-threads T] [-connections C>=T] [-bin bin/aipress] [-wrk wrk] [-keep] [-json]")
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
	if err := res.problem(); err != nil {
		fmt.Fprintln(os.Stderr, "rotate:", err)
		os.Exit(1)
	}
}

// Result holds every figure; latencies are in milliseconds, times in
// seconds.
type Result struct {
	Sites       int    `json:"sites"`
	Load        string `json:"load"` // the wrk command line, without the URL
	Threads     int    `json:"wrk_threads"`
	Connections int    `json:"wrk_connections"`

	LoadSecs     float64          `json:"load_seconds"`
	Requests     int64            `json:"requests"`
	ReqPerSec    float64          `json:"requests_per_second"`
	Failed       int64            `json:"failed_non_2xx_3xx"`
	Statuses     map[string]int64 `json:"failed_statuses,omitempty"`
	FirstFailure string           `json:"first_failure,omitempty"`
	SocketErrors int64            `json:"socket_errors"`
	Connect      int64            `json:"socket_errors_connect"`
	Read         int64            `json:"socket_errors_read"`
	Write        int64            `json:"socket_errors_write"`
	Timeout      int64            `json:"socket_errors_timeout"`
	P50Ms        float64          `json:"latency_p50_ms"`
	P99Ms        float64          `json:"latency_p99_ms"`

	Rotations       int     `json:"rotations_done"`
	RotationsFailed int     `json:"rotations_failed"`
	FirstRotateErr  string  `json:"first_rotation_error,omitempty"`
	RotateP50Secs   float64 `json:"rotation_per_site_p50_seconds"`
	RotateMaxSecs   float64 `json:"rotation_per_site_max_seconds"`
	RotateAllSecs   float64 `json:"rotation_all_sites_seconds"`

	// Covered: wrk ran from before the first rotation was requested until
	// after the last one ended (it was still running when it got SIGINT).
	Covered          bool    `json:"load_covered_rotations"`
	LoadBeforeSecs   float64 `json:"load_before_rotations_seconds"`
	LoadAfterSecs    float64 `json:"load_after_rotations_seconds"`
	DuringRotations  int64   `json:"requests_during_rotations"`
	FailedDuringRots int64   `json:"failed_during_rotations"`
	// SilentSecs: whole seconds of the rotations without any answer.
	SilentSecs int `json:"seconds_without_answer_during_rotations"`

	Pass bool `json:"goal_0_failed_pass"`
}

// problem says why the run is not a success, or nil.
func (r *Result) problem() error {
	var errs []error
	if r.Failed > 0 || r.SocketErrors > 0 {
		errs = append(errs, fmt.Errorf("%d request(s) failed (non-2xx/3xx) and %d socket error(s); first failed answer: %q", r.Failed, r.SocketErrors, r.FirstFailure))
	}
	if r.RotationsFailed > 0 || r.Rotations < r.Sites {
		errs = append(errs, fmt.Errorf("%d of %d rotations done, %d failed; first: %s", r.Rotations, r.Sites, r.RotationsFailed, r.FirstRotateErr))
	}
	if !r.Covered {
		errs = append(errs, errors.New("the wrk load did not cover the rotations"))
	}
	return errors.Join(errs...)
}

func (r *Result) table() benchplatform.Table {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	failed := n(r.Failed)
	if len(r.Statuses) > 0 {
		var codes []string
		for c, k := range r.Statuses {
			codes = append(codes, c+"×"+n(k))
		}
		slices.Sort(codes)
		failed += " (" + strings.Join(codes, ", ") + ")"
	}
	covered := "no"
	if r.Covered {
		covered = "yes"
	}
	covered += fmt.Sprintf(" (%.1f/%.1f)", r.LoadBeforeSecs, r.LoadAfterSecs)
	pass := "MISS"
	if r.Pass {
		pass = "PASS"
	}
	return benchplatform.Table{
		{"load: GET / round robin, page cache bypassed", r.Load},
		{"sites", strconv.Itoa(r.Sites)},
		{"load duration (s)", f(r.LoadSecs, 1)},
		{"requests", n(r.Requests)},
		{"requests/s", f(r.ReqPerSec, 1)},
		{"failed: non-2xx/3xx", failed},
		{"socket errors (connect/read/write/timeout)", fmt.Sprintf("%d (%d/%d/%d/%d)", r.SocketErrors, r.Connect, r.Read, r.Write, r.Timeout)},
		{"latency p50 (ms)", f(r.P50Ms, 1)},
		{"latency p99 (ms)", f(r.P99Ms, 1)},
		{"rotations done", fmt.Sprintf("%d/%d", r.Rotations, r.Sites)},
		{"rotation per site p50 (s)", f(r.RotateP50Secs, 2)},
		{"rotation per site max (s)", f(r.RotateMaxSecs, 2)},
		{"all rotations done after (s)", f(r.RotateAllSecs, 2)},
		{"load covered the rotations (s before/after)", covered},
		{"requests answered during rotations", fmt.Sprintf("%d (%d failed)", r.DuringRotations, r.FailedDuringRots)},
		{"seconds without an answer during rotations", strconv.Itoa(r.SilentSecs)},
		{"goal: 0 failed", pass},
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

var logf = benchplatform.Logf

func run(ctx context.Context, o options) (res *Result, err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return nil, err
	}
	wrkBin, err := exec.LookPath(o.wrk)
	if err != nil {
		return nil, fmt.Errorf("wrk: %w (scripts/deps.sh installs it)", err)
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
	hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

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
			if code, err := get(ctx, hc, p.Edge, d); err != nil || code != http.StatusOK {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}

	// Load: wrk with a -d longer than the rest of the run may take; it gets
	// SIGINT once the rotations are over.
	script := filepath.Join(p.Dir, "load.lua")
	if err := writeScript(script, domains); err != nil {
		return nil, err
	}
	limit := o.timeout
	if dl, ok := ctx.Deadline(); ok {
		limit = time.Until(dl)
	}
	args := wrkArgs(o.threads, o.connections, limit+time.Minute, script, "http://"+p.Edge+"/")
	w, err := startWrk(ctx, wrkBin, args)
	if err != nil {
		return nil, err
	}
	stopWrk := func() { _, _, _ = w.Stop() }
	logf("%d sites serving; wrk %s", len(domains), strings.Join(args, " "))
	if err := benchplatform.Sleep(ctx, o.warmup); err != nil {
		stopWrk()
		return nil, err
	}
	if !w.Running() {
		_, _, err := w.Stop()
		return nil, fmt.Errorf("wrk ended during the warm-up: %v\n%s", err, w.Output())
	}

	// Every site's rotation at once.
	rotStart := time.Now()
	jobs := map[string]*store.Job{}
	for _, d := range domains {
		j, err := cl.RotateSiteSecret(ctx, d, store.SecretDBPassword)
		if err != nil {
			stopWrk()
			return nil, fmt.Errorf("rotate %s: %w", d, err)
		}
		jobs[d] = j
	}
	var perSite []time.Duration
	var rotFailed int
	var firstRotErr string
	ended := map[string]bool{}
	err = p.Poll(ctx, 5*time.Minute+time.Duration(o.sites)*30*time.Second, 500*time.Millisecond, "every rotation ended", func() (bool, error) {
		for d, j := range jobs {
			if ended[d] {
				continue
			}
			cur, err := cl.GetJob(ctx, j.ID)
			if err != nil {
				return false, err
			}
			switch cur.Phase {
			case store.JobFailed:
				ended[d] = true
				rotFailed++
				if firstRotErr == "" {
					firstRotErr = d + ": " + cur.Error
				}
			case store.JobSucceeded:
				ended[d] = true
				var r store.RotateResult
				if err := json.Unmarshal(cur.Result, &r); err != nil {
					return false, fmt.Errorf("job %s result: %w", cur.ID, err)
				}
				perSite = append(perSite, time.Duration(r.Seconds*float64(time.Second)))
			}
		}
		return len(ended) == len(jobs), nil
	})
	rotEnd := time.Now()
	if err != nil {
		stopWrk()
		return nil, err
	}
	logf("all %d rotations ended after %v (%d failed)", len(jobs), rotEnd.Sub(rotStart).Round(time.Millisecond), rotFailed)
	if err := benchplatform.Sleep(ctx, o.after); err != nil {
		stopWrk()
		return nil, err
	}
	s, ran, err := w.Stop()
	stopped := time.Now()
	if werr := os.WriteFile(filepath.Join(p.Dir, "wrk.out"), []byte(w.Output()), 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	logf("wrk (its whole output with the per-second counts is in wrk.out with -keep):\n%s", Report(w.Output()))

	during, failedDuring := s.Between(rotStart, rotEnd)
	res = &Result{Sites: o.sites, Threads: o.threads, Connections: o.connections,
		Load:     fmt.Sprintf("wrk -t%d -c%d --timeout 30s --latency", o.threads, o.connections),
		LoadSecs: s.DurationUs / 1e6, Requests: s.Requests,
		Failed: s.Status, Statuses: s.Statuses, FirstFailure: s.FirstFailure,
		SocketErrors: s.SocketErrors(), Connect: s.Connect, Read: s.Read, Write: s.Write, Timeout: s.Timeout,
		P50Ms: s.P50Us / 1000, P99Ms: s.P99Us / 1000,
		Rotations: len(perSite), RotationsFailed: rotFailed, FirstRotateErr: firstRotErr,
		RotateP50Secs: percentile(perSite, 50).Seconds(), RotateMaxSecs: percentile(perSite, 100).Seconds(),
		RotateAllSecs:  rotEnd.Sub(rotStart).Seconds(),
		Covered:        ran && w.Started.Before(rotStart) && during > 0,
		LoadBeforeSecs: rotStart.Sub(w.Started).Seconds(), LoadAfterSecs: stopped.Sub(rotEnd).Seconds(),
		DuringRotations: during, FailedDuringRots: failedDuring, SilentSecs: s.Silent(rotStart, rotEnd),
	}
	if !ran {
		res.LoadAfterSecs = w.Started.Add(time.Duration(s.DurationUs) * time.Microsecond).Sub(rotEnd).Seconds()
	}
	if res.LoadSecs > 0 {
		res.ReqPerSec = float64(res.Requests) / res.LoadSecs
	}
	res.Pass = res.Failed == 0 && res.SocketErrors == 0
	return res, nil
}

// get sends GET / for domain to the edge past its page cache.
func get(ctx context.Context, hc *http.Client, edge, domain string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+edge+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = domain
	req.Header.Set("Cookie", bypassCookie)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}
