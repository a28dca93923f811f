package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
)

func newArtefactCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "artefact",
		Short: "Upload plugin, theme and core zips for your sites; list the uploads",
		Long: `Upload a plugin, theme or WordPress core as a zip archive, for the sites of
an organisation to run: a site's spec then names it by its SHA-256,

  plugins:
    - name: my-plugin
      source: {type: upload, sha256: <the sha256 printed by upload>}
      active: true

The archive is checked as every archive the platform unpacks: its size and
number of files, names that would leave its folder (zip-slip), links and
special files, exactly one root folder named after the plugin's or theme's
slug, no PHP outside it, and the plugin header (a PHP file in the folder
with "Plugin Name:") or the theme's style.css ("Theme Name:"). A refused
archive is not kept, and the message names the entry and the reason.

Uploading needs the right to change sites in the organisation (owner,
developer); listing, to read them.`,
		Example: `  aipress artefact upload my-plugin.zip
  aipress artefact upload my-theme.zip --org acme --kind theme -o json
  aipress artefact list --org acme`,
	}, o)
	var org, kind string
	upload := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a zip archive; prints its SHA-256 for a spec's source",
		Example: `  aipress artefact upload my-plugin.zip
  aipress artefact upload wordpress-6.4.zip --kind core -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			a, err := c.UploadArtefact(cmd.Context(), org, kind, f)
			if err != nil {
				return fmt.Errorf("upload %s: %w", args[0], err)
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, a)
			}
			version := a.Version
			if version == "" {
				version = "(no version)"
			}
			_, err = fmt.Fprintf(w, "uploaded %s %s %s for %s (%d bytes, %d files)\nsha256: %s\nin a spec: source: {type: upload, sha256: %s}\n",
				a.Kind, a.Name, version, a.Org, a.Size, a.Files, a.SHA256, a.SHA256)
			return err
		},
	}
	upload.Flags().StringVar(&org, "org", "", "the organisation (default: your only one)")
	upload.Flags().StringVar(&kind, "kind", "", "plugin, theme or core (default: detected from the archive)")

	var listOrg string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List an organisation's uploads",
		Example: `  aipress artefact list --org acme -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			all, err := listAll(func(cont string) ([]apiclient.ArtefactUpload, string, error) {
				l, err := c.ListArtefacts(cmd.Context(), apiclient.ArtefactListOptions{Org: listOrg, Limit: 1000, Continue: cont})
				if err != nil {
					return nil, "", err
				}
				return l.Items, l.Continue, nil
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, apiclient.ArtefactList{Items: all})
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "SHA256\tKIND\tNAME\tVERSION\tSIZE\tORG\tAGE")
			for _, a := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.SHA256, a.Kind, a.Name, dash(a.Version), a.Size, a.Org, age(o.d.now(), a.UploadedAt))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "the organisation (default: your only one)")
	cmd.AddCommand(upload, list)
	return cmd
}
