// Package capacity plans a fleet: how many shards, nodes, database
// servers, edges, how much storage and how much money a number of sites
// on a mix of plans takes (`aipress capacity`).
//
// It works from the platform's measured figures (figures.yaml: memory per
// shard and per idle site from bench-provision, CPU per request and
// database backends from bench-db, cache hits per core from bench-edge),
// the plans (internal/plans: what a site may use — disk, PHP workers and
// their memory limit) and the platform's price sheet (internal/cost, the
// one aipress cost uses: GCP list prices by default). The figures file is
// embedded and replaceable; every figure carries its source, and the plan
// prints them all as its assumptions.
//
// # The model
//
//   - Sites per plan: the mix's percentages of the sites, rounded by the
//     largest remainder so that they add up to the sites exactly.
//   - Shards: sites / sites_per_shard, rounded up (placement fills a shard
//     before it opens another; plans do not weigh sites differently).
//   - Traffic: each plan's peak requests/s per site (an assumption, by
//     plan); cache_hit_ratio of it is answered by the edge, the rest
//     reaches PHP.
//   - A full shard's needs at peak: CPU = its sites' PHP requests/s ×
//     cpu_ms_per_request ÷ cpu_target_utilisation; memory = the shard's
//     fixed memory + sites_per_shard × idle_site_memory + busy PHP workers
//     × php_worker_memory + a burst reserve, where a site's busy workers
//     are its PHP requests/s × php_seconds_per_request (Little's law), at
//     most its plan's php.max_children, rounded up per shard, and the
//     burst reserve is burst_sites_per_shard sites at the largest
//     php.max_children of the mix. The shard's sites are the fleet's mix in
//     proportion. The plans' php.memory_limit_mb bounds what those burst
//     workers could take at worst (printed, not planned for: WordPress
//     workers use a fraction of it).
//   - Nodes: as many shards on a node as its allocatable CPU and memory
//     both hold, each shard counted at the larger of its need and what the
//     shard provider reserves for it (shard_request_vcpu and
//     shard_request_memory_gib: Kubernetes' requests); nodes = shards ÷
//     shards per node, rounded up.
//   - Database servers: one MariaDB per shard (its cell), holding
//     db_backends_per_shard connections from the shard's pooler.
//   - Edges: all peak requests ÷ edge_rps_per_core ÷ the utilisation
//     target, in replicas of edge_vcpu, at least edge_min_replicas.
//   - Storage: block = sites' disk quotas (plan disk_mb) × disk_fill + a
//     fixed part per shard; object storage (backups) = the sites' used disk
//     × backup_ratio.
//   - Money per month (730 h): every vCPU and GiB of memory of shard nodes,
//     edges and the control plane at the sheet's compute prices, block
//     storage at its disk price, backups at its object-storage price (the
//     sheet's shard size and Cloud SQL prices are aipress cost's, unused).
//
// The arithmetic is a few sums, written here: no library models shards.
package capacity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/plans"
)

// Share is one entry of a mix: a plan (or a size naming one) and its
// percentage of the sites.
type Share struct {
	// Name is what the mix said: a size (small) or a plan (basic).
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
}

// ParseMix parses "small=80,medium=15,large=5": names with percentages
// that add up to 100. Names are checked against plans by Plan.
func ParseMix(s string) ([]Share, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--mix: empty: give sizes or plans with percentages, e.g. small=80,medium=15,large=5")
	}
	var out []Share
	seen := map[string]bool{}
	var sum float64
	for part := range strings.SplitSeq(s, ",") {
		name, pct, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--mix: %q is not NAME=PERCENT (e.g. small=80)", part)
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(pct), "%"), 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return nil, fmt.Errorf("--mix: %s: the percentage must be a number between 0 and 100, got %q", name, pct)
		}
		if seen[name] {
			return nil, fmt.Errorf("--mix: %s is given twice", name)
		}
		seen[name] = true
		sum += v
		out = append(out, Share{Name: name, Percent: v})
	}
	if math.Abs(sum-100) > 1e-9 {
		return nil, fmt.Errorf("--mix: the percentages add up to %s, not 100", strconv.FormatFloat(sum, 'f', -1, 64))
	}
	return out, nil
}

