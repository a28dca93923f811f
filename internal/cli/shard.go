package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/store"
)

// clientCmd adds the connection and output flags every API command has.
func clientCmd(cmd *cobra.Command, o *siteOpts) *cobra.Command {
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.client.url, "url", "", "API base URL, e.g. http://127.0.0.1:7070 (env "+EnvURL+")")
	pf.StringVar(&o.client.token, "token", "", "API token (env "+EnvToken+")")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func newShardCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "shard",
		Short: "List, inspect, cordon, drain and delete shards; create shard agent tokens",
		Long: `Manage the shards (cells) that host sites.

A shard registers itself through its agent, with a token made by
'aipress shard token create'. Cordoning a shard stops new sites landing on it;
draining it also has the control plane move its sites away; a shard that
holds no sites can be deleted.`,
		Example: `  aipress shard list
  aipress shard get shard-1 -o yaml
  aipress shard drain shard-1
  aipress shard token create shard-2
  aipress shard recover shard-3 --to shard-4 --wait`,
	}, o)
	cmd.AddCommand(newShardListCmd(o), newShardGetCmd(o),
		newShardUpdateCmd(o, "cordon", "Stop placing new sites on a shard (its sites stay)"),
		newShardUpdateCmd(o, "uncordon", "Let a shard take new sites again (also stops a drain)"),
		newShardUpdateCmd(o, "drain", "Cordon a shard and move its sites away"),
		newShardDeleteCmd(o), newShardTokenCmd(o), newShardRecoverCmd(o))
	return cmd
}

func newShardListCmd(o *siteOpts) *cobra.Command {
	var (
		limit int
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List shards",
		Long: `List shards ordered by name. SITES is what the shard's agent last reported,
CAPACITY its registered capacity (0 registers the default, 50).`,
		Example: `  aipress shard list
  aipress shard list --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			out := &apiclient.ShardList{Items: []store.Shard{}}
			opts := apiclient.ListOptions{Limit: limit}
			for {
				page, err := c.ListShards(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out.Items = append(out.Items, page.Items...)
				out.Continue = page.Continue
				if !all || page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, out)
			}
			if err := printShardTable(w, o.d.now(), out.Items); err != nil {
				return err
			}
			if out.Continue != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more shards exist; use --all to list them all\n")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "shards per page (1-1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow continue tokens and list every shard")
	return cmd
}

// printShardTable prints shards with columns NAME PHASE SITES/CAPACITY
// CORDONED DRAINING LABELS LAST-HEARTBEAT.
func printShardTable(w io.Writer, now time.Time, shards []store.Shard) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSITES/CAPACITY\tCORDONED\tDRAINING\tLABELS\tLAST-HEARTBEAT")
	for _, sh := range shards {
		capacity := sh.Capacity
		if capacity == 0 {
			capacity = placement.DefaultCapacity
		}
		beat := "never"
		if sh.LastHeartbeat != nil {
			beat = age(now, *sh.LastHeartbeat) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", sh.Name, dash(string(sh.Phase)), sh.Usage.Sites, capacity,
			yesNo(sh.Cordoned), yesNo(sh.Draining), formatLabels(sh.Labels), beat)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func newShardGetCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one shard (with the number of sites the control plane places on it)",
		Example: `  aipress shard get shard-1
  aipress shard get shard-1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			sh, err := c.GetShard(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, sh)
			}
			if sh.Sites != nil {
				sh.Usage.Sites = *sh.Sites
			}
			return printShardTable(cmd.OutOrStdout(), o.d.now(), []store.Shard{sh.Shard})
		},
	}
}

func newShardUpdateCmd(o *siteOpts, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Long:    short + ". Idempotent.",
		Example: fmt.Sprintf("  aipress shard %s shard-1\n  aipress shard %s shard-1 -o json", verb, verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			call := map[string]func(*apiclient.Client) (*store.Shard, error){
				"cordon":   func(c *apiclient.Client) (*store.Shard, error) { return c.CordonShard(cmd.Context(), args[0]) },
				"uncordon": func(c *apiclient.Client) (*store.Shard, error) { return c.UncordonShard(cmd.Context(), args[0]) },
				"drain":    func(c *apiclient.Client) (*store.Shard, error) { return c.DrainShard(cmd.Context(), args[0]) },
			}[verb]
			sh, err := call(c)
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, sh)
			}
			return printShardTable(cmd.OutOrStdout(), o.d.now(), []store.Shard{*sh})
		},
	}
}

func newShardDeleteCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete the record of a shard that holds no sites",
		Long: `Delete a shard's record. The shard must hold no sites (drain it first and
wait until 'aipress shard get' shows no sites). Its agent's token stays valid
until deleted with 'aipress token delete'.`,
		Example: `  aipress shard drain shard-1
  aipress shard delete shard-1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if err := c.DeleteShard(cmd.Context(), args[0]); err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, map[string]string{"deleted": args[0]})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "shard %s deleted\n", args[0])
			return err
		},
	}
}

func newShardTokenCmd(o *siteOpts) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create tokens for shard agents"}
	cmd.AddCommand(newTokenCreateCmd(o, store.RoleShard, `  aipress shard token create shard-1
  aipress shard token create shard-1 -o json`))
	return cmd
}

func newEdgeCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "edge",
		Short: "Create tokens for edges",
		Long:  `An edge watches the routing table (GET /v1/routes) with a token of role edge.`,
	}, o)
	token := &cobra.Command{Use: "token", Short: "Create tokens for edges"}
	token.AddCommand(newTokenCreateCmd(o, store.RoleEdge, `  aipress edge token create edge-eu-1
  aipress edge token create edge-eu-1 -o json`))
	cmd.AddCommand(token)
	return cmd
}

func newTokenCreateCmd(o *siteOpts, role store.Role, example string) *cobra.Command {
	what := map[store.Role]string{
		store.RoleShard: "a shard agent's token, bound to the shard NAME (it may act only for that shard)",
		store.RoleEdge:  "an edge's token named NAME (it may only watch the routing table)",
	}[role]
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create " + what,
		Long: "Create " + what + `.
