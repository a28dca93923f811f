package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// changeFlags are the flags that describe an update's change.
type changeFlags struct {
	plugins, themes, remove []string
	core                    string
	smokePaths              []string
	smokeContains           string
	smokeStatus             int
}

func (f *changeFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.plugins, "plugin", nil, "plugin NAME@VERSION to install or update (VERSION omitted: the catalogue's latest); repeatable")
	fl.StringArrayVar(&f.themes, "theme", nil, "theme NAME@VERSION to install or update; repeatable")
	fl.StringArrayVar(&f.remove, "remove", nil, "plugin or theme NAME to remove; repeatable")
	fl.StringVar(&f.core, "core", "", "WordPress core version to run, e.g. 6.4.2")
	fl.StringArrayVar(&f.smokePaths, "smoke-path", nil, `path the smoke test fetches (default "/", "/wp-login.php", "/wp-json/"); repeatable`)
	fl.StringVar(&f.smokeContains, "smoke-contains", "", "text the home page must contain")
	fl.IntVar(&f.smokeStatus, "smoke-status", 0, "status every smoke path must answer (default 200)")
}

// params turns the flags into an update's parameters: listed extensions
// the site already has keep their active state and source (keep_active);
// new plugins are activated, new themes installed without switching to
// them.
func (f *changeFlags) params() (store.UpdateParams, error) {
	p := store.UpdateParams{Remove: f.remove, CoreVersion: f.core, KeepActive: true,
		Smoke: store.SmokeTest{Paths: f.smokePaths, Contains: f.smokeContains, Status: f.smokeStatus}}
	parse := func(flag, v string, active bool) (site.Extension, error) {
		name, version, _ := strings.Cut(v, "@")
		if !site.ValidSlug(name) {
			return site.Extension{}, fmt.Errorf("--%s %q: want NAME@VERSION with a slug NAME", flag, v)
		}
		return site.Extension{Name: name, Version: version, Active: active}, nil
	}
	for _, v := range f.plugins {
		e, err := parse("plugin", v, true)
		if err != nil {
			return p, err
		}
		p.Plugins = append(p.Plugins, e)
	}
	for _, v := range f.themes {
		e, err := parse("theme", v, false)
		if err != nil {
			return p, err
		}
		p.Themes = append(p.Themes, e)
	}
	if len(p.Plugins) == 0 && len(p.Themes) == 0 && len(p.Remove) == 0 && p.CoreVersion == "" {
		return p, errors.New("nothing to update: give --plugin, --theme, --remove or --core")
	}
	return p, nil
}

