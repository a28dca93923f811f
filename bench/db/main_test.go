package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("differs from %s (-update rewrites it):\n%s", path, got)
	}
}

var testSites = []siteLoad{
	{Host: "a.localhost", Reads: []string{"/", "/hello-world/", "/?s=hello", "/category/uncategorized/"}, PostID: 1},
	{Host: "b.localhost", Reads: []string{"/", "/?p=1", "/?s=hello", "/?cat=1"}, PostID: 1},
	{Host: "c.localhost", Reads: []string{"/"}, PostID: 7},
}

func TestLuaScriptGolden(t *testing.T) {
	s, err := luaScript(testSites, 20, "run1")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "load.lua.golden", s)
	for name, c := range map[string]struct {
		sites []siteLoad
		every int
		tag   string
	}{
		"no sites":   {nil, 20, "x"},
		"every 0":    {testSites, 0, "x"},
		"bad host":   {[]siteLoad{{Host: `a"b`, Reads: []string{"/"}, PostID: 1}}, 20, "x"},
		"no reads":   {[]siteLoad{{Host: "a", PostID: 1}}, 20, "x"},
		"bad path":   {[]siteLoad{{Host: "a", Reads: []string{"x"}, PostID: 1}}, 20, "x"},
		"no post":    {[]siteLoad{{Host: "a", Reads: []string{"/"}}}, 20, "x"},
		"tag symbol": {testSites, 20, "a+b"},
	} {
		if _, err := luaScript(c.sites, c.every, c.tag); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestLuaScriptUnderWrk runs the script under real wrk against a fake
// WordPress: every site gets reads of each of its paths and comments, about
// one request in every is a comment, every comment is unique, and the
// summary counts the accepted comments (302 to #comment-N) and the failed
// answers.
func TestLuaScriptUnderWrk(t *testing.T) {
	wrkBin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk missing (scripts/deps.sh installs it)")
	}
	var mu sync.Mutex
	reads := map[string]int{}
	comments := map[string]int{}
	seen := map[string]bool{}
	dup := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != bypassCookie {
			http.Error(w, "no bypass cookie", http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			v, err := url.ParseQuery(string(b))
			mu.Lock()
			defer mu.Unlock()
			key := v.Get("author") + "|" + v.Get("email") + "|" + v.Get("comment")
			if err != nil || r.URL.Path != "/wp-comments-post.php" || v.Get("comment_post_ID") == "" || !strings.Contains(v.Get("email"), "@") {
				http.Error(w, "bad comment", http.StatusBadRequest)
				return
			}
			if seen[key] {
				dup++
				http.Error(w, "Duplicate comment detected", http.StatusConflict)
				return
			}
			seen[key] = true
			comments[r.Host+" "+v.Get("comment_post_ID")]++
			w.Header().Set("Location", "http://"+r.Host+"/?p=1#comment-5")
			w.WriteHeader(http.StatusFound)
			return
		}
		mu.Lock()
		reads[r.Host+" "+r.URL.RequestURI()]++
		mu.Unlock()
		if r.Host == "c.localhost" {
			http.Error(w, "boom", http.StatusInternalServerError) // counted as failed
			return
		}
		io.WriteString(w, "<html>ok</html>")
	}))
	defer srv.Close()
	script := filepath.Join(t.TempDir(), "load.lua")
	if err := writeScript(script, testSites, 5, "t1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, out, err := runWrk(ctx, wrkBin, wrkArgs(2, 4, 2*time.Second, script, srv.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if s.Requests < 50 {
		t.Fatalf("only %d requests:\n%s", s.Requests, out)
	}
	for _, st := range testSites {
		for _, r := range st.Reads {
			if reads[st.Host+" "+r] == 0 {
				t.Errorf("no read of %s%s", st.Host, r)
			}
		}
		if comments[st.Host+" "+fmt.Sprint(st.PostID)] == 0 {
			t.Errorf("no comment on %s post %d", st.Host, st.PostID)
		}
	}
	if dup > 0 {
		t.Errorf("%d duplicate comments", dup)
	}
	var total int
	for _, n := range comments {
		total += n
	}
	// (A comment in flight when wrk stops may reach the server unseen.)
	if int64(total) < s.CommentsOK || int64(total) > s.CommentsOK+4 || s.CommentsSent < s.CommentsOK || s.CommentsSent > s.CommentsOK+4 {
		t.Errorf("server accepted %d comments; summary says %d accepted of %d sent", total, s.CommentsOK, s.CommentsSent)
	}
	if share := float64(s.CommentsSent) / float64(s.Requests); share < 0.15 || share > 0.25 {
		t.Errorf("comments are %.2f of the requests, want about 1/5", share)
	}
	if s.Failed == 0 || s.Statuses["500"] != s.Failed || !strings.HasPrefix(s.FirstFailure, "500 ") {
		t.Errorf("failed %d, statuses %v, first %q: want c.localhost's 500s", s.Failed, s.Statuses, s.FirstFailure)
	}
}

