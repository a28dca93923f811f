package capacity_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/capacity"
	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
)

// TestDefaults: the embedded files parse, the shard size is placement's,
// every size names a real plan and every plan has traffic, and every
// figure says where it comes from (a measurement has a date).
func TestDefaults(t *testing.T) {
	f := capacity.DefaultFigures()
	if got := int(f.SitesPerShard.Value); got != placement.DefaultCapacity {
		t.Errorf("sites_per_shard = %d, want placement.DefaultCapacity %d", got, placement.DefaultCapacity)
	}
	ps := plans.Defaults()
	for size, plan := range f.Sizes {
		if _, ok := ps.Get(plan); !ok {
			t.Errorf("size %s names plan %q, not one of %v", size, plan, ps.Names())
		}
	}
	for _, name := range ps.Names() {
		if _, ok := f.Traffic[name]; !ok {
			t.Errorf("no traffic for plan %s", name)
		}
	}
	r, err := capacity.Plan(capacity.Input{Sites: 1, Mix: []capacity.Share{{Name: "basic", Percent: 100}}}, ps, f, cost.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range r.Assumptions {
		if a.Date == "" && !strings.HasPrefix(a.Source, "assumption") {
			t.Errorf("%s: neither a measurement with a date nor an assumption: %q", a.Name, a.Source)
		}
	}
	if p := cost.Default().Prices; p.VCPUHour <= 0 || p.RAMGBHour <= 0 || p.DiskGBMonth <= 0 || p.ObjectGBMonth <= 0 {
		t.Errorf("the price sheet lacks a price capacity uses: %+v", p)
	}
}

// simple returns figures with round numbers a reader can check by hand.
func simple(change func(*capacity.Figures)) *capacity.Figures {
	f := capacity.DefaultFigures()
	set := func(fg *capacity.Figure, v float64) { fg.Value = v }
	set(&f.SitesPerShard, 10)
	set(&f.ShardFixedMemoryMiB, 1024)
	set(&f.IdleSiteMemoryKiB, 0)
	set(&f.PHPWorkerMemoryMiB, 0)
	set(&f.PHPSecondsPerRequest, 0.5)
	set(&f.BurstSitesPerShard, 0)
	set(&f.CPUMsPerRequest, 100)
	set(&f.DBCPUMsPerRequest, 10)
	set(&f.DBBackendsPerShard, 4)
	set(&f.EdgeRPSPerCore, 10)
	set(&f.CacheHitRatio, 0)
	set(&f.CPUTargetUtilisation, 1)
	set(&f.ShardRequestVCPU, 0)
	set(&f.ShardRequestMemGiB, 0)
	set(&f.NodeVCPU, 8)
	set(&f.NodeMemoryGiB, 16)
	set(&f.NodeAllocatable, 1)
	set(&f.ShardFixedDiskGiB, 1)
	set(&f.DiskFill, 0.5)
	set(&f.BackupRatio, 2)
	set(&f.EdgeMinReplicas, 2)
	set(&f.EdgeVCPU, 4)
	set(&f.EdgeMemoryGiB, 4)
	set(&f.ControlPlaneReplicas, 1)
	set(&f.ControlPlaneVCPU, 2)
	set(&f.ControlPlaneMemGiB, 2)
	f.Traffic = map[string]capacity.Figure{
		"dev": {Value: 1}, "basic": {Value: 1}, "pro": {Value: 2}, "business": {Value: 4},
	}
	if change != nil {
		change(f)
	}
	return f
}

func mix(t *testing.T, s string) []capacity.Share {
	t.Helper()
	m, err := capacity.ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// unitPrices: 1 per vCPU-hour, 0 per GiB-hour, 1 per disk GiB-month, 0.5
// per object GiB-month.
var unitPrices = &cost.Sheet{Currency: "XTS", Source: "test",
	Prices: cost.Prices{VCPUHour: 1, DiskGBMonth: 1, ObjectGBMonth: 0.5}}

// TestKubeRequests: shard_request_* are the Kubernetes provider's default
// requests of a shard's two pods (read from its source: importing
// internal/kube would compile client-go into this package's tests).
func TestKubeRequests(t *testing.T) {
	src, err := os.ReadFile("../kube/objects.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`s\.(Shard|DB)Resources = Resources\{CPU: "(\d+)m", Memory: "(\d+)Gi"`)
	var cpu, mem float64
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		c, _ := strconv.Atoi(m[2])
		g, _ := strconv.Atoi(m[3])
		cpu += float64(c) / 1000
		mem += float64(g)
	}
	f := capacity.DefaultFigures()
	if cpu == 0 || cpu != f.ShardRequestVCPU.Value || mem != f.ShardRequestMemGiB.Value {
		t.Errorf("internal/kube requests %v vCPU %v GiB, figures %v and %v", cpu, mem, f.ShardRequestVCPU.Value, f.ShardRequestMemGiB.Value)
	}
}

func TestPlanArithmetic(t *testing.T) {
	type want struct {
		sites                                  []int // per plan of the mix
		shards, nodes, perNode, edges, workers int
		bound                                  string
		shardVCPU, shardGiB                    float64
		blockGiB, objectGiB, quotaGiB          float64
		total                                  float64
	}
	for _, tc := range []struct {
		name  string
		sites int
		mix   string
		figs  *capacity.Figures
		want  want
	}{
		{
			// 100 basic sites at 1 req/s, 10 per shard: a shard is 10
			// req/s × 0.1 s = 1 vCPU and 1 GiB; a node holds 8 by CPU and
			// 16 by memory. Edges: 100 req/s / 10 per core = 10 cores = 3
			// replicas of 4. Disk: 100 GiB quota × 0.5 + 10 shards × 1.
			// Money: 730 h × (2×8 + 3×4 + 1×2 vCPU) + 60 + 50×0.5.
			name: "cpu bound", sites: 100, mix: "small=100", figs: simple(nil),
			want: want{sites: []int{100}, shards: 10, nodes: 2, perNode: 8, edges: 3, workers: 5, bound: "cpu",
				shardVCPU: 1, shardGiB: 1, quotaGiB: 100, blockGiB: 60, objectGiB: 100, total: 730*30 + 60 + 50},
		},
		{
			// Nodes of 4 GiB hold 4 shards of 1 GiB: memory binds.
			name: "memory bound", sites: 100, mix: "small=100",
			figs: simple(func(f *capacity.Figures) { f.NodeMemoryGiB.Value = 4 }),
			want: want{sites: []int{100}, shards: 10, nodes: 3, perNode: 4, edges: 3, workers: 5, bound: "memory",
				shardVCPU: 1, shardGiB: 1, quotaGiB: 100, blockGiB: 60, objectGiB: 100, total: 730*38 + 60 + 50},
		},
		{
			// 7 sites at 33.3/33.3/33.4 %: 2.331, 2.331, 2.338 → 2, 2, 3
			// (the spare site to the largest remainder); one shard.
			// Traffic 2×1 + 2×2 + 3×4 = 18 req/s over 7 sites, a full shard
			// of 10 sites 18×10/7 req/s × 0.1 s; its workers 9×10/7 → 13.
			name: "largest remainder", sites: 7, mix: "small=33.3,medium=33.3,large=33.4", figs: simple(nil),
			want: want{sites: []int{2, 2, 3}, shards: 1, nodes: 1, perNode: 3, edges: 2, workers: 13, bound: "cpu",
				shardVCPU: 2.571, shardGiB: 1, quotaGiB: (2*1024 + 2*5120 + 3*10240) / 1024.0,
				blockGiB: 22, objectGiB: 42, total: 730*(8+8+2) + 22 + 21},
		},
		{
			// Ties go to the mix's first entry: 101 sites at 50/50.
			name: "tie", sites: 101, mix: "basic=50,pro=50", figs: simple(nil),
			// 151 req/s: 15.1 edge cores, 4 replicas; 11 shards of 1.495
			// vCPU, 5 to a node.
			want: want{sites: []int{51, 50}, shards: 11, nodes: 3, perNode: 5, edges: 4, workers: 8, bound: "cpu",
				shardVCPU: 1.495, shardGiB: 1, quotaGiB: (51*1024 + 50*5120) / 1024.0,
				blockGiB: 161.5, objectGiB: 301, total: 730*(3*8+4*4+2) + 161.5 + 150.5},
		},
		{
			// A dev site's pool has 2 workers: at 100 req/s × 0.5 s a site
			// would want 50, its plan caps it at 2, so 10 sites hold 20.
			// 1 burst site of dev adds 2 workers; workers cost 512 MiB.
			name: "max_children caps busy workers", sites: 10, mix: "dev=100",
			figs: simple(func(f *capacity.Figures) {
				f.Traffic["dev"] = capacity.Figure{Value: 100}
				f.NodeVCPU.Value = 1000
				f.NodeMemoryGiB.Value = 100
				f.PHPWorkerMemoryMiB.Value = 512
				f.BurstSitesPerShard.Value = 1
				f.EdgeRPSPerCore.Value = 1000
			}),
			want: want{sites: []int{10}, shards: 1, nodes: 1, perNode: 8, edges: 2, workers: 20, bound: "memory",
				shardVCPU: 100, shardGiB: 1 + 22*0.5, quotaGiB: 5, blockGiB: 3.5, objectGiB: 5,
				total: 730*(1000+8+2) + 3.5 + 2.5},
		},
		{
			// The example on the embedded figures: 1,000 shards;
			// 2,150 PHP req/s × 60.1 ms / 0.6 = 215.4 vCPU, 0.2154 per
			// shard, but Kubernetes reserves 0.75: 9 per node of 7.2
			// allocatable vCPU → 112 nodes.
			name: "embedded figures 50,000", sites: 50000, mix: "small=80,medium=15,large=5", figs: capacity.DefaultFigures(),
			want: want{sites: []int{40000, 7500, 2500}, shards: 1000, nodes: 112, perNode: 9, edges: 2, workers: 1, bound: "cpu",
				shardVCPU: 0.215, shardGiB: 0.371, quotaGiB: 102500, blockGiB: 35625, objectGiB: 38437.5,
				total: 730*(112*8+2*4+2*2) + 35625 + 38437.5*0.5},
		},
		{
			// Without the provider's reservation (shards on VMs sized by
			// use): 33 shards of 0.2154 vCPU per node → 31 nodes.
			name: "embedded figures 50,000 without requests", sites: 50000, mix: "small=80,medium=15,large=5",
			figs: func() *capacity.Figures {
				f := capacity.DefaultFigures()
				f.ShardRequestVCPU.Value, f.ShardRequestMemGiB.Value = 0, 0
				return f
			}(),
			want: want{sites: []int{40000, 7500, 2500}, shards: 1000, nodes: 31, perNode: 33, edges: 2, workers: 1, bound: "cpu",
				shardVCPU: 0.215, shardGiB: 0.371, quotaGiB: 102500, blockGiB: 35625, objectGiB: 38437.5,
				total: 730*(31*8+2*4+2*2) + 35625 + 38437.5*0.5},
		},
		{
			// The provider reserves 2 vCPU and 3 GiB per shard though a
			// shard needs 1 and 1: 4 per node by CPU (5 by memory).
			name: "requests reserve more than the need", sites: 100, mix: "small=100",
			figs: simple(func(f *capacity.Figures) { f.ShardRequestVCPU.Value, f.ShardRequestMemGiB.Value = 2, 3 }),
			want: want{sites: []int{100}, shards: 10, nodes: 3, perNode: 4, edges: 3, workers: 5, bound: "cpu",
				shardVCPU: 1, shardGiB: 1, quotaGiB: 100, blockGiB: 60, objectGiB: 100, total: 730*38 + 60 + 50},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := capacity.Plan(capacity.Input{Sites: tc.sites, Mix: mix(t, tc.mix)}, plans.Defaults(), tc.figs, unitPrices)
			if err != nil {
				t.Fatal(err)
			}
			var sites []int
			for _, l := range r.Plans {
				sites = append(sites, l.Sites)
			}
			got := want{sites: sites, shards: r.Shards, nodes: r.Nodes.Count, perNode: r.Nodes.ShardsPerNode,
				edges: r.Edges.Count, workers: r.Shard.PHPWorkers, bound: r.Nodes.BoundBy,
				shardVCPU: r.Shard.VCPU, shardGiB: r.Shard.MemoryGiB, quotaGiB: r.Storage.QuotaGiB,
				blockGiB: r.Storage.BlockGiB, objectGiB: r.Storage.ObjectGiB, total: r.Cost.Total}
			w := tc.want
			w.quotaGiB = float64(int(w.quotaGiB*10+0.5)) / 10
			if got.shards != w.shards || got.nodes != w.nodes || got.perNode != w.perNode || got.edges != w.edges ||
				got.workers != w.workers || got.bound != w.bound || !slices.Equal(got.sites, w.sites) ||
				!near(got.shardVCPU, w.shardVCPU, 0.001) || !near(got.shardGiB, w.shardGiB, 0.001) ||
				!near(got.quotaGiB, w.quotaGiB, 0.05) || !near(got.blockGiB, w.blockGiB, 0.05) ||
				!near(got.objectGiB, w.objectGiB, 0.05) || !near(got.total, w.total, 0.005) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if r.DatabaseServers != r.Shards || r.DBConnections != int(tc.figs.DBBackendsPerShard.Value) {
				t.Errorf("database servers %d (%d connections), want one per shard (%d) with %v", r.DatabaseServers, r.DBConnections, r.Shards, tc.figs.DBBackendsPerShard.Value)
			}
			if sum := r.Cost.Compute + r.Cost.Block + r.Cost.Object; !near(sum, r.Cost.Total, 0.005) {
				t.Errorf("parts %v + %v + %v = %v, total %v", r.Cost.Compute, r.Cost.Block, r.Cost.Object, sum, r.Cost.Total)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	basic := []capacity.Share{{Name: "small", Percent: 100}}
	for _, tc := range []struct {
		name  string
		sites int
		mix   []capacity.Share
		figs  *capacity.Figures
		want  string
	}{
		{"zero sites", 0, basic, nil, "--sites must be a positive number of sites, got 0"},
		{"negative sites", -5, basic, nil, "--sites must be a positive number of sites, got -5"},
		{"unknown plan", 10, []capacity.Share{{Name: "huge", Percent: 100}}, nil,
			`--mix: unknown plan or size "huge" (sizes: large=business, medium=pro, small=basic; plans: dev, basic, pro, business)`},
		{"size and its plan", 10, []capacity.Share{{Name: "small", Percent: 50}, {Name: "basic", Percent: 50}}, nil,
			"--mix: small and basic are both plan basic: give it once"},
		{"sum", 10, []capacity.Share{{Name: "small", Percent: 90}}, nil, "--mix: the percentages add up to 90, not 100"},
		{"empty mix", 10, nil, nil, "--mix: empty"},
		{"no traffic", 10, basic, simple(func(f *capacity.Figures) { delete(f.Traffic, "basic") }), "figures: no traffic.basic"},
		{"shard larger than a node", 10, basic, simple(func(f *capacity.Figures) { f.NodeMemoryGiB.Value = 0.5 }),
			"one shard takes 1.00 vCPU and 1.00 GiB at peak, more than a node's allocatable 8.00 vCPU and 0.50 GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.figs
			if f == nil {
				f = capacity.DefaultFigures()
			}
			_, err := capacity.Plan(capacity.Input{Sites: tc.sites, Mix: tc.mix}, plans.Defaults(), f, cost.Default())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"small=80,medium=15,large=5", ""},
		{" small = 80 , medium=20% ", ""},
		{"small=12.5,basic=87.5", ""},
		{"", "--mix: empty"},
		{"small", `--mix: "small" is not NAME=PERCENT`},
		{"=100", `--mix: "=100" is not NAME=PERCENT`},
		{"small=many", `--mix: small: the percentage must be a number between 0 and 100, got "many"`},
		{"small=120", `--mix: small: the percentage must be a number between 0 and 100, got "120"`},
		{"small=-20,large=120", `--mix: small: the percentage must be a number between 0 and 100, got "-20"`},
		{"small=80,medium=15", "--mix: the percentages add up to 95, not 100"},
		{"small=80,medium=15,large=15", "--mix: the percentages add up to 110, not 100"},
		{"small=50,small=50", "--mix: small is given twice"},
	} {
		_, err := capacity.ParseMix(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ParseMix(%q) = %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ParseMix(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestParseFigures(t *testing.T) {
	good := string(capacity.FiguresYAML())
	for _, tc := range []struct{ name, doc, want string }{
		{"embedded", good, ""},
		{"unknown key", good + "\nnode_gpus: {value: 1, source: x}\n", `unknown field "node_gpus"`},
		{"missing", strings.Replace(good, "node_vcpu:\n  value: 8\n  source: \"assumption: n2-standard-8\"\n", "", 1), "node_vcpu: missing"},
		{"out of range", strings.Replace(good, "value: 0.8\n", "value: 1.5\n", 1), "cache_hit_ratio: must be between 0 and 1, got 1.5"},
		{"not whole", strings.Replace(good, "value: 50\n", "value: 50.5\n", 1), "sites_per_shard: must be a whole number, got 50.5"},
		{"no source", "sites_per_shard: {value: 50}\n", "sites_per_shard: missing, or without a source"},
		{"negative traffic", good + "  dev2: {value: -1, source: assumption}\n", "traffic.dev2: must be at least 0, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := capacity.ParseFigures([]byte(tc.doc), "f.yaml")
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "f.yaml: ")):
				t.Fatalf("err = %v, want f.yaml: …%q", err, tc.want)
			}
		})
	}
}

func near(a, b, eps float64) bool { return a-b <= eps && b-a <= eps }
