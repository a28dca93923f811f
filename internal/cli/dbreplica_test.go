package cli

import (
	"context"
	"testing"

	"github.com/aipress/aipress/internal/platform/shardagent"
)

// The shard agent's --db-replica-managed (what the Kubernetes provider
// gives a shard with a replica StatefulSet) goes with a replica by address
// of the external server, as the provider's pod sets them.
func TestShardManagedReplicaFlag(t *testing.T) {
	var got shardagent.Config
	env := map[string]string{EnvServer: "http://cp:7070", EnvShardToken: "aip_x",
		EnvDBHost: "aipress-shard-k8s-1-db:3306", EnvDBUser: "root", EnvDBPassword: "pw"}
	d := deps{
		getenv:   func(k string) string { return env[k] },
		runShard: func(_ context.Context, c shardagent.Config, _ shardagent.AgentConfig) error { got = c; return nil },
	}
	dir := t.TempDir()
	base := []string{"shard", "--name", "k8s-1", "--data-dir", dir}
	if _, _, err := runCmd(t, d, append(base, "--db-replica", "aipress-shard-k8s-1-db-replica:3306", "--db-replica-managed")...); err != nil {
		t.Fatal(err)
	}
	if !got.DBReplicaManaged || got.DBReplica != "aipress-shard-k8s-1-db-replica:3306" || got.Database == nil {
		t.Errorf("shard config: managed %v, replica %q, database %+v", got.DBReplicaManaged, got.DBReplica, got.Database)
	}
	got = shardagent.Config{}
	if _, _, err := runCmd(t, d, append(base, "--db-replica", "10.1.2.4:3306")...); err != nil || got.DBReplicaManaged {
		t.Errorf("replica by address: %v, managed %v", err, got.DBReplicaManaged)
	}
	if _, _, err := runCmd(t, d, append(base, "--db-replica-managed")...); err == nil {
		t.Error("--db-replica-managed without --db-replica: no error")
	}
}