func sampleResult() Result {
	return Result{Sites: 50, Load: "wrk -t2 -c16 -d1m0s --timeout 30s --latency", Threads: 2, Connections: 16, Every: 20,
		DurationSecs: 60, WarmupSecs: 20, LoadAvgBefore: "1.00 0.50 0.25", LoadAvgAfter: "3.00 2.00 1.00",
		Configs: []ConfigResult{
			{Name: "direct", Requests: 3000, ReqPerSec: 50, P50Ms: 200, P99Ms: 800, CommentsSent: 150, CommentsOK: 149,
				Samples: 600, BackendPeak: 16, BackendMean: 9.5, ActiveMean: 2.5, LoadAvg: "1.10→1.90", ThreadsPeak: 19, PrimarySelects: 60000, PrimarySelectsPerReq: 20, PrimaryQuestionsPerReq: 30, CPUMsPerReq: 41.5, CPUAipressMs: 6.5, CPUMariaDBMs: 5, CPUPHPMs: 30},
			{Name: "pooler", Requests: 2900, ReqPerSec: 48, P50Ms: 210, P99Ms: 900, CommentsSent: 145, CommentsOK: 145,
				Samples: 600, BackendPeak: 6, BackendMean: 4.2, ActiveMean: 2.4, LoadAvg: "1.90→2.00", ThreadsPeak: 9, PrimarySelects: 58000, PrimarySelectsPerReq: 20, PrimaryQuestionsPerReq: 31, CPUMsPerReq: 43.25},
			{Name: "pooler+replica", Replicas: 1, Requests: 2950, ReqPerSec: 49, P50Ms: 205, P99Ms: 850, CommentsSent: 147, CommentsOK: 147,
				Samples: 600, BackendPeak: 7, BackendMean: 4, ActiveMean: 2.6, LoadAvg: "2.00→2.10", ThreadsPeak: 11, PrimarySelects: 20000, PrimarySelectsPerReq: 6.8, PrimaryQuestionsPerReq: 12, ReplicaSelectsPerReq: 13.5},
		}}
}

// TestAnchorMean: with the anchor run more than once, the goals compare
// with the mean of its runs and are not judged for its repeats; a
// configuration run more than once is judged on the mean of its runs, and
// each run's req/s and p99 are listed for information.
func TestAnchorMean(t *testing.T) {
	r := sampleResult()
	d2 := r.Configs[0]
	d2.ReqPerSec, d2.P99Ms, d2.BackendPeak = 46, 700, 20 // mean 48 req/s, p99 750, peak 18
	p2 := r.Configs[1]
	p2.ReqPerSec, p2.BackendPeak = 45, 7 // mean 46.5 req/s, worst peak 7
	r.Configs = []ConfigResult{r.Configs[0], r.Configs[1], d2, p2}
	r.evaluate()
	if r.AnchorRuns != 2 {
		t.Fatalf("anchor runs %d, want 2", r.AnchorRuns)
	}
	var rps []float64
	for _, g := range r.Goals {
		if g.Config != "pooler (mean of 2)" {
			t.Fatalf("goal judged for %q: %+v", g.Config, g)
		}
		if strings.HasPrefix(g.Goal, "req/s") {
			rps = append(rps, g.Ratio)
		}
		if strings.HasPrefix(g.Goal, "backend connections (peak)") && g.Ratio != 7.0/18 {
			t.Errorf("peak ratio %v, want 7/18 (the pooler's worst run against direct's mean peak)", g.Ratio)
		}
	}
	if len(rps) != 1 || rps[0] != 46.5/48 {
		t.Fatalf("req/s ratios %v, want [0.96875] (the mean 46.5 against the mean 48)", rps)
	}
	var runs []string
	for _, g := range r.Runs {
		runs = append(runs, fmt.Sprintf("%s %s %.4f %v", g.Config, g.Goal[:3], g.Ratio, g.Met))
	}
	want := []string{
		"pooler (run 1 of 2) req 1.0000 true", "pooler (run 1 of 2) p99 1.2000 false",
		"pooler (run 2 of 2) req 0.9375 false", "pooler (run 2 of 2) p99 1.2000 false",
	}
	if !slices.Equal(runs, want) {
		t.Errorf("runs:\n%s\nwant\n%s", strings.Join(runs, "\n"), strings.Join(want, "\n"))
	}
	var b strings.Builder
	r.print(&b)
	for _, s := range []string{"goal (vs the mean of the 2 direct runs)", "pooler (run 2 of 2)", "would miss (one run; the goal is the mean's)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table does not say %q:\n%s", s, b.String())
		}
	}
}

