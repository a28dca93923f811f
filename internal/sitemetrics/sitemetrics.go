// Package sitemetrics keeps each site's recent traffic as a time series for
// the portal's charts: requests, page-cache hits and misses, 5xx answers,
// WAF blocks, response bytes, the request-duration histogram (for p50 and
// p99) and the time spent waiting for PHP.
//
// Edges count per site with a Recorder and send the counts since their
// last report (Delta) with their bandwidth report (POST /v1/edge/usage);
// the control plane adds them to a Store at the time they arrive (edges
// report every 10 s, so a count lands at most that late in its minute).
// Several edges' counts add up.
//
// # Retention and memory
//
// A site's history is three rings of fixed size, written together:
// 1-minute steps for 6 hours (360 slots, the 1h and 6h ranges), 5-minute
// steps for 24 hours (288 slots, the 24h range and the sites list's
// summary) and 1-hour steps for 7 days (168 slots, the 7d range). A slot
// is SlotBytes (112) bytes, and a ring is allocated in chunks of
// ChunkSlots slots as its steps are written: a site with traffic in one
// minute costs three chunks (about 8 KB), a site with traffic in every
// minute for a week all 816 slots (about 92 KB), and a Store at most
// MaxSites times that: with the default DefaultMaxSites (2000) about
// 185 MB. When full, the site reported least recently is forgotten to make
// room. Sites without traffic cost nothing. (Whole rings made every idle
// site that had served a few requests cost the full 92 KB: 9 % of the
// 1 MB per idle site density goal, for no data.)
//
// # In memory only
//
// The Store lives in the control plane's memory: a restart loses every
// site's history, and with several control-plane replicas each one holds
// the reports its own edges sent it. Durable storage is for later (the
// observability issue); Store's methods are the whole interface the API
// uses (api.SiteMetrics), so it can be replaced.
package sitemetrics

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// DurationBounds are the upper bounds, in seconds, of the request-duration
// histogram's buckets (the edge's aipress_edge_request_duration_seconds);
// a Delta's Duration has one more bucket, for slower requests (+Inf).
var DurationBounds = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NumBuckets is the length of a Delta's Duration.
const NumBuckets = len(DurationBounds) + 1

// MaxCount bounds every count of one Delta (an edge reports every few
// seconds; no real count is near it).
const MaxCount = 1_000_000_000

// Delta is what one edge counted for one site since its last report: the
// wire format of the report's "sites" (bytes travel in the report's
// "bytes", the bandwidth counts, and are set by the control plane).
type Delta struct {
	Requests    int64 `json:"requests,omitempty"`
	CacheHits   int64 `json:"cache_hits,omitempty"` // served from the page cache (hit or stale)
	CacheMisses int64 `json:"cache_misses,omitempty"`
	Errors5xx   int64 `json:"errors_5xx,omitempty"`
	WAFBlocks   int64 `json:"waf_blocks,omitempty"`
	// Duration counts requests per bucket of DurationBounds (not
	// cumulative), the last bucket for those slower than the last bound;
	// empty when no request was timed.
	Duration []int64 `json:"duration,omitempty"`
	// PHPRequests reached PHP, which they waited for PHPMicros in all.
	PHPRequests int64 `json:"php_requests,omitempty"`
	PHPMicros   int64 `json:"php_us,omitempty"`
	// Bytes are the response body bytes (not on the wire: the report's
	// bandwidth counts carry them).
	Bytes int64 `json:"-"`
}

// Validate checks that d's counts are within bounds.
func (d *Delta) Validate() error {
	for _, c := range []struct {
		name string
		v    int64
	}{{"requests", d.Requests}, {"cache_hits", d.CacheHits}, {"cache_misses", d.CacheMisses},
		{"errors_5xx", d.Errors5xx}, {"waf_blocks", d.WAFBlocks}, {"php_requests", d.PHPRequests}} {
		if c.v < 0 || c.v > MaxCount {
			return fmt.Errorf("%s is %d; want 0 to %d", c.name, c.v, MaxCount)
		}
	}
	if d.PHPMicros < 0 || d.PHPMicros > MaxCount*int64(time.Hour/time.Microsecond) {
		return fmt.Errorf("php_us is %d; want 0 to one hour per request", d.PHPMicros)
	}
	if len(d.Duration) != 0 && len(d.Duration) != NumBuckets {
		return fmt.Errorf("duration has %d buckets; want %d (or none)", len(d.Duration), NumBuckets)
	}
	for i, n := range d.Duration {
		if n < 0 || n > MaxCount {
			return fmt.Errorf("duration bucket %d is %d; want 0 to %d", i, n, MaxCount)
		}
	}
	return nil
}

