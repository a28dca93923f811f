package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/lean"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/metrics"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
)

// profileEdge serves the site from an edge inside this process, built as
// `aipress up` builds it (edge.New with the core's symlink roots, the page
// cache, the metrics observer, the route
// from edge.RouteForSite, an http.Server with the same ReadHeaderTimeout
// behind the lean HTTP/1.1 path unless -net-http-only),
// on a free 127.0.0.1 port, and writes one CPU profile per scenario to
// outDir while wrk loads it for o.duration. `aipress up` has no profiling
// hook; this measures the same request path without the platform's other
// goroutines. It returns the profile paths.
func profileEdge(ctx context.Context, o options, dataDir string, st *site.Site, host string, scs []scenario, outDir string) ([]string, error) {
	core, err := wordpress.RegisterCore(wordpress.DebianCore, filepath.Join(dataDir, "shards", "local", "cores"))
	if err != nil {
		return nil, err
	}
	n := shardlayout.Layout{Name: "local", Dir: filepath.Join(dataDir, "shards", "local")}.Site(st.Metadata.UID)
	route := edge.RouteForSite(st, edge.Location{Docroot: n.Docroot, Endpoint: "unix:" + n.Socket})
	variants := o.variants
	if len(variants) == 0 {
		variants = []string{"lean"}
		if o.netHTTPOnly {
			variants = []string{"net-http"}
		}
	}
	addrs := make([]string, len(variants))
	for i, v := range variants {
		// The page cache and the metrics observer, as `aipress up` has
		// them (its purge endpoint, bandwidth meter, rate limiter,
		// redirect and access log are left out: the profile shows the
		// HTTP layer and the cache).
		ed := edge.New(edge.Config{AllowedSymlinkRoots: core.LinkRoots,
			Middlewares: []edge.Middleware{pagecache.New(pagecache.Config{}).Middleware()}, Observe: metrics.New().Observe})
		ed.SetTable(edge.NewTable([]edge.Route{route}))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		plain := &http.Server{Handler: ed, ReadHeaderTimeout: 10 * time.Second}
		var srv interface {
			Serve(net.Listener) error
			Close() error
		} = plain
		if v != "net-http" {
			srv = &lean.Server{HTTP: plain}
		}
		go srv.Serve(ln)
		defer srv.Close()
		addrs[i] = ln.Addr().String()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for i, sc := range scs {
		name := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return ' '
		}, strings.ToLower(sc.name))), "-")
		for j, v := range variants {
			addr := addrs[j]
			if code, _, err := probe(ctx, &http.Client{Timeout: 30 * time.Second}, addr, host, sc.path, sc.headers); err != nil || code != http.StatusOK {
				return paths, fmt.Errorf("profile edge %s: HTTP %d, %v", sc.path, code, err)
			}
			// Numbered: two rows may share the first 40 characters of their names.
			base := fmt.Sprintf("edge-%d-%s", i+1, name[:min(len(name), 40)])
			if len(variants) > 1 {
				base += "-" + v
			}
			path := filepath.Join(outDir, base+".pprof")
			line, err := profileRun(ctx, o, host, sc, addr, path)
			if err != nil {
				return paths, err
			}
			logf("profile  %-50s %-9s %s", sc.name, v, line)
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// profileRun loads addr with wrk for o.duration while it writes a CPU
// profile (and with -trace a runtime trace) of this process to path; it
// returns the figures as one line.
func profileRun(ctx context.Context, o options, host string, sc scenario, addr, path string) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return "", err
	}
	var tf *os.File
	if o.trace {
		if tf, err = os.Create(strings.TrimSuffix(path, ".pprof") + ".trace"); err != nil {
			pprof.StopCPUProfile()
			f.Close()
			return "", err
		}
		if err := trace.Start(tf); err != nil {
			pprof.StopCPUProfile()
			return "", errors.Join(err, f.Close(), tf.Close())
		}
	}
	rt0 := readRuntime()
	cpu0 := processCPU()
	r, _, werr := runWrk(ctx, o.wrk, wrkArgs(o.threads, o.connections, o.duration, append([]string{"Host: " + host}, sc.headers...), "http://"+addr+sc.path))
	cpu := processCPU() - cpu0
	rts := readRuntime().since(rt0)
	pprof.StopCPUProfile()
	var terr error
	if tf != nil {
		trace.Stop()
		terr = tf.Close()
	}
	if err := errors.Join(werr, f.Close(), terr); err != nil {
		return "", err
	}
	perReq := 0.0
	if r.Requests > 0 {
		perReq = float64(cpu.Microseconds()) / float64(r.Requests)
	}
	return fmt.Sprintf("%9.0f req/s  %5.1f µs CPU/req  p50 %-9v p99 %-9v -> %s\n         %s", r.ReqPerSec, perReq,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), path, rts.String(r.Requests)), nil
}

// processCPU is the CPU time (user and system) this process has used: the
// in-process edge's, as nothing else runs in it during a profile (the CPU
// per request is robust to other load on the machine, unlike req/s).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
