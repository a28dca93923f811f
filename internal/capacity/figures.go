package capacity

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"sigs.k8s.io/yaml"
)

//go:embed figures.yaml
var figuresYAML []byte

// FiguresYAML returns the embedded figures file, comments included.
func FiguresYAML() []byte { return append([]byte(nil), figuresYAML...) }

// Figure is one number the plan is made from, with where it comes from.
type Figure struct {
	Value float64 `json:"value"`
	// Source is the command that measured it (and where its result is
	// recorded), or "assumption: ..." for a choice nobody measured.
	Source string `json:"source"`
	// Date is the day of the measurement (empty for assumptions).
	Date string `json:"date,omitempty"`
}

// Figures are the measured per-site and per-shard figures of the platform
// and the assumptions a plan needs besides (figures.yaml documents each).
type Figures struct {
	SitesPerShard        Figure `json:"sites_per_shard"`
	ShardFixedMemoryMiB  Figure `json:"shard_fixed_memory_mib"`
	IdleSiteMemoryKiB    Figure `json:"idle_site_memory_kib"`
	PHPWorkerMemoryMiB   Figure `json:"php_worker_memory_mib"`
	PHPSecondsPerRequest Figure `json:"php_seconds_per_request"`
	BurstSitesPerShard   Figure `json:"burst_sites_per_shard"`
	CPUMsPerRequest      Figure `json:"cpu_ms_per_request"`
	DBCPUMsPerRequest    Figure `json:"db_cpu_ms_per_request"`
	DBBackendsPerShard   Figure `json:"db_backends_per_shard"`
	EdgeRPSPerCore       Figure `json:"edge_rps_per_core"`
	CacheHitRatio        Figure `json:"cache_hit_ratio"`
	CPUTargetUtilisation Figure `json:"cpu_target_utilisation"`
	ShardRequestVCPU     Figure `json:"shard_request_vcpu"`
	ShardRequestMemGiB   Figure `json:"shard_request_memory_gib"`
	NodeVCPU             Figure `json:"node_vcpu"`
	NodeMemoryGiB        Figure `json:"node_memory_gib"`
	NodeAllocatable      Figure `json:"node_allocatable"`
	ShardFixedDiskGiB    Figure `json:"shard_fixed_disk_gib"`
	DiskFill             Figure `json:"disk_fill"`
	BackupRatio          Figure `json:"backup_ratio"`
	EdgeMinReplicas      Figure `json:"edge_min_replicas"`
	EdgeVCPU             Figure `json:"edge_vcpu"`
	EdgeMemoryGiB        Figure `json:"edge_memory_gib"`
	ControlPlaneReplicas Figure `json:"control_plane_replicas"`
	ControlPlaneVCPU     Figure `json:"control_plane_vcpu"`
	ControlPlaneMemGiB   Figure `json:"control_plane_memory_gib"`
	// Sizes maps the sizes a mix may name (small, medium, large) to plans.
	Sizes map[string]string `json:"sizes"`
	// Traffic is each plan's peak requests per second per site at the edge.
	Traffic map[string]Figure `json:"traffic"`
}

// namedFigure is a figure with its key in the file, in the file's order.
type namedFigure struct {
	name string
	f    *Figure
	// min and max bound the value (max 0: none); integer: a count.
	min, max float64
	integer  bool
}

