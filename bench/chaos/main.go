// Command chaos is `make bench-chaos`: restarts under load on a real
// platform. It starts `aipress up` (bench/internal/benchplatform), creates
// a few sites, puts a Go load generator on their cached (GET /) and
// uncached (the page cache's bypass cookie) pages through the edge on
// 127.0.0.1, and kills -9 in turn: the shard's MariaDB, its php-fpm master
// and the whole platform (which is restarted at once on the same data
// directory and ports; the shard agent runs inside it in `up`, so that is
// also the shard agent's fault). Each process it kills it finds by its
// command line, which names the platform's data directory.
//
// Per fault it prints the requests sent from the kill until the platform
// had recovered and settled, the errors by kind, the recovery time and the
// longest request. Refused connections (nothing listens while the platform
// restarts) and requests the killed platform held are expected and not
// counted as errors. The goal: no other error, recovery ≤ 2 s.
//
// Recovery is from the kill to the end of the first successful uncached
// request (one that needs PHP and the database) sent after the kill and
// after the last failed request.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

type options struct {
	sites, workers int
	bin            string
	faults         []string
	baseline       time.Duration // load before each kill
	settle         time.Duration // load after recovery
	limit          time.Duration // longest wait for recovery per fault
	keep, jsonOut  bool
}

// Faults, in the order they run.
const (
	FaultMariaDB  = "mariadb"
	FaultPHPFPM   = "php-fpm"
	FaultPlatform = "platform"
)

var allFaults = []string{FaultMariaDB, FaultPHPFPM, FaultPlatform}

var noRateLimits = []string{"--rate-ip", "0", "--rate-site", "0"}

// Goals.
const (
	goalRecovery = 2 * time.Second
)

