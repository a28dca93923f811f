package site

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

// FuzzNormalizeDomain checks what every caller of NormalizeDomain relies on
// (the API's site names, the edge's host table, Unix and database names
// derived from sites): an accepted domain is the lower-cased, trimmed input
// itself, plain ASCII, an RFC 1123 host name of at least two labels that is
// no IP address, stable when normalised again, and a URL's host as it is; a
// refused one is an ErrInvalidDomain. Seeds: testdata/fuzz/FuzzNormalizeDomain.
func FuzzNormalizeDomain(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeDomain(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidDomain) || out != "" {
				t.Fatalf("NormalizeDomain(%q) = %q, %v: want an ErrInvalidDomain and no name", in, out, err)
			}
			return
		}
		trimmed := strings.TrimSpace(in)
		for i := 0; i < len(trimmed); i++ {
			if trimmed[i] >= 0x80 {
				t.Fatalf("NormalizeDomain(%q) = %q: accepted a name that is not ASCII", in, out)
			}
		}
		if out != strings.ToLower(trimmed) {
			t.Fatalf("NormalizeDomain(%q) = %q, not the input lower-cased", in, out)
		}
		if again, err := NormalizeDomain(out); err != nil || again != out {
			t.Fatalf("NormalizeDomain(%q) = %q, %v: not stable", out, again, err)
		}
		if len(out) > 253 {
			t.Fatalf("%q: longer than 253", out)
		}
		labels := strings.Split(out, ".")
		if len(labels) < 2 {
			t.Fatalf("%q: fewer than two labels", out)
		}
		for _, l := range labels {
			if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("%q: bad label %q", out, l)
			}
			for i := 0; i < len(l); i++ {
				c := l[i]
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					t.Fatalf("%q: byte %q in a label", out, c)
				}
			}
		}
		if strings.Trim(labels[len(labels)-1], "0123456789") == "" || net.ParseIP(out) != nil {
			t.Fatalf("%q: looks like an IP address", out)
		}
		u, err := url.Parse("http://" + out + "/")
		if err != nil || u.Hostname() != out || u.Port() != "" || u.User != nil || u.Path != "/" {
			t.Fatalf("%q is not a URL host as it is: %+v, %v", out, u, err)
		}
	})
}
