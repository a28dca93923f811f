// Command import benchmarks the import of a whole WordPress site from an
// archive through a real platform (issue 16's `make bench-import`).
//
// It generates a site of about -size-mb MiB (gen.go: a mariadb-dump style
// dump of -db-fraction of it, full of the old URL in post content, block
// attributes, serialised options and postmeta, JSON postmeta and comments;
// the rest uploads from 8 KiB thumbnails to 32 MiB media) as a tar.gz of
// database.sql and wp-content/, starts `aipress up` (benchplatform),
// imports the archive through the API (POST /v1/imports, as `aipress site
// import --archive` does) and follows the site until it is Ready. It
// reports:
//
//   - the total time and its phases: the upload (the POST: the API spools,
//     inspects and stores the archive) and the shard's steps from the
//     site's import-report.json (fetch, unpack, prepare, load, rename,
//     files, rewrite, finish), the rest being convergence around them;
//   - peak memory: the aipress process's VmHWM before and after the import
//     and the largest VmHWM per process name in its tree (the mariadb
//     client that loads the dump, MariaDB, php-fpm) and of the tree's
//     summed RSS, sampled every 100 ms — next to the archive's size: an
//     importer that held the archive or the dump in memory would show it;
//   - the URL rewrite's throughput inside the import (internal/searchreplace
//     over the imported database: MB/s of the text values it read, rows/s);
//   - unless -anchor=false, the same data set loaded twice more into
//     scratch databases of the same MariaDB, rewritten once by
//     searchreplace.RewriteDatabase and once by a PHP re-implementation of
//     `wp search-replace --precise` (anchor.go: PHP's own unserialize and
//     serialize per cell; Debian 12 has no wp-cli), with both throughputs.
//
// A check of what it measured fails the run (exit 1): the site must turn
// Ready, serve its home page with the new URL and without the old one,
// and the report's phases must be there. Goals are printed, never failed.
//
// -modes archive,live (the default: both, one after the other, each on a
// fresh platform so that its memory figures are its own) adds a live import over SSH of the same site:
// the generated wp-content unpacked into a docroot (with
// wp-includes/version.php and a wp-config.php) served by an SSH server in
// this process (internal/liveimport/sshtest, its exec handler answering
// the dump command with the generated dump: no source database), pulled
// by the real CLI, `aipress site import --ssh … --wait=false`, run as a
// subprocess, which streams it into POST /v1/imports. The live column's
// "upload" is the CLI's run (pull, stream and POST), and it adds the
// pulling side's memory: the CLI process's peak RSS (rusage maxrss; the
// SSH server in the harness is not counted) next to the same binary's
// doing nothing (aipress --help). The anchor comparison runs once, on the
// last mode's platform.
//
//	go run ./bench/import [-size-mb 1024] [-db-fraction 0.3] [-modes archive,live] [-anchor=true] [-keep] [-json]
//
// or `make bench-import`. Run it as root (the platform creates a Unix user
// per site).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/searchreplace"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// Options are the harness's flags.
type Options struct {
	Bin        string
	SizeMB     int
	DBFraction float64
	Seed       uint64
	Plan       string
	Anchor     bool
	Modes      string
	Keep       bool
	Timeout    time.Duration
	// HeapProfile, if set, is where the aipress heap profile taken at its
	// largest sampled RSS during the import is written (up --debug-addr).
	HeapProfile string
}

