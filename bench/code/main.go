// Command code benchmarks WordPress as code on a real, freshly started
// AIPress platform (`aipress up` with its own MariaDB and php-fpm in a
// temporary data directory, on 127.0.0.1 only) whose shard fetches plugins
// from a catalogue this process serves in wordpress.org's formats
// (catalogtest.Start, `--catalogue-url`).
//
// The plugin is generated, deterministically, at the size of a popular
// plugin (PluginFiles: ~2 MB unpacked, 320 PHP files, scripts, styles),
// in versions 1.0, 2.0 and 3.0 (broken: every front-end page fatals).
// The benchmark creates N sites and waits until they are Ready, then:
//
//  1. installs and activates aipress-bench 1.0 on every site through the
//     API (PATCH /v1/sites/{name} with the plugins field, -install-parallel
//     sites at a time, as an operator's script would) and waits for every
//     code job: wall time and per-site job time (p50/p95). Then it checks
//     that every site's home page carries the plugin's marker and that the
//     plugin's main file is one inode across the sites (os.SameFile), and
//     measures what the shard's artefact store holds for the plugin (du:
//     bytes and inodes) against the anchor, per-site copies: the same
//     archive unzipped into N folders in this run (time and du), and what
//     OPcache would hold (the plugin's PHP: one copy against N);
//  2. updates every site to 2.0 with one fleet update (POST /v1/updates:
//     a staged update per site, canary first, then waves): total time,
//     per-wave times, per-site update time (p50/p95), sites updated, and
//     the 2.0 marker on every home page;
//  3. runs a second fleet update, to the broken 3.0, which must stop
//     after its canary (the staging copy fails its smoke test), and its
//     time; every site must still serve 2.0.
//
// It prints one table (figure, value, anchor) or, with -json, the figures
// as JSON. The exit code is 1 when a step of the harness fails (a job
// failed, a site misses the plugin, the broken update was not stopped …),
// never because of a figure. Run it as root after `make build`:
//
//	go run ./bench/code -sites 50 [-canary 1] [-wave 10] [-parallel 4] [-install-parallel 8] [-bin bin/aipress] [-keep] [-json]
//
// or `make bench-code CODE_SITES=50`. Progress goes to stderr, the report
// to stdout.
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

type options struct {
	sites, canary, wave, parallel, installParallel int
	bin                                            string
	keep, jsonOut                                  bool
	timeout                                        time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.sites, "sites", 50, "number of sites (on the platform's one shard)")
	flag.IntVar(&o.canary, "canary", 1, "fleet update: sites in the first wave")
	flag.IntVar(&o.wave, "wave", 10, "fleet update: sites per later wave")
	flag.IntVar(&o.parallel, "parallel", 4, "fleet update: updates at once within a wave")
	flag.IntVar(&o.installParallel, "install-parallel", 8, "install: sites changed and waited for at once")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and the site Unix users")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall time limit (0: 15m + 1m per site)")
	flag.Parse()
	if o.sites < 1 || o.canary < 1 || o.canary >= o.sites+1 || o.wave < 1 || o.parallel < 1 || o.installParallel < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: code -sites N [-canary C<=N] [-wave W] [-parallel P] [-install-parallel I] [-bin bin/aipress] [-keep] [-json]")
		os.Exit(2)
	}
	if o.timeout <= 0 {
		o.timeout = 15*time.Minute + time.Duration(o.sites)*time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "code:", err)
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
		fmt.Fprintln(os.Stderr, "code:", err)
		os.Exit(1)
	}
}

