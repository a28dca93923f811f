package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

func newSecretsCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "secrets",
		Short: "Rotate a site's secrets (database password, WordPress salts); show rotations in flight",
		Long: `Rotate secrets without downtime.

db-password: the site's shard gives the site's other database account a new
password (same grants and connection limit), switches wp-config.php to it,
waits until no request can still use the old account and drops it. No request
fails; an interrupted rotation is finished when its job runs again.

salts: new WordPress salts. Every user of the site is logged out (cookies and
nonces made with the old salts stop working), so it needs --yes.

Rotations are jobs on the site's shard; --wait follows one.`,
		Example: `  aipress secrets rotate db-password blog.localhost --wait
  aipress secrets rotate salts blog.localhost --yes
  aipress secrets status`,
	}, o)
	cmd.AddCommand(newSecretsRotateCmd(o), newSecretsStatusCmd(o))
	return cmd
}

func newSecretsRotateCmd(o *siteOpts) *cobra.Command {
	var (
		wait    bool
		yes     bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate db-password|salts DOMAIN",
		Short: "Rotate one secret of a site",
		Long: `Rotate the site's database password (no request fails) or its WordPress salts
(every user of the site is logged out: requires --yes). A rotation of the same
kind already in flight is followed instead of starting another.`,
		Example: `  aipress secrets rotate db-password blog.localhost --wait -o json
  aipress secrets rotate salts blog.localhost --yes --wait`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := args[0], args[1]
			switch kind {
			case store.SecretDBPassword:
			case store.SecretSalts:
				if !yes {
					return fmt.Errorf("rotating the salts of %s logs every one of its users out; run again with --yes", name)
				}
			default:
				return fmt.Errorf("unknown secret %q: want %s or %s", kind, store.SecretDBPassword, store.SecretSalts)
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			j, err := c.RotateSiteSecret(cmd.Context(), name, kind)
			if err != nil {
				return err
			}
			if kind == store.SecretSalts {
				fmt.Fprintf(cmd.ErrOrStderr(), "Rotating the salts of %s: its users will have to log in again.\n", name)
			}
			if wait {
				if j, err = o.waitJob(cmd.Context(), cmd.ErrOrStderr(), c, j, timeout); err != nil {
					return err
				}
			}
			return o.printJob(cmd.OutOrStdout(), j)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm a rotation that logs users out (salts)")
	jobWaitFlags(cmd, &wait, &timeout, "the rotation is done")
	return cmd
}

func newSecretsStatusCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the secret rotations in flight (pending or running)",
		Long: `List the secret.rotate jobs that are pending or running: what is mid-rotation.
A failed rotation is listed by 'aipress job list --kind secret.rotate --phase
Failed'; requesting the same rotation again resumes it where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			var all []store.Job
			opts := apiclient.JobListOptions{Kind: string(store.JobRotateSecret), Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: 1000}
			for {
				l, err := c.ListJobs(cmd.Context(), opts)
				if err != nil {
					return err
				}
				all = append(all, l.Items...)
				if l.Continue == "" {
					break
				}
				opts.Continue = l.Continue
			}
			if o.output != "table" {
				if all == nil {
					all = []store.Job{}
				}
				return printData(cmd.OutOrStdout(), o.output, map[string]any{"rotations": all})
			}
			return printRotations(cmd.OutOrStdout(), o.d.now(), all)
		},
	}
}

func printRotations(w io.Writer, now time.Time, jobs []store.Job) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "No secret rotation in flight.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSITE\tSECRET\tSHARD\tPHASE\tPROGRESS\tAGE")
	for _, j := range jobs {
		var p store.RotateParams
		if err := json.Unmarshal(j.Params, &p); err != nil && len(j.Params) > 0 {
			return errors.New("job " + j.ID + ": unreadable params")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, dash(j.Site), dash(p.Kind), dash(j.Shard), j.Phase, progressText(j.Progress), age(now, j.CreatedAt))
	}
	return tw.Flush()
}
