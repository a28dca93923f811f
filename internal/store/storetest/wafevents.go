package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func wafEvent(siteName, uid string, i int) site.WAFEvent {
	return site.WAFEvent{
		Site: siteName, SiteUID: uid, Time: base.Add(time.Duration(i) * time.Second),
		RequestID: fmt.Sprintf("req-%d", i), Method: "GET", Path: "/", RuleID: 942190,
		Message:  "Detects MSSQL code execution and information gathering attempts",
		Variable: "ARGS:s", Argument: "s", Action: site.WAFActionBlock, Paranoia: 1,
	}
}

func mustAppendEvents(t *testing.T, s store.Store, evs []site.WAFEvent, keep store.WAFRetention) []site.WAFEvent {
	t.Helper()
	if err := s.AppendWAFEvents(t.Context(), evs, keep); err != nil {
		t.Fatal(err)
	}
	return evs
}

// listEvents follows the pages of a site's events.
func listEvents(t *testing.T, s store.Store, siteName, uid string, limit int) (ids []int64, pages int, all []site.WAFEvent) {
	t.Helper()
	opts := store.WAFEventListOptions{Site: siteName, SiteUID: uid, Limit: limit}
	for {
		page, err := s.ListWAFEvents(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page.Items {
			ids = append(ids, e.ID)
			all = append(all, e)
		}
		if page.Continue == "" {
			return ids, pages, all
		}
		if len(page.Items) != limit {
			t.Fatalf("a page of %d with a continue token, limit %d", len(page.Items), limit)
		}
		opts.Continue = page.Continue
	}
}

// Events round-trip, get increasing IDs, list newest first in pages, by
// site and site UID, and survive a reopen.
func testWAFEvents(t *testing.T, h *harness) {
	dir := t.TempDir()
	s := h.openAt(t, dir)
	var batch []site.WAFEvent
	for i := range 7 {
		batch = append(batch, wafEvent("a.example.com", "uid-a", i))
	}
	batch = append(batch, wafEvent("b.example.com", "uid-b", 100))
	// An earlier site of the same name.
	old := mustAppendEvents(t, s, []site.WAFEvent{wafEvent("a.example.com", "uid-a-before", 200)}, store.WAFRetention{})[0]
	batch = mustAppendEvents(t, s, batch, store.WAFRetention{})
	for i := 1; i < len(batch); i++ {
		if batch[i].ID <= batch[i-1].ID || batch[0].ID <= old.ID {
			t.Fatalf("IDs not increasing in batch order: %d then %d (earlier batch %d)", batch[i-1].ID, batch[i].ID, old.ID)
		}
	}
	later := mustAppendEvents(t, s, []site.WAFEvent{wafEvent("a.example.com", "uid-a", 7)}, store.WAFRetention{})
	if later[0].ID <= batch[len(batch)-1].ID {
		t.Fatalf("a later batch got ID %d, not above %d", later[0].ID, batch[len(batch)-1].ID)
	}
	want := append(slices.Clone(batch[:7]), later[0])
	slices.Reverse(want)

	for _, limit := range []int{0, 3, 8, 1000} {
		ids, pages, all := listEvents(t, s, "a.example.com", "uid-a", limit)
		wantPages := 1
		if limit == 3 {
			wantPages = 3
		}
		if len(ids) != len(want) || pages != wantPages {
			t.Fatalf("limit %d: ids %v in %d pages; want %d events in %d", limit, ids, pages, len(want), wantPages)
		}
		for i, e := range all {
			w := want[i]
			if e.ID != w.ID || e.RequestID != w.RequestID || !e.Time.Equal(w.Time) || e.SiteUID != "uid-a" {
				t.Fatalf("limit %d: event %d = %+v, want %+v (newest first)", limit, i, e, w)
			}
			e.Time = w.Time
			if e != w {
				t.Fatalf("round trip: %+v, want %+v", e, w)
			}
		}
	}
	if ids, _, _ := listEvents(t, s, "a.example.com", "uid-a-before", 10); !slices.Equal(ids, []int64{old.ID}) {
		t.Errorf("events of the earlier site = %v, want [%d]", ids, old.ID)
	}
	if ids, _, _ := listEvents(t, s, "nope.example.com", "uid-x", 10); len(ids) != 0 {
		t.Errorf("events of an unknown site = %v", ids)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, dir)
	if ids, _, _ := listEvents(t, s, "b.example.com", "uid-b", 10); !slices.Equal(ids, []int64{batch[7].ID}) {
		t.Errorf("after reopen: %v", ids)
	}
	next := mustAppendEvents(t, s, []site.WAFEvent{wafEvent("b.example.com", "uid-b", 101)}, store.WAFRetention{})
	if next[0].ID <= later[0].ID {
		t.Errorf("after reopen an ID went back: %d after %d", next[0].ID, later[0].ID)
	}
}

// Retention keeps the newest PerSite events of each site in the batch and
// drops events older than Before, whatever their site.
func testWAFEventsRetention(t *testing.T, h *harness) {
	s := h.fresh(t)
	var evs []site.WAFEvent
	for i := range 10 {
		evs = append(evs, wafEvent("a.example.com", "uid-a", i), wafEvent("b.example.com", "uid-b", i))
	}
	evs = append(evs, wafEvent("c.example.com", "uid-c", 0))
	mustAppendEvents(t, s, evs, store.WAFRetention{})
	// A batch of a alone trims a to 4 and leaves b alone.
	a := mustAppendEvents(t, s, []site.WAFEvent{wafEvent("a.example.com", "uid-a", 10)}, store.WAFRetention{PerSite: 4})
	ids, _, all := listEvents(t, s, "a.example.com", "uid-a", 100)
	if len(ids) != 4 || ids[0] != a[0].ID || all[3].RequestID != "req-7" {
		t.Errorf("a after trimming to 4: %v", ids)
	}
	if ids, _, _ := listEvents(t, s, "b.example.com", "uid-b", 100); len(ids) != 10 {
		t.Errorf("b trimmed too: %d events", len(ids))
	}
	// Before drops old events of every site; an empty batch may prune.
	if err := s.AppendWAFEvents(t.Context(), nil, store.WAFRetention{Before: base.Add(8 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		site, uid string
		want      int
	}{{"a.example.com", "uid-a", 3}, {"b.example.com", "uid-b", 2}, {"c.example.com", "uid-c", 0}} {
		if ids, _, _ := listEvents(t, s, tc.site, tc.uid, 100); len(ids) != tc.want {
			t.Errorf("%s after pruning: %d events, want %d", tc.site, len(ids), tc.want)
		}
	}
}

func testWAFEventsInvalid(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	bad := []site.WAFEvent{wafEvent("a.example.com", "uid-a", 0), wafEvent("a.example.com", "", 1)}
	if err := s.AppendWAFEvents(ctx, bad, store.WAFRetention{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("an event without site UID: %v", err)
	}
	if ids, _, _ := listEvents(t, s, "a.example.com", "uid-a", 10); len(ids) != 0 {
		t.Errorf("a refused batch stored %v", ids)
	}
	for _, opts := range []store.WAFEventListOptions{
		{SiteUID: "uid-a"},
		{Site: "a.example.com"},
		{Site: "a.example.com", SiteUID: "uid-a", Continue: "garbage!"},
		{Site: "a.example.com", SiteUID: "uid-a", Continue: store.EncodeContinue("a.example.com")},
	} {
		if _, err := s.ListWAFEvents(ctx, opts); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListWAFEvents(%+v) = %v, want ErrInvalid", opts, err)
		}
	}
}
