// Command db benchmarks the shard's database tier (docs/database.md,
// "Benchmark") on a real, freshly started AIPress platform (`aipress up`
// with its own MariaDB and php-fpm in a temporary data directory, on
// 127.0.0.1 only): N sites on the one local shard, the same wrk load in
// three configurations of one run, one after another on the same data
// directory (the platform is restarted with other flags between them):
//
//   - direct: `--db-pooler=false`, every PHP request connects to MariaDB
//     itself — the anchor;
//   - pooler: the shard's MySQL pooler between PHP and MariaDB (the default);
//   - pooler+replica: the pooler with a local read replica
//     (`--db-replica=local`).
//
// The load (wrk -t T -c C --timeout 30s --latency -s load.lua, a generated
// script) goes to every site's uncached pages through the edge: round robin
// over the sites by Host header, each request with a cookie that passes the
// edge's page cache; one request in 20 (-every) posts a comment to
// wp-comments-post.php with a unique author, e-mail and text, the others
// read the home page, a post, a search and a category archive. All the load
// comes from 127.0.0.1, so WordPress's comment flood check (one comment per
// 15 s per IP address or e-mail) would refuse nearly every comment: a
// must-use plugin the benchmark writes into its own sites
// (aipress-bench-db.php) still runs the check's query but ignores its
// verdict.
//
// Per configuration: a warm-up run (OPcache, MariaDB's buffer pool, the
// pooler's connections), then the measured run of the same length and
// shape, during which the benchmark samples every 100 ms, as root over the
// server's socket, the sites' users' connections to the primary MariaDB
// (SHOW PROCESSLIST; root, monitor and replication accounts not counted)
// and its Threads_connected, and reads the primary's (and replica's)
// Com_select and Questions before and after. It prints one table — per
// configuration req/s, p50/p99 latency, backend connections peak and mean,
// Threads_connected peak, primary (and replica) SELECTs per request — and
// the goals against direct, the anchor of the same run: backend connections
// (peak) ≤ 40 %, req/s ≥ 0.95×, p99 ≤ 1.1×, and with the replica the
// primary's SELECTs per request down by ≥ 50 %, each met or missed with
// its figure.
//
// The exit code is 1 when a configuration could not be measured or had
// failed requests; a missed goal is reported, not an error. Run it as root
// after `make build`, with wrk installed (scripts/deps.sh):
//
//	go run ./bench/db -sites 50 [-configs direct,pooler,pooler+replica,pooler[--db-pooler-backends=8]] [-duration 60s] [-warmup 20s] [-threads 2] [-connections 16] [-pooler-flags "--db-pooler-backends=N …"] [-profile] [-keep] [-json]
//
// or `make bench-db`. Progress goes to stderr, the report to stdout.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

type options struct {
	sites, threads, connections, every int
	bin, wrk                           string
	duration, warmup, interval         time.Duration
	keep, jsonOut, profile             bool
	firstCron                          bool
	timeout                            time.Duration
	configs                            []config
}

// config is one configuration of the platform the load runs against.
type config struct {
	Name    string
	Flags   []string
	Pooler  bool     // wp-config's DB_HOST must be the pooler's socket
	Replica bool     // a replica must be running and is measured
	Extra   []string // flags after -pooler-flags (pooler[--flag=v …])
}

// allConfigs are the three configurations, the anchor first.
var allConfigs = []config{
	{Name: "direct", Flags: []string{"--db-pooler=false"}},
	{Name: "pooler", Flags: []string{"--db-pooler=true"}, Pooler: true},
	{Name: "pooler+replica", Flags: []string{"--db-pooler=true", "--db-replica=local"}, Pooler: true, Replica: true},
}

// pickConfigs returns the configurations a comma-separated list names. A
// pooler configuration may carry its own `aipress up` flags in brackets,
// space-separated, after -pooler-flags: "pooler[--db-pooler-backends=8]"
// (its name, brackets included, tells its runs apart from plain "pooler").
func pickConfigs(list string) ([]config, error) {
	var out []config
	for n := range strings.SplitSeq(list, ",") {
		n = strings.TrimSpace(n)
		base, extra := n, ""
		if i := strings.IndexByte(n, '['); i >= 0 && strings.HasSuffix(n, "]") {
			base, extra = n[:i], n[i+1:len(n)-1]
		}
		i := slices.IndexFunc(allConfigs, func(c config) bool { return c.Name == base })
		if i < 0 {
			return nil, fmt.Errorf("no configuration %q (direct, pooler, pooler+replica, pooler[flags…])", n)
		}
		c := allConfigs[i]
		if extra != "" {
			if !c.Pooler {
				return nil, fmt.Errorf("configuration %q: only pooler configurations take flags", n)
			}
			c.Name, c.Extra = n, strings.Fields(extra)
		}
		out = append(out, c)
	}
	return out, nil
}

