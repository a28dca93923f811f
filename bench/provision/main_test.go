package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	in := ms(50, 10, 40, 30, 20, 100, 90, 80, 70, 60) // unsorted on purpose
	for _, c := range []struct {
		p    float64
		want int
	}{{50, 50}, {95, 100}, {90, 90}, {100, 100}, {10, 10}, {1, 10}} {
		if got := percentile(in, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("percentile(p%v) = %v, want %dms", c.p, got, c.want)
		}
	}
	if in[0] != 50*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	if got := percentile(ms(7), 95); got != 7*time.Millisecond {
		t.Errorf("percentile of one value = %v, want 7ms", got)
	}
	if got := percentile(ms(1, 2, 3), 50); got != 2*time.Millisecond {
		t.Errorf("p50 of 1,2,3 = %v, want 2ms", got)
	}
}

func TestParseSmapsRollup(t *testing.T) {
	f, err := os.Open("testdata/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := parseSmapsRollup(f)
	if err != nil {
		t.Fatal(err)
	}
	// Pss_Dirty, Pss_Anon, … must not be taken for Pss.
	if m.RSS != 12345*1024 || m.PSS != 6789*1024 {
		t.Errorf("got %+v, want RSS 12345 kB, PSS 6789 kB", m)
	}
	for _, bad := range []string{"", "Rss: 12 kB\n", "Rss: x kB\nPss: 1 kB\n", "Rss: 1 MB\nPss: 1 kB\n"} {
		if _, err := parseSmapsRollup(strings.NewReader(bad)); err == nil {
			t.Errorf("parseSmapsRollup(%q): no error", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	comm, ppid, err := parseStat([]byte("4242 (php-fpm8.2) S 4200 4242 4242 0 -1 4194624 ...\n"))
	if err != nil || comm != "php-fpm8.2" || ppid != 4200 {
		t.Errorf("got %q %d %v", comm, ppid, err)
	}
	comm, ppid, err = parseStat([]byte("7 (a (weird) name) R 1 7 7 0"))
	if err != nil || comm != "a (weird) name" || ppid != 1 {
		t.Errorf("got %q %d %v", comm, ppid, err)
	}
}

func TestFindPlatformProcs(t *testing.T) {
	const dir = "/tmp/aipress-bench-1/data"
	procs := []proc{
		{pid: 100, ppid: 1, comm: "aipress"},
		{pid: 101, ppid: 100, comm: "mariadbd", cmdline: "/usr/sbin/mariadbd --defaults-file=" + dir + "/shards/local/mariadb/my.cnf"},
		{pid: 102, ppid: 100, comm: "php-fpm8.2", cmdline: "php-fpm: master process (" + dir + "/shards/local/php/php-fpm.conf)"},
		{pid: 103, ppid: 102, comm: "php-fpm8.2", cmdline: "php-fpm: pool wp_abc"},
		{pid: 104, ppid: 102, comm: "php-fpm8.2", cmdline: "php-fpm: pool wp_abcd"},
		// Another platform on the same host.
		{pid: 201, ppid: 200, comm: "mariadbd", cmdline: "/usr/sbin/mariadbd --defaults-file=/srv/other/my.cnf"},
		{pid: 202, ppid: 200, comm: "php-fpm8.2", cmdline: "php-fpm: master process (/srv/other/php-fpm.conf)"},
		{pid: 203, ppid: 202, comm: "php-fpm8.2", cmdline: "php-fpm: pool wp_abc"},
	}
	pp := findPlatformProcs(procs, 100, dir)
	if len(pp.mariadb) != 1 || pp.mariadb[0] != 101 {
		t.Errorf("mariadb = %v", pp.mariadb)
	}
	if len(pp.fpmMasters) != 1 || pp.fpmMasters[0] != 102 {
		t.Errorf("fpm masters = %v", pp.fpmMasters)
	}
	if len(pp.fpmWorkers) != 2 {
		t.Errorf("fpm workers = %v", pp.fpmWorkers)
	}
	if n := pp.poolWorkers("wp_abc"); n != 1 {
		t.Errorf("poolWorkers(wp_abc) = %d, want 1", n)
	}
}

func TestShardPlan(t *testing.T) {
	for _, c := range []struct{ n, shards, wantK, wantCap int }{
		{1000, 0, 20, 50}, {100, 0, 2, 50}, {2, 0, 1, 2}, {51, 0, 2, 26}, {1000, 1, 1, 1000}, {10, 3, 3, 4},
	} {
		if k, capacity := shardPlan(c.n, c.shards); k != c.wantK || capacity != c.wantCap {
			t.Errorf("shardPlan(%d, %d) = %d, %d; want %d, %d", c.n, c.shards, k, capacity, c.wantK, c.wantCap)
		}
	}
}

func TestParseHeapText(t *testing.T) {
	in := "heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# Alloc = 10\n# Sys = 5000\n" +
		"# HeapIdle = 300\n# HeapInuse = 700\n# HeapReleased = 100\n# Stack = 64 / 128\n"
	g, err := parseHeapText(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (GoMem{HeapInuse: 700, HeapRetained: 200, StackInuse: 64, Sys: 5000}); g != want {
		t.Errorf("parseHeapText = %+v, want %+v", g, want)
	}
	if _, err := parseHeapText(strings.NewReader("# HeapInuse = 1\n")); err == nil {
		t.Error("a profile without the other MemStats lines was accepted")
	}
}

func TestWorkerSamples(t *testing.T) {
	for _, c := range []struct {
		counts []int
		want   WorkerSamples
	}{
		{nil, WorkerSamples{}},
		{[]int{0}, WorkerSamples{Samples: 1}},
		{[]int{0, 4, 2, 0}, WorkerSamples{Samples: 4, Mean: 1.5, Max: 4}},
	} {
		var w WorkerSamples
		for _, n := range c.counts {
			w.add(n)
		}
		if w != c.want {
			t.Errorf("samples %v: %+v, want %+v", c.counts, w, c.want)
		}
	}
}
