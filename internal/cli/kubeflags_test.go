package cli

import (
	"context"
	"testing"

	"github.com/aipress/aipress/internal/platform/controlplane"
)

// `aipress server --shard-provider kubernetes` needs its namespace, image
// and the API's URL as shard pods reach it.
func TestServerKubernetesFlags(t *testing.T) {
	var got controlplane.Config
	d := deps{
		getenv:    func(string) string { return "" },
		runServer: func(_ context.Context, c controlplane.Config) error { got = c; return nil },
	}
	ok := []string{"server", "--shard-provider", "kubernetes", "--namespace", "aipress", "--shard-image", "img:1",
		"--shard-server-url", "http://aipress-server:7070", "--kubeconfig", "/k", "--shard-arg", "--pool-listen=0.0.0.0"}
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"complete", ok, false},
		{"local", []string{"server", "--shard-provider", "local"}, false},
		{"unknown provider", []string{"server", "--shard-provider", "nomad"}, true},
		{"no namespace", []string{"server", "--shard-provider", "kubernetes", "--shard-image", "i", "--shard-server-url", "http://x"}, true},
		{"no image", []string{"server", "--shard-provider", "kubernetes", "--namespace", "n", "--shard-server-url", "http://x"}, true},
		{"no server URL", []string{"server", "--shard-provider", "kubernetes", "--namespace", "n", "--shard-image", "i"}, true},
		{"external MySQL without its secret", append(append([]string{}, ok...), "--shard-external-mysql", "10.0.0.1:3306"), true},
		{"read replica", append(append([]string{}, ok...), "--shard-db-replica"), false},
		{"read replica without the pooler", append(append([]string{}, ok...), "--shard-db-replica", "--shard-db-pooler=false"), true},
		{"read replica of an external MySQL", append(append([]string{}, ok...), "--shard-db-replica", "--shard-external-mysql", "10.0.0.1:3306", "--shard-external-mysql-secret", "s"), true},
		{"external replica", append(append([]string{}, ok...), "--shard-external-mysql", "10.0.0.1:3306", "--shard-external-mysql-secret", "s", "--shard-external-mysql-replica", "10.0.0.2:3306"), false},
		{"external replica without the external MySQL", append(append([]string{}, ok...), "--shard-external-mysql-replica", "10.0.0.2:3306"), true},
		{"external replica without the pooler", append(append([]string{}, ok...), "--shard-external-mysql", "10.0.0.1:3306", "--shard-external-mysql-secret", "s", "--shard-external-mysql-replica", "10.0.0.2:3306", "--shard-db-pooler=false"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = controlplane.Config{}
			_, _, err := runCmd(t, d, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if _, _, err := runCmd(t, d, ok...); err != nil {
		t.Fatal(err)
	}
	k := got.Kube
	if got.ShardProvider != "kubernetes" || k.Namespace != "aipress" || k.Image != "img:1" || k.Kubeconfig != "/k" ||
		k.ServerURL != "http://aipress-server:7070" || len(k.ShardArgs) != 1 {
		t.Errorf("server config = %+v", got)
	}
	if k.DBReplica || k.DirectDB || k.ExternalMySQLReplica != "" {
		t.Errorf("defaults: replica %v, direct %v, external replica %q", k.DBReplica, k.DirectDB, k.ExternalMySQLReplica)
	}
	if _, _, err := runCmd(t, d, append(append([]string{}, ok...), "--shard-db-pooler=false")...); err != nil || !got.Kube.DirectDB {
		t.Errorf("--shard-db-pooler=false: %v, DirectDB %v", err, got.Kube.DirectDB)
	}
	if _, _, err := runCmd(t, d, append(append([]string{}, ok...), "--shard-db-replica")...); err != nil || !got.Kube.DBReplica {
		t.Errorf("--shard-db-replica: %v, DBReplica %v", err, got.Kube.DBReplica)
	}
}
