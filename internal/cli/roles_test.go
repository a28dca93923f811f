package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/edgenode"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/platform/up"
)

// The role commands turn flags, files and the environment into their
// platform configurations, and refuse what cannot work.
func TestRoleCommands(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("aip_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "purge-secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		server controlplane.Config
		shard  shardagent.Config
		agent  shardagent.AgentConfig
		edge   edgenode.RunConfig
		upCfg  up.Config
	)
	env := map[string]string{}
	d := deps{
		getenv:    func(k string) string { return env[k] },
		run:       func(_ context.Context, c up.Config) error { upCfg = c; return nil },
		runServer: func(_ context.Context, c controlplane.Config) error { server = c; return nil },
		runShard: func(_ context.Context, c shardagent.Config, a shardagent.AgentConfig) error {
			shard, agent = c, a
			return nil
		},
		runEdge: func(_ context.Context, c edgenode.RunConfig) error { edge = c; return nil },
	}

	if _, _, err := runCmd(t, d, "up", "--shards", "3", "--shard-capacity", "7"); err != nil || upCfg.Shards != 3 || upCfg.ShardCapacity != 7 {
		t.Errorf("up --shards 3 --shard-capacity 7: %v, %+v", err, upCfg)
	}
	if _, _, err := runCmd(t, d, "up", "--shards", "0"); err == nil {
		t.Error("up --shards 0: no error")
	}

	if _, _, err := runCmd(t, d, "server", "--api", "127.0.0.1:1", "--shard-capacity", "2", "--heartbeat-timeout", "3s", "--public-port", "8080"); err != nil {
		t.Fatal(err)
	}
	if server.APIAddr != "127.0.0.1:1" || server.ShardCapacity != 2 || server.HeartbeatTimeout != 3*time.Second || server.PublicPort != 8080 || !server.SpawnShards || server.Logger == nil {
		t.Errorf("server config = %+v", server)
	}
	if _, _, err := runCmd(t, d, "server", "--store", "mysql://x"); err == nil {
		t.Error("server --store mysql://: no error")
	}

	if _, _, err := runCmd(t, d, "shard", "--name", "s1", "--server", "http://cp:7070", "--token-file", tokenFile,
		"--capacity", "2", "--label", "region=eu", "--public-port", "8080", "--purge-url", "http://127.0.0.1:8080/.aipress/purge",
		"--purge-secret-file", secretFile, "--data-dir", filepath.Join(dir, "s1")); err != nil {
		t.Fatal(err)
	}
	if shard.Name != "s1" || shard.Capacity != 2 || shard.Labels["region"] != "eu" || agent.Server != "http://cp:7070" || agent.Token != "aip_secret" {
		t.Errorf("shard config = %+v, agent %+v", shard, agent)
	}
	if got := shard.PublicURL("a.localhost"); got != "http://a.localhost:8080" {
		t.Errorf("public URL = %q", got)
	}
	if shard.PurgeKey == nil || len(shard.PurgeKey("a.localhost")) != 64 || !strings.HasPrefix(shard.TransferURL, "file://") {
		t.Errorf("purge key / transfer URL: %+v", shard)
	}
	// The environment stands in for --server and the token file.
	env[EnvServer], env[EnvShardToken] = "http://env:7070", "aip_env"
	if _, _, err := runCmd(t, d, "shard", "--name", "s2"); err != nil || agent.Server != "http://env:7070" || agent.Token != "aip_env" {
		t.Errorf("shard from env: %v, %+v", err, agent)
	}
	// Edges on other machines: the gateway.
	if _, _, err := runCmd(t, d, "shard", "--name", "s4", "--gateway-addr", ":8443", "--gateway-advertise", "shard-4.internal"); err != nil {
		t.Fatal(err)
	}
	if shard.GatewayAddr != ":8443" || shard.GatewayAdvertise != "shard-4.internal" {
		t.Errorf("gateway shard config = %+v", shard)
	}
	// Default: no gateway.
	if _, _, err := runCmd(t, d, "shard", "--name", "s5"); err != nil || shard.GatewayAddr != "" {
		t.Errorf("default shard: %v %+v", err, shard)
	}
	for _, args := range [][]string{
		{"shard", "--name", "s6", "--gateway-advertise", "x"},
		// TCP pools and the plain-HTTP static server are gone, with a
		// clear error rather than a silent change of behaviour.
		{"shard", "--name", "s6", "--pool-listen", "0.0.0.0"},
		{"shard", "--name", "s6", "--pool-ports", "9100-9199"},
		{"shard", "--name", "s6", "--allowed-clients", "any"},
		{"shard", "--name", "s6", "--static-addr", ":8082"},
	} {
		if _, stderr, err := runCmd(t, d, args...); err == nil {
			t.Errorf("%v: no error", args)
		} else if strings.Contains(args[3], "pool") && !strings.Contains(err.Error()+stderr, "gateway") {
			t.Errorf("%v: %v does not point to --gateway-addr", args, err)
		}
	}
	delete(env, EnvShardToken)
	for _, args := range [][]string{
		{"shard", "--name", "s3"}, // no token
		{"shard", "--name", "s3", "--token-file", filepath.Join(dir, "none")}, // unreadable token
		{"shard", "--name", "s3", "--token-file", tokenFile, "--capacity", "0"},
	} {
		if _, _, err := runCmd(t, d, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	delete(env, EnvServer)

	if _, _, err := runCmd(t, d, "edge", "--server", "http://cp:7070", "--token-file", tokenFile, "--http", ":9", "--rate-ip", "0"); err != nil {
		t.Fatal(err)
	}
	if edge.Server != "http://cp:7070" || edge.Token != "aip_secret" || edge.HTTPAddr != ":9" || edge.RateIP >= 0 || edge.RateSite <= 0 ||
		edge.Locality.ShardDirs != nil {
		t.Errorf("edge config = %+v", edge)
	}
	if _, _, err := runCmd(t, d, "edge", "--server", "http://cp:7070", "--token-file", tokenFile, "--local-shards-dir", "rel/shards",
		"--local-shards-dir", "/var/lib/aipress/shards", "--symlink-root", "/usr/share/javascript"); err != nil {
		t.Fatal(err)
	}
	if len(edge.Locality.ShardDirs) != 2 || !filepath.IsAbs(edge.Locality.ShardDirs[0]) || edge.Locality.ShardDirs[1] != "/var/lib/aipress/shards" ||
		len(edge.Locality.SymlinkRoots) != 1 {
		t.Errorf("edge locality = %+v", edge.Locality)
	}
	if _, _, err := runCmd(t, d, "edge", "--server", "http://cp:7070", "--token-file", tokenFile, "--symlink-root", "relative"); err == nil {
		t.Error("relative --symlink-root: no error")
	}
	if _, _, err := runCmd(t, d, "edge", "--token-file", tokenFile); err == nil {
		t.Error("edge without --server: no error")
	}
}
