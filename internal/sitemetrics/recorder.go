package sitemetrics

import (
	"strings"
	"sync"
	"time"
)

// Observation is one answered request as a Recorder counts it.
type Observation struct {
	Status int
	// Cache is the page cache's verdict (HIT, MISS, BYPASS, STALE or
	// empty); HIT and STALE count as hits, MISS as a miss.
	Cache string
	// Duration is the request's time (zero: not timed), PHP its wait
	// for PHP (zero: PHP was not asked).
	Duration, PHP time.Duration
	WAFBlocked    bool
}

// Recorder is the edge's side: it counts requests per site until Take
// hands the counts to a report. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	counts map[string]*Delta
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{counts: map[string]*Delta{}} }

// Observe counts one request of site (requests for no site are not
// counted).
func (r *Recorder) Observe(site string, o Observation) {
	if site == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.counts[site]
	if d == nil {
		d = &Delta{}
		r.counts[site] = d
	}
	d.Requests++
	switch {
	case strings.EqualFold(o.Cache, "hit"), strings.EqualFold(o.Cache, "stale"):
		d.CacheHits++
	case strings.EqualFold(o.Cache, "miss"):
		d.CacheMisses++
	}
	if o.Status >= 500 && o.Status <= 599 {
		d.Errors5xx++
	}
	if o.WAFBlocked {
		d.WAFBlocks++
	}
	if o.PHP > 0 {
		d.PHPRequests++
		d.PHPMicros += o.PHP.Microseconds()
	}
	if o.Duration > 0 {
		if d.Duration == nil {
			d.Duration = make([]int64, NumBuckets)
		}
		d.Duration[bucketOf(o.Duration.Seconds())]++
	}
}

// bucketOf returns the bucket of a duration in seconds (upper bounds
// inclusive, as Prometheus's).
func bucketOf(sec float64) int {
	for i, b := range DurationBounds {
		if sec <= b {
			return i
		}
	}
	return len(DurationBounds)
}

// Take returns the counts since the last Take and starts afresh.
func (r *Recorder) Take() map[string]Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Delta, len(r.counts))
	for site, d := range r.counts {
		out[site] = *d
	}
	r.counts = map[string]*Delta{}
	return out
}

// Return adds back counts that Take handed out but could not be reported,
// for the next report.
func (r *Recorder) Return(counts map[string]Delta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for site, d := range counts {
		cur := r.counts[site]
		if cur == nil {
			cur = &Delta{}
			r.counts[site] = cur
		}
		cur.add(&d)
	}
}
