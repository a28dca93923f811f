package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	in := []time.Duration{5, 1, 4, 2, 3}
	if got := percentile(in, 50); got != 3 {
		t.Errorf("p50 = %v, want 3", got)
	}
	if got := percentile(in, 99); got != 5 {
		t.Errorf("p99 = %v, want 5", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if in[0] != 5 {
		t.Error("percentile sorted its input")
	}
}

// TestResult checks the report: the table against
// testdata/table.golden (-update rewrites it) and which results problem
// refuses.
func TestResult(t *testing.T) {
	ok := Result{Sites: 3, Load: "wrk -t2 -c16 --timeout 30s --latency", Threads: 2, Connections: 16, LoadSecs: 20.5,
		Requests: 410, ReqPerSec: 20, P50Ms: 700.25, P99Ms: 2100, Rotations: 3, RotateP50Secs: 1.5, RotateMaxSecs: 2.25,
		RotateAllSecs: 4.5, Covered: true, LoadBeforeSecs: 5, LoadAfterSecs: 3.1, DuringRotations: 90, Pass: true}
	var b strings.Builder
	ok.table().Print(&b)
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("table differs from %s (-update rewrites it):\n%s", golden, b.String())
	}
	if err := ok.problem(); err != nil {
		t.Errorf("problem() = %v for a good run", err)
	}
	for name, change := range map[string]func(r *Result){
		"failed answer":    func(r *Result) { r.Failed, r.Statuses = 2, map[string]int64{"500": 2} },
		"socket error":     func(r *Result) { r.SocketErrors, r.Timeout = 1, 1 },
		"rotation failed":  func(r *Result) { r.Rotations, r.RotationsFailed = 2, 1 },
		"rotation missing": func(r *Result) { r.Rotations = 2 },
		"not covered":      func(r *Result) { r.Covered = false },
	} {
		r := ok
		change(&r)
		if err := r.problem(); err == nil {
			t.Errorf("%s: problem() = nil", name)
		}
	}
	bad := ok
	bad.Failed, bad.Statuses, bad.Pass = 3, map[string]int64{"502": 1, "500": 2}, false
	b.Reset()
	bad.table().Print(&b)
	for _, s := range []string{"3 (500×2, 502×1)", "MISS"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table of a failed run lacks %q:\n%s", s, b.String())
		}
	}
}

// TestRotateTiny runs the benchmark at a tiny size (2 sites, wrk -t2 -c4)
// on a real platform: builds aipress, starts it, rotates both sites'
// database passwords under wrk load and wants no failed request, both
// rotations done and the load covering them.
func TestRotateTiny(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := options{sites: 2, threads: 2, connections: 4, bin: bin, wrk: "wrk", warmup: 2 * time.Second, after: time.Second, timeout: 10 * time.Minute}
	res, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.table().Print(&b)
	t.Logf("\n%s", b.String())
	if err := res.problem(); err != nil {
		t.Error(err)
	}
	if res.Requests == 0 || res.RotateMaxSecs <= 0 || !res.Pass {
		t.Errorf("nothing measured or goal missed: %+v", res)
	}
}