// list returns the figures in the order of figures.yaml, with bounds.
func (f *Figures) list() []namedFigure {
	return []namedFigure{
		{"sites_per_shard", &f.SitesPerShard, 1, 100_000, true},
		{"shard_fixed_memory_mib", &f.ShardFixedMemoryMiB, 0, 0, false},
		{"idle_site_memory_kib", &f.IdleSiteMemoryKiB, 0, 0, false},
		{"php_worker_memory_mib", &f.PHPWorkerMemoryMiB, 0, 0, false},
		{"php_seconds_per_request", &f.PHPSecondsPerRequest, 0, 0, false},
		{"burst_sites_per_shard", &f.BurstSitesPerShard, 0, 100_000, true},
		{"cpu_ms_per_request", &f.CPUMsPerRequest, math.SmallestNonzeroFloat64, 0, false},
		{"db_cpu_ms_per_request", &f.DBCPUMsPerRequest, 0, 0, false},
		{"db_backends_per_shard", &f.DBBackendsPerShard, 1, 100_000, true},
		{"edge_rps_per_core", &f.EdgeRPSPerCore, math.SmallestNonzeroFloat64, 0, false},
		{"cache_hit_ratio", &f.CacheHitRatio, 0, 1, false},
		{"cpu_target_utilisation", &f.CPUTargetUtilisation, math.SmallestNonzeroFloat64, 1, false},
		{"shard_request_vcpu", &f.ShardRequestVCPU, 0, 0, false},
		{"shard_request_memory_gib", &f.ShardRequestMemGiB, 0, 0, false},
		{"node_vcpu", &f.NodeVCPU, math.SmallestNonzeroFloat64, 0, false},
		{"node_memory_gib", &f.NodeMemoryGiB, math.SmallestNonzeroFloat64, 0, false},
		{"node_allocatable", &f.NodeAllocatable, math.SmallestNonzeroFloat64, 1, false},
		{"shard_fixed_disk_gib", &f.ShardFixedDiskGiB, 0, 0, false},
		{"disk_fill", &f.DiskFill, 0, 1, false},
		{"backup_ratio", &f.BackupRatio, 0, 0, false},
		{"edge_min_replicas", &f.EdgeMinReplicas, 1, 10_000, true},
		{"edge_vcpu", &f.EdgeVCPU, math.SmallestNonzeroFloat64, 0, false},
		{"edge_memory_gib", &f.EdgeMemoryGiB, 0, 0, false},
		{"control_plane_replicas", &f.ControlPlaneReplicas, 0, 1000, true},
		{"control_plane_vcpu", &f.ControlPlaneVCPU, 0, 0, false},
		{"control_plane_memory_gib", &f.ControlPlaneMemGiB, 0, 0, false},
	}
}

// DefaultFigures returns the embedded figures (figures.yaml).
func DefaultFigures() *Figures { return mustParse(figuresYAML, "embedded figures", ParseFigures) }

// LoadFigures reads and checks a figures file.
func LoadFigures(path string) (*Figures, error) { return load(path, "figures", ParseFigures) }

// mustParse parses an embedded file (TestDefaults proves that it parses).
func mustParse[T any](b []byte, source string, parse func([]byte, string) (T, error)) T {
	v, err := parse(b, source)
	if err != nil {
		panic(err)
	}
	return v
}

// load reads the file at path and parses it; what names it in a read error.
func load[T any](path, what string, parse func([]byte, string) (T, error)) (T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return parse(b, path)
}

// ParseFigures decodes and checks a figures document; source names it in
// errors. Unknown keys are errors, and every figure must be present with a
// source and a value in its range.
func ParseFigures(b []byte, source string) (*Figures, error) {
	var f Figures
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var errs []error
	check := func(name string, fg Figure, lo, hi float64, integer bool) {
		switch {
		case fg.Source == "":
			errs = append(errs, fmt.Errorf("%s: missing, or without a source (give value and source)", name))
		case fg.Value < lo || (hi > 0 && fg.Value > hi) || math.IsNaN(fg.Value) || math.IsInf(fg.Value, 0):
			if hi > 0 {
				errs = append(errs, fmt.Errorf("%s: must be between %v and %v, got %v", name, lo, hi, fg.Value))
			} else {
				errs = append(errs, fmt.Errorf("%s: must be at least %v, got %v", name, lo, fg.Value))
			}
		case integer && fg.Value != math.Trunc(fg.Value):
			errs = append(errs, fmt.Errorf("%s: must be a whole number, got %v", name, fg.Value))
		}
	}
	for _, nf := range f.list() {
		check(nf.name, *nf.f, nf.min, nf.max, nf.integer)
	}
	for _, k := range sortedKeys(f.Traffic) {
		check("traffic."+k, f.Traffic[k], 0, 0, false)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return &f, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
