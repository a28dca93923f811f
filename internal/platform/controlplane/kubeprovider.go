package controlplane

import (
	"fmt"
	"log/slog"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/aipress/aipress/internal/kube"
	"github.com/aipress/aipress/internal/store"
)

// Shard providers of `aipress server --shard-provider`.
const (
	ShardProviderLocal      = "local"
	ShardProviderKubernetes = "kubernetes"
)

// KubeConfig configures the Kubernetes shard provider of `aipress server`.
type KubeConfig struct {
	// Kubeconfig is a kubeconfig file; empty: the in-cluster config (the
	// pod's service account).
	Kubeconfig string
	// Namespace the shards' objects go to (the provider's Role's).
	Namespace string
	// Image runs the shards (`aipress shard`); MariaDBImage their
	// databases (empty: kube's default).
	Image, MariaDBImage string
	// ServerURL is the control plane's API as the shard pods reach it,
	// e.g. http://aipress-server.aipress.svc:7070.
	ServerURL string
	// StorageClass of the shards' volume claims (empty: the default).
	StorageClass string
	// TransferClaim is a ReadWriteMany claim every shard pod mounts as the
	// file:// transfer store for moves (see kube.Settings).
	TransferClaim string
	// ExternalMySQL (host:port) and ExternalMySQLSecret, if set, give new
	// shards an external MySQL instead of a MariaDB of their own.
	ExternalMySQL, ExternalMySQLSecret string
	// ExternalMySQLReplica (host:port), if set, is a read replica of the
	// external server (e.g. a Cloud SQL read replica) the shards' poolers
	// send reads to.
	ExternalMySQLReplica string
	// DBReplica gives the shards with a MariaDB of their own a read
	// replica (a second StatefulSet the agents seed and replicate).
	DBReplica bool
	// DirectDB turns the shard agents' connection pooler off
	// (--db-pooler=false): the sites' PHP connects to the database server.
	DirectDB bool
	// ShardArgs are appended to the shard agents' command lines.
	ShardArgs []string
	// SiteFirewallArgs are appended to the shard pods' `aipress sitefw
	// apply` (their init container).
	SiteFirewallArgs []string
}

// newKubeProvider returns the Kubernetes shard provider for cfg.
func newKubeProvider(cfg Config, transferURL string, st store.Store, log *slog.Logger) (*kube.Provider, error) {
	kc := cfg.Kube
	rest, err := clientcmd.BuildConfigFromFlags("", kc.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	var ext *kube.ExternalMySQL
	if kc.ExternalMySQL != "" {
		ext = &kube.ExternalMySQL{Host: kc.ExternalMySQL, Secret: kc.ExternalMySQLSecret, Replica: kc.ExternalMySQLReplica}
	}
	return kube.New(kube.Config{
		REST: rest, Store: st, Capacity: cfg.ShardCapacity, ExternalMySQL: ext, DBReplica: kc.DBReplica,
		Logger: log.With("component", "kube-provider"),
		Settings: kube.Settings{
			Namespace: kc.Namespace, Image: kc.Image, MariaDBImage: kc.MariaDBImage, ServerURL: kc.ServerURL,
			TransferURL: transferURL, TransferClaim: kc.TransferClaim, PublicPort: cfg.PublicPort,
			StorageClass: kc.StorageClass, ExtraArgs: kc.ShardArgs,
			SiteFirewallArgs: kc.SiteFirewallArgs, DirectDB: kc.DirectDB,
		},
	})
}
