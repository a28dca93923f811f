package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func mustChanges(t *testing.T, s store.Store, since int64, opts store.ChangeOptions) *store.ChangeList {
	t.Helper()
	cl, err := s.Changes(t.Context(), since, opts)
	if err != nil {
		t.Fatalf("changes since %d %+v: %v", since, opts, err)
	}
	if cl.More {
		t.Fatalf("changes since %d %+v: a cut page where none was expected", since, opts)
	}
	return cl
}

func mustUpdate(t *testing.T, s store.Store, name string, mutate func(*site.Site)) *site.Site {
	t.Helper()
	got, err := s.UpdateSite(t.Context(), name, func(x *site.Site) error { mutate(x); return nil })
	if err != nil {
		t.Fatalf("update %q: %v", name, err)
	}
	return got
}

func mustDelete(t *testing.T, s store.Store, name string) {
	t.Helper()
	if err := s.DeleteSite(t.Context(), name); err != nil {
		t.Fatalf("delete %q: %v", name, err)
	}
}

// siteOn returns a site placed on shard ("" for none).
func siteOn(name, shard string) *site.Site {
	x := minimalSite(name)
	x.Status.Shard = shard
	return x
}

// siteNames returns the names (and resource versions) of sites, in order.
func siteNames(sites []site.Site) string {
	var out []string
	for _, x := range sites {
		out = append(out, fmt.Sprintf("%s@%d", x.Metadata.Name, x.Metadata.ResourceVersion))
	}
	return fmt.Sprint(out)
}

func tombstones(ts []store.Tombstone) string {
	var out []string
	for _, x := range ts {
		d := ""
		if x.Deleted {
			d = " deleted"
		}
		out = append(out, fmt.Sprintf("%s/%s@%d %s%s", x.Name, x.UID, x.Revision, x.Shard, d))
	}
	return fmt.Sprint(out)
}

func listNames(t *testing.T, s store.Store, opts store.ListOptions) []string {
	t.Helper()
	names, _ := listAll(t, s, opts)
	return names
}

func testUnplaced(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	var want []string
	for i := range 9 {
		shard := []string{"shard-a", "", "shard-b"}[i%3]
		x := siteOn(fmt.Sprintf("s%d.example.com", i), shard)
		if i == 4 { // unplaced, and its finished move names shards
			x.Move = &site.Move{ID: "m", Source: "shard-a", Target: "shard-b", Phase: site.MoveAborted}
		}
		mustCreate(t, s, x)
		if shard == "" {
			want = append(want, x.Metadata.Name)
		}
	}
	for _, limit := range []int{0, 1, 2} {
		if got := listNames(t, s, store.ListOptions{Unplaced: true, Limit: limit}); !slices.Equal(got, want) {
			t.Errorf("unplaced limit %d = %v, want %v", limit, got, want)
		}
	}
	// Placing a site takes it out of the unplaced list.
	mustUpdate(t, s, "s1.example.com", func(x *site.Site) { x.Status.Shard = "shard-c" })
	if got := listNames(t, s, store.ListOptions{Unplaced: true}); !slices.Equal(got, want[1:]) {
		t.Errorf("unplaced after placing = %v, want %v", got, want[1:])
	}
	if _, err := s.ListSites(ctx, store.ListOptions{Shard: "shard-a", Unplaced: true}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("shard and unplaced: err = %v, want ErrInvalid", err)
	}
}

// move returns a move from src to dst at phase.
func move(src, dst string, phase site.MovePhase) *site.Move {
	return &site.Move{ID: "move-1", Source: src, Target: dst, Phase: phase, RequestedAt: base}
}

func testMoveRoundTrip(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tc := range []struct {
		name string
		move *site.Move
	}{
		{"nil", nil},
		{"all fields", func() *site.Move {
			m := move("shard-a", "shard-b", site.MoveCleaningUp)
			at := base.Add(time.Minute)
			m.Artifact, m.FreezeStarted, m.Exported, m.Imported, m.Switched = "exports/x.tar", &at, &at, &at, &at
			m.TargetEndpoint, m.TargetDocroot, m.Error = "tcp:10.0.0.2:9000", "/srv/b/x", "retrying"
			return m
		}()},
		{"finished", move("shard-a", "shard-b", site.MoveDone)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newSite(tc.name + ".example.com")
			x.Move = tc.move
			mustCreate(t, s, x)
			got := mustGet(t, s, x.Metadata.Name)
			if (got.Move == nil) != (tc.move == nil) {
				t.Fatalf("move = %+v, want %+v", got.Move, tc.move)
			}
			assertSiteEqual(t, got, x)
		})
	}
	t.Run("set and cleared by update", func(t *testing.T) {
		mustCreate(t, s, newSite("upd.example.com"))
		m := move("shard-1", "shard-2", site.MoveExporting)
		got := mustUpdate(t, s, "upd.example.com", func(x *site.Site) { x.Move = m })
		if got.Move == nil || got.Move.Target != "shard-2" || got.Metadata.Generation != 1 {
			t.Errorf("after setting the move: %+v, generation %d", got.Move, got.Metadata.Generation)
		}
		assertSiteEqual(t, mustGet(t, s, "upd.example.com"), got)
		mustUpdate(t, s, "upd.example.com", func(x *site.Site) { x.Move = nil })
		if again := mustGet(t, s, "upd.example.com"); again.Move != nil {
			t.Errorf("cleared move came back: %+v", again.Move)
		}
	})
}

