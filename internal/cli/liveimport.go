package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/liveimport"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
	"github.com/spf13/cobra"
)

// liveFlags are site import's flags for a live site over SSH.
type liveFlags struct {
	ssh, key, passwordEnv, knownHosts, hostKey, db, state string
	resync, final                                         bool
	// The source's AIPress API for --final's write freeze.
	sourceAPI, sourceTokenEnv, sourceSite string
}

// liveConfig is the SSH configuration the flags give: a key and/or a
// password (from an environment variable, never a flag's value), and a
// host key check (a known_hosts file, a pinned fingerprint, else
// ~/.ssh/known_hosts).
func (f *liveFlags) liveConfig(getenv func(string) string) (liveimport.Source, liveimport.Config, error) {
	var cfg liveimport.Config
	src, err := liveimport.ParseSource(f.ssh)
	if err != nil {
		return src, cfg, err
	}
	if f.key != "" {
		if cfg.Signer, err = liveimport.LoadKey(f.key, nil); err != nil {
			return src, cfg, err
		}
	}
	if f.passwordEnv != "" {
		if cfg.Password = getenv(f.passwordEnv); cfg.Password == "" {
			return src, cfg, fmt.Errorf("--ssh-password-env %s: the variable is empty or unset", f.passwordEnv)
		}
	}
	if cfg.Signer == nil && cfg.Password == "" {
		return src, cfg, errors.New("--ssh needs --ssh-key FILE or --ssh-password-env VAR")
	}
	switch {
	case f.hostKey != "" && f.knownHosts != "":
		return src, cfg, errors.New("give --known-hosts or --ssh-host-key, not both")
	case f.hostKey != "":
		cfg.HostKey, err = liveimport.HostKeyFingerprint(f.hostKey)
	case f.knownHosts != "":
		cfg.HostKey, err = liveimport.HostKeyFromKnownHosts(f.knownHosts)
	default:
		home, herr := os.UserHomeDir()
		if herr != nil {
			return src, cfg, errors.New("no --known-hosts or --ssh-host-key, and no home directory for ~/.ssh/known_hosts")
		}
		kh := filepath.Join(home, ".ssh", "known_hosts")
		if _, serr := os.Stat(kh); serr != nil {
			return src, cfg, fmt.Errorf("no --known-hosts or --ssh-host-key, and no %s: the server's host key must be verified (ssh-keyscan, then check it)", kh)
		}
		cfg.HostKey, err = liveimport.HostKeyFromKnownHosts(kh)
	}
	return src, cfg, err
}

// db is the database source --db names.
func (f *liveFlags) dbSource() (liveimport.DB, error) {
	switch {
	case f.db == "" || f.db == "mysqldump":
		return liveimport.DB{}, nil
	case strings.HasPrefix(f.db, "mysql://"):
		if _, err := liveimport.ParseDSN(f.db); err != nil {
			return liveimport.DB{}, err
		}
		return liveimport.DB{DSN: f.db}, nil
	}
	return liveimport.DB{}, errors.New(`--db: want "mysqldump" (the server's, with wp-config.php's credentials) or mysql://user:pass@host:port/db`)
}

// statePath is where the listing of the last pull for domain is kept.
func (f *liveFlags) statePath(domain string) (string, error) {
	if f.state != "" {
		return f.state, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the pull's listing: give --state FILE: %w", err)
	}
	return filepath.Join(dir, "aipress", "live", domain+".json"), nil
}

func readListing(file string) (*liveimport.Listing, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l liveimport.Listing
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &l, nil
}

func writeListing(file string, l *liveimport.Listing) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// liveProgress prints a pull's progress on w: the dump every 8 MiB, the
// files every 10%.
func liveProgress(w io.Writer) func(step string, done, total int64) {
	var lastDump, lastPct int64 = 0, -1
	return func(step string, done, total int64) {
		switch step {
		case "dump":
			if done-lastDump >= 8<<20 {
				lastDump = done
				fmt.Fprintf(w, "pulling the database: %s\n", humanBytes(done))
			}
		case "files":
			if total > 0 && done*10/total != lastPct {
				lastPct = done * 10 / total
				fmt.Fprintf(w, "pulling files: %d%% of %s\n", done*100/total, humanBytes(total))
			}
		}
	}
}

// liveOutput is what 'site import --ssh' prints.
type liveOutput struct {
	Domain     string               `json:"domain"`
	DryRun     bool                 `json:"dry_run"`
	Resync     bool                 `json:"resync"`
	Pulled     *liveimport.Pulled   `json:"pulled"`
	Inspection *siteport.Inspection `json:"inspection,omitempty"`
	Site       *site.Site           `json:"site,omitempty"`
	Job        string               `json:"job,omitempty"`
	Report     json.RawMessage      `json:"report,omitempty"`
	Duration   time.Duration        `json:"duration_ns"`
	// Freeze is --final's write freeze on the source AIPress.
	Freeze *freezeReport `json:"freeze,omitempty"`
}

