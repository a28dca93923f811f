package cost

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultSheet(t *testing.T) {
	s := Default()
	if s.Currency != "USD" || s.Prices.VCPUHour <= 0 || s.Prices.EgressGB <= 0 || s.Shard.VCPU <= 0 || s.FixedShare != 0.5 {
		t.Errorf("default sheet %+v", s)
	}
	// 2 vCPU, 8 GB, 100 GB pd-balanced for a 730-hour month.
	c, st := s.ShardCost("any", MonthHours)
	if got := int64((c+st)*100 + 0.5); got != 8090 {
		t.Errorf("a default shard's month = %d cents, want 8090 (2×0.031611×730 + 8×0.004237×730 + 100×0.10)", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"currency: USD\nprices: {vcpu_hour: -1}\n", "want a number ≥ 0"},
		{"prices: {vcpu_hour: 1}\n", "currency is required"},
		{"currency: USD\nfixed_share: 1.5\n", "fixed_share"},
		{"currency: USD\nprice: {}\n", "unknown field"},
		{"currency: USD\nshards: {big: {vcpu: -4}}\n", "want a number ≥ 0"},
	} {
		if _, err := Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func sum(a Allocation) (share int64) {
	for _, s := range a.Sites {
		share += s.Share
	}
	return share
}

// TestAllocate: shares add up to the shard's cost to the cent, idle sites
// pay the fixed share, busy ones the rest by PHP time and storage.
func TestAllocate(t *testing.T) {
	s := &Sheet{Currency: "USD", FixedShare: 0.5, Prices: Prices{VCPUHour: 0.01, DiskGBMonth: 0.73, EgressGB: 0.1, ObjectGBMonth: 0.73},
		Shard: Shard{VCPU: 1, DiskGB: 10}, Shards: map[string]Shard{"big": {VCPU: 3}}}
	// 100 hours: compute 1.00, storage 10×0.73×100/730 = 1.00: 200 cents.
	for _, tc := range []struct {
		name  string
		shard string
		sites []SiteUsage
		want  map[string]SiteCost
	}{
		{"one busy one idle", "s1", []SiteUsage{
			{Site: "busy", PHPMicros: 10, StorageBytes: 3, BytesOut: GB, BackupBytes: GB},
			{Site: "idle"},
		}, map[string]SiteCost{
			// fixed 50 each; usage 100 all to busy.
			"busy": {Site: "busy", Share: 150, Fixed: 50, Usage: 100, Egress: 10, Backup: 10, Total: 170},
			"idle": {Site: "idle", Share: 50, Fixed: 50, Usage: 0, Total: 50},
		}},
		{"three idle: the cent left over goes to the first by name", "s1", []SiteUsage{{Site: "c"}, {Site: "a"}, {Site: "b"}}, map[string]SiteCost{
			"a": {Site: "a", Share: 67, Fixed: 33, Usage: 34, Total: 67},
			"b": {Site: "b", Share: 67, Fixed: 33, Usage: 34, Total: 67},
			"c": {Site: "c", Share: 66, Fixed: 33, Usage: 33, Total: 66},
		}},
		{"no PHP: compute by requests", "s1", []SiteUsage{{Site: "a", Requests: 3}, {Site: "b", Requests: 1}}, map[string]SiteCost{
			// compute 100: fixed 25+25, usage 37.5+12.5; storage 100: fixed 25+25, usage 25+25.
			"a": {Site: "a", Share: 113, Fixed: 50, Usage: 63, Total: 113},
			"b": {Site: "b", Share: 87, Fixed: 50, Usage: 37, Total: 87},
		}},
		{"a shard of its own size", "big", []SiteUsage{{Site: "a"}}, map[string]SiteCost{
			"a": {Site: "a", Share: 300, Fixed: 150, Usage: 150, Total: 300},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.Allocate(tc.shard, 100, tc.sites)
			if sum(a) != a.Cost {
				t.Errorf("shares add up to %d, shard costs %d", sum(a), a.Cost)
			}
			if len(a.Sites) != len(tc.want) {
				t.Fatalf("sites %+v, want %+v", a.Sites, tc.want)
			}
			for _, c := range a.Sites {
				if c != tc.want[c.Site] {
					t.Errorf("%s: %+v, want %+v", c.Site, c, tc.want[c.Site])
				}
			}
		})
	}
}

// TestAllocateSumsExactly: for many random shards, the shares add up to
// the shard's cost to the cent and none is negative.
func TestAllocateSumsExactly(t *testing.T) {
	s := Default()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		n := 1 + r.IntN(60)
		sites := make([]SiteUsage, n)
		for j := range sites {
			sites[j] = SiteUsage{Site: "s" + strconv.Itoa(j)}
			if r.IntN(3) > 0 { // a third idle
				sites[j].PHPMicros = r.Int64N(1e12)
				sites[j].Requests = r.Int64N(1e7)
				sites[j].StorageBytes = r.Int64N(1e11)
			}
		}
		hours := float64(1 + r.IntN(744))
		a := s.Allocate("s", hours, sites)
		if got := sum(a); got != a.Cost {
			t.Fatalf("case %d: %d sites over %v h: shares add up to %d, shard costs %d", i, n, hours, got, a.Cost)
		}
		for _, c := range a.Sites {
			if c.Share < 0 || c.Fixed < 0 || c.Usage < 0 {
				t.Fatalf("case %d: negative share %+v", i, c)
			}
		}
	}
}
