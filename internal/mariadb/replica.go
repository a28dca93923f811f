package mariadb

import (
	"context"
	"fmt"
	"path/filepath"
)

// Source is a primary server a replica replicates from, reached over TCP.
type Source struct {
	Addr string // host:port of the primary
	// User and Password are the primary's "replication" account
	// (Account): it streams the binary log and seeds the replica with
	// mariadb-dump.
	User     string
	Password string
}

func (s *Server) isReplica() bool { return s.ReplicaOf != nil || s.ReplicaOfRemote != nil }

// prepareReplica checks a replica's settings.
func (s *Server) prepareReplica() error {
	if !s.isReplica() {
		return nil
	}
	if s.Remote != nil {
		return fmt.Errorf("mariadb: a replica is a server run here (Remote is set)")
	}
	if s.ReplicaOf != nil && s.ReplicaOfRemote != nil {
		return fmt.Errorf("mariadb: ReplicaOf and ReplicaOfRemote are both set")
	}
	if s.ReplicaOf != nil && (s.ReplicaOf.Remote != nil || s.ReplicaOf.Dir == s.Dir) {
		return fmt.Errorf("mariadb: ReplicaOf must be another local server")
	}
	return nil
}

// replicaConfig is the [mysqld] part only a replica has.
func (s *Server) replicaConfig() string {
	if !s.isReplica() {
		return ""
	}
	return fmt.Sprintf(`
# Read replica: only the replication thread (and root) write.
read_only = ON
relay_log = %s
relay_log_index = %s
relay_log_recovery = ON
log_slave_updates = OFF
skip_slave_start = OFF
slave_net_timeout = 10
`, filepath.Join(s.binlogDir(), "relay-bin"), filepath.Join(s.binlogDir(), "relay-bin.index"))
}

// GTIDPos returns the server's GTID position: @@gtid_binlog_pos on a
// primary (the last transaction it logged, per domain), @@gtid_slave_pos
// on a replica (the last one it applied).
func (s *Server) GTIDPos(ctx context.Context) (string, error) {
	q := "SELECT @@GLOBAL.gtid_binlog_pos"
	if s.isReplica() {
		q = "SELECT @@GLOBAL.gtid_slave_pos"
	}
	v, err := s.QueryString(ctx, q)
	if err != nil {
		return "", fmt.Errorf("mariadb: gtid position: %w", err)
	}
	return v, nil
}