func newSiteUpdateCmd(o *siteOpts) *cobra.Command {
	var (
		change      changeFlags
		skipStaging bool
		wait        bool
		timeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update DOMAIN (--plugin NAME@VERSION | --theme NAME@VERSION | --core VERSION | --remove NAME)...",
		Short: "Update a site's plugins, themes or core safely: tried on a staging copy first",
		Long: `Start a staged update: the change is first applied to a throw-away staging
copy of the site, cloned from its latest snapshot (a backup is taken first when
none is newer than its last code change) on the same shard, and smoke-tested
there (the paths answer the status, no new PHP fatal error, the home page holds
--smoke-contains). The staging site is then deleted. Only when the change
passed there is it applied to the site, whose own code job checks it again and
rolls the site back on failure. A refused update never touches the site.

A listed plugin or theme the site already has keeps its active state and
source; a new plugin is activated, a new theme installed without switching to
it. --skip-staging applies the change to the site directly.

The command follows the update (progress on stderr), prints its report and
exits non-zero when the change was not applied. --wait=false prints the job
and returns ('aipress job get JOB' shows the report later).`,
		Example: `  aipress site update blog.example.com --plugin woocommerce@8.5.2 --smoke-path /shop --smoke-contains "Add to cart"
  aipress site update blog.example.com --theme twentytwentyfour@1.0 --core 6.4.2
  aipress site update blog.example.com --remove hello-dolly
  aipress site update blog.example.com --plugin akismet@5.3 --skip-staging -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := change.params()
			if err != nil {
				return err
			}
			p.SkipStaging = skipStaging
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.CreateUpdate(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			if !wait {
				return o.printJob(cmd.OutOrStdout(), j)
			}
			if j, err = o.waitJobQuiet(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
				return err
			}
			if err := o.printJob(cmd.OutOrStdout(), j); err != nil {
				return err
			}
			return updateError(j)
		},
	}
	change.add(cmd)
	cmd.Flags().BoolVar(&skipStaging, "skip-staging", false, "apply the change to the site directly (its code job still checks health and rolls back)")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the update until it ends, with progress on stderr")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait")
	return cmd
}

// updateError is the error of an update job that did not apply its change
// (or a fleet update that stopped or had failures).
func updateError(j *store.Job) error {
	if err := jobError(j); err != nil {
		return err
	}
	if j.Kind == store.JobFleetUpdate {
		var r store.FleetUpdateResult
		if json.Unmarshal(j.Result, &r) == nil && r.Failed > 0 {
			return fmt.Errorf("fleet update %s: %d site(s) failed", j.ID, r.Failed)
		}
	}
	return nil
}

func newFleetCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "fleet",
		Short: "Update many sites in waves (platform admins)",
		Long: `Fleet operations: the same change to many sites, each a staged update
('aipress site update'), in waves with a canary first.`,
		Example: `  aipress fleet update --plugin woocommerce@8.5.2 --with-plugin woocommerce --canary 1 --wave 10 --max-failure-rate 0.2`,
	}, o)
	cmd.AddCommand(newFleetUpdateCmd(o))
	return cmd
}

func newFleetUpdateCmd(o *siteOpts) *cobra.Command {
	var (
		change  changeFlags
		req     apiclient.FleetUpdateRequest
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update (--plugin NAME@VERSION ...) (--sites A,B | --org ORG | --with-plugin NAME)",
		Short: "Update many sites in waves: canary first, stop when too many fail",
		Long: `Start a fleet update (platform admins): the sites (--sites in that order, or
every site of --org, or every site running --with-plugin, by name) are resolved
when it starts. Each site gets its own staged update (tried on a staging copy
first; see 'aipress site update'), in waves: --canary sites first, then waves of
--wave, --parallel at once. After a wave whose share of failed updates is above
--max-failure-rate (0-1; 0: any failure stops it) the remaining sites are
skipped.

The command follows the rollout (progress on stderr), prints each site's
outcome and exits non-zero when the rollout stopped or a site failed.`,
		Example: `  aipress fleet update --plugin hello@2.0 --sites a.example.com,b.example.com,c.example.com --canary 1
  aipress fleet update --plugin woocommerce@8.5.2 --with-plugin woocommerce --canary 2 --wave 10 --max-failure-rate 0.2 --parallel 4
  aipress fleet update --core 6.4.2 --org acme --wait=false -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := change.params()
			if err != nil {
				return err
			}
			req.Change = p
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.CreateFleetUpdate(cmd.Context(), req)
			if err != nil {
				return err
			}
			if !wait {
				return o.printJob(cmd.OutOrStdout(), j)
			}
			if j, err = o.waitJobQuiet(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
				return err
			}
			if err := o.printJob(cmd.OutOrStdout(), j); err != nil {
				return err
			}
			return updateError(j)
		},
	}
	change.add(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&req.Sites, "sites", nil, "the sites to update, in order (comma-separated)")
	fl.StringVar(&req.Org, "org", "", "update every site of this organisation")
	fl.StringVar(&req.WithPlugin, "with-plugin", "", "update every site running this plugin")
	fl.IntVar(&req.Canary, "canary", 1, "size of the first wave")
	fl.IntVar(&req.WaveSize, "wave", 10, "size of the later waves")
	fl.Float64Var(&req.MaxFailureRate, "max-failure-rate", 0, "stop after a wave whose share of failures is above this (0-1)")
	fl.IntVar(&req.Parallel, "parallel", 4, "updates of a wave run at once")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the rollout until it ends, with progress on stderr")
	cmd.Flags().DurationVar(&timeout, "timeout", 24*time.Hour, "how long to wait")
	return cmd
}

