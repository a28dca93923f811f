// Command portal measures the web portal's sites list in Debian's Chromium:
// how fast N sites (5,000 by default) load and whether scrolling through
// them stays smooth, against the budgets in the same run — first
// load under 300 KB of compressed JavaScript, a virtualised list (far fewer
// rows in the page than sites), and no janky frames (over 50 ms) while
// scrolling.
//
// It runs `aipress server` (no shards: the sites are seeded straight into
// its SQLite store, as bench/scale does, since provisioning 5,000 real
// WordPress sites measures something else), signs the bootstrap admin in
// through the real password-reset flow, opens /sites in headless Chromium
// driven by chromedp, and reads the browser's own timings (Long Tasks API,
// requestAnimationFrame intervals).
//
//	make bench-portal                      # 5,000 sites
//	go run ./bench/portal -sites 200       # quicker
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/portal"
	"github.com/aipress/aipress/internal/site"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

type options struct {
	bin      string
	sites    int
	chromium string
	shot     string
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/aipress", "the aipress binary")
	flag.IntVar(&o.sites, "sites", 5000, "sites in the list")
	flag.StringVar(&o.chromium, "chromium", "/usr/bin/chromium", "Chromium")
	flag.StringVar(&o.shot, "screenshot", "", "save a screenshot of the loaded list here (PNG)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-portal:", err)
		os.Exit(1)
	}
	res.table().Print(os.Stdout)
	if err := res.problem(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-portal: goal missed:", err)
		os.Exit(1)
	}
}

// Result is what one run measured.
type Result struct {
	Sites          int
	FirstLoadKB    float64 // compressed JavaScript of the first load
	AllJSKB        float64 // all of the build's JavaScript, compressed
	FirstRowMs     float64 // navigation start → first site row in the page
	AllLoadedMs    float64 // navigation start → every page of the list fetched
	ListRequests   int     // GET /v1/sites requests the page made
	RowsInDOM      int     // site rows in the page after loading (virtualisation)
	ScrollFrames   int     // animation frames while scrolling top to bottom
	FrameP50Ms     float64
	FrameP99Ms     float64
	FrameMaxMs     float64
	JankyFrames    int     // frames over 50 ms while scrolling
	LongTasksLoad  int     // long tasks (>50 ms) from navigation until loaded
	LongTaskMaxMs  float64 // the longest of them
	LongTasksScrol int     // long tasks while scrolling
}

const (
	budgetKB    = 300
	jankFrameMs = 50
)

func (r Result) table() benchplatform.Table {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	i := strconv.Itoa
	return benchplatform.Table{
		{"portal: sites list in Chromium", "measured", "budget"},
		{"sites", i(r.Sites), ""},
		{"first-load JavaScript, gzip (KB)", f(r.FirstLoadKB), "< " + i(budgetKB)},
		{"all JavaScript, gzip (KB)", f(r.AllJSKB), ""},
		{"first row visible (ms)", f(r.FirstRowMs), ""},
		{"whole list loaded (ms)", f(r.AllLoadedMs), ""},
		{"GET /v1/sites requests", i(r.ListRequests), ""},
		{"site rows in the page", i(r.RowsInDOM), "< " + i(r.Sites)},
		{"long tasks while loading", i(r.LongTasksLoad), ""},
		{"longest task while loading (ms)", f(r.LongTaskMaxMs), ""},
		{"scroll: frames", i(r.ScrollFrames), ""},
		{"scroll: frame p50 (ms)", f(r.FrameP50Ms), ""},
		{"scroll: frame p99 (ms)", f(r.FrameP99Ms), ""},
		{"scroll: longest frame (ms)", f(r.FrameMaxMs), ""},
		{"scroll: frames over 50 ms", i(r.JankyFrames), "0"},
		{"scroll: long tasks", i(r.LongTasksScrol), ""},
	}
}