// freezeReport is how long the source's writes were frozen for the final
// sync: from the freeze request to the end of the sync (the source stays
// frozen after a cut-over that succeeded).
type freezeReport struct {
	SourceAPI string        `json:"source_api"`
	Site      string        `json:"site"`
	Requested time.Time     `json:"requested"`
	Frozen    time.Time     `json:"frozen"`
	Duration  time.Duration `json:"duration_ns"`
}

// freezeSource asks the source AIPress to freeze site's writes and waits
// until its shard reports them frozen; unfreeze gives them back.
func freezeSource(ctx context.Context, progress io.Writer, api *apiclient.Client, name string, timeout time.Duration) (*freezeReport, error) {
	rep := &freezeReport{SourceAPI: api.BaseURL, Site: name, Requested: time.Now()}
	if _, err := api.FreezeSite(ctx, name, true); err != nil {
		return nil, fmt.Errorf("freeze the writes of %s at %s: %w", name, api.BaseURL, err)
	}
	fmt.Fprintf(progress, "freezing the writes of %s at %s\n", name, api.BaseURL)
	deadline := time.Now().Add(timeout)
	for {
		st, err := api.GetSite(ctx, name)
		if err != nil {
			return rep, fmt.Errorf("follow the freeze of %s: %w", name, err)
		}
		if c := st.Status.Condition(site.CondWritesFrozen); c != nil && c.Status == "True" && c.ObservedGeneration >= st.Metadata.Generation {
			rep.Frozen = time.Now()
			return rep, nil
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("the writes of %s at %s were not frozen within %s", name, api.BaseURL, timeout)
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// importLive pulls the live site over SSH and imports it (a new site),
// re-syncs an imported one (--resync), or with --dry-run pulls it into a
// temporary file and reports what an import would do.
func (o *siteOpts) importLive(cmd *cobra.Command, lf *liveFlags, req apiclient.ImportRequest, dryRun, wait bool, timeout time.Duration) error {
	src, cfg, err := lf.liveConfig(o.d.getenv)
	if err != nil {
		return err
	}
	db, err := lf.dbSource()
	if err != nil {
		return err
	}
	state, err := lf.statePath(req.Domain)
	if err != nil {
		return err
	}
	var since *liveimport.Listing
	if lf.resync {
		if since, err = readListing(state); err != nil {
			return err
		}
		if since == nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "no listing of an earlier pull in %s: every file is sent\n", state)
			since = &liveimport.Listing{}
		}
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	start := time.Now()
	fmt.Fprintf(stderr, "connecting to %s\n", src)
	conn, err := liveimport.Dial(ctx, src, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	opt := liveimport.PullOptions{DB: db, Since: since, Progress: liveProgress(stderr)}
	out := liveOutput{Domain: req.Domain, DryRun: dryRun, Resync: lf.resync}
	w := cmd.OutOrStdout()
	if dryRun {
		scratch, err := os.MkdirTemp("", "aipress-live-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
		opt.Scratch = scratch
		archive := filepath.Join(scratch, "live.tar.gz")
		f, err := os.OpenFile(archive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		out.Pulled, err = conn.Pull(ctx, f, opt)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("pull from %s: %w", src.Host, err)
		}
		unpacked := filepath.Join(scratch, "unpacked")
		if err := os.Mkdir(unpacked, 0o700); err != nil {
			return err
		}
		if out.Inspection, err = siteport.Inspect(ctx, siteport.InspectRequest{Archive: archive, Prefix: req.Prefix, Scratch: unpacked}); err != nil {
			return fmt.Errorf("import refused: %w", err)
		}
		out.Duration = time.Since(start)
		if o.output != "table" {
			return printData(w, o.output, out)
		}
		printPulled(w, out.Pulled)
		in := out.Inspection
		fmt.Fprintf(w, "dump        %s, %d tables, prefix %s, charset %s\n", humanBytes(in.DumpBytes), len(in.Tables), in.TablePrefix, dash(in.Charset))
		fmt.Fprintf(w, "WordPress   %s (db_version %s)\n", dash(in.WordPressVersion), dash(in.DBVersion))
		fmt.Fprintf(w, "URL         %s → the new site's (%s)\n", dash(in.OldURL), req.Domain)
		fmt.Fprintf(w, "plugins     %s\n", dash(strings.Join(in.Plugins, ", ")))
		fmt.Fprintf(w, "themes      %s\n", dash(strings.Join(in.Themes, ", ")))
		for _, warn := range in.Warnings {
			fmt.Fprintf(w, "warning     %s\n", warn)
		}
		fmt.Fprintf(w, "nothing sent: a dry run\n")
		return nil
	}
	c, err := o.connect()
	if err != nil {
		return err
	}
	if lf.final && lf.sourceAPI != "" {
		srcAPI := apiclient.New(lf.sourceAPI, o.d.getenv(lf.sourceTokenEnv))
		fr, err := freezeSource(ctx, stderr, srcAPI, lf.sourceSite, 5*time.Minute)
		if err != nil {
			if fr != nil {
				_, uerr := srcAPI.FreezeSite(context.WithoutCancel(ctx), lf.sourceSite, false)
				err = errors.Join(err, uerr)
			}
			return err
		}
		out.Freeze = fr
		defer func() {
			if out.Freeze.Duration == 0 {
				// The final sync failed: the source gets its writes back.
				if _, uerr := srcAPI.FreezeSite(context.WithoutCancel(ctx), lf.sourceSite, false); uerr != nil {
					fmt.Fprintf(stderr, "warning: the writes of %s at %s are still frozen: %v\n", lf.sourceSite, lf.sourceAPI, uerr)
				} else {
					fmt.Fprintf(stderr, "the writes of %s at %s are given back (the final sync failed)\n", lf.sourceSite, lf.sourceAPI)
				}
			}
		}()
	}
	// The pull streams into the request: a pull that fails ends the
	// request with its error, and the API makes nothing of a body it could
	// not read to its end.
	if lf.resync {
		var resp struct {
			Job *store.Job `json:"job"`
		}
		if out.Pulled, err = conn.Stream(ctx, opt, func(r io.Reader) error { return c.ResyncSite(ctx, req.Domain, r, -1, &resp) }); err != nil {
			return err
		}
		out.Job = resp.Job.ID
		j, err := o.waitJob(ctx, stderr, c, resp.Job, timeout)
		if err != nil {
			return err
		}
		out.Report = j.Result
	} else {
		var resp struct {
			Domain     string               `json:"domain"`
			Site       *site.Site           `json:"site"`
			Inspection *siteport.Inspection `json:"inspection"`
		}
		if out.Pulled, err = conn.Stream(ctx, opt, func(r io.Reader) error { return c.ImportSite(ctx, req, r, -1, &resp) }); err != nil {
			return err
		}
		out.Inspection, out.Site = resp.Inspection, resp.Site
		if wait {
			s, err := o.wait(ctx, stderr, c, resp.Domain, "importing", timeout, siteReady)
			if err != nil {
				return err
			}
			out.Site = s
		}
	}
	if out.Freeze != nil {
		out.Freeze.Duration = time.Since(out.Freeze.Requested)
	}
	if err := writeListing(state, out.Pulled.Listing); err != nil {
		fmt.Fprintf(stderr, "warning: the listing for a later --resync was not kept (%v): a re-sync will send every file\n", err)
	}
	out.Duration = time.Since(start)
	if o.output != "table" {
		return printData(w, o.output, out)
	}
	printPulled(w, out.Pulled)
	if lf.resync {
		var rep struct {
			Files   int      `json:"files"`
			Deleted []string `json:"deleted"`
			Posts   int      `json:"posts"`
			Dur     int64    `json:"duration_ns"`
		}
		_ = json.Unmarshal(out.Report, &rep)
		fmt.Fprintf(w, "re-synced %s from %s: %d files written, %d deleted, database replaced (%d posts), site held %s; took %s\n",
			req.Domain, src.Host, rep.Files, len(rep.Deleted), rep.Posts, time.Duration(rep.Dur).Round(time.Millisecond), out.Duration.Round(time.Millisecond))
		if f := out.Freeze; f != nil {
			fmt.Fprintf(w, "writes of %s at %s frozen for %s (from the request to the end of the final sync); they stay frozen: point the domain at the new site, then delete the source (or POST /v1/sites/%s/unfreeze)\n",
				f.Site, f.SourceAPI, f.Duration.Round(time.Millisecond), f.Site)
		} else if lf.final {
			fmt.Fprintf(w, "final sync done; the source's writes were not frozen (no --source-api): what it wrote during the sync may be missing\n")
		}
		return nil
	}
	in := out.Inspection
	phase := ""
	if out.Site != nil {
		phase = string(out.Site.Status.Phase)
	}
	fmt.Fprintf(w, "imported %s → %s (%s): prefix %s, %d tables, WordPress %s; took %s\n",
		dash(in.OldURL), req.Domain, dash(phase), in.TablePrefix, len(in.Tables), dash(in.WordPressVersion), out.Duration.Round(time.Millisecond))
	for _, warn := range in.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}

func printPulled(w io.Writer, p *liveimport.Pulled) {
	kind := "all files"
	if p.Delta {
		kind = "changed files"
	}
	fmt.Fprintf(w, "source      %s\n", p.Source)
	fmt.Fprintf(w, "files       %d listed, %d pulled (%s, %s), database dump %s\n", p.Listed, p.Files, kind, humanBytes(p.Bytes), humanBytes(p.DumpBytes))
	for _, d := range p.Deleted {
		fmt.Fprintf(w, "deleted     %s\n", d)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "skipped     %s\n", s)
	}
}
