package pooler

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// fakeGate is a ReplicaGate the test controls; it records the GTIDs it
// was asked about.
type fakeGate struct {
	mu     sync.Mutex
	usable bool
	// fresh: usable only for sessions without a write to wait for.
	fresh bool
	seen  []string
}

func (g *fakeGate) Usable(gtid string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, gtid)
	return g.usable && (!g.fresh || gtid == "")
}

func (g *fakeGate) set(usable, fresh bool) {
	g.mu.Lock()
	g.usable, g.fresh = usable, fresh
	g.mu.Unlock()
}

func (g *fakeGate) last() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) == 0 {
		return ""
	}
	return g.seen[len(g.seen)-1]
}

// replicaSite creates table t on the primary and on the stand-in replica
// with different rows, so a read shows where it ran.
func replicaSite(t *testing.T) site {
	s := newSite(t, 2)
	for _, srv := range []struct{ sock, v string }{{primary.Socket(), "primary"}, {replicaDB.Socket(), "replica"}} {
		d := open(t, srv.sock, s.User, s.Password, s.Database)
		mustExec(t, d, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(20))")
		mustExec(t, d, "INSERT INTO t (v) VALUES (?)", srv.v)
	}
	return s
}

func TestReplicaRouting(t *testing.T) {
	s := replicaSite(t)
	g := &fakeGate{usable: true}
	p := startPooler(t, Config{Replica: &Backend{Network: "unix", Addr: replicaDB.Socket()}, Gate: g}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a := conn(t, db)
	const read = "SELECT GROUP_CONCAT(v ORDER BY id) FROM t"
	if got := queryString(t, a, read); got != "replica" {
		t.Fatalf("read with a usable replica: %q", got)
	}
	if st := p.Stats(); st.QueriesReplica != 1 || st.BackendsReplica != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// Lagging (gate says no): the primary.
	g.set(false, false)
	if got := queryString(t, a, read); got != "primary" {
		t.Fatalf("read with an unusable replica: %q", got)
	}
	// In a transaction: the primary.
	g.set(true, false)
	mustExec(t, a, "BEGIN")
	if got := queryString(t, a, read); got != "primary" {
		t.Fatalf("read in a transaction: %q", got)
	}
	mustExec(t, a, "COMMIT")
	// Locking reads are not reads.
	if got := queryString(t, a, read+" FOR UPDATE"); got != "primary" {
		t.Fatalf("locking read: %q", got)
	}

	// Read-your-writes: after a write the session's reads wait for the
	// replica to have the write's GTID (the fake gate refuses any).
	g.set(true, true)
	mustExec(t, a, "INSERT INTO t (v) VALUES ('written')")
	pos, err := primary.GTIDPos(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	queryString(t, a, "SELECT 1") // the statement right after a write stays on its backend
	if got := queryString(t, a, read); got != "primary,written" {
		t.Fatalf("read after own write: %q", got)
	}
	if gt := g.last(); gt == "" || gt != pos {
		t.Fatalf("gate asked about GTID %q, want the write's %q", gt, pos)
	}
	// Another session has no write to wait for.
	other := conn(t, db)
	if got := queryString(t, other, read); got != "replica" {
		t.Fatalf("other session: %q", got)
	}
	// A transaction that wrote: its COMMIT's GTID.
	tx := conn(t, db)
	mustExec(t, tx, "BEGIN")
	mustExec(t, tx, "INSERT INTO t (v) VALUES ('tx')")
	mustExec(t, tx, "COMMIT")
	if pos, err = primary.GTIDPos(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, tx, read); got != "primary,written,tx" {
		t.Fatalf("read after own transaction: %q", got)
	}
	if gt := g.last(); gt != pos {
		t.Fatalf("gate asked about GTID %q after a commit, want %q", gt, pos)
	}
	g.set(true, false)
	if got := queryString(t, other, read); got != "replica" {
		t.Fatalf("other session: %q", got)
	}
	// The replica dies under its pooled connections: reads still answer
	// (from the primary, or from the replica once restarted), no error.
	if err := replicaDB.Kill(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := queryString(t, other, read); got != "replica" && got != "primary,written,tx" {
			t.Fatalf("read with the replica killed: %q", got)
		}
	}
}

// TestReplicaDown: a replica that cannot be reached: reads go to the
// primary.
func TestReplicaDown(t *testing.T) {
	s := replicaSite(t)
	g := &fakeGate{usable: true}
	p := startPooler(t, Config{Replica: &Backend{Network: "unix", Addr: filepath.Join(t.TempDir(), "gone.sock")}, Gate: g}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	if got := queryString(t, db, "SELECT GROUP_CONCAT(v ORDER BY id) FROM t"); got != "primary" {
		t.Fatalf("read with the replica down: %q", got)
	}
}