func main() {
	var o Options
	flag.StringVar(&o.Bin, "bin", "bin/aipress", "the aipress binary (make build)")
	flag.IntVar(&o.SizeMB, "size-mb", 1024, "MiB of site to generate: dump and uploads")
	flag.Float64Var(&o.DBFraction, "db-fraction", 0.3, "the dump's share of -size-mb")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed of the generated site")
	flag.StringVar(&o.Plan, "plan", "business", "the imported site's plan (its disk limit bounds the archive: 4×)")
	flag.BoolVar(&o.Anchor, "anchor", true, "also compare searchreplace with a PHP `wp search-replace --precise` on the same data")
	flag.StringVar(&o.Modes, "modes", "archive,live", "the imports to measure, comma-separated: archive (POST of the tar.gz), live (the CLI's SSH pull of the same site)")
	flag.StringVar(&o.HeapProfile, "heap-profile", "", "write aipress's heap profile at its largest RSS during the import to this file (go tool pprof)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory and the platform's data")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.DurationVar(&o.Timeout, "timeout", 3*time.Hour, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	rep, err := run(ctx, o)
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.Table().Print(os.Stdout)
			fmt.Println()
			for _, l := range rep.Notes() {
				fmt.Println(l)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-import:", err)
		os.Exit(1)
	}
}

// Phase is one measured step.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Rewrite is one URL rewrite's measurement.
type Rewrite struct {
	Tool         string  `json:"tool"`
	Seconds      float64 `json:"seconds"`
	RowsScanned  int64   `json:"rows_scanned"`
	BytesScanned int64   `json:"bytes_scanned"`
	RowsChanged  int64   `json:"rows_changed"`
	CellsChanged int64   `json:"cells_changed"`
	// Rows is the rows in the tables (the same for every tool of a run):
	// rows/s are over it, as a user sees a database's size.
	Rows int64 `json:"rows"`
}

// Run is one import's measurement (one mode).
type Run struct {
	Mode      string   `json:"mode"` // archive or live
	Domain    string   `json:"domain"`
	Total     float64  `json:"total_seconds"`
	Phases    []Phase  `json:"phases"`
	HWMBefore int64    `json:"aipress_hwm_before_bytes"`
	HWMAfter  int64    `json:"aipress_hwm_after_bytes"`
	Tree      TreeMem  `json:"tree"`
	Import    *Rewrite `json:"import_rewrite,omitempty"`
	// PullerHWM is the pulling CLI's peak RSS (live only), PullerBase
	// the same binary's peak RSS doing nothing (aipress --help): its
	// startup, the binary's pages it touches.
	PullerHWM    int64  `json:"puller_hwm_bytes,omitempty"`
	PullerBase   int64  `json:"puller_baseline_bytes,omitempty"`
	ImportReport string `json:"import_report_path,omitempty"`
}

// Report is the benchmark's outcome.
type Report struct {
	Site       Generated     `json:"site"`
	Runs       []*Run        `json:"runs"`
	Go         *Rewrite      `json:"searchreplace,omitempty"`
	PHP        *Rewrite      `json:"php_anchor,omitempty"`
	AnchorNote string        `json:"anchor_note,omitempty"`
	LoadBefore string        `json:"load_before,omitempty"`
	LoadAfter  string        `json:"load_after,omitempty"`
	Generate   time.Duration `json:"generate_ns"`
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func rate(bytes int64, s float64) string {
	if s <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB/s", float64(bytes)/1e6/s)
}

func rowRate(rows int64, s float64) string {
	if s <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f rows/s", float64(rows)/s)
}

// Table lays the report out: one column per run.
func (r *Report) Table() benchplatform.Table {
	head := []string{"import of a generated site"}
	for _, run := range r.Runs {
		head = append(head, run.Mode)
	}
	t := benchplatform.Table{head}
	// shared: one value for every run, in the first column.
	shared := func(label, v string) {
		row := []string{label, v}
		for range max(0, len(r.Runs)-1) {
			row = append(row, "")
		}
		t = append(t, row)
	}
	each := func(label string, f func(*Run) string) {
		row := []string{label}
		for _, run := range r.Runs {
			row = append(row, f(run))
		}
		t = append(t, row)
	}
	shared("archive (tar.gz)", mib(r.Site.ArchiveBytes))
	shared("  dump", fmt.Sprintf("%s, %d posts, %d rows", mib(r.Site.DumpBytes), r.Site.Posts, r.Site.Rows))
	shared("  uploads", fmt.Sprintf("%s, %d files", mib(r.Site.UploadBytes), r.Site.Uploads))
	each("import, total (start to Ready)", func(x *Run) string { return fmt.Sprintf("%.2f s", x.Total) })
	// Phases: the union, in the order the runs have them.
	var names []string
	for _, run := range r.Runs {
		for _, p := range run.Phases {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	for _, n := range names {
		each("  "+n, func(x *Run) string {
			for _, p := range x.Phases {
				if p.Name == n {
					return fmt.Sprintf("%.2f s", p.Seconds)
				}
			}
			return "-"
		})
	}
	each("aipress VmHWM before → after", func(x *Run) string { return mib(x.HWMBefore) + " → " + mib(x.HWMAfter) })
	each("aipress peak RSS (sampled), when (phase, approx.)", func(x *Run) string {
		return fmt.Sprintf("%s at %.1f s (%s)", mib(x.Tree.RootPeakRSS), x.Tree.RootPeakAt.Seconds(), x.phaseAt(x.Tree.RootPeakAt.Seconds()))
	})
	each("tree: peak summed RSS (sampled)", func(x *Run) string { return mib(x.Tree.PeakRSS) })
	var procs []string
	for _, run := range r.Runs {
		ks := make([]string, 0, len(run.Tree.HWMByName))
		for k := range run.Tree.HWMByName {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool {
			if a, b := run.Tree.HWMByName[ks[i]], run.Tree.HWMByName[ks[j]]; a != b {
				return a > b
			}
			return ks[i] < ks[j]
		})
		for i, k := range ks {
			if i == 4 {
				break
			}
			if !slices.Contains(procs, k) {
				procs = append(procs, k)
			}
		}
	}
	for _, k := range procs {
		each("  VmHWM "+k, func(x *Run) string {
			if v, ok := x.Tree.HWMByName[k]; ok {
				return mib(v)
			}
			return "-"
		})
	}
	each("pulling side: peak RSS", func(x *Run) string {
		if x.Mode != "live" {
			return "- (the harness streams the file)"
		}
		return fmt.Sprintf("%s (the CLI process; %s doing nothing)", mib(x.PullerHWM), mib(x.PullerBase))
	})
	each("rewrite: in the import (searchreplace)", func(x *Run) string {
		if x.Import == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f s, %s, %s, %d cells", x.Import.Seconds, rate(x.Import.BytesScanned, x.Import.Seconds), rowRate(x.Import.Rows, x.Import.Seconds), x.Import.CellsChanged)
	})
	rw := func(x *Rewrite) {
		if x != nil {
			shared("rewrite: "+x.Tool, fmt.Sprintf("%.2f s, %s, %s, %d cells", x.Seconds, rate(x.BytesScanned, x.Seconds), rowRate(x.Rows, x.Seconds), x.CellsChanged))
		}
	}
	rw(r.Go)
	rw(r.PHP)
	return t
}

// phaseAt names the phase running at t seconds after the run began.
func (r *Run) phaseAt(t float64) string {
	var end float64
	for _, p := range r.Phases {
		if end += p.Seconds; t <= end {
			return p.Name
		}
	}
	return "after the import"
}

// minJudged is the smallest archive the memory goal is judged on.
const minJudged = 64 << 20

// Notes explains the table and states the goals.
func (r *Report) Notes() []string {
	out := []string{
		"MB/s: text values read by the rewrite (rows holding the old URL) per second; rows/s: all rows of the site's tables per second.",
		"peak memory: an importer that held the archive or the dump in memory would show at least its size in aipress's VmHWM.",
	}
	out = append(out, "upload: archive, the POST (the API spools, inspects and stores the archive); live, the CLI's run: SFTP pull and dump streamed into the same POST.")
	for _, run := range r.Runs {
		if run.HWMAfter <= 0 || r.Site.ArchiveBytes <= 0 {
			continue
		}
		verdict := "met"
		switch {
		case r.Site.ArchiveBytes < minJudged:
			verdict = fmt.Sprintf("not judged (archive under %s: startup noise)", mib(minJudged))
		case run.HWMAfter-run.HWMBefore >= r.Site.ArchiveBytes/4:
			verdict = "MISSED"
		}
		out = append(out, fmt.Sprintf("goal (%s): aipress's VmHWM grows by less than a quarter of the archive's size (streaming): +%s for %s: %s",
			run.Mode, mib(max(0, run.HWMAfter-run.HWMBefore)), mib(r.Site.ArchiveBytes), verdict))
		if run.Mode == "live" && run.PullerHWM > 0 {
			verdict := "met"
			switch {
			case r.Site.ArchiveBytes < minJudged:
				verdict = fmt.Sprintf("not judged (archive under %s: startup noise)", mib(minJudged))
			case run.PullerHWM-run.PullerBase >= r.Site.ArchiveBytes/4:
				verdict = "MISSED"
			}
			out = append(out, fmt.Sprintf("goal (live): the pulling CLI's peak RSS grows by less than a quarter of the archive's size over its baseline (aipress --help: %s) (streaming): +%s for %s: %s",
				mib(run.PullerBase), mib(max(0, run.PullerHWM-run.PullerBase)), mib(r.Site.ArchiveBytes), verdict))
		}
	}
	if r.Go != nil && r.PHP != nil && r.PHP.Seconds > 0 {
		verdict := "met"
		if r.Go.Seconds > r.PHP.Seconds {
			verdict = "MISSED"
		}
		out = append(out, fmt.Sprintf("goal: searchreplace at least as fast as the PHP anchor on the same rows: %.2f s vs %.2f s (%.2f×): %s",
			r.Go.Seconds, r.PHP.Seconds, r.PHP.Seconds/max(r.Go.Seconds, 1e-9), verdict))
	}
	if r.AnchorNote != "" {
		out = append(out, r.AnchorNote)
	}
	if r.LoadBefore != "" {
		out = append(out, fmt.Sprintf("load average (1/5/15 min): %s at the start, %s at the end", r.LoadBefore, r.LoadAfter))
	}
	return out
}

const domain = "imported.localhost"

func run(ctx context.Context, o Options) (*Report, error) {
	bin, err := benchplatform.Binary(o.Bin)
	if err != nil {
		return nil, err
	}
	if o.SizeMB < 1 || o.DBFraction <= 0 || o.DBFraction >= 1 {
		return nil, errors.New("-size-mb must be ≥ 1 and -db-fraction between 0 and 1")
	}
	modes := strings.Split(o.Modes, ",")
	for _, m := range modes {
		if m != "archive" && m != "live" {
			return nil, fmt.Errorf("-modes: %q is neither archive nor live", m)
		}
	}
	work, err := os.MkdirTemp("", "aipress-bench-import-")
	if err != nil {
		return nil, err
	}
	failed := true
	defer func() {
		if o.Keep || failed {
			benchplatform.Logf("kept %s", work)
			return
		}
		os.RemoveAll(work)
	}()
	total := int64(o.SizeMB) << 20
	plan := Plan{DumpBytes: int64(float64(total) * o.DBFraction), Seed: o.Seed}
	plan.UploadBytes = total - plan.DumpBytes
	archive, dump := filepath.Join(work, "site.tar.gz"), filepath.Join(work, "database.sql")
	benchplatform.Logf("generating %s: dump %s, uploads %s", archive, mib(plan.DumpBytes), mib(plan.UploadBytes))
	t0 := time.Now()
	gen, err := Generate(plan, archive, dump)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	rep := &Report{Site: *gen, Generate: time.Since(t0)}
	benchplatform.Logf("generated in %s: archive %s, dump %s (%d posts, %d rows), %d uploads", rep.Generate.Round(time.Millisecond),
		mib(gen.ArchiveBytes), mib(gen.DumpBytes), gen.Posts, gen.Rows, gen.Uploads)

	var docroot string
	if slices.Contains(modes, "live") {
		if docroot, err = liveTree(archive, filepath.Join(work, "live")); err != nil {
			return rep, fmt.Errorf("the live mode's docroot: %w", err)
		}
	}
	// Each mode on a fresh platform: its memory figures are its own.
	var p *benchplatform.Platform
	defer func() {
		if p != nil {
			p.Finish(o.Keep, failed)
		}
	}()
	for _, m := range modes {
		if p != nil {
			p.Finish(o.Keep, false)
			p = nil
		}
		run := &Run{Mode: m, Domain: domain}
		if m == "live" {
			run.Domain = liveDomain
			if run.PullerBase, err = cliBaseline(ctx, bin); err != nil {
				return rep, err
			}
		}
		rep.Runs = append(rep.Runs, run)
		var extra []string
		var debugAddr string
		if o.HeapProfile != "" {
			port, err := benchplatform.FreePort()
			if err != nil {
				return rep, err
			}
			debugAddr = fmt.Sprintf("127.0.0.1:%d", port)
			extra = append(extra, "--debug-addr", debugAddr)
		}
		if p, err = benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-import-up-", Extra: extra}); err != nil {
			return rep, err
		}
		cl, err := p.Ready(ctx)
		if err != nil {
			return rep, err
		}
		cl.HTTPClient = &http.Client{} // the upload takes as long as it takes
		if rep.LoadBefore == "" {
			rep.LoadBefore = loadAvg()
		}
		var heap *heapProfiler
		if debugAddr != "" {
			heap = startHeapProfiler(ctx, p.PID(), "http://"+debugAddr+"/debug/pprof/heap", cl.Token)
		}
		switch m {
		case "archive":
			err = importSite(ctx, p, cl, run, rep.Site.Rows, func() error {
				f, err := os.Open(archive)
				if err != nil {
					return err
				}
				defer f.Close()
				var resp struct {
					Site *site.Site `json:"site"`
				}
				if err := cl.ImportSite(ctx, apiclient.ImportRequest{Domain: domain, Plan: o.Plan}, f, rep.Site.ArchiveBytes, &resp); err != nil {
					return fmt.Errorf("POST /v1/imports: %w", err)
				}
				return nil
			})
		case "live":
			err = importSite(ctx, p, cl, run, rep.Site.Rows, func() error {
				hwm, _, err := liveImport(ctx, bin, p.DataDir, work, docroot, dump, o.Plan)
				run.PullerHWM = hwm
				return err
			})
		}
		if heap != nil {
			path := o.HeapProfile
			if len(modes) > 1 {
				path = strings.TrimSuffix(path, filepath.Ext(path)) + "-" + m + filepath.Ext(path)
			}
			if herr := heap.Stop(path); herr != nil {
				benchplatform.Logf("heap profile: %v", herr)
			} else {
				benchplatform.Logf("heap profile at aipress's largest RSS (%s) written to %s (go tool pprof -sample_index=inuse_space %s %s)", m, path, bin, path)
			}
		}
		if err != nil {
			return rep, err
		}
	}
	if o.Anchor {
		if err := compare(ctx, p, work, dump, rep); err != nil {
			return rep, fmt.Errorf("rewrite comparison: %w", err)
		}
	} else {
		rep.AnchorNote = "anchor: not run (-anchor=false)"
	}
	rep.LoadAfter = loadAvg()
	failed = false
	return rep, nil
}

// importSite runs send (the archive's POST, or the live CLI, which returns
// once its POST is answered), follows the site to Ready and fills run's
// time, phases, memory and the import's rewrite.
func importSite(ctx context.Context, p *benchplatform.Platform, cl *apiclient.Client, run *Run, rows int64, send func() error) error {
	pid := p.PID()
	run.HWMBefore = procStatusKB(pid, "VmHWM")
	sampler := startMemSampler(ctx, pid, 100*time.Millisecond)
	benchplatform.Logf("importing (%s) as %s", run.Mode, run.Domain)
	t0 := time.Now()
	if err := send(); err != nil {
		sampler.Stop()
		return err
	}
	upload := time.Since(t0).Seconds()
	domain := run.Domain
	benchplatform.Logf("%s import accepted after %.2f s; waiting for the site", run.Mode, upload)
	var last *site.Site
	err := p.Poll(ctx, 2*time.Hour, 200*time.Millisecond, "waiting for "+domain+" to be Ready", func() (bool, error) {
		s, err := cl.GetSite(ctx, domain)
		if err != nil {
			return false, err
		}
		last = s
		switch s.Status.Phase {
		case site.PhaseReady:
			return true, nil
		case site.PhaseFailed:
			return false, fmt.Errorf("site Failed: %+v", s.Status.Conditions)
		}
		return false, fmt.Errorf("phase %s", s.Status.Phase)
	})
	run.Total = time.Since(t0).Seconds()
	run.Tree = sampler.Stop()
	run.HWMAfter = procStatusKB(pid, "VmHWM")
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w; conditions %+v", err, last.Status.Conditions)
		}
		return err
	}
	benchplatform.Logf("Ready after %.2f s", run.Total)
	ir, path, err := readImportReport(p.DataDir, domain)
	if err != nil {
		return err
	}
	run.ImportReport = path
	run.Phases = append(run.Phases, Phase{"upload", upload})
	var shardSum float64
	for _, ph := range ir.Phases {
		run.Phases = append(run.Phases, Phase{ph.Name, ph.Seconds})
		shardSum += ph.Seconds
	}
	run.Phases = append(run.Phases, Phase{"convergence around the import", max(0, run.Total-upload-shardSum)})
	if len(ir.Phases) == 0 {
		return fmt.Errorf("%s has no phases", path)
	}
	for _, ph := range ir.Phases {
		if ph.Name == "rewrite" {
			run.Import = &Rewrite{Tool: "in the import (searchreplace)", Seconds: ph.Seconds, RowsScanned: ir.RowsScanned, BytesScanned: ir.BytesScanned,
				RowsChanged: ir.RowsChanged, CellsChanged: ir.CellsChanged, Rows: rows}
		}
	}
	return checkServed(ctx, p, ir.NewURL)
}

// readImportReport finds and reads the import-report.json below the data
// directory of the site domain.
func readImportReport(dataDir, domain string) (*shard.ImportReport, string, error) {
	var found string
	var ir shard.ImportReport
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && (d.Name() == "docroot" || d.Name() == "cores" || d.Name() == "mariadb" || d.Name() == "transfers") {
			return filepath.SkipDir
		}
		if d.Name() == "import-report.json" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var x shard.ImportReport
			if err := json.Unmarshal(b, &x); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if x.Domain == domain {
				found, ir = p, x
				return filepath.SkipAll
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if found == "" {
		return nil, "", fmt.Errorf("no import-report.json of %s below %s", domain, dataDir)
	}
	return &ir, found, nil
}

// checkServed checks that the edge serves the imported site's home page
// with its new URL and without the old one.
func checkServed(ctx context.Context, p *benchplatform.Platform, newURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Edge+"/", nil)
	if err != nil {
		return err
	}
	req.Host = strings.TrimPrefix(strings.TrimPrefix(newURL, "http://"), "https://")
	resp, err := (&http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return fmt.Errorf("check the imported site: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("check the imported site: GET / answered %d: %.300s", resp.StatusCode, body)
	case strings.Contains(string(body), "old-host.example"):
		return errors.New("check the imported site: its home page still names the old host")
	case !strings.Contains(string(body), newURL):
		return fmt.Errorf("check the imported site: its home page does not name %s", newURL)
	}
	benchplatform.Logf("the imported site serves its home page (%d bytes) with %s", len(body), newURL)
	return nil
}

// rootConn is MariaDB's root account over its socket, from the server's
// root-client.cnf.
type rootConn struct{ Socket, User, Password, Cnf string }

// findRoot reads the first root-client.cnf below the data directory's
// shards (the local shard's primary).
func findRoot(dataDir string) (rootConn, error) {
	var c rootConn
	err := filepath.WalkDir(filepath.Join(dataDir, "shards"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if d.IsDir() && (d.Name() == "sites" || d.Name() == "cores" || d.Name() == "data" || d.Name() == "binlog") {
			return filepath.SkipDir
		}
		if d.Name() == "root-client.cnf" {
			c.Cnf = p
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil || c.Cnf == "" {
		return c, fmt.Errorf("no root-client.cnf below %s: %v", dataDir, err)
	}
	b, err := os.ReadFile(c.Cnf)
	if err != nil {
		return c, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "user":
			c.User = strings.TrimSpace(v)
		case "password":
			c.Password = strings.TrimSpace(v)
		case "socket":
			c.Socket = strings.TrimSpace(v)
		}
	}
	if c.User == "" || c.Socket == "" {
		return c, fmt.Errorf("%s: no user or socket", c.Cnf)
	}
	return c, nil
}

func (c rootConn) open(db string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = c.User, c.Password, "unix", c.Socket, db
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// compare loads the dump into two scratch databases of the platform's
// MariaDB and rewrites one with searchreplace, the other with the PHP
// anchor, one after the other.
func compare(ctx context.Context, p *benchplatform.Platform, work, dump string, rep *Report) error {
	c, err := findRoot(p.DataDir)
	if err != nil {
		return err
	}
	admin, err := c.open("")
	if err != nil {
		return err
	}
	defer admin.Close()
	const goDB, phpDB = "bench_import_go", "bench_import_php"
	defer func() {
		for _, db := range []string{goDB, phpDB} {
			_, _ = admin.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS `"+db+"`")
		}
	}()
	for _, db := range []string{goDB, phpDB} {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+db+"` CHARACTER SET utf8mb4"); err != nil {
			return err
		}
		benchplatform.Logf("loading the dump into %s (anchor)", db)
		f, err := os.Open(dump)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "mariadb", "--defaults-file="+c.Cnf, "--binary-mode", "--default-character-set=utf8mb4", db)
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			return fmt.Errorf("load %s: %w: %s", db, err, out)
		}
	}
	newURL := "http://" + domain
	skip := []string{"wp_posts.guid"}
	db, err := c.open(goDB)
	if err != nil {
		return err
	}
	defer db.Close()
	benchplatform.Logf("searchreplace over %s", goDB)
	t0 := time.Now()
	gr, err := searchreplace.RewriteDatabase(ctx, db, "wp_", OldURL, newURL, searchreplace.Options{})
	if err != nil {
		return err
	}
	rep.Go = &Rewrite{Tool: "searchreplace (Go)", Seconds: time.Since(t0).Seconds(), RowsScanned: gr.RowsScanned, BytesScanned: gr.BytesScanned,
		RowsChanged: gr.RowsChanged, CellsChanged: gr.CellsChanged, Rows: rep.Site.Rows}
	benchplatform.Logf("PHP anchor (wp search-replace --precise's algorithm) over %s", phpDB)
	ar, err := runAnchor(ctx, work, c, phpDB, "wp_", OldURL, newURL, skip)
	if err != nil {
		return err
	}
	rep.PHP = &Rewrite{Tool: "PHP anchor (wp search-replace --precise, re-implemented)", Seconds: ar.Seconds, RowsScanned: ar.RowsScanned,
		BytesScanned: ar.BytesScanned, RowsChanged: ar.RowsChanged, CellsChanged: ar.CellsChanged, Rows: rep.Site.Rows}
	rep.AnchorNote = "anchor: a PHP script doing what `wp search-replace --precise` does (PHP's unserialize/serialize per cell, str_replace, " +
		"row by row per column; no wp-cli in Debian 12, no WordPress bootstrap) on the same dump in the same MariaDB; it replaces the literal URL " +
		"only, searchreplace also its JSON-escaped, percent-encoded and scheme-relative forms, hence more cells."
	if rep.PHP.CellsChanged == 0 || rep.Go.CellsChanged < rep.PHP.CellsChanged {
		return fmt.Errorf("searchreplace changed %d cells, the anchor %d: want ours ≥ the anchor's > 0", rep.Go.CellsChanged, rep.PHP.CellsChanged)
	}
	return nil
}

// loadAvg returns the 1, 5 and 15 minute load averages ("" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