// testMoveShards follows a move through its phases: both shards hold the
// site while it is active, in ListSites and in Changes, and the shard that
// no longer holds it gets a tombstone.
func testMoveShards(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name        string
		abort       bool
		wantKeeper  string // the shard that holds the site at the end
		wantDropped string
	}{
		{"done", false, "shard-b", "shard-a"},
		{"aborted", true, "shard-a", "shard-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			mustCreate(t, s, siteOn("m.example.com", "shard-a"))
			mustCreate(t, s, siteOn("other.example.com", "shard-c"))
			holders := func(want ...string) {
				t.Helper()
				for _, sh := range []string{"shard-a", "shard-b", "shard-c"} {
					got := slices.Contains(listNames(t, s, store.ListOptions{Shard: sh}), "m.example.com")
					if got != slices.Contains(want, sh) {
						t.Errorf("ListSites(shard %s) has the site: %v, want %v", sh, got, !got)
					}
				}
			}
			holders("shard-a")
			rev := revision(t, s)
			started := mustUpdate(t, s, "m.example.com", func(x *site.Site) { x.Move = move("shard-a", "shard-b", site.MoveExporting) })
			holders("shard-a", "shard-b")
			for _, sh := range []string{"shard-a", "shard-b"} {
				cl := mustChanges(t, s, rev, store.ChangeOptions{Shard: sh})
				if len(cl.Sites) != 1 || cl.Sites[0].Metadata.Name != "m.example.com" || len(cl.Removed) != 0 {
					t.Errorf("changes of %s after the move started: sites %s removed %s", sh, siteNames(cl.Sites), tombstones(cl.Removed))
				}
			}
			if cl := mustChanges(t, s, rev, store.ChangeOptions{Shard: "shard-c"}); len(cl.Sites)+len(cl.Removed) != 0 {
				t.Errorf("changes of an uninvolved shard: %+v", cl)
			}

			var last *site.Site
			if tc.abort {
				mustUpdate(t, s, "m.example.com", func(x *site.Site) { x.Move.Phase = site.MoveAborting })
				holders("shard-a", "shard-b")
				rev = revision(t, s)
				last = mustUpdate(t, s, "m.example.com", func(x *site.Site) { x.Move.Phase = site.MoveAborted })
			} else {
				mustUpdate(t, s, "m.example.com", func(x *site.Site) { x.Move.Phase = site.MoveImporting })
				mustUpdate(t, s, "m.example.com", func(x *site.Site) {
					x.Move.Phase, x.Status.Shard = site.MoveCleaningUp, "shard-b"
				})
				holders("shard-a", "shard-b") // switched, the source still has its copy
				rev = revision(t, s)
				last = mustUpdate(t, s, "m.example.com", func(x *site.Site) { x.Move.Phase = site.MoveDone })
			}
			holders(tc.wantKeeper)

			keep := mustChanges(t, s, rev, store.ChangeOptions{Shard: tc.wantKeeper})
			if siteNames(keep.Sites) != siteNames([]site.Site{*last}) || len(keep.Removed) != 0 {
				t.Errorf("changes of %s: sites %s removed %s; want the site, no tombstone", tc.wantKeeper, siteNames(keep.Sites), tombstones(keep.Removed))
			}
			drop := mustChanges(t, s, rev, store.ChangeOptions{Shard: tc.wantDropped})
			want := store.Tombstone{Name: "m.example.com", UID: started.Metadata.UID, Shard: tc.wantDropped, Revision: last.Metadata.ResourceVersion}
			if len(drop.Sites) != 0 || len(drop.Removed) != 1 || drop.Removed[0] != want {
				t.Errorf("changes of %s: sites %s removed %s; want the tombstone %s", tc.wantDropped, siteNames(drop.Sites), tombstones(drop.Removed), tombstones([]store.Tombstone{want}))
			}
			all := mustChanges(t, s, rev, store.ChangeOptions{})
			if siteNames(all.Sites) != siteNames([]site.Site{*last}) || tombstones(all.Removed) != tombstones([]store.Tombstone{want}) {
				t.Errorf("all changes: sites %s removed %s", siteNames(all.Sites), tombstones(all.Removed))
			}
			// Deleting the site now leaves a tombstone on the keeper only.
			rev = revision(t, s)
			mustDelete(t, s, "m.example.com")
			del := mustChanges(t, s, rev, store.ChangeOptions{})
			wantDel := store.Tombstone{Name: "m.example.com", UID: started.Metadata.UID, Shard: tc.wantKeeper, Revision: rev + 1, Deleted: true}
			if len(del.Removed) != 1 || del.Removed[0] != wantDel {
				t.Errorf("delete after the move: removed %s, want %s", tombstones(del.Removed), tombstones([]store.Tombstone{wantDel}))
			}
		})
	}
}

