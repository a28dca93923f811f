// Package egress guards the requests the platform makes to URLs its users
// name (zip and git sources of plugins and themes, git sync repositories)
// or that answers to them name (a catalogue's download links, redirects):
// such a URL must not reach the platform's own services or its network —
// the cloud metadata address, the API and agent ports on loopback, a
// database on a private address.
//
// A guarded client dials only public addresses, checked after DNS
// resolution on the address actually dialled (a name that resolves to
// 127.0.0.1 is refused as the literal is), and follows a redirect only to
// an https URL that passes the same check. Loopback and private addresses
// and plain http are allowed only when the operator says so
// (AllowPrivate: the --allow-private-fetch flag, meant for tests and
// private mirrors).
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrForbidden is wrapped by errors about addresses and URLs the policy
// refuses.
var ErrForbidden = errors.New("not allowed")

// nonPublic are the ranges IsPrivate and friends do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 (reaches IPv4 inside)
	netip.MustParsePrefix("64:ff9b:1::/48"), // local NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4 (embeds IPv4)
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("::ffff:0:0/96"),  // IPv4-mapped: checked unmapped
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
}

// CheckAddr refuses an address that is not public: loopback, private,
// link-local (169.254.0.0/16: cloud metadata), unspecified, multicast and
// other reserved ranges.
func CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return fmt.Errorf("an invalid address: %w", ErrForbidden)
	case ip.IsLoopback():
		return fmt.Errorf("%s is a loopback address: %w", ip, ErrForbidden)
	case ip.IsPrivate():
		return fmt.Errorf("%s is a private address: %w", ip, ErrForbidden)
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return fmt.Errorf("%s is a link-local address: %w", ip, ErrForbidden)
	case ip.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address: %w", ip, ErrForbidden)
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%s is a multicast address: %w", ip, ErrForbidden)
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return fmt.Errorf("%s is in the reserved range %s: %w", ip, p, ErrForbidden)
		}
	}
	return nil
}

// CheckURL refuses a URL a fetch may not name: only https (plain http too
// when allowPrivate), a host, no credentials; a host that is an address
// literal must pass CheckAddr unless allowPrivate. Names are checked when
// they are dialled (Client).
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	return checkURL(u, allowPrivate)
}

func checkURL(u *url.URL, allowPrivate bool) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate {
			return fmt.Errorf("%q: plain http is not allowed (only with --allow-private-fetch); use https: %w", u.Redacted(), ErrForbidden)
		}
	default:
		return fmt.Errorf("%q: only https URLs: %w", u.Redacted(), ErrForbidden)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in a URL are not allowed", u.Redacted())
	}
	if allowPrivate {
		return nil
	}
	h := u.Hostname()
	if h == "localhost" || len(h) > len(".localhost") && h[len(h)-len(".localhost"):] == ".localhost" {
		return fmt.Errorf("%q: %s is a loopback name: %w", u.Redacted(), h, ErrForbidden)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if err := CheckAddr(ip); err != nil {
			return fmt.Errorf("%q: %w", u.Redacted(), err)
		}
	}
	return nil
}

// control refuses to connect to a non-public address (after DNS
// resolution: address is what is dialled).
func control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, ErrForbidden)
	}
	if err := CheckAddr(ap.Addr()); err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return nil
}

// Transport returns an HTTP transport that, unless allowPrivate, connects
// only to public addresses. It uses no proxy (a proxy would dial on our
// behalf, unchecked).
func Transport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.ControlContext = control
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	t.ResponseHeaderTimeout = 60 * time.Second
	return t
}

// CheckRedirect is an http.Client.CheckRedirect that checks every hop
// with CheckURL (at most 10 hops).
func CheckRedirect(allowPrivate bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		if err := checkURL(req.URL, allowPrivate); err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		return nil
	}
}

// Client returns a guarded client (see the package's doc) with timeout as
// its overall limit (0: none).
func Client(allowPrivate bool, timeout time.Duration) *http.Client {
	return &http.Client{Transport: Transport(allowPrivate), CheckRedirect: CheckRedirect(allowPrivate), Timeout: timeout}
}
