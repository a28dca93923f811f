// Package sitefw keeps site users — the Unix users a shard's PHP runs as —
// off the services of their own machine and off the cloud metadata address,
// with nftables rules that match the owner of each outgoing packet
// (meta skuid). Kubernetes NetworkPolicies and host firewalls see a pod or a
// machine, not a user: a site's PHP runs beside the root shard agent, the
// control-plane API, pprof, the edge's metrics, MariaDB's TCP port and health
// endpoints, all on loopback or the machine's own addresses, and a cloud VM
// or pod answers 169.254.169.254 with credentials. Owner-match rules are the
// one place that can tell the site's PHP from the agent.
//
// For the site users of a Policy (single UIDs, kept in sync as users come and
// go, and/or UID ranges) outgoing packets are, in this order:
//
//   - accepted when they belong to a connection already accepted (replies of
//     a site's own listening socket included);
//   - accepted to the Allow destinations (host:port, TCP and UDP): the DNS
//     resolvers, and on Kubernetes the sites' database server;
//   - on this machine (the loopback interface, which also carries traffic to
//     the machine's own addresses): accepted to the LoopbackPorts over TCP
//     (the edge's HTTP and HTTPS ports: WordPress requests its own URL, the
//     cache plugin posts purges), refused otherwise;
//   - refused to link-local addresses (169.254.0.0/16, fe80::/10) and the
//     clouds' other metadata addresses (MetadataPrefixes);
//   - with DenyPrivate (Kubernetes, where the private networks are the
//     cluster), refused to private networks (PrivatePrefixes);
//   - accepted otherwise: the internet stays open.
//
// Refused means rejected (a TCP reset, else ICMP administratively
// prohibited), so PHP fails at once instead of waiting for a timeout. Other
// users, root included, are never matched. The chain hooks the output path
// at the mangle priority, before any destination NAT, so it judges the
// destination the site asked for.
//
// Each Firewall owns one nftables table of the inet family and never touches
// another: Apply replaces the whole table in one transaction (idempotent,
// never a moment without rules), AddUIDs/RemoveUIDs change only its set of
// site UIDs. A shard process names its table after its own process
// (ProcessTable), so shards of several platforms on one host never fight, and
// removes it when it stops; a table of a process that died without that
// (SIGKILL) is collected by the next Apply or AddUIDs of any AIPress process
// of the same PID namespace. A privileged init step (`aipress sitefw apply`)
// uses a fixed name, and its table outlives the command.
package sitefw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// IDRange is an inclusive range of Unix user (and group) IDs.
type IDRange struct {
	First, Last uint32
}

// DefaultSiteIDs are the user and group IDs site users are created with: not
// Debian's system (100–999) nor ordinary users' range (1000–59999, where
// useradd puts people), not its reserved 60000–65535, and below the
// subordinate ranges (/etc/subuid, from 100000) that rootless containers run
// as; so rules matching the range match site users and nothing else. It fits
// the 65536 IDs a user-namespaced pod maps.
var DefaultSiteIDs = IDRange{First: 70000, Last: 99999}