func main() {
	var o options
	flag.IntVar(&o.sites, "sites", 50, "number of sites (all on the one local shard)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.connections, "connections", 16, "wrk connections (-c): concurrent requests")
	flag.IntVar(&o.every, "every", 20, "one request in this many is a comment")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measured wrk run per configuration")
	flag.DurationVar(&o.warmup, "warmup", 20*time.Second, "wrk warm-up run per configuration, before the measured one")
	flag.DurationVar(&o.interval, "interval", 100*time.Millisecond, "sampling interval of the connection counts")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary (scripts/deps.sh installs Debian's)")
	flag.BoolVar(&o.profile, "profile", false, "write a CPU profile of aipress (pooler included) during each pooler run into the kept directory (implies -keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory (logs, wrk script and output) and site Unix users")
	flag.BoolVar(&o.firstCron, "first-cron", true, "before the first measurement, wait until every site's WP-Cron has run once (else those PHP runs fall inside the first configuration's measurement alone)")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	poolerFlags := flag.String("pooler-flags", "", "more `aipress up` flags for the pooler configurations (e.g. \"--db-pooler-backends=6\"), space-separated")
	names := flag.String("configs", "direct,pooler,pooler+replica", "the configurations to run, in order (repeats allowed; pooler[--flag=v …] adds flags to one pooler configuration); the first is the anchor of the goals")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 15m + 20s per site + (warm-up+duration) per configuration, at least 3)")
	flag.Parse()
	cs, err := pickConfigs(*names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "db:", err)
		os.Exit(2)
	}
	for i := range cs {
		if cs[i].Pooler {
			cs[i].Flags = append(slices.Clone(cs[i].Flags), strings.Fields(*poolerFlags)...)
			cs[i].Flags = append(cs[i].Flags, cs[i].Extra...)
		}
	}
	o.configs = cs
	if o.sites < 1 || o.threads < 1 || o.connections < o.threads || o.every < 2 || o.duration < time.Second || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: db -sites N [-duration D] [-warmup D] [-threads T] [-connections C>=T] [-every K>=2] [-bin bin/aipress] [-wrk wrk] [-profile] [-keep] [-json]")
		os.Exit(2)
	}
	if o.profile {
		o.keep = true
	}
	if o.timeout <= 0 {
		o.timeout = 15*time.Minute + time.Duration(o.sites)*20*time.Second + time.Duration(max(3, len(cs)))*(o.warmup+o.duration)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "db:", err)
		os.Exit(1)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.print(os.Stdout)
	}
	if err := res.problem(); err != nil {
		fmt.Fprintln(os.Stderr, "db:", err)
		os.Exit(1)
	}
}

var logf = benchplatform.Logf

// commonFlags are the flags of every configuration: no rate limits (the
// load comes from one address), pprof when profiling.
func commonFlags(o options, debugAddr string) []string {
	f := []string{"--rate-ip", "0", "--rate-site", "0"}
	if debugAddr != "" {
		f = append(f, "--debug-addr", debugAddr)
	}
	return f
}

