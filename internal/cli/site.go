package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
)

// siteOpts are the flags shared by all site subcommands.
type siteOpts struct {
	d      deps
	client clientFlags
	output string
}

func (o *siteOpts) connect() (*apiclient.Client, error) {
	if err := checkFormat(o.output); err != nil {
		return nil, err
	}
	return newClient(o.d, o.client)
}

func newSiteCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Create, list, inspect, change, suspend, resume, delete and purge sites; read their logs; tune their WAF; install plugins and themes",
		Long: `Manage WordPress sites through the AIPress API.

The API is found from --url/--token, else the AIPRESS_URL/AIPRESS_TOKEN
environment variables, else the client.json that 'aipress up' writes into its
data directory ($AIPRESS_DATA_DIR or ./aipress-data).`,
		Example: `  aipress site create blog.localhost --title "My blog" --admin-email me@example.com
  aipress site list
  aipress site get blog.localhost -o yaml
  aipress site delete blog.localhost`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.client.url, "url", "", "API base URL, e.g. http://127.0.0.1:7070 (env "+EnvURL+")")
	pf.StringVar(&o.client.token, "token", "", "API token (env "+EnvToken+")")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	cmd.AddCommand(newSiteCreateCmd(o), newSiteListCmd(o), newSiteGetCmd(o),
		newSiteSuspendCmd(o, true), newSiteSuspendCmd(o, false), newSiteDeleteCmd(o), newSitePurgeCmd(o), newSiteSetCmd(o),
		newSiteMoveCmd(o), newSiteWAFCmd(o), newSiteLogsCmd(o), newGitCmd(o, gitsync.KindSite), newSiteCodeCmd(o, "plugin"), newSiteCodeCmd(o, "theme"), newSiteUpdateCmd(o), newSiteExportCmd(o), newSiteImportCmd(o),
		newSiteIncidentsCmd(o), newSiteStatusPageCmd(o))
	return cmd
}

func waitFlags(cmd *cobra.Command, wait *bool, timeout *time.Duration, what string) {
	cmd.Flags().BoolVar(wait, "wait", true, "wait until "+what)
	cmd.Flags().DurationVar(timeout, "timeout", 5*time.Minute, "how long to wait with --wait")
}

