package shardagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/aipress/aipress/internal/sitefw"
)

// FirewallMode says whether a shard keeps its site users off this machine's
// services and the metadata address (package sitefw).
type FirewallMode string

const (
	// FirewallAuto applies the rules when the process can (root,
	// CAP_NET_ADMIN, a kernel with nf_tables) and warns once otherwise.
	FirewallAuto FirewallMode = "auto"
	// FirewallOn applies them or fails.
	FirewallOn FirewallMode = "on"
	// FirewallOff applies nothing (an init step or the operator's own
	// firewall does it).
	FirewallOff FirewallMode = "off"
)

// ParseFirewallMode parses auto, on or off (empty: auto).
func ParseFirewallMode(s string) (FirewallMode, error) {
	switch m := FirewallMode(s); m {
	case "":
		return FirewallAuto, nil
	case FirewallAuto, FirewallOn, FirewallOff:
		return m, nil
	}
	return "", fmt.Errorf("site firewall %q: want auto, on or off", s)
}

// firewallUnprotected is the warning when the rules cannot be applied.
const firewallUnprotected = "site firewall not applied: the sites' PHP can connect to every service on this machine's " +
	"loopback and own addresses (the control-plane API, pprof, edge metrics, MariaDB's TCP port, health endpoints) " +
	"and to the cloud metadata address 169.254.169.254; run as root with CAP_NET_ADMIN on a kernel with nf_tables, " +
	"or apply 'aipress sitefw apply' from a privileged step (docs/operations.md, Site firewall)"

// CheckFirewall resolves FirewallAuto for a process that will run shards:
// auto stays auto when this process can apply rules, else it warns once
// and turns off. On fails when the process cannot.
func CheckFirewall(mode FirewallMode, log *slog.Logger) (FirewallMode, error) {
	if mode == FirewallOff {
		return mode, nil
	}
	if err := sitefw.Supported(); err != nil {
		if mode == FirewallOn {
			return "", fmt.Errorf("site firewall: %w", err)
		}
		log.Warn(firewallUnprotected, "reason", err.Error())
		return FirewallOff, nil
	}
	return mode, nil
}

// openSiteFirewall applies the rules of the shard in dir: its table is named
// after this process (sitefw.ProcessTable), its site users are added by the
// shard (shard.Config.SiteUsers), and they may reach this machine on the
// loopback ports only, plus the DNS resolvers and the allow destinations
// (HOST:PORT: an external database server the sites use, which may be on
// loopback). Nil when off, or when auto and it cannot (warned).
func openSiteFirewall(ctx context.Context, mode FirewallMode, dir string, ports []int, allow []string, log *slog.Logger) (*sitefw.Firewall, error) {
	if mode == FirewallOff {
		return nil, nil
	}
	fw, err := applySiteFirewall(ctx, dir, ports, allow)
	if err != nil {
		if mode == FirewallOn {
			return nil, err
		}
		log.Warn(firewallUnprotected, "reason", err.Error())
		return nil, nil
	}
	log.Info("site firewall applied", "table", fw.Table(), "loopback_ports", ports)
	return fw, nil
}

func applySiteFirewall(ctx context.Context, dir string, ports []int, allow []string) (*sitefw.Firewall, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("site firewall: not running as root")
	}
	resolvers, err := sitefw.Resolvers(sitefw.ResolvConf)
	if err != nil {
		return nil, err
	}
	dests, err := sitefw.ResolveDests(ctx, net.DefaultResolver, allow)
	if err != nil {
		return nil, fmt.Errorf("site firewall: %w", err)
	}
	pol := sitefw.Policy{Allow: append(resolvers, dests...)}
	for _, p := range ports {
		if p > 0 && p < 65536 {
			pol.LoopbackPorts = append(pol.LoopbackPorts, uint16(p))
		}
	}
	fw, err := sitefw.Open(sitefw.Options{Table: sitefw.ProcessTable(dir)})
	if err != nil {
		return nil, err
	}
	if err := fw.Apply(pol); err != nil {
		fw.Close()
		return nil, err
	}
	return fw, nil
}