The secret is printed once, here; only its SHA-256 is stored.`,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			req := apiclient.CreateTokenRequest{Name: args[0], Role: role}
			if role == store.RoleShard {
				req.Subject = args[0]
			}
			resp, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, resp)
			}
			_, err = fmt.Fprintf(w, `Token %s (role %s) created.
Token: %s
The token is shown only once; store it somewhere safe.
`, resp.ID, resp.Role, resp.Secret)
			return err
		},
	}
}

func newTokenCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "token",
		Short: "Create, list, rotate and revoke API tokens",
		Long: `API tokens for programs. A token never carries more than its creator
may do: with --org, an organisation role (owner, developer, viewer,
billing) at most yours there; without, a platform role you hold. A
user's token dies with the user's rights. Shard and edge tokens:
'aipress shard token create', 'aipress edge token create'.`,
		Example: `  aipress token create ci --org acme --role developer --expires 90d
  aipress token list
  aipress token rotate org-0123456789ab --overlap 1h
  aipress token revoke org-0123456789ab`,
	}, o)
	var (
		role, org string
		expires   string
	)
	create := &cobra.Command{
		Use:   "create NAME --role ROLE [--org ORG] [--expires DURATION]",
		Short: "Create a token; its secret is printed once",
		Example: `  aipress token create deploy --org acme --role developer
  aipress token create dashboards --role viewer --expires 30d -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := apiclient.CreateTokenRequest{Name: args[0], Role: store.Role(role), Org: org}
			if expires != "" {
				d, err := parseDays(expires)
				if err != nil || d <= 0 {
					return fmt.Errorf("--expires %q: want a positive duration like 90d, 12h or 30m", expires)
				}
				req.ExpiresInSeconds = int64(d / time.Second)
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			resp, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printNewToken(cmd, o, resp, "created")
		},
	}
	create.Flags().StringVar(&role, "role", "", "owner, developer, viewer or billing with --org; else admin, operator, support, viewer or user")
	create.Flags().StringVar(&org, "org", "", "scope the token to this organisation")
	create.Flags().StringVar(&expires, "expires", "", "lifetime (e.g. 90d, 12h); default: no expiry")
	_ = create.MarkFlagRequired("role")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the tokens you may manage (never their secrets)",
		Example: "  aipress token list\n  aipress token list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, toks)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tROLE\tORG\tSUBJECT\tEXPIRES\tLAST USED\tAGE")
			now := o.d.now()
			for _, t := range toks.Items {
				exp, used := "-", "never"
				if t.ExpiresAt != nil {
					exp = t.ExpiresAt.UTC().Format(time.RFC3339)
				}
				if t.LastUsedAt != nil {
					used = age(now, *t.LastUsedAt) + " ago from " + dash(t.LastUsedIP)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, dash(t.Prefix), t.Role, dash(t.Org),
					dash(t.Subject), exp, used, age(now, t.CreatedAt))
			}
			return tw.Flush()
		},
	}
	revoke := func(use string, aliases ...string) *cobra.Command {
		return &cobra.Command{
			Use:     use + " ID",
			Aliases: aliases,
			Short:   "Revoke a token (it stops working at once)",
			Example: "  aipress token " + use + " org-0123456789ab",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := o.connect()
				if err != nil {
					return err
				}
				if err := c.DeleteToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				if o.output != "table" {
					return printData(cmd.OutOrStdout(), o.output, map[string]string{"deleted": args[0]})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
				return err
			},
		}
	}
	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate ID [--overlap DURATION]",
		Short: "Give a token a new secret; the old one works for the overlap window",
		Long: `Create a new secret for the token (same name, role, scope and lifetime)
and let the old one work for --overlap (default 24h), time to move every
program to the new secret. The new secret is printed once.`,
		Example: "  aipress token rotate org-0123456789ab\n  aipress token rotate org-0123456789ab --overlap 1h -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			resp, err := c.RotateToken(cmd.Context(), args[0], overlap)
			if err != nil {
				return err
			}
			return printNewToken(cmd, o, resp, "created to replace "+args[0])
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the old secret keeps working (default 24h)")
	cmd.AddCommand(create, list, revoke("revoke"), revoke("delete"), rotate)
	return cmd
}

// printNewToken prints a token and its secret, shown only this once.
func printNewToken(cmd *cobra.Command, o *siteOpts, resp *apiclient.CreateTokenResponse, what string) error {
	w := cmd.OutOrStdout()
	if o.output != "table" {
		return printData(w, o.output, resp)
	}
	scope := ""
	if resp.Org != "" {
		scope = " in organisation " + resp.Org
	}
	_, err := fmt.Fprintf(w, `Token %s (role %s%s) %s.
Token: %s
The token is shown only once; store it somewhere safe.
`, resp.ID, resp.Role, scope, what, resp.Secret)
	return err
}