// TestReport checks the goals against the anchor and the printed table.
func TestReport(t *testing.T) {
	r := sampleResult()
	r.evaluate()
	got := map[string]Goal{}
	for _, g := range r.Goals {
		got[g.Config+": "+g.Goal] = g
	}
	for _, g := range r.Info {
		got["(info) "+g.Config+": "+g.Goal] = g
	}
	for key, want := range map[string]bool{
		"pooler: backend connections (peak) ≤ 40 % of direct":         true,  // 6/16 = 37.5 %
		"pooler: req/s ≥ 0.95× direct":                                true,  // 0.96
		"pooler: p99 ≤ 1.1× direct":                                   false, // 1.125
		"pooler+replica: backend connections (peak) ≤ 40 % of direct": false, // 43.75 %
		"(info) pooler+replica: req/s ≥ 0.95× direct":                 true,
		"(info) pooler+replica: p99 ≤ 1.1× direct":                    true,
		"pooler: backend connections (mean) ≤ 40 % of direct":         false, // 44 %
		"pooler+replica: backend connections (mean) ≤ 40 % of direct": false, // 42 %
		"pooler+replica: primary SELECTs/request ≤ 50 % of direct":    true,  // 34 %
	} {
		g, ok := got[key]
		if !ok {
			t.Errorf("no goal %q", key)
			continue
		}
		if g.Met != want {
			t.Errorf("%s: met %v (ratio %.3f), want %v", key, g.Met, g.Ratio, want)
		}
	}
	if len(r.Goals) != 7 || len(r.Info) != 2 {
		t.Errorf("%d goals and %d for information, want 7 and 2 (the replica goal only with a replica; req/s and p99 not a replica's)", len(r.Goals), len(r.Info))
	}
	var b strings.Builder
	r.print(&b)
	golden(t, "table.golden", b.String())
	if err := r.problem(); err != nil {
		t.Errorf("problem() = %v", err)
	}
	for name, change := range map[string]func(c *ConfigResult){
		"failed":            func(c *ConfigResult) { c.Failed, c.Statuses = 2, map[string]int64{"502": 2} },
		"socket":            func(c *ConfigResult) { c.SocketErrors = 1 },
		"no requests":       func(c *ConfigResult) { c.Requests = 0 },
		"no samples":        func(c *ConfigResult) { c.Samples = 0 },
		"no comments taken": func(c *ConfigResult) { c.CommentsOK = 0 },
		"no selects":        func(c *ConfigResult) { c.PrimarySelects = 0 },
	} {
		bad := sampleResult()
		change(&bad.Configs[1])
		if bad.problem() == nil {
			t.Errorf("%s: problem() = nil", name)
		}
	}
	// A zero anchor figure makes the goal missed, not met by division.
	z := sampleResult()
	z.Configs[0].BackendPeak = 0
	z.evaluate()
	if z.Goals[0].Met || figure(z.Goals[0]) != "n/a" {
		t.Errorf("goal against a zero anchor: %+v", z.Goals[0])
	}
}

func TestSeries(t *testing.T) {
	var s series
	if s.Mean() != 0 {
		t.Error("mean of nothing")
	}
	for _, v := range []int{3, 9, 0, 4} {
		s.add(v)
	}
	if s.Peak != 9 || s.Mean() != 4 || s.N != 4 {
		t.Errorf("series %+v mean %v", s, s.Mean())
	}
}