// Input is what to plan for.
type Input struct {
	Sites int
	Mix   []Share
}

// PlanLine is one plan of the mix.
type PlanLine struct {
	Plan string `json:"plan"`
	// Size is the mix's name for it when that was a size (small), else "".
	Size           string  `json:"size,omitempty"`
	Percent        float64 `json:"percent"`
	Sites          int     `json:"sites"`
	DiskMB         int     `json:"disk_mb"`
	PHPWorkers     int     `json:"php_max_children"`
	PHPMemoryMB    int     `json:"php_memory_limit_mb"`
	PeakRPSPerSite float64 `json:"peak_rps_per_site"`
}

// Shard is what one full shard needs at peak.
type Shard struct {
	Sites     int     `json:"sites"`
	VCPU      float64 `json:"vcpu"`
	MemoryGiB float64 `json:"memory_gib"`
	// PHPWorkers is the busy PHP workers at peak (rounded up).
	PHPWorkers int `json:"php_workers"`
	// BurstWorkers are the PHP workers the burst reserve is for.
	BurstWorkers int `json:"burst_php_workers"`
	// WorstBurstGiB is what those burst workers take at their plan's
	// php.memory_limit_mb (a bound, not planned for).
	WorstBurstGiB float64 `json:"worst_burst_memory_gib"`
	// DBVCPU is the MariaDB part of VCPU.
	DBVCPU float64 `json:"db_vcpu"`
	// ReservedVCPU and ReservedMemoryGiB are what a node keeps for the
	// shard: its need or the provider's requests, whichever is larger.
	ReservedVCPU      float64 `json:"reserved_vcpu"`
	ReservedMemoryGiB float64 `json:"reserved_memory_gib"`
}

// Nodes are the machines the shards run on.
type Nodes struct {
	Count         int     `json:"count"`
	VCPU          float64 `json:"vcpu"`
	MemoryGiB     float64 `json:"memory_gib"`
	ShardsPerNode int     `json:"shards_per_node"`
	// BoundBy is what limits shards per node: "cpu" or "memory".
	BoundBy string `json:"bound_by"`
}

// Replicas are a role's identical replicas.
type Replicas struct {
	Count     int     `json:"count"`
	VCPU      float64 `json:"vcpu"`
	MemoryGiB float64 `json:"memory_gib"`
}

// Storage is in GiB.
type Storage struct {
	// QuotaGiB is the sum of the sites' plan disk quotas.
	QuotaGiB float64 `json:"quota_gib"`
	// BlockGiB is the disk to provision: used share of the quotas plus
	// each shard's fixed part.
	BlockGiB float64 `json:"block_gib"`
	// ObjectGiB is the backup repositories.
	ObjectGiB float64 `json:"object_gib"`
}

// Cost is money per month.
type Cost struct {
	Currency string  `json:"currency"`
	Compute  float64 `json:"compute"`
	Block    float64 `json:"block"`
	Object   float64 `json:"object"`
	Total    float64 `json:"total"`
	PerSite  float64 `json:"per_site"`
	Source   string  `json:"source"`
}

// Assumption is a figure the plan used, for printing.
type Assumption struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Source string  `json:"source"`
	Date   string  `json:"date,omitempty"`
}

