package serve

import (
	"fmt"
	"net"
	"strings"
)

// Advertise returns the address other machines reach a listener ln opened
// at listen under: advertise if set (a host, or host:port; a host alone
// takes ln's port), else listen when it names a host that is not the
// unspecified address. flag is the option that sets advertise and reach
// says who reaches the listener, for the errors (e.g.
// "--gateway-advertise", "edges reach").
func Advertise(ln net.Addr, advertise, listen, flag, reach string) (string, error) {
	_, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return "", err
	}
	if advertise != "" {
		if strings.Contains(advertise, "://") || strings.ContainsAny(advertise, "/ ") {
			return "", fmt.Errorf("%s %q: want host or host:port", flag, advertise)
		}
		if _, _, err := net.SplitHostPort(advertise); err == nil {
			return advertise, nil
		}
		return net.JoinHostPort(strings.Trim(advertise, "[]"), port), nil
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return net.JoinHostPort(host, port), nil
		}
	}
	return "", fmt.Errorf("listening on %s: give the address %s it at (%s)", listen, reach, flag)
}
