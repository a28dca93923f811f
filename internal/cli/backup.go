package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func newBackupCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "backup",
		Short: "Back up, list, show, restore, verify and prune site snapshots; backup coverage",
		Long: `Manage backups: deduplicated, encrypted snapshots of a site's database and
wp-content in its shard's backup repository.

A snapshot is named "<repository>:<id>" (REF): the repository is the shard that
took it, so a site that moved keeps its old snapshots. Sites are backed up on
their plan's schedule (basic: daily; business: hourly; dev: daily) and old
snapshots are forgotten by its retention rules; these commands act now.

Long operations are jobs; --wait follows one with a progress bar on stderr
('aipress job get ID' shows it later).`,
		Example: `  aipress backup create --site blog.localhost --wait
  aipress backup list --site blog.localhost
  aipress backup show local:3f2a9c1e
  aipress backup restore local:3f2a9c1e --in-place --wait
  aipress backup restore local:3f2a9c1e --to-domain copy.localhost --wait
  aipress backup restore --site blog.localhost --at 2026-12-05T10:42:00Z --in-place --wait
  aipress backup verify --full --wait
  aipress backup coverage`,
	}, o)
	cmd.AddCommand(newBackupCreateCmd(o), newBackupListCmd(o), newBackupShowCmd(o), newBackupRestoreCmd(o),
		newBackupVerifyCmd(o), newBackupPruneCmd(o), newBackupCoverageCmd(o))
	return cmd
}

func jobWaitFlags(cmd *cobra.Command, wait *bool, timeout *time.Duration, what string) {
	cmd.Flags().BoolVar(wait, "wait", false, "wait until "+what+", with a progress bar on stderr")
	cmd.Flags().DurationVar(timeout, "timeout", time.Hour, "how long to wait with --wait")
}

