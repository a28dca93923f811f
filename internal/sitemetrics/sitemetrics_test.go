package sitemetrics

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC)

// buckets returns Duration counts with n[i] in bucket i.
func buckets(n map[int]int64) []int64 {
	b := make([]int64, NumBuckets)
	for i, v := range n {
		b[i] = v
	}
	return b
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name    string
		q       float64
		buckets []int64
		want    float64 // seconds
	}{
		{"empty", 0.5, make([]int64, NumBuckets), 0},
		{"wrong length", 0.5, []int64{1, 2}, 0},
		// 10 in (0, 1 ms]: the median is half way through it.
		{"first bucket from zero", 0.5, buckets(map[int]int64{0: 10}), 0.0005},
		// 10 in (5 ms, 10 ms]: rank 5 of 10 → 7.5 ms.
		{"interpolated", 0.5, buckets(map[int]int64{3: 10}), 0.0075},
		// 90 in (1, 2.5 ms], 10 in (250, 500 ms]: p50 in the first,
		// p99 at rank 99 = 9 of 10 into (0.25, 0.5].
		{"p50 of two", 0.5, buckets(map[int]int64{1: 90, 8: 10}), 0.001 + 0.0015*50/90},
		{"p99 of two", 0.99, buckets(map[int]int64{1: 90, 8: 10}), 0.25 + 0.25*9/10},
		{"rank on a boundary stays in the lower bucket", 0.5, buckets(map[int]int64{0: 5, 5: 5}), 0.001},
		{"+Inf bucket answers the largest bound", 0.99, buckets(map[int]int64{14: 3}), 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quantile(tt.q, tt.buckets); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestRecorderBucketsAndClasses(t *testing.T) {
	r := NewRecorder()
	obs := []struct {
		site string
		o    Observation
	}{
		{"a.example", Observation{Status: 200, Cache: "HIT", Duration: 500 * time.Microsecond}},
		{"a.example", Observation{Status: 200, Cache: "STALE", Duration: time.Millisecond}}, // bound inclusive: bucket 0
		{"a.example", Observation{Status: 200, Cache: "MISS", Duration: 40 * time.Millisecond, PHP: 30 * time.Millisecond}},
		{"a.example", Observation{Status: 502, Cache: "BYPASS", Duration: time.Minute, PHP: 10 * time.Millisecond}},
		{"a.example", Observation{Status: 403, WAFBlocked: true}},
		{"", Observation{Status: 404}}, // an unknown host: nobody's
	}
	for _, o := range obs {
		r.Observe(o.site, o.o)
	}
	got := r.Take()
	want := Delta{Requests: 5, CacheHits: 2, CacheMisses: 1, Errors5xx: 1, WAFBlocks: 1, PHPRequests: 2, PHPMicros: 40_000,
		Duration: buckets(map[int]int64{0: 2, 5: 1, 14: 1})}
	if len(got) != 1 {
		t.Fatalf("Take = %v, want one site", got)
	}
	assertDelta(t, got["a.example"], want)
	if again := r.Take(); len(again) != 0 {
		t.Errorf("second Take = %v, want nothing", again)
	}
	// A failed report gives its counts back; they add to new ones.
	r.Return(got)
	r.Observe("a.example", Observation{Status: 200, Duration: time.Millisecond})
	want.Requests++
	want.Duration[0]++
	assertDelta(t, r.Take()["a.example"], want)
}

func assertDelta(t *testing.T, got, want Delta) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delta = %+v, want %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		d    Delta
		ok   bool
	}{
		{"zero", Delta{}, true},
		{"full", Delta{Requests: 3, CacheHits: 1, Duration: buckets(map[int]int64{2: 3}), PHPRequests: 1, PHPMicros: 5}, true},
		{"negative", Delta{Requests: -1}, false},
		{"too many", Delta{WAFBlocks: MaxCount + 1}, false},
		{"short histogram", Delta{Requests: 1, Duration: []int64{1}}, false},
		{"negative bucket", Delta{Requests: 1, Duration: buckets(map[int]int64{3: -1})}, false},
		{"negative php time", Delta{PHPMicros: -5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.d.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string]Range{"": Range1h, "1h": Range1h, "6h": Range6h, "24h": Range24h, "7d": Range7d} {
		if got, err := ParseRange(in); err != nil || got != want {
			t.Errorf("ParseRange(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"2h", "1d", "7D", "-1h"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

func TestQueryStepsAndWindow(t *testing.T) {
	clk := &fakeClock{t: t0}
	s := New(Config{Clock: clk.now})
	d := Delta{Requests: 4, CacheHits: 3, CacheMisses: 1, Errors5xx: 1, Bytes: 1000,
		Duration: buckets(map[int]int64{3: 4}), PHPRequests: 1, PHPMicros: 20_000}
	s.Record(map[string]Delta{"a.example": d}) // 10:00:30
	clk.advance(20 * time.Second)
	s.Record(map[string]Delta{"a.example": d}) // 10:00:50, same minute
	clk.advance(2 * time.Minute)
	s.Record(map[string]Delta{"a.example": {Requests: 1, CacheMisses: 1, Bytes: 10}}) // 10:02:50

	tests := []struct {
		rng        Range
		step       int
		points     int
		first      time.Time
		requests   int64 // totals
		nonZeroPts int
	}{
		{Range1h, 60, 60, time.Date(2026, 12, 5, 9, 3, 0, 0, time.UTC), 9, 2},
		{Range6h, 60, 360, time.Date(2026, 12, 5, 4, 3, 0, 0, time.UTC), 9, 2},
		{Range24h, 300, 288, time.Date(2026, 12, 4, 10, 5, 0, 0, time.UTC), 9, 1},
		{Range7d, 3600, 168, time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC), 9, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.rng), func(t *testing.T) {
			sr := s.Query("a.example", tt.rng)
			if sr.StepSeconds != tt.step || len(sr.Points) != tt.points || sr.Range != tt.rng || sr.Site != "a.example" {
				t.Fatalf("series step %d, %d points, range %q; want %d, %d, %q", sr.StepSeconds, len(sr.Points), sr.Range, tt.step, tt.points, tt.rng)
			}
			if !sr.Points[0].T.Equal(tt.first) {
				t.Errorf("first point at %s, want %s", sr.Points[0].T, tt.first)
			}
			for i := 1; i < len(sr.Points); i++ {
				if sr.Points[i].T.Sub(sr.Points[i-1].T) != time.Duration(tt.step)*time.Second {
					t.Fatalf("points %d and %d are not one step apart", i-1, i)
				}
			}
			n := 0
			for _, p := range sr.Points {
				if p.Requests > 0 {
					n++
				}
			}
			if n != tt.nonZeroPts || sr.Totals.Requests != tt.requests {
				t.Errorf("%d points with traffic, %d requests; want %d, %d", n, sr.Totals.Requests, tt.nonZeroPts, tt.requests)
			}
			if sr.Totals.CacheHitRatio == nil || *sr.Totals.CacheHitRatio != 6.0/9 {
				t.Errorf("hit ratio %v, want 6/9", sr.Totals.CacheHitRatio)
			}
			if sr.Totals.Bytes != 2010 || sr.Totals.Errors5xx != 2 {
				t.Errorf("totals %+v", sr.Totals)
			}
		})
	}

	// The 10:00 minute of the 1h range sums both reports.
	sr := s.Query("a.example", Range1h)
	p := sr.Points[len(sr.Points)-3]
	want := Point{T: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Requests: 8, CacheHits: 6, CacheMisses: 2, Errors5xx: 2,
		P50ms: 7.5, P99ms: 9.95, PHPms: 20, Bytes: 2000}
	if p != want {
		t.Errorf("10:00 point = %+v, want %+v", p, want)
	}
	if last := sr.Points[len(sr.Points)-1]; last.Requests != 1 || last.P50ms != 0 || last.PHPms != 0 {
		t.Errorf("last point = %+v, want 1 request without timings", last)
	}

	// An unknown site has zero points, no ratio.
	if u := s.Query("nobody.example", Range1h); len(u.Points) != 60 || u.Totals.Requests != 0 || u.Totals.CacheHitRatio != nil {
		t.Errorf("unknown site: %+v", u.Totals)
	}
}

func TestWindowForgetsOldSteps(t *testing.T) {
	clk := &fakeClock{t: t0}
	s := New(Config{Clock: clk.now})
	s.Record(map[string]Delta{"a.example": {Requests: 5, CacheHits: 5}})
	tests := []struct {
		after      time.Duration
		rng        Range
		wantInView int64
	}{
		{59 * time.Minute, Range1h, 5},
		{61 * time.Minute, Range1h, 0},
		{61 * time.Minute, Range6h, 5},
		{6*time.Hour + time.Minute, Range6h, 0},
		{6*time.Hour + time.Minute, Range24h, 5},
		{24*time.Hour + 5*time.Minute, Range24h, 0},
		{24*time.Hour + 5*time.Minute, Range7d, 5},
		{7*24*time.Hour + time.Hour, Range7d, 0},
	}
	for _, tt := range tests {
		clk.mu.Lock()
		clk.t = t0.Add(tt.after)
		clk.mu.Unlock()
		if got := s.Query("a.example", tt.rng).Totals.Requests; got != tt.wantInView {
			t.Errorf("%s later, range %s: %d requests, want %d", tt.after, tt.rng, got, tt.wantInView)
		}
	}
	// A ring slot reused by a later step starts from zero: one week
	// later the same hour slot holds only the new count.
	s.Record(map[string]Delta{"a.example": {Requests: 1}})
	if got := s.Query("a.example", Range7d).Totals.Requests; got != 1 {
		t.Errorf("after a week: %d requests in 7d, want 1", got)
	}
}

func TestSummary(t *testing.T) {
	clk := &fakeClock{t: t0}
	s := New(Config{Clock: clk.now})
	if _, _, ok := s.Summary("a.example"); ok {
		t.Fatal("summary of a site without history")
	}
	s.Record(map[string]Delta{"a.example": {Requests: 10, CacheHits: 3, CacheMisses: 1}})
	clk.advance(23 * time.Hour)
	s.Record(map[string]Delta{"a.example": {Requests: 2, CacheHits: 1}})
	req, ratio, ok := s.Summary("a.example")
	if !ok || req != 12 || ratio == nil || *ratio != 0.8 {
		t.Errorf("summary = %d, %v, %v; want 12, 0.8", req, ratio, ok)
	}
	clk.advance(2 * time.Hour) // the first report is now older than 24 h
	if req, ratio, _ := s.Summary("a.example"); req != 2 || *ratio != 1 {
		t.Errorf("summary = %d, %v; want 2, 1", req, *ratio)
	}
	// Only requests without cache hits or misses: no ratio.
	s.Record(map[string]Delta{"b.example": {Requests: 2}})
	if req, ratio, ok := s.Summary("b.example"); !ok || req != 2 || ratio != nil {
		t.Errorf("summary = %d, %v, %v; want 2, nil", req, ratio, ok)
	}
}

func TestBoundsAndEviction(t *testing.T) {
	if got := unsafe.Sizeof(slot{}); got != SlotBytes {
		t.Errorf("a slot is %d bytes; the package doc says %d", got, SlotBytes)
	}
	clk := &fakeClock{t: t0}
	s := New(Config{Clock: clk.now, MaxSites: 3})
	s.Record(map[string]Delta{"a.example": {Requests: 1}})
	clk.advance(time.Second)
	s.Record(map[string]Delta{"b.example": {Requests: 1}, "quiet.example": {}}) // an empty delta makes no history
	clk.advance(time.Second)
	s.Record(map[string]Delta{"c.example": {Requests: 1}})
	clk.advance(time.Second)
	s.Record(map[string]Delta{"a.example": {Requests: 1}}) // a is now the most recent; b the least
	clk.advance(time.Second)
	s.Record(map[string]Delta{"d.example": {Requests: 1}})
	if s.Len() != 3 {
		t.Fatalf("%d sites, want 3", s.Len())
	}
	for site, want := range map[string]bool{"a.example": true, "b.example": false, "c.example": true, "d.example": true, "quiet.example": false} {
		if _, _, ok := s.Summary(site); ok != want {
			t.Errorf("%s kept: %v, want %v", site, ok, want)
		}
	}
	s.Forget("a.example")
	if _, _, ok := s.Summary("a.example"); ok || s.Len() != 2 {
		t.Errorf("a.example not forgotten")
	}
	// Counts saturate rather than wrap.
	for range 5 {
		s.Record(map[string]Delta{"c.example": {Requests: MaxCount}})
	}
	if got := s.Query("c.example", Range1h).Totals.Requests; got != math.MaxUint32 {
		t.Errorf("saturated count = %d, want %d", got, uint32(math.MaxUint32))
	}
}

// TestIdleSiteMemory: a site with traffic in a few steps holds only the
// chunks of its rings those steps fall in, far below the 92 KB of whole
// rings, and the figures stay right when steps land in other chunks.
func TestIdleSiteMemory(t *testing.T) {
	const sites = 500
	clk := &fakeClock{t: t0}
	s := New(Config{Clock: clk.now})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range sites {
		s.Record(map[string]Delta{fmt.Sprintf("site-%d.example", i): {Requests: 3, Bytes: 100, Duration: buckets(map[int]int64{2: 3})}})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / sites
	// Three chunks (one per ring) of ChunkSlots slots, the chunk tables and
	// the map and list entries: about 8.5 KB; whole rings were 92 KB.
	if limit := int64(3*ChunkSlots*SlotBytes + 2048); per > limit {
		t.Errorf("an idle site with one report holds %d bytes of heap, want ≤ %d", per, limit)
	}
	runtime.KeepAlive(s)

	h := s.sites["site-0.example"]
	for i, want := range []int{1, 1, 1} {
		if got := h.rings[i].chunks(); got != want {
			t.Errorf("ring %d: %d chunks after one report, want %d", i, got, want)
		}
	}
	// Traffic 30 minutes later: the 1-minute ring's next chunk, the others'
	// same (5-minute and hourly steps 0.5 h apart stay within 24 slots).
	clk.advance(30 * time.Minute)
	s.Record(map[string]Delta{"site-0.example": {Requests: 2, Duration: buckets(map[int]int64{2: 2})}})
	for i, want := range []int{2, 1, 1} {
		if got := h.rings[i].chunks(); got != want {
			t.Errorf("ring %d: %d chunks after a second report 30 min later, want %d", i, got, want)
		}
	}
	q := s.Query("site-0.example", Range1h)
	if q.Totals.Requests != 5 {
		t.Errorf("1h total requests = %d, want 5", q.Totals.Requests)
	}
	if n, _, ok := s.Summary("site-0.example"); !ok || n != 5 {
		t.Errorf("summary = %d, %v; want 5 requests", n, ok)
	}
	if q := s.Query("never.example", Range7d); q.Totals.Requests != 0 || len(q.Points) != 168 {
		t.Errorf("site without history: %d requests, %d points", q.Totals.Requests, len(q.Points))
	}
}
