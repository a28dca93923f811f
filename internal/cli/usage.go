package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// connectCSV is siteOpts.connect for commands that also print CSV.
func (o *siteOpts) connectCSV() (*apiclient.Client, error) {
	if o.output != "csv" {
		if err := checkFormat(o.output); err != nil {
			return nil, fmt.Errorf("%w (or csv)", err)
		}
	}
	return newClient(o.d, o.client)
}

func csvFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().Lookup("output").Usage = "output format: table, csv, json or yaml"
}

func newUsageCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var q apiclient.UsageQuery
	var all bool
	cmd := clientCmd(&cobra.Command{
		Use:   "usage [--site D] [--org O] [--period hour|day|month] [--month YYYY-MM | --from DATE --to DATE]",
		Short: "Show sites' usage: requests, bytes out, cache hits, PHP time, database, files, backups",
		Long: `Show the usage records of the sites you may read, per hour, day (default) or
month, over a month (default the current one, UTC) or --from/--to (--to
exclusive; YYYY-MM-DD or RFC 3339).

Columns: requests, response body bytes and page-cache hits as the edges counted
them; PHP seconds, the time requests waited for PHP at the edge (a site's PHP
worker time as the edge sees it: it includes the pool's queue); database
queries and the average database and files bytes as the site's shard measures
them (every 5 minutes), and its backup bytes (its share of its backup
repositories, measured hourly). A site that moved shows one line per shard. A
retried report is counted once.

At most --limit records per call (default 100, max 1000); the table says how to
get the next page, or give --all for every page.`,
		Example: `  aipress usage
  aipress usage --site blog.example.com --period hour --from 2026-12-06 --to 2026-12-07
  aipress usage --org acme --period month --month 2026-11 -o csv > acme-2026-11.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Limit < 0 || q.Limit > 1000 {
				return fmt.Errorf("--limit %d: want 1 to 1000", q.Limit)
			}
			c, err := o.connectCSV()
			if err != nil {
				return err
			}
			page, err := c.ListUsage(cmd.Context(), q)
			if err != nil {
				return err
			}
			for all && page.Next != "" {
				next := q
				next.After = page.Next
				more, err := c.ListUsage(cmd.Context(), next)
				if err != nil {
					return err
				}
				page.Items, page.Next = append(page.Items, more.Items...), more.Next
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "csv":
				err = printUsageCSV(w, page.Items)
			case "table":
				err = printUsageTable(w, page.Items)
			default:
				return printData(w, o.output, page)
			}
			if err == nil && page.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: add --after '%s' (or --all)\n", page.Next)
			}
			return err
		},
	}, o)
	csvFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&q.Site, "site", "", "only this site")
	f.StringVar(&q.Org, "org", "", "only this organisation's sites")
	f.StringVar(&q.Period, "period", "day", "hour, day or month")
	f.StringVar(&q.Month, "month", "", "the month, YYYY-MM (default the current one, UTC)")
	f.StringVar(&q.From, "from", "", "from this day (YYYY-MM-DD) or time (RFC 3339), with --to")
	f.StringVar(&q.To, "to", "", "until this day or time (exclusive)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many records (default 100, max 1000)")
	f.StringVar(&q.After, "after", "", "the next page, after this record (as the table said)")
	f.BoolVar(&all, "all", false, "every page")
	return cmd
}

var usageColumns = []string{"period", "site", "shard", "requests", "bytes_out", "cache_hits", "php_seconds", "db_queries", "db_bytes", "files_bytes", "backup_bytes"}

func usageRow(r store.UsageRecord) []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return []string{r.Period, r.Site, r.Shard, i(r.Requests), i(r.BytesOut), i(r.CacheHits),
		strconv.FormatFloat(float64(r.PHPMicros)/1e6, 'f', 3, 64), i(r.DBQueries), i(r.DBBytes), i(r.FilesBytes), i(r.BackupBytes)}
}

func printUsageCSV(w io.Writer, items []store.UsageRecord) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(usageColumns)
	for _, r := range items {
		_ = cw.Write(usageRow(r))
	}
	cw.Flush()
	return cw.Error()
}

func printUsageTable(w io.Writer, items []store.UsageRecord) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "PERIOD\tSITE\tSHARD\tREQUESTS\tBYTES OUT\tCACHE HITS\tPHP S\tDB QUERIES\tDB\tFILES\tBACKUPS")
	for _, r := range items {
		row := usageRow(r)
		row[2] = dash(row[2])
		for j, b := range []int64{r.BytesOut, r.DBBytes, r.FilesBytes, r.BackupBytes} {
			row[[]int{4, 8, 9, 10}[j]] = humanBytes(b)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func newCostCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var month, org string
	cmd := clientCmd(&cobra.Command{
		Use:   "cost [--month YYYY-MM] [--org ORG]",
		Short: "Show what each site costs in a month: its share of its shard and its own egress and backups",
		Long: `Price a month (default the current one, so far) with the control plane's price
sheet (GCP list prices by default, internal/cost/prices.yaml) and split each
shard's cost over its sites: the sheet's fixed share equally (idle sites pay
it too), the rest by PHP worker-seconds and storage. A shard's shares add up to
its cost to the cent (the cents left by rounding go to the largest remainders).
Egress and backup storage are each site's own costs on top.

Amounts are in the sheet's currency. Platform roles also see each shard's cost;
members of an organisation see its sites only.`,
		Example: `  aipress cost
  aipress cost --month 2026-11 --org acme
  aipress cost --month 2026-11 -o csv > cost-2026-11.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connectCSV()
			if err != nil {
				return err
			}
			rep, err := c.Cost(cmd.Context(), month, org)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "csv":
				return printCostCSV(w, rep)
			case "table":
				return printCostTable(w, rep)
			}
			return printData(w, o.output, rep)
		},
	}, o)
	csvFlag(cmd)
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (default the current one, UTC)")
	cmd.Flags().StringVar(&org, "org", "", "only this organisation's sites")
	return cmd
}

// money prints cents as units with two decimals.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

func printCostCSV(w io.Writer, rep *api.CostReport) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"month", "site", "org", "shard", "currency", "share", "fixed", "usage", "egress", "backup", "total",
		"requests", "bytes_out", "php_seconds", "storage_bytes", "backup_bytes"})
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, l := range rep.Sites {
		_ = cw.Write([]string{rep.Month, l.Site, l.Org, l.Shard, rep.Currency, money(l.Share), money(l.Fixed), money(l.Usage),
			money(l.Egress), money(l.Backup), money(l.Total), i(l.Requests), i(l.BytesOut), i(l.PHPSeconds), i(l.StorageBytes), i(l.BackupBytes)})
	}
	cw.Flush()
	return cw.Error()
}

func printCostTable(w io.Writer, rep *api.CostReport) error {
	fmt.Fprintf(w, "Month %s, %.0f hours priced, in %s (%s)\n\n", rep.Month, rep.Hours, rep.Currency, rep.Source)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SITE\tORG\tSHARD\tFIXED\tUSAGE\tEGRESS\tBACKUPS\tTOTAL\tREQUESTS\tPHP S")
	for _, l := range rep.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", l.Site, dash(l.Org), l.Shard, money(l.Fixed), money(l.Usage),
			money(l.Egress), money(l.Backup), money(l.Total), l.Requests, l.PHPSeconds)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t\t\t%s\t\t\n", money(rep.Total))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Shards) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSITES\tCOST")
	for _, s := range rep.Shards {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Shard, s.Sites, money(s.Cost))
	}
	return tw.Flush()
}