// Result holds every figure; times are in seconds, sizes in bytes.
type Result struct {
	Sites          int     `json:"sites"`
	SitesReadySecs float64 `json:"sites_ready_seconds"`

	// The plugin: its archive and one unpacked copy.
	Plugin   string `json:"plugin"`
	ZipBytes int64  `json:"zip_bytes"`
	Copy     Usage  `json:"one_copy"`

	// Install of 1.0 on every site.
	InstallParallel  int     `json:"install_parallel"`
	InstallWallSecs  float64 `json:"install_wall_seconds"`
	InstallJobP50    float64 `json:"install_job_p50_seconds"`
	InstallJobP95    float64 `json:"install_job_p95_seconds"`
	Installed        int     `json:"installed"`
	FirstInstallErr  string  `json:"first_install_error,omitempty"`
	PagesWithPlugin  int     `json:"pages_with_plugin_marker"`
	SameInode        int     `json:"main_file_same_inode"`
	Store            Usage   `json:"store"`  // the plugin's folder in the shard's artefact store
	Copies           Usage   `json:"copies"` // the anchor: N unzipped copies
	UnzipOneSecs     float64 `json:"unzip_one_copy_seconds"`
	UnzipAllSecs     float64 `json:"unzip_all_copies_seconds"`
	OPcacheShared    int64   `json:"opcache_php_bytes_shared"`
	OPcachePerSite   int64   `json:"opcache_php_bytes_per_site_copies"`
	StoreDigestShort string  `json:"store_digest,omitempty"`

	// Fleet update to 2.0.
	Canary         int       `json:"fleet_canary"`
	Wave           int       `json:"fleet_wave_size"`
	Parallel       int       `json:"fleet_parallel"`
	FleetSecs      float64   `json:"fleet_seconds"`
	FleetWaveSecs  []float64 `json:"fleet_wave_seconds"`
	FleetWaveSizes []int     `json:"fleet_wave_sizes"`
	FleetSiteP50   float64   `json:"fleet_site_update_p50_seconds"`
	FleetSiteP95   float64   `json:"fleet_site_update_p95_seconds"`
	FleetUpdated   int       `json:"fleet_updated"`
	FleetFailed    int       `json:"fleet_failed"`
	FleetSkipped   int       `json:"fleet_skipped"`
	FleetStopped   string    `json:"fleet_stopped,omitempty"`
	PagesWithV2    int       `json:"pages_with_2_0_marker"`

	// Fleet update to the broken 3.0.
	BrokenSecs    float64 `json:"broken_fleet_seconds"`
	BrokenStopped string  `json:"broken_fleet_stopped,omitempty"`
	BrokenUpdated int     `json:"broken_fleet_updated"`
	BrokenFailed  int     `json:"broken_fleet_failed"`
	BrokenSkipped int     `json:"broken_fleet_skipped"`
	PagesStillV2  int     `json:"pages_with_2_0_after_broken"`

	ran struct{ fleet, broken bool }
}

// problem says why the run is not a success (a harness step failed), or
// nil. Figures never make a run fail.
func (r *Result) problem() error {
	var errs []error
	n := r.Sites
	if r.Installed < n {
		errs = append(errs, fmt.Errorf("install: %d of %d code jobs succeeded; first error: %s", r.Installed, n, r.FirstInstallErr))
	}
	if r.PagesWithPlugin < n {
		errs = append(errs, fmt.Errorf("install: %d of %d home pages carry the plugin's marker", r.PagesWithPlugin, n))
	}
	if r.SameInode < n {
		errs = append(errs, fmt.Errorf("install: the plugin's main file is one inode on %d of %d sites", r.SameInode, n))
	}
	if !r.ran.fleet || r.FleetUpdated < n || r.FleetStopped != "" {
		errs = append(errs, fmt.Errorf("fleet update to %s: %d of %d sites updated (%d failed, %d skipped) %s", Version2, r.FleetUpdated, n, r.FleetFailed, r.FleetSkipped, r.FleetStopped))
	}
	if r.PagesWithV2 < n {
		errs = append(errs, fmt.Errorf("fleet update to %s: %d of %d home pages carry its marker", Version2, r.PagesWithV2, n))
	}
	if !r.ran.broken || r.BrokenStopped == "" || r.BrokenUpdated > 0 || r.BrokenFailed < 1 || r.BrokenFailed > r.Canary || r.BrokenSkipped != n-r.BrokenFailed-r.BrokenUpdated {
		errs = append(errs, fmt.Errorf("fleet update to the broken %s did not stop after the canary: %d updated, %d failed, %d skipped, stopped %q", VersionBroken, r.BrokenUpdated, r.BrokenFailed, r.BrokenSkipped, r.BrokenStopped))
	}
	if r.PagesStillV2 < n {
		errs = append(errs, fmt.Errorf("after the broken fleet update %d of %d home pages still carry %s's marker", r.PagesStillV2, n, Version2))
	}
	if r.Store.Inodes == 0 || r.Copies.Inodes != int64(n)*r.Store.Inodes || r.Copies.PHP != int64(n)*r.Store.PHP {
		errs = append(errs, fmt.Errorf("disk: the store %+v against %d copies %+v: want one copy's inodes and PHP each", r.Store, n, r.Copies))
	}
	if r.ran.fleet {
		sum := 0
		for _, k := range r.FleetWaveSizes {
			sum += k
		}
		if len(r.FleetWaveSizes) == 0 || r.FleetWaveSizes[0] != min(r.Canary, n) || sum != n {
			errs = append(errs, fmt.Errorf("fleet update to %s: waves of %v sites, want a canary of %d first and %d sites in all", Version2, r.FleetWaveSizes, min(r.Canary, n), n))
		}
	}
	return errors.Join(errs...)
}

