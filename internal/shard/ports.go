package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Default range of the TCP ports of a shard's pools (Config.PoolPorts).
const (
	DefaultPoolPortFirst = 9100
	DefaultPoolPortLast  = 9199
)

// portsFile keeps the pools' ports in the shard's directory.
const portsFile = "pool-ports.json"

// ports hands out one TCP port per pool from [first, last] and remembers it
// in a file, so a site keeps its port across restarts (and its endpoint
// stays what the edges have); a port is freed when the site is torn down.
// A new port is only taken if nothing on the host listens on it yet (two
// shards on one host should still be given ranges of their own: the probe
// cannot see a port the other shard allocated and has not started).
type ports struct {
	path        string
	first, last int
	probeHost   string // the pools' listen address

	mu sync.Mutex
	m  map[string]int // pool → port; nil until loaded
}

func (p *ports) load() error {
	if p.m != nil {
		return nil
	}
	m := map[string]int{}
	b, err := os.ReadFile(p.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("pool ports: %s: %w", p.path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("pool ports: %w", err)
	}
	p.m = m
	return nil
}

func (p *ports) save() error {
	b, _ := json.MarshalIndent(p.m, "", "  ")
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pool ports: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("pool ports: %w", err)
	}
	return nil
}

// port returns pool's port, allocating the lowest free one on first use
// (or when the range no longer contains the one it had).
func (p *ports) port(pool string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return 0, err
	}
	if port, ok := p.m[pool]; ok && port >= p.first && port <= p.last {
		return port, nil
	}
	used := make(map[int]bool, len(p.m))
	for name, port := range p.m {
		if name != pool {
			used[port] = true
		}
	}
	for port := p.first; port <= p.last; port++ {
		if used[port] || !p.free(port) {
			continue
		}
		p.m[pool] = port
		if err := p.save(); err != nil {
			delete(p.m, pool)
			return 0, err
		}
		return port, nil
	}
	return 0, fmt.Errorf("pool ports: no free port in %d-%d for %s (%d allocated)", p.first, p.last, pool, len(used))
}

// lookup returns pool's port without allocating one.
func (p *ports) lookup(pool string) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.load() != nil {
		return 0, false
	}
	port, ok := p.m[pool]
	return port, ok
}

// free reports whether nothing listens on port yet.
func (p *ports) free(port int) bool {
	if p.probeHost == "" {
		return true
	}
	l, err := net.Listen("tcp", net.JoinHostPort(p.probeHost, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// release frees pool's port (a no-op if it has none).
func (p *ports) release(pool string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return err
	}
	if _, ok := p.m[pool]; !ok {
		return nil
	}
	delete(p.m, pool)
	return p.save()
}

// pools lists the pools that hold a port.
func (p *ports) pools() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(p.m)), nil
}

// ParsePortRange parses "FIRST-LAST" (or a single port).
func ParsePortRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || first < 1 || last > 65535 || first > last {
		return 0, 0, fmt.Errorf("port range %q: want FIRST-LAST within 1-65535", s)
	}
	return first, last, nil
}

// Clients is an allow-list of client addresses: the edges that may connect
// to a shard's TCP pools and static file server.
type Clients []netip.Prefix

// DefaultClients is loopback only.
var DefaultClients = Clients{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}

// maxClientNetwork is the most addresses one network of an allow-list may
// hold: php-fpm's listen.allowed_clients only takes single addresses, so a
// network is written out address by address.
const maxClientNetwork = 256

// AnyClients is the allow-list of "any": every address (see Any).
var AnyClients = Clients{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// Any reports whether the list allows every address ("any"): php-fpm then
// gets no listen.allowed_clients, and whoever reaches the ports may use
// them, so the network must admit only edges (on Kubernetes a
// NetworkPolicy; the edges' pod addresses change).
func (c Clients) Any() bool {
	return slices.ContainsFunc(c, func(p netip.Prefix) bool { return p.Bits() == 0 })
}

// ParseClients parses IP addresses and networks (CIDR) of edges. A network
// may hold at most 256 addresses (php-fpm checks single addresses only; for
// a larger pod network list the edges' addresses, or restrict the network
// path itself). "any", alone, allows every address (see Clients.Any). An
// empty list gives DefaultClients.
func ParseClients(list []string) (Clients, error) {
	var out Clients
	for _, item := range list {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == "any" {
			if len(list) != 1 {
				return nil, fmt.Errorf("allowed client \"any\" cannot be combined with addresses")
			}
			return slices.Clone(AnyClients), nil
		}
		var pfx netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if pfx, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("allowed client %q: %w", item, err)
			}
			pfx = pfx.Masked()
			if hostBits := pfx.Addr().BitLen() - pfx.Bits(); hostBits > 8 {
				return nil, fmt.Errorf("allowed client %q: a network may hold at most %d addresses (php-fpm checks single addresses); list the edges", item, maxClientNetwork)
			}
		} else {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("allowed client %q: not an IP address or network", item)
			}
			pfx = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		if !slices.Contains(out, pfx) {
			out = append(out, pfx)
		}
	}
	if len(out) == 0 {
		return slices.Clone(DefaultClients), nil
	}
	return out, nil
}

// Allows reports whether addr (an IPv4-mapped IPv6 address counts as IPv4)
// is on the list.
func (c Clients) Allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range c {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Addresses writes the list out address by address (php-fpm's form).
// An "any" list has none (php-fpm gets no allow-list).
func (c Clients) Addresses() []string {
	if c.Any() {
		return nil
	}
	var out []string
	for _, p := range c {
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			out = append(out, a.String())
			if !a.Next().IsValid() {
				break
			}
		}
	}
	return out
}

func portsPath(dir string) string { return filepath.Join(dir, portsFile) }
