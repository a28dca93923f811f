package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/platform/edgenode"
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

Site rotations are jobs on the site's shard; --wait follows one.

purge-secret: the edge's purge secret, on the edge's machine (its data
directory's purge-secret file). The previous secret stays accepted while the
shards rewrite every site's wp-config.php with its new purge key (within
their full resync, 5 minutes by default), until 'rotate purge-secret
--finish' or for an hour. Running edges and shards pick the change up without
a restart.

backup-kek: the control plane's key-encryption key, on its machine (its data
directory's backup-kek). A new key is written, the old one kept as
backup-kek.old while every repository under the backup URL is re-wrapped (its
master key sealed with the new key and the new access keys), then retired: it
opens nothing afterwards. Backups taken before still restore. A run that
stopped half-way is finished by running it again. The running control plane
picks the new key up; other replicas need a copy of the new backup-kek.

ca: the internal CA of the channel between edges and shards' gateways (platform
admins), in three phases, each safe to retry: start (the new CA is trusted
next to the old one, which still issues), switch (the new CA issues; gateways
and edges renew within their ten-minute check), finish (the old CA is no
longer trusted; refused until the last certificate of the old CA expires,
unless --force). Without --phase, the next phase. No request fails.`,
		Example: `  aipress secrets rotate db-password blog.localhost --wait
  aipress secrets rotate salts blog.localhost --yes
  aipress secrets rotate purge-secret --data-dir /var/lib/aipress
  aipress secrets rotate purge-secret --data-dir /var/lib/aipress --finish
  aipress secrets rotate backup-kek --data-dir /var/lib/aipress
  aipress secrets rotate ca
  aipress secrets status`,
	}, o)
	cmd.AddCommand(newSecretsRotateCmd(o), newSecretsStatusCmd(o))
	return cmd
}

func newSecretsRotateCmd(o *siteOpts) *cobra.Command {
	var (
		wait, yes, finish, force bool
		timeout                  time.Duration
		dataDir, backupURL       string
		phase                    string
	)
	cmd := &cobra.Command{
		Use:   "rotate db-password|salts DOMAIN | purge-secret [--finish] | backup-kek | ca [--phase start|switch|finish] [--force]",
		Short: "Rotate one secret of a site, the edge's purge secret, the backup key-encryption key or the mesh CA",
		Long: `Rotate the site's database password (no request fails) or its WordPress salts
(every user of the site is logged out: requires --yes). A rotation of the same
kind already in flight is followed instead of starting another.

