package cli

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/sitefw"
)

// DefaultFirewallTable is the table `aipress sitefw apply` writes.
const DefaultFirewallTable = "aipress_sitefw"

// applySiteFirewall writes policy p to table (nil p: deletes the table):
// deps.siteFirewall's default.
func applySiteFirewall(table string, p *sitefw.Policy) error {
	fw, err := sitefw.Open(sitefw.Options{Table: table})
	if err != nil {
		return err
	}
	defer fw.Close()
	if p == nil {
		return fw.Delete()
	}
	return fw.Apply(*p)
}

func newSitefwCmd(d deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sitefw",
		Short: "Keep site users off this machine's services and the metadata address (nftables)",
		Long: `Owner-match firewall rules for site users: the Unix users the sites' PHP
runs as. Traffic of site users to this machine (loopback and its own
addresses) is refused except to --allow-loopback-port (the edge's HTTP and
HTTPS ports), traffic to link-local addresses (the cloud metadata address
169.254.169.254) and the clouds' other metadata addresses is refused, and with
--deny-private so is traffic to private networks; --allow destinations and the
DNS resolvers are always allowed. Other users, root included, are not matched.

'aipress up' and 'aipress shard' apply such rules for their own site users
when they run as root with CAP_NET_ADMIN (--site-firewall). This command is
for a step that has the privilege when the shard does not: a Kubernetes
pod's init container (capability NET_ADMIN) applies it before the agent,
which creates site users with IDs from --uid-range, starts. The rules live in
the table --table of family inet, replaced whole on every apply
(idempotent); no other table is touched. Names in --allow are resolved once,
now. Needs root, CAP_NET_ADMIN and a kernel with nf_tables.`,
		Args: cobra.NoArgs,
	}
	var (
		table, uidRange     string
		uids                []uint
		ports               []int
		allow               []string
		resolvers, denyPriv bool
	)
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Apply the site-user rules (replacing the table's previous ones)",
		Example: `  # a Kubernetes shard pod's init container
  aipress sitefw apply --uid-range 70000-99999 --deny-private --allow aipress-shard-k8s-1-db:3306
  # a host whose shards run without CAP_NET_ADMIN, edge on :80 and :443
  aipress sitefw apply --allow-loopback-port 80 --allow-loopback-port 443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p sitefw.Policy
			if uidRange != "" {
				r, err := sitefw.ParseIDRange(uidRange)
				if err != nil {
					return fmt.Errorf("--uid-range: %w", err)
				}
				p.Ranges = append(p.Ranges, r)
			}
			for _, u := range uids {
				if u == 0 || u >= 1<<32-1 {
					return fmt.Errorf("--uid %d: not a site user's UID", u)
				}
				p.UIDs = append(p.UIDs, uint32(u))
			}
			if len(p.Ranges) == 0 && len(p.UIDs) == 0 {
				return fmt.Errorf("no site users: give --uid-range or --uid")
			}
			for _, port := range ports {
				if port < 1 || port > 65535 {
					return fmt.Errorf("--allow-loopback-port %d: not a port", port)
				}
				p.LoopbackPorts = append(p.LoopbackPorts, uint16(port))
			}
			if resolvers {
				r, err := sitefw.Resolvers(sitefw.ResolvConf)
				if err != nil {
					return err
				}
				p.Allow = append(p.Allow, r...)
			}
			dests, err := sitefw.ResolveDests(cmd.Context(), net.DefaultResolver, allow)
			if err != nil {
				return fmt.Errorf("--allow: %w", err)
			}
			p.Allow = append(p.Allow, dests...)
			p.DenyPrivate = denyPriv
			if err := d.siteFirewall(table, &p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site firewall applied: table inet %s, site users %s, loopback ports %v, allowed %v, private networks %s\n",
				table, describeUsers(p), p.LoopbackPorts, p.Allow, map[bool]string{true: "refused", false: "open"}[p.DenyPrivate])
			return nil
		},
	}
	fl := apply.Flags()
	fl.StringVar(&table, "table", DefaultFirewallTable, "the nftables table (family inet) that holds the rules")
	fl.StringVar(&uidRange, "uid-range", sitefw.DefaultSiteIDs.String(), "site users by UID range (the range shards create site users in; empty: none)")
	fl.UintSliceVar(&uids, "uid", nil, "a site user's UID (repeatable)")
	fl.IntSliceVar(&ports, "allow-loopback-port", nil, "TCP port site users may reach on this machine, e.g. the edge's 80 and 443 (repeatable)")
	fl.StringSliceVar(&allow, "allow", nil, "HOST:PORT site users may always reach over TCP and UDP, e.g. the database server; HOST an address, a network (10.8.0.0/14) or a name resolved now (repeatable)")
	fl.BoolVar(&resolvers, "allow-resolvers", true, "allow the DNS resolvers of /etc/resolv.conf (port 53)")
	fl.BoolVar(&denyPriv, "deny-private", false, "also refuse private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 …): Kubernetes, where they hold the cluster")

	var delTable string
	del := &cobra.Command{
		Use:   "delete",
		Short: "Remove the site-user rules (the table; a no-op when it is missing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.siteFirewall(delTable, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site firewall table inet %s removed\n", delTable)
			return nil
		},
	}
	del.Flags().StringVar(&delTable, "table", DefaultFirewallTable, "the nftables table (family inet) to remove")
	cmd.AddCommand(apply, del)
	return cmd
}

func describeUsers(p sitefw.Policy) string {
	var s []string
	for _, r := range p.Ranges {
		s = append(s, r.String())
	}
	for _, u := range p.UIDs {
		s = append(s, strconv.FormatUint(uint64(u), 10))
	}
	return fmt.Sprint(s)
}
