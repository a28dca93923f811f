package main

import (
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"time"
)

// runtimeSample is what the Go runtime says about latency it adds itself:
// how long runnable goroutines waited for a CPU (the scheduler), and the
// stop-the-world pauses of the collector, as cumulative histograms.
type runtimeSample struct {
	sched, pauses *metrics.Float64Histogram
	gcCycles      uint64
	allocBytes    uint64
	allocObjects  uint64
}

var runtimeMetrics = []string{"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds", "/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes", "/gc/heap/allocs:objects"}

func readRuntime() runtimeSample {
	s := make([]metrics.Sample, len(runtimeMetrics))
	for i, n := range runtimeMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	out := runtimeSample{}
	if s[0].Value.Kind() == metrics.KindFloat64Histogram {
		out.sched = copyHist(s[0].Value.Float64Histogram())
	}
	if s[1].Value.Kind() == metrics.KindFloat64Histogram {
		out.pauses = copyHist(s[1].Value.Float64Histogram())
	}
	if s[2].Value.Kind() == metrics.KindUint64 {
		out.gcCycles = s[2].Value.Uint64()
	}
	if s[3].Value.Kind() == metrics.KindUint64 {
		out.allocBytes = s[3].Value.Uint64()
	}
	if s[4].Value.Kind() == metrics.KindUint64 {
		out.allocObjects = s[4].Value.Uint64()
	}
	return out
}

func copyHist(h *metrics.Float64Histogram) *metrics.Float64Histogram {
	return &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: h.Buckets}
}

// since is s minus an earlier sample.
func (s runtimeSample) since(old runtimeSample) runtimeSample {
	d := runtimeSample{gcCycles: s.gcCycles - old.gcCycles, allocBytes: s.allocBytes - old.allocBytes,
		allocObjects: s.allocObjects - old.allocObjects}
	sub := func(a, b *metrics.Float64Histogram) *metrics.Float64Histogram {
		if a == nil || b == nil || len(a.Counts) != len(b.Counts) {
			return nil
		}
		h := copyHist(a)
		for i := range h.Counts {
			h.Counts[i] -= b.Counts[i]
		}
		return h
	}
	d.sched, d.pauses = sub(s.sched, old.sched), sub(s.pauses, old.pauses)
	return d
}

// quantile is the upper bound of the bucket holding quantile q of h.
func quantile(h *metrics.Float64Histogram, q float64) time.Duration {
	if h == nil {
		return 0
	}
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen > want || seen == total {
			b := h.Buckets[i+1]
			if math.IsInf(b, 1) {
				b = h.Buckets[i]
			}
			return time.Duration(b * float64(time.Second))
		}
	}
	return 0
}

// String is one line: scheduler latency p50/p99/max bucket, GC cycles and
// pauses, and allocations per request.
func (s runtimeSample) String(requests int64) string {
	if requests <= 0 {
		requests = 1
	}
	var pauses uint64
	if s.pauses != nil {
		for _, c := range s.pauses.Counts {
			pauses += c
		}
	}
	return fmt.Sprintf("GOMAXPROCS %d  sched latency p50 %v p99 %v p99.9 %v max %v  GC %d cycles (%.1f per 10k req), %d pauses p99 %v max %v  alloc %.0f B %.1f objects per req",
		runtime.GOMAXPROCS(0), quantile(s.sched, 0.5), quantile(s.sched, 0.99), quantile(s.sched, 0.999), quantile(s.sched, 1),
		s.gcCycles, float64(s.gcCycles)*1e4/float64(requests), pauses, quantile(s.pauses, 0.99), quantile(s.pauses, 1),
		float64(s.allocBytes)/float64(requests), float64(s.allocObjects)/float64(requests))
}
