package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
)

func newSLACmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var month, org, siteName, query string
	var plansOnly bool
	cmd := clientCmd(&cobra.Command{
		Use:   "sla",
		Short: "Monthly SLA report: each site's availability against its plan's target, and each plan's",
		Long: `Print the SLA report of a calendar month (UTC) for the sites you may read:
each site's measured time (the month, from the site's creation if later, until
now if the month is not over), its downtime (the uptime probes' incidents),
its availability and whether it met its plan's sla_percent (basic 99.9,
pro 99.95, business 99.99; dev has none); then each plan's sums.

Incidents come from the edges' probes of each site's home page (a 200 answer
with WordPress's page); see 'aipress site incidents'.`,
		Example: `  aipress sla
  aipress sla --month 2026-11 --org acme -o json
  aipress sla --site blog.example.com
  aipress sla --plans -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "csv" {
				if err := checkFormat(o.output); err != nil {
					return err
				}
			}
			c, err := newClient(o.d, o.client) // not o.connect: csv is a format here
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"month": month, "org": org, "site": siteName, "q": query} {
				if v != "" {
					q.Set(k, v)
				}
			}
			rep, err := c.SLA(cmd.Context(), q)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "table":
				return printSLA(w, rep, plansOnly)
			case "csv":
				return printSLACSV(w, rep, plansOnly)
			}
			if plansOnly {
				return printData(w, o.output, rep.Plans)
			}
			return printData(w, o.output, rep)
		},
	}, o)
	cmd.PersistentFlags().Lookup("output").Usage = "output format: table, json, yaml or csv"
	fl := cmd.Flags()
	fl.StringVar(&month, "month", "", "the month, YYYY-MM (default: the current one, so far)")
	fl.StringVar(&org, "org", "", "only this organisation's sites")
	fl.StringVar(&siteName, "site", "", "only this site")
	fl.StringVar(&query, "q", "", "only sites whose name contains this")
	fl.BoolVar(&plansOnly, "plans", false, "only the per-plan sums")
	return cmd
}

func pct(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }

func secs(f float64) string {
	return (time.Duration(f * float64(time.Second))).Round(time.Second).String()
}

func printSLA(w io.Writer, rep *uptime.Report, plansOnly bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	state := "so far"
	if rep.Complete {
		state = "complete"
	}
	fmt.Fprintf(tw, "Month %s (%s, until %s)\n\n", rep.Month, state, rep.To.UTC().Format(time.RFC3339))
	if !plansOnly {
		fmt.Fprintln(tw, "SITE\tPLAN\tTARGET %\tAVAILABILITY %\tDOWNTIME\tALLOWED\tINCIDENTS\tMET")
		for _, s := range rep.Sites {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Site, s.Plan, target(s.TargetPercent), pct(s.AvailabilityPercent),
				secs(s.DowntimeSeconds), allowed(s), s.Incidents, yesNo(s.Met))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "PLAN\tTARGET %\tSITES\tMET\tAVAILABILITY %\tDOWNTIME\tINCIDENTS")
	for _, p := range rep.Plans {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\n", p.Plan, target(p.TargetPercent), p.Sites, p.SitesMet, pct(p.AvailabilityPercent),
			secs(p.DowntimeSeconds), p.Incidents)
	}
	return tw.Flush()
}

func target(f float64) string {
	if f == 0 {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func allowed(s uptime.SiteSLA) string {
	if s.TargetPercent == 0 {
		return "-"
	}
	return secs(s.AllowedDowntimeSeconds)
}

func printSLACSV(w io.Writer, rep *uptime.Report, plansOnly bool) error {
	cw := csv.NewWriter(w)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if plansOnly {
		_ = cw.Write([]string{"month", "plan", "target_percent", "sites", "sites_met", "availability_percent", "measured_seconds", "downtime_seconds", "incidents"})
		for _, p := range rep.Plans {
			_ = cw.Write([]string{rep.Month, p.Plan, f(p.TargetPercent), strconv.Itoa(p.Sites), strconv.Itoa(p.SitesMet), f(p.AvailabilityPercent),
				f(p.MeasuredSeconds), f(p.DowntimeSeconds), strconv.Itoa(p.Incidents)})
		}
	} else {
		_ = cw.Write([]string{"month", "site", "org", "plan", "target_percent", "availability_percent", "measured_seconds", "downtime_seconds",
			"allowed_downtime_seconds", "incidents", "met"})
		for _, s := range rep.Sites {
			_ = cw.Write([]string{rep.Month, s.Site, s.Org, s.Plan, f(s.TargetPercent), f(s.AvailabilityPercent), f(s.MeasuredSeconds),
				f(s.DowntimeSeconds), f(s.AllowedDowntimeSeconds), strconv.Itoa(s.Incidents), strconv.FormatBool(s.Met)})
		}
	}
	cw.Flush()
	return cw.Error()
}

func newSiteIncidentsCmd(o *siteOpts) *cobra.Command {
	var after int64
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "incidents DOMAIN",
		Short: "List a site's uptime incidents (when the edges' probes saw it down, and for how long)",
		Long: `List the site's incidents, oldest first: each began at the first failed
probe of its home page (not a 200 answer with WordPress's page) and ended at
the first that passed again. An open incident has no end yet.

A page holds --limit incidents; the next one starts --after the last ID
printed (or use --all).`,
		Example: `  aipress site incidents blog.example.com
  aipress site incidents blog.example.com --all -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			var items []store.Incident
			var next int64
			for {
				page, err := c.Incidents(cmd.Context(), args[0], after, limit)
				if err != nil {
					return err
				}
				items, next = append(items, page.Items...), page.Next
				if !all || next == 0 {
					break
				}
				after = next
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				if items == nil {
					items = []store.Incident{}
				}
				return printData(w, o.output, items)
			}
			now := o.d.now()
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTARTED\tENDED\tDURATION\tCAUSE")
			for _, in := range items {
				end := "open"
				if in.Ended != nil {
					end = in.Ended.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", in.ID, in.Started.UTC().Format(time.RFC3339), end, in.Duration(now).Round(time.Second), in.Cause)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if next != 0 {
				_, err = fmt.Fprintf(w, "More: --after %d\n", next)
			}
			return err
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "list incidents after this ID (the next page)")
	cmd.Flags().IntVar(&limit, "limit", 100, "incidents per page (at most 1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow every page")
	return cmd
}

func newSiteStatusPageCmd(o *siteOpts) *cobra.Command {
	var public, private bool
	cmd := &cobra.Command{
		Use:   "status-page DOMAIN [--public | --private]",
		Short: "Show, publish or withdraw a site's public status page",
		Long: `A site's status page (GET /status/DOMAIN on the API's address, HTML, no
sign-in) shows whether it is up, its availability in the last three months and
its incidents of the last 90 days, and nothing of other sites. It is off until
the site's owner or developer makes it public; then anyone may read it.
Without a flag, print whether it is public.

The platform's page (GET /status) is always public: counts only, no site.`,
		Example: `  aipress site status-page blog.example.com --public
  aipress site status-page blog.example.com --private
  aipress site status-page blog.example.com -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(o.output); err != nil {
				return err
			}
			if public && private {
				return fmt.Errorf("--public and --private exclude each other")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			set, err := c.StatusPage(cmd.Context(), args[0])
			if public || private {
				set, err = c.SetStatusPage(cmd.Context(), args[0], public)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, set)
			}
			if !set.Public {
				_, err = fmt.Fprintf(w, "The status page of %s is private.\n", args[0])
				return err
			}
			_, err = fmt.Fprintf(w, "The status page of %s is public at %s%s\n", args[0], c.BaseURL, set.Path)
			return err
		},
	}
	cmd.Flags().BoolVar(&public, "public", false, "make the status page public")
	cmd.Flags().BoolVar(&private, "private", false, "withdraw it")
	return cmd
}