// Result is a capacity plan.
type Result struct {
	Sites           int        `json:"sites"`
	Plans           []PlanLine `json:"plans"`
	PeakRPS         float64    `json:"peak_rps"`
	PeakPHPRPS      float64    `json:"peak_php_rps"`
	Shards          int        `json:"shards"`
	Shard           Shard      `json:"shard"`
	Nodes           Nodes      `json:"nodes"`
	DatabaseServers int        `json:"database_servers"`
	// DBConnections is each database server's connections from its pooler.
	DBConnections int          `json:"db_connections_per_server"`
	Edges         Replicas     `json:"edges"`
	ControlPlane  Replicas     `json:"control_plane"`
	Storage       Storage      `json:"storage"`
	Cost          Cost         `json:"cost_per_month"`
	Assumptions   []Assumption `json:"assumptions"`
}

// Plan makes a capacity plan for in from the plans, figures and prices.
// Errors name the flag or figure at fault.
func Plan(in Input, ps *plans.Set, f *Figures, prices *cost.Sheet) (*Result, error) {
	if in.Sites <= 0 {
		return nil, fmt.Errorf("--sites must be a positive number of sites, got %d", in.Sites)
	}
	lines, err := resolve(in, ps, f)
	if err != nil {
		return nil, err
	}
	r := &Result{Sites: in.Sites, Plans: lines}
	hit := f.CacheHitRatio.Value
	util := f.CPUTargetUtilisation.Value

	// Per-site averages over the mix: peak requests, PHP requests and busy
	// PHP workers.
	var rps, phpRPS, workers float64
	var burst, burstMemMB int
	for _, l := range lines {
		if l.PHPWorkers > burst || (l.PHPWorkers == burst && l.PHPMemoryMB > burstMemMB) {
			burst, burstMemMB = l.PHPWorkers, l.PHPMemoryMB
		}
		n := float64(l.Sites)
		rps += n * l.PeakRPSPerSite
		php := l.PeakRPSPerSite * (1 - hit)
		phpRPS += n * php
		workers += n * math.Min(php*f.PHPSecondsPerRequest.Value, float64(l.PHPWorkers))
	}
	r.PeakRPS, r.PeakPHPRPS = rps, phpRPS

	per := int(f.SitesPerShard.Value)
	r.Shards = ceilDiv(in.Sites, per)
	// A full shard holds sites_per_shard sites of the mix in proportion.
	scale := float64(per) / float64(in.Sites)
	r.Shard.Sites = per
	r.Shard.VCPU = phpRPS * scale * f.CPUMsPerRequest.Value / 1000 / util
	r.Shard.DBVCPU = phpRPS * scale * f.DBCPUMsPerRequest.Value / 1000 / util
	r.Shard.PHPWorkers = int(math.Ceil(workers*scale - 1e-9))
	r.Shard.BurstWorkers = int(f.BurstSitesPerShard.Value) * burst
	r.Shard.WorstBurstGiB = float64(r.Shard.BurstWorkers*burstMemMB) / 1024
	memMiB := f.ShardFixedMemoryMiB.Value + float64(per)*f.IdleSiteMemoryKiB.Value/1024 +
		float64(r.Shard.PHPWorkers+r.Shard.BurstWorkers)*f.PHPWorkerMemoryMiB.Value
	r.Shard.MemoryGiB = memMiB / 1024

	// Shards per node: what both the node's CPU and memory hold.
	nodeCPU := f.NodeVCPU.Value * f.NodeAllocatable.Value
	nodeMem := f.NodeMemoryGiB.Value * f.NodeAllocatable.Value
	r.Shard.ReservedVCPU = math.Max(r.Shard.VCPU, f.ShardRequestVCPU.Value)
	r.Shard.ReservedMemoryGiB = math.Max(r.Shard.MemoryGiB, f.ShardRequestMemGiB.Value)
	byCPU, byMem := math.MaxInt, math.MaxInt
	if r.Shard.ReservedVCPU > 0 {
		byCPU = int(math.Floor(nodeCPU/r.Shard.ReservedVCPU + 1e-9))
	}
	if r.Shard.ReservedMemoryGiB > 0 {
		byMem = int(math.Floor(nodeMem/r.Shard.ReservedMemoryGiB + 1e-9))
	}
	r.Nodes = Nodes{VCPU: f.NodeVCPU.Value, MemoryGiB: f.NodeMemoryGiB.Value}
	r.Nodes.ShardsPerNode, r.Nodes.BoundBy = byCPU, "cpu"
	if byMem < byCPU {
		r.Nodes.ShardsPerNode, r.Nodes.BoundBy = byMem, "memory"
	}
	if r.Nodes.ShardsPerNode < 1 {
		return nil, fmt.Errorf("one shard takes %.2f vCPU and %.2f GiB at peak, more than a node's allocatable %.2f vCPU and %.2f GiB: choose larger nodes (node_vcpu, node_memory_gib) or fewer sites per shard",
			r.Shard.ReservedVCPU, r.Shard.ReservedMemoryGiB, nodeCPU, nodeMem)
	}
	r.Nodes.Count = ceilDiv(r.Shards, r.Nodes.ShardsPerNode)

	r.DatabaseServers = r.Shards
	r.DBConnections = int(f.DBBackendsPerShard.Value)

	edgeCores := rps / f.EdgeRPSPerCore.Value / util
	r.Edges = Replicas{
		Count:     max(int(f.EdgeMinReplicas.Value), int(math.Ceil(edgeCores/f.EdgeVCPU.Value-1e-9))),
		VCPU:      f.EdgeVCPU.Value,
		MemoryGiB: f.EdgeMemoryGiB.Value,
	}
	r.ControlPlane = Replicas{Count: int(f.ControlPlaneReplicas.Value), VCPU: f.ControlPlaneVCPU.Value, MemoryGiB: f.ControlPlaneMemGiB.Value}

	var quotaMiB float64
	for _, l := range lines {
		quotaMiB += float64(l.Sites) * float64(l.DiskMB)
	}
	used := quotaMiB / 1024 * f.DiskFill.Value
	r.Storage = Storage{
		QuotaGiB:  quotaMiB / 1024,
		BlockGiB:  used + float64(r.Shards)*f.ShardFixedDiskGiB.Value,
		ObjectGiB: used * f.BackupRatio.Value,
	}

	p := prices.Prices
	vcpu := float64(r.Nodes.Count)*r.Nodes.VCPU + float64(r.Edges.Count)*r.Edges.VCPU + float64(r.ControlPlane.Count)*r.ControlPlane.VCPU
	mem := float64(r.Nodes.Count)*r.Nodes.MemoryGiB + float64(r.Edges.Count)*r.Edges.MemoryGiB + float64(r.ControlPlane.Count)*r.ControlPlane.MemoryGiB
	r.Cost = Cost{
		Currency: prices.Currency,
		Compute:  cents(cost.MonthHours * (vcpu*p.VCPUHour + mem*p.RAMGBHour)),
		Block:    cents(r.Storage.BlockGiB * p.DiskGBMonth),
		Object:   cents(r.Storage.ObjectGiB * p.ObjectGBMonth),
		Source:   prices.Source,
	}
	r.Cost.Total = cents(r.Cost.Compute + r.Cost.Block + r.Cost.Object)
	r.Cost.PerSite = math.Round(r.Cost.Total/float64(in.Sites)*10000) / 10000

	for _, nf := range f.list() {
		r.Assumptions = append(r.Assumptions, Assumption{Name: nf.name, Value: nf.f.Value, Source: nf.f.Source, Date: nf.f.Date})
	}
	for _, l := range lines {
		t := f.Traffic[l.Plan]
		r.Assumptions = append(r.Assumptions, Assumption{Name: "traffic." + l.Plan, Value: t.Value, Source: t.Source, Date: t.Date})
	}
	r.round()
	return r, nil
}

