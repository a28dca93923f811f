package shard

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
)

// A managed replica (Config.ReplicaManaged) is a read replica reached by
// address, like an external server's (Config.Replica HOST:PORT), whose
// replication is the shard's to set up: on Kubernetes the provider runs it
// as a second MariaDB StatefulSet beside the shard's own
// (internal/kube, ShardSpec.DBReplica), which starts as an empty server
// with the replica's options (read_only, server_id 2, relay log) and the
// primary's root password. The agent administers it as a remote server
// with the same account it administers the primary with (Database), and
// keeps it replicating: it seeds it from the primary (mariadb-dump over
// the network as the primary's replication account, then GTID replication
// from the position the dump is consistent with), points it at the
// primary again when the primary's address or that account's password
// changed, and seeds it again when its data cannot be trusted
// (mariadb.Server.EnsureReplicationFrom). A replica pod that lost its
// volume comes back empty and unconfigured, and is seeded again.
//
// The replica reaches the primary at Database.Addr (the primary's Service
// name resolves in the replica's pod as in the agent's).

// managedReplicaInterval is how often the agent checks a managed replica.
const managedReplicaInterval = 5 * time.Second

// checkManagedReplica checks Config.ReplicaManaged against the rest.
func (s *Shard) checkManagedReplica() error {
	if !s.cfg.ReplicaManaged {
		return nil
	}
	if s.cfg.Database == nil || s.cfg.Replica == "" || s.cfg.Replica == ReplicaLocal {
		return errors.New("a managed database replica is a replica by address (HOST:PORT) of an external server (Database) whose replication the shard sets up")
	}
	return nil
}

// runManagedReplica keeps the managed replica replicating from the
// primary until ctx ends.
func (s *Shard) runManagedReplica(ctx context.Context) {
	log := s.log.With("component", "replica-manager", "replica", s.cfg.Replica)
	rep := &mariadb.Server{
		Dir:    filepath.Join(s.cfg.Dir, "mariadb-replica-admin"),
		Logger: log,
		Remote: &mariadb.Remote{Addr: s.cfg.Replica, User: s.cfg.Database.User, Password: s.cfg.Database.Password,
			UserHost: s.cfg.Database.UserHost},
		LoadUserPrefix: s.prefix + "ld_",
	}
	if err := rep.Prepare(ctx); err != nil {
		log.Error("managed replica", "err", err)
		return
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = rep.Run(ctx) }()
	defer func() { <-done; rep.Close() }()
	keepReplicating(ctx, log, s.db, rep, s.cfg.Database.Addr, managedReplicaInterval)
}

// keepReplicating makes replica (administered remotely, running) a replica
// of primary, which it reaches at primaryAddr, and keeps it one: at once
// when both are up, then every interval, until ctx ends. Errors are logged
// (a seed waits for the primary, a replica pod restarting, …) and retried.
func keepReplicating(ctx context.Context, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, primary, replica *mariadb.Server, primaryAddr string, interval time.Duration) {
	for _, ch := range []<-chan struct{}{primary.Ready(), replica.Ready()} {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failing bool
	for {
		err := ensureManagedReplica(ctx, primary, replica, primaryAddr)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			log.Warn("read replica not replicating; reads go to the primary", "err", err)
		case err == nil && failing:
			log.Info("read replica replicating")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func ensureManagedReplica(ctx context.Context, primary, replica *mariadb.Server, primaryAddr string) error {
	user, pw, err := primary.Account(ctx, mariadb.RoleReplication)
	if err != nil {
		return fmt.Errorf("replication account: %w", err)
	}
	return replica.EnsureReplicationFrom(ctx, mariadb.Source{Addr: primaryAddr, User: user, Password: pw})
}
