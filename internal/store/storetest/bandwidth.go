package storetest

import (
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/store"
)

func listBandwidth(t *testing.T, s store.Store, opts store.BandwidthListOptions) map[string]int64 {
	t.Helper()
	got, err := s.ListBandwidth(t.Context(), opts)
	if err != nil {
		t.Fatalf("ListBandwidth(%+v): %v", opts, err)
	}
	return got
}

// testBandwidth: counts add up per site and month, filters select, bad
// input is refused whole, concurrent adds lose nothing, and counts take
// no revision.
func testBandwidth(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	if got := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12"}); got == nil || len(got) != 0 {
		t.Errorf("empty store: %v, want an empty map", got)
	}
	rev := func() int64 { return revision(t, s) }
	before := rev()
	for _, b := range []map[string]int64{{"a.example": 100, "b.example": 5}, {"a.example": 50, "c.example": 0}} {
		if err := s.AddBandwidth(ctx, "2026-12", b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddBandwidth(ctx, "2027-01", map[string]int64{"a.example": 7}); err != nil {
		t.Fatal(err)
	}
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12"}), map[string]int64{"a.example": 150, "b.example": 5}; !maps.Equal(got, want) {
		t.Errorf("December = %v, want %v", got, want)
	}
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2027-01"}), map[string]int64{"a.example": 7}; !maps.Equal(got, want) {
		t.Errorf("January = %v, want %v", got, want)
	}
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12", Sites: []string{"b.example", "z.example"}}), map[string]int64{"b.example": 5}; !maps.Equal(got, want) {
		t.Errorf("Sites filter = %v, want %v", got, want)
	}
	if got := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12", Sites: []string{}}); len(got) != 0 {
		t.Errorf("empty Sites filter = %v, want none", got)
	}
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12", MinBytes: 5}), map[string]int64{"a.example": 150}; !maps.Equal(got, want) {
		t.Errorf("MinBytes 5 = %v, want %v", got, want)
	}
	if after := rev(); after != before {
		t.Errorf("bandwidth took revisions: %d → %d", before, after)
	}

	for _, tc := range []struct {
		month string
		b     map[string]int64
	}{
		{"2026-13", map[string]int64{"a.example": 1}},
		{"26-12", map[string]int64{"a.example": 1}},
		{"2026-12", map[string]int64{"a.example": 1, "": 1}},
		{"2026-12", map[string]int64{"a.example": 1, "b.example": -1}},
	} {
		if err := s.AddBandwidth(ctx, tc.month, tc.b); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddBandwidth(%q, %v) = %v, want ErrInvalid", tc.month, tc.b, err)
		}
	}
	if _, err := s.ListBandwidth(ctx, store.BandwidthListOptions{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListBandwidth without a month = %v, want ErrInvalid", err)
	}
	if got := listBandwidth(t, s, store.BandwidthListOptions{Month: "2026-12"}); got["a.example"] != 150 {
		t.Errorf("a refused batch added to a.example: %d", got["a.example"])
	}

	// Concurrent edges reporting the same site lose nothing.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if err := s.AddBandwidth(ctx, "2027-02", map[string]int64{"a.example": 3, "b.example": 1}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got, want := listBandwidth(t, s, store.BandwidthListOptions{Month: "2027-02"}), map[string]int64{"a.example": 240, "b.example": 80}; !maps.Equal(got, want) {
		t.Errorf("after concurrent adds = %v, want %v", got, want)
	}
}