func newBackupCreateCmd(o *siteOpts) *cobra.Command {
	var (
		siteName string
		wait     bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --site DOMAIN",
		Short: "Back a site up now",
		Long: `Start a backup of the site now: a job on its shard snapshots the database (one
transaction: the site keeps serving) and wp-content. A backup already running
for the site is followed instead of starting another.`,
		Example: `  aipress backup create --site blog.localhost
  aipress backup create --site blog.localhost --wait -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if siteName == "" {
				return errors.New("--site is required")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.CreateBackup(cmd.Context(), siteName)
			if err != nil {
				return err
			}
			if wait {
				if j, err = o.waitJob(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
					return err
				}
			}
			return o.printJob(cmd.OutOrStdout(), j)
		},
	}
	cmd.Flags().StringVar(&siteName, "site", "", "the site (domain) to back up")
	jobWaitFlags(cmd, &wait, &timeout, "the backup is done")
	return cmd
}

func newBackupListCmd(o *siteOpts) *cobra.Command {
	var (
		siteName string
		limit    int
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--site DOMAIN]",
		Short: "List snapshots, newest first",
		Long: `List snapshots newest first (of one site with --site). SIZE is the site's size,
NEW what the snapshot added to the repository after deduplication.`,
		Example: `  aipress backup list --site blog.localhost
  aipress backup list --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			out := &apiclient.BackupList{}
			opts := apiclient.BackupListOptions{Site: siteName, Limit: limit}
			for {
				page, err := c.ListBackups(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out.Items = append(out.Items, page.Items...)
				out.Continue = page.Continue
				if (!all && len(out.Items) >= max(limit, 1)) || page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			if out.Items == nil {
				out.Items = []catalog.Entry{}
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, out)
			}
			now := o.d.now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "REF\tSITE\tTAKEN\tSIZE\tNEW\tREASON")
			for _, e := range out.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\t%s\n", e.Ref, e.Site, age(now, e.Time), humanBytes(e.TotalBytes), humanBytes(e.NewBytes), dash(e.Reason))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if out.Continue != "" && !all {
				fmt.Fprintln(cmd.ErrOrStderr(), "(more: use --all)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&siteName, "site", "", "only this site's snapshots")
	cmd.Flags().IntVar(&limit, "limit", 50, "snapshots per page")
	cmd.Flags().BoolVar(&all, "all", false, "list every snapshot")
	return cmd
}

func newBackupShowCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "show REF",
		Short: "Show a snapshot's manifest",
		Long: `Show a snapshot's manifest: when it was taken, of which site (spec and WordPress
core version), its streams with sizes and SHA-256 checksums, and its statistics.
REF may abbreviate the id to a unique prefix.`,
		Example: `  aipress backup show local:3f2a9c1e
  aipress backup show local:3f2a9c1e -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			v, err := c.GetBackup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Snapshot:  %s\nSite:      %s\nTaken:     %s (%s ago)\nShard:     %s\nCore:      %s\nSize:      %s (%s new, %s stored)\nJob:       %s\n\n",
				v.Ref, v.Site, v.Time.UTC().Format(time.RFC3339), age(o.d.now(), v.Time), dash(v.Host), dash(v.CoreVersion),
				humanBytes(v.Stats.TotalBytes), humanBytes(v.Stats.NewBytes), humanBytes(v.Stats.StoredBytes), dash(v.Job))
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "STREAM\tSIZE\tCHUNKS\tSHA-256")
			for _, f := range v.Files {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", f.Name, humanBytes(f.Size), f.Chunks, f.SHA256)
			}
			return tw.Flush()
		},
	}
}

func newBackupRestoreCmd(o *siteOpts) *cobra.Command {
	var (
		inPlace        bool
		domain, shard  string
		siteName, at   string
		wait           bool
		timeout        time.Duration
		restoreExample = `  aipress backup restore local:3f2a9c1e --in-place --wait
  aipress backup restore local:3f2a9c1e --to-domain staging.example.com --shard shard-2 --wait
  aipress backup restore --site blog.example.com --at 2026-12-05T10:42:00Z --in-place --wait
  aipress backup restore --site blog.example.com --at 2026-12-05T11:42:00+01:00 --to-domain then.example.com -o json`
	)
	cmd := &cobra.Command{
		Use:   "restore (REF | --site DOMAIN --at TIME) (--in-place | --to-domain DOMAIN [--shard SHARD])",
		Short: "Restore a snapshot, or a site to a point in time, in place or into a new site",
		Long: `Restore a snapshot (REF), or a site to a point in time (--site and --at).

--in-place restores over the site it was taken of, on the site's shard: the
site shows a maintenance page, the snapshot is restored into staging and swapped
in, and the site comes back. A restore that fails leaves the site as it was.

--to-domain creates a new site (a clone) from the snapshot, with its URLs
rewritten to the new domain; --shard chooses its shard (default: placement).

--site DOMAIN --at TIME (instead of REF) is a point-in-time restore: TIME is
RFC 3339 (2026-12-05T10:42:00Z, or with an offset). The control plane picks
the site's latest snapshot completed before TIME; the shard restores it and
replays the site's database log up to and including TIME (to the second).
Files (wp-content) are the snapshot's. A TIME in the future, or older than
the site's oldest kept snapshot (its plan's retention), is refused.`,
		Example: restoreExample,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return fmt.Errorf("give one snapshot (REF), not %d", len(args))
			case len(args) == 1 && (siteName != "" || at != ""):
				return errors.New("give either a snapshot (REF) or --site and --at (a point in time), not both")
			case len(args) == 0 && siteName == "" && at == "":
				return errors.New("give a snapshot (REF), or --site and --at for a point in time")
			case len(args) == 0 && (siteName == "") != (at == ""):
				return errors.New("--site and --at go together (a point-in-time restore)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if inPlace == (domain != "") {
				return errors.New("give exactly one of --in-place and --to-domain")
			}
			if inPlace && shard != "" {
				return errors.New("--shard goes with --to-domain (an in-place restore runs on the site's shard)")
			}
			var when time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return fmt.Errorf("--at %q is not an RFC 3339 time (e.g. 2026-12-05T10:42:00Z or 2026-12-05T11:42:00+01:00)", at)
				}
				when = t
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var resp *apiclient.RestoreResponse
			if at != "" {
				resp, err = c.RestoreSite(ctx, siteName, apiclient.SiteRestoreRequest{At: when, InPlace: inPlace, NewDomain: domain, Shard: shard})
			} else {
				resp, err = c.RestoreBackup(ctx, args[0], apiclient.RestoreRequest{InPlace: inPlace, NewDomain: domain, Shard: shard})
			}
			if err != nil {
				return err
			}
			if resp.Snapshot != "" && resp.At != nil && o.output == "table" {
				fmt.Fprintf(cmd.ErrOrStderr(), "restoring %s to %s from snapshot %s\n", siteName, resp.At.UTC().Format(time.RFC3339), resp.Snapshot)
			}
			if resp.Job != nil {
				j := resp.Job
				if wait {
					if j, err = o.waitJob(ctx, cmd.ErrOrStderr(), c, j, timeout); err != nil {
						return err
					}
				}
				return o.printJob(cmd.OutOrStdout(), j)
			}
			s := resp.Site
			if wait {
				s, err = o.wait(ctx, cmd.ErrOrStderr(), c, s.Metadata.Name, "restoring", timeout, func(s *site.Site, err error) (bool, error) {
					switch {
					case err != nil:
						return false, nil
					case s.Status.Phase == site.PhaseFailed:
						return false, fmt.Errorf("site %s failed: %s", s.Metadata.Name, latestMessage(s))
					}
					return s.Status.Phase == site.PhaseReady, nil
				})
				if err != nil {
					return err
				}
			}
			return o.printSite(cmd.OutOrStdout(), s)
		},
	}
	cmd.Flags().BoolVar(&inPlace, "in-place", false, "restore over the site the snapshot was taken of")
	cmd.Flags().StringVar(&domain, "to-domain", "", "create a new site with this domain from the snapshot")
	cmd.Flags().StringVar(&shard, "shard", "", "the new site's shard (with --to-domain)")
	cmd.Flags().StringVar(&siteName, "site", "", "the site to restore to a point in time (with --at, instead of REF)")
	cmd.Flags().StringVar(&at, "at", "", "the point in time, RFC 3339 (with --site): e.g. 2026-12-05T10:42:00Z")
	jobWaitFlags(cmd, &wait, &timeout, "the restore is done (the new site is Ready)")
	return cmd
}

func newBackupVerifyCmd(o *siteOpts) *cobra.Command {
	var (
		siteName      string
		full, restore bool
		wait          bool
		timeout       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [--site DOMAIN] [--full | --restore]",
		Short: "Check the repositories' integrity, or test-restore a snapshot",
		Long: `Check the backup repositories (all of them, or those holding --site's
snapshots): snapshot manifests, indexes, and that every chunk is stored; --full
also reads every chunk back and checks it (downloads everything). With --wait it
prints exactly which snapshots are damaged and fails if any is.

--restore instead restores the latest snapshot (of --site, or the newest of all)
into a scratch site on a shard, checks that WordPress answers and that every
table matches the snapshot's checksums, and removes the scratch site.`,
		Example: `  aipress backup verify --wait
  aipress backup verify --site blog.localhost --full --wait
  aipress backup verify --site blog.localhost --restore --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if full && restore {
				return errors.New("--full and --restore do not go together")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.VerifyBackups(cmd.Context(), apiclient.VerifyRequest{Site: siteName, Full: full, Restore: restore})
			if err != nil {
				return err
			}
			if !wait {
				return o.printJob(cmd.OutOrStdout(), j)
			}
			j, err = o.waitJobQuiet(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout)
			if err != nil {
				return err
			}
			if o.output != "table" {
				if err := printData(cmd.OutOrStdout(), o.output, j); err != nil {
					return err
				}
			} else if j.Kind == store.JobVerify {
				if err := printVerify(cmd.OutOrStdout(), j); err != nil {
					return err
				}
			} else {
				if err := o.printJob(cmd.OutOrStdout(), j); err != nil {
					return err
				}
			}
			return jobError(j)
		},
	}
	cmd.Flags().StringVar(&siteName, "site", "", "only the repositories (and snapshots) of this site")
	cmd.Flags().BoolVar(&full, "full", false, "read and check every chunk")
	cmd.Flags().BoolVar(&restore, "restore", false, "test-restore the latest snapshot into a scratch site")
	jobWaitFlags(cmd, &wait, &timeout, "the verification is done")
	return cmd
}

// printVerify prints a verify job's report: per repository, then the
// damaged snapshots.
func printVerify(w io.Writer, j *store.Job) error {
	var res store.VerifyResult
	if len(j.Result) > 0 {
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return fmt.Errorf("verify result: %w", err)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tSTATE\tSNAPSHOTS\tPACKS\tCHUNKS\tREAD\tPROBLEMS")
	for _, r := range res.Repos {
		state := "OK"
		switch {
		case r.Error != "":
			state = "ERROR: " + r.Error
		case !r.OK:
			state = "DAMAGED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\n", r.Repo, state, r.Snapshots, r.Packs, r.Chunks, humanBytes(r.BytesRead), r.Problems)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Damaged) == 0 {
		_, err := fmt.Fprintln(w, "No damaged snapshots.")
		return err
	}
	fmt.Fprintf(w, "\nDamaged snapshots (%d):\n", len(res.Damaged))
	for _, d := range res.Damaged {
		fmt.Fprintf(w, "  %s\t%s\n", d.Ref, dash(d.Site))
	}
	return nil
}

func newBackupPruneCmd(o *siteOpts) *cobra.Command {
	var (
		repoName string
		wait     bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "prune [--repo SHARD]",
		Short: "Delete data no snapshot references",
		Long: `Delete the data that no snapshot references any more (after retention forgot
snapshots, or left over by interrupted backups), in every repository or one.
It is safe while backups run. The control plane also prunes once a day.`,
		Example: `  aipress backup prune --wait
  aipress backup prune --repo shard-2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.PruneBackups(cmd.Context(), repoName)
			if err != nil {
				return err
			}
			if wait {
				if j, err = o.waitJob(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
					return err
				}
			}
			return o.printJob(cmd.OutOrStdout(), j)
		},
	}
	cmd.Flags().StringVar(&repoName, "repo", "", "only this repository (a shard's name)")
	jobWaitFlags(cmd, &wait, &timeout, "the prune is done")
	return cmd
}