func (r *Result) table() benchplatform.Table {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	mb := func(b int64) string { return f(float64(b)/(1<<20), 1) + " MB" }
	n := strconv.Itoa(r.Sites)
	of := func(k int) string { return fmt.Sprintf("%d/%d", k, r.Sites) }
	var waves []string
	for i, s := range r.FleetWaveSecs {
		waves = append(waves, fmt.Sprintf("%d×%s", r.FleetWaveSizes[i], f(s, 0)))
	}
	stopped := "no"
	if r.BrokenStopped != "" {
		stopped = "yes"
	}
	return benchplatform.Table{
		{"figure", "value", "anchor: per-site copies"},
		{"sites (one shard), created and Ready (s)", fmt.Sprintf("%d, %s", r.Sites, f(r.SitesReadySecs, 1)), ""},
		{"plugin " + r.Plugin + ": files, unpacked, zip", fmt.Sprintf("%d, %s, %s", r.Copy.Files, mb(r.Copy.Apparent), mb(r.ZipBytes)), ""},
		{fmt.Sprintf("install on %s sites (%d at a time): wall (s)", n, r.InstallParallel), f(r.InstallWallSecs, 1), ""},
		{"install: code job per site p50 / p95 (s)", f(r.InstallJobP50, 2) + " / " + f(r.InstallJobP95, 2), ""},
		{"install: sites running it (page marker)", of(r.PagesWithPlugin), ""},
		{"install: main file one inode across sites", of(r.SameInode), ""},
		{"disk for the plugin: shared store vs " + n + " copies", mb(r.Store.Blocks), mb(r.Copies.Blocks)},
		{"inodes for the plugin", strconv.FormatInt(r.Store.Inodes, 10), strconv.FormatInt(r.Copies.Inodes, 10)},
		{"unzip: 1 copy (store) vs " + n + " copies (s)", f(r.UnzipOneSecs, 2), f(r.UnzipAllSecs, 2)},
		{"OPcache: plugin PHP compiled, 1 copy vs " + n, mb(r.OPcacheShared), mb(r.OPcachePerSite)},
		{fmt.Sprintf("fleet update to %s (canary %d, waves of %d, parallel %d): total (s)", Version2, r.Canary, r.Wave, r.Parallel), f(r.FleetSecs, 1), ""},
		{"fleet: waves (sites×seconds)", strings.Join(waves, ", "), ""},
		{"fleet: staged update per site p50 / p95 (s)", f(r.FleetSiteP50, 1) + " / " + f(r.FleetSiteP95, 1), ""},
		{"fleet: updated / failed / skipped", fmt.Sprintf("%d / %d / %d", r.FleetUpdated, r.FleetFailed, r.FleetSkipped), ""},
		{"fleet: sites running " + Version2 + " (page marker)", of(r.PagesWithV2), ""},
		{"fleet update to broken " + VersionBroken + ": stopped after canary", fmt.Sprintf("%s (%d failed, %d skipped)", stopped, r.BrokenFailed, r.BrokenSkipped), ""},
		{"broken fleet update: total (s)", f(r.BrokenSecs, 1), ""},
		{"sites still running " + Version2 + " after it", of(r.PagesStillV2), ""},
	}
}

// percentile is the nearest-rank p-th percentile of ds (0 for none).
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

// jobTime is how long a finished job ran (0 when it has no times).
func jobTime(j *store.Job) time.Duration {
	if j.StartedAt == nil || j.FinishedAt == nil {
		return 0
	}
	return j.FinishedAt.Sub(*j.StartedAt)
}

var logf = benchplatform.Logf

const bypassCookie = "wordpress_no_cache=1"

// bench is one run's state.
type bench struct {
	o       options
	p       *benchplatform.Platform
	cl      *apiclient.Client
	hc      *http.Client
	domains []string
}