purge-secret rotates the purge secret in --data-dir (the edge's; default
$` + EnvDataDir + ` or ` + DefaultDataDir + `) with overlap; --finish ends the overlap.
backup-kek rotates the key-encryption key in --data-dir over every repository
under --backup-url (default $` + EnvBackupURL + ` or file://<data-dir>/backups).
ca does the next phase of the mesh CA's rotation (start, switch, finish), or
--phase; it prints what happened and what to wait for before the next one.
--force: switch before gateways and edges have had two checks to learn the new
CA, or finish before the old CA's last certificate expires.`,
		Example: `  aipress secrets rotate db-password blog.localhost --wait -o json
  aipress secrets rotate salts blog.localhost --yes --wait
  aipress secrets rotate purge-secret --data-dir ./aipress-data
  aipress secrets rotate ca --phase start`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			if kind == secretCA {
				if len(args) != 1 || finish {
					return errors.New("ca takes no DOMAIN and no --finish (use --phase finish)")
				}
				return o.rotateCA(cmd, phase, force)
			}
			if phase != "" || force {
				return fmt.Errorf("--phase and --force are for ca, not %s", kind)
			}
			if kind == secretKEK {
				if len(args) != 1 || finish {
					return errors.New("backup-kek takes no DOMAIN and no --finish (it finishes by itself)")
				}
				return o.rotateKEK(cmd, dataDir, backupURL)
			}
			if kind == secretPurge {
				if len(args) != 1 {
					return errors.New("purge-secret is the edge's, not a site's: no DOMAIN")
				}
				return o.rotatePurgeSecret(cmd, dataDir, finish)
			}
			if finish {
				return fmt.Errorf("--finish is for purge-secret; a %s rotation finishes by itself", kind)
			}
			if len(args) != 2 {
				return fmt.Errorf("which site? aipress secrets rotate %s DOMAIN", kind)
			}
			name := args[1]
			switch kind {
			case store.SecretDBPassword:
			case store.SecretSalts:
				if !yes {
					return fmt.Errorf("rotating the salts of %s logs every one of its users out; run again with --yes", name)
				}
			default:
				return fmt.Errorf("unknown secret %q: want %s, %s, %s, %s or %s", kind, store.SecretDBPassword, store.SecretSalts, secretPurge, secretKEK, secretCA)
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
	cmd.Flags().BoolVar(&finish, "finish", false, "purge-secret: stop accepting the previous secret")
	cmd.Flags().StringVar(&phase, "phase", "", "ca: the phase to do, start, switch or finish (default: the next one)")
	cmd.Flags().BoolVar(&force, "force", false, "ca: switch or finish without waiting for gateways and edges")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "purge-secret, backup-kek: the edge's or control plane's data directory (env "+EnvDataDir+", default "+DefaultDataDir+")")
	cmd.Flags().StringVar(&backupURL, "backup-url", "", "backup-kek: the bucket of the backup repositories (env "+EnvBackupURL+", default file://<data-dir>/backups)")
	jobWaitFlags(cmd, &wait, &timeout, "the rotation is done")
	return cmd
}

