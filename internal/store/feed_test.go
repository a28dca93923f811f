package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

func siteOn(shard string, move *site.Move) *site.Site {
	return &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "u1"}, Status: site.Status{Shard: shard}, Move: move}
}

func TestLeftShardsAndTombstones(t *testing.T) {
	active := &site.Move{Source: "A", Target: "B", Phase: site.MoveImporting}
	switched := &site.Move{Source: "A", Target: "B", Phase: site.MoveCleaningUp}
	done := &site.Move{Source: "A", Target: "B", Phase: site.MoveDone}
	aborted := &site.Move{Source: "A", Target: "B", Phase: site.MoveAborted}
	for _, c := range []struct {
		name          string
		before, after *site.Site
		want          string
	}{
		{"nothing changed", siteOn("A", nil), siteOn("A", nil), "[]"},
		{"placed", siteOn("", nil), siteOn("A", nil), "[]"},
		{"reassigned", siteOn("A", nil), siteOn("C", nil), "[A]"},
		{"unplaced", siteOn("A", nil), siteOn("", nil), "[A]"},
		{"move starts", siteOn("A", nil), siteOn("A", active), "[]"},
		{"move switches", siteOn("A", active), siteOn("B", switched), "[]"},
		{"move done", siteOn("B", switched), siteOn("B", done), "[A]"},
		{"move aborted", siteOn("A", active), siteOn("A", aborted), "[B]"},
		{"done at once", siteOn("A", active), siteOn("B", done), "[A]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := UpdateTombstones(c.before, c.after, 7)
			var shards []string
			for _, ts := range got {
				if ts.Name != "a.example.com" || ts.UID != "u1" || ts.Revision != 7 || ts.Deleted {
					t.Errorf("tombstone %+v", ts)
				}
				shards = append(shards, ts.Shard)
			}
			if s := fmt.Sprint(shards); s != c.want {
				t.Errorf("left %v, want %v", s, c.want)
			}
		})
	}
}

func TestDeleteTombstones(t *testing.T) {
	for _, c := range []struct {
		name string
		s    *site.Site
		want []string
	}{
		{"placed", siteOn("A", nil), []string{"A"}},
		{"moving", siteOn("A", &site.Move{Source: "A", Target: "B", Phase: site.MoveExporting}), []string{"A", "B"}},
		{"unplaced", siteOn("", nil), []string{""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var shards []string
			for _, ts := range DeleteTombstones(c.s, 9) {
				if !ts.Deleted || ts.Revision != 9 || ts.UID != "u1" {
					t.Errorf("tombstone %+v", ts)
				}
				shards = append(shards, ts.Shard)
			}
			if !slices.Equal(shards, c.want) {
				t.Errorf("shards %q, want %q", shards, c.want)
			}
		})
	}
}

