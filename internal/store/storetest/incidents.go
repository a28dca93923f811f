package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

func listIncidents(t *testing.T, s store.Store, opts store.IncidentListOptions) []store.Incident {
	t.Helper()
	got, err := s.ListIncidents(t.Context(), opts)
	if err != nil {
		t.Fatalf("ListIncidents(%+v): %v", opts, err)
	}
	return got
}

func incidentIDs(ins []store.Incident) []int64 {
	ids := []int64{}
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	return ids
}

// testIncidents: one open incident per site (also under concurrent
// openers), closing sets Ended (never before Started), filters select by
// site, openness and overlap, pages follow IDs, bad input is refused, and
// incidents take no revision.
func testIncidents(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	if got := listIncidents(t, s, store.IncidentListOptions{}); got == nil || len(got) != 0 {
		t.Errorf("empty store: %v, want an empty slice", got)
	}
	rev := func() int64 { return revision(t, s) }
	before := rev()
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)

	a1, made, err := s.OpenIncident(ctx, "a.example", t0, "HTTP 503")
	if err != nil || !made {
		t.Fatalf("OpenIncident = %v, %v, %v; want a new one", a1, made, err)
	}
	if a1.ID == 0 || a1.Site != "a.example" || !a1.Started.Equal(t0) || a1.Ended != nil || a1.Cause != "HTTP 503" {
		t.Errorf("opened %+v", a1)
	}
	again, made, err := s.OpenIncident(ctx, "a.example", t0.Add(time.Minute), "timeout")
	if err != nil || made || again.ID != a1.ID || !again.Started.Equal(t0) || again.Cause != "HTTP 503" {
		t.Errorf("second OpenIncident = %+v, %v, %v; want the open one unchanged", again, made, err)
	}
	if _, err := s.CloseIncident(ctx, "b.example", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CloseIncident without an open one = %v, want ErrNotFound", err)
	}
	closed, err := s.CloseIncident(ctx, "a.example", t0.Add(90*time.Second))
	if err != nil || closed.ID != a1.ID || closed.Ended == nil || !closed.Ended.Equal(t0.Add(90*time.Second)) {
		t.Fatalf("CloseIncident = %+v, %v", closed, err)
	}
	if got := closed.Duration(time.Time{}); got != 90*time.Second {
		t.Errorf("Duration = %v, want 90s", got)
	}
	if _, err := s.CloseIncident(ctx, "a.example", t0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("closing twice = %v, want ErrNotFound", err)
	}
	// A new incident of the same site after the first closed; one closed
	// at a time before its start ends where it started.
	a2, made, err := s.OpenIncident(ctx, "a.example", t0.Add(2*time.Hour), "timeout")
	if err != nil || !made || a2.ID <= a1.ID {
		t.Fatalf("reopen = %+v, %v, %v", a2, made, err)
	}
	b1, _, err := s.OpenIncident(ctx, "b.example", t0.Add(3*time.Hour), "HTTP 500")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.CloseIncident(ctx, "b.example", t0); err != nil || !c.Ended.Equal(c.Started) {
		t.Errorf("close before start = %+v, %v; want Ended = Started", c, err)
	}
	c1, _, err := s.OpenIncident(ctx, "c.example", t0.Add(4*time.Hour), "HTTP 502")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		opts store.IncidentListOptions
		want []int64
	}{
		{"all", store.IncidentListOptions{}, []int64{a1.ID, a2.ID, b1.ID, c1.ID}},
		{"sites", store.IncidentListOptions{Sites: []string{"a.example", "z.example"}}, []int64{a1.ID, a2.ID}},
		{"no sites", store.IncidentListOptions{Sites: []string{}}, []int64{}},
		{"open", store.IncidentListOptions{OpenOnly: true}, []int64{a2.ID, c1.ID}},
		// [t0+1m, t0+2h): a1 overlaps; a2 starts at To (not before it).
		{"overlap", store.IncidentListOptions{From: t0.Add(time.Minute), To: t0.Add(2 * time.Hour)}, []int64{a1.ID}},
		// From after a1 ended: the open ones and b1 (ended at its start, after From).
		{"from", store.IncidentListOptions{From: t0.Add(2 * time.Minute)}, []int64{a2.ID, b1.ID, c1.ID}},
		{"to", store.IncidentListOptions{To: t0.Add(3 * time.Hour)}, []int64{a1.ID, a2.ID}},
		{"page", store.IncidentListOptions{AfterID: a1.ID, Limit: 2}, []int64{a2.ID, b1.ID}},
	} {
		if got := incidentIDs(listIncidents(t, s, tc.opts)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	got := listIncidents(t, s, store.IncidentListOptions{Sites: []string{"a.example"}})
	if len(got) != 2 || got[0].Ended == nil || !got[0].Ended.Equal(t0.Add(90*time.Second)) || got[1].Ended != nil || got[1].Cause != "timeout" {
		t.Errorf("a.example's incidents = %+v", got)
	}
	if after := rev(); after != before {
		t.Errorf("incidents took revisions: %d → %d", before, after)
	}

	for _, tc := range []struct {
		site  string
		at    time.Time
		cause string
	}{
		{"", t0, "x"},
		{"a.example", time.Time{}, "x"},
		{"a.example", t0, string(make([]byte, store.MaxIncidentCause+1))},
	} {
		if _, _, err := s.OpenIncident(ctx, tc.site, tc.at, tc.cause); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("OpenIncident(%q, %v, %d bytes) = %v, want ErrInvalid", tc.site, tc.at, len(tc.cause), err)
		}
	}
	for _, opts := range []store.IncidentListOptions{{Limit: -1}, {Limit: store.MaxIncidentList + 1}, {AfterID: -1}, {From: t0, To: t0}} {
		if _, err := s.ListIncidents(ctx, opts); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListIncidents(%+v) = %v, want ErrInvalid", opts, err)
		}
	}

	// Concurrent probes reporting the same site down open one incident.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids, madeN := map[int64]bool{}, 0
	for i := range 8 {
		wg.Go(func() {
			in, made, err := s.OpenIncident(ctx, "d.example", t0.Add(time.Duration(i)*time.Second), "HTTP 503")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[in.ID] = true
			if made {
				madeN++
			}
		})
	}
	wg.Wait()
	if len(ids) != 1 || madeN != 1 {
		t.Errorf("concurrent opens: incidents %v, %d made; want one", ids, madeN)
	}
}
