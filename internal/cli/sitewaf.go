package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
)

func newSiteWAFCmd(o *siteOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waf",
		Short: "Show what a site's WAF refused, to tune it",
		Long: `The edge's web application firewall (Coraza with the OWASP Core Rule Set)
refuses requests that look like attacks. 'waf events' shows the recent ones
with the exclusion that would let such a request through; apply one with
'aipress site set DOMAIN --waf-exclude RULE:PATH[:ARGUMENT]'.`,
	}
	cmd.AddCommand(newSiteWAFEventsCmd(o))
	return cmd
}

func newSiteWAFEventsCmd(o *siteOpts) *cobra.Command {
	var (
		limit int
		cont  string
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "events DOMAIN",
		Short: "List a site's recent WAF matches with suggested exclusions",
		Long: `List the WAF's matches on requests it refused for the site (or, in detect
mode, would have refused), newest first: one row per rule and argument, with
the request id the visitor saw on the error page. EXCLUDE is the narrowest
exclusion that lets such a request through that rule (the rule, the exact
path, the argument); '(excluded)' means the site has it already, '-' that the
rule may not be excluded. A request refused by several rules needs each of
them excluded. The control plane keeps the newest 200 events per site for 7
days; edges report them within seconds.`,
		Example: `  aipress site waf events blog.localhost
  aipress site waf events blog.localhost --limit 5 -o json
  aipress site set blog.localhost --waf-exclude 942190:/:s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			out := &apiclient.WAFEventsResponse{Items: []apiclient.WAFEventView{}}
			opts := apiclient.ListOptions{Limit: limit, Continue: cont}
			for {
				page, err := c.ListWAFEvents(cmd.Context(), args[0], opts)
				if err != nil {
					return err
				}
				out.Items = append(out.Items, page.Items...)
				out.Continue = page.Continue
				if !all || page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, out)
			}
			if len(out.Items) == 0 {
				_, err := fmt.Fprintf(w, "No WAF events for %s.\n", args[0])
				return err
			}
			if err := printWAFEvents(w, out.Items); err != nil {
				return err
			}
			fmt.Fprintf(w, "\nTo let such requests through: aipress site set %s --waf-exclude RULE:PATH[:ARGUMENT] (EXCLUDE above)\n", args[0])
			if out.Continue != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more events exist; use --all, or --continue %s\n", out.Continue)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "events per page (1-1000)")
	cmd.Flags().StringVar(&cont, "continue", "", "continue token of the next page")
	cmd.Flags().BoolVar(&all, "all", false, "follow continue tokens and list every event kept")
	return cmd
}

// printWAFEvents prints events with columns TIME REQUEST-ID METHOD PATH
// RULE ARGUMENT ACTION PL MESSAGE EXCLUDE.
func printWAFEvents(w io.Writer, events []apiclient.WAFEventView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tREQUEST-ID\tMETHOD\tPATH\tRULE\tARGUMENT\tACTION\tPL\tMESSAGE\tEXCLUDE")
	for _, ev := range events {
		ex := "-"
		if sg := ev.Suggestion; sg != nil {
			ex = sg.Flag
			if sg.Excluded {
				ex = "(excluded)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.DateTime), dash(ev.RequestID),
			dash(ev.Method), dash(shorten(ev.Path, 40)), ev.RuleID, dash(shorten(ev.Argument, 30)), ev.Action,
			strconv.Itoa(ev.Paranoia), dash(shorten(ev.Message, 50)), shorten(ex, 60))
	}
	return tw.Flush()
}

// printExclusions prints a site's WAF exclusions after `site set`.
func printExclusions(w io.Writer, list []site.WAFExclusion) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "WAF exclusions: none")
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "WAF exclusions (%d):\n", len(list))
	for _, e := range list {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shorten cuts s to n runes, marking the cut with "…"; tabs and newlines
// become spaces so that a column stays one line.
func shorten(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