func TestMoveEncoding(t *testing.T) {
	for _, m := range []*site.Move{nil, {ID: "m1", Source: "A", Target: "B", Phase: site.MoveExporting, RequestedAt: time.Unix(5, 6).UTC()}} {
		b, err := EncodeMove(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMove("x", b)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (m == nil) || (m != nil && (got.ID != m.ID || !got.RequestedAt.Equal(m.RequestedAt))) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
	}
	if m, err := DecodeMove("x", nil); m != nil || err != nil {
		t.Errorf("empty: %v, %v", m, err)
	}
	if _, err := DecodeMove("x", []byte("{")); err == nil {
		t.Error("bad JSON decoded")
	}
	src, dst := MoveShards(siteOn("A", &site.Move{Source: "A", Target: "B", Phase: site.MoveDone}))
	if src != "" || dst != "" {
		t.Errorf("finished move gives %q %q", src, dst)
	}
	src, dst = MoveShards(siteOn("A", &site.Move{Source: "A", Target: "B", Phase: site.MoveImporting}))
	if src != "A" || dst != "B" {
		t.Errorf("active move gives %q %q", src, dst)
	}
}

func TestCheckSince(t *testing.T) {
	for _, c := range []struct {
		since, horizon int64
		want           error
	}{
		{0, 0, nil}, {5, 0, nil}, {-1, 0, ErrInvalid}, {4, 5, ErrExpired}, {5, 5, nil}, {-1, 5, ErrInvalid},
	} {
		err := CheckSince(c.since, c.horizon)
		if (c.want == nil && err != nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("CheckSince(%d, %d) = %v, want %v", c.since, c.horizon, err, c.want)
		}
	}
}

func TestValidateListOptions(t *testing.T) {
	if err := ValidateListOptions(ListOptions{Shard: "a", Unplaced: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("shard+unplaced: %v", err)
	}
	for _, o := range []ListOptions{{}, {Shard: "a"}, {Unplaced: true}} {
		if err := ValidateListOptions(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestCutChanges(t *testing.T) {
	sites := func(rvs ...int64) []site.Site {
		var out []site.Site
		for _, rv := range rvs {
			out = append(out, site.Site{Metadata: site.Metadata{ResourceVersion: rv}})
		}
		return out
	}
	shards := func(rvs ...int64) []Shard {
		var out []Shard
		for _, rv := range rvs {
			out = append(out, Shard{ResourceVersion: rv})
		}
		return out
	}
	for _, c := range []struct {
		name              string
		sites             []site.Site
		shards            []Shard
		limit             int
		wantSites, wantSh int
		wantUpTo          int64
		wantMore          bool
	}{
		{"empty", nil, nil, 3, 0, 0, 99, false},
		{"fits", sites(1, 4), shards(2), 3, 2, 1, 99, false},
		{"cut sites only", sites(1, 2, 3, 4), nil, 3, 3, 0, 3, true},
		{"cut interleaved", sites(1, 4, 6, 7), shards(2, 3, 5, 8), 5, 2, 3, 5, true},
		{"cut shards only", nil, shards(3, 4), 1, 0, 1, 3, true},
		{"cut after shards", sites(9, 10), shards(3, 4), 2, 0, 2, 4, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			gs, gsh, upTo, more := CutChanges(c.sites, c.shards, c.limit, 99)
			if len(gs) != c.wantSites || len(gsh) != c.wantSh || upTo != c.wantUpTo || more != c.wantMore {
				t.Errorf("got %d sites %d shards up to %d more %v; want %d %d %d %v",
					len(gs), len(gsh), upTo, more, c.wantSites, c.wantSh, c.wantUpTo, c.wantMore)
			}
		})
	}
}

func TestPrepareShardUpdate(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	beat := created.Add(time.Minute)
	base := func() *Shard {
		return &Shard{Name: "s1", Capacity: 10, Labels: map[string]string{"zone": "a"}, Phase: ShardReady,
			CreatedAt: created, ResourceVersion: 7, LastHeartbeat: &beat, Usage: Usage{Sites: 3}}
	}
	for _, c := range []struct {
		name      string
		mutate    func(*Shard)
		invalid   bool
		wantWrite bool
	}{
		{"nothing", func(*Shard) {}, false, false},
		{"cordon", func(s *Shard) { s.Cordoned = true }, false, true},
		{"phase", func(s *Shard) { s.Phase = ShardUnhealthy }, false, true},
		{"labels nil to empty", func(s *Shard) { s.Labels = nil }, false, true},
		{"heartbeat and usage ignored", func(s *Shard) { s.LastHeartbeat = nil; s.Usage.Sites = 99; s.ResourceVersion = 1 }, false, false},
		{"created_at same instant", func(s *Shard) { s.CreatedAt = created.In(time.FixedZone("x", 3600)) }, false, false},
		{"name", func(s *Shard) { s.Name = "s2" }, true, false},
		{"created_at", func(s *Shard) { s.CreatedAt = created.Add(time.Second) }, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, next := base(), base()
			c.mutate(next)
			write, err := PrepareShardUpdate(before, next)
			if c.invalid {
				if !errors.Is(err, ErrInvalid) || write {
					t.Fatalf("got write %v, err %v; want ErrInvalid", write, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if write != c.wantWrite {
				t.Errorf("write = %v, want %v", write, c.wantWrite)
			}
			if next.ResourceVersion != 7 || next.LastHeartbeat != before.LastHeartbeat || next.Usage != before.Usage {
				t.Errorf("store-owned fields not restored: %+v", next)
			}
		})
	}
}

func TestShardEncoding(t *testing.T) {
	beat := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	in := &Shard{Name: "s1", Capacity: 10, Roots: []string{"/srv/core"}, Phase: ShardReady, CreatedAt: beat,
		ResourceVersion: 3, LastHeartbeat: &beat, Usage: Usage{Sites: 2, DiskBytes: 5}}
	body, err := EncodeShard(in)
	if err != nil {
		t.Fatal(err)
	}
	usage, err := EncodeUsage(in.Usage)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeShard("s1", 3, &beat, body, usage)
	if err != nil {
		t.Fatal(err)
	}
	if same, _ := jsonEqual(in, out); !same {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	bare, err := DecodeShard("s1", 3, nil, body, nil)
	if err != nil || bare.Usage != (Usage{}) || bare.LastHeartbeat != nil {
		t.Errorf("body alone: %+v, %v", bare, err)
	}
	if _, err := DecodeShard("s1", 3, nil, []byte("{"), nil); err == nil {
		t.Error("bad body decoded")
	}
	if err := ValidateNewShard(&Shard{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty name: %v", err)
	}
	if err := ValidateNewShard(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil: %v", err)
	}
}
