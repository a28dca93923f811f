package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/store"
)

// aipress org, invite and user: organisations, their members and
// invitations, and users.

// brandingFlags are the white-label flags of org create and update.
type brandingFlags struct {
	product, logo, primary, accent, support string
}

func (b *brandingFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&b.product, "product-name", "", "white-label product name shown to the organisation's users")
	f.StringVar(&b.logo, "logo-url", "", "white-label logo (an https URL)")
	f.StringVar(&b.primary, "primary-color", "", "white-label primary colour (#rrggbb)")
	f.StringVar(&b.accent, "accent-color", "", "white-label accent colour (#rrggbb)")
	f.StringVar(&b.support, "support-email", "", "white-label support e-mail address")
}

// apply sets the branding fields whose flags were given on b0 and reports
// whether any was.
func (b *brandingFlags) apply(cmd *cobra.Command, b0 *store.Branding) bool {
	set := false
	for _, x := range []struct {
		flag string
		dst  *string
		v    string
	}{{"product-name", &b0.ProductName, b.product}, {"logo-url", &b0.LogoURL, b.logo},
		{"primary-color", &b0.PrimaryColor, b.primary}, {"accent-color", &b0.AccentColor, b.accent},
		{"support-email", &b0.SupportEmail, b.support}} {
		if cmd.Flags().Changed(x.flag) {
			*x.dst, set = x.v, true
		}
	}
	return set
}

func newOrgCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "org",
		Short: "List, inspect, create, change and delete organisations; manage their members",
		Long: `Organisations own sites and have members with roles: owner (everything
in the organisation), developer (sites, backups, cache, code), viewer
(read) and billing (the organisation, its plan and usage).

Partners (resellers) are organisations of kind partner that own customer
organisations: their owners create organisations under them and act in
them; they see nothing else. Platform admins create any organisation.

People join an organisation by invitation ('aipress invite create').`,
		Example: `  aipress org list
  aipress org get acme
  aipress org create acme --display-name "ACME Inc." --plan pro
  aipress org update acme --plan business --primary-color '#0055aa'
  aipress org member list acme
  aipress org member set acme dev@acme.example --role developer
  aipress org delete acme`,
	}, o)
	cmd.AddCommand(newOrgListCmd(o), newOrgGetCmd(o), newOrgCreateCmd(o), newOrgUpdateCmd(o), newOrgDeleteCmd(o),
		newOrgMemberCmd(o), newGitCmd(o, gitsync.KindOrg))
	return cmd
}

func newOrgListCmd(o *siteOpts) *cobra.Command {
	var partner string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the organisations you may see",
		Example: `  aipress org list
  aipress org list --partner resell -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			all, err := listAll(func(cont string) ([]store.Org, string, error) {
				l, err := c.ListOrgs(cmd.Context(), apiclient.OrgListOptions{Partner: partner, Limit: 1000, Continue: cont})
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
				return printData(w, o.output, apiclient.OrgList{Items: all})
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tPARTNER\tPLAN\tDISPLAY NAME\tAGE")
			for _, g := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.Kind, dash(g.Partner), dash(g.Plan), dash(g.DisplayName),
					age(o.d.now(), g.CreatedAt))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&partner, "partner", "", "only this partner's organisations")
	return cmd
}

// limitText formats a used/limit pair.
func limitText(used, limit int) string {
	if limit == 0 {
		return fmt.Sprintf("%d (no limit)", used)
	}
	return fmt.Sprintf("%d of %d", used, limit)
}

func printOrg(w io.Writer, o *siteOpts, v *apiclient.OrgView) error {
	if o.output != "table" {
		return printData(w, o.output, v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Name", v.Name)
	row("Display name", v.DisplayName)
	row("Kind", string(v.Kind))
	row("Partner", v.Partner)
	row("Plan", v.Plan)
	q := v.Quotas
	row("Sites", limitText(q.Sites.Used, q.Sites.Limit))
	if v.Orgs != nil {
		row("Organisations", fmt.Sprint(*v.Orgs))
	}
	bw := fmt.Sprintf("%.3f GB", q.Bandwidth.UsedGB)
	if q.Bandwidth.LimitGB > 0 {
		bw += fmt.Sprintf(" of %g GB", q.Bandwidth.LimitGB)
	}
	row("Bandwidth "+q.Bandwidth.Month, bw)
	b := v.Branding
	row("Product name", b.ProductName)
	row("Logo URL", b.LogoURL)
	row("Primary colour", b.PrimaryColor)
	row("Accent colour", b.AccentColor)
	row("Support e-mail", b.SupportEmail)
	if v.Suspended {
		row("Suspended", "yes")
	}
	row("Created", v.CreatedAt.UTC().Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(q.PerSite) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SITE\tPLAN\tDISK MB\tBANDWIDTH GB")
	for _, s := range q.PerSite {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Site, s.Plan, limitText(s.DiskMB.Used, s.DiskMB.Limit),
			strings.TrimSuffix(limitTextGB(s.Bandwidth.UsedGB, s.Bandwidth.LimitGB), " GB"))
	}
	return tw.Flush()
}

// limitTextGB formats a used/limit pair of GB.
func limitTextGB(used, limit float64) string {
	if limit == 0 {
		return fmt.Sprintf("%.3f (no limit)", used)
	}
	return fmt.Sprintf("%.3f of %g", used, limit)
}

func newOrgGetCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an organisation: plan, quotas and usage, branding",
		Example: `  aipress org get acme
  aipress org get acme -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			v, err := c.GetOrg(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printOrg(cmd.OutOrStdout(), o, v)
		},
	}
}

