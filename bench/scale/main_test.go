package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}, {0.1, 1}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if ds[0] != 5 {
		t.Error("percentile sorted its argument")
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
	s := summarize([]time.Duration{3, 1, 2}, 4)
	if s.N != 3 || s.Errors != 4 || s.P50 != 2 || s.P99 != 3 || s.Max != 3 {
		t.Errorf("summarize = %+v", s)
	}
}

func TestRecorder(t *testing.T) {
	var r recorder
	r.add(time.Millisecond, nil)
	r.add(0, io.EOF)
	r.add(2*time.Millisecond, io.ErrUnexpectedEOF)
	if s := r.summary(); s.N != 1 || s.Errors != 2 || s.P99 != time.Millisecond {
		t.Errorf("summary = %+v", s)
	}
	if r.firstErr() != io.EOF {
		t.Errorf("first error = %v", r.firstErr())
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.sites != 50000 || o.shards != 1000 || o.real != 2 || o.realSites != 4 || o.concurrency != 32 ||
		o.bin != "bin/aipress" || strings.Join(o.stores, ",") != "sqlite,postgres" {
		t.Errorf("defaults: %+v", o)
	}
	// 49,996 simulated sites on 998 shards need 51 each.
	if got := o.simCapacity(); got != 51 {
		t.Errorf("simCapacity = %d, want 51", got)
	}
	if got := o.realCapacity(); got != 2 {
		t.Errorf("realCapacity = %d, want 2", got)
	}
	if o.timeout <= 30*time.Minute {
		t.Errorf("default timeout %v does not grow with the sites", o.timeout)
	}

	o, err = parseArgs([]string{"-sites", "200", "-shards", "20", "-real", "0", "-store", "postgres", "-capacity", "30"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.simShards() != 20 || o.simSites() != 200 || o.realSites != 0 || o.simCapacity() != 30 || o.stores[0] != "postgres" {
		t.Errorf("parsed: %+v", o)
	}
	o, _ = parseArgs([]string{"-sites", "10", "-shards", "2", "-real", "0"}, io.Discard)
	if o.simCapacity() != 50 {
		t.Errorf("simCapacity = %d, want the default 50", o.simCapacity())
	}
	// The open-loop phase's sites need room too: 10,000 + 1,000 over 200.
	o, _ = parseArgs([]string{"-sites", "10000", "-shards", "200", "-real", "0", "-create-rate", "100"}, io.Discard)
	if o.openLoopSites() != 1000 || o.simCapacity() != 55 {
		t.Errorf("with -create-rate: open-loop sites %d, simCapacity %d; want 1000, 55", o.openLoopSites(), o.simCapacity())
	}
	o, _ = parseArgs([]string{"-sites", "10000", "-shards", "200", "-real", "0", "-rate-creates", "5000"}, io.Discard)
	if o.openLoopSites() != 0 || o.simCapacity() != 50 {
		t.Errorf("without -create-rate: open-loop sites %d, simCapacity %d; want 0, 50", o.openLoopSites(), o.simCapacity())
	}
	o, _ = parseArgs([]string{"-real", "3", "-real-sites", "4"}, io.Discard)
	if o.realCapacity() != 2 {
		t.Errorf("realCapacity of 4 sites on 3 shards = %d, want 2", o.realCapacity())
	}

	for _, bad := range [][]string{
		{"-sites", "10", "-real-sites", "4", "-seed", "7"},
		{"-seed", "-1"},
		{"-store", "mysql"},
		{"-sites", "0"},
		{"-shards", "2", "-real", "2"},
		{"-real", "2", "-real-sites", "0"},
		{"-sites", "3", "-real-sites", "4"},
		{"-list-limit", "1001"},
		{"-concurrency", "0"},
		{"-create-rate", "-1"},
		{"-create-rate", "10", "-rate-creates", "0"},
		{"extra"},
		{"-nosuchflag"},
	} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\taipress\nVmPeak:\t 2000000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\nThreads:\t9\n"
	m, err := parseStatus(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if m.HWM != 123456<<10 || m.RSS != 65432<<10 {
		t.Errorf("got %+v", m)
	}
	if _, err := parseStatus(strings.NewReader("Name:\tkthread\n")); err == nil {
		t.Error("status without memory lines accepted")
	}
}

func TestParseCPU(t *testing.T) {
	// A name with a space and a parenthesis; utime 250, stime 50 ticks.
	in := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200\n"
	got, err := parseCPU([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	if _, err := parseCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
	// This process's own stat parses.
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
}

func TestReport(t *testing.T) {
	f := &figures{Store: "sqlite", Sites: 1000, SimShards: 18, RealShards: 2, RealSites: 4,
		Setup: 1500 * time.Millisecond, CreateWall: 10 * time.Second, PlacedWall: 500 * time.Millisecond,
		Create:       summary{N: 1000, P50: 3 * time.Millisecond, P99: 60 * time.Millisecond},
		Get:          summary{N: 500, P50: time.Millisecond, P99: 2 * time.Millisecond},
		List:         summary{N: 10, Errors: 1, P50: 5 * time.Millisecond, P99: 7 * time.Millisecond},
		ListSites:    1000,
		PlaceLatency: summary{N: 1000, P50: 100 * time.Millisecond, P99: 300 * time.Millisecond},
		Delivery:     summary{N: 1000, P50: 40 * time.Millisecond, P99: 200 * time.Millisecond},
		Converge:     12 * time.Second, CPUPerCreate: 7 * time.Millisecond, ServerRSS: 100 << 20, ServerHWM: 120 << 20,
		EdgeRoutes: 1000, EdgeFetch: 20 * time.Millisecond, EdgeBuild: time.Millisecond, EdgeHeap: 2 << 20, EdgePeak: 8 << 20,
		Changes: 10, Fanout: summary{N: 10, P50: 2 * time.Millisecond, P99: 4 * time.Millisecond},
		CPUPerChange: 30 * time.Millisecond, WakeupsPerChage: 2, Watchers: 20,
	}
	var buf bytes.Buffer
	open := &figures{Store: "openloop", RateCreates: 100, RateWall: 10 * time.Second,
		RateCreate:   summary{N: 1000, P50: 8 * time.Millisecond, P99: 40 * time.Millisecond},
		RateDelivery: summary{N: 1000, P50: 30 * time.Millisecond, P99: 300 * time.Millisecond}}
	printReport(&buf, []*figures{f, {Store: "postgres"}, {Store: "seeded", Sites: 5000, Seeded: 4000, SeedPlace: 2 * time.Second}, open})
	out := buf.String()
	for _, want := range []string{
		"store sqlite: 1000 sites, 18 simulated + 2 real shards",
		"sites created through the API  ", "1000 in 10.0 s (100/s)",
		"sites placed per second", "2000/s",
		"0.50 ms", "< 1.00 ms  PASS",
		"API create p50 / p99", "3.00 ms / 60.0 ms", "p99 < 50.0 ms  MISS",
		"API get p50 / p99", "1.00 ms / 2.00 ms",
		"(create → agent's watch has it)", "40.0 ms / 200.0 ms", "p99 < 250.0 ms  PASS",
		"(create → agent's converge takes it up)", "100.0 ms / 300.0 ms",
		"(10 pages, 1000 sites) (1 errors)",
		"100.0 MiB / 120.0 MiB",
		"2.0 MiB / 8.0 MiB",
		"peak < 100.0 MiB  PASS",
		"20.0 ms", "< 2000 ms  PASS",
		"server CPU per API-created site (first create → all Ready)", "7.00 ms",
		"30.0 ms", "2.00",
		"\n\nstore postgres: 0 sites",
		"sites seeded into the store (-seed)", "2000/s", "0.50 ms",
		"open loop: 1000 creates at 100/s", "in 10.0 s (100/s)",
		"open loop at 100/s: API create p50 / p99", "8.00 ms / 40.0 ms", "p99 < 50.0 ms  PASS",
		"open loop at 100/s: create → agent's watch has it", "30.0 ms / 300.0 ms", "p99 < 250.0 ms  MISS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Unmeasured figures say so and get no verdict.
	pg := out[strings.Index(out, "store postgres"):strings.Index(out, "store seeded")]
	if strings.Contains(pg, "PASS") || strings.Contains(pg, "MISS") {
		t.Errorf("verdicts for unmeasured figures:\n%s", pg)
	}
	if strings.Contains(out[:strings.Index(out, "store openloop")], "open loop") {
		t.Errorf("open-loop rows without -create-rate:\n%s", out)
	}
	// Columns line up: every row of a table is as wide or narrower than the
	// header's value column ends.
	lines := strings.Split(strings.Split(out, "\n\n")[0], "\n")
	col := strings.Index(lines[0], "value") + len("value")
	for _, l := range lines[1:] {
		if i := strings.Index(l, " ms /"); i >= 0 && i > col {
			t.Errorf("value column misaligned: %q", l)
		}
	}
}

// TestSmoke runs the whole benchmark at a small size on SQLite: 200 sites
// (150 of them seeded into the store) over 20 simulated shards, no real
// shard. It needs the aipress binary (`make build`).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin, err := filepath.Abs("../../bin/aipress")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s: run make build", bin)
	}
	o, err := parseArgs([]string{"-sites", "200", "-shards", "20", "-real", "0", "-store", "sqlite", "-binary", bin,
		"-seed", "150", "-gets", "200", "-list-pages", "5", "-changes", "10", "-heartbeat", "2s", "-timeout", "3m",
		"-create-rate", "50", "-rate-creates", "20"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f, err := runStore(context.Background(), o, storeSQLite)
	if err != nil {
		t.Fatal(err)
	}
	// The open-loop phase adds 20 sites: the list walk's five pages of 100
	// over 220 sites see 100, 100, 20, 100, 100.
	if f.Create.N != 50 || f.Create.Errors != 0 || f.PlaceLatency.N != 50 || f.Delivery.N != 50 || f.Seeded != 150 || f.SeedPlace <= 0 ||
		f.RateCreate.N != 20 || f.RateCreate.Errors != 0 || f.RateDelivery.N != 20 || f.Get.N != 200 ||
		f.List.N != 5 || f.ListSites != 420 || f.EdgeRoutes != 220 || f.Fanout.N != 10 || f.Fanout.Errors != 0 {
		t.Errorf("figures: %+v", f)
	}
	// The kept heap of a 200-route table (tens of KB) is within the noise
	// of the rest of the process's garbage: it can measure negative (the
	// report says n/a); the peak growth while the table is built cannot.
	if f.PlacedWall <= 0 || f.Converge < f.PlacedWall || f.EdgePeak <= 0 {
		t.Errorf("durations: placed %v, converged %v, edge heap peak growth %d", f.PlacedWall, f.Converge, f.EdgePeak)
	}
	// The control plane's scrape: 8 series per shard (aipress_shard_*)
	// and more; none per site (package cpmetrics).
	if f.Scrape.N != scrapes || f.Scrape.Errors != 0 || f.ScrapeBytes <= 0 || f.ScrapeSeries < 8*20 {
		t.Errorf("scrape: %+v, %d bytes, %d series", f.Scrape, f.ScrapeBytes, f.ScrapeSeries)
	}
	var buf bytes.Buffer
	printReport(&buf, []*figures{f})
	t.Logf("\n%s", buf.String())
}
