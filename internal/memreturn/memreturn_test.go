package memreturn

import (
	"context"
	"runtime"
	"testing"
	"time"
)

var sink [][]byte

// burst allocates and drops about n bytes of heap.
func burst(n int) {
	for range n >> 20 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page
		}
		sink = append(sink, b)
	}
	sink = nil
	runtime.GC()
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
