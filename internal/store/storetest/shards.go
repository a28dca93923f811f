package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// newShard returns a shard with every field the registration sets.
func newShard(name string) *store.Shard {
	return &store.Shard{
		Name:         name,
		Capacity:     40,
		Labels:       map[string]string{"region": "eu", "zone": "eu-1a"},
		Provider:     "local",
		Roots:        []string{"/srv/wordpress/core", "/srv/shared"},
		AgentVersion: "1.2.3",
		CreatedAt:    base,
	}
}

func mustCreateShard(t *testing.T, s store.Store, sh *store.Shard) *store.Shard {
	t.Helper()
	if err := s.CreateShard(t.Context(), sh); err != nil {
		t.Fatalf("create shard %q: %v", sh.Name, err)
	}
	return sh
}

func mustGetShard(t *testing.T, s store.Store, name string) *store.Shard {
	t.Helper()
	sh, err := s.GetShard(t.Context(), name)
	if err != nil {
		t.Fatalf("get shard %q: %v", name, err)
	}
	return sh
}

// canonicalShard renders sh for comparison, times in UTC.
func canonicalShard(t *testing.T, sh *store.Shard) string {
	t.Helper()
	c := *sh
	c.CreatedAt = c.CreatedAt.UTC()
	if c.LastHeartbeat != nil {
		h := c.LastHeartbeat.UTC()
		c.LastHeartbeat = &h
	}
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertShardEqual(t *testing.T, got, want *store.Shard) {
	t.Helper()
	if g, w := canonicalShard(t, got), canonicalShard(t, want); g != w {
		t.Errorf("shard differs\ngot:  %s\nwant: %s", g, w)
	}
}

func testShardCreateGet(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	beat := base.Add(time.Minute)
	registered := newShard("registered")
	registered.Phase = store.ShardReady
	registered.LastHeartbeat = &beat
	registered.Usage = store.Usage{Sites: 3, Serving: 2, DiskBytes: 1 << 30, MemoryBytes: 1 << 28}
	for _, tc := range []struct {
		name      string
		shard     *store.Shard
		wantPhase store.ShardPhase
	}{
		{"all fields", newShard("full"), store.ShardPending},
		{"minimal", &store.Shard{Name: "min"}, store.ShardPending},
		{"phase kept", registered, store.ShardReady},
		{"caller resource version ignored", func() *store.Shard { x := newShard("rv"); x.ResourceVersion = 9999; return x }(), store.ShardPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := *tc.shard
			before := revision(t, s)
			mustCreateShard(t, s, tc.shard)
			rev := revision(t, s)
			if rev != before+1 || tc.shard.ResourceVersion != rev {
				t.Errorf("create: resource version %d, revision %d -> %d; want one revision taken", tc.shard.ResourceVersion, before, rev)
			}
			if tc.shard.Phase != tc.wantPhase {
				t.Errorf("create set phase %q, want %q", tc.shard.Phase, tc.wantPhase)
			}
			want.Phase, want.ResourceVersion = tc.wantPhase, rev
			got := mustGetShard(t, s, want.Name)
			assertShardEqual(t, got, &want)
			if !got.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, want.CreatedAt)
			}
			// The returned value is a copy.
			got.Labels = map[string]string{"x": "y"}
			got.Roots = append(got.Roots, "/elsewhere")
			assertShardEqual(t, mustGetShard(t, s, want.Name), &want)
		})
	}
	t.Run("invalid", func(t *testing.T) {
		before := revision(t, s)
		for _, sh := range []*store.Shard{nil, {}, {Capacity: 3}} {
			if err := s.CreateShard(ctx, sh); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("create %+v: err = %v, want ErrInvalid", sh, err)
			}
		}
		if after := revision(t, s); after != before {
			t.Errorf("invalid creates moved revision %d -> %d", before, after)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		before := revision(t, s)
		dup := newShard("full")
		dup.Capacity = 1
		if err := s.CreateShard(ctx, dup); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("create duplicate: err = %v, want ErrAlreadyExists", err)
		}
		if after := revision(t, s); after != before {
			t.Errorf("duplicate create moved revision %d -> %d", before, after)
		}
		if got := mustGetShard(t, s, "full"); got.Capacity != 40 {
			t.Errorf("duplicate create overwrote the shard: capacity %d", got.Capacity)
		}
	})
}