func newBackupCoverageCmd(o *siteOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coverage",
		Short: "Every site's last good backup and coverage state",
		Long: `List every site with its schedule, its last good backup and its state: OK, LATE
(the last good backup is older than the schedule's window: its interval plus a
quarter, at least an hour), NONE (no backup yet) or OFF (scheduled backups off).
ALERT marks sites that need attention (LATE, or NONE past the window).`,
		Example: `  aipress backup coverage
  aipress backup coverage -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			out := &apiclient.CoverageResponse{}
			opts := apiclient.ListOptions{Limit: 1000}
			for {
				page, err := c.BackupCoverage(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out.Items = append(out.Items, page.Items...)
				if out.States == nil {
					out.States = page.States
				} else {
					for k, v := range page.States {
						out.States[k] += v
					}
				}
				out.Alerts += page.Alerts
				if page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, out)
			}
			now := o.d.now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "SITE\tPLAN\tEVERY\tLAST BACKUP\tSTATE\tALERT")
			for _, it := range out.Items {
				every := "off"
				if it.EveryHours > 0 {
					every = fmt.Sprintf("%dh", it.EveryHours)
				}
				last := "-"
				if it.LastBackup != nil {
					last = age(now, *it.LastBackup) + " ago"
				}
				alert := ""
				if it.Alert {
					alert = "ALERT"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Site, it.Plan, every, last, it.State, alert)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "\n%d site(s), %d alert(s)\n", len(out.Items), out.Alerts)
			return err
		},
	}
	return cmd
}

// Jobs.

func newJobCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "job",
		Short: "List and inspect jobs (backups, restores, verifications, prunes, recoveries)",
		Example: `  aipress job list --site blog.localhost
  aipress job list --phase Running,Pending
  aipress job get job-3f2a9c1e0b7d4a55 -o json`,
	}, o)
	var (
		siteName, shard, kind, phase string
		limit                        int
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			opts := apiclient.JobListOptions{Site: siteName, Shard: shard, Kind: kind, Limit: limit}
			for _, p := range strings.Split(phase, ",") {
				if p = strings.TrimSpace(p); p != "" {
					opts.Phases = append(opts.Phases, store.JobPhase(p))
				}
			}
			l, err := c.ListJobs(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, l)
			}
			return printJobTable(cmd.OutOrStdout(), o.d.now(), l.Items)
		},
	}
	list.Flags().StringVar(&siteName, "site", "", "only this site's jobs")
	list.Flags().StringVar(&shard, "shard", "", "only the jobs of this shard")
	list.Flags().StringVar(&kind, "kind", "", "only this kind: backup, restore, verify-restore, verify, prune, recover, secret.rotate")
	list.Flags().StringVar(&phase, "phase", "", "only these phases, comma-separated: Pending, Running, Succeeded, Failed")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many")
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a job with its progress and result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.printJob(cmd.OutOrStdout(), j)
		},
	}
	cmd.AddCommand(list, get)
	return cmd
}

func printJobTable(w io.Writer, now time.Time, jobs []store.Job) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSITE\tSHARD\tPHASE\tPROGRESS\tAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, dash(j.Site), dash(j.Shard), j.Phase, progressText(j.Progress), age(now, j.CreatedAt))
	}
	return tw.Flush()
}

// printJob prints a job: as data, or a few lines with its result.
func (o *siteOpts) printJob(w io.Writer, j *store.Job) error {
	if o.output != "table" {
		return printData(w, o.output, j)
	}
	fmt.Fprintf(w, "Job:       %s\nKind:      %s\nPhase:     %s\n", j.ID, j.Kind, j.Phase)
	if j.Site != "" {
		fmt.Fprintf(w, "Site:      %s\n", j.Site)
	}
	if j.Shard != "" {
		fmt.Fprintf(w, "Shard:     %s\n", j.Shard)
	}
	if p := progressText(j.Progress); p != "-" {
		fmt.Fprintf(w, "Progress:  %s\n", p)
	}
	if j.Error != "" {
		fmt.Fprintf(w, "Error:     %s\n", j.Error)
	}
	switch j.Kind {
	case store.JobBackup:
		var r store.BackupResult
		if json.Unmarshal(j.Result, &r) == nil && r.Snapshot != "" {
			fmt.Fprintf(w, "Snapshot:  %s\nSize:      %s (%s new, %s stored)\n", r.Snapshot, humanBytes(r.TotalBytes), humanBytes(r.NewBytes), humanBytes(r.StoredBytes))
		}
	case store.JobVerify:
		if len(j.Result) > 0 {
			fmt.Fprintln(w)
			return printVerify(w, j)
		}
	case store.JobRecover:
		if len(j.Result) > 0 {
			fmt.Fprintln(w)
			return printRecover(w, j)
		}
	case store.JobUpdate:
		if len(j.Result) > 0 {
			return printUpdate(w, j)
		}
	case store.JobFleetUpdate:
		if len(j.Result) > 0 {
			fmt.Fprintln(w)
			return printFleet(w, j)
		}
	default:
		var compact bytes.Buffer
		if len(j.Result) > 0 && json.Compact(&compact, j.Result) == nil {
			fmt.Fprintf(w, "Result:    %s\n", compact.String())
		}
	}
	return nil
}

func progressText(p store.JobProgress) string {
	var parts []string
	if p.Total > 0 {
		parts = append(parts, fmt.Sprintf("%d%%", min(100, p.Done*100/p.Total)))
	}
	if p.Message != "" {
		parts = append(parts, p.Message)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// progressBar renders a job's progress as a bar line: bytes for shard jobs
// (backups and restores), steps for the control plane's.
func progressBar(j *store.Job) string {
	const width = 30
	p := j.Progress
	line := fmt.Sprintf("%s %s: %s", j.Kind, firstNonEmpty(j.Site, j.ID), j.Phase)
	if p.Total > 0 {
		done := min(p.Done, p.Total)
		n := int(done * width / p.Total)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		if n > 0 && n < width {
			bar = bar[:n-1] + ">" + bar[n:]
		}
		amount := fmt.Sprintf("%s/%s", humanBytes(done), humanBytes(p.Total))
		if j.Shard == "" {
			amount = fmt.Sprintf("%d/%d", done, p.Total)
		}
		line += fmt.Sprintf(" [%s] %3d%% %s", bar, done*100/p.Total, amount)
	} else if p.Done > 0 {
		line += " " + humanBytes(p.Done) // a size not known before the end (an export)
	}
	if p.Message != "" {
		line += " " + p.Message
	}
	return line
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// waitJob follows a job until it ends, printing its progress bar to
// progress whenever it changes; a failed job is an error.
func (o *siteOpts) waitJob(ctx context.Context, progress io.Writer, c *apiclient.Client, j *store.Job, timeout time.Duration) (*store.Job, error) {
	j, err := o.waitJobQuiet(ctx, progress, c, j, timeout)
	if err != nil {
		return j, err
	}
	return j, jobError(j)
}

func jobError(j *store.Job) error {
	if j.Phase == store.JobFailed {
		return fmt.Errorf("job %s (%s) failed: %s", j.ID, j.Kind, j.Error)
	}
	return nil
}

// waitJobQuiet is waitJob without failing on a failed job.
func (o *siteOpts) waitJobQuiet(ctx context.Context, progress io.Writer, c *apiclient.Client, j *store.Job, timeout time.Duration) (*store.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		if line := progressBar(j); line != last {
			fmt.Fprintln(progress, line)
			last = line
		}
		if j.Phase == store.JobSucceeded || j.Phase == store.JobFailed {
			return j, nil
		}
		t := time.NewTimer(o.d.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return j, fmt.Errorf("timed out after %s waiting for job %s (%s); it continues in the background, check with 'aipress job get %s'", timeout, j.ID, j.Phase, j.ID)
			}
			return j, ctx.Err()
		case <-t.C:
		}
		next, err := c.GetJob(ctx, j.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return j, err
		}
		j = next
	}
}

// humanBytes renders a byte count in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Disaster recovery.

func newShardRecoverCmd(o *siteOpts) *cobra.Command {
	var (
		to      string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "recover SHARD --to OTHER",
		Short: "Rebuild every site of a lost shard on another shard from its latest snapshot",
		Long: `Disaster recovery of a lost shard (one that is not Ready: its heartbeats
stopped). The lost shard is cordoned; every site on it that has a snapshot is
pointed at OTHER with its latest snapshot, and OTHER rebuilds it (the lost
shard is never contacted) while the edge routes the site there once it is Ready.
Whatever was written after a site's snapshot is lost: the report prints each
snapshot's age. Sites without a snapshot stay on the lost shard.

With --wait the command follows the recovery and prints, per site, the snapshot
it came from and its age, and the total time until every site was Ready.`,
		Example: `  aipress shard recover shard-3 --to shard-4 --wait
  aipress job get JOB   # the recovery's report later`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to is required")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.RecoverShard(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			if wait {
				if j, err = o.waitJobQuiet(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
					return err
				}
			}
			if err := o.printJob(cmd.OutOrStdout(), j); err != nil {
				return err
			}
			return jobError(j)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the shard that rebuilds the sites (Ready, not cordoned)")
	jobWaitFlags(cmd, &wait, &timeout, "every recovered site is Ready")
	return cmd
}

// printRecover prints a recover job's per-site report and total time.
func printRecover(w io.Writer, j *store.Job) error {
	var res store.RecoverResult
	if err := json.Unmarshal(j.Result, &res); err != nil {
		return fmt.Errorf("recover result: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSNAPSHOT\tSNAPSHOT AGE (LOST AFTER IT)\tSTATE")
	for _, s := range res.Sites {
		state, snapAge := "rebuilding", "-"
		switch {
		case s.Snapshot == "":
			state = "NOT RECOVERED: " + s.Error
		case s.Error != "":
			state = s.Error
		case s.ReadyAt != nil:
			state = "Ready"
		}
		if !s.SnapshotTime.IsZero() {
			ref := j.CreatedAt
			snapAge = ref.Sub(s.SnapshotTime).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Site, dash(s.Snapshot), snapAge, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Duration != "" {
		_, err := fmt.Fprintf(w, "\nRecovered in %s.\n", res.Duration)
		return err
	}
	return nil
}