func newOrgCreateCmd(o *siteOpts) *cobra.Command {
	var (
		req  apiclient.CreateOrgRequest
		kind string
		b    brandingFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--display-name TEXT] [--plan PLAN] [--partner PARTNER] [--kind customer|partner]",
		Short: "Create an organisation",
		Long: `Create an organisation. NAME is 1-63 lowercase letters, digits or '-',
starting with a letter, and never changes.

Platform admins create any organisation, partners (--kind partner) too.
Owners of a partner organisation create customer organisations under it
(--partner is filled in when they own one partner).`,
		Example: `  aipress org create acme --display-name "ACME Inc." --plan pro
  aipress org create resell --kind partner --product-name "Resell Hosting"
  aipress org create client1 --partner resell -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name, req.Kind = args[0], store.OrgKind(kind)
			b.apply(cmd, &req.Branding)
			c, err := o.connect()
			if err != nil {
				return err
			}
			g, err := c.CreateOrg(cmd.Context(), req)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, g)
			}
			under := ""
			if g.Partner != "" {
				under = " under partner " + g.Partner
			}
			_, err = fmt.Fprintf(w, "organisation %s (%s, plan %s) created%s\n", g.Name, g.Kind, g.Plan, under)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.DisplayName, "display-name", "", "the name people read")
	f.StringVar(&req.Plan, "plan", "", "the organisation's plan (default: the platform's default plan)")
	f.StringVar(&req.Partner, "partner", "", "the partner organisation that owns it")
	f.StringVar(&kind, "kind", "", "customer (default) or partner (platform admins)")
	b.add(cmd)
	return cmd
}

func newOrgUpdateCmd(o *siteOpts) *cobra.Command {
	var (
		display, plan, partner string
		b                      brandingFlags
	)
	cmd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change an organisation's display name, plan, branding or partner",
		Long: `Change what the flags name; the rest stays. Owners change the display
name and branding, owners and billing members the plan, platform admins
the partner (--partner "" for none).`,
		Example: `  aipress org update acme --plan business
  aipress org update acme --display-name "ACME Inc." --primary-color '#0055aa' --logo-url https://acme.example/logo.png
  aipress org update client1 --partner other-reseller`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req apiclient.UpdateOrgRequest
			fl := cmd.Flags()
			if fl.Changed("display-name") {
				req.DisplayName = &display
			}
			if fl.Changed("plan") {
				req.Plan = &plan
			}
			if fl.Changed("partner") {
				req.Partner = &partner
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			var br store.Branding
			if b.apply(cmd, &br) {
				// The API replaces the branding: start from the current one.
				cur, err := c.GetOrg(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				br = cur.Branding
				b.apply(cmd, &br)
				req.Branding = &br
			}
			if req == (apiclient.UpdateOrgRequest{}) {
				return fmt.Errorf("nothing to change: give --display-name, --plan, --partner or a branding flag")
			}
			v, err := c.UpdateOrg(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printOrg(cmd.OutOrStdout(), o, v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&display, "display-name", "", "the name people read")
	f.StringVar(&plan, "plan", "", "the organisation's plan")
	f.StringVar(&partner, "partner", "", `the partner that owns it ("" for none; platform admins)`)
	b.add(cmd)
	return cmd
}

func newOrgDeleteCmd(o *siteOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an organisation (with its members, invitations and tokens)",
		Long: `Delete an organisation. It must own no sites (delete them first) and, a
partner, no organisations. Its memberships, invitations and tokens go
with it.`,
		Example: "  aipress org delete acme",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if err := c.DeleteOrg(cmd.Context(), args[0]); err != nil {
				return err
			}
			return printDone(cmd, o, "organisation "+args[0]+" deleted", map[string]string{"deleted": args[0]})
		},
	}
}

// printDone prints what a command without a body did.
func printDone(cmd *cobra.Command, o *siteOpts, msg string, data any) error {
	if o.output != "table" {
		return printData(cmd.OutOrStdout(), o.output, data)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), msg)
	return err
}

// resolveUser turns USER (an id, or an e-mail address) into a user id:
// an address is looked up among org's members, then (platform roles)
// among all users.
func resolveUser(ctx context.Context, c *apiclient.Client, org, user string) (string, error) {
	if !strings.Contains(user, "@") {
		return user, nil
	}
	email := strings.ToLower(user)
	if org != "" {
		ms, err := c.ListMembers(ctx, org)
		if err != nil {
			return "", err
		}
		for _, m := range ms.Items {
			if m.Email == email {
				return m.UserID, nil
			}
		}
	}
	cont := ""
	for {
		l, err := c.ListUsers(ctx, apiclient.UserListOptions{Limit: 1000, Continue: cont})
		if err != nil {
			if org != "" {
				return "", fmt.Errorf("%s is not a member of %s (invite them: aipress invite create %s --org %s --role ROLE)", user, org, user, org)
			}
			return "", fmt.Errorf("find user %s: %w (give the user's id)", user, err)
		}
		for _, u := range l.Items {
			if u.Email == email {
				return u.ID, nil
			}
		}
		if cont = l.Continue; cont == "" {
			return "", fmt.Errorf("no user has the e-mail address %s", user)
		}
	}
}

func newOrgMemberCmd(o *siteOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List an organisation's members, set their roles, remove them",
		Long: `Members of an organisation and their roles. USER is a user id (usr-…) or
an e-mail address. Owners change roles and remove members; any member
may remove itself; an organisation always keeps an owner. New people join
by invitation ('aipress invite create'); platform admins may also add an
existing user with 'member set'.`,
		Example: `  aipress org member list acme
  aipress org member set acme dev@acme.example --role owner
  aipress org member remove acme usr-0123456789abcdef`,
	}
	list := &cobra.Command{
		Use:     "list ORG",
		Short:   "List the organisation's members",
		Example: "  aipress org member list acme\n  aipress org member list acme -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			ms, err := c.ListMembers(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, ms)
			}
			items := slices.Clone(ms.Items)
			slices.SortFunc(items, func(a, b apiclient.Member) int { return strings.Compare(a.Email, b.Email) })
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "USER\tEMAIL\tNAME\tROLE\tSINCE")
			for _, m := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.UserID, m.Email, dash(m.Name), m.Role, age(o.d.now(), m.CreatedAt))
			}
			return tw.Flush()
		},
	}
	var role string
	set := &cobra.Command{
		Use:     "set ORG USER --role ROLE",
		Short:   "Set a member's role (owner, developer, viewer or billing)",
		Example: "  aipress org member set acme dev@acme.example --role developer",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), c, args[0], args[1])
			if err != nil {
				return err
			}
			m, err := c.SetMember(cmd.Context(), args[0], id, store.OrgRole(role))
			if err != nil {
				return err
			}
			return printDone(cmd, o, fmt.Sprintf("%s is %s of %s", args[1], m.Role, m.Org), m)
		},
	}
	set.Flags().StringVar(&role, "role", "", "owner, developer, viewer or billing")
	_ = set.MarkFlagRequired("role")
	remove := &cobra.Command{
		Use:     "remove ORG USER",
		Short:   "Remove a member (its tokens for the organisation stop working)",
		Example: "  aipress org member remove acme dev@acme.example",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), c, args[0], args[1])
			if err != nil {
				return err
			}
			if err := c.RemoveMember(cmd.Context(), args[0], id); err != nil {
				return err
			}
			return printDone(cmd, o, fmt.Sprintf("%s removed from %s", args[1], args[0]),
				map[string]string{"org": args[0], "removed": id})
		},
	}
	cmd.AddCommand(list, set, remove)
	return cmd
}

func newInviteCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var org string
	cmd := clientCmd(&cobra.Command{
		Use:   "invite",
		Short: "Invite people to an organisation; list and revoke invitations",
		Long: `Invitations let people join an organisation with a role. Creating one
prints its secret once; send it to the invited person, who accepts it
(with 'POST /v1/invites/accept'). An invitation expires after 7 days;
inviting the same address again replaces a pending invitation. Owners
invite up to owner.`,
		Example: `  aipress invite create dev@acme.example --org acme --role developer
  aipress invite list --org acme
  aipress invite revoke inv-0123456789ab --org acme`,
	}, o)
	cmd.PersistentFlags().StringVar(&org, "org", "", "the organisation (required)")
	_ = cmd.MarkPersistentFlagRequired("org")
	var role string
	create := &cobra.Command{
		Use:     "create EMAIL --org ORG --role ROLE",
		Short:   "Invite an e-mail address; the invitation's secret is printed once",
		Example: "  aipress invite create dev@acme.example --org acme --role developer\n  aipress invite create boss@acme.example --org acme --role owner -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			inv, err := c.CreateInvite(cmd.Context(), org, apiclient.CreateInviteRequest{Email: args[0], Role: store.OrgRole(role)})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, inv)
			}
			_, err = fmt.Fprintf(w, `Invitation %s: %s as %s of %s, until %s.
Its secret link was mailed to %s, and only there: following it proves the mailbox.
`, inv.ID, inv.Email, inv.Role, inv.Org, inv.ExpiresAt.UTC().Format(time.RFC3339), inv.SentTo)
			return err
		},
	}
	create.Flags().StringVar(&role, "role", "", "owner, developer, viewer or billing")
	_ = create.MarkFlagRequired("role")
	list := &cobra.Command{
		Use:     "list --org ORG",
		Short:   "List the organisation's invitations (never their secrets)",
		Example: "  aipress invite list --org acme",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			l, err := c.ListInvites(cmd.Context(), org)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, l)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tSTATE\tEXPIRES\tINVITED BY\tAGE")
			for _, inv := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inv.ID, inv.Email, inv.Role, inv.State,
					inv.ExpiresAt.UTC().Format(time.RFC3339), dash(inv.CreatedBy), age(o.d.now(), inv.CreatedAt))
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:     "revoke ID --org ORG",
		Aliases: []string{"delete"},
		Short:   "Revoke an invitation (its token stops working)",
		Example: "  aipress invite revoke inv-0123456789ab --org acme",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if err := c.DeleteInvite(cmd.Context(), org, args[0]); err != nil {
				return err
			}
			return printDone(cmd, o, "invitation "+args[0]+" revoked", map[string]string{"deleted": args[0]})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newUserCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "user",
		Short: "List, inspect, create, change and delete users",
		Long: `Users are people who sign in. Platform admins create, change and delete
them; operators and support list them; anyone reads and renames itself;
owners read their organisations' members. USER is a user id (usr-…) or
an e-mail address (looked up among all users: platform roles only).

A new user has no password: they set one with a password reset, or sign
in through OIDC.`,
		Example: `  aipress user list
  aipress user create ops@example.com --name "Ops" --platform-role operator
  aipress user create dev@acme.example --org acme --role developer
  aipress user update usr-0123456789abcdef --disabled
  aipress user delete ops@example.com`,
	}, o)
	var org string
	list := &cobra.Command{
		Use:     "list [--org ORG]",
		Short:   "List users (platform roles)",
		Example: "  aipress user list\n  aipress user list --org acme -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			all, err := listAll(func(cont string) ([]store.User, string, error) {
				l, err := c.ListUsers(cmd.Context(), apiclient.UserListOptions{Org: org, Limit: 1000, Continue: cont})
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
				return printData(w, o.output, apiclient.UserList{Items: all})
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tPLATFORM ROLE\tDISABLED\tAGE")
			for _, u := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, dash(u.Name), dash(string(u.PlatformRole)),
					yesNo(u.Disabled), age(o.d.now(), u.CreatedAt))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&org, "org", "", "only this organisation's members")
	get := &cobra.Command{
		Use:     "get USER",
		Short:   "Show a user and its memberships",
		Example: "  aipress user get usr-0123456789abcdef\n  aipress user get dev@acme.example -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), c, "", args[0])
			if err != nil {
				return err
			}
			u, err := c.GetUser(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printUser(cmd.OutOrStdout(), o, u)
		},
	}
	var (
		cr       apiclient.CreateUserRequest
		platRole string
		role     string
	)
	create := &cobra.Command{
		Use:   "create EMAIL [--name NAME] [--platform-role ROLE] [--org ORG --role ROLE]",
		Short: "Create a user (platform admins)",
		Example: `  aipress user create ops@example.com --name "Ops" --platform-role operator
  aipress user create dev@acme.example --org acme --role developer -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cr.Email, cr.PlatformRole, cr.Role = args[0], store.Role(platRole), store.OrgRole(role)
			c, err := o.connect()
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), cr)
			if err != nil {
				return err
			}
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, u)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) created; they set a password with a password reset\n", u.ID, u.Email)
			return err
		},
	}
	cf := create.Flags()
	cf.StringVar(&cr.Name, "name", "", "the user's name")
	cf.StringVar(&platRole, "platform-role", "", "admin, operator or support (default: none, a customer)")
	cf.StringVar(&cr.Org, "org", "", "make the user a member of this organisation (with --role)")
	cf.StringVar(&role, "role", "", "the user's role in --org: owner, developer, viewer or billing")
	var (
		name, newPlat string
		disabled      bool
	)
	update := &cobra.Command{
		Use:   "update USER [--name NAME] [--platform-role ROLE] [--disabled[=false]]",
		Short: "Change a user's name (yourself, admins), platform role or disabled flag (admins)",
		Example: `  aipress user update usr-0123456789abcdef --name "Dana Dev"
  aipress user update ops@example.com --platform-role support
  aipress user update ops@example.com --disabled
  aipress user update ops@example.com --disabled=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req apiclient.UpdateUserRequest
			fl := cmd.Flags()
			if fl.Changed("name") {
				req.Name = &name
			}
			if fl.Changed("platform-role") {
				r := store.Role(newPlat)
				req.PlatformRole = &r
			}
			if fl.Changed("disabled") {
				req.Disabled = &disabled
			}
			if req == (apiclient.UpdateUserRequest{}) {
				return fmt.Errorf("nothing to change: give --name, --platform-role or --disabled")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), c, "", args[0])
			if err != nil {
				return err
			}
			u, err := c.UpdateUser(cmd.Context(), id, req)
			if err != nil {
				return err
			}
			return printUser(cmd.OutOrStdout(), o, u)
		},
	}
	uf := update.Flags()
	uf.StringVar(&name, "name", "", "the user's name")
	uf.StringVar(&newPlat, "platform-role", "", `admin, operator, support or "" (none)`)
	uf.BoolVar(&disabled, "disabled", false, "disable the user (its sign-ins and tokens stop working); --disabled=false enables it")
	del := &cobra.Command{
		Use:     "delete USER",
		Short:   "Delete a user with its memberships and tokens (platform admins)",
		Example: "  aipress user delete ops@example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), c, "", args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteUser(cmd.Context(), id); err != nil {
				return err
			}
			return printDone(cmd, o, "user "+id+" deleted", map[string]string{"deleted": id})
		},
	}
	cmd.AddCommand(list, get, create, update, del)
	return cmd
}

func printUser(w io.Writer, o *siteOpts, u *apiclient.UserView) error {
	if o.output != "table" {
		return printData(w, o.output, u)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\nEmail:\t%s\nName:\t%s\nPlatform role:\t%s\nDisabled:\t%s\n", u.ID, u.Email, dash(u.Name),
		dash(string(u.PlatformRole)), yesNo(u.Disabled))
	if u.OIDCIssuer != "" {
		fmt.Fprintf(tw, "OIDC:\t%s %s\n", u.OIDCIssuer, u.OIDCSubject)
	}
	if u.LastLoginAt != nil {
		fmt.Fprintf(tw, "Last sign-in:\t%s\n", u.LastLoginAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Created:\t%s\n", u.CreatedAt.UTC().Format(time.RFC3339))
	var ms []string
	for _, m := range u.Memberships {
		ms = append(ms, string(m.Role)+" of "+m.Org)
	}
	fmt.Fprintf(tw, "Memberships:\t%s\n", dash(strings.Join(ms, ", ")))
	return tw.Flush()
}

// listAll follows a list's continue tokens to the end; page returns one
// page's items and the next token ("" on the last page). It never returns
// a nil slice (JSON shows an empty list, not null).
func listAll[T any](page func(cont string) ([]T, string, error)) ([]T, error) {
	all := []T{}
	cont := ""
	for {
		items, next, err := page(cont)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		cont = next
	}
}
