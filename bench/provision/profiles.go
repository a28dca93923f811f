package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
)

// GoMem is what the platform process's Go runtime reports at one moment
// (runtime.MemStats, through the --debug-addr heap profile in text form):
// where the aipress PSS goes.
type GoMem struct {
	Goroutines   int    `json:"goroutines"`
	HeapInuse    uint64 `json:"heap_inuse_bytes"`
	HeapRetained uint64 `json:"heap_idle_not_released_bytes"` // HeapIdle − HeapReleased
	StackInuse   uint64 `json:"stack_inuse_bytes"`
	Sys          uint64 `json:"sys_bytes"`
}

// profiler fetches profiles from the platform's --debug-addr with the admin
// token and keeps them in dir (empty: figures only, no files).
type profiler struct {
	addr, token, dir string
	hc               *http.Client
}

func newProfiler(dataDir, addr, dir string) (*profiler, error) {
	cfg, err := apiclient.ReadConfig(dataDir)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return &profiler{addr: addr, token: cfg.Token, dir: dir, hc: &http.Client{Timeout: 2 * time.Minute}}, nil
}

func (pr *profiler) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pr.addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+pr.token)
	resp, err := pr.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return b, err
}

// snapshot reads the Go memory figures and, with a directory, saves the
// heap profile (after a GC, for pprof -sample_index=inuse_space) and the
// goroutine dump under names starting with label.
func (pr *profiler) snapshot(ctx context.Context, label string) (GoMem, error) {
	txt, err := pr.get(ctx, "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return GoMem{}, err
	}
	g, err := parseHeapText(strings.NewReader(string(txt)))
	if err != nil {
		return GoMem{}, err
	}
	gr, err := pr.get(ctx, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return GoMem{}, err
	}
	first, _, _ := strings.Cut(string(gr), "\n")
	n, ok := strings.CutPrefix(first, "goroutine profile: total ")
	if g.Goroutines, err = strconv.Atoi(strings.TrimSpace(n)); !ok || err != nil {
		return GoMem{}, fmt.Errorf("goroutine profile: unexpected first line %q", first)
	}
	if pr.dir == "" {
		return g, nil
	}
	heap, err := pr.get(ctx, "/debug/pprof/heap")
	if err != nil {
		return GoMem{}, err
	}
	for name, b := range map[string][]byte{label + "-heap.pb.gz": heap, label + "-goroutines.txt": gr} {
		if err := os.WriteFile(filepath.Join(pr.dir, name), b, 0o644); err != nil {
			return GoMem{}, err
		}
	}
	return g, nil
}

// parseHeapText reads the runtime.MemStats lines ("# HeapInuse = 123") at
// the end of a heap profile in text form (debug=1).
func parseHeapText(r io.Reader) (GoMem, error) {
	vals := map[string]uint64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " / ") // "# Stack = inuse / sys"
		if x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			vals[k] = x
		}
	}
	if err := sc.Err(); err != nil {
		return GoMem{}, err
	}
	for _, k := range []string{"HeapInuse", "HeapIdle", "HeapReleased", "Stack", "Sys"} {
		if _, ok := vals[k]; !ok {
			return GoMem{}, fmt.Errorf("heap profile: no %s line", k)
		}
	}
	return GoMem{
		HeapInuse:    vals["HeapInuse"],
		HeapRetained: vals["HeapIdle"] - min(vals["HeapReleased"], vals["HeapIdle"]),
		StackInuse:   vals["Stack"],
		Sys:          vals["Sys"],
	}, nil
}
