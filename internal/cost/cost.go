// Package cost turns usage records into money: a price sheet (YAML, with
// GCP list prices embedded as defaults, prices.yaml) and an allocation
// model that splits each shard's cost over its sites.
//
// # The model
//
// A shard costs, for the hours of the month it is priced over, its vCPUs
// and memory at the compute prices, its disk at the disk price (and its
// Cloud SQL instance, if it has one). FixedShare of that cost is shared
// equally by the shard's sites, idle ones included: it is the capacity
// each holds. The rest is split by use: the compute part by the sites'
// PHP worker-seconds (the time the edge waited for PHP; by requests when
// no site used PHP, equally when none had requests), the storage part by
// their average database and file bytes (equally when none is known).
// Egress (bytes out) and backup storage (object storage) are each site's
// own costs on top.
//
// # Rounding
//
// Money is in cents. A shard's cost is rounded to the cent once; its
// sites' shares are computed exactly, rounded down to the cent, and the
// cents left over go one each to the sites with the largest remainders
// (ties to the site first by name): the largest-remainder method, so the
// shares add up to the shard's cost exactly. A site's own costs are
// rounded to the cent each.
//
// The allocation is a few sums per site: written here rather than taken
// from a library, none of which models shards and sites.
package cost

import (
	_ "embed"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

//go:embed prices.yaml
var defaultYAML []byte

// GB is the byte size of the prices' gigabyte (GiB, as GCP bills).
const GB = 1 << 30

// MonthHours is the hours of a priced month (GCP's 730).
const MonthHours = 730

// Prices are unit prices in Sheet.Currency.
type Prices struct {
	VCPUHour               float64 `json:"vcpu_hour"`
	RAMGBHour              float64 `json:"ram_gb_hour"`
	DiskGBMonth            float64 `json:"disk_gb_month"`
	ObjectGBMonth          float64 `json:"object_gb_month"`
	EgressGB               float64 `json:"egress_gb"`
	CloudSQLVCPUHour       float64 `json:"cloud_sql_vcpu_hour"`
	CloudSQLRAMGBHour      float64 `json:"cloud_sql_ram_gb_hour"`
	CloudSQLStorageGBMonth float64 `json:"cloud_sql_storage_gb_month"`
}

// CloudSQL is a shard's Cloud SQL instance (zero: none).
type CloudSQL struct {
	VCPU      float64 `json:"vcpu"`
	RAMGB     float64 `json:"ram_gb"`
	StorageGB float64 `json:"storage_gb"`
}

// Shard is what a shard runs on.
type Shard struct {
	VCPU     float64  `json:"vcpu"`
	RAMGB    float64  `json:"ram_gb"`
	DiskGB   float64  `json:"disk_gb"`
	CloudSQL CloudSQL `json:"cloud_sql"`
}

// Sheet is a price sheet.
type Sheet struct {
	Currency string           `json:"currency"`
	Source   string           `json:"source"`
	Prices   Prices           `json:"prices"`
	Shard    Shard            `json:"shard"`
	Shards   map[string]Shard `json:"shards"`
	// FixedShare (0 to 1) of a shard's cost is shared equally by its
	// sites.
	FixedShare float64 `json:"fixed_share"`
}

// Default returns the embedded sheet.
func Default() *Sheet {
	s, err := Parse(defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("embedded price sheet: %v", err)) // a build defect, caught by the tests
	}
	return s
}

// DefaultYAML returns the embedded sheet as written, comments included
// (aipress capacity --print-defaults prices).
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Load reads a sheet from a file (Parse).
func Load(path string) (*Sheet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("price sheet: %w", err)
	}
	return Parse(b)
}

// Parse reads a sheet (YAML); unknown fields and negative prices are
// errors.
func Parse(b []byte) (*Sheet, error) {
	var s Sheet
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return nil, fmt.Errorf("price sheet: %w", err)
	}
	if s.Currency == "" {
		return nil, fmt.Errorf("price sheet: currency is required")
	}
	if s.FixedShare < 0 || s.FixedShare > 1 {
		return nil, fmt.Errorf("price sheet: fixed_share %v: want 0 to 1", s.FixedShare)
	}
	p := s.Prices
	nums := []float64{p.VCPUHour, p.RAMGBHour, p.DiskGBMonth, p.ObjectGBMonth, p.EgressGB, p.CloudSQLVCPUHour, p.CloudSQLRAMGBHour, p.CloudSQLStorageGBMonth}
	for _, sh := range append([]Shard{s.Shard}, slices.Collect(maps.Values(s.Shards))...) {
		nums = append(nums, sh.VCPU, sh.RAMGB, sh.DiskGB, sh.CloudSQL.VCPU, sh.CloudSQL.RAMGB, sh.CloudSQL.StorageGB)
	}
	for _, n := range nums {
		if n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, fmt.Errorf("price sheet: a price or size is %v; want a number ≥ 0", n)
		}
	}
	return &s, nil
}

