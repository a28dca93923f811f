package cli

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wxr"
	"github.com/spf13/cobra"
)

func newSiteExportCmd(o *siteOpts) *cobra.Command {
	var (
		file    string
		asWXR   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "export DOMAIN [--file FILE] [--wxr]",
		Short: "Export a site to a portable archive (tar.gz) or its content as WXR",
		Long: `Export a site: a job on its shard writes a tar.gz that standard tools and other
hosts accept, and the CLI downloads it (progress on stderr) and checks its
SHA-256. The archive holds:

  database.sql    a mariadb-dump of the site's database (one transaction, table
                  prefix wp_, no DEFINER clauses): loads with the mariadb or
                  mysql client into any empty database
  wp-content/     the site's files: uploads, plugins, themes (the bundled
                  ones included), mu-plugins, languages
  manifest.json   format 1: domain, URL, WordPress and database versions, table
                  prefix, charset, sizes and the SHA-256 of every entry (last)

--file names the archive (default DOMAIN-JOBID.tar.gz here; "-" writes it to
stdout). The site keeps serving meanwhile. The archive holds the users'
password hashes: keep it as you keep backups.

--wxr exports the site's content instead, as WordPress's own Tools → Export
writes it (WXR 1.2: posts, pages, comments, terms, menus, authors and the
attachments' URLs, no files, no passwords, no settings), which any
WordPress imports; the default file is DOMAIN-JOBID.xml.`,
		Example: `  aipress site export blog.localhost
  aipress site export blog.localhost --file blog.tar.gz
  aipress site export blog.localhost --file - | tar -tzf -
  aipress site export blog.localhost --wxr --file blog.xml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			format, ext := "", "tar.gz"
			if asWXR {
				format, ext = store.ExportWXR, "xml"
			}
			j, err := c.ExportSiteAs(ctx, args[0], format)
			if err != nil {
				return err
			}
			if j, err = o.waitJob(ctx, cmd.ErrOrStderr(), c, j, timeout); err != nil {
				return err
			}
			var res store.ExportResult
			if err := json.Unmarshal(j.Result, &res); err != nil {
				return fmt.Errorf("export job %s: result: %w", j.ID, err)
			}
			body, _, sum, err := c.JobArchive(ctx, j.ID)
			if err != nil {
				return err
			}
			defer body.Close()
			var w io.Writer
			var f *os.File
			name := file
			if name == "" {
				name = fmt.Sprintf("%s-%s.%s", args[0], j.ID, ext)
			}
			if name == "-" {
				w = cmd.OutOrStdout()
			} else {
				// A partial download never takes the name.
				if f, err = os.CreateTemp(filepath.Dir(name), ".export-*."+ext); err != nil {
					return err
				}
				defer os.Remove(f.Name())
				defer f.Close()
				w = f
			}
			h := sha256.New()
			n, err := io.Copy(io.MultiWriter(w, h), body)
			if err != nil {
				return fmt.Errorf("download the archive: %w", err)
			}
			got := hex.EncodeToString(h.Sum(nil))
			if got != res.SHA256 || (sum != "" && sum != got) || n != res.Bytes {
				return fmt.Errorf("the downloaded archive (%d bytes, sha256 %s) is not the one the job wrote (%d bytes, sha256 %s)", n, got, res.Bytes, res.SHA256)
			}
			if f != nil {
				if err := errors.Join(f.Sync(), f.Chmod(0o600)); err != nil {
					return err
				}
				if err := os.Rename(f.Name(), name); err != nil {
					return err
				}
			}
			out := struct {
				Site    string          `json:"site"`
				Job     string          `json:"job"`
				File    string          `json:"file"`
				Format  string          `json:"format"`
				Bytes   int64           `json:"bytes"`
				SHA256  string          `json:"sha256"`
				Files   int             `json:"files,omitempty"`
				DB      int64           `json:"database_bytes,omitempty"`
				Version string          `json:"wordpress_version,omitempty"`
				WXR     json.RawMessage `json:"wxr,omitempty"`
			}{args[0], j.ID, name, store.ExportArchive, n, got, res.Files, res.DatabaseBytes, res.WordPressVersion, res.WXR}
			if asWXR {
				out.Format = store.ExportWXR
				var sum wxr.Summary
				_ = json.Unmarshal(res.WXR, &sum)
				if name == "-" || o.output == "table" {
					fmt.Fprintf(cmd.ErrOrStderr(), "exported the content of %s to %s: %d bytes, %s, sha256 %s\n", args[0], name, n, wxrCounts(&sum), got)
					return nil
				}
				return printData(cmd.OutOrStdout(), o.output, out)
			}
			if name == "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %s: %d bytes, %d files, sha256 %s\n", args[0], n, res.Files, got)
				return nil
			}
			if o.output == "table" {
				fmt.Fprintf(cmd.OutOrStdout(), "exported %s to %s: %d bytes (database %d), %d files, WordPress %s, sha256 %s\n",
					args[0], name, n, res.DatabaseBytes, res.Files, res.WordPressVersion, got)
				return nil
			}
			return printData(cmd.OutOrStdout(), o.output, out)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", `where to write the archive (default DOMAIN-JOBID.tar.gz, with --wxr DOMAIN-JOBID.xml; "-": stdout)`)
	cmd.Flags().BoolVar(&asWXR, "wxr", false, "export the site's content as a WXR file (WordPress's Tools → Export) instead of an archive")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the export job")
	return cmd
}

func newSiteImportCmd(o *siteOpts) *cobra.Command {
	var (
		archive, sqlFile, domain, prefix string
		org, plan, wxrFile               string
		dryRun, wait, skipAttachments    bool
		timeout                          time.Duration
		live                             liveFlags
	)
	cmd := &cobra.Command{
		Use:   "import (--archive FILE --domain NEW | --ssh USER@HOST[:PORT]:/DOCROOT --domain NEW [--resync] | --wxr FILE --domain SITE) [--dry-run]",
		Short: "Create a site from an archive of a WordPress site, or import a WXR file's content into a site",
		Long: `Create a site from an archive of a WordPress site, or with --dry-run read the
archive here, as the import would, and report what it holds and what an import
would change (nothing is sent or changed).

The archive is a tar, tar.gz or zip of a WordPress docroot or of just its
wp-content, with a SQL dump (*.sql or *.sql.gz, from mariadb-dump, mysqldump,
'wp db export' or a host's backup tool) inside it or given with --sql. It is
unpacked entry by entry into a temporary directory (never whole into memory),
and refused with the reason when an entry would land outside it (absolute
paths, "..", symlinks or hard links that leave it, devices), when it is
truncated or corrupt, when it has no wp-content or no dump, or when the dump
has no <prefix>options table or is in a character set other than UTF-8. The
report names the table prefix (renamed to wp_ on import), the old URL
(siteurl, home) that would be rewritten to the new domain's, the WordPress
and database versions, the plugins and themes (kept in the site's own tree),
and what would be removed from the dump (DEFINER clauses, CREATE DATABASE and
USE, trigger and routine blocks).

Without --dry-run the archive is sent to the API (POST /v1/imports), which
inspects it again and refuses it with the reason, or creates the site (the
organisation's plan and quota apply) whose shard imports it: the dump is
loaded sandboxed as a user of the site's database only, the tables renamed to
wp_, URLs rewritten to the new domain's; a failed import leaves nothing on the
shard. --wait (the default) follows the site until it is Ready. The site's
users and passwords are the archive's. With --sql the archive is first
unpacked and checked here and repacked with that dump (its wp-content, the
docroot's wp-includes/version.php and the dump as database.sql), which needs
the archive's size of local disk twice.

--wxr imports the content of a WXR file (Tools → Export of any WordPress)
into the existing site --domain names (create it first with 'aipress site
create'): its authors (mapped to the site's users by login, created without a
usable password when missing: they reset it), categories, tags and other
terms, posts, pages, comments, menus and custom post types, and its
attachments, downloaded from their URLs (http or https, public addresses
only, 64 MiB each and 2,000 at most; --skip-attachments downloads none). The
file is checked before anything changes: a DTD or entity (XXE, "billion
laughs"), a file larger than the plan's disk limit or with more than 200,000
items, or anything but a WordPress export is refused with the reason.
WordPress inserts the content, in the site's own context; posts the site has
already (same type, title and date) are skipped, so an import run twice adds
nothing. The import is a job: the CLI follows its progress and prints what
was imported and every attachment or item that failed (--wait=false: it
returns once the job is made; 'aipress job get ID' shows it). --dry-run reads the
file here and reports its counts; nothing is sent.

--ssh imports a live site from its server: this command connects over SSH
(--ssh-key FILE, or the password in the environment variable
--ssh-password-env names), verifies the server's host key (--known-hosts FILE,
or --ssh-host-key SHA256:... as ssh-keygen -lf prints it; default
~/.ssh/known_hosts; an unknown or different key is refused), pulls the
docroot's wp-content over SFTP — following no link that leads out of the
docroot — and the database with the server's mysqldump (--db mysqldump, the
default: wp-config.php's credentials, the password given on the dump's
stdin) or a direct connection tunnelled through SSH (--db
mysql://user:pass@host:port/db, host as the server sees it; dumped by the
local mariadb-dump), and streams them as an archive into the import above.
The credentials stay in this process: nothing is stored. The listing of what
was pulled (path, size, mtime) is kept in --state (default
~/.cache/aipress/live/DOMAIN.json). --resync --domain SITE pulls again into the
site imported before: only files whose size or mtime changed are sent, files
deleted on the source are deleted, and the database is replaced by a fresh
dump (a live-resync job; the site is left as it was if that fails).
--final is the cut-over's last re-sync: when the source is another AIPress
(--source-api URL --source-token-env VAR --source-site D) its site's writes
are frozen first (POST /v1/sites/D/freeze: its database accounts may only read,
no WP-Cron; pages keep serving), the sync runs, and the freeze's duration is
reported; the source stays frozen after a cut-over that succeeded, and gets
its writes back if the sync fails.
--dry-run pulls into a temporary file here and reports; nothing is sent.
See docs/import-export.md.`,
		Example: `  aipress site import --archive backup.tar.gz --domain blog.example.com --dry-run
  aipress site import --archive backup.tar.gz --domain blog.example.com -o json
  aipress site import --archive site.zip --sql db.sql.gz --domain new.localhost --dry-run -o json
  aipress site import --archive site.zip --sql db.sql.gz --domain new.localhost
  aipress site import --ssh deploy@old.example.com:/var/www/html --ssh-key ~/.ssh/id_ed25519 --domain blog.example.com --dry-run
  SSH_PW=... aipress site import --ssh deploy@old.example.com:2222:/srv/blog --ssh-password-env SSH_PW --ssh-host-key SHA256:... --domain blog.example.com
  aipress site import --ssh deploy@old.example.com:/var/www/html --ssh-key ~/.ssh/id_ed25519 --resync --domain blog.example.com
  OLD_TOKEN=... aipress site import --ssh deploy@old.example.com:/var/www/html --ssh-key ~/.ssh/id_ed25519 --final --domain blog.example.com --source-api https://api.old.example.com --source-token-env OLD_TOKEN --source-site blog.example.com
  aipress site import --wxr export.xml --domain blog.localhost --dry-run
  aipress site import --wxr export.xml --domain blog.localhost -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wxrFile != "" {
				if archive != "" || sqlFile != "" || prefix != "" || org != "" || plan != "" {
					return errors.New("--wxr imports content into an existing site: --archive, --sql, --prefix, --org and --plan do not apply")
				}
				if domain == "" {
					return errors.New("--wxr needs --domain: the existing site to import the content into")
				}
				return o.importWXR(cmd, wxrFile, domain, dryRun, skipAttachments, wait, timeout)
			}
			if live.ssh != "" {
				if archive != "" || sqlFile != "" {
					return errors.New("--ssh pulls the site from its server: --archive and --sql do not apply")
				}
				if domain == "" {
					return errors.New("--ssh needs --domain: the new site's (with --resync: the site imported before)")
				}
				if live.final {
					live.resync = true
					if (live.sourceAPI == "") != (live.sourceSite == "") || (live.sourceAPI != "" && live.sourceTokenEnv == "") {
						return errors.New("--final freezes the source's writes with --source-api URL, --source-token-env VAR and --source-site D together (or none of them: a final sync without a freeze)")
					}
				} else if live.sourceAPI != "" || live.sourceSite != "" || live.sourceTokenEnv != "" {
					return errors.New("--source-api, --source-token-env and --source-site go with --final")
				}
				if live.resync && (org != "" || plan != "") {
					return errors.New("--resync updates the existing site: --org and --plan do not apply")
				}
				return o.importLive(cmd, &live, apiclient.ImportRequest{Domain: domain, Org: org, Plan: plan, Prefix: prefix}, dryRun, wait, timeout)
			}
			if live.resync {
				return errors.New("--resync needs --ssh")
			}
			if archive == "" || domain == "" {
				return errors.New("--archive and --domain are required")
			}
			if !dryRun {
				return o.importArchive(cmd, apiclient.ImportRequest{Domain: domain, Org: org, Plan: plan, Prefix: prefix}, archive, sqlFile, wait, timeout)
			}
			scratch, err := os.MkdirTemp("", "aipress-import-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(scratch)
			var last int64
			unpacked, pack := filepath.Join(scratch, "unpacked"), filepath.Join(scratch, "extensions")
			for _, d := range []string{unpacked, pack} {
				if err := os.Mkdir(d, 0o700); err != nil {
					return err
				}
			}
			// Pack: which plugins and themes the shared artefact store
			// would take (the API's default limits), which stay in the
			// site's tree and why.
			in, err := siteport.Inspect(cmd.Context(), siteport.InspectRequest{Archive: archive, SQL: sqlFile, Prefix: prefix, Scratch: unpacked, Pack: pack,
				Progress: func(done, total int64) {
					if total > 0 && done*10/total != last*10/total {
						fmt.Fprintf(cmd.ErrOrStderr(), "unpacking %s: %d%% of %s\n", filepath.Base(archive), done*100/total, humanBytes(total))
					}
					last = done
				}})
			if err != nil {
				return fmt.Errorf("import refused: %w", err)
			}
			rep := struct {
				Domain string `json:"domain"`
				DryRun bool   `json:"dry_run"`
				*siteport.Inspection
			}{domain, true, in}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "archive     %s (%s, %d files, %s)\n", archive, in.Archive.Format, in.Archive.Files, humanBytes(in.Archive.Bytes))
			fmt.Fprintf(w, "wp-content  %s\n", in.Layout.WPContent)
			fmt.Fprintf(w, "WordPress   %s (db_version %s)\n", dash(in.WordPressVersion), dash(in.DBVersion))
			fmt.Fprintf(w, "dump        %s (%s, %d tables, charset %s)\n", in.Dump, humanBytes(in.DumpBytes), len(in.Tables), dash(in.Charset))
			rename := "kept"
			if in.PrefixRenamed {
				rename = "renamed to " + siteport.SitePrefix
			}
			fmt.Fprintf(w, "prefix      %s (%s)\n", in.TablePrefix, rename)
			fmt.Fprintf(w, "URL         %s → the new site's (%s)\n", dash(in.OldURL), domain)
			if in.OldHome != "" && in.OldHome != in.OldURL {
				fmt.Fprintf(w, "home        %s → the new site's\n", in.OldHome)
			}
			fmt.Fprintf(w, "plugins     %s\n", dash(strings.Join(in.Plugins, ", ")))
			fmt.Fprintf(w, "themes      %s\n", dash(strings.Join(in.Themes, ", ")))
			for _, e := range in.Extensions {
				where := "site's tree: " + e.Reason
				if e.Storable {
					where = "artefact store (" + dash(e.Version) + ", sha256 " + e.SHA256[:12] + ")"
				}
				fmt.Fprintf(w, "%-11s %s → %s\n", e.Kind, e.Name, where)
			}
			for _, warn := range in.Warnings {
				fmt.Fprintf(w, "warning     %s\n", warn)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&archive, "archive", "", "the archive (tar, tar.gz or zip) of a WordPress docroot or wp-content")
	f.StringVar(&wxrFile, "wxr", "", "a WXR file (WordPress's Tools → Export) whose content to import into the existing site --domain")
	f.BoolVar(&skipAttachments, "skip-attachments", false, "with --wxr: download and import no attachments")
	f.StringVar(&sqlFile, "sql", "", "the SQL dump (plain or gzip), when it is not in the archive")
	f.StringVar(&domain, "domain", "", "the domain the site would have")
	f.StringVar(&prefix, "prefix", "", "the table prefix of the site to take, when the dump holds several")
	f.BoolVar(&dryRun, "dry-run", false, "report what an import would find and change; change nothing")
	f.StringVar(&org, "org", "", "organisation that will own the site (default: your only organisation)")
	f.StringVar(&plan, "plan", "", "hosting plan (default: the platform's default plan)")
	f.StringVar(&live.ssh, "ssh", "", "import a live site from its server: USER@HOST[:PORT]:/path/to/docroot")
	f.StringVar(&live.key, "ssh-key", "", "with --ssh: the private key file to log in with")
	f.StringVar(&live.passwordEnv, "ssh-password-env", "", "with --ssh: the environment variable holding the SSH password")
	f.StringVar(&live.knownHosts, "known-hosts", "", "with --ssh: the known_hosts file that verifies the server's key (default ~/.ssh/known_hosts)")
	f.StringVar(&live.hostKey, "ssh-host-key", "", "with --ssh: the server's host key fingerprint, SHA256:... (ssh-keygen -lf)")
	f.StringVar(&live.db, "db", "mysqldump", `with --ssh: "mysqldump" (the server's, wp-config.php's credentials) or mysql://user:pass@host:port/db (tunnelled through SSH)`)
	f.StringVar(&live.state, "state", "", "with --ssh: where the listing of the pull is kept for --resync (default ~/.cache/aipress/live/DOMAIN.json)")
	f.BoolVar(&live.resync, "resync", false, "with --ssh: pull again into the site --domain imported before: changed files, deletions and the database")
	f.BoolVar(&live.final, "final", false, "with --ssh: the cut-over's last re-sync; with --source-api the source AIPress freezes the site's writes first and the freeze's duration is reported")
	f.StringVar(&live.sourceAPI, "source-api", "", "with --final: the API URL of the AIPress the site comes from")
	f.StringVar(&live.sourceTokenEnv, "source-token-env", "", "with --final: the environment variable holding a token of the source's API")
	f.StringVar(&live.sourceSite, "source-site", "", "with --final: the site's name at the source")
	waitFlags(cmd, &wait, &timeout, "the imported site is Ready")
	return cmd
}

// importArchive sends the archive to POST /v1/imports and follows the
// new site.
func (o *siteOpts) importArchive(cmd *cobra.Command, req apiclient.ImportRequest, archive, sqlFile string, wait bool, timeout time.Duration) error {
	c, err := o.connect()
	if err != nil {
		return err
	}
	if sqlFile != "" {
		// The API takes one file: the archive is repacked here with the
		// dump given apart.
		scratch, err := os.MkdirTemp("", "aipress-import-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
		fmt.Fprintf(cmd.ErrOrStderr(), "repacking %s with %s\n", filepath.Base(archive), filepath.Base(sqlFile))
		if archive, err = repackWithDump(cmd.Context(), archive, sqlFile, req.Prefix, scratch); err != nil {
			return err
		}
	}
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	fmt.Fprintf(cmd.ErrOrStderr(), "sending %s (%s)\n", filepath.Base(archive), humanBytes(fi.Size()))
	var resp struct {
		Domain     string               `json:"domain"`
		Site       *site.Site           `json:"site"`
		Inspection *siteport.Inspection `json:"inspection"`
	}
	if err := c.ImportSite(ctx, req, f, fi.Size(), &resp); err != nil {
		return err
	}
	if wait {
		s, err := o.wait(ctx, cmd.ErrOrStderr(), c, resp.Domain, "importing", timeout, siteReady)
		if err != nil {
			return err
		}
		resp.Site = s
	}
	if o.output != "table" {
		return printData(cmd.OutOrStdout(), o.output, resp)
	}
	in := resp.Inspection
	fmt.Fprintf(cmd.OutOrStdout(), "imported %s → %s (%s): prefix %s, %d tables, WordPress %s, plugins %s, themes %s\n",
		dash(in.OldURL), resp.Domain, resp.Site.Status.Phase, in.TablePrefix, len(in.Tables), dash(in.WordPressVersion),
		dash(strings.Join(in.Plugins, ", ")), dash(strings.Join(in.Themes, ", ")))
	for _, w := range in.Warnings {
		fmt.Fprintf(cmd.OutOrStdout(), "warning: %s\n", w)
	}
	return nil
}

// wxrCounts says what a WXR file holds.
func wxrCounts(s *wxr.Summary) string {
	terms := 0
	for _, n := range s.Terms {
		terms += n
	}
	return fmt.Sprintf("%d posts, %d pages, %d comments, %d terms, %d authors, %d attachments, %d menu items, %d other items",
		s.Items["post"], s.Items["page"], s.Comments, terms, s.Authors, s.Attachments, s.Items["nav_menu_item"],
		otherItems(s.Items))
}

func otherItems(m map[string]int) int {
	n := 0
	for k, v := range m {
		switch k {
		case "post", "page", "attachment", "nav_menu_item":
		default:
			n += v
		}
	}
	return n
}

// wxrImportOutput is what 'site import --wxr' prints.
type wxrImportOutput struct {
	Site   string       `json:"site"`
	DryRun bool         `json:"dry_run"`
	File   *wxr.Summary `json:"file"`
	Job    string       `json:"job,omitempty"`
	// Report is the job's result (the shard's WXRImportReport).
	Report json.RawMessage `json:"report,omitempty"`
}

// importWXR imports a WXR file's content into site domain: a dry run
// reads it here; else it is sent (POST /v1/sites/{name}/wxr-import) and
// the job followed.
func (o *siteOpts) importWXR(cmd *cobra.Command, file, domain string, dryRun, skip, wait bool, timeout time.Duration) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	w := cmd.OutOrStdout()
	if dryRun {
		sum, err := wxr.Scan(f, wxr.Limits{}, func(wxr.Record) error { return nil })
		if err != nil {
			return fmt.Errorf("WXR import refused: %w", err)
		}
		out := wxrImportOutput{Site: domain, DryRun: true, File: sum}
		if o.output != "table" {
			return printData(w, o.output, out)
		}
		fmt.Fprintf(w, "file        %s (%s, WXR %s)\n", file, humanBytes(sum.Bytes), sum.Site.WXRVersion)
		fmt.Fprintf(w, "from        %s (%s)\n", dash(sum.Site.BaseBlogURL), dash(sum.Site.Title))
		fmt.Fprintf(w, "content     %s\n", wxrCounts(sum))
		fmt.Fprintf(w, "into        %s (nothing sent: a dry run)\n", domain)
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c, err := o.connect()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	fmt.Fprintf(cmd.ErrOrStderr(), "sending %s (%s)\n", filepath.Base(file), humanBytes(fi.Size()))
	var resp struct {
		File *wxr.Summary `json:"file"`
		Job  *store.Job   `json:"job"`
	}
	if err := c.ImportWXR(ctx, apiclient.WXRImportRequest{Site: domain, SkipAttachments: skip}, f, fi.Size(), &resp); err != nil {
		return err
	}
	if resp.Job == nil {
		return errors.New("the API answered without a job")
	}
	if !wait {
		out := wxrImportOutput{Site: domain, File: resp.File, Job: resp.Job.ID}
		if o.output != "table" {
			return printData(w, o.output, out)
		}
		fmt.Fprintf(w, "importing %s into %s: job %s (aipress job get %s)\n", wxrCounts(resp.File), domain, resp.Job.ID, resp.Job.ID)
		return nil
	}
	j, err := o.waitJob(ctx, cmd.ErrOrStderr(), c, resp.Job, timeout)
	if err != nil {
		return err
	}
	out := wxrImportOutput{Site: domain, File: resp.File, Job: j.ID, Report: j.Result}
	if o.output != "table" {
		return printData(w, o.output, out)
	}
	var rep struct {
		Imported struct {
			UsersCreated  int            `json:"users_created"`
			Terms         int            `json:"terms"`
			PostsByType   map[string]int `json:"posts_by_type"`
			Skipped       int            `json:"skipped"`
			Comments      int            `json:"comments"`
			Attachments   int            `json:"attachments"`
			Failures      []string       `json:"failures"`
			FailuresTotal int            `json:"failures_total"`
		} `json:"imported"`
		FetchFailures []wxr.FetchFailure `json:"fetch_failures"`
	}
	if err := json.Unmarshal(j.Result, &rep); err != nil {
		return fmt.Errorf("WXR import job %s: result: %w", j.ID, err)
	}
	im := rep.Imported
	fmt.Fprintf(w, "imported into %s: %d posts, %d pages, %d comments, %d new terms, %d new users, %d attachments, %d menu items; %d skipped (there already)\n",
		domain, im.PostsByType["post"], im.PostsByType["page"], im.Comments, im.Terms, im.UsersCreated, im.Attachments, im.PostsByType["nav_menu_item"], im.Skipped)
	for _, ff := range rep.FetchFailures {
		fmt.Fprintf(w, "not fetched: attachment %d %s: %s\n", ff.Item, ff.URL, ff.Reason)
	}
	for _, msg := range im.Failures {
		fmt.Fprintf(w, "failed: %s\n", msg)
	}
	if im.FailuresTotal > len(im.Failures) {
		fmt.Fprintf(w, "… and %d more failures (-o json has the first %d)\n", im.FailuresTotal-len(im.Failures), len(im.Failures))
	}
	return nil
}

// repackWithDump unpacks archive into scratch (siteport.Inspect, the
// checks of a dry run, with the dump sqlFile given apart) and writes a
// tar.gz of what an import takes from it — its wp-content, the docroot's
// wp-includes/version.php (the WordPress version), and the dump as
// database.sql (.sql.gz when it is compressed) — whose path it returns.
// Other dumps of the archive are left out: --sql names the one.
func repackWithDump(ctx context.Context, archive, sqlFile, prefix, scratch string) (string, error) {
	unpacked := filepath.Join(scratch, "unpacked")
	if err := os.Mkdir(unpacked, 0o700); err != nil {
		return "", err
	}
	in, err := siteport.Inspect(ctx, siteport.InspectRequest{Archive: archive, SQL: sqlFile, Prefix: prefix, Scratch: unpacked})
	if err != nil {
		return "", fmt.Errorf("import refused: %w", err)
	}
	out := filepath.Join(scratch, "import.tar.gz")
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	add := func(name, path string, fi fs.FileInfo) error {
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = name, 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		r, err := os.Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(tw, r)
		return err
	}
	content := filepath.Join(unpacked, in.Layout.WPContent)
	err = filepath.Walk(content, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil // the unpacked tree holds only these
		}
		rel, _ := filepath.Rel(content, p)
		name := "wp-content/" + filepath.ToSlash(rel)
		if fi.IsDir() {
			name += "/"
		}
		return add(strings.TrimSuffix(name, "./"), p, fi)
	})
	if err != nil {
		return "", fmt.Errorf("repack: %w", err)
	}
	if in.Layout.Docroot != "" {
		v := filepath.Join(unpacked, in.Layout.Docroot, "wp-includes", "version.php")
		if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
			if err := add("wp-includes/version.php", v, fi); err != nil {
				return "", fmt.Errorf("repack: %w", err)
			}
		}
	}
	fi, err := os.Stat(sqlFile)
	if err != nil {
		return "", err
	}
	name := "database.sql"
	if gzipped(sqlFile) {
		name += ".gz"
	}
	if err := add(name, sqlFile, fi); err != nil {
		return "", fmt.Errorf("repack: %w", err)
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return out, f.Close()
}

// gzipped reports whether the file starts with gzip's magic bytes.
func gzipped(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2)
	n, _ := io.ReadFull(f, head)
	return n == 2 && head[0] == 0x1f && head[1] == 0x8b
}