// problem says which budget the run missed, if any. Janky frames are
// reported, not failed on: a shared 2-core machine drops frames for
// reasons of its own; the table shows them.
func (r Result) problem() error {
	var errs []error
	if r.FirstLoadKB >= budgetKB {
		errs = append(errs, fmt.Errorf("first load is %.1f KB of compressed JavaScript (budget %d)", r.FirstLoadKB, budgetKB))
	}
	if r.Sites > 100 && r.RowsInDOM >= r.Sites {
		errs = append(errs, fmt.Errorf("%d rows in the page for %d sites: the list is not virtualised", r.RowsInDOM, r.Sites))
	}
	if r.RowsInDOM == 0 || r.ScrollFrames == 0 {
		errs = append(errs, errors.New("nothing measured: no rows or no frames"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, o options) (Result, error) {
	res := Result{Sites: o.sites}
	web, err := portal.New()
	if err != nil {
		return res, err
	}
	first, total := web.Sizes()
	res.FirstLoadKB, res.AllJSKB = float64(first)/1024, float64(total)/1024

	dir, err := os.MkdirTemp("", "aipress-bench-portal-")
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	dataDir := filepath.Join(dir, "data")
	if err := seed(ctx, dataDir, o.sites); err != nil {
		return res, err
	}
	port, err := benchplatform.FreePort()
	if err != nil {
		return res, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, o.bin, "server", "--data-dir", dataDir, "--api", fmt.Sprintf("127.0.0.1:%d", port),
		"--spawn-shards=false", "--heartbeat-timeout", "10m")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", o.bin, err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	if err := waitAPI(ctx, dataDir); err != nil {
		return res, err
	}
	pw, err := adminPassword(ctx, base, dataDir)
	if err != nil {
		return res, err
	}
	return measure(ctx, o, base, pw, res)
}

// seed writes n sites into the store, as POST /v1/sites would (unplaced).
func seed(ctx context.Context, dataDir string, n int) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	st, err := storeopen.Open(ctx, "", dataDir)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer st.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte("seeded-sites-are-never-installed"), bcrypt.MinCost)
	if err != nil {
		return err
	}
	devPlan, _ := plans.Defaults().Get("dev")
	now := time.Now().UTC()
	for i := range n {
		name := fmt.Sprintf("site%05d.portal.test", i)
		uid := make([]byte, 16)
		_, _ = rand.Read(uid)
		s := &site.Site{
			Metadata: site.Metadata{Name: name, UID: hex.EncodeToString(uid), Org: "default", CreatedAt: now},
			Spec: site.Spec{Domain: name, Title: "Portal " + name, Plan: "dev", PHP: devPlan.PHP, Limits: devPlan.Limits(),
				Admin: site.Admin{User: api.DefaultAdminUser, Email: "ops@portal.test", PasswordHash: string(hash)}, Cache: api.DefaultCache},
			Status: site.Status{Phase: site.PhasePending, URL: "http://" + name},
		}
		s.Spec.Defaults()
		if err := st.CreateSite(ctx, s); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	return nil
}

func waitAPI(ctx context.Context, dataDir string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if cfg, err := apiclient.ReadConfig(dataDir); err == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", cfg.URL+"/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+cfg.Token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return errors.New("aipress server did not answer in 2 minutes")
		}
		if err := benchplatform.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// adminPassword sets admin@localhost's password through the real reset
// flow (request, the mail the server wrote into <data>/mail, confirm).
func adminPassword(ctx context.Context, base, dataDir string) (string, error) {
	const pw = "bench portal password 1"
	post := func(path string, body any) (int, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := post("/v1/auth/password-reset", map[string]string{"email": "admin@localhost"}); err != nil || code != 202 {
		return "", fmt.Errorf("password reset: %d %v", code, err)
	}
	re := regexp.MustCompile(`reset-password#([A-Za-z0-9_\-%]+)`)
	var token string
	for deadline := time.Now().Add(30 * time.Second); token == ""; {
		files, _ := filepath.Glob(filepath.Join(dataDir, "mail", "*admin@localhost*.eml"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				if m := re.FindSubmatch(b); m != nil {
					token = string(m[1])
				}
			}
		}
		if token == "" && time.Now().After(deadline) {
			return "", errors.New("no password-reset mail in " + filepath.Join(dataDir, "mail"))
		}
		_ = benchplatform.Sleep(ctx, 100*time.Millisecond)
	}
	if code, err := post("/v1/auth/password-reset/confirm", map[string]string{"token": token, "new_password": pw}); err != nil || code/100 != 2 {
		return "", fmt.Errorf("password reset confirm: %d %v", code, err)
	}
	return pw, nil
}