func main() {
	var o options
	var faults string
	flag.IntVar(&o.sites, "sites", 3, "sites under load")
	flag.IntVar(&o.workers, "workers", 8, "concurrent requests of the load generator")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "the aipress binary (make build)")
	flag.StringVar(&faults, "faults", strings.Join(allFaults, ","), "faults to inject, in order")
	flag.DurationVar(&o.baseline, "baseline", 3*time.Second, "load before each kill")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "load after recovery, still counted")
	flag.DurationVar(&o.limit, "limit", 2*time.Minute, "longest wait for recovery per fault")
	flag.BoolVar(&o.keep, "keep", false, "keep the platform's directory (and site users)")
	flag.BoolVar(&o.jsonOut, "json", false, "print the results as JSON too")
	flag.Parse()
	for _, f := range strings.Split(faults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			if !slices.Contains(allFaults, f) {
				fmt.Fprintf(os.Stderr, "unknown fault %q (want %s)\n", f, strings.Join(allFaults, ", "))
				os.Exit(2)
			}
			o.faults = append(o.faults, f)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if res != nil {
		res.table().Print(os.Stdout)
		if o.jsonOut {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Println(string(b))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-chaos:", err)
		os.Exit(1)
	}
}

// Result is one run: a row per fault.
type Result struct {
	Sites   int           `json:"sites"`
	Workers int           `json:"workers"`
	Faults  []FaultResult `json:"faults"`
}

// FaultResult is what the load saw around one fault.
type FaultResult struct {
	Fault    string `json:"fault"`
	Requests int    `json:"requests"` // sent from the kill to the end of the window
	OK       int    `json:"ok"`
	Refused  int    `json:"refused"`   // connection refused (expected while nothing listens)
	InFlight int    `json:"in_flight"` // held by the killed platform (expected)
	Socket   int    `json:"socket"`    // other transport errors: resets, timeouts
	S502     int    `json:"s502"`
	S500     int    `json:"s500"`
	S503     int    `json:"s503"`
	Other5xx int    `json:"other_5xx"`
	Other    int    `json:"other"` // 4xx and other unexpected statuses
	// Statuses counts the answers other than 2xx/3xx by status code.
	Statuses map[int]int `json:"statuses,omitempty"`
	// FirstError is an example of a counted error.
	FirstError string `json:"first_error,omitempty"`
	// RecoverySecs: kill → first successful uncached request after the
	// last failure; -1: not recovered within the limit.
	RecoverySecs float64 `json:"recovery_secs"`
	// MaxLatencyMs is the longest request sent in the window (retries
	// and the edge's start-up wait show here, not as errors).
	MaxLatencyMs float64 `json:"max_latency_ms"`
	// BeforeP50Ms is the median uncached request of the baseline load
	// before the kill: recovery includes one such request (the anchor).
	BeforeP50Ms float64 `json:"before_p50_ms"`
	Met         bool    `json:"met"`
}

// Errors counts the errors beyond the expected ones.
func (f FaultResult) Errors() int {
	return f.Socket + f.S502 + f.S500 + f.S503 + f.Other5xx + f.Other
}

func (r *Result) table() benchplatform.Table {
	t := benchplatform.Table{{"fault", "requests", "ok", "refused", "in flight", "socket", "502", "500", "503", "other", "errors", "recovery", "max latency", "uncached p50 before", "goal (0 errors, ≤ 2 s)"}}
	for _, f := range r.Faults {
		rec := "not recovered"
		if f.RecoverySecs >= 0 {
			rec = fmt.Sprintf("%.2f s", f.RecoverySecs)
		}
		goal := "met"
		if !f.Met {
			goal = "missed"
		}
		t = append(t, []string{f.Fault, strconv.Itoa(f.Requests), strconv.Itoa(f.OK), strconv.Itoa(f.Refused), strconv.Itoa(f.InFlight),
			strconv.Itoa(f.Socket), strconv.Itoa(f.S502), strconv.Itoa(f.S500), strconv.Itoa(f.S503), strconv.Itoa(f.Other5xx + f.Other),
			strconv.Itoa(f.Errors()), rec, fmt.Sprintf("%.0f ms", f.MaxLatencyMs), fmt.Sprintf("%.0f ms", f.BeforeP50Ms), goal})
	}
	return t
}

func run(ctx context.Context, o options) (res *Result, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the platform creates a Unix user per site")
	}
	if o.sites < 1 || o.workers < 1 {
		return nil, errors.New("want at least one site and one worker")
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("binary: %w (run make build)", err)
	}
	// No rate limits: failing fast, the load would otherwise meet 429s.
	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-chaos-", Extra: noRateLimits})
	if err != nil {
		return nil, err
	}
	// The platform running at the end (a restart replaces it).
	cur := &p
	defer func() { (*cur).Finish(o.keep, err != nil) }()
	cl, err := p.Ready(ctx)
	if err != nil {
		return nil, err
	}
	var domains []string
	for i := 1; i <= o.sites; i++ {
		d := fmt.Sprintf("chaos-%d.localhost", i)
		if _, err := cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: d, Title: "Chaos " + strconv.Itoa(i), AdminEmail: "admin@" + d}); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		domains = append(domains, d)
	}
	lg := newLoad(p.Edge, domains)
	if err := p.Poll(ctx, 5*time.Minute+time.Duration(o.sites)*10*time.Second, 200*time.Millisecond, "every site serving", func() (bool, error) {
		for _, d := range domains {
			for _, cached := range []bool{false, true} {
				if rec := lg.get(ctx, d, cached); !rec.ok() {
					return false, fmt.Errorf("%s: %s", d, rec.outcome())
				}
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	benchplatform.Logf("%d sites serving; load: %d workers on cached and uncached pages", len(domains), o.workers)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	done := lg.run(loadCtx, o.workers)
	defer func() { stopLoad(); <-done }()

	res = &Result{Sites: o.sites, Workers: o.workers}
	for _, fault := range o.faults {
		if err := benchplatform.Sleep(ctx, o.baseline); err != nil {
			return res, err
		}
		fr, err := inject(ctx, o, fault, cur, lg)
		if err != nil {
			return res, fmt.Errorf("%s: %w", fault, err)
		}
		res.Faults = append(res.Faults, fr)
		benchplatform.Logf("%s: %d errors (by status %v; first: %s), recovery %.2f s", fault, fr.Errors(), fr.Statuses, fr.FirstError, fr.RecoverySecs)
	}
	return res, nil
}

// inject kills what fault names, waits for recovery and the settle time,
// and measures the load's requests from the kill on.
func inject(ctx context.Context, o options, fault string, cur **benchplatform.Platform, lg *load) (FaultResult, error) {
	p := *cur
	var pids []int
	switch fault {
	case FaultMariaDB:
		pids = findProcs(p.DataDir, isMariaDB)
	case FaultPHPFPM:
		pids = findProcs(p.DataDir, isFPMMaster)
	case FaultPlatform:
		pids = []int{p.PID()}
	}
	if len(pids) == 0 {
		return FaultResult{}, errors.New("no process to kill found")
	}
	before := lg.uncachedP50(time.Now().Add(-o.baseline))
	kill := time.Now()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return FaultResult{}, fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	benchplatform.Logf("%s: killed pid %v", fault, pids)
	// Requests sent before heldUntil were held by a killed process: only
	// the platform's (the edge survives the other faults, and must hide
	// them).
	var heldUntil time.Time
	if fault == FaultPlatform {
		if err := p.WaitExit(ctx, time.Minute); err != nil {
			return FaultResult{}, err
		}
		// Connections its listener took before it was gone die with it.
		heldUntil = time.Now()
		np, err := benchplatform.Start(p.Bin, benchplatform.Options{Dir: p.Dir, Edge: p.Edge, API: p.API, Extra: noRateLimits,
			LogName: fmt.Sprintf("aipress-restart-%d.log", time.Now().Unix())})
		if err != nil {
			return FaultResult{}, fmt.Errorf("restart: %w", err)
		}
		*cur = np
		p = np
	}
	// Recovered: an uncached success sent after the kill and after the
	// last failure; then the settle time.
	var recovered time.Time
	err := p.Poll(ctx, o.limit, 50*time.Millisecond, "recovery", func() (bool, error) {
		recovered = recoveryTime(lg.since(kill), kill)
		return !recovered.IsZero() && time.Since(recovered) >= o.settle, nil
	})
	if err != nil {
		if p.Died() != nil {
			return FaultResult{}, err
		}
		benchplatform.Logf("%s: %v", fault, err)
	}
	recs := lg.since(kill)
	end := time.Now()
	if !recovered.IsZero() {
		end = recovered.Add(o.settle)
	}
	f := summarize(fault, recs, kill, heldUntil, end)
	f.BeforeP50Ms = float64(before) / float64(time.Millisecond)
	return f, nil
}

// recoveryTime is the end of the first successful uncached request that
// started after kill and after every failure's end, or zero.
func recoveryTime(recs []record, kill time.Time) time.Time {
	lastFail := kill
	for _, r := range recs {
		if !r.ok() && r.end.After(lastFail) {
			lastFail = r.end // refused and in-flight ones too: not recovered yet
		}
	}
	var first time.Time
	for _, r := range recs {
		if r.ok() && !r.cached && !r.start.Before(lastFail) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

// summarize counts the requests sent from kill until end. A transport
// error of a request sent before heldUntil (the killed platform's exit) is
// "in flight": the killed process held it.
func summarize(fault string, recs []record, kill, heldUntil, end time.Time) FaultResult {
	f := FaultResult{Fault: fault, RecoverySecs: -1}
	for _, r := range recs {
		if r.start.After(end) {
			continue
		}
		f.Requests++
		f.MaxLatencyMs = max(f.MaxLatencyMs, float64(r.end.Sub(r.start))/float64(time.Millisecond))
		switch {
		case r.ok():
			f.OK++
			continue
		case r.refused:
			f.Refused++
			continue
		case r.start.Before(heldUntil) && r.err != "":
			f.InFlight++
			continue
		}
		if r.err != "" {
			f.Socket++
		} else {
			if f.Statuses == nil {
				f.Statuses = map[int]int{}
			}
			f.Statuses[r.status]++
			switch {
			case r.status == 502:
				f.S502++
			case r.status == 500:
				f.S500++
			case r.status == 503:
				f.S503++
			case r.status >= 500:
				f.Other5xx++
			default:
				f.Other++
			}
		}
		if f.FirstError == "" {
			f.FirstError = r.outcome()
		}
	}
	if rt := recoveryTime(recs, kill); !rt.IsZero() {
		f.RecoverySecs = rt.Sub(kill).Seconds()
	}
	f.Met = f.Errors() == 0 && f.RecoverySecs >= 0 && f.RecoverySecs <= goalRecovery.Seconds()
	return f
}

// findProcs returns the pids whose command line names dataDir and
// matches.
func findProcs(dataDir string, match func(args []string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), dataDir) {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isMariaDB: the shard's mariadbd (a replica's data directory is named
// "replica"; none runs by default).
func isMariaDB(args []string) bool {
	return len(args) > 0 && filepath.Base(args[0]) == "mariadbd" && !strings.Contains(strings.Join(args, " "), "replica")
}

// isFPMMaster: php-fpm's master names itself "php-fpm: master process
// (<config>)".
func isFPMMaster(args []string) bool {
	return len(args) > 0 && strings.HasPrefix(args[0], "php-fpm: master process")
}