func run(ctx context.Context, o options) (res *Result, err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return nil, err
	}
	if help, err := exec.CommandContext(ctx, bin, "up", "--help").CombinedOutput(); err != nil || !strings.Contains(string(help), "--db-pooler") || !strings.Contains(string(help), "--db-replica") {
		return nil, fmt.Errorf("%s up has no --db-pooler/--db-replica flags (err %v)", bin, err)
	}
	wrkBin, err := exec.LookPath(o.wrk)
	if err != nil {
		return nil, fmt.Errorf("wrk: %w (scripts/deps.sh installs it)", err)
	}
	var debugAddr string
	if o.profile {
		port, err := benchplatform.FreePort()
		if err != nil {
			return nil, err
		}
		debugAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	tagBytes := make([]byte, 4)
	_, _ = rand.Read(tagBytes)
	res = &Result{Sites: o.sites, Threads: o.threads, Connections: o.connections, Every: o.every,
		DurationSecs: o.duration.Seconds(), WarmupSecs: o.warmup.Seconds(),
		Load: fmt.Sprintf("wrk -t%d -c%d -d%v --timeout 30s --latency", o.threads, o.connections, o.duration)}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvgBefore = strings.Join(strings.Fields(string(l))[:3], " ")
	}

	var p *benchplatform.Platform
	failed := true
	defer func() {
		if p != nil {
			p.Finish(o.keep, failed)
		}
	}()
	var sites []siteLoad
	for i, c := range o.configs {
		opts := benchplatform.Options{TempPrefix: "aipress-bench-db-", LogName: "aipress-" + safeName(c.Name) + ".log",
			Extra: append(commonFlags(o, debugAddr), c.Flags...)}
		if p != nil {
			if err := p.Stop(); err != nil {
				return nil, fmt.Errorf("stop before %s: %w", c.Name, err)
			}
			opts.Dir, opts.Edge, opts.API = p.Dir, p.Edge, p.API
		}
		if p, err = benchplatform.Start(bin, opts); err != nil {
			return nil, err
		}
		cl, err := p.Ready(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if i == 0 {
			if sites, err = createSites(ctx, p, cl, hc, o.sites, o.firstCron); err != nil {
				return nil, err
			}
		} else if err := waitServing(ctx, p, hc, sites); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		cr, err := measure(ctx, o, p, hc, wrkBin, c, i, sites, hex.EncodeToString(tagBytes)+strconv.Itoa(i), debugAddr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		res.Configs = append(res.Configs, *cr)
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvgAfter = strings.Join(strings.Fields(string(l))[:3], " ")
	}
	res.Dir = p.Dir
	res.evaluate()
	failed = res.problem() != nil
	return res, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// createSites creates n sites one after another, waits until each serves,
// installs the benchmark's must-use plugin and resolves their read paths.
func createSites(ctx context.Context, p *benchplatform.Platform, cl *apiclient.Client, hc *http.Client, n int, firstCron bool) ([]siteLoad, error) {
	var domains []string
	for i := 1; i <= n; i++ {
		d := fmt.Sprintf("dbb-%d.localhost", i)
		if _, err := cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: d, Title: "DB bench " + strconv.Itoa(i), AdminEmail: "admin@" + d}); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		domains = append(domains, d)
	}
	sites := make([]siteLoad, len(domains))
	for i, d := range domains {
		sites[i] = siteLoad{Host: d, Reads: []string{"/"}, PostID: 1}
	}
	if err := waitServing(ctx, p, hc, sites); err != nil {
		return nil, err
	}
	logf("%d sites serving", len(sites))
	if firstCron {
		if err := waitFirstCron(ctx, p, len(sites)); err != nil {
			return nil, err
		}
	}
	if k, err := installMUPlugin(p.DataDir); err != nil {
		return nil, err
	} else if k < len(sites) {
		return nil, fmt.Errorf("bench must-use plugin written into %d docroots, want %d", k, len(sites))
	}
	for i := range sites {
		reads, err := resolveReads(ctx, hc, p.Edge, sites[i].Host)
		if err != nil {
			return nil, err
		}
		sites[i].Reads = reads
	}
	logf("reads of %s: %v", sites[0].Host, sites[0].Reads)
	return sites, nil
}

// waitFirstCron waits until every site's WP-Cron has run once. The shard
// runs a new site's first about a minute after it serves, a PHP CLI of
// 0.1–0.3 s of CPU per site, and remembers it across restarts: those 50
// runs would fall inside the first configuration's measurement only.
func waitFirstCron(ctx context.Context, p *benchplatform.Platform, n int) error {
	primary, replicas, err := findServers(ctx, p.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		primary.Close()
		for _, r := range replicas {
			r.Close()
		}
	}()
	logf("waiting for the sites' first WP-Cron runs")
	return p.Poll(ctx, 5*time.Minute+time.Duration(n)*2*time.Second, time.Second, "every site's first WP-Cron run", func() (bool, error) {
		ran, err := primary.cronRan(ctx)
		if err != nil {
			return false, err
		}
		if ran < n {
			return false, fmt.Errorf("%d of %d sites' WP-Cron ran", ran, n)
		}
		return true, nil
	})
}