// ShardCost is what shard costs over hours, split into compute and
// storage, in currency units (not rounded).
func (s *Sheet) ShardCost(shard string, hours float64) (compute, storage float64) {
	sh, ok := s.Shards[shard]
	if !ok {
		sh = s.Shard
	}
	p := s.Prices
	compute = hours * (sh.VCPU*p.VCPUHour + sh.RAMGB*p.RAMGBHour + sh.CloudSQL.VCPU*p.CloudSQLVCPUHour + sh.CloudSQL.RAMGB*p.CloudSQLRAMGBHour)
	storage = hours / MonthHours * (sh.DiskGB*p.DiskGBMonth + sh.CloudSQL.StorageGB*p.CloudSQLStorageGBMonth)
	return compute, storage
}

// SiteUsage is a site's use of one shard over the priced period.
type SiteUsage struct {
	Site      string
	Requests  int64
	PHPMicros int64
	// StorageBytes is the site's average database and file bytes.
	StorageBytes int64
	// BytesOut and BackupBytes (average) price the site's own costs.
	BytesOut, BackupBytes int64
}

// SiteCost is a site's part of one shard's cost, and its own costs, in
// cents.
type SiteCost struct {
	Site string `json:"site"`
	// Fixed is its equal part of the fixed share, Usage its part of the
	// rest; Share = Fixed + Usage (rounded as a whole, see Rounding).
	Share  int64 `json:"share_cents"`
	Fixed  int64 `json:"fixed_cents"`
	Usage  int64 `json:"usage_cents"`
	Egress int64 `json:"egress_cents"`
	Backup int64 `json:"backup_cents"`
	Total  int64 `json:"total_cents"`
}

// Allocation is one shard's cost split over its sites.
type Allocation struct {
	Shard string     `json:"shard"`
	Hours float64    `json:"hours"`
	Cost  int64      `json:"cost_cents"` // the shard's cost; the sites' Share add up to it
	Sites []SiteCost `json:"sites"`      // by name
}

// Allocate splits shard's cost over hours among sites (each site once).
func (s *Sheet) Allocate(shard string, hours float64, sites []SiteUsage) Allocation {
	compute, storage := s.ShardCost(shard, hours)
	out := Allocation{Shard: shard, Hours: hours, Cost: int64(math.Round((compute + storage) * 100)), Sites: []SiteCost{}}
	if len(sites) == 0 {
		return out
	}
	sites = slices.Clone(sites)
	slices.SortFunc(sites, func(a, b SiteUsage) int { return strings.Compare(a.Site, b.Site) })
	n := float64(len(sites))
	fixedEach := s.FixedShare * (compute + storage) / n
	computeW := weights(sites, func(u SiteUsage) int64 { return u.PHPMicros }, func(u SiteUsage) int64 { return u.Requests })
	storageW := weights(sites, func(u SiteUsage) int64 { return u.StorageBytes })
	exact := make([]float64, len(sites)) // cents
	fixed := make([]float64, len(sites)) // cents
	for i := range sites {
		fixed[i] = fixedEach * 100
		exact[i] = fixed[i] + (1-s.FixedShare)*(compute*computeW[i]+storage*storageW[i])*100
	}
	shares := largestRemainder(out.Cost, exact)
	for i, u := range sites {
		c := SiteCost{Site: u.Site, Share: shares[i]}
		c.Fixed = min(int64(math.Round(fixed[i])), c.Share)
		c.Usage = c.Share - c.Fixed
		c.Egress = int64(math.Round(float64(u.BytesOut) / GB * s.Prices.EgressGB * 100))
		c.Backup = int64(math.Round(float64(u.BackupBytes) / GB * s.Prices.ObjectGBMonth * hours / MonthHours * 100))
		c.Total = c.Share + c.Egress + c.Backup
		out.Sites = append(out.Sites, c)
	}
	return out
}

// weights returns each site's fraction of the first measure with a
// non-zero total (equal fractions when every total is zero).
func weights(sites []SiteUsage, measures ...func(SiteUsage) int64) []float64 {
	w := make([]float64, len(sites))
	for _, m := range measures {
		var total float64
		for _, u := range sites {
			total += float64(m(u))
		}
		if total > 0 {
			for i, u := range sites {
				w[i] = float64(m(u)) / total
			}
			return w
		}
	}
	for i := range w {
		w[i] = 1 / float64(len(sites))
	}
	return w
}

// largestRemainder rounds exact (cents, summing to about total) to whole
// cents summing to total exactly: each rounded down, the cents left over
// one each to the largest remainders, ties to the lower index. A
// difference beyond one cent per entry (float drift cannot make one) is
// spread the same way.
func largestRemainder(total int64, exact []float64) []int64 {
	out := make([]int64, len(exact))
	var sum int64
	for i, e := range exact {
		out[i] = int64(math.Floor(e))
		sum += out[i]
	}
	order := make([]int, len(exact))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return exact[order[a]]-math.Floor(exact[order[a]]) > exact[order[b]]-math.Floor(exact[order[b]])
	})
	for left := total - sum; left != 0; {
		before := left
		for _, i := range order {
			if left == 0 {
				break
			}
			if left > 0 {
				out[i]++
				left--
			} else if out[i] > 0 {
				out[i]--
				left++
			}
		}
		if left == before {
			break // nothing to take from (a total below zero)
		}
	}
	return out
}
