// Command edge benchmarks the AIPress edge against nginx in front of the
// same php-fpm pool and the same WordPress site.
//
// What: it starts the real platform (`aipress up` in a temporary data
// directory, on free 127.0.0.1 ports, as bench/provision does), creates one
// site, and starts Debian's nginx on another free 127.0.0.1 port with the
// site's docroot as root and the site's pool socket as fastcgi_pass,
// configured the way WordPress hosts run it: sendfile, tcp_nopush,
// keep-alive, open_file_cache and a fastcgi_cache (5 minutes for 200 and
// 301) with the usual WordPress bypass rules (POST, query strings, wp-admin,
// xmlrpc.php, wp-*.php, feeds and sitemaps, and the comment_author,
// wordpress_*, wp-postpass, wordpress_no_cache, wordpress_logged_in and
// WooCommerce cookies). The rendered nginx.conf is in nginx.go (and, for
// fixed paths, in testdata/nginx.conf.golden).
//
// How: for every scenario it runs `wrk --latency` against the edge and then
// against nginx, and does that -rounds times (edge, nginx, edge, nginx …),
// so that drift of the machine hits both sides alike. Both sides get the
// same Host header (the site's URL host, with the edge's port, which is
// what WordPress's home URL holds; nginx passes it on as HTTP_HOST). Before
// each timed run it sends two requests to the side, which must answer 200,
// and keeps the X-Cache header of the second. The scenarios:
//
//   - cache hit: GET / (warmed), with the edge's WAF off if it can be
//     switched (see below);
//   - uncached: GET / with "Cookie: wordpress_no_cache=1", which both
//     sides' bypass rules send to PHP;
//   - static: GET of a theme's CSS file (-static-path);
//   - cache hit and static again from clients that send
//     "Accept-Encoding: gzip" (both sides compress: the edge sends the gzip
//     variant it stored with the page or file, nginx compresses each
//     response with `gzip on`); a note flags a side that answered such a
//     row without Content-Encoding: gzip;
//   - cache hit with the WAF: GET / with the edge's WAF in block mode, against
//     nginx without a WAF. It needs a way to switch the WAF per site: the
//     benchmark looks for `aipress site set` with a --waf-mode (or --waf)
//     flag at run time and otherwise skips the row with a note. After each
//     switch it waits until an XSS probe (/?s=<script>…) is refused (block)
//     or not refused (off).
//
// If `aipress up --help` lists --rate-ip/--rate-site, they are passed as 0
// (off) so that the rate limiter does not cap the load.
//
// Run it as root (the platform creates a Unix user per site; nginx's workers
// run as root because the pool socket is root's, mode 0600, as the edge
// also runs as root):
//
//	make bench-edge
//
// which installs nginx and wrk if missing, builds bin/aipress and runs
//
//	go run ./bench/edge -duration 10s -connections 32 -threads 2 -rounds 2 [-keep]
//
// With -profile DIR it then also serves the site from an edge inside the
// benchmark process (internal/edge with the page cache and the metrics, as
// `aipress up` builds it, which has no profiling hook of its own) and
// writes a CPU profile of every scenario but the WAF one under the same wrk
// load to DIR (go tool pprof -top FILE), and prints for each the CPU time
// per request, the Go runtime's scheduler latency and GC pause quantiles
// (runtime/metrics), GC cycles per 10,000 requests and bytes and objects
// allocated per request. -trace also writes a runtime trace per scenario
// (go tool trace FILE; go tool trace -pprof=sched FILE), -profile-only
// skips the comparison with nginx, -profile-variants lean,net-http
// profiles both HTTP paths in turn, and -only REGEXP keeps the scenarios
// whose names match (for the table too).
//
// Progress and each run's figures go to stderr, the table to stdout. Unless
// -keep is given, nginx and the platform are stopped and the temporary
// directory and the site's Unix user are removed at the end.
//
// How to read the output: one row per scenario with the mean over the rounds
// of each side's requests per second and of its p50 and p99 latency (from
// wrk's latency distribution), the ratio edge/nginx of the throughputs and
// the goal for that ratio (cache hit ≥ 1.2, uncached ≥ 1.0, static ≥ 0.9,
// with or without gzip).
// The X-Cache column is what each side said on the request before the last
// timed run: HIT on a cache row means the run measured a cache; "-" means
// the side sent no X-Cache (the edge before it had a page cache: the cache
// rows then compare nginx's cache with the edge's uncached path). The last
// line is the WAF's cost on the edge, 1 − (cache hit with WAF) / (cache
// hit without WAF), goal ≤ 25 %. Notes below the table flag anything that
// makes a figure doubtful (errors or non-2xx/3xx answers during a run, a
// cache row without a HIT, an uncached row with one). wrk, nginx, the edge
// and PHP share the machine's CPUs, so compare ratios, not absolute
// figures, and prefer longer runs (-duration 30s) for decisions. Missing a
// goal does not change the exit code; failing to measure does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/plans"
)

