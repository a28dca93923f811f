package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/gitsync"
)

// newGitCmd is `aipress site git` (kind site) or `aipress org git` (kind
// org).
func newGitCmd(o *siteOpts, kind string) *cobra.Command {
	what, arg := "a site", "DOMAIN"
	example := `  aipress site git set blog.example.com --url https://github.com/acme/sites.git --path sites/blog.yaml
  aipress site git show blog.example.com
  aipress site git sync blog.example.com
  aipress site git unset blog.example.com`
	if kind == gitsync.KindOrg {
		what, arg = "an organisation", "ORG"
		example = `  aipress org git credential set acme deploy --username bot < token.txt
  aipress org git set acme --url https://github.com/acme/sites.git --path sites --credentials-secret deploy
  aipress org git show acme -o json
  aipress org git sync acme
  aipress org git unset acme`
	}
	cmd := &cobra.Command{
		Use:   "git",
		Short: "Sync " + what + " from a git repository (set, show, sync, unset)",
		Long: `Keep ` + what + ` in step with a git repository: the control plane polls the
branch (every --interval, and when the repository's webhook or 'sync' asks),
and applies each new commit in order, as 'aipress apply -f' would (validated
first). ` + map[string]string{
			gitsync.KindSite: `The site's file is --path (default site.yaml); its metadata.name must
be the site.`,
			gitsync.KindOrg: `Every *.yaml and *.yml file in the directory --path (default the
repository's root) is one of the organisation's sites; a file naming a site
that does not exist creates it; removing a file does not delete the site.`,
		}[kind] + `

A commit that fails stops the sync there: 'show' prints the commit, the
file's line and column and the commits waiting; the next commit pushed (a
fix) is applied. 'show' also prints drift: what the sites run or store that
differs from their files. Changes are audited with channel git and the
commit as their source.

A private repository needs a credential of the organisation, stored with
'aipress org git credential set' and named with --credentials-secret.`,
		Example: example,
	}
	cmd.AddCommand(newGitSetCmd(o, kind, arg), newGitShowCmd(o, kind, arg), newGitSyncCmd(o, kind, arg), newGitUnsetCmd(o, kind, arg))
	if kind == gitsync.KindOrg {
		cmd.AddCommand(newGitCredentialCmd(o))
	}
	return cmd
}

func newGitSetCmd(o *siteOpts, kind, arg string) *cobra.Command {
	var url, branch, path, secret, interval string
	cmd := &cobra.Command{
		Use:   "set " + arg + " --url URL [--branch BRANCH] [--path PATH] [--credentials-secret NAME] [--interval 5m]",
		Short: "Set or change where the git sync reads from",
		Long: `Set the repository, branch, path, credential and polling interval. Flags
not given keep their current values (a new configuration: branch main,
path ` + map[string]string{gitsync.KindSite: "site.yaml", gitsync.KindOrg: "the root"}[kind] + `, interval 5m, no credential); --credentials-secret ""
drops the credential. A sync starts at once.

A new configuration gets a webhook: its URL and secret are printed once,
here. Give them to the git host as a push webhook (content type
application/json; GitHub, Gitea and Forgejo sign with the secret).`,
		Example: map[string]string{
			gitsync.KindSite: `  aipress site git set blog.example.com --url https://github.com/acme/blog.git
  aipress site git set blog.example.com --branch production --interval 1m`,
			gitsync.KindOrg: `  aipress org git set acme --url https://github.com/acme/sites.git --path sites
  aipress org git set acme --credentials-secret deploy`,
		}[kind],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t := gitsync.Target{Kind: kind, Name: args[0]}
			var cfg gitsync.Config
			cur, err := c.GetGit(ctx, t)
			switch {
			case err == nil:
				cfg = cur.Config
			case apiclient.IsNotFound(err) && cmd.Flags().Changed("url"):
			case apiclient.IsNotFound(err):
				return fmt.Errorf("%s has no git sync yet: give --url", t)
			default:
				return err
			}
			f := cmd.Flags()
			for _, x := range []struct {
				flag string
				dst  *string
				v    string
			}{{"url", &cfg.URL, url}, {"branch", &cfg.Branch, branch}, {"path", &cfg.Path, path}, {"interval", &cfg.Interval, interval}} {
				if f.Changed(x.flag) {
					*x.dst = x.v
				}
			}
			if f.Changed("credentials-secret") {
				cfg.Credentials = nil
				if secret != "" {
					cfg.Credentials = &gitsync.CredentialsRef{Secret: secret}
				}
			}
			v, err := c.PutGit(ctx, t, cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, v)
			}
			printGit(w, c.BaseURL, v)
			if v.Webhook.Secret != "" {
				_, err = fmt.Fprintf(w, "\nwebhook URL:    %s%s\nwebhook secret: %s\n(shown once: store it in the git host's webhook settings now)\n",
					strings.TrimRight(c.BaseURL, "/"), v.Webhook.Path, v.Webhook.Secret)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "the repository (https:// to a public address; http:// and private addresses only if the server runs with --allow-private-fetch)")
	f.StringVar(&branch, "branch", "", "the branch to follow (default main)")
	f.StringVar(&path, "path", "", map[string]string{gitsync.KindSite: "the site file in the repository (default site.yaml)",
		gitsync.KindOrg: "the directory of the site files (default the repository's root)"}[kind])
	f.StringVar(&secret, "credentials-secret", "", "the name of the organisation's git credential to fetch with ('' for none)")
	f.StringVar(&interval, "interval", "", "how often to poll, 10s to 24h (default 5m)")
	return cmd
}

