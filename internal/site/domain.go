package site

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidDomain is returned (wrapped) by NormalizeDomain.
var ErrInvalidDomain = errors.New("invalid domain")

// NormalizeDomain lower-cases d and checks that it is an RFC 1123 host name:
// dot-separated labels of 1–63 letters, digits and hyphens, not starting or
// ending with a hyphen, at least two labels, at most 253 characters, no
// wildcards, no trailing dot, no IP address. It must be ASCII before it is
// lower-cased (internationalised names in their xn-- form): Unicode case
// mapping would turn the Kelvin sign into "k" and "İ" into "i", so that
// two different inputs name one site.
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSpace(d)
	if d == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidDomain)
	}
	for _, r := range d {
		if r >= utf8.RuneSelf {
			return "", fmt.Errorf("%w: %q contains %q; only letters, digits, hyphens and dots are allowed (an international name in its xn-- form)", ErrInvalidDomain, d, r)
		}
	}
	d = strings.ToLower(d)
	if len(d) > 253 {
		return "", fmt.Errorf("%w: longer than 253 characters", ErrInvalidDomain)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%w: %q needs at least two labels (e.g. blog.localhost)", ErrInvalidDomain, d)
	}
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("%w: %q has an empty label", ErrInvalidDomain, d)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%w: label %q is longer than 63 characters", ErrInvalidDomain, l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: label %q starts or ends with a hyphen", ErrInvalidDomain, l)
		}
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			case r == '*':
				return "", fmt.Errorf("%w: wildcards are not allowed in %q", ErrInvalidDomain, d)
			default:
				return "", fmt.Errorf("%w: %q contains %q; only letters, digits, hyphens and dots are allowed", ErrInvalidDomain, d, r)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%w: %q looks like an IP address, not a host name", ErrInvalidDomain, d)
	}
	return d, nil
}