func newSiteCreateCmd(o *siteOpts) *cobra.Command {
	var (
		req     apiclient.CreateSiteRequest
		labels  map[string]string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create DOMAIN --title TITLE --admin-email EMAIL",
		Short: "Create a WordPress site and print its admin password",
		Long: `Create a site named after its domain. The generated admin password is
printed once, here; only its hash is stored.

With --wait (the default) the command follows the shard's progress on stderr
until the site is Ready, and fails if it ends up Failed.`,
		Example: `  aipress site create blog.localhost --title "My blog" --admin-email me@example.com
  aipress site create shop.example.com --title Shop --admin-email ops@example.com \
      --admin-user boss --plan business --label team=web -o json
  aipress site create blog.localhost --title Blog --admin-email me@example.com --wait=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			req.Domain = args[0]
			req.Labels = labels
			ctx := cmd.Context()
			resp, err := c.CreateSite(ctx, req)
			if err != nil {
				return err
			}
			if wait {
				s, err := o.wait(ctx, cmd.ErrOrStderr(), c, resp.Domain, "creating", timeout, siteReady)
				if err != nil {
					return fmt.Errorf("%w (admin user %q, password %q)", err, resp.AdminUser, resp.AdminPassword)
				}
				resp.Site, resp.Status, resp.URL, resp.Shard = s, s.Status.Phase, s.Status.URL, s.Status.Shard
			}
			return printCreate(cmd.OutOrStdout(), o.output, resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Title, "title", "", "site title (required)")
	f.StringVar(&req.AdminEmail, "admin-email", "", "e-mail of the first administrator (required)")
	f.StringVar(&req.AdminUser, "admin-user", "admin", "user name of the first administrator")
	f.StringVar(&req.Plan, "plan", "", "hosting plan (built in: dev, basic, pro, business; the platform's plans file may name others; default: the platform's default plan, basic); bounded by the organisation's plan")
	f.StringVar(&req.CoreVersion, "core-version", "", "WordPress core version (default: the shard's)")
	f.StringVar(&req.Org, "org", "", "organisation that will own the site (default: your only organisation; default for platform tokens)")
	f.StringToStringVar(&labels, "label", nil, "label key=value (repeatable)")
	_ = cmd.MarkFlagRequired("title")
	_ = cmd.MarkFlagRequired("admin-email")
	waitFlags(cmd, &wait, &timeout, "the site is Ready")
	return cmd
}

func printCreate(w io.Writer, format string, r *apiclient.CreateSiteResponse) error {
	if format != "table" {
		return printData(w, format, r)
	}
	url := strings.TrimRight(r.URL, "/")
	_, err := fmt.Fprintf(w, `Site %s is %s (shard %s).
URL:            %s/
Admin URL:      %s/wp-admin/
Admin user:     %s
Admin password: %s
The password is shown only once; store it somewhere safe.
`, r.Domain, r.Status, dash(r.Shard), url, url, r.AdminUser, r.AdminPassword)
	return err
}

func newSiteListCmd(o *siteOpts) *cobra.Command {
	var (
		limit int
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sites",
		Long: `List sites ordered by domain, one page (--limit) at a time. The table output
ends with a hint when more pages exist; --all fetches every page.`,
		Example: `  aipress site list
  aipress site list --all -o json
  aipress site list --limit 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			out := &store.SiteList{Items: []site.Site{}}
			opts := apiclient.ListOptions{Limit: limit}
			for {
				page, err := c.ListSites(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out.Items = append(out.Items, page.Items...)
				out.Continue, out.Revision = page.Continue, page.Revision
				if !all || page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, out)
			}
			if err := printSiteTable(w, o.d.now(), out.Items); err != nil {
				return err
			}
			if out.Continue != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more sites exist; use --all to list them all\n")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "sites per page (1-1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow continue tokens and list every site")
	return cmd
}

func newSiteGetCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "get DOMAIN",
		Short: "Show one site",
		Long: `Show one site. -o json prints the API's object (spec and status); -o yaml
prints the site's file (docs/code.md, "The site file": no status, no secrets),
which 'aipress apply -f' takes back unchanged.`,
		Example: `  aipress site get blog.localhost
  aipress site get blog.localhost -o yaml > blog.yaml   # then: aipress apply -f blog.yaml
  aipress site get blog.localhost -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			s, err := c.GetSite(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.output == "yaml" {
				b, err := sitefile.FromSite(s).YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return o.printSite(cmd.OutOrStdout(), s)
		},
	}
}

func (o *siteOpts) printSite(w io.Writer, s *site.Site) error {
	if o.output == "table" {
		return printSiteTable(w, o.d.now(), []site.Site{*s})
	}
	return printData(w, o.output, s)
}

func newSiteSuspendCmd(o *siteOpts, suspend bool) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	verb, want, gerund := "resume", site.PhaseReady, "resuming"
	short := "Resume a suspended site"
	if suspend {
		verb, want, gerund = "suspend", site.PhaseSuspended, "suspending"
		short = "Suspend a site (visitors get 503; data is kept)"
	}
	cmd := &cobra.Command{
		Use:   verb + " DOMAIN",
		Short: short,
		Long: short + `. Idempotent.

With --wait (the default) the command returns once the shard has applied the
change (status.observed_generation >= metadata.generation) and the site is ` + string(want) + `.`,
		Example: fmt.Sprintf("  aipress site %s blog.localhost\n  aipress site %s blog.localhost --wait=false -o json", verb, verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var s *site.Site
			if suspend {
				s, err = c.SuspendSite(ctx, args[0])
			} else {
				s, err = c.ResumeSite(ctx, args[0])
			}
			if err != nil {
				return err
			}
			if wait {
				s, err = o.wait(ctx, cmd.ErrOrStderr(), c, s.Metadata.Name, gerund, timeout, func(s *site.Site, err error) (bool, error) {
					if err != nil {
						return false, err
					}
					if s.Status.ObservedGeneration < s.Metadata.Generation {
						return false, nil
					}
					switch s.Status.Phase {
					case want:
						return true, nil
					case site.PhaseFailed:
						return false, fmt.Errorf("site %s failed: %s", s.Metadata.Name, failureMessage(s))
					}
					return false, nil
				})
				if err != nil {
					return err
				}
			}
			return o.printSite(cmd.OutOrStdout(), s)
		},
	}
	waitFlags(cmd, &wait, &timeout, "the site is "+string(want))
	return cmd
}

func newSiteDeleteCmd(o *siteOpts) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete DOMAIN",
		Short: "Delete a site and everything the shard created for it",
		Long: `Request deletion of a site. The shard removes its database, files and pool,
then the record. Deleting a site that is already being deleted is harmless.

With --wait (the default) the command returns once the site is gone.`,
		Example: `  aipress site delete blog.localhost
  aipress site delete blog.localhost --wait=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := c.DeleteSite(ctx, args[0])
			if err != nil {
				return err
			}
			if !wait {
				return o.printSite(cmd.OutOrStdout(), s)
			}
			_, err = o.wait(ctx, cmd.ErrOrStderr(), c, s.Metadata.Name, "deleting", timeout, func(_ *site.Site, err error) (bool, error) {
				if apiclient.IsNotFound(err) {
					return true, nil
				}
				return false, err
			})
			if err != nil {
				return err
			}
			if o.output == "table" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "site %s deleted\n", s.Metadata.Name)
				return err
			}
			return printData(cmd.OutOrStdout(), o.output, s)
		},
	}
	waitFlags(cmd, &wait, &timeout, "the site is gone")
	return cmd
}