type options struct {
	bin         string
	nginx       string
	wrk         string
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	rounds      int
	domain      string
	staticPath  string
	keep        bool
	timeout     time.Duration
	profile     string
	netHTTPOnly bool
	trace       bool
	profileOnly bool
	only        string
	variants    []string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.StringVar(&o.nginx, "nginx", "nginx", "nginx binary")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each timed wrk run (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up per scenario and side before the first round (0: none)")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.rounds, "rounds", 2, "alternations (edge, nginx) per scenario")
	flag.StringVar(&o.domain, "domain", "edge-bench.localhost", "domain of the benchmark site")
	flag.StringVar(&o.staticPath, "static-path", "/wp-content/themes/twentytwentythree/style.css", "static file for the static scenario")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (data, logs, nginx.conf) and the site's Unix user")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 10m + the runs)")
	flag.StringVar(&o.profile, "profile", "", "after the runs, write CPU profiles of an in-process edge under load (every scenario but the WAF one) to this directory")
	flag.BoolVar(&o.trace, "trace", false, "with -profile: also write a runtime/trace of every profiled scenario next to its profile (go tool trace FILE)")
	flag.BoolVar(&o.profileOnly, "profile-only", false, "with -profile: skip the edge-vs-nginx runs and the table, profile only (CPU per request, not req/s vs nginx)")
	flag.Func("profile-variants", "with -profile: comma-separated in-process edges to profile, each scenario on each in turn: lean (the default), net-http", func(v string) error {
		for _, x := range strings.Split(v, ",") {
			if x != "lean" && x != "net-http" {
				return fmt.Errorf("unknown variant %q", x)
			}
			o.variants = append(o.variants, x)
		}
		return nil
	})
	flag.StringVar(&o.only, "only", "", "run only the scenarios whose name matches this regular expression (e.g. 'cache hit|static')")
	flag.BoolVar(&o.netHTTPOnly, "net-http-only", false, "run the edge without its lean HTTP/1.1 path (aipress up --edge-net-http-only; the profile's edge too): the net/http baseline")
	flag.Parse()
	if flag.NArg() > 0 || o.rounds < 1 || o.connections < 1 || o.threads < 1 || o.duration < time.Second {
		fmt.Fprintln(os.Stderr, "usage: edge [-duration 10s] [-connections 32] [-threads 2] [-rounds 2] [-keep]")
		os.Exit(2)
	}
	if (o.trace || o.profileOnly) && o.profile == "" {
		fmt.Fprintln(os.Stderr, "edge: -trace and -profile-only need -profile DIR")
		os.Exit(2)
	}
	if o.timeout <= 0 {
		o.timeout = 10*time.Minute + time.Duration(o.rounds*8)*(o.duration+5*time.Second) + 8*o.warmup
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-edge:", err)
		os.Exit(1)
	}
}

// logf writes a progress line to stderr.
var logf = benchplatform.Logf

// side is one server under test.
type side struct {
	name string // "edge" or "nginx"
	addr string // 127.0.0.1:port
}

// scenario is one row of the table.
type scenario struct {
	name     string
	path     string
	headers  []string // besides Host
	goal     float64  // edge/nginx ratio; 0: none
	cacheHit bool     // both sides should answer X-Cache: HIT
	uncached bool     // neither side may answer X-Cache: HIT
	waf      bool     // edge's WAF in block mode
	gzip     bool     // clients accept gzip: both sides should answer gzip
}

// gzipHeader is what the gzip rows' clients send (browsers send more
// codings; gzip is the one both sides serve).
const gzipHeader = "Accept-Encoding: gzip"

// sideStats are one side's runs of one scenario.
type sideStats struct {
	runs     []wrkResult
	xcache   string // X-Cache of the request before the last run ("-": none)
	encoding string // its Content-Encoding ("-": none)
}

func (s *sideStats) mean() (rps float64, p50, p99 time.Duration) {
	if len(s.runs) == 0 {
		return 0, 0, 0
	}
	for _, r := range s.runs {
		rps += r.ReqPerSec
		p50 += r.P50
		p99 += r.P99
	}
	n := len(s.runs)
	return rps / float64(n), p50 / time.Duration(n), p99 / time.Duration(n)
}

// wafProbe is a request the OWASP CRS refuses at paranoia level 1 (XSS).
const wafProbe = "/?s=%3Cscript%3Ealert(1)%3C%2Fscript%3E"

func run(ctx context.Context, o options) (err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return err
	}
	for _, b := range []*string{&o.nginx, &o.wrk} {
		path, err := exec.LookPath(*b)
		if err != nil {
			return fmt.Errorf("%s: %w (make bench-edge installs nginx and wrk)", *b, err)
		}
		*b = path
	}

	// Rate limiter: off, if this build has one.
	var extra []string
	if help, _ := exec.Command(bin, "up", "--help").CombinedOutput(); len(help) > 0 {
		for _, f := range []string{"--rate-ip", "--rate-site"} {
			if strings.Contains(string(help), f+" ") {
				extra = append(extra, f, "0")
			}
		}
	}

	if o.netHTTPOnly {
		extra = append(extra, "--edge-net-http-only")
	}
	// The plans without a monthly bandwidth: a fast machine sends more
	// than the basic plan's 100 GB in one run, and the edge answers 509
	// past it.
	plansDir, err := os.MkdirTemp("", "aipress-bench-edge-plans-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(plansDir)
	plansFile, err := unmeteredPlans(plansDir)
	if err != nil {
		return err
	}
	extra = append(extra, "--plans", plansFile)
	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-edge-", Extra: extra})
	if err != nil {
		return err
	}
	var ngx *nginxProc
	defer func() {
		if ngx != nil {
			if serr := ngx.stop(); serr != nil {
				logf("nginx: %v", serr)
			}
		}
		p.Finish(o.keep, err != nil)
	}()

	cl, err := p.Ready(ctx)
	if err != nil {
		return err
	}

	created, err := cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: o.domain, Title: "Edge bench", AdminEmail: "admin@" + o.domain})
	if err != nil {
		return fmt.Errorf("create %s: %w", o.domain, err)
	}
	// The Host both sides get: the site URL's host, port included (what
	// WordPress's home URL holds; without it WordPress redirects).
	host := o.domain
	if created.Site != nil {
		if u, err := url.Parse(created.Site.Status.URL); err == nil && u.Host != "" {
			host = u.Host
		}
	}
	hc := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	edgeSide := side{"edge", p.Edge}
	if err := p.Poll(ctx, 2*time.Minute, 50*time.Millisecond, "waiting for the site to serve", func() (bool, error) {
		code, _, err := probe(ctx, hc, edgeSide.addr, host, "/", nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("HTTP %d", code)
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	st, err := cl.GetSite(ctx, o.domain)
	if err != nil {
		return err
	}
	socket, ok := strings.CutPrefix(st.Status.Endpoint, "unix:")
	if !ok || st.Status.Docroot == "" {
		return fmt.Errorf("site status: endpoint %q, docroot %q; want a unix: endpoint and a docroot", st.Status.Endpoint, st.Status.Docroot)
	}
	logf("site %s ready: docroot %s, pool %s, Host %s", o.domain, st.Status.Docroot, socket, host)

	// nginx.
	nport, err := benchplatform.FreePort()
	if err != nil {
		return err
	}
	ncfg := nginxConfig{Dir: filepath.Join(p.Dir, "nginx"), Listen: fmt.Sprintf("127.0.0.1:%d", nport),
		ServerName: o.domain, Root: st.Status.Docroot, Socket: socket, Include: "/etc/nginx"}
	confPath, err := writeNginx(ncfg)
	if err != nil {
		return err
	}
	if err := checkNginx(o.nginx, ncfg.Dir, confPath); err != nil {
		return err
	}
	if ngx, err = startNginx(o.nginx, ncfg.Dir, confPath); err != nil {
		return err
	}
	nginxSide := side{"nginx", ncfg.Listen}
	if err := p.Poll(ctx, 30*time.Second, 50*time.Millisecond, "waiting for nginx", func() (bool, error) {
		if err := ngx.died(); err != nil {
			return false, err
		}
		code, _, err := probe(ctx, hc, nginxSide.addr, host, "/", nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("HTTP %d", code)
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	logf("nginx up on %s (config %s)", nginxSide.addr, confPath)

	// WAF control.
	var notes []string
	wafFlag, wafNote := detectWAFControl(ctx, p)
	if wafNote != "" {
		notes = append(notes, wafNote)
	}
	code, _, err := probe(ctx, hc, edgeSide.addr, host, wafProbe, nil)
	if err != nil {
		return fmt.Errorf("WAF probe: %w", err)
	}
	wafActive := code == http.StatusForbidden
	logf("WAF probe on the edge: HTTP %d; switch: %q", code, wafFlag)
	if wafFlag == "" && wafActive {
		notes = append(notes, "the edge's WAF refuses the XSS probe and cannot be switched off here: every edge row is measured with the WAF on")
	}
	setWAF := func(mode string) error {
		if wafFlag == "" {
			return nil
		}
		if _, err := p.CLI(ctx, "site", "set", o.domain, wafFlag+"="+mode); err != nil {
			return err
		}
		want := func(code int) bool { return (code == http.StatusForbidden) == (mode == "block") }
		n := 0
		err := p.Poll(ctx, 15*time.Second, 100*time.Millisecond, "waiting for WAF mode "+mode, func() (bool, error) {
			// A new query each time: the WAF guards PHP, and a probe answered
			// from the page cache would never reach it.
			n++
			code, _, err := probe(ctx, hc, edgeSide.addr, host, fmt.Sprintf("%s&n=%d%d", wafProbe, time.Now().UnixNano(), n), nil)
			return err == nil && want(code), err
		})
		if err != nil {
			return fmt.Errorf("after `site set %s %s=%s` the edge did not %s the XSS probe within 15s: %w",
				o.domain, wafFlag, mode, map[bool]string{true: "refuse", false: "let through"}[mode == "block"], err)
		}
		return nil
	}

	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		notes = append(notes, "load average before the runs (other work on the machine skews both sides): "+strings.Join(strings.Fields(string(b))[:3], " "))
	}
	scenarios := []scenario{
		{name: "cache hit  GET /", path: "/", goal: 1.2, cacheHit: true},
		{name: "uncached   GET / (Cookie wordpress_no_cache=1)", path: "/", headers: []string{"Cookie: wordpress_no_cache=1"}, goal: 1.0, uncached: true},
		{name: "static     " + o.staticPath, path: o.staticPath, goal: 0.9},
		{name: "cache hit  GET /, Accept-Encoding: gzip", path: "/", headers: []string{gzipHeader}, goal: 1.2, cacheHit: true, gzip: true},
		{name: "static     " + o.staticPath + ", gzip", path: o.staticPath, headers: []string{gzipHeader}, goal: 0.9, gzip: true},
	}
	if wafFlag != "" {
		scenarios = append(scenarios, scenario{name: "cache hit  GET /, edge WAF block", path: "/", cacheHit: true, waf: true})
	} else {
		notes = append(notes, "WAF rows skipped: no way to switch the edge's WAF per site (`aipress site set` with --waf-mode)")
	}
	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return fmt.Errorf("-only: %w", err)
		}
		scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !re.MatchString(sc.name) })
	}
	stats := make([][2]sideStats, len(scenarios))
	sides := [2]side{edgeSide, nginxSide}
	warmed := make([]bool, len(scenarios))
	wafMode := ""
	rounds := o.rounds
	if o.profileOnly {
		rounds = 0
	}
	for round := 1; round <= rounds; round++ {
		for i, sc := range scenarios {
			mode := "off"
			if sc.waf {
				mode = "block"
			}
			if wafFlag != "" && mode != wafMode {
				if err := setWAF(mode); err != nil {
					return err
				}
				wafMode = mode
			}
			for j, sd := range sides {
				if !warmed[i] && o.warmup > 0 {
					if _, _, err := runWrk(ctx, o.wrk, wrkArgs(o.threads, o.connections, o.warmup, append([]string{"Host: " + host}, sc.headers...), "http://"+sd.addr+sc.path)); err != nil {
						return fmt.Errorf("warm-up: %w", err)
					}
				}
				// Two requests: the first may fill a cache; the second
				// shows whether it is hit.
				var xc, ce string
				for range 2 {
					code, x, enc, err := probeEncoding(ctx, hc, sd.addr, host, sc.path, sc.headers)
					if err != nil {
						return fmt.Errorf("%s %s: %w", sd.name, sc.path, err)
					}
					if code != http.StatusOK {
						return fmt.Errorf("%s %s %v: HTTP %d, want 200", sd.name, sc.path, sc.headers, code)
					}
					xc, ce = x, enc
				}
				stats[i][j].xcache, stats[i][j].encoding = xc, ce
				r, _, err := runWrk(ctx, o.wrk, wrkArgs(o.threads, o.connections, o.duration, append([]string{"Host: " + host}, sc.headers...), "http://"+sd.addr+sc.path))
				if err != nil {
					return err
				}
				stats[i][j].runs = append(stats[i][j].runs, r)
				logf("round %d/%d  %-50s %-5s %9.0f req/s  p50 %-9v p99 %-9v X-Cache %s Content-Encoding %s%s", round, o.rounds, sc.name, sd.name,
					r.ReqPerSec, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), xc, ce, errText(r))
			}
			warmed[i] = true
		}
	}
	if wafFlag != "" {
		if err := setWAF("block"); err != nil { // the site's default
			logf("%v", err)
		}
	}

	if o.profile != "" {
		var prof []scenario
		for _, sc := range scenarios {
			if !sc.waf {
				prof = append(prof, sc)
			}
		}
		paths, err := profileEdge(ctx, o, p.DataDir, st, host, prof, o.profile)
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		for _, path := range paths {
			logf("go tool pprof -top %s", path)
		}
	}

	if o.profileOnly {
		return nil
	}
	bad := printReport(os.Stdout, o, scenarios, stats, notes, wafActive && wafFlag == "")
	if bad != "" {
		return errors.New(bad)
	}
	return nil
}

