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
// mapped (runtime/metrics "/memory/classes/heap/free:bytes") or garbage
// not yet collected (Garbage) and, when the two add up to more than
// MinFree, or when more than MinFree bytes were allocated since the last
// check (a burst, whose pooled buffers are neither free nor garbage),
// collects twice and releases every free page (runtime.GC, then
// debug.FreeOSMemory): the first collection moves what sync.Pools hold to
// their victim caches, the second frees it — after a burst of backups
// their pooled zstd encoders (5–12 MiB each) otherwise stayed until two
// collections of the runtime's own, minutes apart in an idle process.
// Under steady load that is at most two extra collections a minute; pages
// and pooled objects the next burst needs are made again.
//
// The garbage counts because an idle process does not collect: the next
// collection is due when the heap doubles, or after two minutes, so the
// dead objects a burst left (a backup's buffers, a creation's JSON) stay
// resident as "in use" and were never seen as free: bench/provision at
// 100 idle sites found 54 MiB that only its own forced collection freed,
// half of what the platform process cost per site.
//
// GOMEMLIMIT (which an operator may still set) is not used instead: it
// bounds the total, and a bound low enough to matter when idle would make
// the collector run hot under load.
package memreturn

import (
	"context"
	"runtime"
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
	r := newReturner(cfg.MinFree)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			r.tick()
		}
	}
}

// returner is Run's state: the heap allocated so far at its last tick.
type returner struct {
	minFree, allocs uint64
}

func newReturner(minFree uint64) *returner {
	return &returner{minFree: minFree, allocs: read("/gc/heap/allocs:bytes")}
}

// tick acts as Return does, and also when more than minFree bytes were
// allocated since the last tick: what a burst left in sync.Pools is
// neither free nor garbage (a pool holds it), and the burst's own
// collections may have freed the rest; it reports whether it acted.
func (r *returner) tick() bool {
	allocs := read("/gc/heap/allocs:bytes")
	busy := allocs-r.allocs > r.minFree
	r.allocs = allocs
	if !busy && FreeBytes()+Garbage() <= r.minFree {
		return false
	}
	release()
	r.allocs = read("/gc/heap/allocs:bytes")
	return true
}

// Return gives the free heap pages back to the OS, collecting the garbage
// and emptying sync.Pools first, when more than minFree bytes are free and mapped or garbage
// together; it reports whether it did.
func Return(minFree uint64) bool {
	if FreeBytes()+Garbage() <= minFree {
		return false
	}
	release()
	return true
}

// release collects twice and gives every free page back to the OS.
func release() {
	runtime.GC() // sync.Pools to their victim caches
	debug.FreeOSMemory()
}

// FreeBytes is the heap memory that is free but not yet returned to the OS.
func FreeBytes() uint64 {
	return read("/memory/classes/heap/free:bytes")
}

// Garbage estimates the heap memory held by objects that died since the
// last garbage collection: the heap's objects, live and dead not yet
// freed ("/memory/classes/heap/objects:bytes"), less what the last
// collection found live ("/gc/heap/live:bytes"). Objects allocated since
// then and still live count too: it is an upper bound.
func Garbage() uint64 {
	objects, live := read("/memory/classes/heap/objects:bytes"), read("/gc/heap/live:bytes")
	if objects < live {
		return 0
	}
	return objects - live
}

func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
