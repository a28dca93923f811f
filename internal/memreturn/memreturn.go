// Package memreturn gives the Go heap's idle memory back to the operating
// system after a burst, so that an idle platform process costs what it
// holds, not what its busiest moment needed.
//
// Go's runtime keeps freed heap pages mapped for reuse and returns them
// slowly (the background scavenger keeps about 10 % above the next GC
// goal, and the goal is twice the live heap with GOGC=100). After a burst
// — a hundred site creations, a backup of a big site, a log read — a
// platform process held 90 MiB of idle heap pages next to 80 MiB in use
// (bench/provision, 100 sites over 20 shards): resident, counted in its
// PSS, and for the density goal (≤ 1 MB per idle site) more than the
// sites themselves.
//
// Run checks every Interval how much of the heap is free but still
// mapped (runtime/metrics "/memory/classes/heap/free:bytes") and, above
// MinFree, calls debug.FreeOSMemory: one forced garbage collection and the
// release of every free page. Under steady load that is at most one extra
// collection a minute; pages the next burst needs are faulted in again.
// GOMEMLIMIT (which an operator may still set) is not used instead: it
// bounds the total, and a bound low enough to matter when idle would make
// the collector run hot under load.
package memreturn

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of Config.
const (
	DefaultInterval = time.Minute
	DefaultMinFree  = 16 << 20
)

// Config tunes Run; zero values take the defaults.
type Config struct {
	Interval time.Duration
	MinFree  uint64
	// Ticks, if set, replaces the Interval ticker (tests).
	Ticks <-chan time.Time
}

// Run returns idle heap memory every Interval until ctx ends.
func Run(ctx context.Context, cfg Config) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MinFree == 0 {
		cfg.MinFree = DefaultMinFree
	}
	ticks := cfg.Ticks
	if ticks == nil {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			Return(cfg.MinFree)
		}
	}
}

// Return gives the free heap pages back to the OS when more than minFree
// bytes of them are mapped; it reports whether it did.
func Return(minFree uint64) bool {
	if FreeBytes() <= minFree {
		return false
	}
	debug.FreeOSMemory()
	return true
}

// FreeBytes is the heap memory that is free but not yet returned to the OS.
func FreeBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