// waitServing waits until every site answers GET / with 200.
func waitServing(ctx context.Context, p *benchplatform.Platform, hc *http.Client, sites []siteLoad) error {
	return p.Poll(ctx, 10*time.Minute+time.Duration(len(sites))*10*time.Second, 200*time.Millisecond, "every site serving", func() (bool, error) {
		for _, s := range sites {
			if code, _, err := do(ctx, hc, p.Edge, s.Host, http.MethodGet, "/", ""); err != nil || code != http.StatusOK {
				return false, fmt.Errorf("%s: %d %v", s.Host, code, err)
			}
		}
		return true, nil
	})
}

// do sends one request for host to the edge past its page cache and
// returns the status and Location.
func do(ctx context.Context, hc *http.Client, edge, host, method, path, form string) (int, string, error) {
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+edge+path, body)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	req.Header.Set("Cookie", bypassCookie)
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), err
}

// resolveReads returns the site's read paths as it serves them with 200:
// home, the first post (?p=1), a search and an archive — the first
// category's (?cat=1) or, where that is not found, the year's (?m=YYYY) —
// following the site's canonical redirects (pretty permalinks).
func resolveReads(ctx context.Context, hc *http.Client, edge, host string) ([]string, error) {
	var out []string
	year := strconv.Itoa(time.Now().Year())
	for _, cands := range [][]string{{"/"}, {"/?p=1"}, {"/?s=hello"}, {"/?cat=1", "/?m=" + year}} {
		var errs []error
		for _, c := range cands {
			path, err := resolve(ctx, hc, edge, host, c)
			if err == nil {
				out = append(out, path)
				errs = nil
				break
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	return out, nil
}

// resolve follows up to three same-host redirects from path and returns
// the path that answers 200.
func resolve(ctx context.Context, hc *http.Client, edge, host, path string) (string, error) {
	for hop := 0; ; hop++ {
		code, loc, err := do(ctx, hc, edge, host, http.MethodGet, path, "")
		if err != nil {
			return "", fmt.Errorf("%s%s: %w", host, path, err)
		}
		if code == http.StatusOK {
			return path, nil
		}
		u, perr := url.Parse(loc)
		if code < 300 || code > 399 || perr != nil || hop >= 3 || (u.Host != "" && u.Hostname() != host) {
			return "", fmt.Errorf("%s%s: HTTP %d (Location %q)", host, path, code, loc)
		}
		path = u.RequestURI()
	}
}

// muPlugin is the benchmark's must-use plugin (see the package doc).
const muPlugin = `<?php
/*
 * Written by AIPress's database benchmark (bench/db) into its own sites only.
 *
 * All of the benchmark's load comes from 127.0.0.1, so WordPress's comment
 * flood check (a commenter's IP address or e-mail may comment once per 15 s)
 * would refuse nearly every comment. The check's query still runs, so a
 * comment costs the database what it costs on a real site; only its verdict
 * is ignored.
 */
remove_action( 'check_comment_flood', 'check_comment_flood_db', 10 );
add_filter(
	'wp_is_comment_flood',
	function ( $is_flood, $ip, $email, $date ) {
		wp_check_comment_flood( false, $ip, $email, $date, true );
		return false;
	},
	10,
	4
);
`

// muPluginName is the plugin's file name in wp-content/mu-plugins.
const muPluginName = "aipress-bench-db.php"

// installMUPlugin writes the plugin into every site docroot below dataDir's
// shards (every wp-content/mu-plugins directory) and returns how many.
func installMUPlugin(dataDir string) (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(dataDir, "shards"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		switch d.Name() {
		case "mariadb", "cores", "uploads", "wp-includes", "wp-admin", "plugins", "themes":
			return filepath.SkipDir
		case "mu-plugins":
			if filepath.Base(filepath.Dir(path)) == "wp-content" {
				if err := os.WriteFile(filepath.Join(path, muPluginName), []byte(muPlugin), 0o644); err != nil {
					return err
				}
				n++
			}
			return filepath.SkipDir
		}
		return nil
	})
	return n, err
}

var dbHostRe = regexp.MustCompile(`define\(\s*'DB_HOST'\s*,\s*'([^']*)'`)

// dbHosts returns the distinct DB_HOST values of the wp-config.php files
// of the docroots below dataDir's shards.
func dbHosts(dataDir string) ([]string, error) {
	seen := map[string]bool{}
	var hosts []string
	err := filepath.WalkDir(filepath.Join(dataDir, "shards"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "mariadb", "cores", "uploads", "wp-includes", "wp-admin", "wp-content":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "wp-config.php" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		m := dbHostRe.FindSubmatch(b)
		h := "?"
		if m != nil {
			h = string(m[1])
		}
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
		return nil
	})
	return hosts, err
}