// printUpdate prints an update job's report.
func printUpdate(w io.Writer, j *store.Job) error {
	var r store.UpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return fmt.Errorf("update result: %w", err)
	}
	if r.Before != nil && r.After != nil {
		fmt.Fprintf(w, "Change:    %s\n", describeChange(*r.Before, *r.After))
	}
	if r.Snapshot != "" {
		fmt.Fprintf(w, "Snapshot:  %s\n", r.Snapshot)
	}
	if r.Staging != "" {
		fmt.Fprintf(w, "Staging:   %s\n", r.Staging)
	}
	fmt.Fprintf(w, "Step:      %s\n", r.Step)
	if r.StagingResult != nil {
		fmt.Fprintln(w, "\nOn the staging site:")
		printCodeResult(w, r.StagingResult)
	}
	if r.Result != nil {
		fmt.Fprintln(w, "\nOn the site:")
		printCodeResult(w, r.Result)
	}
	fmt.Fprintln(w)
	switch {
	case r.Applied:
		fmt.Fprintf(w, "Applied to %s (generation %d) in %s.\n", j.Site, r.Generation, r.Duration)
	case r.Error != "":
		fmt.Fprintf(w, "NOT APPLIED: %s\n", r.Error)
		if r.Reverted {
			fmt.Fprintln(w, "The site's spec was put back as it was.")
		}
	default:
		fmt.Fprintln(w, "Not applied yet.")
	}
	return nil
}

func printCodeResult(w io.Writer, r *store.CodeResult) {
	for _, ch := range r.Changes {
		line := fmt.Sprintf("  %s %s %s", ch.Action, ch.Kind, ch.Name)
		if ch.From != "" || ch.To != "" {
			line += fmt.Sprintf(" %s → %s", ch.From, ch.To)
		}
		if ch.Reason != "" {
			line += " (" + ch.Reason + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s %s\n", mark, c.Name, c.Detail)
	}
	if r.RolledBack {
		fmt.Fprintf(w, "  rolled back: %s\n", r.Error)
	} else if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}

// describeChange lists what differs between two code specs.
func describeChange(before, after site.CodeSpec) string {
	var parts []string
	diff := func(kind string, b, a []site.Extension) {
		old := map[string]site.Extension{}
		for _, e := range b {
			old[e.Name] = e
		}
		for _, e := range a {
			o, ok := old[e.Name]
			delete(old, e.Name)
			switch {
			case !ok:
				parts = append(parts, fmt.Sprintf("+%s %s@%s", kind, e.Name, cmpOrLatest(e.Version)))
			case o.Version != e.Version || o.Active != e.Active || o.Source != e.Source:
				parts = append(parts, fmt.Sprintf("~%s %s %s → %s", kind, e.Name, cmpOrLatest(o.Version), cmpOrLatest(e.Version)))
			}
		}
		for _, e := range b {
			if _, ok := old[e.Name]; ok {
				parts = append(parts, fmt.Sprintf("-%s %s", kind, e.Name))
			}
		}
	}
	diff("plugin", before.Plugins, after.Plugins)
	diff("theme", before.Themes, after.Themes)
	if before.CoreVersion != after.CoreVersion {
		parts = append(parts, fmt.Sprintf("~core %s → %s", cmpOrDefault(before.CoreVersion), cmpOrDefault(after.CoreVersion)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func cmpOrLatest(v string) string {
	if v == "" {
		return "latest"
	}
	return v
}

func cmpOrDefault(v string) string {
	if v == "" {
		return "default"
	}
	return v
}

// printFleet prints a fleet update's waves.
func printFleet(w io.Writer, j *store.Job) error {
	var r store.FleetUpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return fmt.Errorf("fleet update result: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tSITE\tSTATE\tJOB\tERROR")
	for k, wv := range r.Waves {
		for _, s := range wv.Sites {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", k+1, s.Site, s.State, orDash(s.Job), orDash(firstLineOf(s.Error)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d updated, %d failed, %d skipped", r.Updated, r.Failed, r.Skipped)
	if r.Duration != "" {
		fmt.Fprintf(w, " in %s", r.Duration)
	}
	fmt.Fprintln(w, ".")
	if r.Stopped != "" {
		fmt.Fprintf(w, "STOPPED: %s\n", r.Stopped)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
