package memreturn

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

var sink [][]byte

// burst allocates and drops about n bytes of heap, and collects them.
func burst(n int) {
	garbage(n)
	runtime.GC()
}

// garbage allocates and drops about n bytes of heap without collecting.
func garbage(n int) {
	for range n >> 20 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page
		}
		sink = append(sink, b)
	}
	sink = nil
}

// TestRunReturnsBurst: after a 64 MiB burst the free heap is well above
// MinFree; one tick of Run gives it back, and a quiet heap is left alone.
func TestRunReturnsBurst(t *testing.T) {
	const minFree = 8 << 20
	burst(64 << 20)
	if f := FreeBytes(); f < 32<<20 {
		t.Skipf("the runtime already returned the burst (%d bytes free); nothing to test", f)
	}
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Config{MinFree: minFree, Ticks: ticks}); close(done) }()
	ticks <- time.Now()
	ticks <- time.Now() // the first tick's work is done once the second is taken
	cancel()
	<-done
	if f := FreeBytes(); f > minFree {
		t.Errorf("after a tick %d bytes of heap are free and mapped, want ≤ %d", f, minFree)
	}
	if Return(minFree) {
		t.Error("Return acted on a heap with nothing to return")
	}
}

// TestReturnCollectsGarbage: an idle process does not collect, so a
// burst's dead objects count as in use and none of the heap is free; Return
// still sees them (Garbage), collects them and gives their pages back.
func TestReturnCollectsGarbage(t *testing.T) {
	const minFree = 8 << 20
	runtime.GC()
	debug.FreeOSMemory()
	// No collection until Return's own: the runtime's pacer would run
	// one during the burst and free part of it at a moment of its choosing.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	garbage(64 << 20)
	if f := FreeBytes(); f > minFree {
		t.Fatalf("%d bytes free before any collection, want ≤ %d: the test needs the burst uncollected", f, minFree)
	}
	if g := Garbage(); g < 48<<20 {
		t.Fatalf("Garbage() = %d after dropping 64 MiB uncollected, want ≥ 48 MiB", g)
	}
	if !Return(minFree) {
		t.Fatal("Return did nothing with 64 MiB of garbage")
	}
	if f, g := FreeBytes(), Garbage(); f+g > minFree {
		t.Errorf("after Return %d bytes free and mapped and %d garbage, want ≤ %d together", f, g, minFree)
	}
}

// TestReturnEmptiesPools: what a sync.Pool holds after a burst (a backup's
// encoders) survives one collection in the pool's victim cache; Return
// frees it too.
func TestReturnEmptiesPools(t *testing.T) {
	const minFree = 8 << 20
	runtime.GC()
	debug.FreeOSMemory()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var pool sync.Pool
	pool.Put(make([]byte, 32<<20))
	garbage(32 << 20)
	if !Return(minFree) {
		t.Fatal("Return did nothing with 32 MiB of garbage")
	}
	if live := read("/gc/heap/live:bytes"); live > 16<<20 {
		t.Errorf("after Return %d bytes live, want ≤ 16 MiB: the pool's 32 MiB buffer survived", live)
	}
	runtime.KeepAlive(&pool)
}

// TestTickAfterBurst: a burst whose own collections freed its garbage
// leaves what it pooled, neither free nor garbage; Run's tick still acts,
// because the burst allocated more than MinFree since the last tick, and
// frees the pool's buffer. A quiet tick after it does nothing.
func TestTickAfterBurst(t *testing.T) {
	const minFree = 8 << 20
	runtime.GC()
	debug.FreeOSMemory()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	r := newReturner(minFree)
	var pool sync.Pool
	pool.Put(make([]byte, 32<<20))
	runtime.GC() // the burst's own collection: the buffer to the victim cache
	if f, g := FreeBytes(), Garbage(); f+g > minFree {
		t.Fatalf("%d bytes free and %d garbage before the tick, want ≤ %d together: the test needs a collected burst", f, g, minFree)
	}
	if Return(minFree) {
		t.Fatal("Return acted on a collected heap; the test would not tell tick from it")
	}
	if !r.tick() {
		t.Fatal("tick did nothing after a 32 MiB burst")
	}
	if live := read("/gc/heap/live:bytes"); live > 16<<20 {
		t.Errorf("after the tick %d bytes live, want ≤ 16 MiB: the pool's 32 MiB buffer survived", live)
	}
	if r.tick() {
		t.Error("a tick acted with nothing allocated since the last one")
	}
	runtime.KeepAlive(&pool)
}
