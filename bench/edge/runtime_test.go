package main

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	h := &metrics.Float64Histogram{Buckets: []float64{0, 0.001, 0.01, math.Inf(1)}, Counts: []uint64{90, 9, 1}}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, time.Millisecond},
		{0.9, 10 * time.Millisecond},
		{0.99, 10 * time.Millisecond}, // the last bucket is open: its lower bound
		{1, 10 * time.Millisecond},
	} {
		if got := quantile(h, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(&metrics.Float64Histogram{Buckets: []float64{0, 1}, Counts: []uint64{0}}, 0.99); got != 0 {
		t.Errorf("empty: %v", got)
	}
	old := runtimeSample{gcCycles: 3, allocBytes: 100, sched: &metrics.Float64Histogram{Buckets: h.Buckets, Counts: []uint64{1, 1, 1}}}
	now := runtimeSample{gcCycles: 5, allocBytes: 300, sched: &metrics.Float64Histogram{Buckets: h.Buckets, Counts: []uint64{1, 5, 1}}}
	d := now.since(old)
	if d.gcCycles != 2 || d.allocBytes != 200 || quantile(d.sched, 0.99) != 10*time.Millisecond { // all 4 in [1 ms, 10 ms)
		t.Errorf("since: %+v, sched p99 %v", d, quantile(d.sched, 0.99))
	}
}