// TestMUPlugin writes the plugin into a fake data directory (two
// docroots, a mu-plugins outside wp-content that must not get it) and
// lints it with php -l when PHP is installed.
func TestMUPlugin(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"shards/local/sites/a/docroot/wp-content/mu-plugins", "shards/local/sites/b/docroot/wp-content/mu-plugins", "shards/local/other/mu-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n, err := installMUPlugin(dir)
	if err != nil || n != 2 {
		t.Fatalf("installMUPlugin = %d, %v; want 2", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "shards/local/other/mu-plugins", muPluginName)); err == nil {
		t.Error("plugin written outside wp-content")
	}
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php not installed")
	}
	if out, err := exec.Command(php, "-l", filepath.Join(dir, "shards/local/sites/a/docroot/wp-content/mu-plugins", muPluginName)).CombinedOutput(); err != nil {
		t.Errorf("php -l: %v\n%s", err, out)
	}
}

func TestDBHosts(t *testing.T) {
	dir := t.TempDir()
	for i, h := range []string{"localhost:/x/run/pooler/mysql.sock", "localhost:/x/run/pooler/mysql.sock", "localhost:/x/mariadb/run/mysqld.sock"} {
		d := filepath.Join(dir, "shards/local/sites", fmt.Sprint(i), "docroot")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "wp-config.php"), []byte("<?php\ndefine('DB_NAME', 'x');\ndefine('DB_HOST', '"+h+"');\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := dbHosts(dir)
	if err != nil || len(hosts) != 2 {
		t.Errorf("dbHosts = %v, %v; want the two distinct hosts", hosts, err)
	}
}

// TestDBTiny runs the benchmark at a tiny size (2 sites, about 2 s of load
// per configuration) on a real platform: builds aipress, starts it in each
// of the three configurations in turn and wants every figure measured (no
// timing thresholds).
func TestDBTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real platform")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (the platform creates a Unix user per site)")
	}
	for _, b := range []string{"/usr/sbin/mariadbd", "/usr/sbin/php-fpm8.2", "/usr/share/wordpress/wp-settings.php"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("%s missing (scripts/deps.sh)", b)
		}
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk missing (scripts/deps.sh installs it)")
	}
	bin := filepath.Join(t.TempDir(), "aipress")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/aipress/aipress/cmd/aipress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	o := options{sites: 2, threads: 2, connections: 4, every: 5, bin: bin, wrk: "wrk", duration: 2 * time.Second,
		warmup: time.Second, interval: 100 * time.Millisecond, configs: allConfigs, timeout: 15 * time.Minute}
	res, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.print(&b)
	t.Logf("\n%s", b.String())
	if err := res.problem(); err != nil {
		t.Error(err)
	}
	if len(res.Configs) != 3 || len(res.Goals) != 7 || len(res.Info) != 2 {
		t.Fatalf("%d configurations, %d goals, %d for information; want 3, 7 and 2", len(res.Configs), len(res.Goals), len(res.Info))
	}
	for _, c := range res.Configs {
		if c.Requests == 0 || c.BackendPeak == 0 || c.PrimarySelectsPerReq <= 0 || c.P99Ms <= 0 || c.CommentsSent > int64(o.connections) && c.CommentsOK == 0 {
			t.Errorf("%s: a figure is missing: %+v", c.Name, c)
		}
	}
	// Whether the replica served reads in 2 s depends on its lag (the
	// gate's bound), a timing: only that it was measured is required.
	if rep := res.Configs[2]; rep.Replicas == 0 {
		t.Errorf("pooler+replica: no replica measured: %+v", rep)
	} else if rep.ReplicaSelects <= 0 {
		t.Logf("pooler+replica: the replica served no SELECT in this short run")
	}
}

// TestPickConfigs: a pooler configuration with its own flags in brackets
// is named apart from plain "pooler" and gets its flags; direct takes none.
func TestPickConfigs(t *testing.T) {
	cs, err := pickConfigs("direct, pooler,pooler[--db-pooler-backends=8 --db-pooler-linger=20ms],pooler+replica")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if want := []string{"direct", "pooler", "pooler[--db-pooler-backends=8 --db-pooler-linger=20ms]", "pooler+replica"}; !slices.Equal(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	if !cs[2].Pooler || !slices.Equal(cs[2].Extra, []string{"--db-pooler-backends=8", "--db-pooler-linger=20ms"}) || cs[1].Extra != nil {
		t.Fatalf("flags: %+v", cs)
	}
	for _, bad := range []string{"direct[--db-pooler-backends=8]", "nope", "nope[--x]"} {
		if _, err := pickConfigs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