// add adds o to d.
func (d *Delta) add(o *Delta) {
	d.Requests += o.Requests
	d.CacheHits += o.CacheHits
	d.CacheMisses += o.CacheMisses
	d.Errors5xx += o.Errors5xx
	d.WAFBlocks += o.WAFBlocks
	d.PHPRequests += o.PHPRequests
	d.PHPMicros += o.PHPMicros
	d.Bytes += o.Bytes
	if len(o.Duration) > 0 {
		if len(d.Duration) == 0 {
			d.Duration = make([]int64, NumBuckets)
		}
		for i, n := range o.Duration {
			d.Duration[i] += n
		}
	}
}

// Range is a chart's time range.
type Range string

// Ranges.
const (
	Range1h  Range = "1h"
	Range6h  Range = "6h"
	Range24h Range = "24h"
	Range7d  Range = "7d"
)

// ErrRange is returned (wrapped) by ParseRange.
var ErrRange = errors.New("invalid range")

// ParseRange parses "1h", "6h", "24h" or "7d" ("" is 1h).
func ParseRange(s string) (Range, error) {
	switch r := Range(s); r {
	case "":
		return Range1h, nil
	case Range1h, Range6h, Range24h, Range7d:
		return r, nil
	}
	return "", fmt.Errorf("%w %q: want 1h, 6h, 24h or 7d", ErrRange, s)
}

// tier is one ring of slots.
type tier struct {
	step  time.Duration
	slots int
}

// tiers are the rings of every site; ranges read one each (rangeTier).
var tiers = [...]tier{{time.Minute, 360}, {5 * time.Minute, 288}, {time.Hour, 168}}

var rangeTier = map[Range]struct {
	tier  int
	steps int
}{Range1h: {0, 60}, Range6h: {0, 360}, Range24h: {1, 288}, Range7d: {2, 168}}

// SlotBytes is the size of one slot (one step of one site).
const SlotBytes = 112

// slot holds one step's counts; step is the step's number (Unix time
// divided by the tier's step), 0 for a slot never written.
type slot struct {
	step                                     int64
	requests, hits, misses, errors, waf, php uint32
	bytes, phpMicros                         uint64
	dur                                      [NumBuckets]uint32
}

func sat32(a uint32, b int64) uint32 {
	if s := int64(a) + b; s < math.MaxUint32 {
		return uint32(s)
	}
	return math.MaxUint32
}

func (s *slot) add(d *Delta) {
	s.requests = sat32(s.requests, d.Requests)
	s.hits = sat32(s.hits, d.CacheHits)
	s.misses = sat32(s.misses, d.CacheMisses)
	s.errors = sat32(s.errors, d.Errors5xx)
	s.waf = sat32(s.waf, d.WAFBlocks)
	s.php = sat32(s.php, d.PHPRequests)
	s.bytes += uint64(max(d.Bytes, 0))
	s.phpMicros += uint64(max(d.PHPMicros, 0))
	for i, n := range d.Duration {
		s.dur[i] = sat32(s.dur[i], n)
	}
}

// ChunkSlots is how many slots of a ring are allocated at once.
const ChunkSlots = 24

// ring is one tier's slots, in chunks allocated on first write.
type ring []*[ChunkSlots]slot

func newRing(slots int) ring { return make(ring, (slots+ChunkSlots-1)/ChunkSlots) }

// at returns slot i, nil when its chunk was never written.
func (r ring) at(i int64) *slot {
	if c := r[i/ChunkSlots]; c != nil {
		return &c[i%ChunkSlots]
	}
	return nil
}

// write returns slot i, allocating its chunk.
func (r ring) write(i int64) *slot {
	c := r[i/ChunkSlots]
	if c == nil {
		c = new([ChunkSlots]slot)
		r[i/ChunkSlots] = c
	}
	return &c[i%ChunkSlots]
}

// chunks counts the allocated chunks.
func (r ring) chunks() int {
	n := 0
	for _, c := range r {
		if c != nil {
			n++
		}
	}
	return n
}

// history is one site's rings.
type history struct {
	site  string
	rings [len(tiers)]ring
	elem  *list.Element // in Store.lru
}

