package placement_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/placement"
)

func TestIndexShardsAndSites(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{})
	if err := idx.Add(placement.Shard{}); !errors.Is(err, placement.ErrInvalid) {
		t.Fatalf("Add(no name) = %v, want ErrInvalid", err)
	}
	mustAdd(t, idx, placement.Shard{Name: "a", Healthy: true, Sites: 99}) // Sites ignored
	mustAdd(t, idx, placement.Shard{Name: "b", Healthy: true})
	if err := idx.Add(placement.Shard{Name: "a"}); !errors.Is(err, placement.ErrShardExists) {
		t.Fatalf("Add(dup) = %v, want ErrShardExists", err)
	}
	if err := idx.Update(placement.Shard{Name: "zz"}); !errors.Is(err, placement.ErrUnknownShard) {
		t.Fatalf("Update(unknown) = %v, want ErrUnknownShard", err)
	}
	if err := idx.Assign("x", "t", "zz"); !errors.Is(err, placement.ErrUnknownShard) {
		t.Fatalf("Assign(unknown shard) = %v", err)
	}
	if err := idx.Assign("", "t", "a"); !errors.Is(err, placement.ErrInvalid) {
		t.Fatalf("Assign(no site) = %v", err)
	}
	if err := idx.Assign("x", "t", "a"); err != nil {
		t.Fatal(err)
	}
	if err := idx.Assign("x", "t", "a"); err != nil {
		t.Fatalf("Assign again, same shard = %v, want nil", err)
	}
	if err := idx.Assign("x", "t", "b"); !errors.Is(err, placement.ErrAssigned) {
		t.Fatalf("Assign to another shard = %v, want ErrAssigned", err)
	}
	if s, _ := idx.Shard("a"); s.Sites != 1 {
		t.Fatalf("a holds %d sites, want 1", s.Sites)
	}
	if err := idx.Remove("a"); !errors.Is(err, placement.ErrShardNotEmpty) {
		t.Fatalf("Remove(non-empty) = %v", err)
	}
	if err := idx.Move("x", "b"); err != nil {
		t.Fatal(err)
	}
	if s, _ := idx.ShardOf("x"); s != "b" {
		t.Fatalf("x on %q after Move, want b", s)
	}
	if got := idx.TenantSites("t"); len(got) != 1 || got["b"] != 1 {
		t.Fatalf("TenantSites after Move = %v", got)
	}
	if err := idx.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := idx.Remove("a"); !errors.Is(err, placement.ErrUnknownShard) {
		t.Fatalf("Remove twice = %v", err)
	}
	// Update keeps the sites and changes the state.
	if err := idx.Update(placement.Shard{Name: "b", Cordoned: true, Healthy: true}); err != nil {
		t.Fatal(err)
	}
	if s, _ := idx.Shard("b"); s.Sites != 1 || !s.Cordoned {
		t.Fatalf("after Update: %+v", s)
	}
	if _, err := idx.Place(placement.Request{Site: "y"}); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("Place on cordoned only = %v", err)
	}
	// A placed site stays where it is.
	if s, err := idx.Place(placement.Request{Site: "x"}); err != nil || s != "b" {
		t.Fatalf("Place(already placed) = %q, %v", s, err)
	}
	if s, ok := idx.Unassign("x"); !ok || s != "b" {
		t.Fatalf("Unassign = %q, %v", s, ok)
	}
	if _, ok := idx.Unassign("x"); ok {
		t.Fatal("Unassign twice reported ok")
	}
	if got := idx.TenantSites("t"); len(got) != 0 {
		t.Fatalf("TenantSites after Unassign = %v", got)
	}
	if got := idx.Shards(); len(got) != 1 || got[0].Name != "b" || got[0].Sites != 0 {
		t.Fatalf("Shards = %+v", got)
	}
}

