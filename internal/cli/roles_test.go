package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/platform"
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
		server platform.ServerConfig
		shard  platform.ShardConfig
		agent  platform.AgentConfig
		edge   platform.EdgeConfig
		up     platform.Config
	)
	env := map[string]string{}
	d := deps{
		getenv:    func(k string) string { return env[k] },
		run:       func(_ context.Context, c platform.Config) error { up = c; return nil },
		runServer: func(_ context.Context, c platform.ServerConfig) error { server = c; return nil },
		runShard: func(_ context.Context, c platform.ShardConfig, a platform.AgentConfig) error {
			shard, agent = c, a
			return nil
		},
		runEdge: func(_ context.Context, c platform.EdgeConfig) error { edge = c; return nil },
	}

	if _, _, err := runCmd(t, d, "up", "--shards", "3", "--shard-capacity", "7"); err != nil || up.Shards != 3 || up.ShardCapacity != 7 {
		t.Errorf("up --shards 3 --shard-capacity 7: %v, %+v", err, up)
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
	// Remote edges: pools on TCP, a static server, allowed clients.
	if _, _, err := runCmd(t, d, "shard", "--name", "s4", "--pool-listen", "0.0.0.0", "--pool-advertise", "shard-4.internal",
		"--pool-ports", "9200-9299", "--allowed-clients", "10.0.0.7,10.1.0.0/28", "--static-addr", ":8082",
		"--static-advertise", "shard-4.internal"); err != nil {
		t.Fatal(err)
	}
	if shard.PoolListen != "0.0.0.0" || shard.PoolAdvertise != "shard-4.internal" || shard.PoolPortFirst != 9200 || shard.PoolPortLast != 9299 ||
		len(shard.AllowedClients) != 2 || len(shard.AllowedClients.Addresses()) != 17 || shard.StaticAddr != ":8082" || shard.StaticAdvertise != "shard-4.internal" {
		t.Errorf("remote-edge shard config = %+v", shard)
	}
	// Defaults: Unix sockets, no static server, loopback clients.
	if _, _, err := runCmd(t, d, "shard", "--name", "s5"); err != nil || shard.PoolListen != "" || shard.StaticAddr != "" ||
		shard.PoolPortFirst != 9100 || shard.PoolPortLast != 9199 || len(shard.AllowedClients) != 2 {
		t.Errorf("default shard: %v %+v", err, shard)
	}
	for _, args := range [][]string{
		{"shard", "--name", "s6", "--pool-ports", "9300-9200"},
		{"shard", "--name", "s6", "--allowed-clients", "10.0.0.0/8"},
		{"shard", "--name", "s6", "--allowed-clients", "everyone"},
		{"shard", "--name", "s6", "--pool-advertise", "x"},
		{"shard", "--name", "s6", "--static-advertise", "x"},
	} {
		if _, _, err := runCmd(t, d, args...); err == nil {
			t.Errorf("%v: no error", args)
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
	if edge.Server != "http://cp:7070" || edge.Token != "aip_secret" || edge.HTTPAddr != ":9" || edge.RateIP >= 0 || edge.RateSite <= 0 {
		t.Errorf("edge config = %+v", edge)
	}
	if _, _, err := runCmd(t, d, "edge", "--token-file", tokenFile); err == nil {
		t.Error("edge without --server: no error")
	}
}
