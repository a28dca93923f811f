package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method: the smallest value such that at least p% of the
// values are ≤ it. It returns 0 for no values and does not modify ds.
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

// Mem is resident memory in bytes.
type Mem struct {
	RSS uint64 `json:"rss_bytes"`
	PSS uint64 `json:"pss_bytes"`
}

func (m *Mem) add(o Mem) { m.RSS += o.RSS; m.PSS += o.PSS }

// parseSmapsRollup reads the Rss and Pss lines of /proc/<pid>/smaps_rollup
// (values in kB).
func parseSmapsRollup(r io.Reader) (Mem, error) {
	var m Mem
	var haveRSS, havePSS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "Rss" && key != "Pss") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Mem{}, fmt.Errorf("smaps_rollup: bad line %q", sc.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("smaps_rollup: bad line %q", sc.Text())
		}
		if key == "Rss" {
			m.RSS, haveRSS = kb*1024, true
		} else {
			m.PSS, havePSS = kb*1024, true
		}
	}
	if err := sc.Err(); err != nil {
		return Mem{}, fmt.Errorf("smaps_rollup: %w", err)
	}
	if !haveRSS || !havePSS {
		return Mem{}, fmt.Errorf("smaps_rollup: no Rss or Pss line")
	}
	return m, nil
}

// proc is one process from /proc.
type proc struct {
	pid, ppid int
	comm      string
	cmdline   string // NULs replaced by spaces
}

// parseStat returns comm and ppid from the content of /proc/<pid>/stat.
// comm may contain spaces and parentheses, so it ends at the last ')'.
func parseStat(b []byte) (comm string, ppid int, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("stat: malformed")
	}
	f := strings.Fields(string(b[end+1:])) // state ppid ...
	if len(f) < 2 {
		return "", 0, fmt.Errorf("stat: malformed")
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return "", 0, fmt.Errorf("stat: bad ppid: %w", err)
	}
	return string(b[open+1 : end]), ppid, nil
}

// listProcs walks /proc. Processes that vanish meanwhile are skipped.
func listProcs() ([]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		st, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		comm, ppid, err := parseStat(st)
		if err != nil {
			continue
		}
		cl, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppid, comm: comm,
			cmdline: strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '})))})
	}
	return out, nil
}

// Process names as the kernel reports them (comm).
const (
	commMariaDB = "mariadbd"
	commFPM     = "php-fpm8.2"
)

// platformProcs are the processes of one aipress instance.
type platformProcs struct {
	aipress    int
	mariadb    []int
	fpmMasters []int
	fpmWorkers []proc
}

// findPlatformProcs finds the processes of the aipress instance with pid
// aipressPID and data directory dataDir: mariadbd and php-fpm masters are
// recognised by their command line (which names a file in the data
// directory) or by being children of aipress; php-fpm workers by having a
// master as parent. Other aipress instances on the host are left out.
func findPlatformProcs(procs []proc, aipressPID int, dataDir string) platformProcs {
	pp := platformProcs{aipress: aipressPID}
	ours := func(p proc) bool {
		return p.ppid == aipressPID || strings.Contains(p.cmdline, dataDir)
	}
	masters := map[int]bool{}
	for _, p := range procs {
		switch {
		case p.comm == commMariaDB && ours(p):
			pp.mariadb = append(pp.mariadb, p.pid)
		case p.comm == commFPM && ours(p):
			pp.fpmMasters = append(pp.fpmMasters, p.pid)
			masters[p.pid] = true
		}
	}
	for _, p := range procs {
		if p.comm == commFPM && masters[p.ppid] {
			pp.fpmWorkers = append(pp.fpmWorkers, p)
		}
	}
	return pp
}

// poolWorkers counts the live workers of the named pool (php-fpm titles
// them "php-fpm: pool <name>").
func (pp platformProcs) poolWorkers(pool string) int {
	n := 0
	for _, w := range pp.fpmWorkers {
		if strings.HasSuffix(w.cmdline, "pool "+pool) {
			n++
		}
	}
	return n
}

// Group is the memory of a group of processes.
type Group struct {
	Procs int `json:"procs"`
	Mem
}

// MemSnapshot is the memory of the platform at one moment.
type MemSnapshot struct {
	MariaDB    Group `json:"mariadbd"`
	PHPFPM     Group `json:"php_fpm"`
	FPMWorkers int   `json:"php_fpm_workers"`
	AIPress    Group `json:"aipress"`
	Total      Group `json:"total"`
}

func readMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	return parseSmapsRollup(f)
}

// measureMem reads smaps_rollup of every process of the platform.
func measureMem(aipressPID int, dataDir string) (MemSnapshot, error) {
	procs, err := listProcs()
	if err != nil {
		return MemSnapshot{}, err
	}
	pp := findPlatformProcs(procs, aipressPID, dataDir)
	if len(pp.mariadb) == 0 || len(pp.fpmMasters) == 0 {
		return MemSnapshot{}, fmt.Errorf("found %d mariadbd and %d php-fpm master processes of this platform, want at least 1 each", len(pp.mariadb), len(pp.fpmMasters))
	}
	var s MemSnapshot
	sum := func(g *Group, pids []int) error {
		for _, pid := range pids {
			m, err := readMem(pid)
			if os.IsNotExist(err) {
				continue // a worker that just exited
			}
			if err != nil {
				return fmt.Errorf("pid %d: %w", pid, err)
			}
			g.Procs++
			g.add(m)
		}
		return nil
	}
	workers := make([]int, len(pp.fpmWorkers))
	for i, w := range pp.fpmWorkers {
		workers[i] = w.pid
	}
	for _, step := range []struct {
		g    *Group
		pids []int
	}{{&s.MariaDB, pp.mariadb}, {&s.PHPFPM, pp.fpmMasters}, {&s.PHPFPM, workers}, {&s.AIPress, []int{aipressPID}}} {
		if err := sum(step.g, step.pids); err != nil {
			return MemSnapshot{}, err
		}
	}
	s.FPMWorkers = s.PHPFPM.Procs - len(pp.fpmMasters)
	for _, g := range []Group{s.MariaDB, s.PHPFPM, s.AIPress} {
		s.Total.Procs += g.Procs
		s.Total.add(g.Mem)
	}
	return s, nil
}

// WorkerSamples is the number of live php-fpm workers of the platform,
// sampled during an idle wait.
type WorkerSamples struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	Max     int     `json:"max"`
}

func (w *WorkerSamples) add(n int) {
	w.Mean = (w.Mean*float64(w.Samples) + float64(n)) / float64(w.Samples+1)
	w.Samples++
	w.Max = max(w.Max, n)
}

// workerSampleEvery is how often idleWait counts the php-fpm workers.
const workerSampleEvery = 5 * time.Second

// idleWait waits d, counting the platform's php-fpm workers at its start
// and every workerSampleEvery: the workers an idle platform keeps (the
// uptime probes' page refills start some).
func (p *platform) idleWait(ctx context.Context, d time.Duration) (WorkerSamples, error) {
	var w WorkerSamples
	end := time.Now().Add(d)
	for {
		procs, err := listProcs()
		if err != nil {
			return w, err
		}
		w.add(len(findPlatformProcs(procs, p.PID(), p.DataDir).fpmWorkers))
		left := time.Until(end)
		if left <= 0 {
			return w, nil
		}
		if err := benchplatform.Sleep(ctx, min(left, workerSampleEvery)); err != nil {
			return w, err
		}
	}
}
