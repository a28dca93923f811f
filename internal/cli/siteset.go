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
	)
	cmd := &cobra.Command{
		Use:   "set DOMAIN",
		Short: "Change a site's title and edge policies (HTTPS redirect, page cache, WAF)",
		Long: `Change a site's title and edge policies. Only the flags given change.
The edge applies the new policy within a second.`,
		Example: `  aipress site set blog.localhost --https-redirect=true
  aipress site set blog.localhost --cache-ttl 300 --waf-mode block --waf-paranoia 1
  aipress site set blog.localhost --title "New title" -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req apiclient.UpdateSiteRequest
			fl := cmd.Flags()
			if fl.Changed("title") {
				req.Title = &title
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
			if req == (apiclient.UpdateSiteRequest{}) {
				return errors.New("nothing to change: give --title, --https-redirect, --cache-ttl, --waf-mode or --waf-paranoia")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			s, err := c.UpdateSite(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return o.printSite(cmd.OutOrStdout(), s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&title, "title", "", "site title")
	fl.BoolVar(&httpsRedirect, "https-redirect", false, "send plain-HTTP visitors to HTTPS with 308 (when the edge serves HTTPS)")
	fl.IntVar(&cacheTTL, "cache-ttl", 0, "page-cache TTL in seconds (0 disables the page cache)")
	fl.StringVar(&wafMode, "waf-mode", "", "WAF mode: "+site.WAFOff+", "+site.WAFDetect+" or "+site.WAFBlock)
	fl.IntVar(&wafParanoia, "waf-paranoia", 0, "WAF paranoia level, 1 to 4")
	return cmd
}