func newGitShowCmd(o *siteOpts, kind, arg string) *cobra.Command {
	return &cobra.Command{
		Use:   "show " + arg,
		Short: "Show the git sync's configuration and status (last applied commit, last error, pending commits, drift)",
		Example: map[string]string{gitsync.KindSite: "  aipress site git show blog.example.com\n  aipress site git show blog.example.com -o json",
			gitsync.KindOrg: "  aipress org git show acme\n  aipress org git show acme -o yaml"}[kind],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			v, err := c.GetGit(cmd.Context(), gitsync.Target{Kind: kind, Name: args[0]})
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, v)
			}
			printGit(cmd.OutOrStdout(), c.BaseURL, v)
			return nil
		},
	}
}

func newGitSyncCmd(o *siteOpts, kind, arg string) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync " + arg,
		Short: "Sync from git now",
		Long: `Ask the control plane to fetch and apply new commits now. With --wait (the
default) the command waits until that sync has run and prints the status;
it fails when the sync stopped at an error.`,
		Example: map[string]string{gitsync.KindSite: "  aipress site git sync blog.example.com\n  aipress site git sync blog.example.com --wait=false",
			gitsync.KindOrg: "  aipress org git sync acme"}[kind],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t := gitsync.Target{Kind: kind, Name: args[0]}
			v, err := c.SyncGit(ctx, t)
			if err != nil {
				return err
			}
			if wait {
				// The sync that answers the request starts at or after it.
				asked := v.SyncRequestedAt
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				for v.Status.LastSyncAt == nil || (asked != nil && v.Status.LastSyncAt.Before(*asked)) {
					tm := time.NewTimer(o.d.poll)
					select {
					case <-wctx.Done():
						tm.Stop()
						if errors.Is(wctx.Err(), context.DeadlineExceeded) {
							return fmt.Errorf("%s: no sync within %s; it runs in the background (is the control plane's leader up?)", t, timeout)
						}
						return wctx.Err()
					case <-tm.C:
					}
					if v, err = c.GetGit(wctx, t); err != nil {
						return err
					}
				}
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				if err := printData(w, o.output, v); err != nil {
					return err
				}
			} else {
				printGit(w, c.BaseURL, v)
			}
			if wait && v.Status.LastError != nil {
				return errors.New("the sync stopped at an error (see above)")
			}
			return nil
		},
	}
	waitFlags(cmd, &wait, &timeout, "the sync has run")
	return cmd
}

func newGitUnsetCmd(o *siteOpts, kind, arg string) *cobra.Command {
	return &cobra.Command{
		Use:     "unset " + arg,
		Short:   "Stop syncing from git (the sites stay as they are; the webhook stops working)",
		Example: map[string]string{gitsync.KindSite: "  aipress site git unset blog.example.com", gitsync.KindOrg: "  aipress org git unset acme"}[kind],
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			t := gitsync.Target{Kind: kind, Name: args[0]}
			if err := c.DeleteGit(cmd.Context(), t); err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, map[string]any{"unset": t})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s no longer syncs from git\n", t)
			return err
		},
	}
}

