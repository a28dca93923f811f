package shardagent

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