// wait polls GET name every o.d.poll until done reports true or an error,
// printing a progress line to progress whenever the phase or the latest
// condition message changes.
func (o *siteOpts) wait(ctx context.Context, progress io.Writer, c *apiclient.Client, name, verb string,
	timeout time.Duration, done func(*site.Site, error) (bool, error)) (*site.Site, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	var lastSite *site.Site
	for {
		s, err := c.GetSite(ctx, name)
		if err == nil {
			lastSite = s
			line := fmt.Sprintf("%s %s: %s", verb, name, s.Status.Phase)
			if msg := latestMessage(s); msg != "" {
				line += ": " + msg
			}
			if line != last {
				fmt.Fprintln(progress, line)
				last = line
			}
		}
		if ctx.Err() == nil {
			ok, derr := done(s, err)
			if derr != nil {
				return s, derr
			}
			if ok {
				return s, nil
			}
		}
		t := time.NewTimer(o.d.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				state := "unknown"
				if lastSite != nil {
					state = string(lastSite.Status.Phase)
				}
				return lastSite, fmt.Errorf("timed out after %s %s (phase %s); it continues in the background, "+
					"check with 'aipress site get %s'", timeout, verb+" "+name, state, name)
			}
			return lastSite, ctx.Err()
		case <-t.C:
		}
	}
}

// latestMessage returns the message of the most recently changed condition.
func latestMessage(s *site.Site) string {
	var best *site.Condition
	for i := range s.Status.Conditions {
		c := &s.Status.Conditions[i]
		if c.Message == "" {
			continue
		}
		if best == nil || !c.LastTransitionTime.Before(best.LastTransitionTime) {
			best = c
		}
	}
	if best == nil {
		return ""
	}
	return best.Message
}

// failureMessage explains a Failed site from its conditions.
func failureMessage(s *site.Site) string {
	for _, c := range s.Status.Conditions {
		if c.Status == "False" && c.Message != "" {
			return fmt.Sprintf("%s: %s", c.Type, c.Message)
		}
	}
	if m := latestMessage(s); m != "" {
		return m
	}
	return "no condition message"
}

// siteReady is the wait condition of commands that make a site (create,
// import): done when it is Ready, an error when it Failed.
func siteReady(s *site.Site, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	switch s.Status.Phase {
	case site.PhaseReady:
		return true, nil
	case site.PhaseFailed:
		return false, fmt.Errorf("site %s failed: %s", s.Metadata.Name, failureMessage(s))
	}
	return false, nil
}
