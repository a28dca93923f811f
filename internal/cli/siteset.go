package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
)

func newSiteSetCmd(o *siteOpts) *cobra.Command {
	var (
		title         string
		httpsRedirect bool
		cacheTTL      int
		wafMode       string
		wafParanoia   int
		exclude       []string
		unexclude     []string
		plan          string
	)
	cmd := &cobra.Command{
		Use:   "set DOMAIN",
		Short: "Change a site's title, edge policies (HTTPS redirect, page cache, WAF) and plan",
		Long: `Change a site's title, edge policies and plan. Only the flags given change.
The edge applies the new policy within a second.

--plan moves the site to another plan: its shard applies the plan's PHP
workers and limits, database connections and disk limit live, without
downtime. The plan must not exceed the organisation's plan, and must give at
least the disk the site stores (else the API refuses, saying which limit).

--waf-exclude RULE:PATH[:ARGUMENT] lifts one WAF rule for one path, for one
request argument (query, form or multipart field, JSON key) or, without
ARGUMENT, entirely: the fix for a false positive that keeps the WAF on.
PATH is the URL path without the query, matched exactly, or as a prefix when
it ends in '*' ('/*' is the whole site; quote it for the shell). Arguments
match case-insensitively; a JSON body's keys count under their own names.
'aipress site waf events DOMAIN' shows what the WAF refused, each with the
--waf-exclude that would let it through. --waf-unexclude removes one.
Both are repeatable; adding one that exists or removing one that does not
changes nothing. A site may have 50.`,
		Example: `  aipress site set blog.localhost --https-redirect=true
  aipress site set blog.localhost --cache-ttl 300 --waf-mode block --waf-paranoia 1
  aipress site set blog.localhost --title "New title" -o json
  aipress site set blog.localhost --plan pro
  aipress site set blog.localhost --waf-exclude 942190:/:s        # searches on the front page
  aipress site set blog.localhost --waf-exclude '941100:/wp-json/myplugin/*:html'
  aipress site set blog.localhost --waf-unexclude 942190:/:s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req apiclient.UpdateSiteRequest
			fl := cmd.Flags()
			if fl.Changed("title") {
				req.Title = &title
			}
			if fl.Changed("plan") {
				req.Plan = &plan
			}
			if fl.Changed("https-redirect") {
				req.HTTPSRedirect = &httpsRedirect
			}
			if fl.Changed("cache-ttl") {
				req.Cache = &apiclient.UpdateCache{TTLSeconds: &cacheTTL}
			}
			if fl.Changed("waf-mode") || fl.Changed("waf-paranoia") {
				req.WAF = &apiclient.UpdateWAF{}
				if fl.Changed("waf-mode") {
					req.WAF.Mode = &wafMode
				}
				if fl.Changed("waf-paranoia") {
					req.WAF.ParanoiaLevel = &wafParanoia
				}
			}
			if len(exclude)+len(unexclude) > 0 {
				if req.WAF == nil {
					req.WAF = &apiclient.UpdateWAF{}
				}
				for _, list := range []struct {
					flags []string
					into  *[]site.WAFExclusion
				}{{exclude, &req.WAF.AddExclusions}, {unexclude, &req.WAF.RemoveExclusions}} {
					for _, f := range list.flags {
						e, err := site.ParseWAFExclusion(f)
						if err != nil {
							return err
						}
						*list.into = append(*list.into, e)
					}
				}
			}
			if req == (apiclient.UpdateSiteRequest{}) {
				return errors.New("nothing to change: give --title, --plan, --https-redirect, --cache-ttl, --waf-mode, --waf-paranoia, --waf-exclude or --waf-unexclude")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			s, err := c.UpdateSite(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if err := o.printSite(cmd.OutOrStdout(), s); err != nil {
				return err
			}
			if o.output == "table" && len(exclude)+len(unexclude) > 0 {
				return printExclusions(cmd.OutOrStdout(), s.Spec.WAF.Exclusions)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&title, "title", "", "site title")
	fl.StringVar(&plan, "plan", "", "move the site to this plan (dev, basic, pro, business unless the platform's plans file says otherwise); applied live")
	fl.BoolVar(&httpsRedirect, "https-redirect", false, "send plain-HTTP visitors to HTTPS with 308 (when the edge serves HTTPS)")
	fl.IntVar(&cacheTTL, "cache-ttl", 0, "page-cache TTL in seconds (0 disables the page cache)")
	fl.StringVar(&wafMode, "waf-mode", "", "WAF mode: "+site.WAFOff+", "+site.WAFDetect+" or "+site.WAFBlock)
	fl.IntVar(&wafParanoia, "waf-paranoia", 0, "WAF paranoia level, 1 to 4")
	fl.StringArrayVar(&exclude, "waf-exclude", nil, "add a WAF exclusion RULE:PATH[:ARGUMENT], e.g. 942190:/:s (repeatable)")
	fl.StringArrayVar(&unexclude, "waf-unexclude", nil, "remove a WAF exclusion RULE:PATH[:ARGUMENT] (repeatable)")
	return cmd
}