func TestIndexStartingUntilHealthy(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{})
	mustAdd(t, idx, placement.Shard{Name: "new", Starting: true})
	if s, err := idx.Choose(placement.Request{Site: "x"}); err != nil || s != "new" {
		t.Fatalf("Choose = %q, %v; want the starting shard", s, err)
	}
	// Still not healthy: stays Starting.
	if err := idx.Update(placement.Shard{Name: "new"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := idx.Shard("new"); !s.Starting {
		t.Fatal("Starting cleared by an unhealthy update")
	}
	if err := idx.Update(placement.Shard{Name: "new", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	// Healthy, then sick: an ordinary unhealthy shard.
	if err := idx.Update(placement.Shard{Name: "new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Choose(placement.Request{Site: "x"}); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("Choose on a sick shard = %v, want ErrNoCapacity", err)
	}
}

func TestPlanDrain(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{})
	mustAdd(t, idx, placement.Shard{Name: "old", Capacity: 4, Healthy: true})
	mustAdd(t, idx, placement.Shard{Name: "eu1", Capacity: 2, Healthy: true, Labels: map[string]string{"region": "eu"}})
	mustAdd(t, idx, placement.Shard{Name: "eu2", Capacity: 2, Healthy: true, Labels: map[string]string{"region": "eu"}})
	for i := range 4 {
		if err := idx.Assign(fmt.Sprintf("s%d", i), "t", "old"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := idx.PlanDrain("old", nil); !errors.Is(err, placement.ErrInvalid) {
		t.Fatalf("PlanDrain(not draining) = %v", err)
	}
	if err := idx.Update(placement.Shard{Name: "old", Capacity: 4, Healthy: true, Draining: true}); err != nil {
		t.Fatal(err)
	}
	eu := func(string) map[string]string { return map[string]string{"region": "eu"} }
	moves, err := idx.PlanDrain("old", eu)
	if err != nil {
		t.Fatal(err)
	}
	to := map[string]int{}
	for _, m := range moves {
		if m.From != "old" || m.Tenant != "t" {
			t.Fatalf("move %+v", m)
		}
		to[m.To]++
	}
	// Four sites, two per shard; the tenant spread alternates them.
	if len(moves) != 4 || to["eu1"] != 2 || to["eu2"] != 2 || moves[0].To != "eu1" || moves[1].To != "eu2" {
		t.Fatalf("moves %+v", moves)
	}
	// Planning changed nothing.
	if s, _ := idx.Shard("old"); s.Sites != 4 {
		t.Fatalf("old holds %d after planning, want 4", s.Sites)
	}
	if s, _ := idx.Shard("eu1"); s.Sites != 0 {
		t.Fatalf("eu1 holds %d after planning, want 0", s.Sites)
	}
	// Applying the moves empties the shard.
	for _, m := range moves {
		if err := idx.Move(m.Site, m.To); err != nil {
			t.Fatal(err)
		}
	}
	if err := idx.Remove("old"); err != nil {
		t.Fatal(err)
	}

	// Not enough room: the moves that fit, and ErrNoCapacity.
	mustAdd(t, idx, placement.Shard{Name: "old2", Healthy: true, Draining: true})
	for i := range 2 {
		if err := idx.Assign(fmt.Sprintf("o%d", i), "", "old2"); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(t, idx, placement.Shard{Name: "small", Capacity: 1, Healthy: true})
	moves, err = idx.PlanDrain("old2", nil)
	if !errors.Is(err, placement.ErrNoCapacity) || len(moves) != 1 || moves[0].To != "small" {
		t.Fatalf("PlanDrain = %+v, %v", moves, err)
	}
}

// fakeProvider creates local shards named grown-1, grown-2, … that are not
// healthy yet.
type fakeProvider struct {
	n        atomic.Int32
	capacity int
	delay    time.Duration
	err      error
	noLabels bool
}

func (p *fakeProvider) CreateShard(ctx context.Context, labels map[string]string) (placement.Shard, error) {
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	if p.err != nil {
		return placement.Shard{}, p.err
	}
	n := p.n.Add(1)
	if p.noLabels {
		labels = nil
	}
	return placement.Shard{Name: fmt.Sprintf("grown-%d", n), Labels: labels, Capacity: p.capacity}, nil
}

// threeFull returns an index of three healthy shards of capacity 2 holding
// 6 sites, placed through PlaceOrGrow without creating any shard.
func threeFull(t *testing.T, prov *fakeProvider) *placement.Index {
	t.Helper()
	idx := placement.NewIndex(placement.Placer{})
	for i := range 3 {
		mustAdd(t, idx, placement.Shard{Name: fmt.Sprintf("local-%d", i), Capacity: 2, Healthy: true})
	}
	for i := range 6 {
		if _, err := placement.PlaceOrGrow(context.Background(), idx, prov, placement.Request{Site: fmt.Sprintf("s%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := prov.n.Load(); n != 0 {
		t.Fatalf("6 sites on 3×2 created %d shards, want 0", n)
	}
	return idx
}

func TestPlaceOrGrowSequential(t *testing.T) {
	prov := &fakeProvider{capacity: 2}
	idx := threeFull(t, prov)
	ctx := context.Background()
	s, err := placement.PlaceOrGrow(ctx, idx, prov, placement.Request{Site: "s6"})
	if err != nil || s != "grown-1" || prov.n.Load() != 1 {
		t.Fatalf("7th site: %q, %v, %d shards created; want grown-1, 1", s, err, prov.n.Load())
	}
	if sh, _ := idx.Shard("grown-1"); !sh.Starting || sh.Healthy || sh.Sites != 1 {
		t.Fatalf("new shard %+v, want Starting with 1 site", sh)
	}
	// The 8th fits on the new (still starting) shard; the 9th grows again.
	if s, err := placement.PlaceOrGrow(ctx, idx, prov, placement.Request{Site: "s7"}); err != nil || s != "grown-1" || prov.n.Load() != 1 {
		t.Fatalf("8th site: %q, %v, %d created", s, err, prov.n.Load())
	}
	if s, err := placement.PlaceOrGrow(ctx, idx, prov, placement.Request{Site: "s8"}); err != nil || s != "grown-2" || prov.n.Load() != 2 {
		t.Fatalf("9th site: %q, %v, %d created", s, err, prov.n.Load())
	}
}

func TestPlaceOrGrowBurst(t *testing.T) {
	for _, burst := range []int{2, 10, 31} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			prov := &fakeProvider{capacity: 2, delay: 5 * time.Millisecond}
			idx := threeFull(t, prov)
			var wg sync.WaitGroup
			errs := make(chan error, burst)
			for i := range burst {
				wg.Go(func() {
					if _, err := placement.PlaceOrGrow(context.Background(), idx, prov, placement.Request{Site: fmt.Sprintf("b%d", i)}); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if want := int32((burst + 1) / 2); prov.n.Load() != want {
				t.Fatalf("burst of %d created %d shards, want %d", burst, prov.n.Load(), want)
			}
			for _, s := range idx.Shards() {
				if s.Sites > 2 {
					t.Fatalf("shard %s over capacity: %d", s.Name, s.Sites)
				}
			}
		})
	}
}

func TestPlaceOrGrowLabelsAndErrors(t *testing.T) {
	ctx := context.Background()
	eu := placement.Request{Site: "x", Constraints: map[string]string{"region": "eu"}}

	// The new shard carries the constraints as labels.
	prov := &fakeProvider{}
	idx := placement.NewIndex(placement.Placer{})
	mustAdd(t, idx, placement.Shard{Name: "us", Healthy: true, Labels: map[string]string{"region": "us"}})
	if s, err := placement.PlaceOrGrow(ctx, idx, prov, eu); err != nil || s != "grown-1" {
		t.Fatalf("PlaceOrGrow = %q, %v", s, err)
	}
	if sh, _ := idx.Shard("grown-1"); sh.Labels["region"] != "eu" || sh.Capacity != 0 {
		t.Fatalf("new shard %+v", sh)
	}

	// A provider error is returned, and nothing is added.
	boom := errors.New("boom")
	idx = placement.NewIndex(placement.Placer{})
	if _, err := placement.PlaceOrGrow(ctx, idx, &fakeProvider{err: boom}, eu); !errors.Is(err, boom) {
		t.Fatalf("PlaceOrGrow = %v, want boom", err)
	}
	if len(idx.Shards()) != 0 {
		t.Fatal("a shard was added")
	}

	// A shard without the constraint's label is refused.
	if _, err := placement.PlaceOrGrow(ctx, idx, &fakeProvider{noLabels: true}, eu); !errors.Is(err, placement.ErrBadShard) {
		t.Fatalf("PlaceOrGrow = %v, want ErrBadShard", err)
	}

	// A request without a site is refused.
	if _, err := placement.PlaceOrGrow(ctx, idx, prov, placement.Request{}); !errors.Is(err, placement.ErrInvalid) {
		t.Fatalf("PlaceOrGrow(no site) = %v", err)
	}
}

func TestIndexConcurrent(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{Headroom: 0.1})
	for i := range 20 {
		mustAdd(t, idx, placement.Shard{Name: fmt.Sprintf("s%02d", i), Capacity: 10, Healthy: true,
			Labels: map[string]string{"region": []string{"eu", "us"}[i%2]}})
	}
	prov := &fakeProvider{capacity: 10}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []string
			for i := range 300 {
				req := placement.Request{
					Site:        fmt.Sprintf("g%d-%d", g, i),
					Tenant:      fmt.Sprintf("t%d", rng.IntN(5)),
					Constraints: map[string]string{"region": []string{"eu", "us"}[rng.IntN(2)]},
				}
				switch rng.IntN(5) {
				case 0:
					_, _ = idx.Choose(req)
				case 1:
					if len(mine) > 0 {
						idx.Unassign(mine[len(mine)-1])
						mine = mine[:len(mine)-1]
					}
				case 2:
					_ = idx.Update(placement.Shard{Name: fmt.Sprintf("s%02d", rng.IntN(20)), Capacity: 10, Healthy: true,
						Cordoned: rng.IntN(4) == 0, Labels: map[string]string{"region": "eu"}})
					_ = idx.Shards()
				default:
					if _, err := placement.PlaceOrGrow(context.Background(), idx, prov, req); err != nil {
						t.Error(err)
						return
					}
					mine = append(mine, req.Site)
				}
			}
		})
	}
	wg.Wait()
	for _, s := range idx.Shards() {
		if s.Sites > s.Cap() {
			t.Errorf("shard %s holds %d > %d", s.Name, s.Sites, s.Cap())
		}
	}
}

// BenchmarkChoose50kOver1000 places 50,000 sites (5,000 tenants, 3 regions,
// 2 tiers) over 1,000 shards through the index, then measures placing one
// more site (Place, then Unassign to keep the state) per iteration. It
// reports ns/placement for the measured loop and fill-ns/placement for the
// 50,000 placements that built the index.
func BenchmarkChoose50kOver1000(b *testing.B) {
	regions := []string{"eu", "us", "ap"}
	tiers := []string{"std", "gold"}
	idx := placement.NewIndex(placement.Placer{Headroom: 0.1})
	for i := range 1000 {
		s := placement.Shard{
			Name:     fmt.Sprintf("shard-%04d", i),
			Capacity: 60, // 60,000 slots for 50,000 sites: room left to place
			Healthy:  true,
			Cordoned: i%97 == 0,
			Labels:   map[string]string{"region": regions[i%3], "tier": tiers[(i/3)%2]},
		}
		mustAdd(b, idx, s)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	req := func(site string) placement.Request {
		r := placement.Request{Site: site, Tenant: fmt.Sprintf("tenant-%d", rng.IntN(5000))}
		switch rng.IntN(3) {
		case 0:
			r.Constraints = map[string]string{"region": regions[rng.IntN(3)]}
		case 1:
			r.Constraints = map[string]string{"region": regions[rng.IntN(3)], "tier": tiers[rng.IntN(2)]}
		}
		return r
	}
	start := time.Now()
	for i := range 50000 {
		if _, err := idx.Place(req(fmt.Sprintf("site-%d.example", i))); err != nil {
			b.Fatalf("site %d: %v", i, err)
		}
	}
	fill := time.Since(start)
	reqs := make([]placement.Request, 1024)
	for i := range reqs {
		reqs[i] = req(fmt.Sprintf("new-%d.example", i))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		if _, err := idx.Place(r); err != nil {
			b.Fatal(err)
		}
		idx.Unassign(r.Site)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/placement")
	b.ReportMetric(float64(fill.Nanoseconds())/50000, "fill-ns/placement")
}

func TestIndexRelabel(t *testing.T) {
	idx := placement.NewIndex(placement.Placer{})
	mustAdd(t, idx, placement.Shard{Name: "a", Healthy: true, Labels: map[string]string{"region": "us"}})
	mustAdd(t, idx, placement.Shard{Name: "b", Healthy: true, Labels: map[string]string{"region": "us"}})
	eu := placement.Request{Site: "x", Constraints: map[string]string{"region": "eu"}}
	if _, err := idx.Choose(eu); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("Choose(eu) = %v", err)
	}
	if err := idx.Update(placement.Shard{Name: "b", Healthy: true, Labels: map[string]string{"region": "eu"}}); err != nil {
		t.Fatal(err)
	}
	if s, err := idx.Choose(eu); err != nil || s != "b" {
		t.Fatalf("Choose(eu) after relabel = %q, %v", s, err)
	}
	if err := idx.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Choose(eu); !errors.Is(err, placement.ErrNoCapacity) {
		t.Fatalf("Choose(eu) after Remove = %v", err)
	}
	mustAdd(t, idx, placement.Shard{Name: "c", Healthy: true, Labels: map[string]string{"region": "eu"}})
	if s, err := idx.Choose(eu); err != nil || s != "c" {
		t.Fatalf("Choose(eu) = %q, %v; want c", s, err)
	}
	if s, err := idx.Choose(placement.Request{Site: "y"}); err != nil || s != "a" {
		t.Fatalf("Choose() = %q, %v; want a", s, err)
	}
}
