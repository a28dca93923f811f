package placement_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/placement"
)

func healthy(name string, sites int, labels ...string) placement.Shard {
	s := placement.Shard{Name: name, Sites: sites, Healthy: true}
	if len(labels) > 0 {
		s.Labels = map[string]string{}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			s.Labels[k] = v
		}
	}
	return s
}

func with(s placement.Shard, f func(*placement.Shard)) placement.Shard {
	f(&s)
	return s
}

func TestChooseEligibility(t *testing.T) {
	eu := map[string]string{"region": "eu"}
	euGold := map[string]string{"region": "eu", "tier": "gold"}
	tests := []struct {
		name        string
		shards      []placement.Shard
		constraints map[string]string
		want        string // "" = ErrNoCapacity
		wantMsg     string // substring of the error
	}{
		{"no shards", nil, nil, "", "no shards"},
		{"one healthy", []placement.Shard{healthy("a", 0)}, nil, "a", ""},
		{"unhealthy skipped", []placement.Shard{with(healthy("a", 10), func(s *placement.Shard) { s.Healthy = false }), healthy("b", 0)}, nil, "b", ""},
		{"starting is eligible", []placement.Shard{{Name: "a", Starting: true}}, nil, "a", ""},
		{"cordoned skipped", []placement.Shard{with(healthy("a", 10), func(s *placement.Shard) { s.Cordoned = true }), healthy("b", 0)}, nil, "b", ""},
		{"draining skipped", []placement.Shard{with(healthy("a", 10), func(s *placement.Shard) { s.Draining = true }), healthy("b", 0)}, nil, "b", ""},
		{"full at default capacity", []placement.Shard{healthy("a", 50), healthy("b", 49)}, nil, "b", ""},
		{"full at own capacity", []placement.Shard{with(healthy("a", 5), func(s *placement.Shard) { s.Capacity = 5 }), healthy("b", 1)}, nil, "b", ""},
		{"larger own capacity", []placement.Shard{with(healthy("a", 60), func(s *placement.Shard) { s.Capacity = 80 }), healthy("b", 1)}, nil, "a", ""},
		{"region constraint", []placement.Shard{healthy("a", 10, "region=us"), healthy("b", 0, "region=eu")}, eu, "b", ""},
		{"two constraints", []placement.Shard{healthy("a", 10, "region=eu", "tier=std"), healthy("b", 0, "region=eu", "tier=gold")}, euGold, "b", ""},
		{"label missing", []placement.Shard{healthy("a", 0)}, eu, "", "1 not region=eu"},
		{"all excluded", []placement.Shard{
			healthy("full", 50, "region=eu", "tier=gold"),
			with(healthy("sick", 0, "region=eu"), func(s *placement.Shard) { s.Healthy = false }),
			with(healthy("cord", 0, "region=eu"), func(s *placement.Shard) { s.Cordoned = true }),
			with(healthy("drain", 0, "region=eu"), func(s *placement.Shard) { s.Draining = true }),
			healthy("us", 0, "region=us", "tier=gold"),
			healthy("eu-std", 0, "region=eu", "tier=std"),
		}, euGold, "", "6 shards: 1 full, 1 unhealthy, 1 cordoned, 1 draining, 1 not region=eu, 1 not tier=gold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p placement.Placer
			req := placement.Request{Site: "s.example", Constraints: tt.constraints}
			got, err := p.Choose(tt.shards, nil, req)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Choose = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, placement.ErrNoCapacity) {
				t.Fatalf("Choose = %q, %v; want ErrNoCapacity", got, err)
			}
			var nc *placement.NoCapacityError
			if !errors.As(err, &nc) || nc.Site != "s.example" {
				t.Fatalf("error %v is not a *NoCapacityError for the site", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
		})
	}
}

func TestChooseBinPacking(t *testing.T) {
	var p placement.Placer
	shards := []placement.Shard{healthy("a", 10), healthy("b", 30), healthy("c", 49), healthy("d", 0)}
	if got, _ := p.Choose(shards, nil, placement.Request{Site: "x"}); got != "c" {
		t.Fatalf("Choose = %q, want the fullest with room, c", got)
	}
	shards[2].Sites = 50
	if got, _ := p.Choose(shards, nil, placement.Request{Site: "x"}); got != "b" {
		t.Fatalf("Choose = %q, want b once c is full", got)
	}
	// Room, not count, decides across capacities: a has 5 left, b 10.
	shards = []placement.Shard{
		with(healthy("a", 15), func(s *placement.Shard) { s.Capacity = 20 }),
		with(healthy("b", 40), func(s *placement.Shard) { s.Capacity = 50 }),
	}
	if got, _ := p.Choose(shards, nil, placement.Request{Site: "x"}); got != "a" {
		t.Fatalf("Choose = %q, want a (least room)", got)
	}
}