func newGitCredentialCmd(o *siteOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credential",
		Short: "Store, list and delete the organisation's git credentials",
		Long: `Git credentials are HTTP basic auth (a user name and a password or access
token) that git sync configurations of the organisation name with
--credentials-secret. They are sealed at rest and never shown again.`,
		Example: `  aipress org git credential set acme deploy --username bot < token.txt
  aipress org git credential list acme
  aipress org git credential delete acme deploy`,
	}
	var username string
	set := &cobra.Command{
		Use:   "set ORG NAME --username USER < PASSWORD",
		Short: "Store (or replace) a credential; the password or token is read from standard input",
		Example: `  aipress org git credential set acme deploy --username bot < token.txt
  printf %s "$TOKEN" | aipress org git credential set acme deploy --username x-access-token`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 8192))
			if err != nil {
				return fmt.Errorf("read the password from standard input: %w", err)
			}
			pw := strings.TrimRight(string(b), "\r\n")
			if pw == "" {
				return errors.New("give the password or token on standard input")
			}
			info, err := c.PutGitCredential(cmd.Context(), args[0], args[1], gitsync.Credential{Username: username, Password: pw})
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, info)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "stored git credential %s of %s (user %q)\n", info.Name, args[0], info.Username)
			return err
		},
	}
	set.Flags().StringVar(&username, "username", "", "the user name (with a token, what the host expects: e.g. x-access-token, oauth2)")
	list := &cobra.Command{
		Use:     "list ORG",
		Short:   "List the organisation's git credentials (names and user names)",
		Example: "  aipress org git credential list acme -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			l, err := c.ListGitCredentials(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, l)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUSERNAME")
			for _, ci := range l {
				fmt.Fprintf(tw, "%s\t%s\n", ci.Name, ci.Username)
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:     "delete ORG NAME",
		Short:   "Delete a credential (configurations naming it fail to fetch)",
		Example: "  aipress org git credential delete acme deploy",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if err := c.DeleteGitCredential(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, map[string]string{"deleted": args[1]})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted git credential %s of %s\n", args[1], args[0])
			return err
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}

// printGit prints a configuration and its status for people.
func printGit(w io.Writer, baseURL string, v *gitsync.View) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("target", "%s (organisation %s)", v.Target, v.Org)
	row("repository", "%s", v.Config.URL)
	row("branch", "%s", v.Config.Branch)
	row("path", "%s", cmpOr(v.Config.Path, "(the root)"))
	cred := "(none)"
	if v.Config.Credentials != nil {
		cred = v.Config.Credentials.Secret
	}
	row("credentials", "%s", cred)
	row("interval", "%s", v.Config.Interval)
	row("webhook", "POST %s%s", strings.TrimRight(baseURL, "/"), v.Webhook.Path)
	st := v.Status
	when := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.Local().Format(time.DateTime)
	}
	row("last sync", "%s", when(st.LastSyncAt))
	if st.Head != "" {
		row("head", "%s", st.Head)
	}
	if c := st.LastApplied; c != nil {
		row("last applied", "%s %q (applied %s)", shortHash(c.Hash), c.Subject, when(c.AppliedAt))
	} else {
		row("last applied", "none")
	}
	if e := st.LastError; e != nil {
		where := e.File
		if e.Line > 0 {
			where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
		}
		// An invalid file's other problems follow, one a row.
		first, rest, _ := strings.Cut(e.Message, "\n")
		msg := first
		if e.Commit != "" {
			msg = fmt.Sprintf("commit %s %s: %s", shortHash(e.Commit), where, first)
		}
		row("error", "%s", msg)
		for _, l := range strings.Split(rest, "\n") {
			if l != "" {
				row("", "%s", l)
			}
		}
	}
	if st.PendingCount > 0 {
		row("pending", "%d commit(s)", st.PendingCount)
		for _, c := range st.Pending {
			row("", "%s %s", shortHash(c.Hash), c.Subject)
		}
	}
	if len(st.Drift) == 0 {
		row("drift", "none")
	}
	for i, d := range st.Drift {
		k := ""
		if i == 0 {
			k = "drift"
		}
		change := strings.TrimSpace(fmt.Sprintf("%s %s %s", d.Action, d.Kind, d.Name))
		if d.From != "" || d.To != "" {
			change += fmt.Sprintf(" %s → %s", d.From, d.To)
		}
		if d.Reason != "" {
			change += " (" + d.Reason + ")"
		}
		row(k, "%s: %s", d.Site, change)
	}
	if st.Notice != "" {
		row("notice", "%s", st.Notice)
	}
	_ = tw.Flush()
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
