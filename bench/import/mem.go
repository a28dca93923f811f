package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// procStatusKB reads a "Name:   123 kB" field of /proc/<pid>/status in
// bytes (0 when absent).
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return statusKB(b, field)
}

// statusKB is procStatusKB on the file's content.
func statusKB(status []byte, field string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		return v << 10
	}
	return 0
}

// TreeMem is what a memSampler saw of a process tree.
type TreeMem struct {
	// PeakRSS is the largest sum of VmRSS over the tree at one sample.
	PeakRSS int64 `json:"peak_tree_rss_bytes"`
	// HWMByName is the largest VmHWM (peak resident size) seen per
	// process name, children that came and went included if a sample
	// caught them.
	HWMByName map[string]int64 `json:"hwm_by_name_bytes"`
	Samples   int              `json:"samples"`
	// RootPeakRSS is the root process's (aipress's) largest sampled
	// VmRSS, and RootPeakAt when it was seen, from the sampler's start.
	RootPeakRSS int64         `json:"root_peak_rss_bytes"`
	RootPeakAt  time.Duration `json:"root_peak_at_ns"`
}

// memSampler samples the tree below pid every interval until stopped.
type memSampler struct {
	pid   int
	start time.Time
	mu    sync.Mutex
	mem   TreeMem
	stop  context.CancelFunc
	done  chan struct{}
}

func startMemSampler(ctx context.Context, pid int, every time.Duration) *memSampler {
	ctx, cancel := context.WithCancel(ctx)
	m := &memSampler{pid: pid, start: time.Now(), stop: cancel, done: make(chan struct{}), mem: TreeMem{HWMByName: map[string]int64{}}}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) sample() {
	procs, err := procfs.AllProcs()
	if err != nil {
		return
	}
	parent := map[int]int{}
	comm := map[int]string{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue
		}
		parent[p.PID], comm[p.PID] = st.PPID, st.Comm
	}
	var rss, rootRSS int64
	hwm := map[string]int64{}
	for p := range parent {
		for q, hops := p, 0; q > 0 && hops < 64; q, hops = parent[q], hops+1 {
			if q != m.pid {
				continue
			}
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
			if err != nil {
				break
			}
			rss += statusKB(b, "VmRSS")
			if p == m.pid {
				rootRSS = statusKB(b, "VmRSS")
			}
			hwm[comm[p]] = max(hwm[comm[p]], statusKB(b, "VmHWM"))
			break
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mem.Samples++
	m.mem.PeakRSS = max(m.mem.PeakRSS, rss)
	if rootRSS > m.mem.RootPeakRSS {
		m.mem.RootPeakRSS, m.mem.RootPeakAt = rootRSS, time.Since(m.start)
	}
	for k, v := range hwm {
		m.mem.HWMByName[k] = max(m.mem.HWMByName[k], v)
	}
}

// Stop ends the sampling (after one last sample) and returns what it saw.
func (m *memSampler) Stop() TreeMem {
	m.sample()
	m.stop()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mem
}

// heapProfiler fetches aipress's heap profile (up --debug-addr) every
// two seconds and keeps the one taken at the largest RSS of the process.
type heapProfiler struct {
	mu   sync.Mutex
	best []byte
	rss  int64
	err  error
	stop context.CancelFunc
	done chan struct{}
}

func startHeapProfiler(ctx context.Context, pid int, url, token string) *heapProfiler {
	ctx, cancel := context.WithCancel(ctx)
	h := &heapProfiler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rss := procStatusKB(pid, "VmRSS")
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				h.mu.Lock()
				h.err = err
				h.mu.Unlock()
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			h.mu.Lock()
			switch {
			case err != nil:
				h.err = err
			case resp.StatusCode != http.StatusOK:
				h.err = fmt.Errorf("GET %s: %s", url, resp.Status)
			case rss >= h.rss:
				h.best, h.rss = b, rss
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// Stop ends the sampling and writes the kept profile to path.
func (h *heapProfiler) Stop(path string) error {
	h.stop()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.best == nil {
		return fmt.Errorf("no profile taken (last error: %v)", h.err)
	}
	return os.WriteFile(path, h.best, 0o600)
}
