package cli

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/platform/up"
	"github.com/aipress/aipress/internal/sitefw"
)

// `aipress sitefw apply` turns its flags into the policy of its table, and
// refuses what cannot be a site user or a destination; `delete` removes the
// table.
func TestSitefwCommand(t *testing.T) {
	type call struct {
		table string
		p     *sitefw.Policy
	}
	var calls []call
	d := deps{getenv: func(string) string { return "" }, siteFirewall: func(table string, p *sitefw.Policy) error {
		calls = append(calls, call{table, p})
		return nil
	}}
	db := sitefw.Dest{Prefix: netip.MustParsePrefix("10.4.0.9/32"), Port: 3306}
	tests := []struct {
		args  []string
		table string
		want  sitefw.Policy
		err   string
	}{
		{[]string{"--allow-resolvers=false"}, DefaultFirewallTable, sitefw.Policy{Ranges: []sitefw.IDRange{sitefw.DefaultSiteIDs}}, ""},
		{[]string{"--allow-resolvers=false", "--table", "t1", "--uid-range", "5000-5999", "--uid", "1234",
			"--allow-loopback-port", "80", "--allow-loopback-port", "443", "--allow", "10.4.0.9:3306", "--deny-private"},
			"t1", sitefw.Policy{Ranges: []sitefw.IDRange{{First: 5000, Last: 5999}}, UIDs: []uint32{1234},
				LoopbackPorts: []uint16{80, 443}, Allow: []sitefw.Dest{db}, DenyPrivate: true}, ""},
		{[]string{"--allow-resolvers=false", "--uid-range", "", "--uid", "77"}, DefaultFirewallTable, sitefw.Policy{UIDs: []uint32{77}}, ""},
		{[]string{"--uid-range", ""}, "", sitefw.Policy{}, "no site users"},
		{[]string{"--uid-range", "0-10"}, "", sitefw.Policy{}, "--uid-range"},
		{[]string{"--uid", "0"}, "", sitefw.Policy{}, "not a site user"},
		{[]string{"--allow-loopback-port", "70000"}, "", sitefw.Policy{}, "not a port"},
		{[]string{"--allow", "10.4.0.9"}, "", sitefw.Policy{}, "--allow"},
	}
	for _, tt := range tests {
		calls = nil
		_, _, err := runCmd(t, d, append([]string{"sitefw", "apply"}, tt.args...)...)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || len(calls) != 0 {
				t.Errorf("%v: error %v (calls %d), want one with %q and nothing applied", tt.args, err, len(calls), tt.err)
			}
			continue
		}
		if err != nil || len(calls) != 1 || calls[0].p == nil {
			t.Fatalf("%v: %v, calls %+v", tt.args, err, calls)
		}
		got := *calls[0].p
		if calls[0].table != tt.table || !slices.Equal(got.Ranges, tt.want.Ranges) || !slices.Equal(got.UIDs, tt.want.UIDs) ||
			!slices.Equal(got.LoopbackPorts, tt.want.LoopbackPorts) || !slices.Equal(got.Allow, tt.want.Allow) || got.DenyPrivate != tt.want.DenyPrivate {
			t.Errorf("%v: table %s policy %+v, want %s %+v", tt.args, calls[0].table, got, tt.table, tt.want)
		}
	}

	// The resolvers of this machine are allowed by default.
	calls = nil
	if _, _, err := runCmd(t, d, "sitefw", "apply"); err != nil || len(calls) != 1 {
		t.Fatalf("apply: %v", err)
	}
	res, err := sitefw.Resolvers(sitefw.ResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls[0].p.Allow, res) {
		t.Errorf("default allow %v, want the resolvers %v", calls[0].p.Allow, res)
	}

	calls = nil
	if _, _, err := runCmd(t, d, "sitefw", "delete", "--table", "t2"); err != nil || len(calls) != 1 || calls[0].table != "t2" || calls[0].p != nil {
		t.Errorf("delete: %v, %+v", err, calls)
	}
}

// up and shard pass the site firewall's mode, and a shard's loopback ports
// default to its edge's: --public-port and --purge-url's port.
func TestSiteFirewallFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("aip_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var upCfg up.Config
	var sh shardagent.Config
	d := deps{getenv: func(string) string { return "" },
		run: func(_ context.Context, c up.Config) error { upCfg = c; return nil },
		runShard: func(_ context.Context, c shardagent.Config, _ shardagent.AgentConfig) error {
			sh = c
			return nil
		}}
	if _, _, err := runCmd(t, d, "up"); err != nil || upCfg.SiteFirewall != shardagent.FirewallAuto {
		t.Errorf("up: %v, firewall %q", err, upCfg.SiteFirewall)
	}
	if _, _, err := runCmd(t, d, "up", "--site-firewall", "off"); err != nil || upCfg.SiteFirewall != shardagent.FirewallOff {
		t.Errorf("up --site-firewall off: %v, %q", err, upCfg.SiteFirewall)
	}
	if _, _, err := runCmd(t, d, "up", "--site-firewall", "maybe"); err == nil {
		t.Error("up --site-firewall maybe: no error")
	}
	shard := []string{"shard", "--name", "s1", "--server", "http://cp:7070", "--token-file", tokenFile, "--data-dir", t.TempDir()}
	tests := []struct {
		args  []string
		mode  shardagent.FirewallMode
		ports []int
	}{
		{nil, shardagent.FirewallAuto, []int{80}},
		{[]string{"--public-port", "8080", "--purge-url", "http://127.0.0.1:18080/.aipress/purge", "--site-firewall", "on"}, shardagent.FirewallOn, []int{8080, 18080}},
		{[]string{"--site-loopback-port", "80", "--site-loopback-port", "443", "--site-firewall", "off"}, shardagent.FirewallOff, []int{80, 443}},
	}
	for _, tt := range tests {
		if _, _, err := runCmd(t, d, append(slices.Clone(shard), tt.args...)...); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if sh.SiteFirewall != tt.mode || !slices.Equal(sh.LoopbackPorts, tt.ports) {
			t.Errorf("%v: firewall %q ports %v, want %q %v", tt.args, sh.SiteFirewall, sh.LoopbackPorts, tt.mode, tt.ports)
		}
	}
	var server controlplane.Config
	d.runServer = func(_ context.Context, c controlplane.Config) error { server = c; return nil }
	if _, _, err := runCmd(t, d, "server", "--shard-provider", "kubernetes", "--namespace", "n", "--shard-image", "i",
		"--shard-server-url", "http://x", "--shard-sitefw-arg", "--allow=10.8.0.0/14:3306"); err != nil ||
		!slices.Equal(server.Kube.SiteFirewallArgs, []string{"--allow=10.8.0.0/14:3306"}) {
		t.Errorf("server --shard-sitefw-arg: %v, %v", err, server.Kube.SiteFirewallArgs)
	}
	for _, args := range [][]string{{"--site-firewall", "yes"}, {"--site-loopback-port", "0"}} {
		if _, _, err := runCmd(t, d, append(slices.Clone(shard), args...)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