func testShardNotFound(t *testing.T, h *harness) {
	s := h.fresh(t)
	mustCreateShard(t, s, newShard("exists"))
	const unknown = "unknown"
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error { _, err := s.GetShard(ctx, unknown); return err }},
		{"update", func(ctx context.Context) error {
			_, err := s.UpdateShard(ctx, unknown, func(*store.Shard) error {
				t.Error("mutate called for an unknown shard")
				return nil
			})
			return err
		}},
		{"delete", func(ctx context.Context) error { return s.DeleteShard(ctx, unknown) }},
		{"heartbeat", func(ctx context.Context) error { return s.Heartbeat(ctx, unknown, base, store.Usage{Sites: 1}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := revision(t, s)
			if err := tc.call(t.Context()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
			if after := revision(t, s); after != before {
				t.Errorf("revision moved %d -> %d", before, after)
			}
		})
	}
	if _, err := s.GetShard(t.Context(), unknown); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("heartbeat of an unknown shard created it: err = %v", err)
	}
}

func testShardUpdate(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		mutate    func(*store.Shard)
		wantWrite bool
		wantErr   error // ErrInvalid, or nil
	}{
		{"cordon", func(x *store.Shard) { x.Cordoned = true }, true, nil},
		{"drain", func(x *store.Shard) { x.Draining = true }, true, nil},
		{"phase and reason", func(x *store.Shard) { x.Phase = store.ShardUnhealthy; x.PhaseReason = "no heartbeat for 31s" }, true, nil},
		{"re-registration", func(x *store.Shard) {
			x.AgentVersion = "2.0.0"
			x.Roots = []string{"/srv/new"}
			x.Labels["tier"] = "gold"
		}, true, nil},
		{"capacity", func(x *store.Shard) { x.Capacity = 0 }, true, nil},
		{"nothing", func(*store.Shard) {}, false, nil},
		{"same values", func(x *store.Shard) { x.Capacity = 40; x.Labels["zone"] = "eu-1a" }, false, nil},
		{"created_at same instant", func(x *store.Shard) { x.CreatedAt = x.CreatedAt.In(time.FixedZone("X", 3600)) }, false, nil},
		{"heartbeat and usage ignored", func(x *store.Shard) {
			later := base.Add(time.Hour)
			x.LastHeartbeat = &later
			x.Usage = store.Usage{Sites: 99, DiskBytes: 1}
		}, false, nil},
		{"resource version ignored", func(x *store.Shard) { x.ResourceVersion = 4242 }, false, nil},
		{"name", func(x *store.Shard) { x.Name = "renamed" }, false, store.ErrInvalid},
		{"created_at", func(x *store.Shard) { x.CreatedAt = x.CreatedAt.Add(time.Second) }, false, store.ErrInvalid},
		{"name with cordon", func(x *store.Shard) { x.Name = "renamed"; x.Cordoned = true }, false, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("shard-%d", rand.Int64())
			mustCreateShard(t, s, newShard(name))
			beat := base.Add(time.Minute)
			usage := store.Usage{Sites: 4, Serving: 3, DiskBytes: 5, MemoryBytes: 6}
			if err := s.Heartbeat(ctx, name, beat, usage); err != nil {
				t.Fatal(err)
			}
			before := mustGetShard(t, s, name)
			rev := revision(t, s)
			want := mustGetShard(t, s, name)
			tc.mutate(want)
			// Heartbeat's fields and the store's stay; a refused update
			// (Name, CreatedAt) is not compared with want.
			want.LastHeartbeat, want.Usage = before.LastHeartbeat, before.Usage
			want.CreatedAt = before.CreatedAt

			got, err := s.UpdateShard(ctx, name, func(x *store.Shard) error { tc.mutate(x); return nil })
			after := revision(t, s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if after != rev {
					t.Errorf("refused update moved revision %d -> %d", rev, after)
				}
				assertShardEqual(t, mustGetShard(t, s, name), before)
				if _, err := s.GetShard(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("renamed shard appeared: err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if tc.wantWrite {
				if after != rev+1 || got.ResourceVersion != after {
					t.Errorf("update: resource version %d, revision %d -> %d; want one revision taken", got.ResourceVersion, rev, after)
				}
				want.ResourceVersion = after
			} else {
				if after != rev || got.ResourceVersion != before.ResourceVersion {
					t.Errorf("no-op update: resource version %d -> %d, revision %d -> %d", before.ResourceVersion, got.ResourceVersion, rev, after)
				}
				want.ResourceVersion = before.ResourceVersion
			}
			assertShardEqual(t, got, want)
			assertShardEqual(t, mustGetShard(t, s, name), want)
		})
	}
	t.Run("mutate error", func(t *testing.T) {
		mustCreateShard(t, s, newShard("err"))
		before := mustGetShard(t, s, "err")
		rev := revision(t, s)
		sentinel := errors.New("mutate refused")
		got, err := s.UpdateShard(ctx, "err", func(x *store.Shard) error { x.Cordoned = true; return sentinel })
		if err != sentinel { //nolint:errorlint // the contract says "as is"
			t.Errorf("err = %v, want the mutate error as is", err)
		}
		if got != nil {
			t.Errorf("update returned %+v with an error", got)
		}
		if after := revision(t, s); after != rev {
			t.Errorf("failed mutate moved revision %d -> %d", rev, after)
		}
		assertShardEqual(t, mustGetShard(t, s, "err"), before)
	})
}