// DefaultMaxSites is the default Config.MaxSites.
const DefaultMaxSites = 2000

// Config configures a Store.
type Config struct {
	// Clock dates reports and ends ranges (default time.Now).
	Clock func() time.Time
	// MaxSites bounds the sites with a history (default
	// DefaultMaxSites); each costs at most about 92 KB.
	MaxSites int
}

// Store holds the sites' histories. It is safe for concurrent use.
type Store struct {
	cfg   Config
	mu    sync.Mutex
	sites map[string]*history
	lru   *list.List // of *history, most recently reported first
}

// New returns an empty Store.
func New(cfg Config) *Store {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxSites <= 0 {
		cfg.MaxSites = DefaultMaxSites
	}
	return &Store{cfg: cfg, sites: map[string]*history{}, lru: list.New()}
}

// Record adds each site's counts at the current time. Deltas must be
// valid (Delta.Validate); empty ones are skipped.
func (s *Store) Record(deltas map[string]Delta) {
	now := s.cfg.Clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for site, d := range deltas {
		if d.Requests == 0 && d.Bytes == 0 && d.WAFBlocks == 0 {
			continue
		}
		h := s.sites[site]
		if h == nil {
			h = s.admit(site)
		} else {
			s.lru.MoveToFront(h.elem)
		}
		for i, t := range tiers {
			n := stepOf(now, t.step)
			sl := h.rings[i].write(n % int64(t.slots))
			if sl.step != n {
				*sl = slot{step: n}
			}
			sl.add(&d)
		}
	}
}

// admit makes a history for site, forgetting the least recently reported
// site when the Store is full.
func (s *Store) admit(site string) *history {
	if len(s.sites) >= s.cfg.MaxSites {
		old := s.lru.Remove(s.lru.Back()).(*history)
		delete(s.sites, old.site)
	}
	h := &history{site: site}
	for i, t := range tiers {
		h.rings[i] = newRing(t.slots)
	}
	h.elem = s.lru.PushFront(h)
	s.sites[site] = h
	return h
}

// Forget drops a site's history (the site was deleted).
func (s *Store) Forget(site string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.sites[site]; h != nil {
		s.lru.Remove(h.elem)
		delete(s.sites, site)
	}
}

// Len returns how many sites have a history.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sites)
}

func stepOf(t time.Time, step time.Duration) int64 {
	return t.Unix() / int64(step/time.Second)
}

// Point is one step of a Series.
type Point struct {
	T           time.Time `json:"t"` // the step's start (UTC)
	Requests    int64     `json:"requests"`
	CacheHits   int64     `json:"cache_hits"`
	CacheMisses int64     `json:"cache_misses"`
	Errors5xx   int64     `json:"errors_5xx"`
	// P50ms and P99ms are request-duration quantiles in milliseconds,
	// PHPms the mean wait for PHP of the requests that reached it (0
	// without such requests).
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	PHPms     float64 `json:"php_ms"`
	WAFBlocks int64   `json:"waf_blocks"`
	Bytes     int64   `json:"bytes"`
}

// Totals sum a Series' points; CacheHitRatio is hits / (hits + misses),
// absent without either.
type Totals struct {
	Requests      int64    `json:"requests"`
	CacheHits     int64    `json:"cache_hits"`
	CacheMisses   int64    `json:"cache_misses"`
	Errors5xx     int64    `json:"errors_5xx"`
	WAFBlocks     int64    `json:"waf_blocks"`
	Bytes         int64    `json:"bytes"`
	CacheHitRatio *float64 `json:"cache_hit_ratio,omitempty"`
	P50ms         float64  `json:"p50_ms"`
	P99ms         float64  `json:"p99_ms"`
	PHPms         float64  `json:"php_ms"`
}

// Series is a site's traffic over a range: one point per step, oldest
// first, zero for steps without traffic; the last step is the current
// (unfinished) one.
type Series struct {
	Site        string  `json:"site"`
	Range       Range   `json:"range"`
	StepSeconds int     `json:"step_seconds"`
	Points      []Point `json:"points"`
	Totals      Totals  `json:"totals"`
}