func run(ctx context.Context, o options) (res *Result, err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return nil, err
	}

	// The catalogue, in wordpress.org's formats, with the generated plugin.
	cat := catalogtest.Start()
	defer cat.Close()
	zip1 := catalogtest.Zip(Plugin, PluginFiles(Version1))
	cat.AddPluginZip(Plugin, Version1, zip1)
	cat.AddPlugin(Plugin, Version2, PluginFiles(Version2))
	cat.AddPlugin(Plugin, VersionBroken, PluginFiles(VersionBroken))

	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-code-",
		Extra: []string{"--catalogue-url", cat.URL(), "--allow-private-fetch"}})
	if err != nil {
		return nil, err
	}
	defer func() { p.Finish(o.keep, err != nil) }()
	cl, err := p.Ready(ctx)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, p: p, cl: cl,
		hc: &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	res = &Result{Sites: o.sites, Plugin: Plugin + " " + Version1, ZipBytes: int64(len(zip1)), InstallParallel: o.installParallel,
		Canary: o.canary, Wave: o.wave, Parallel: o.parallel}

	if res.SitesReadySecs, err = b.createSites(ctx); err != nil {
		return nil, err
	}
	if err := b.install(ctx, res); err != nil {
		return nil, err
	}
	if err := b.disk(ctx, res, zip1); err != nil {
		return nil, err
	}
	if res.Installed < o.sites || res.PagesWithPlugin < o.sites {
		logf("the install failed on some sites: no fleet updates")
		return res, nil
	}
	if err := b.fleet(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// createSites creates the sites one after another and waits until every
// one is Ready; it returns how long that took.
func (b *bench) createSites(ctx context.Context) (float64, error) {
	start := time.Now()
	for i := 1; i <= b.o.sites; i++ {
		d := fmt.Sprintf("code-%d.localhost", i)
		if _, err := b.cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: d, Title: "Code " + strconv.Itoa(i), AdminEmail: "admin@" + d}); err != nil {
			return 0, fmt.Errorf("create %s: %w", d, err)
		}
		b.domains = append(b.domains, d)
	}
	ready := map[string]bool{}
	err := b.p.Poll(ctx, 10*time.Minute+time.Duration(b.o.sites)*20*time.Second, 500*time.Millisecond, "every site Ready", func() (bool, error) {
		for _, d := range b.domains {
			if ready[d] {
				continue
			}
			st, err := b.cl.GetSite(ctx, d)
			if err != nil {
				return false, err
			}
			switch st.Status.Phase {
			case site.PhaseFailed:
				return false, fmt.Errorf("site %s failed: %+v", d, st.Status.Conditions)
			case site.PhaseReady:
				ready[d] = true
			default:
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	secs := time.Since(start).Seconds()
	logf("%d sites Ready after %.1fs", len(b.domains), secs)
	return secs, nil
}

// waitJob polls a job until it ends.
func (b *bench) waitJob(ctx context.Context, id string, limit, every time.Duration) (*store.Job, error) {
	var j *store.Job
	err := b.p.Poll(ctx, limit, every, "job "+id, func() (bool, error) {
		cur, err := b.cl.GetJob(ctx, id)
		if err != nil {
			return false, err
		}
		j = cur
		return cur.Phase == store.JobSucceeded || cur.Phase == store.JobFailed, nil
	})
	return j, err
}

// install puts the plugin's 1.0 on every site, installParallel sites at a
// time, waits for every code job and checks the sites.
func (b *bench) install(ctx context.Context, res *Result) error {
	var (
		mu       sync.Mutex
		times    []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	todo := make(chan string)
	start := time.Now()
	for range b.o.installParallel {
		wg.Go(func() {
			for d := range todo {
				dur, err := b.installOne(ctx, d)
				mu.Lock()
				if err != nil {
					if res.FirstInstallErr == "" {
						res.FirstInstallErr = d + ": " + err.Error()
					}
					if ctx.Err() != nil && firstErr == nil {
						firstErr = err
					}
				} else {
					times = append(times, dur)
					res.Installed++
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range b.domains {
		todo <- d
	}
	close(todo)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	res.InstallWallSecs = time.Since(start).Seconds()
	res.InstallJobP50, res.InstallJobP95 = percentile(times, 50).Seconds(), percentile(times, 95).Seconds()
	logf("installed %s on %d of %d sites in %.1fs", res.Plugin, res.Installed, len(b.domains), res.InstallWallSecs)

	var err error
	res.PagesWithPlugin, err = b.pagesWith(ctx, catalogtest.Marker(Plugin, Version1))
	return err
}

// installOne installs and activates the plugin on one site through PATCH
// and waits for its code job; it returns the job's own time.
func (b *bench) installOne(ctx context.Context, d string) (time.Duration, error) {
	plugins := []site.Extension{{Name: Plugin, Version: Version1, Active: true}}
	r, err := b.cl.PatchSite(ctx, d, apiclient.UpdateSiteRequest{Plugins: &plugins})
	if err != nil {
		return 0, err
	}
	if r.CodeJob == nil {
		return 0, errors.New("PATCH started no code job")
	}
	j, err := b.waitJob(ctx, r.CodeJob.ID, 30*time.Minute, 250*time.Millisecond)
	if err != nil {
		return 0, err
	}
	if j.Phase != store.JobSucceeded {
		return 0, fmt.Errorf("code job %s: %s", j.ID, j.Error)
	}
	return jobTime(j), nil
}

// pagesWith counts the sites whose home page (past the page cache)
// answers 200 with marker in it.
func (b *bench) pagesWith(ctx context.Context, marker string) (int, error) {
	n := 0
	for _, d := range b.domains {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.p.Edge+"/", nil)
		if err != nil {
			return 0, err
		}
		req.Host = d
		req.Header.Set("Cookie", bypassCookie)
		resp, err := b.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, err
			}
			logf("GET / of %s: %v", d, err)
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(body), marker) {
			n++
		} else {
			logf("GET / of %s: %d, marker %q present: %v (%v)", d, resp.StatusCode, marker, strings.Contains(string(body), marker), err)
		}
	}
	return n, nil
}

// disk checks that every site's plugin is the one copy in the shard's
// artefact store and measures it against N unzipped copies.
func (b *bench) disk(ctx context.Context, res *Result, zip []byte) error {
	var first os.FileInfo
	var storeDir string
	for _, d := range b.domains {
		st, err := b.cl.GetSite(ctx, d)
		if err != nil {
			return err
		}
		if st.Status.Docroot == "" {
			return fmt.Errorf("site %s has no docroot in its status", d)
		}
		main := filepath.Join(st.Status.Docroot, "wp-content", "plugins", Plugin, Plugin+".php")
		fi, err := os.Stat(main)
		if err != nil {
			logf("%s: %v", d, err)
			continue
		}
		if first == nil {
			first = fi
			real, err := filepath.EvalSymlinks(filepath.Dir(main))
			if err != nil {
				return err
			}
			// <shard>/sites/<id>/htdocs → <shard>/artefacts/plugin/<digest>/<slug>
			shard := filepath.Dir(filepath.Dir(filepath.Dir(st.Status.Docroot)))
			storeDir = filepath.Dir(real)
			if rel, err := filepath.Rel(filepath.Join(shard, "artefacts", "plugin"), storeDir); err != nil || strings.Contains(rel, string(filepath.Separator)) || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("%s's plugin %s is not in the shard's artefact store %s", d, real, filepath.Join(shard, "artefacts"))
			}
			res.StoreDigestShort = filepath.Base(storeDir)[:min(12, len(filepath.Base(storeDir)))]
		}
		if os.SameFile(first, fi) {
			res.SameInode++
		}
	}
	if storeDir == "" {
		return errors.New("no site has the plugin")
	}
	var err error
	// The plugin's folder in the store (<digest>/<slug>), like for like
	// with a copy; the store adds its digest folder and a .complete marker.
	if res.Store, err = DiskUsage(filepath.Join(storeDir, Plugin)); err != nil {
		return err
	}

	// The anchor: each site unzipping its own copy.
	dir := filepath.Join(b.p.Dir, "per-site-copies")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	zipPath := filepath.Join(dir, Plugin+".zip")
	if err := os.WriteFile(zipPath, zip, 0o644); err != nil {
		return err
	}
	one, all, err := unzipCopies(zipPath, dir, len(b.domains))
	if err != nil {
		return err
	}
	res.UnzipOneSecs, res.UnzipAllSecs = one.Seconds(), all.Seconds()
	for i := 1; i <= len(b.domains); i++ {
		u, err := DiskUsage(filepath.Join(dir, fmt.Sprintf("site-%d", i), Plugin))
		if err != nil {
			return err
		}
		if i == 1 {
			res.Copy = u
		}
		res.Copies = res.Copies.Add(u)
	}
	res.OPcacheShared, res.OPcachePerSite = res.Store.PHP, res.Copies.PHP
	logf("plugin: store %d bytes / %d inodes; %d copies %d bytes / %d inodes (unzipped in %.2fs)",
		res.Store.Blocks, res.Store.Inodes, len(b.domains), res.Copies.Blocks, res.Copies.Inodes, res.UnzipAllSecs)
	return os.RemoveAll(dir)
}

// fleet runs the fleet update to 2.0 and the one to the broken version.
func (b *bench) fleet(ctx context.Context, res *Result) error {
	j, took, err := b.fleetUpdate(ctx, Version2)
	if err != nil {
		return err
	}
	res.ran.fleet = true
	res.FleetSecs = took.Seconds()
	r, err := fleetResult(j)
	if err != nil {
		return err
	}
	res.FleetUpdated, res.FleetFailed, res.FleetSkipped, res.FleetStopped = r.Updated, r.Failed, r.Skipped, r.Stopped
	var perSite []time.Duration
	for _, w := range r.Waves {
		res.FleetWaveSizes = append(res.FleetWaveSizes, len(w.Sites))
		secs := 0.0
		if !w.Started.IsZero() && !w.Finished.IsZero() {
			secs = w.Finished.Sub(w.Started).Seconds()
		}
		res.FleetWaveSecs = append(res.FleetWaveSecs, secs)
		for _, s := range w.Sites {
			if s.Job == "" || s.State != store.FleetUpdated {
				continue
			}
			uj, err := b.cl.GetJob(ctx, s.Job)
			if err != nil {
				return err
			}
			perSite = append(perSite, jobTime(uj))
		}
	}
	res.FleetSiteP50, res.FleetSiteP95 = percentile(perSite, 50).Seconds(), percentile(perSite, 95).Seconds()
	logf("fleet update to %s: %d updated, %d failed, %d skipped in %.1fs %s", Version2, r.Updated, r.Failed, r.Skipped, res.FleetSecs, r.Stopped)
	if res.PagesWithV2, err = b.pagesWith(ctx, catalogtest.Marker(Plugin, Version2)); err != nil {
		return err
	}

	j, took, err = b.fleetUpdate(ctx, VersionBroken)
	if err != nil {
		return err
	}
	res.ran.broken = true
	res.BrokenSecs = took.Seconds()
	if r, err = fleetResult(j); err != nil {
		return err
	}
	res.BrokenUpdated, res.BrokenFailed, res.BrokenSkipped, res.BrokenStopped = r.Updated, r.Failed, r.Skipped, r.Stopped
	logf("fleet update to %s: %d updated, %d failed, %d skipped in %.1fs; stopped: %s", VersionBroken, r.Updated, r.Failed, r.Skipped, res.BrokenSecs, r.Stopped)
	res.PagesStillV2, err = b.pagesWith(ctx, catalogtest.Marker(Plugin, Version2))
	return err
}

// fleetUpdate starts a fleet update of every site to version and waits
// for its job to end.
func (b *bench) fleetUpdate(ctx context.Context, version string) (*store.Job, time.Duration, error) {
	start := time.Now()
	j, err := b.cl.CreateFleetUpdate(ctx, apiclient.FleetUpdateRequest{
		Change: store.UpdateParams{Plugins: []site.Extension{{Name: Plugin, Version: version}}, KeepActive: true},
		Sites:  b.domains, Canary: b.o.canary, WaveSize: b.o.wave, Parallel: b.o.parallel,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fleet update to %s: %w", version, err)
	}
	logf("fleet update to %s: job %s", version, j.ID)
	j, err = b.waitJob(ctx, j.ID, 15*time.Minute+time.Duration(b.o.sites)*2*time.Minute, time.Second)
	if err != nil {
		return nil, 0, fmt.Errorf("fleet update to %s: %w", version, err)
	}
	return j, time.Since(start), nil
}

func fleetResult(j *store.Job) (*store.FleetUpdateResult, error) {
	var r store.FleetUpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return nil, fmt.Errorf("fleet job %s (%s, %s) result: %w", j.ID, j.Phase, j.Error, err)
	}
	return &r, nil
}