// resolve maps the mix to plans and counts their sites.
func resolve(in Input, ps *plans.Set, f *Figures) ([]PlanLine, error) {
	if len(in.Mix) == 0 {
		return nil, errors.New("--mix: empty: give sizes or plans with percentages, e.g. small=80,medium=15,large=5")
	}
	var sum float64
	byPlan := map[string]string{}
	lines := make([]PlanLine, 0, len(in.Mix))
	for _, s := range in.Mix {
		sum += s.Percent
		name, size := s.Name, ""
		if p, ok := f.Sizes[s.Name]; ok {
			name, size = p, s.Name
		}
		p, ok := ps.Get(name)
		if !ok && size != "" {
			return nil, fmt.Errorf("--mix: size %s stands for plan %s, which is not one of the plans (%s): name plans in the mix, or change sizes in --figures", size, name, strings.Join(ps.Names(), ", "))
		}
		if !ok {
			return nil, fmt.Errorf("--mix: unknown plan or size %q (sizes: %s; plans: %s)", s.Name, sizeList(f.Sizes), strings.Join(ps.Names(), ", "))
		}
		if prev, dup := byPlan[p.Name]; dup {
			return nil, fmt.Errorf("--mix: %s and %s are both plan %s: give it once", prev, s.Name, p.Name)
		}
		byPlan[p.Name] = s.Name
		t, ok := f.Traffic[p.Name]
		if !ok {
			return nil, fmt.Errorf("figures: no traffic.%s (peak requests/s per site of plan %s)", p.Name, p.Name)
		}
		lines = append(lines, PlanLine{Plan: p.Name, Size: size, Percent: s.Percent, DiskMB: p.DiskMB,
			PHPWorkers: p.PHP.MaxChildren, PHPMemoryMB: p.PHP.MemoryLimitMB, PeakRPSPerSite: t.Value})
	}
	if math.Abs(sum-100) > 1e-9 {
		return nil, fmt.Errorf("--mix: the percentages add up to %s, not 100", strconv.FormatFloat(sum, 'f', -1, 64))
	}
	// Largest remainder: floors first, then one site each to the largest
	// remainders (ties to the earlier entry of the mix).
	rem := make([]float64, len(lines))
	left := in.Sites
	for i := range lines {
		exact := float64(in.Sites) * lines[i].Percent / 100
		lines[i].Sites = int(math.Floor(exact + 1e-9))
		rem[i] = exact - float64(lines[i].Sites)
		left -= lines[i].Sites
	}
	for ; left > 0; left-- {
		best := -1
		for i := range lines {
			if best < 0 || rem[i] > rem[best]+1e-12 {
				best = i
			}
		}
		lines[best].Sites++
		rem[best] = -1
	}
	return lines, nil
}