func TestIndexFillsShardsOneByOne(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{})
	for _, n := range []string{"c", "a", "b"} {
		mustAdd(t, idx, placement.Shard{Name: n, Capacity: 3, Healthy: true})
	}
	var got []string
	for i := range 9 {
		s, err := idx.Place(placement.Request{Site: fmt.Sprintf("s%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if want := "a a a b b b c c c"; strings.Join(got, " ") != want {
		t.Fatalf("placements %v, want %s", got, want)
	}
	if _, err := idx.Place(placement.Request{Site: "s9"}); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("10th site: %v, want ErrNoCapacity", err)
	}
}

func TestTenantSpread(t *testing.T) {
	var p placement.Placer
	shards := []placement.Shard{healthy("a", 20), healthy("b", 10), healthy("c", 5)}
	req := placement.Request{Site: "x", Tenant: "acme"}
	// First site: plain bin-packing.
	if got, _ := p.Choose(shards, nil, req); got != "a" {
		t.Fatalf("first site on %q, want a", got)
	}
	// Second: another shard, the fullest of those without the tenant.
	if got, _ := p.Choose(shards, map[string]int{"a": 1}, req); got != "b" {
		t.Fatalf("second site on %q, want b", got)
	}
	// One site everywhere: back to the fullest.
	if got, _ := p.Choose(shards, map[string]int{"a": 1, "b": 1, "c": 1}, req); got != "a" {
		t.Fatalf("fourth site on %q, want a", got)
	}
	// Only the tenant's shard is eligible: it takes the site.
	shards[1].Cordoned, shards[2].Healthy = true, false
	if got, _ := p.Choose(shards, map[string]int{"a": 1}, req); got != "a" {
		t.Fatalf("second site on %q, want a (only eligible)", got)
	}
	// No tenant: no spread.
	if got, _ := p.Choose(shards, map[string]int{"a": 5}, placement.Request{Site: "x"}); got != "a" {
		t.Fatalf("tenantless site on %q, want a", got)
	}

	// The index counts tenants itself.
	idx := placement.NewIndex(placement.Placer{})
	for _, n := range []string{"a", "b", "c"} {
		mustAdd(t, idx, placement.Shard{Name: n, Healthy: true})
	}
	seen := map[string]bool{}
	for i := range 3 {
		s, err := idx.Place(placement.Request{Site: fmt.Sprintf("t%d", i), Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		seen[s] = true
	}
	if len(seen) != 3 {
		t.Fatalf("a tenant's 3 sites on %v, want 3 shards", seen)
	}
	if got := idx.TenantSites("acme"); len(got) != 3 || got["a"] != 1 {
		t.Fatalf("TenantSites = %v", got)
	}
	// Another tenant packs onto the fullest, a (ties by name).
	if s, _ := idx.Place(placement.Request{Site: "o1", Tenant: "other"}); s != "a" {
		t.Fatalf("other tenant on %q, want a", s)
	}
}

func TestHeadroom(t *testing.T) {
	p := placement.Placer{Headroom: 0.2} // capacity 10: line at 8
	cap10 := func(s placement.Shard) placement.Shard { s.Capacity = 10; return s }
	tests := []struct {
		name   string
		shards []placement.Shard
		want   string
	}{
		{"below line: fullest", []placement.Shard{cap10(healthy("a", 7)), cap10(healthy("b", 3))}, "a"},
		{"at line: skipped while another is below", []placement.Shard{cap10(healthy("a", 8)), cap10(healthy("b", 3))}, "b"},
		{"all above: most room", []placement.Shard{cap10(healthy("a", 9)), cap10(healthy("b", 8))}, "b"},
		{"above line still accepts", []placement.Shard{cap10(healthy("a", 9)), cap10(healthy("b", 10))}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := p.Choose(tt.shards, nil, placement.Request{Site: "x"}); got != tt.want {
				t.Fatalf("Choose = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// 0.1 of 50 reserves exactly 5: the first shard fills to 45, then the
	// second to 45, then the slack is used evenly; 100 sites fit, not 101.
	idx := placement.NewIndex(placement.Placer{Headroom: 0.1})
	mustAdd(t, idx, placement.Shard{Name: "a", Healthy: true})
	mustAdd(t, idx, placement.Shard{Name: "b", Healthy: true})
	count := map[string]int{}
	for i := range 100 {
		s, err := idx.Place(placement.Request{Site: fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("site %d: %v", i, err)
		}
		count[s]++
		if i == 44 && count["a"] != 45 {
			t.Fatalf("after 45 sites: %v, want all on a", count)
		}
		if i == 89 && (count["a"] != 45 || count["b"] != 45) {
			t.Fatalf("after 90 sites: %v, want 45 each", count)
		}
		if i == 91 && (count["a"] != 46 || count["b"] != 46) {
			t.Fatalf("after 92 sites: %v, want slack used evenly", count)
		}
	}
	if _, err := idx.Place(placement.Request{Site: "101"}); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("101st site: %v, want ErrNoCapacity", err)
	}
}

func TestChooseDeterministic(t *testing.T) {
	var p placement.Placer
	// Equal candidates everywhere: the name decides, whatever the order.
	shards := []placement.Shard{}
	for i := range 50 {
		shards = append(shards, healthy(fmt.Sprintf("s%02d", i), 7, "region=eu"))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		rng.Shuffle(len(shards), func(i, j int) { shards[i], shards[j] = shards[j], shards[i] })
		got, err := p.Choose(shards, map[string]int{"s00": 1}, placement.Request{Site: "x", Tenant: "t"})
		if err != nil || got != "s01" {
			t.Fatalf("Choose = %q, %v; want s01", got, err)
		}
	}
}

func TestChooseDoesNotModify(t *testing.T) {
	var p placement.Placer
	shards := []placement.Shard{healthy("a", 1, "region=eu")}
	tenant := map[string]int{"a": 1}
	cons := map[string]string{"region": "eu"}
	if _, err := p.Choose(shards, tenant, placement.Request{Site: "x", Tenant: "t", Constraints: cons}); err != nil {
		t.Fatal(err)
	}
	if shards[0].Sites != 1 || tenant["a"] != 1 || len(tenant) != 1 || len(cons) != 1 {
		t.Fatal("Choose modified its arguments")
	}
}

func mustAdd(t testing.TB, idx *placement.Index, s placement.Shard) {
	t.Helper()
	if err := idx.Add(s); err != nil {
		t.Fatal(err)
	}
}