func errText(r wrkResult) string {
	if r.Non2xx3xx == 0 && r.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("  (%d non-2xx/3xx, %d socket errors)", r.Non2xx3xx, r.Errors)
}

// probe sends one GET to addr with the Host host and returns the status and
// the X-Cache header ("-" if absent).
func probe(ctx context.Context, hc *http.Client, addr, host, path string, headers []string) (int, string, error) {
	code, xc, _, err := probeEncoding(ctx, hc, addr, host, path, headers)
	return code, xc, err
}

// probeEncoding is probe that also returns the Content-Encoding ("-" if
// absent). With no Accept-Encoding in headers the request says
// "Accept-Encoding: identity" (net/http would otherwise ask for gzip).
func probeEncoding(ctx context.Context, hc *http.Client, addr, host, path string, headers []string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Host = host
	req.Header.Set("Accept-Encoding", "identity") // as wrk: no compression unless a scenario asks
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		if k = strings.TrimSpace(k); strings.EqualFold(k, "Accept-Encoding") {
			req.Header.Del(k)
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	xc, ce := resp.Header.Get("X-Cache"), resp.Header.Get("Content-Encoding")
	if xc == "" {
		xc = "-"
	}
	if ce == "" {
		ce = "-"
	}
	return resp.StatusCode, xc, ce, err
}

var wafFlagRE = regexp.MustCompile(`--waf(-mode)?[ =]`)

// detectWAFControl looks for `aipress site set` with a WAF flag. It returns
// the flag, or "" and why not.
func detectWAFControl(ctx context.Context, p *benchplatform.Platform) (string, string) {
	help, _ := p.CLI(ctx, "site", "--help")
	if !regexp.MustCompile(`(?m)^\s+set\s`).MatchString(help) {
		return "", ""
	}
	help, err := p.CLI(ctx, "site", "set", "--help")
	if err != nil {
		return "", "`aipress site set --help` failed: " + err.Error()
	}
	m := wafFlagRE.FindString(help)
	if m == "" {
		return "", "`aipress site set` has no --waf-mode or --waf flag"
	}
	return strings.TrimRight(m, " ="), ""
}

// report

func fmtLat(p50, p99 time.Duration) string {
	return fmt.Sprintf("%s / %s", fmtMs(p50), fmtMs(p99))
}

func fmtMs(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// printReport prints the table and the notes. It returns a non-empty
// string if a figure is not what the row claims to measure.
func printReport(w io.Writer, o options, scenarios []scenario, stats [][2]sideStats, notes []string, wafAlwaysOn bool) string {
	fmt.Fprintf(w, "\nAIPress edge vs nginx (same site, same php-fpm pool): wrk -t%d -c%d -d%s --latency, %d round(s) edge/nginx alternating, %d CPUs\n\n",
		o.threads, o.connections, o.duration, o.rounds, runtime.NumCPU())
	t := table{{"scenario", "edge req/s", "nginx req/s", "edge/nginx", "goal", "", "edge p50 / p99", "nginx p50 / p99", "X-Cache edge/nginx"}}
	var problems []string
	var hitNoWAF, hitWAF float64
	edgeHasCache := false
	for i, sc := range scenarios {
		ers, e50, e99 := stats[i][0].mean()
		nrs, n50, n99 := stats[i][1].mean()
		ratio := 0.0
		if nrs > 0 {
			ratio = ers / nrs
		}
		goal, met := "", ""
		if sc.goal > 0 {
			goal = fmt.Sprintf("≥ %.1f", sc.goal)
			met = "ok"
			if ratio < sc.goal {
				met = "MISSED"
			}
		}
		ex, nx := stats[i][0].xcache, stats[i][1].xcache
		t = append(t, []string{sc.name, fmt.Sprintf("%.0f", ers), fmt.Sprintf("%.0f", nrs), fmt.Sprintf("%.2f", ratio), goal, met,
			fmtLat(e50, e99), fmtLat(n50, n99), ex + "/" + nx})
		if sc.cacheHit {
			switch {
			case sc.waf:
				hitWAF = ers
			case !sc.gzip: // the WAF row's clients do not ask for gzip
				hitNoWAF = ers
			}
			if !strings.EqualFold(nx, "HIT") {
				problems = append(problems, fmt.Sprintf("%s: nginx answered X-Cache %s, want HIT", strings.Join(strings.Fields(sc.name), " "), nx))
			}
			switch {
			case ex == "-":
			case strings.EqualFold(ex, "HIT"):
				edgeHasCache = true
			default:
				notes = append(notes, fmt.Sprintf("%s: the edge answered X-Cache %s, not HIT: its row does not measure a cache hit", strings.Join(strings.Fields(sc.name), " "), ex))
			}
		}
		if sc.gzip {
			for j, enc := range []string{stats[i][0].encoding, stats[i][1].encoding} {
				if !strings.EqualFold(enc, "gzip") && len(stats[i][j].runs) > 0 {
					notes = append(notes, fmt.Sprintf("%s: %s answered Content-Encoding %s, not gzip: it sent the identity bytes", strings.Join(strings.Fields(sc.name), " "), []string{"edge", "nginx"}[j], enc))
				}
			}
		}
		if sc.uncached {
			for j, x := range []string{ex, nx} {
				if strings.EqualFold(x, "HIT") {
					problems = append(problems, fmt.Sprintf("%s: %s answered X-Cache HIT on the uncached request", strings.Join(strings.Fields(sc.name), " "), []string{"edge", "nginx"}[j]))
				}
			}
		}
		for j, name := range []string{"edge", "nginx"} {
			var non, errs int64
			for _, r := range stats[i][j].runs {
				non += r.Non2xx3xx
				errs += r.Errors
			}
			if non > 0 || errs > 0 {
				notes = append(notes, fmt.Sprintf("%s, %s: %d non-2xx/3xx answers and %d socket errors during the runs", strings.Join(strings.Fields(sc.name), " "), name, non, errs))
			}
		}
	}
	t.Print(w)
	if hitWAF > 0 && hitNoWAF > 0 {
		cost := 1 - hitWAF/hitNoWAF
		met := "ok"
		if cost > 0.25 {
			met = "MISSED"
		}
		fmt.Fprintf(w, "\nWAF cost on the edge: 1 − hit with WAF / hit without = 1 − %.0f / %.0f = %.1f %%  (goal ≤ 25 %%) %s\n", hitWAF, hitNoWAF, 100*cost, met)
	} else {
		fmt.Fprintf(w, "\nWAF cost on the edge: not measured (goal ≤ 25 %%)\n")
	}
	if !edgeHasCache {
		notes = append(notes, "the edge sent no X-Cache HIT: it has no page cache (yet), so the cache rows compare nginx's fastcgi_cache with the edge's uncached path")
	}
	if wafAlwaysOn {
		notes = append(notes, "edge figures include the WAF (block) in every row")
	}
	notes = append(notes, "figures are means over the rounds; wrk, nginx, the edge, php-fpm and MariaDB share the CPUs: compare ratios")
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, "note: "+n)
	}
	for _, pr := range problems {
		fmt.Fprintln(w, "PROBLEM: "+pr)
	}
	if len(problems) > 0 {
		return fmt.Sprintf("%d row(s) do not measure what they claim (see PROBLEM lines)", len(problems))
	}
	return ""
}

// table is the shared aligned text table.
type table = benchplatform.Table

// unmeteredPlans writes the built-in plans, without their monthly
// bandwidth (bandwidth_gb 0: no limit), into dir and returns the file.
func unmeteredPlans(dir string) (string, error) {
	set := plans.Defaults()
	all := set.All()
	for i := range all {
		all[i].BandwidthGB = 0
	}
	b, err := json.Marshal(struct {
		Default string       `json:"default"`
		Plans   []plans.Plan `json:"plans"`
	}{set.Default().Name, all})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "plans.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	if _, err := plans.Load(path); err != nil {
		return "", fmt.Errorf("unmetered plans: %w", err)
	}
	return path, nil
}
