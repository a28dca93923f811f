package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/platform/controlplane"
)

// addKubeFlags adds `aipress server`'s shard provider flags and checks them
// before the command runs.
func addKubeFlags(cmd *cobra.Command, cfg *controlplane.Config) {
	fl := cmd.Flags()
	k := &cfg.Kube
	fl.StringVar(&cfg.ShardProvider, "shard-provider", controlplane.ShardProviderLocal, "who creates shards when all are full: local (child processes, see --spawn-shards) or kubernetes (StatefulSets)")
	fl.StringVar(&k.Kubeconfig, "kubeconfig", "", "kubernetes: kubeconfig file (default: the in-cluster service account)")
	fl.StringVar(&k.Namespace, "namespace", "", "kubernetes: namespace of the shards' objects")
	fl.StringVar(&k.Image, "shard-image", "", "kubernetes: the image the shards run (aipress)")
	fl.StringVar(&k.MariaDBImage, "shard-mariadb-image", "", "kubernetes: the shards' MariaDB image (default docker.io/library/mariadb:11.4)")
	fl.StringVar(&k.ServerURL, "shard-server-url", "", "kubernetes: this API's URL as shard pods reach it, e.g. http://aipress-server.aipress.svc:7070")
	fl.StringVar(&k.StorageClass, "shard-storage-class", "", "kubernetes: storage class of the shards' volumes (default: the cluster's)")
	fl.StringVar(&k.TransferClaim, "shard-transfer-claim", "", "kubernetes: a ReadWriteMany claim mounted in every shard pod as the transfer store for moves")
	fl.StringVar(&k.ExternalMySQL, "shard-external-mysql", "", "kubernetes: host:port of a MySQL new shards use instead of a MariaDB of their own (e.g. Cloud SQL)")
	fl.StringVar(&k.ExternalMySQLSecret, "shard-external-mysql-secret", "", "kubernetes: Secret with keys username and password for --shard-external-mysql")
	fl.StringVar(&k.ExternalMySQLReplica, "shard-external-mysql-replica", "", "kubernetes: host:port of a read replica of --shard-external-mysql (e.g. a Cloud SQL read replica) the shards' poolers send reads to")
	fl.BoolVar(&k.DBReplica, "shard-db-replica", false, "kubernetes: give each shard's MariaDB a read replica (a second StatefulSet the agent seeds and replicates with GTIDs; the pooler sends reads to it while it keeps up)")
	shardPooler := true
	fl.BoolVar(&shardPooler, "shard-db-pooler", true, "kubernetes: the shard agents run a MySQL connection pooler between the sites' PHP and the database server; false: PHP connects directly, and the site firewall lets it")
	fl.StringArrayVar(&k.ShardArgs, "shard-arg", nil, "kubernetes: extra argument for the shard agents (repeatable)")
	fl.StringArrayVar(&k.SiteFirewallArgs, "shard-sitefw-arg", nil, "kubernetes: extra argument for the shard pods' site firewall init container ('aipress sitefw apply', e.g. --allow=10.8.0.0/14:3306) (repeatable)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(cmd, args); err != nil {
				return err
			}
		}
		k.DirectDB = !shardPooler
		switch cfg.ShardProvider {
		case controlplane.ShardProviderLocal:
			return nil
		case controlplane.ShardProviderKubernetes:
		default:
			return fmt.Errorf("--shard-provider: %q is not local or kubernetes", cfg.ShardProvider)
		}
		switch {
		case k.Namespace == "":
			return fmt.Errorf("--shard-provider kubernetes needs --namespace")
		case k.Image == "":
			return fmt.Errorf("--shard-provider kubernetes needs --shard-image")
		case k.ServerURL == "":
			return fmt.Errorf("--shard-provider kubernetes needs --shard-server-url")
		case (k.ExternalMySQL == "") != (k.ExternalMySQLSecret == ""):
			return fmt.Errorf("--shard-external-mysql and --shard-external-mysql-secret go together")
		case k.ExternalMySQLReplica != "" && k.ExternalMySQL == "":
			return fmt.Errorf("--shard-external-mysql-replica is a replica of --shard-external-mysql")
		case k.DBReplica && k.ExternalMySQL != "":
			return fmt.Errorf("--shard-db-replica runs a replica of the shards' own MariaDB; with --shard-external-mysql give the server's replica with --shard-external-mysql-replica")
		case (k.DBReplica || k.ExternalMySQLReplica != "") && k.DirectDB:
			return fmt.Errorf("a read replica needs the pooler (--shard-db-pooler): it routes the reads")
		}
		return nil
	}
}
