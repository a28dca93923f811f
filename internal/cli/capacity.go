package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/capacity"
	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/plans"
)

// DefaultMix is aipress capacity's --mix when none is given.
const DefaultMix = "small=80,medium=15,large=5"

func newCapacityCmd() *cobra.Command {
	var (
		sites                        int
		mix, figuresFile, pricesFile string
		plansFile, output, defaults  string
	)
	cmd := &cobra.Command{
		Use:   "capacity",
		Short: "Plan shards, nodes, database servers, storage and money for a number of sites",
		Long: `Print what a fleet of --sites sites on a --mix of plans takes: shards, nodes,
database servers, edges, block and object storage, and money per month, with
every figure the plan was made from and where it comes from.

The figures are the platform's measured ones (bench-provision: memory per
shard and per idle site; bench-db: CPU per request, database backends;
bench-edge: cache hits per core) and assumptions (traffic per plan, cache hit
ratio, node shape, disk fill, backup size): 'aipress capacity -o yaml' shows
them all; --figures FILE replaces them (start from the built-in file that
'aipress capacity --print-defaults figures' prints). The plans are the
platform's (disk, PHP workers and memory per site; --plans FILE for an
operator's own). Money is at the price sheet of 'aipress cost' (GCP's public
list prices; --prices FILE for another, in the format --print-defaults prices
shows, as 'aipress server --prices'). See docs/operations.md, "Capacity planning".

The mix names sizes (small, medium, large: the plans basic, pro and business)
or plans (dev, basic, pro, business), with percentages adding up to 100.
Nothing is contacted: the command needs no running platform.`,
		Example: `  aipress capacity --sites 50000 --mix small=80,medium=15,large=5
  aipress capacity --sites 2000 --mix basic=50,pro=50 -o json
  aipress capacity --print-defaults figures > my-figures.yaml
  aipress capacity --sites 50000 --figures my-figures.yaml --prices my-prices.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch defaults {
			case "":
			case "figures":
				_, err := cmd.OutOrStdout().Write(capacity.FiguresYAML())
				return err
			case "prices":
				_, err := cmd.OutOrStdout().Write(cost.DefaultYAML())
				return err
			default:
				return fmt.Errorf("--print-defaults: %q: use figures or prices", defaults)
			}
			if err := checkFormat(output); err != nil {
				return err
			}
			shares, err := capacity.ParseMix(mix)
			if err != nil {
				return err
			}
			ps := plans.Defaults()
			if plansFile != "" {
				if ps, err = plans.Load(plansFile); err != nil {
					return err
				}
			}
			figs := capacity.DefaultFigures()
			if figuresFile != "" {
				if figs, err = capacity.LoadFigures(figuresFile); err != nil {
					return err
				}
			}
			prices := cost.Default()
			if pricesFile != "" {
				if prices, err = cost.Load(pricesFile); err != nil {
					return fmt.Errorf("--prices: %w", err)
				}
			}
			r, err := capacity.Plan(capacity.Input{Sites: sites, Mix: shares}, ps, figs, prices)
			if err != nil {
				return err
			}
			if output != "table" {
				return printData(cmd.OutOrStdout(), output, r)
			}
			return printCapacity(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.IntVar(&sites, "sites", 0, "number of sites to plan for (required, more than 0)")
	f.StringVar(&mix, "mix", DefaultMix, "sizes or plans with their percentage of the sites, adding up to 100")
	f.StringVar(&figuresFile, "figures", "", "YAML file of the figures to plan with (replaces the built-in measured figures and assumptions)")
	f.StringVar(&pricesFile, "prices", "", "YAML price sheet, as aipress server --prices (replaces the built-in GCP list prices)")
	f.StringVar(&plansFile, "plans", "", "YAML file of the platform's plans (as aipress up|server --plans)")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	f.StringVar(&defaults, "print-defaults", "", "print the built-in figures or prices file (figures|prices) and exit: a start for --figures and --prices")
	return cmd
}

// printCapacity prints a capacity plan as three tables: the mix, the
// resources, the assumptions.
func printCapacity(w io.Writer, r *capacity.Result) error {
	var mix []string
	for _, l := range r.Plans {
		name := l.Plan
		if l.Size != "" {
			name = l.Size
		}
		mix = append(mix, name+"="+num(l.Percent, -1))
	}
	fmt.Fprintf(w, "Capacity for %d sites (%s)\n\n", r.Sites, strings.Join(mix, ", "))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tSIZE\tSHARE\tSITES\tDISK/SITE\tPHP WORKERS\tPHP MEMORY\tPEAK REQ/S/SITE")
	for _, l := range r.Plans {
		fmt.Fprintf(tw, "%s\t%s\t%s %%\t%d\t%d MB\t%d\t%d MB\t%s\n", l.Plan, dash(l.Size), num(l.Percent, -1), l.Sites,
			l.DiskMB, l.PHPWorkers, l.PHPMemoryMB, num(l.PeakRPSPerSite, -1))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	c := r.Cost
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tAMOUNT\tDETAIL")
	rows := [][3]string{
		{"peak traffic", num(r.PeakRPS, 2) + " req/s", num(r.PeakPHPRPS, 2) + " req/s reach PHP"},
		{"shards", strconv.Itoa(r.Shards), fmt.Sprintf("%d sites each; a full shard at peak: %s vCPU (MariaDB %s), %s GiB (PHP workers: %d busy + %d burst; at their memory limit the burst could take %s GiB)",
			r.Shard.Sites, num(r.Shard.VCPU, 3), num(r.Shard.DBVCPU, 3), num(r.Shard.MemoryGiB, 3), r.Shard.PHPWorkers, r.Shard.BurstWorkers, num(r.Shard.WorstBurstGiB, 3))},
		{"shard nodes", strconv.Itoa(r.Nodes.Count), fmt.Sprintf("%s vCPU, %s GiB each; %d shards per node, each reserving %s vCPU and %s GiB (bound by %s)",
			num(r.Nodes.VCPU, -1), num(r.Nodes.MemoryGiB, -1), r.Nodes.ShardsPerNode, num(r.Shard.ReservedVCPU, 3), num(r.Shard.ReservedMemoryGiB, 3), r.Nodes.BoundBy)},
		{"database servers", strconv.Itoa(r.DatabaseServers), fmt.Sprintf("one MariaDB per shard, %d connections from its pooler", r.DBConnections)},
		{"edges", strconv.Itoa(r.Edges.Count), fmt.Sprintf("%s vCPU, %s GiB each", num(r.Edges.VCPU, -1), num(r.Edges.MemoryGiB, -1))},
		{"control plane", strconv.Itoa(r.ControlPlane.Count), fmt.Sprintf("%s vCPU, %s GiB each", num(r.ControlPlane.VCPU, -1), num(r.ControlPlane.MemoryGiB, -1))},
		{"block storage", num(r.Storage.BlockGiB, 1) + " GiB", "of " + num(r.Storage.QuotaGiB, 1) + " GiB of plan disk quotas"},
		{"object storage", num(r.Storage.ObjectGiB, 1) + " GiB", "backup repositories"},
		{"money per month", c.Currency + " " + num(c.Total, 2), fmt.Sprintf("compute %s, block %s, object %s; %s per site (%s)",
			num(c.Compute, 2), num(c.Block, 2), num(c.Object, 2), num(c.PerSite, 4), c.Source)},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Assumptions (measured figures give the command and date; see --figures):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tDATE\tSOURCE")
	for _, a := range r.Assumptions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, num(a.Value, -1), dash(a.Date), a.Source)
	}
	return tw.Flush()
}

// num formats v with digits decimals (-1: as few as needed).
func num(v float64, digits int) string { return strconv.FormatFloat(v, 'f', digits, 64) }
