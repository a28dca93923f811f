package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/store"
	"github.com/spf13/cobra"
)

func newSiteExportCmd(o *siteOpts) *cobra.Command {
	var (
		file    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "export DOMAIN [--file FILE]",
		Short: "Export a site to a portable archive (tar.gz)",
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
password hashes: keep it as you keep backups.`,
		Example: `  aipress site export blog.localhost
  aipress site export blog.localhost --file blog.tar.gz
  aipress site export blog.localhost --file - | tar -tzf -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			j, err := c.ExportSite(ctx, args[0])
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
				name = fmt.Sprintf("%s-%s.tar.gz", args[0], j.ID)
			}
			if name == "-" {
				w = cmd.OutOrStdout()
			} else {
				// A partial download never takes the name.
				if f, err = os.CreateTemp(filepath.Dir(name), ".export-*.tar.gz"); err != nil {
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
				Site    string `json:"site"`
				Job     string `json:"job"`
				File    string `json:"file"`
				Bytes   int64  `json:"bytes"`
				SHA256  string `json:"sha256"`
				Files   int    `json:"files"`
				DB      int64  `json:"database_bytes"`
				Version string `json:"wordpress_version,omitempty"`
			}{args[0], j.ID, name, n, got, res.Files, res.DatabaseBytes, res.WordPressVersion}
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
	cmd.Flags().StringVar(&file, "file", "", `where to write the archive (default DOMAIN-JOBID.tar.gz; "-": stdout)`)
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the export job")
	return cmd
}
