package platform

import "testing"

func TestParseFirewallMode(t *testing.T) {
	for in, want := range map[string]FirewallMode{"": FirewallAuto, "auto": FirewallAuto, "on": FirewallOn, "off": FirewallOff} {
		if got, err := ParseFirewallMode(in); err != nil || got != want {
			t.Errorf("ParseFirewallMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"yes", "true", "AUTO"} {
		if _, err := ParseFirewallMode(in); err == nil {
			t.Errorf("ParseFirewallMode(%q): no error", in)
		}
	}
}

// The loopback ports come from listeners' addresses and purge URLs.
func TestPortOf(t *testing.T) {
	for in, want := range map[string]int{
		"127.0.0.1:8080": 8080, "[::]:8443": 8443, "localhost:80": 80, ":9": 9,
		"http://127.0.0.1:18080/.aipress/purge": 18080, "http://edge/.aipress/purge": 80, "https://edge/": 443,
		"": 0, "nonsense": 0,
	} {
		if got := portOf(in); got != want {
			t.Errorf("portOf(%q) = %d, want %d", in, got, want)
		}
	}
}
