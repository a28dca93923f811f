package main

import (
	"math"
	"slices"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method: the smallest value such that at least p% of the
// values are ≤ it. It returns 0 for no values and does not modify ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// summary is the distribution of one kind of latency.
type summary struct {
	N        int
	Errors   int
	P50, P99 time.Duration
	Max      time.Duration
}

func summarize(ds []time.Duration, errors int) summary {
	s := summary{N: len(ds), Errors: errors, P50: percentile(ds, 50), P99: percentile(ds, 99)}
	if len(ds) > 0 {
		s.Max = slices.Max(ds)
	}
	return s
}

// recorder collects latencies from many goroutines.
type recorder struct {
	mu     sync.Mutex
	ds     []time.Duration
	errors int
	first  error
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		if r.first == nil {
			r.first = err
		}
		return
	}
	r.ds = append(r.ds, d)
}

func (r *recorder) summary() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarize(r.ds, r.errors)
}

// firstErr returns the first error recorded, if any.
func (r *recorder) firstErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}