// String is "FIRST-LAST".
func (r IDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Contains reports whether id is in r.
func (r IDRange) Contains(id int) bool { return id >= int(r.First) && id <= int(r.Last) }

// ParseIDRange parses "FIRST-LAST" (or one ID). Root (0) cannot be part of a
// range.
func ParseIDRange(s string) (IDRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if err1 != nil || err2 != nil {
		return IDRange{}, fmt.Errorf("ID range %q: want FIRST-LAST, e.g. %s", s, DefaultSiteIDs)
	}
	if first == 0 || first > last || last >= 1<<32-1 {
		return IDRange{}, fmt.Errorf("ID range %q: want 1 <= FIRST <= LAST < 4294967295", s)
	}
	return IDRange{First: uint32(first), Last: uint32(last)}, nil
}

// Dest is a destination site users may reach: a network (a single address
// is a /32 or /128) and a port, over TCP and UDP.
type Dest struct {
	Prefix netip.Prefix
	Port   uint16
}

// String is "ADDR:PORT", "NET/BITS:PORT", "[ADDR6]:PORT" or "[NET6/BITS]:PORT".
func (d Dest) String() string {
	h := d.Prefix.String()
	if d.Prefix.IsSingleIP() {
		h = d.Prefix.Addr().String()
	}
	return net.JoinHostPort(h, strconv.Itoa(int(d.Port)))
}

// SplitDest splits "HOST:PORT" (HOST an address, a network in CIDR form or a
// name; IPv6 in brackets) into host and port.
func SplitDest(s string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("destination %q: want HOST:PORT, e.g. 10.0.0.5:3306, 10.8.0.0/14:3306 or db.internal:3306", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("destination %q: port %q is not a port number", s, port)
	}
	return host, uint16(p), nil
}

// Resolver looks host names up (net.DefaultResolver in production).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveDests parses "HOST:PORT" destinations; a HOST that is neither an
// address nor a network is looked up once, now, and every address it has
// is allowed (rules hold addresses: a name that later points elsewhere
// needs another apply).
func ResolveDests(ctx context.Context, r Resolver, specs []string) ([]Dest, error) {
	var out []Dest
	for _, s := range specs {
		host, port, err := SplitDest(s)
		if err != nil {
			return nil, err
		}
		if p, err := netip.ParsePrefix(host); err == nil {
			if p.Addr().Zone() != "" || p.Bits() == 0 {
				return nil, fmt.Errorf("destination %q: not a network site users may be allowed to reach", s)
			}
			out = append(out, Dest{Prefix: p.Masked(), Port: port})
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" {
				return nil, fmt.Errorf("destination %q: zoned addresses are not supported", s)
			}
			a = a.Unmap()
			out = append(out, Dest{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: port})
			continue
		}
		addrs, err := r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("destination %q: %w", s, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("destination %q: %s has no address", s, host)
		}
		for _, a := range addrs {
			a = a.Unmap().WithZone("")
			out = append(out, Dest{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: port})
		}
	}
	return out, nil
}

// ResolvConf is where the system's DNS resolvers are listed.
const ResolvConf = "/etc/resolv.conf"

// Resolvers returns the nameservers of a resolv.conf file as destinations
// on port 53: site users keep DNS even when the resolver is on loopback
// (systemd-resolved's 127.0.0.53, a local dnsmasq) or at a metadata-range
// address (NodeLocal DNSCache's 169.254.20.10). A missing file means no
// resolvers.
func Resolvers(path string) ([]Dest, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolvers: %w", err)
	}
	defer f.Close()
	var out []Dest
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue // resolv(5) ignores what it cannot parse too
		}
		a = a.Unmap().WithZone("")
		d := Dest{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: 53}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resolvers: %w", err)
	}
	return out, nil
}

// MetadataPrefixes are refused to site users everywhere: link-local
// networks (the metadata address 169.254.169.254 of AWS, GCP, Azure, Oracle,
// DigitalOcean …, and fe80::/10), AWS's and GCP's IPv6 metadata addresses,
// Alibaba Cloud's 100.100.100.200 and Azure's WireServer 168.63.129.16.
var MetadataPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("168.63.129.16/32"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("fd20:ce::254/128"),
}

// PrivatePrefixes are refused to site users with Policy.DenyPrivate: RFC
// 1918, carrier-grade NAT space (used for pod networks too), the benchmark
// network, and IPv6 unique local addresses.
var PrivatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("fc00::/7"),
}

// Policy is what a Firewall enforces.
type Policy struct {
	// UIDs are site users matched one by one (a shard's users; AddUIDs
	// and RemoveUIDs change them later).
	UIDs []uint32
	// Ranges are site users matched by range: on Kubernetes every user
	// the agent will create (DefaultSiteIDs), before it creates any.
	Ranges []IDRange
	// LoopbackPorts are the TCP ports site users may reach on this
	// machine: the edge's HTTP and HTTPS ports.
	LoopbackPorts []uint16
	// Allow are destinations site users may always reach (TCP and UDP),
	// judged before anything is refused: DNS resolvers, the sites'
	// database server.
	Allow []Dest
	// DenyPrivate also refuses private networks (PrivatePrefixes).
	DenyPrivate bool
}

// Validate rejects a policy that would match nothing or root.
func (p Policy) Validate() error {
	if len(p.UIDs) == 0 && len(p.Ranges) == 0 {
		// A shard starts with no users and adds them; only the init
		// step must name someone.
		return nil
	}
	if slices.Contains(p.UIDs, 0) {
		return errors.New("site firewall: root (UID 0) cannot be a site user")
	}
	for _, r := range p.Ranges {
		if r.First == 0 || r.First > r.Last {
			return fmt.Errorf("site firewall: bad UID range %s", r)
		}
	}
	return nil
}