func newSecretsStatusCmd(o *siteOpts) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the secret rotations in flight (pending or running)",
		Long: `List the secret.rotate jobs that are pending or running: what is mid-rotation.
A failed rotation is listed by 'aipress job list --kind secret.rotate --phase
Failed'; requesting the same rotation again resumes it where it stopped.
When the purge secret of --data-dir (or the default data directory) is on
this machine, whether its rotation is in flight too. For platform admins, the
mesh CA's rotation state.`,
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
			out := map[string]any{"rotations": all}
			path := o.purgeSecretPath(dataDir)
			var ps *purge.RotationState
			if _, err := os.Stat(path); err == nil {
				st, err := purge.State(path)
				if err != nil {
					return err
				}
				ps = &st
				out["purge_secret"] = map[string]any{"file": path, "state": st}
			}
			kekPath := filepath.Join(o.dataDirOf(dataDir), repos.KEKFile)
			kekInFlight := false
			if _, err := os.Stat(kekPath); err == nil {
				if kekInFlight, err = repos.KEKRotationInFlight(kekPath); err != nil {
					return err
				}
				out["backup_kek"] = map[string]any{"file": kekPath, "in_flight": kekInFlight}
			}
			ca, err := meshCAStatus(cmd, c)
			if err != nil {
				return err
			}
			if ca != nil {
				ca.CA = "" // the PEM is for holders; GET /v1/mesh/ca has it
				out["mesh_ca"] = ca
			}
			if o.output != "table" {
				if all == nil {
					out["rotations"] = []store.Job{}
				}
				return printData(cmd.OutOrStdout(), o.output, out)
			}
			if err := printRotations(cmd.OutOrStdout(), o.d.now(), all); err != nil {
				return err
			}
			if ps != nil {
				if ps.InFlight {
					fmt.Fprintf(cmd.OutOrStdout(), "Purge secret %s: rotation in flight since %s (the previous secret is accepted for %s after it, or until --finish).\n",
						path, ps.Since.Format(time.RFC3339), edgenode.PurgeOverlap)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "Purge secret %s: no rotation in flight.\n", path)
				}
			}
			if kekInFlight {
				fmt.Fprintf(cmd.OutOrStdout(), "Backup key %s: a rotation stopped half-way (the old key is kept); run 'aipress secrets rotate backup-kek' again.\n", kekPath)
			}
			if ca != nil {
				return printCAState(cmd.OutOrStdout(), o.d.now(), ca)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the edge's data directory, for its purge secret (env "+EnvDataDir+", default "+DefaultDataDir+")")
	return cmd
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

// The platform secrets rotated on their machine (local files, not jobs).
const (
	secretPurge = "purge-secret"
	secretKEK   = "backup-kek"
)

// dataDirOf is dataDir, or the environment's, or the default.
func (o *siteOpts) dataDirOf(dataDir string) string {
	if dataDir == "" {
		dataDir = o.d.getenv(EnvDataDir)
	}
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return dataDir
}

// purgeSecretPath is the purge secret file of dataDir (or the default).
func (o *siteOpts) purgeSecretPath(dataDir string) string {
	return filepath.Join(o.dataDirOf(dataDir), edgenode.PurgeSecretFile)
}

// rotateKEK rotates the backup key-encryption key of dataDir over every
// repository under backupURL.
func (o *siteOpts) rotateKEK(cmd *cobra.Command, dataDir, backupURL string) error {
	if err := checkFormat(o.output); err != nil {
		return err
	}
	dir := o.dataDirOf(dataDir)
	kekPath := filepath.Join(dir, repos.KEKFile)
	kek, err := os.ReadFile(kekPath)
	if err != nil {
		return fmt.Errorf("no backup key at %s (pass the control plane's --data-dir): %w", kekPath, err)
	}
	// The mesh CA and move keys must not follow the KEK: a data directory
	// that predates the platform secret gets it from the current KEK first.
	if _, err := repos.LoadPlatformSecret(filepath.Join(dir, repos.PlatformSecretFile), kek); err != nil {
		return err
	}
	if backupURL == "" {
		backupURL = o.d.getenv(EnvBackupURL)
	}
	if backupURL == "" {
		backupURL = repos.DefaultBaseURL(dir)
	}
	ctx := cmd.Context()
	names, err := repos.ListRepos(ctx, backupURL)
	if err != nil {
		return err
	}
	res, err := repos.RotateKEK(ctx, kekPath, backupURL, names, &repo.Options{Owner: "kek rotation"})
	if err != nil {
		return fmt.Errorf("%w (run the rotation again to finish it)", err)
	}
	if o.output != "table" {
		return printData(cmd.OutOrStdout(), o.output, res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Backup key %s rotated: %d repositories re-wrapped, %d already were; the old key is retired.\n",
		kekPath, len(res.Rewrapped), len(res.Done))
	fmt.Fprintln(cmd.OutOrStdout(), "Back the new key up apart from the data directory; control-plane replicas need a copy of it.")
	return nil
}

// rotatePurgeSecret rotates (or finishes rotating) the edge's purge
// secret in its data directory.
func (o *siteOpts) rotatePurgeSecret(cmd *cobra.Command, dataDir string, finish bool) error {
	if err := checkFormat(o.output); err != nil {
		return err
	}
	path := o.purgeSecretPath(dataDir)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no purge secret at %s (pass the edge's --data-dir): %w", path, err)
	}
	var err error
	if finish {
		err = purge.Finish(path)
	} else {
		err = purge.Rotate(path)
	}
	if err != nil {
		return err
	}
	st, err := purge.State(path)
	if err != nil {
		return err
	}
	if o.output != "table" {
		return printData(cmd.OutOrStdout(), o.output, map[string]any{"secret": secretPurge, "file": path, "state": st})
	}
	if finish {
		fmt.Fprintf(cmd.OutOrStdout(), "Purge secret %s: rotation finished; only the current secret is accepted.\n", path)
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Purge secret %s rotated. The edge accepts the previous one too until\n"+
		"'aipress secrets rotate purge-secret --finish' (after the shards' next full resync) or for %s.\n", path, edgenode.PurgeOverlap)
	return nil
}
