package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	sites       int
	shards      int
	real        int
	realSites   int
	stores      []string // "sqlite", "postgres", in run order
	concurrency int
	bin         string
	capacity    int // of a simulated shard; 0: enough for the sites
	seed        int // simulated sites written into the store before the server starts
	gets        int
	listPages   int
	listLimit   int
	changes     int
	heartbeat   time.Duration
	timeout     time.Duration
	keep        bool
	// cpuProfile: write the server's CPU profile of the load phases there
	// (<store>-cpu.pprof inside that directory); "": none.
	cpuProfile string
	profileFor time.Duration
	// createRate > 0 adds the open-loop phase (openloop.go): rateCreates
	// more sites created at createRate a second.
	createRate  int
	rateCreates int
}

// Store kinds of -store.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// parseArgs parses the command line (without the program name). Usage and
// errors go to errOut.
func parseArgs(args []string, errOut io.Writer) (options, error) {
	var o options
	var storeFlag string
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.IntVar(&o.sites, "sites", 50000, "sites to create")
	fs.IntVar(&o.shards, "shards", 1000, "shards in all: simulated agents plus -real real ones")
	fs.IntVar(&o.real, "real", 2, "real shards (`aipress shard` processes with MariaDB and php-fpm)")
	fs.IntVar(&o.realSites, "real-sites", 4, "sites placed on the real shards (each a real WordPress install)")
	fs.StringVar(&storeFlag, "store", "both", "control-plane store: sqlite, postgres or both")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent API clients of the load phases")
	fs.StringVar(&o.bin, "binary", "bin/aipress", "aipress binary")
	fs.IntVar(&o.capacity, "capacity", 0, "capacity of a simulated shard (0: max(50, what the sites need))")
	fs.IntVar(&o.seed, "seed", 0, "simulated sites (and the simulated shards) written straight into the store before the server starts, bypassing POST /v1/sites and its bcrypt; the leader places them in one burst")
	fs.IntVar(&o.gets, "gets", 5000, "GET /v1/sites/{name} requests to time")
	fs.IntVar(&o.listPages, "list-pages", 200, "pages of GET /v1/sites to walk (with continue tokens)")
	fs.IntVar(&o.listLimit, "list-limit", 100, "page size of the list walk")
	fs.IntVar(&o.changes, "changes", 100, "site updates (PATCH) of the watch fan-out phase")
	fs.DurationVar(&o.heartbeat, "heartbeat", 10*time.Second, "heartbeat interval of the simulated agents")
	fs.DurationVar(&o.timeout, "timeout", 0, "overall time limit per store (0: 30m + 50ms per site)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directories")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "directory to write the server's CPU profile of the create load and what follows into (<store>-cpu.pprof; the server runs with --debug-addr)")
	fs.DurationVar(&o.profileFor, "profile-for", 30*time.Second, "length of the -cpuprofile profile, from the first create")
	fs.IntVar(&o.createRate, "create-rate", 0, "creates a second of an open-loop phase after the closed-loop one (0: none): each create is sent on schedule, whether the ones before were answered or not")
	fs.IntVar(&o.rateCreates, "rate-creates", 1000, "simulated sites the open-loop phase creates (-create-rate), on top of -sites")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch storeFlag {
	case storeSQLite, storePostgres:
		o.stores = []string{storeFlag}
	case "both":
		o.stores = []string{storeSQLite, storePostgres}
	default:
		return o, fmt.Errorf("-store: want sqlite, postgres or both, got %q", storeFlag)
	}
	if o.timeout <= 0 {
		o.timeout = 30*time.Minute + time.Duration(o.sites)*50*time.Millisecond
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var errs []error
	if o.sites < 1 {
		errs = append(errs, errors.New("-sites must be at least 1"))
	}
	if o.real < 0 || o.realSites < 0 {
		errs = append(errs, errors.New("-real and -real-sites must not be negative"))
	}
	if o.real == 0 && o.realSites > 0 {
		o.realSites = 0 // nothing to place them on
	}
	if o.real > 0 && o.realSites < 1 {
		errs = append(errs, errors.New("-real-sites must be at least 1 with real shards (each takes ceil(real-sites/real))"))
	}
	if o.realSites > o.sites {
		errs = append(errs, errors.New("-real-sites must not exceed -sites"))
	}
	if o.shards-o.real < 1 {
		errs = append(errs, errors.New("-shards must exceed -real: at least one simulated shard"))
	}
	if o.concurrency < 1 || o.gets < 0 || o.listPages < 0 || o.listLimit < 1 || o.listLimit > 1000 || o.changes < 0 {
		errs = append(errs, errors.New("-concurrency and -list-limit (at most 1000) must be positive; -gets, -list-pages and -changes not negative"))
	}
	if o.seed < 0 || o.seed > o.sites-o.realSites {
		errs = append(errs, errors.New("-seed must be between 0 and the simulated sites (-sites minus -real-sites)"))
	}
	if o.capacity < 0 {
		errs = append(errs, errors.New("-capacity must not be negative"))
	}
	if o.cpuProfile != "" && o.profileFor < time.Second {
		errs = append(errs, errors.New("-profile-for must be at least 1s"))
	}
	if o.createRate < 0 || o.rateCreates < 0 || o.createRate > 0 && o.rateCreates < 1 {
		errs = append(errs, errors.New("-create-rate must not be negative, and -rate-creates must be positive with it"))
	}
	if o.heartbeat <= 0 {
		errs = append(errs, errors.New("-heartbeat must be positive"))
	}
	return errors.Join(errs...)
}

// simShards is the number of simulated shards.
func (o *options) simShards() int { return o.shards - o.real }

// simSites is the number of sites placed on simulated shards.
func (o *options) simSites() int { return o.sites - o.realSites }

// simCapacity is the capacity each simulated shard registers with: -capacity,
// or the default 50 raised so the simulated shards hold every simulated site.
func (o *options) simCapacity() int {
	if o.capacity > 0 {
		return o.capacity
	}
	return max(50, ceilDiv(o.simSites()+o.openLoopSites(), o.simShards()))
}

// openLoopSites is the number of sites the open-loop phase creates.
func (o *options) openLoopSites() int {
	if o.createRate <= 0 {
		return 0
	}
	return o.rateCreates
}

// realCapacity is the capacity of each real shard: just enough for the
// real sites.
func (o *options) realCapacity() int {
	if o.real == 0 {
		return 0
	}
	return ceilDiv(o.realSites, o.real)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