// Query returns site's series over r (a valid Range); a site without a
// history gets zero points.
func (s *Store) Query(site string, r Range) *Series {
	rt, ok := rangeTier[r]
	if !ok {
		rt, r = rangeTier[Range1h], Range1h
	}
	t := tiers[rt.tier]
	now := s.cfg.Clock()
	last := stepOf(now, t.step)
	out := &Series{Site: site, Range: r, StepSeconds: int(t.step / time.Second), Points: make([]Point, 0, rt.steps)}
	var total Delta
	s.mu.Lock()
	h := s.sites[site]
	for n := last - int64(rt.steps) + 1; n <= last; n++ {
		var d Delta
		if h != nil {
			if sl := h.rings[rt.tier].at(n % int64(t.slots)); sl != nil && sl.step == n {
				d = sl.delta()
			}
		}
		p := Point{T: time.Unix(n*int64(t.step/time.Second), 0).UTC()}
		fill(&p, &d)
		out.Points = append(out.Points, p)
		total.add(&d)
	}
	s.mu.Unlock()
	var p Point
	fill(&p, &total)
	out.Totals = Totals{Requests: p.Requests, CacheHits: p.CacheHits, CacheMisses: p.CacheMisses, Errors5xx: p.Errors5xx,
		WAFBlocks: p.WAFBlocks, Bytes: p.Bytes, P50ms: p.P50ms, P99ms: p.P99ms, PHPms: p.PHPms,
		CacheHitRatio: hitRatio(total.CacheHits, total.CacheMisses)}
	return out
}

// Summary is a site's last 24 hours, for the sites list: its requests and
// cache hit ratio (nil without hits or misses). ok is false for a site
// without a history.
func (s *Store) Summary(site string) (requests int64, cacheHitRatio *float64, ok bool) {
	t := tiers[1]
	last := stepOf(s.cfg.Clock(), t.step)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.sites[site]
	if h == nil {
		return 0, nil, false
	}
	var hits, misses int64
	for n := last - int64(t.slots) + 1; n <= last; n++ {
		if sl := h.rings[1].at(n % int64(t.slots)); sl != nil && sl.step == n {
			requests += int64(sl.requests)
			hits += int64(sl.hits)
			misses += int64(sl.misses)
		}
	}
	return requests, hitRatio(hits, misses), true
}

func hitRatio(hits, misses int64) *float64 {
	if hits+misses == 0 {
		return nil
	}
	r := float64(hits) / float64(hits+misses)
	return &r
}

func (s *slot) delta() Delta {
	d := Delta{Requests: int64(s.requests), CacheHits: int64(s.hits), CacheMisses: int64(s.misses),
		Errors5xx: int64(s.errors), WAFBlocks: int64(s.waf), PHPRequests: int64(s.php),
		PHPMicros: int64(s.phpMicros), Bytes: int64(s.bytes)}
	for i, n := range s.dur {
		if n > 0 {
			if d.Duration == nil {
				d.Duration = make([]int64, NumBuckets)
			}
			d.Duration[i] = int64(n)
		}
	}
	return d
}

func fill(p *Point, d *Delta) {
	p.Requests, p.CacheHits, p.CacheMisses, p.Errors5xx = d.Requests, d.CacheHits, d.CacheMisses, d.Errors5xx
	p.WAFBlocks, p.Bytes = d.WAFBlocks, d.Bytes
	p.P50ms = round(Quantile(0.5, d.Duration) * 1000)
	p.P99ms = round(Quantile(0.99, d.Duration) * 1000)
	if d.PHPRequests > 0 {
		p.PHPms = round(float64(d.PHPMicros) / float64(d.PHPRequests) / 1000)
	}
}

// round keeps three decimals (microseconds of milliseconds).
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// Quantile estimates the q-quantile (0..1), in seconds, of the durations
// counted per bucket of DurationBounds (not cumulative; the last bucket
// is +Inf), as Prometheus's histogram_quantile does: linear interpolation
// inside the bucket the rank falls in, the first bucket starting at 0,
// and the largest finite bound for a rank in the +Inf bucket. 0 without
// observations.
func Quantile(q float64, buckets []int64) float64 {
	var total int64
	for _, n := range buckets {
		total += n
	}
	if total == 0 || len(buckets) != NumBuckets {
		return 0
	}
	rank := q * float64(total)
	var cum int64
	for i, n := range buckets {
		if n == 0 || float64(cum+n) < rank {
			cum += n
			continue
		}
		if i == len(DurationBounds) {
			return DurationBounds[len(DurationBounds)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = DurationBounds[i-1]
		}
		return lo + (DurationBounds[i]-lo)*(rank-float64(cum))/float64(n)
	}
	return DurationBounds[len(DurationBounds)-1]
}