func sizeList(sizes map[string]string) string {
	var b []string
	for _, k := range sortedKeys(sizes) {
		b = append(b, k+"="+sizes[k])
	}
	if len(b) == 0 {
		return "none"
	}
	return strings.Join(b, ", ")
}

// round keeps the printed figures to sensible precision (and the JSON
// stable).
func (r *Result) round() {
	r.PeakRPS = round(r.PeakRPS, 2)
	r.PeakPHPRPS = round(r.PeakPHPRPS, 2)
	r.Shard.VCPU = round(r.Shard.VCPU, 3)
	r.Shard.DBVCPU = round(r.Shard.DBVCPU, 3)
	r.Shard.MemoryGiB = round(r.Shard.MemoryGiB, 3)
	r.Shard.ReservedVCPU = round(r.Shard.ReservedVCPU, 3)
	r.Shard.ReservedMemoryGiB = round(r.Shard.ReservedMemoryGiB, 3)
	r.Shard.WorstBurstGiB = round(r.Shard.WorstBurstGiB, 3)
	r.Storage.QuotaGiB = round(r.Storage.QuotaGiB, 1)
	r.Storage.BlockGiB = round(r.Storage.BlockGiB, 1)
	r.Storage.ObjectGiB = round(r.Storage.ObjectGiB, 1)
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

func cents(v float64) float64 { return math.Round(v*100) / 100 }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
