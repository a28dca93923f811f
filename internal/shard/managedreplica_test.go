package shard

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
)

// runDB prepares and runs s until the test ends and waits until it is up.
func runDB(t *testing.T, s *mariadb.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	select {
	case <-s.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("mariadb not ready")
	}
}

func execAll(t *testing.T, s *mariadb.Server, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if err := s.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A managed replica is what the Kubernetes provider's replica StatefulSet
// starts as: an empty server run read-only with a server_id of its own and
// the primary's admin password, reached over TCP. The agent — whose
// primary is an external server too (the primary's StatefulSet) — seeds it
// from the primary and starts its replication; a replica that comes back
// empty (its volume lost: no replication configured) is seeded again by
// itself.
func TestManagedReplica(t *testing.T) {
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("mariadb-server not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	// The two StatefulSets: the same admin account and password (the
	// image's root from one Secret), the replica read-only, server_id 2.
	primary := &mariadb.Server{Dir: filepath.Join(dir, "primary"), Logger: quiet}
	runDB(t, primary)
	other := &mariadb.Server{Dir: filepath.Join(dir, "replica"), Logger: quiet, ServerID: 2}
	runDB(t, other)
	for _, s := range []*mariadb.Server{primary, other} {
		execAll(t, s, "CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'admin pw'",
			"GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION")
	}
	execAll(t, other, "SET GLOBAL read_only = ON")

	// The agent: its database server is the primary, by address.
	remote := &mariadb.Remote{Addr: "127.0.0.1:" + strconv.Itoa(primary.Port()), User: "admin", Password: "admin pw"}
	agentDir := filepath.Join(dir, "agent")
	if err := os.MkdirAll(agentDir, 0o711); err != nil {
		t.Fatal(err)
	}
	db := &mariadb.Server{Dir: filepath.Join(agentDir, "mariadb"), Logger: quiet, Remote: remote}
	runDB(t, db)
	sh := &Shard{log: quiet, db: db, prefix: "t_", cfg: Config{Dir: agentDir, Database: remote,
		Replica: "127.0.0.1:" + strconv.Itoa(other.Port()), ReplicaManaged: true}}
	if err := sh.checkManagedReplica(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	if err := primary.EnsureDatabase(ctx, "wp_a", "wp_a", "pwA", 10); err != nil {
		t.Fatal(err)
	}
	execAll(t, primary, "CREATE TABLE wp_a.t (x int)", "INSERT INTO wp_a.t VALUES (1)")

	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sh.runManagedReplica(kctx) }()
	t.Cleanup(func() { stop(); <-done })

	rows := func() string {
		v, _ := other.QueryString(ctx, "SELECT GROUP_CONCAT(x ORDER BY x) FROM wp_a.t")
		return v
	}
	waitRows := func(want string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for rows() != want {
			if time.Now().After(deadline) {
				st, err := other.ReplicaStatus(ctx)
				t.Fatalf("replica rows %q, want %q; status %+v, %v", rows(), want, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Seeded (the row written before), then replicating (the row after).
	waitRows("1")
	execAll(t, primary, "INSERT INTO wp_a.t VALUES (2)")
	waitRows("1,2")
	if st, err := other.ReplicaStatus(ctx); err != nil || !st.Healthy() || st.SourceAddr != remote.Addr {
		t.Fatalf("replica status %+v, %v", st, err)
	}

	// The replica comes back empty and unconfigured: seeded again.
	execAll(t, other, "STOP SLAVE", "RESET SLAVE ALL", "DROP DATABASE wp_a")
	execAll(t, primary, "INSERT INTO wp_a.t VALUES (3)")
	waitRows("1,2,3")

	// Only with a replica by address of an external server.
	for _, c := range []Config{
		{ReplicaManaged: true, Replica: "r:3306"},
		{ReplicaManaged: true, Database: remote, Replica: ReplicaLocal},
		{ReplicaManaged: true, Database: remote},
	} {
		if err := (&Shard{cfg: c}).checkManagedReplica(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
