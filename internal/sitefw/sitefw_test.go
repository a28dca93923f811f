package sitefw

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseIDRange(t *testing.T) {
	tests := []struct {
		in   string
		want IDRange
		err  bool
	}{
		{"70000-99999", IDRange{70000, 99999}, false},
		{" 5 - 9 ", IDRange{5, 9}, false},
		{"1234", IDRange{1234, 1234}, false},
		{"0-10", IDRange{}, true},
		{"9-5", IDRange{}, true},
		{"a-b", IDRange{}, true},
		{"", IDRange{}, true},
		{"1-4294967295", IDRange{}, true},
	}
	for _, tt := range tests {
		got, err := ParseIDRange(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseIDRange(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if !DefaultSiteIDs.Contains(70000) || DefaultSiteIDs.Contains(69999) || DefaultSiteIDs.Contains(100000) {
		t.Error("DefaultSiteIDs.Contains is wrong at its bounds")
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestResolveDests(t *testing.T) {
	r := fakeResolver{
		"db.internal": {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")},
		"mapped":      {netip.MustParseAddr("::ffff:10.1.2.3")},
	}
	tests := []struct {
		in   []string
		want []string
		err  string
	}{
		{[]string{"10.0.0.5:3306"}, []string{"10.0.0.5:3306"}, ""},
		{[]string{"10.8.0.9/14:3306"}, []string{"10.8.0.0/14:3306"}, ""},
		{[]string{"[fd00::1]:53", "[fd00::/8]:53"}, []string{"[fd00::1]:53", "[fd00::/8]:53"}, ""},
		{[]string{"db.internal:3306"}, []string{"10.0.0.5:3306", "[fd00::5]:3306"}, ""},
		{[]string{"mapped:1"}, []string{"10.1.2.3:1"}, ""},
		{[]string{"10.0.0.5"}, nil, "want HOST:PORT"},
		{[]string{"10.0.0.5:0"}, nil, "not a port number"},
		{[]string{"10.0.0.5:99999"}, nil, "not a port number"},
		{[]string{"0.0.0.0/0:53"}, nil, "not a network"},
		{[]string{"nowhere:53"}, nil, "no such host"},
	}
	for _, tt := range tests {
		got, err := ResolveDests(context.Background(), r, tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ResolveDests(%q) error %v, want one with %q", tt.in, err, tt.err)
			}
			continue
		}
		var s []string
		for _, d := range got {
			s = append(s, d.String())
		}
		if err != nil || !slices.Equal(s, tt.want) {
			t.Errorf("ResolveDests(%q) = %v, %v; want %v", tt.in, s, err, tt.want)
		}
	}
}

func TestResolvers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# comment\nnameserver 127.0.0.53\nsearch example.com\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 127.0.0.53\noptions edns0\nnameserver 169.254.20.10\n"
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Resolvers(p)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, d := range got {
		s = append(s, d.String())
	}
	if want := []string{"127.0.0.53:53", "[fe80::1]:53", "169.254.20.10:53"}; !slices.Equal(s, want) {
		t.Errorf("Resolvers = %v, want %v", s, want)
	}
	if got, err := Resolvers(filepath.Join(t.TempDir(), "missing")); err != nil || got != nil {
		t.Errorf("missing file: %v, %v", got, err)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []Policy{{UIDs: []uint32{0}}, {Ranges: []IDRange{{0, 5}}}, {Ranges: []IDRange{{9, 5}}}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Policy{Ranges: []IDRange{DefaultSiteIDs}, UIDs: []uint32{1000}}).Validate(); err != nil {
		t.Error(err)
	}
}