func testChangesAll(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreate(t, s, siteOn("before.example.com", "shard-a"))
	r0 := revision(t, s)

	empty := mustChanges(t, s, r0, store.ChangeOptions{})
	if len(empty.Sites)+len(empty.Shards)+len(empty.Removed) != 0 || empty.Revision != r0 {
		t.Errorf("changes with nothing changed: %+v", empty)
	}
	mustCreate(t, s, siteOn("a.example.com", "shard-a"))
	mustCreate(t, s, siteOn("b.example.com", "shard-b"))
	mustCreateShard(t, s, newShard("shard-x"))
	a2 := mustUpdate(t, s, "a.example.com", func(x *site.Site) { x.Spec.Title = "A2" })
	mustDelete(t, s, "b.example.com")
	delRev := revision(t, s)
	unplaced := mustCreate(t, s, siteOn("u.example.com", ""))
	mustDelete(t, s, "u.example.com")
	mustCreateShard(t, s, newShard("shard-y"))
	x2, err := s.UpdateShard(ctx, "shard-x", func(x *store.Shard) error { x.Cordoned = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteShard(ctx, "shard-y"); err != nil {
		t.Fatal(err)
	}
	cur := revision(t, s)

	cl := mustChanges(t, s, r0, store.ChangeOptions{})
	if got, want := siteNames(cl.Sites), siteNames([]site.Site{*a2}); got != want {
		t.Errorf("sites %s, want %s", got, want)
	}
	for _, got := range cl.Sites {
		if got.Metadata.Name == "a.example.com" {
			assertSiteEqual(t, &got, a2)
		}
	}
	if len(cl.Shards) != 1 || cl.Shards[0].Name != "shard-x" || cl.Shards[0].ResourceVersion != x2.ResourceVersion || !cl.Shards[0].Cordoned {
		t.Errorf("shards %+v, want shard-x at %d (shard-y was deleted)", cl.Shards, x2.ResourceVersion)
	}
	wantRemoved := []store.Tombstone{
		{Name: "b.example.com", UID: "uid-b.example.com", Shard: "shard-b", Revision: delRev, Deleted: true},
		{Name: "u.example.com", UID: unplaced.Metadata.UID, Shard: "", Revision: delRev + 2, Deleted: true},
	}
	if tombstones(cl.Removed) != tombstones(wantRemoved) {
		t.Errorf("removed %s, want %s", tombstones(cl.Removed), tombstones(wantRemoved))
	}
	if cl.Revision != cur {
		t.Errorf("revision %d, want the current %d", cl.Revision, cur)
	}

	// Shards are listed in resource version order too.
	mustUpdate(t, s, "before.example.com", func(x *site.Site) { x.Spec.Title = "later" })
	if _, err := s.UpdateShard(ctx, "shard-x", func(x *store.Shard) error { x.Cordoned = false; return nil }); err != nil {
		t.Fatal(err)
	}
	z := mustCreateShard(t, s, newShard("shard-0"))
	cl = mustChanges(t, s, cur, store.ChangeOptions{})
	var shards []string
	for _, sh := range cl.Shards {
		shards = append(shards, fmt.Sprintf("%s@%d", sh.Name, sh.ResourceVersion))
	}
	if want := fmt.Sprint([]string{fmt.Sprintf("shard-x@%d", z.ResourceVersion-1), fmt.Sprintf("shard-0@%d", z.ResourceVersion)}); fmt.Sprint(shards) != want {
		t.Errorf("shards %v, want %v", shards, want)
	}
	if len(cl.Sites) != 1 || cl.Sites[0].Metadata.Name != "before.example.com" {
		t.Errorf("sites %s, want before.example.com", siteNames(cl.Sites))
	}
}

func testChangesShard(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	r0 := revision(t, s)
	mustCreate(t, s, siteOn("a1.example.com", "shard-a"))
	mustCreate(t, s, siteOn("b1.example.com", "shard-b"))
	mustCreate(t, s, siteOn("a2.example.com", "shard-a"))
	mustCreate(t, s, siteOn("n.example.com", ""))
	mustCreateShard(t, s, newShard("shard-a"))
	moved := mustUpdate(t, s, "a2.example.com", func(x *site.Site) { x.Status.Shard = "shard-b" })
	mustDelete(t, s, "b1.example.com")
	delRev := revision(t, s)
	a1 := mustUpdate(t, s, "a1.example.com", func(x *site.Site) { x.Status.Phase = site.PhaseReady })
	unplaced := mustUpdate(t, s, "n.example.com", func(x *site.Site) { x.Status.Shard = ""; x.Spec.Title = "t" })

	for _, tc := range []struct {
		shard       string
		wantSites   []site.Site
		wantRemoved []store.Tombstone
	}{
		{"shard-a", []site.Site{*a1}, []store.Tombstone{
			{Name: "a2.example.com", UID: "uid-a2.example.com", Shard: "shard-a", Revision: moved.Metadata.ResourceVersion},
		}},
		{"shard-b", []site.Site{*moved}, []store.Tombstone{
			{Name: "b1.example.com", UID: "uid-b1.example.com", Shard: "shard-b", Revision: delRev, Deleted: true},
		}},
		{"shard-none", nil, nil},
	} {
		t.Run(tc.shard, func(t *testing.T) {
			cl := mustChanges(t, s, r0, store.ChangeOptions{Shard: tc.shard})
			if siteNames(cl.Sites) != siteNames(tc.wantSites) {
				t.Errorf("sites %s, want %s", siteNames(cl.Sites), siteNames(tc.wantSites))
			}
			if tombstones(cl.Removed) != tombstones(tc.wantRemoved) {
				t.Errorf("removed %s, want %s", tombstones(cl.Removed), tombstones(tc.wantRemoved))
			}
			if len(cl.Shards) != 0 {
				t.Errorf("a shard's changes list shards: %+v", cl.Shards)
			}
			if cl.Revision != unplaced.Metadata.ResourceVersion {
				t.Errorf("revision %d, want the current %d", cl.Revision, unplaced.Metadata.ResourceVersion)
			}
		})
	}
	if _, err := s.Changes(ctx, -1, store.ChangeOptions{Shard: "shard-a"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("since -1: err = %v, want ErrInvalid", err)
	}
}

func testChangesRecreate(t *testing.T, h *harness) {
	s := h.fresh(t)
	old := mustCreate(t, s, siteOn("r.example.com", "shard-a"))
	r0 := revision(t, s)
	mustDelete(t, s, "r.example.com")
	delRev := revision(t, s)
	x := siteOn("r.example.com", "shard-a")
	x.Metadata.UID = "uid-second"
	mustCreate(t, s, x)
	for _, opts := range []store.ChangeOptions{{}, {Shard: "shard-a"}} {
		cl := mustChanges(t, s, r0, opts)
		want := []store.Tombstone{{Name: "r.example.com", UID: old.Metadata.UID, Shard: "shard-a", Revision: delRev, Deleted: true}}
		if tombstones(cl.Removed) != tombstones(want) {
			t.Errorf("%+v: removed %s, want %s", opts, tombstones(cl.Removed), tombstones(want))
		}
		if len(cl.Sites) != 1 || cl.Sites[0].Metadata.UID != "uid-second" || cl.Sites[0].Metadata.ResourceVersion <= delRev {
			t.Errorf("%+v: sites %+v, want the new one after the tombstone", opts, cl.Sites)
		}
	}
}

func testChangesSince(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreate(t, s, siteOn("a.example.com", "shard-a"))
	mustCreateShard(t, s, newShard("shard-a"))
	cur := revision(t, s)
	for _, since := range []int64{cur, cur + 1, cur + 1000} {
		for _, opts := range []store.ChangeOptions{{}, {Shard: "shard-a"}} {
			cl := mustChanges(t, s, since, opts)
			if len(cl.Sites)+len(cl.Shards)+len(cl.Removed) != 0 || cl.Revision != cur {
				t.Errorf("since %d %+v: %+v; want empty at %d", since, opts, cl, cur)
			}
		}
	}
	all := mustChanges(t, s, 0, store.ChangeOptions{})
	if len(all.Sites) != 1 || len(all.Shards) != 1 || all.Revision != cur {
		t.Errorf("since 0: %+v", all)
	}
	for _, since := range []int64{-1, -1000} {
		if _, err := s.Changes(ctx, since, store.ChangeOptions{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("since %d: err = %v, want ErrInvalid", since, err)
		}
	}
}

// watcher is a replica built from the change feed the way a shard agent or
// an edge builds it.
type watcher struct {
	shard  string
	sites  map[string]site.Site
	shards map[string]int64
	since  int64
	seen   map[string]bool // "site name@rv" and "shard name@rv" already reported
}

func newWatcher(shard string, since int64) *watcher {
	return &watcher{shard: shard, sites: map[string]site.Site{}, shards: map[string]int64{}, since: since, seen: map[string]bool{}}
}

// follow calls Changes until More is false, applying every page.
func (w *watcher) follow(t *testing.T, s store.Store, limit int) error {
	t.Helper()
	for pages := 1; ; pages++ {
		if pages > 100000 {
			return errors.New("change pages do not end")
		}
		cl, err := s.Changes(t.Context(), w.since, store.ChangeOptions{Shard: w.shard, Limit: limit})
		if err != nil {
			return fmt.Errorf("changes since %d: %w", w.since, err)
		}
		w.apply(t, cl, limit)
		if !cl.More {
			return nil
		}
	}
}

func (w *watcher) apply(t *testing.T, cl *store.ChangeList, limit int) {
	t.Helper()
	if n := len(cl.Sites) + len(cl.Shards); cl.More && n != max(limit, 1) && limit > 0 {
		t.Errorf("cut page has %d items, limit %d", n, limit)
	}
	if cl.Revision < w.since {
		t.Errorf("page revision %d before since %d", cl.Revision, w.since)
	}
	if cl.More && cl.Revision == w.since {
		t.Errorf("cut page at since %d makes no progress", w.since)
	}
	// Apply in revision order: tombstones and items never share a
	// revision for the same site in one shard's feed.
	type ev struct {
		rev  int64
		site *site.Site
		ts   *store.Tombstone
	}
	var evs []ev
	last := w.since
	for i := range cl.Sites {
		x := &cl.Sites[i]
		rv := x.Metadata.ResourceVersion
		if rv <= w.since || rv > cl.Revision {
			t.Errorf("site %s@%d outside (%d, %d]", x.Metadata.Name, rv, w.since, cl.Revision)
		}
		if rv < last {
			t.Errorf("sites out of order: %s", siteNames(cl.Sites))
		}
		last = rv
		if w.shard != "" && !slices.Contains(x.Shards(), w.shard) {
			t.Errorf("feed of %s has %s, held by %v", w.shard, x.Metadata.Name, x.Shards())
		}
		key := fmt.Sprintf("site %s@%d", x.Metadata.Name, rv)
		if w.seen[key] {
			t.Errorf("%s reported twice", key)
		}
		w.seen[key] = true
		evs = append(evs, ev{rev: rv, site: x})
	}
	last = w.since
	for _, sh := range cl.Shards {
		if sh.ResourceVersion <= w.since || sh.ResourceVersion > cl.Revision || sh.ResourceVersion < last {
			t.Errorf("shard %s@%d outside (%d, %d] or out of order", sh.Name, sh.ResourceVersion, w.since, cl.Revision)
		}
		last = sh.ResourceVersion
		key := fmt.Sprintf("shard %s@%d", sh.Name, sh.ResourceVersion)
		if w.seen[key] {
			t.Errorf("%s reported twice", key)
		}
		w.seen[key] = true
		w.shards[sh.Name] = sh.ResourceVersion
	}
	last = w.since
	for i := range cl.Removed {
		ts := &cl.Removed[i]
		if ts.Revision <= w.since || ts.Revision > cl.Revision || ts.Revision < last {
			t.Errorf("tombstone %s outside (%d, %d] or out of order", tombstones([]store.Tombstone{*ts}), w.since, cl.Revision)
		}
		last = ts.Revision
		if w.shard != "" && ts.Shard != w.shard {
			t.Errorf("feed of %s has tombstone %s", w.shard, tombstones([]store.Tombstone{*ts}))
		}
		evs = append(evs, ev{rev: ts.Revision, ts: ts})
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return int(a.rev - b.rev) })
	for _, e := range evs {
		switch {
		case e.site != nil:
			w.sites[e.site.Metadata.Name] = *e.site
		case w.shard == "" && !e.ts.Deleted:
			// A site left a shard: a watcher of all sites keeps it.
		default:
			if cur, ok := w.sites[e.ts.Name]; ok && cur.Metadata.UID == e.ts.UID {
				delete(w.sites, e.ts.Name)
			}
		}
	}
	w.since = cl.Revision
}

// check compares the replica with what ListSites and ListShards give now.
func (w *watcher) check(t *testing.T, s store.Store) {
	t.Helper()
	l, err := s.ListSites(t.Context(), store.ListOptions{Shard: w.shard, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if l.Continue != "" {
		t.Fatal("more sites than the test expects")
	}
	want := map[string]int64{}
	for _, x := range l.Items {
		want[x.Metadata.Name] = x.Metadata.ResourceVersion
	}
	got := map[string]int64{}
	for n, x := range w.sites {
		got[n] = x.Metadata.ResourceVersion
	}
	if !maps.Equal(got, want) {
		t.Errorf("watcher of %q (at %d) has sites %v, store has %v (at %d)", w.shard, w.since, got, want, l.Revision)
	}
	if w.shard != "" {
		return
	}
	shards, err := s.ListShards(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Deleted shards are not reported: compare the existing ones.
	for _, sh := range shards {
		if w.shards[sh.Name] != sh.ResourceVersion {
			t.Errorf("watcher has shard %s@%d, store has @%d", sh.Name, w.shards[sh.Name], sh.ResourceVersion)
		}
	}
}

// randomWrites makes n random writes of sites (creates, updates that place,
// reassign and move them, deletes, re-creates) and shards.
func randomWrites(ctx context.Context, s store.Store, rng *rand.Rand, n int) error {
	shardNames := []string{"shard-a", "shard-b", "shard-c"}
	pick := func() string { return shardNames[rng.IntN(len(shardNames))] }
	for range n {
		name := fmt.Sprintf("w%02d.example.com", rng.IntN(15))
		switch op := rng.IntN(10); {
		case op < 5:
			_, err := s.UpdateSite(ctx, name, func(x *site.Site) error {
				switch rng.IntN(5) {
				case 0:
					x.Status.Shard = pick()
				case 1:
					x.Status.Shard = ""
				case 2:
					if !x.Move.Active() && x.Status.Shard != "" {
						x.Move = move(x.Status.Shard, pick(), site.MoveExporting)
					}
				case 3:
					if x.Move.Active() {
						if rng.IntN(2) == 0 {
							x.Status.Shard = x.Move.Target
							x.Move.Phase = site.MoveDone
						} else {
							x.Move.Phase = site.MoveAborted
						}
					}
				default:
					x.Status.ObservedGeneration++
				}
				return nil
			})
			if errors.Is(err, store.ErrNotFound) {
				x := siteOn(name, pick())
				x.Metadata.UID = fmt.Sprintf("uid-%d", rng.Int64())
				err = s.CreateSite(ctx, x)
			}
			if err != nil && !errors.Is(err, store.ErrAlreadyExists) { // a concurrent create won
				return err
			}
		case op < 7:
			if err := s.DeleteSite(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		case op < 9:
			sh := pick()
			_, err := s.UpdateShard(ctx, sh, func(x *store.Shard) error { x.Capacity++; return nil })
			if errors.Is(err, store.ErrNotFound) {
				err = s.CreateShard(ctx, newShard(sh))
			}
			if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
		default:
			if err := s.DeleteShard(ctx, pick()); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// testChangesPages follows the feed in pages of several sizes while writes
// go on between the pages: every watcher ends with the store's state, sees
// nothing twice and no page splits a revision.
func testChangesPages(t *testing.T, h *harness) {
	for _, limit := range []int{1, 3, 7, 0} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			s := h.fresh(t)
			rng := rand.New(rand.NewPCG(uint64(limit), 42))
			if err := randomWrites(t.Context(), s, rng, 60); err != nil {
				t.Fatal(err)
			}
			var ws []*watcher
			for _, sh := range []string{"", "shard-a", "shard-b", "shard-c"} {
				ws = append(ws, newWatcher(sh, 0))
			}
			for range 5 {
				for _, w := range ws {
					// One page, then writes, then to the end.
					cl, err := s.Changes(t.Context(), w.since, store.ChangeOptions{Shard: w.shard, Limit: limit})
					if err != nil {
						t.Fatal(err)
					}
					w.apply(t, cl, limit)
					if err := randomWrites(t.Context(), s, rng, 5); err != nil {
						t.Fatal(err)
					}
					if err := w.follow(t, s, limit); err != nil {
						t.Fatal(err)
					}
					w.check(t, s)
				}
			}
			// One read from the start gives the same state.
			full := newWatcher("", 0)
			if err := full.follow(t, s, store.MaxLimit); err != nil {
				t.Fatal(err)
			}
			full.check(t, s)
		})
	}
	t.Run("cut", func(t *testing.T) {
		s := h.fresh(t)
		// Revisions 4i+1..4i+4: create ci, create shard-i, delete ci,
		// re-create ci. The four oldest items are shard-0, c0, shard-1 and
		// c1 (at 8); the deletions at 3 and 7 come with them.
		for i := range 5 {
			mustCreate(t, s, siteOn(fmt.Sprintf("c%d.example.com", i), "shard-a"))
			mustCreateShard(t, s, newShard(fmt.Sprintf("shard-%d", i)))
			mustDelete(t, s, fmt.Sprintf("c%d.example.com", i))
			x := siteOn(fmt.Sprintf("c%d.example.com", i), "shard-a")
			x.Metadata.UID += "-2"
			mustCreate(t, s, x)
		}
		cl, err := s.Changes(t.Context(), 0, store.ChangeOptions{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if !cl.More || len(cl.Sites)+len(cl.Shards) != 4 {
			t.Fatalf("page: %d sites %d shards more %v; want 4 items and more", len(cl.Sites), len(cl.Shards), cl.More)
		}
		last := int64(0)
		for _, x := range cl.Sites {
			last = max(last, x.Metadata.ResourceVersion)
		}
		for _, x := range cl.Shards {
			last = max(last, x.ResourceVersion)
		}
		if cl.Revision != last {
			t.Errorf("cut page revision %d, want its last item's %d", cl.Revision, last)
		}
		for _, ts := range cl.Removed {
			if ts.Revision > cl.Revision {
				t.Errorf("tombstone %d after the page's revision %d", ts.Revision, cl.Revision)
			}
		}
		// Both deletions before the cut are there.
		n := 0
		for _, ts := range cl.Removed {
			if ts.Revision < cl.Revision {
				n++
			}
		}
		if n != 2 {
			t.Errorf("removed %s before revision %d, want 2", tombstones(cl.Removed), cl.Revision)
		}
	})
}

func testPruneTombstones(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	var delRevs []int64
	for i := range 4 {
		name := fmt.Sprintf("p%d.example.com", i)
		mustCreate(t, s, siteOn(name, "shard-a"))
		mustDelete(t, s, name)
		delRevs = append(delRevs, revision(t, s))
	}
	before := delRevs[2] // drops the first two
	n, err := s.PruneTombstones(ctx, before)
	if err != nil || n != 2 {
		t.Fatalf("prune before %d = %d, %v; want 2", before, n, err)
	}
	for _, opts := range []store.ChangeOptions{{}, {Shard: "shard-a"}} {
		for _, since := range []int64{0, before - 1} {
			if _, err := s.Changes(ctx, since, opts); !errors.Is(err, store.ErrExpired) {
				t.Errorf("since %d %+v after pruning before %d: err = %v, want ErrExpired", since, opts, before, err)
			}
		}
		cl := mustChanges(t, s, before, opts)
		if len(cl.Removed) != 1 || cl.Removed[0].Revision != delRevs[3] {
			t.Errorf("since %d: removed %s, want the last deletion", before, tombstones(cl.Removed))
		}
	}
	if _, err := s.Changes(ctx, -1, store.ChangeOptions{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("since -1 after pruning: err = %v, want ErrInvalid (not ErrExpired)", err)
	}
	// A smaller before drops nothing and does not move the horizon back.
	if n, err := s.PruneTombstones(ctx, 1); err != nil || n != 0 {
		t.Errorf("prune before 1 = %d, %v; want 0", n, err)
	}
	if _, err := s.Changes(ctx, before-1, store.ChangeOptions{}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("horizon moved back: err = %v", err)
	}
	// Pruning takes no revision.
	rev := revision(t, s)
	if n, err := s.PruneTombstones(ctx, rev+1); err != nil || n != 2 {
		t.Errorf("prune everything = %d, %v; want 2", n, err)
	}
	if after := revision(t, s); after != rev {
		t.Errorf("prune moved revision %d -> %d", rev, after)
	}
	if _, err := s.Changes(ctx, rev, store.ChangeOptions{}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("since %d after pruning before %d: err = %v, want ErrExpired", rev, rev+1, err)
	}
	cl := mustChanges(t, s, rev+1, store.ChangeOptions{})
	if cl.Revision != rev || len(cl.Removed) != 0 {
		t.Errorf("since the horizon: %+v", cl)
	}
}

// testChangesReopen checks that the revision, shards, tombstones and the
// prune horizon survive Close and reopen.
func testChangesReopen(t *testing.T, h *harness) {
	dir := t.TempDir()
	ctx := t.Context()
	s := h.open(t, dir)
	mustCreateShard(t, s, newShard("shard-a"))
	mustCreate(t, s, siteOn("gone.example.com", "shard-a"))
	mustDelete(t, s, "gone.example.com")
	horizon := revision(t, s)
	mustCreate(t, s, siteOn("a.example.com", "shard-a"))
	mustCreate(t, s, siteOn("b.example.com", "shard-a"))
	mustUpdate(t, s, "b.example.com", func(x *site.Site) { x.Status.Shard = "shard-b" })
	if err := s.Heartbeat(ctx, "shard-a", base.Add(time.Minute), store.Usage{Sites: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneTombstones(ctx, horizon); err != nil {
		t.Fatal(err)
	}
	want := mustChanges(t, s, horizon, store.ChangeOptions{})
	wantShard := mustGetShard(t, s, "shard-a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = h.openAt(t, dir)
	got := mustChanges(t, s, horizon, store.ChangeOptions{})
	if siteNames(got.Sites) != siteNames(want.Sites) || tombstones(got.Removed) != tombstones(want.Removed) || got.Revision != want.Revision {
		t.Errorf("after reopen: sites %s removed %s at %d; want %s %s at %d",
			siteNames(got.Sites), tombstones(got.Removed), got.Revision, siteNames(want.Sites), tombstones(want.Removed), want.Revision)
	}
	assertShardEqual(t, mustGetShard(t, s, "shard-a"), wantShard)
	if _, err := s.Changes(ctx, horizon-1, store.ChangeOptions{}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("prune horizon lost on reopen: err = %v", err)
	}
	sh := mustCreateShard(t, s, newShard("shard-new"))
	if sh.ResourceVersion != want.Revision+1 {
		t.Errorf("first shard write after reopen at %d, want %d", sh.ResourceVersion, want.Revision+1)
	}
}

func testTokenManagement(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	shardTok := newToken("tok-shard", "s3cret-shard")
	shardTok.Role, shardTok.Subject = store.RoleShard, "shard-a"
	edgeTok := newToken("tok-edge", "s3cret-edge")
	edgeTok.Role = store.RoleEdge
	admin := newToken("tok-admin", "s3cret-admin")
	admin.Role = store.RoleAdmin
	rev := revision(t, s)
	empty, err := s.ListTokens(ctx, store.TokenFilter{})
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty store lists tokens %v, %v", empty, err)
	}
	for _, tok := range []store.Token{shardTok, edgeTok, admin} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("subject round trip", func(t *testing.T) {
		for _, want := range []store.Token{shardTok, edgeTok} {
			got, err := s.LookupToken(ctx, want.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != want.Subject || got.Role != want.Role || got.ID != want.ID {
				t.Errorf("lookup = %+v, want %+v", *got, want)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		got, err := s.ListTokens(ctx, store.TokenFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Token{admin, edgeTok, shardTok} // by ID
		if len(got) != len(want) {
			t.Fatalf("listed %d tokens, want %d", len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			if g.ID != w.ID || g.Name != w.Name || g.Role != w.Role || g.Subject != w.Subject || !g.CreatedAt.Equal(w.CreatedAt) {
				t.Errorf("token %d = %+v, want %+v", i, g, w)
			}
			if g.Hash != "" && g.Hash != w.Hash {
				t.Errorf("token %d hash %q, want empty", i, g.Hash)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteToken(ctx, "tok-edge"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupToken(ctx, edgeTok.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lookup of a deleted token: err = %v", err)
		}
		if err := s.DeleteToken(ctx, "tok-edge"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: err = %v, want ErrNotFound", err)
		}
		if err := s.DeleteToken(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete unknown: err = %v, want ErrNotFound", err)
		}
		got, err := s.ListTokens(ctx, store.TokenFilter{})
		if err != nil || len(got) != 2 || got[0].ID != "tok-admin" || got[1].ID != "tok-shard" {
			t.Errorf("list after delete = %+v, %v", got, err)
		}
		// The hash is free again.
		if err := s.CreateToken(ctx, edgeTok); err != nil {
			t.Errorf("re-create deleted token: %v", err)
		}
	})
	if after := revision(t, s); after != rev {
		t.Errorf("token writes moved revision %d -> %d", rev, after)
	}
}

// testChangesConcurrent follows the feed while writers run: pages read
// concurrently with writes must still give every watcher the store's state,
// nothing twice.
func testChangesConcurrent(t *testing.T, h *harness) {
	s := h.fresh(t)
	var ws []*watcher
	for _, sh := range []string{"", "shard-a", "shard-b"} {
		ws = append(ws, newWatcher(sh, 0))
	}
	done := make(chan struct{})
	var writers sync.WaitGroup
	for i := range 4 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			if err := randomWrites(t.Context(), s, rng, 40); err != nil {
				t.Errorf("writes: %v", err)
			}
		})
	}
	var watchers sync.WaitGroup
	for _, w := range ws {
		watchers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := w.follow(t, s, 3); err != nil {
					t.Errorf("follow: %v", err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	watchers.Wait()
	for _, w := range ws {
		if err := w.follow(t, s, 3); err != nil {
			t.Fatal(err)
		}
		w.check(t, s)
	}
}
