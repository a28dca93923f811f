package storetest

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

func listUsage(t *testing.T, s store.Store, opts store.UsageListOptions) []store.UsageRecord {
	t.Helper()
	got, err := s.ListUsage(t.Context(), opts)
	if err != nil {
		t.Fatalf("ListUsage(%+v): %v", opts, err)
	}
	return got
}

func i64(n int64) *int64 { return &n }

// testUsage: hourly records add up, a retried report counts once, gauges
// take the last measure and average in rollups, rollups group by day and
// month, filters and pages select, bad input is refused whole, concurrent
// reports lose nothing, and usage takes no revision.
func testUsage(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	jan := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := listUsage(t, s, store.UsageListOptions{From: dec, To: jan}); got == nil || len(got) != 0 {
		t.Errorf("empty store: %v, want an empty list", got)
	}
	rev := func() int64 { return revision(t, s) }
	before := rev()
	h10 := time.Date(2026, 12, 6, 10, 15, 0, 0, time.UTC)
	h11 := h10.Add(time.Hour)
	add := func(key store.UsageKey, at time.Time, d map[string]store.UsageDelta) bool {
		t.Helper()
		ok, err := s.AddUsage(ctx, key, at, d)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	edge := func(id string) store.UsageKey { return store.UsageKey{Source: "edge-1", ID: id} }
	if !add(edge("r1"), h10, map[string]store.UsageDelta{
		"a.example": {Shard: "s1", Requests: 10, BytesOut: 1000, CacheHits: 4, PHPMicros: 600_000},
		"b.example": {Shard: "s1", Requests: 1, BytesOut: 10},
	}) {
		t.Error("first report: not applied")
	}
	// The same report again (the edge did not hear the answer): nothing.
	if add(edge("r1"), h10.Add(20*time.Minute), map[string]store.UsageDelta{"a.example": {Shard: "s1", Requests: 10, BytesOut: 1000}}) {
		t.Error("retried report: applied twice")
	}
	// Another source may use the same ID.
	if !add(store.UsageKey{Source: "edge-2", ID: "r1"}, h10, map[string]store.UsageDelta{"a.example": {Requests: 5, BytesOut: 500, CacheHits: 5}}) {
		t.Error("edge-2's r1: not applied")
	}
	// A shard's gauges: the last of the hour counts; an empty ID always applies.
	add(store.UsageKey{Source: "s1"}, h10, map[string]store.UsageDelta{"a.example": {Shard: "s1", DBBytes: i64(100), FilesBytes: i64(1000), DBQueries: 7}})
	add(store.UsageKey{Source: "s1"}, h10, map[string]store.UsageDelta{"a.example": {Shard: "s1", DBBytes: i64(200), DBQueries: 3}})
	add(store.UsageKey{Source: "s1", ID: "x"}, h11, map[string]store.UsageDelta{"a.example": {Shard: "s1", DBBytes: i64(400), BackupBytes: i64(50), FilesBytes: i64(3000)}})
	add(edge("r2"), h11, map[string]store.UsageDelta{"a.example": {Requests: 2, BytesOut: 20}})
	// January, on another shard.
	add(edge("r3"), jan.Add(time.Hour), map[string]store.UsageDelta{"a.example": {Shard: "s2", Requests: 1}})

	hours := listUsage(t, s, store.UsageListOptions{From: dec, To: jan})
	want := []store.UsageRecord{
		{Site: "a.example", Shard: "s1", Period: "2026-12-06T10", Hours: 1, Requests: 15, BytesOut: 1500, CacheHits: 9, PHPMicros: 600_000, DBQueries: 10, DBBytes: 200, FilesBytes: 1000},
		{Site: "b.example", Shard: "s1", Period: "2026-12-06T10", Hours: 1, Requests: 1, BytesOut: 10},
		{Site: "a.example", Shard: "s1", Period: "2026-12-06T11", Hours: 1, Requests: 2, BytesOut: 20, DBBytes: 400, FilesBytes: 3000, BackupBytes: 50},
	}
	if !slices.Equal(hours, want) {
		t.Errorf("hours =\n%+v\nwant\n%+v", hours, want)
	}
	days := listUsage(t, s, store.UsageListOptions{Period: store.PeriodDay, From: dec, To: jan.Add(24 * time.Hour)})
	wantDays := []store.UsageRecord{
		// Gauges average over the hours that measured them:
		// backup 50 over one hour, db (200+400)/2.
		{Site: "a.example", Shard: "s1", Period: "2026-12-06", Hours: 2, Requests: 17, BytesOut: 1520, CacheHits: 9, PHPMicros: 600_000, DBQueries: 10, DBBytes: 300, FilesBytes: 2000, BackupBytes: 50},
		{Site: "b.example", Shard: "s1", Period: "2026-12-06", Hours: 1, Requests: 1, BytesOut: 10},
		{Site: "a.example", Shard: "s2", Period: "2027-01-01", Hours: 1, Requests: 1},
	}
	if !slices.Equal(days, wantDays) {
		t.Errorf("days =\n%+v\nwant\n%+v", days, wantDays)
	}
	months := listUsage(t, s, store.UsageListOptions{Period: store.PeriodMonth, From: dec, To: jan.AddDate(0, 1, 0), Sites: []string{"a.example", "z.example"}})
	if len(months) != 2 || months[0].Period != "2026-12" || months[0].Requests != 17 || months[1].Period != "2027-01" || months[1].Shard != "s2" {
		t.Errorf("months of a.example = %+v", months)
	}
	if got := listUsage(t, s, store.UsageListOptions{From: dec, To: jan, Sites: []string{}}); len(got) != 0 {
		t.Errorf("empty Sites filter = %v, want none", got)
	}
	// The hours overlapping [From, To): 10:30 to 11:00 is the 10 o'clock hour only.
	if got := listUsage(t, s, store.UsageListOptions{From: h10.Add(15 * time.Minute), To: h10.Add(45 * time.Minute)}); len(got) != 2 || got[0].Period != "2026-12-06T10" {
		t.Errorf("10:30–11:00 = %+v, want the two records of 10:00", got)
	}
	// Pages.
	var paged []store.UsageRecord
	after := ""
	for range 5 {
		page := listUsage(t, s, store.UsageListOptions{From: dec, To: jan, Limit: 2, After: after})
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Cursor()
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged = %+v, want %+v", paged, want)
	}
	// Bytes out are the months' bandwidth too, once.
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12"}), map[string]int64{"a.example": 1520, "b.example": 10}; !maps.Equal(got, want) {
		t.Errorf("December's bandwidth = %v, want %v", got, want)
	}
	if after := rev(); after != before {
		t.Errorf("usage took revisions: %d → %d", before, after)
	}

	for _, tc := range []struct {
		key store.UsageKey
		d   map[string]store.UsageDelta
	}{
		{store.UsageKey{ID: "no-source"}, map[string]store.UsageDelta{"a.example": {Requests: 1}}},
		{edge("bad1"), map[string]store.UsageDelta{"a.example": {Requests: 1}, "": {Requests: 1}}},
		{edge("bad2"), map[string]store.UsageDelta{"a.example": {Requests: 1}, "b.example": {BytesOut: -1}}},
		{edge("bad3"), map[string]store.UsageDelta{"a.example": {Requests: 1, DBBytes: i64(-1)}}},
	} {
		if _, err := s.AddUsage(ctx, tc.key, h10, tc.d); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddUsage(%v, %v) = %v, want ErrInvalid", tc.key, tc.d, err)
		}
	}
	for _, o := range []store.UsageListOptions{
		{},
		{From: jan, To: dec},
		{From: dec, To: jan, Period: "week"},
		{From: dec, To: jan, Limit: store.MaxUsageLimit + 1},
		{From: dec, To: dec.Add(store.MaxUsageSpan + time.Hour)},
	} {
		if _, err := s.ListUsage(ctx, o); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListUsage(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	if got := listUsage(t, s, store.UsageListOptions{From: dec, To: jan}); got[0].Requests != 15 {
		t.Errorf("a refused report added to a.example: %+v", got[0])
	}

	// Concurrent reports, some of them retried copies, lose nothing and
	// count nothing twice.
	feb := time.Date(2027, 2, 3, 4, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for e := range 4 {
		wg.Go(func() {
			for i := range 10 {
				for range 2 { // each report sent twice
					key := store.UsageKey{Source: "edge-" + string(rune('a'+e)), ID: "r" + string(rune('0'+i))}
					if _, err := s.AddUsage(ctx, key, feb, map[string]store.UsageDelta{"a.example": {Requests: 3}, "b.example": {Requests: 1, BytesOut: 2}}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	got := listUsage(t, s, store.UsageListOptions{From: feb, To: feb.Add(time.Hour)})
	if len(got) != 2 || got[0].Requests != 120 || got[1].Requests != 40 || got[1].BytesOut != 80 {
		t.Errorf("after concurrent reports = %+v, want 120 and 40 requests", got)
	}
}
