// Command scale benchmarks one AIPress control plane at federation scale:
// by default 50,000 sites over 1,000 shards, on SQLite and then on
// PostgreSQL.
//
// The control plane is the real `aipress server` binary, a child process so
// that its memory and CPU time can be read from /proc. All shards but -real
// are simulated agents: goroutines of this program that speak the real agent
// protocol through internal/apiclient (register, heartbeat, long-poll their
// sites, report status) but create no database, PHP pool or file; they
// report every site Ready at once with a fake endpoint. The -real shards are
// `aipress shard` processes with their own MariaDB and php-fpm, which install
// the -real-sites sites for real.
//
// It measures, per store: sites placed per second (and the time per site
// against the 1 ms target), API latency of create, get and paginated list
// (p99 against 50 ms), the time from a create to its agent's watch bringing
// the placed site (p99 against 250 ms) and to the agent's converge loop
// taking it up, the time until every site is Ready, the control
// plane's memory, the time and heap an edge needs to fetch GET /v1/routes
// and build its routing table (against 100 MB for all routes), and what one
// site change costs with every agent long-polling (latency to the owning
// agent, server CPU, agent wake-ups).
//
// Run it as root (real shards create site Unix users) after `make build`:
//
//	go run ./bench/scale [-sites 50000] [-shards 1000] [-real 2] [-real-sites 4] [-store sqlite|postgres|both]
//
// or `make bench-scale SITES=50000 SHARDS=1000`. Progress goes to stderr, the
// report to stdout; everything it started is stopped and removed on exit,
// also on Ctrl-C.
//
// The program is hand-written against the platform's own packages (the API
// client, the edge's routing table, the throwaway PostgreSQL of pgtest): the
// point is to exercise exactly the code the platform runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aipress/aipress/bench/internal/benchplatform"
)

// logf writes a progress line to stderr.
var logf = benchplatform.Logf

func main() {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var runs []*figures
	var failed error
	for _, kind := range o.stores {
		f, err := runStore(ctx, o, kind)
		if err != nil {
			failed = fmt.Errorf("%s: %w", kind, err)
			break
		}
		runs = append(runs, f)
	}
	printReport(os.Stdout, runs)
	if failed != nil {
		fmt.Fprintln(os.Stderr, "scale:", failed)
		os.Exit(1)
	}
}
