package main

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// at is a time offset from a fixed origin, for records.
func at(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }

// TestSummarize checks the counting and the recovery time on made-up
// records, and the report against testdata/table.golden (-update).
func TestSummarize(t *testing.T) {
	kill := at(0)
	recs := []record{
		{start: at(-50), end: at(5), err: "read: connection reset by peer"}, // held by the killed platform
		{start: at(10), end: at(12), err: "dial tcp: connect: connection refused", refused: true},
		{start: at(20), end: at(400), status: 502},
		{start: at(30), end: at(600), cached: true, status: 200},
		{start: at(410), end: at(900), status: 500},
		{start: at(910), end: at(1500), status: 200}, // the first uncached success after the last failure
		{start: at(920), end: at(1400), cached: true, status: 200},
		{start: at(5000), end: at(5100), status: 200}, // after the window
	}
	pf := summarize(FaultPlatform, recs, kill, at(8), at(4000))
	want := FaultResult{Fault: FaultPlatform, Requests: 7, OK: 3, Refused: 1, InFlight: 1, S502: 1, S500: 1,
		FirstError: "uncached: status 502", RecoverySecs: 1.5, MaxLatencyMs: 590}
	if pf.Requests != want.Requests || pf.OK != want.OK || pf.Refused != want.Refused || pf.InFlight != want.InFlight ||
		pf.S502 != want.S502 || pf.S500 != want.S500 || pf.RecoverySecs != want.RecoverySecs || pf.MaxLatencyMs != want.MaxLatencyMs ||
		pf.FirstError != " "+want.FirstError || pf.Met || pf.Errors() != 2 {
		t.Errorf("platform: got %+v\nwant %+v (errors 2, missed)", pf, want)
	}
	// Another fault: a failure in flight at the kill is an error.
	if f := summarize(FaultPHPFPM, recs, kill, time.Time{}, at(4000)); f.Socket != 1 || f.InFlight != 0 {
		t.Errorf("php-fpm: %+v, want the in-flight reset counted as a socket error", f)
	}
	// Only successes: recovery at the first uncached success, goal met.
	clean := []record{{start: at(100), end: at(300), cached: true, status: 200}, {start: at(100), end: at(800), status: 200}}
	if f := summarize(FaultMariaDB, clean, kill, time.Time{}, at(4000)); !f.Met || f.RecoverySecs != 0.8 {
		t.Errorf("clean run: %+v, want met with recovery 0.8 s", f)
	}
	if f := summarize(FaultMariaDB, recs[:5], kill, time.Time{}, at(4000)); f.RecoverySecs != -1 || f.Met {
		t.Errorf("no recovery: %+v", f)
	}

	res := &Result{Sites: 2, Workers: 4, Faults: []FaultResult{pf, summarize(FaultMariaDB, clean, kill, time.Time{}, at(4000))}}
	var b strings.Builder
	res.table().Print(&b)
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantTable, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(wantTable) {
		t.Errorf("table differs from %s (-update rewrites it):\n%s", golden, b.String())
	}
}

// TestChaosTiny runs the benchmark at a tiny size (1 site, 2 workers, the
// php-fpm fault) on a real platform. It fails when the harness breaks
// (the platform, the kill, the load), never on a missed goal.
func TestChaosTiny(t *testing.T) {
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
	bin := filepath.Join(t.TempDir(), "aipress")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/aipress/aipress/cmd/aipress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := options{sites: 1, workers: 2, bin: bin, faults: []string{FaultPHPFPM}, baseline: time.Second, settle: time.Second, limit: time.Minute}
	res, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.table().Print(&b)
	t.Logf("\n%s", b.String())
	if len(res.Faults) != 1 || res.Faults[0].Requests == 0 || res.Faults[0].OK == 0 {
		t.Errorf("nothing measured: %+v", res)
	}
}