func testShardHeartbeat(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	created := mustCreateShard(t, s, newShard("beating"))
	rev := revision(t, s)
	if got := mustGetShard(t, s, "beating"); got.LastHeartbeat != nil || got.Usage != (store.Usage{}) {
		t.Errorf("before any heartbeat: last %v, usage %+v; want none", got.LastHeartbeat, got.Usage)
	}
	for i, at := range []time.Time{base.Add(time.Second), base.Add(2 * time.Second).In(time.FixedZone("X", 7200)), base.Add(time.Nanosecond * 1000)} {
		usage := store.Usage{Sites: i + 1, Serving: i, DiskBytes: int64(i) << 30, MemoryBytes: int64(i) << 20}
		if err := s.Heartbeat(ctx, "beating", at, usage); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		got := mustGetShard(t, s, "beating")
		if got.LastHeartbeat == nil || !got.LastHeartbeat.Equal(at) || got.Usage != usage {
			t.Errorf("heartbeat %d: last %v, usage %+v; want %v, %+v", i, got.LastHeartbeat, got.Usage, at, usage)
		}
		if got.ResourceVersion != created.ResourceVersion {
			t.Errorf("heartbeat %d moved resource version %d -> %d", i, created.ResourceVersion, got.ResourceVersion)
		}
		if after := revision(t, s); after != rev {
			t.Errorf("heartbeat %d moved revision %d -> %d", i, rev, after)
		}
	}
	// A heartbeat is not a change: the feed does not report it.
	cl := mustChanges(t, s, rev, store.ChangeOptions{})
	if len(cl.Shards) != 0 || len(cl.Sites) != 0 || cl.Revision != rev {
		t.Errorf("changes after heartbeats only: %+v", cl)
	}
	// An update keeps the heartbeat's fields.
	got, err := s.UpdateShard(ctx, "beating", func(x *store.Shard) error { x.Phase = store.ShardReady; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got.Usage.Sites != 3 || got.LastHeartbeat == nil || !got.LastHeartbeat.Equal(base.Add(time.Microsecond)) {
		t.Errorf("update lost the heartbeat: %+v", got)
	}
	if again := mustGetShard(t, s, "beating"); again.Usage.Sites != 3 || again.Phase != store.ShardReady {
		t.Errorf("stored after update: %+v", again)
	}
}

func testShardDeleteList(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	empty, err := s.ListShards(ctx)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty store lists %v, %v", empty, err)
	}
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("shard-%02d", i))
	}
	names = append(names, "Z-upper", "a", "shard-1x")
	for _, i := range rand.Perm(len(names)) {
		mustCreateShard(t, s, newShard(names[i]))
	}
	slices.Sort(names) // byte order
	list := func() []string {
		t.Helper()
		l, err := s.ListShards(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sh := range l {
			out = append(out, sh.Name)
			if sh.Capacity != 40 || sh.ResourceVersion == 0 {
				t.Errorf("listed shard %+v", sh)
			}
		}
		return out
	}
	if got := list(); !slices.Equal(got, names) {
		t.Errorf("list = %v, want %v", got, names)
	}
	before := revision(t, s)
	if err := s.DeleteShard(ctx, "shard-03"); err != nil {
		t.Fatal(err)
	}
	if after := revision(t, s); after != before+1 {
		t.Errorf("delete shard: revision %d -> %d, want one taken", before, after)
	}
	if _, err := s.GetShard(ctx, "shard-03"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: err = %v", err)
	}
	if err := s.DeleteShard(ctx, "shard-03"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v", err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "shard-03" })
	if got := list(); !slices.Equal(got, names) {
		t.Errorf("list after delete = %v, want %v", got, names)
	}
	// The name is free again.
	again := mustCreateShard(t, s, newShard("shard-03"))
	if again.ResourceVersion != before+2 {
		t.Errorf("re-created shard resource version %d, want %d", again.ResourceVersion, before+2)
	}
}

// testConcurrentShardWrites runs heartbeats, shard updates and site updates
// at once: none may lose another's write, and only the updates take
// revisions.
func testConcurrentShardWrites(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateShard(t, s, newShard("busy"))
	mustCreate(t, s, newSite("a.example.com"))
	start := revision(t, s)
	const workers, perWorker = 6, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { // heartbeats
			for i := range perWorker {
				at := base.Add(time.Duration(w*perWorker+i) * time.Second)
				if err := s.Heartbeat(ctx, "busy", at, store.Usage{Sites: w, Serving: i}); err != nil {
					t.Errorf("heartbeat: %v", err)
					return
				}
			}
		})
		wg.Go(func() { // shard updates
			for range perWorker {
				if _, err := s.UpdateShard(ctx, "busy", func(x *store.Shard) error { x.Capacity++; return nil }); err != nil {
					t.Errorf("update shard: %v", err)
					return
				}
			}
		})
		wg.Go(func() { // site updates
			for range perWorker {
				if _, err := s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error { x.Status.ObservedGeneration++; return nil }); err != nil {
					t.Errorf("update site: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	const total = workers * perWorker
	got := mustGetShard(t, s, "busy")
	if got.Capacity != 40+total {
		t.Errorf("capacity = %d, want %d: lost shard updates", got.Capacity, 40+total)
	}
	if got.LastHeartbeat == nil {
		t.Error("heartbeats lost")
	}
	if st := mustGet(t, s, "a.example.com"); st.Status.ObservedGeneration != 1+total {
		t.Errorf("observed generation = %d, want %d: lost site updates", st.Status.ObservedGeneration, 1+total)
	}
	if rev := revision(t, s); rev != start+2*total {
		t.Errorf("revision %d -> %d, want %d taken (updates only, no heartbeats)", start, rev, 2*total)
	}
	// The last heartbeat and the last update both stay.
	last := base.Add(24 * time.Hour)
	if err := s.Heartbeat(ctx, "busy", last, store.Usage{Sites: 77}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateShard(ctx, "busy", func(x *store.Shard) error { x.Cordoned = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := mustGetShard(t, s, "busy"); !got.Cordoned || got.Usage.Sites != 77 || !got.LastHeartbeat.Equal(last) {
		t.Errorf("after heartbeat then update: %+v", got)
	}
}
