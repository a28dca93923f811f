package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// runReplica prepares and runs a replica server in dir until the test
// ends (or stop is called) and waits until it replicates.
func runReplica(t *testing.T, s *Server) (stop func()) {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			s.Close()
		}
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case <-time.After(3 * time.Minute):
		t.Fatal("replica not ready")
	}
	return stop
}

// caughtUp waits until replica has applied everything primary logged.
func caughtUp(t *testing.T, primary, replica *Server) {
	t.Helper()
	ctx := context.Background()
	want, err := primary.GTIDPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := replica.GTIDPos(ctx)
		if err == nil && seqOf(got) >= seqOf(want) {
			return
		}
		if time.Now().After(deadline) {
			st, _ := replica.ReplicaStatus(ctx)
			seeded, _ := os.ReadFile(replica.seededFile())
			hosts, _ := primary.QueryString(ctx, "SELECT GROUP_CONCAT(HOST, ' ', COMMAND, ' ', USER) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog%'")
			t.Fatalf("replica at %q (%v), primary (port %d) at %q; status %+v; seeded %q; the primary's binlog dumps: %q",
				got, err, primary.Port(), want, st, seeded, hosts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seqOf is the sequence number of a position in domain 0 (the only one
// the servers use); -1 for none.
func seqOf(pos string) int64 {
	for _, g := range strings.Split(pos, ",") {
		if parts := strings.Split(g, "-"); len(parts) == 3 && parts[0] == "0" {
			n, err := strconv.ParseInt(parts[2], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func mustExec(t *testing.T, s *Server, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if err := s.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func count(t *testing.T, s *Server, table string) int {
	t.Helper()
	v, err := s.QueryString(context.Background(), "SELECT COUNT(*) FROM "+table)
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

// A replica of a local primary: seeded from the primary's databases and
// accounts, then following its writes by GTID; a site user logs in to it,
// reads its own database only and writes nothing; a restart resumes from
// its position; a replica whose data diverged is seeded again.
func TestReplica(t *testing.T) {
	primary := startServer(t)
	ctx := context.Background()
	if err := primary.EnsureDatabase(ctx, "wp_r1", "wp_r1", "pw1", 10); err != nil {
		t.Fatal(err)
	}
	if err := primary.EnsureDatabase(ctx, "wp_r2", "wp_r2", "pw2", 10); err != nil {
		t.Fatal(err)
	}
	mustExec(t, primary,
		"CREATE TABLE wp_r1.t (id int primary key, v varchar(20)) CHARSET utf8mb4",
		"INSERT INTO wp_r1.t VALUES (1, 'one'), (2, 'zwei ✓')",
		"CREATE TABLE wp_r2.secret (x int)", "INSERT INTO wp_r2.secret VALUES (42)")

	replica := &Server{Dir: filepath.Join(filepath.Dir(primary.Dir), "replica"), ReplicaOf: primary,
		keepEvery: 200 * time.Millisecond, reseedGap: time.Millisecond}
	stop := runReplica(t, replica)

	// Seeded with what the primary had.
	if v, err := replica.QueryString(ctx, "SELECT v FROM wp_r1.t WHERE id = 2"); err != nil || v != "zwei ✓" {
		t.Fatalf("seeded row = %q, %v", v, err)
	}
	if v, _ := replica.QueryString(ctx, "SELECT @@server_id"); v != "2" {
		t.Errorf("replica server_id = %s", v)
	}
	if v, _ := replica.QueryString(ctx, "SELECT @@read_only"); v != "1" {
		t.Errorf("replica read_only = %s", v)
	}
	// New writes and new accounts follow.
	mustExec(t, primary, "INSERT INTO wp_r1.t VALUES (3, 'three')")
	if err := primary.EnsureDatabase(ctx, "wp_r3", "wp_r3", "pw3", 10); err != nil {
		t.Fatal(err)
	}
	mustExec(t, primary, "CREATE TABLE wp_r3.t (x int)", "INSERT INTO wp_r3.t VALUES (7)")
	caughtUp(t, primary, replica)
	if n := count(t, replica, "wp_r1.t"); n != 3 {
		t.Fatalf("replica rows = %d, want 3", n)
	}
	st, err := replica.ReplicaStatus(ctx)
	if err != nil || !st.Healthy() || st.SecondsBehind == nil || st.GTIDPos == "" ||
		st.SourceAddr != "127.0.0.1:"+strconv.Itoa(primary.Port()) {
		t.Fatalf("status = %+v, %v", st, err)
	}

	// Site users: one copied by the seed, one replicated since.
	for _, u := range []struct{ name, pw, table string }{{"wp_r1", "pw1", "t"}, {"wp_r3", "pw3", "t"}} {
		db, err := replica.OpenAs(u.name, u.pw, u.name)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+u.table).Scan(&n); err != nil || n == 0 {
			t.Fatalf("%s reads its database on the replica: %d, %v", u.name, n, err)
		}
		if _, err := db.ExecContext(ctx, "SELECT * FROM wp_r2.secret"); err == nil {
			t.Fatalf("%s read another site's database on the replica", u.name)
		}
		_, err = db.ExecContext(ctx, "INSERT INTO "+u.table+" VALUES (99"+strings.Repeat(", 'x'", map[string]int{"wp_r1": 1, "wp_r3": 0}[u.name])+")")
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1290 { // ER_OPTION_PREVENTS_STATEMENT: read-only
			t.Fatalf("%s's write on the replica: %v, want error 1290 (read-only)", u.name, err)
		}
	}
	if db, err := replica.OpenAs("wp_r1", "wrong", "wp_r1"); err != nil {
		t.Fatal(err)
	} else if err := db.PingContext(ctx); err == nil {
		t.Fatal("a wrong password logged in to the replica")
	} else {
		db.Close()
	}

	// A restart resumes by GTID (no new seed): writes made meanwhile arrive.
	seeded, err := os.ReadFile(replica.seededFile())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	mustExec(t, primary, "INSERT INTO wp_r1.t VALUES (4, 'while down')")
	replica2 := &Server{Dir: replica.Dir, ReplicaOf: primary, keepEvery: 200 * time.Millisecond, reseedGap: time.Millisecond}
	runReplica(t, replica2)
	caughtUp(t, primary, replica2)
	if n := count(t, replica2, "wp_r1.t"); n != 4 {
		t.Fatalf("replica rows after restart = %d, want 4", n)
	}
	if again, _ := os.ReadFile(replica2.seededFile()); string(again) != string(seeded) {
		t.Fatalf("the restart seeded the replica again: %q, was %q", again, seeded)
	}

	// Diverged data (a row the primary updates is missing) stops the SQL
	// thread; the replica is seeded again and follows once more.
	mustExec(t, replica2, "SET GLOBAL read_only = OFF")
	db, err := replica2.OpenRoot("wp_r1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "DELETE FROM t WHERE id = 1", "SET GLOBAL read_only = ON"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	mustExec(t, primary, "UPDATE wp_r1.t SET v = 'uno' WHERE id = 1")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, err := replica2.QueryString(ctx, "SELECT v FROM wp_r1.t WHERE id = 1")
		if err == nil && v == "uno" {
			break
		}
		if time.Now().After(deadline) {
			st, _ := replica2.ReplicaStatus(ctx)
			t.Fatalf("diverged replica not repaired: %q, %v; status %+v", v, err, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if again, _ := os.ReadFile(replica2.seededFile()); string(again) == string(seeded) {
		t.Fatal("the repair did not seed the replica again")
	}
	caughtUp(t, primary, replica2)
	if n := count(t, replica2, "wp_r1.t"); n != 4 {
		t.Fatalf("replica rows after the new seed = %d, want 4", n)
	}
}

// A replica of a primary reached by address (Kubernetes: another pod),
// with the primary's replication account.
func TestReplicaOfRemote(t *testing.T) {
	primary := startServer(t)
	ctx := context.Background()
	if err := primary.EnsureDatabase(ctx, "wp_k", "wp_k", "pwK", 10); err != nil {
		t.Fatal(err)
	}
	mustExec(t, primary, "CREATE TABLE wp_k.t (x int)", "INSERT INTO wp_k.t VALUES (1)")
	user, pw, err := primary.Account(ctx, RoleReplication)
	if err != nil {
		t.Fatal(err)
	}
	replica := &Server{Dir: filepath.Join(filepath.Dir(primary.Dir), "replica"),
		ReplicaOfRemote: &Source{Addr: "127.0.0.1:" + strconv.Itoa(primary.Port()), User: user, Password: pw}}
	runReplica(t, replica)
	mustExec(t, primary, "INSERT INTO wp_k.t VALUES (2)")
	caughtUp(t, primary, replica)
	if n := count(t, replica, "wp_k.t"); n != 2 {
		t.Fatalf("rows = %d", n)
	}
	if _, _, err := replica.Account(ctx, RoleMonitor); err == nil {
		t.Error("a replica of a remote primary made an account of its own")
	}
	// The primary's monitor account, made now, replicates and reads the
	// replica's status.
	mu, mpw, err := primary.Account(ctx, RoleMonitor)
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(t, primary, replica)
	mdb, err := replica.OpenAs(mu, mpw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	if st, err := ReadReplicaStatus(ctx, mdb); err != nil || !st.Healthy() {
		t.Fatalf("status as the monitor account: %+v, %v", st, err)
	}

	// A primary (read_only off) is never emptied by a seed.
	if err := primary.StartReplicationFrom(ctx, "127.0.0.1:"+strconv.Itoa(primary.Port()), user, pw); err == nil ||
		!strings.Contains(err.Error(), "read_only") {
		t.Fatalf("seeding the primary: %v", err)
	}
	if n := count(t, primary, "wp_k.t"); n != 2 {
		t.Fatalf("primary rows after the refused seed = %d", n)
	}

	// A server administered remotely (by an admin account, over TCP) is
	// made a replica the same way; the admin account survives the seed.
	other := startServer(t)
	mustExec(t, other, "SET GLOBAL read_only = ON")
	admin := remoteOf(t, other)
	src := Source{Addr: "127.0.0.1:" + strconv.Itoa(primary.Port()), User: user, Password: pw}
	if err := admin.EnsureReplicationFrom(ctx, src); err == nil || !strings.Contains(err.Error(), "server_id") {
		t.Fatalf("seeding a replica with the primary's server_id: %v", err)
	}
	mustExec(t, other, "SET GLOBAL server_id = 3")
	if err := admin.EnsureReplicationFrom(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := admin.EnsureReplicationFrom(ctx, src); err != nil { // in order: nothing to do
		t.Fatal(err)
	}
	mustExec(t, primary, "INSERT INTO wp_k.t VALUES (3)")
	want, _ := primary.GTIDPos(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := admin.QueryString(ctx, "SELECT @@gtid_slave_pos")
		if err == nil && seqOf(got) >= seqOf(want) {
			break
		}
		if time.Now().After(deadline) {
			st, _ := admin.ReplicaStatus(ctx)
			t.Fatalf("remote replica at %q (%v), want %q; %+v", got, err, want, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := count(t, other, "wp_k.t"); n != 3 {
		t.Fatalf("remote replica rows = %d", n)
	}
}

// The internal accounts: stable passwords kept 0600 under Dir, the
// privileges of their role only, and names that neither a shard's orphan
// collection (its prefix and a site id) nor CollectLoadUsers matches.
func TestAccount(t *testing.T) {
	local := startServer(t)
	ctx := context.Background()
	local.LoadUserPrefix = "wp_ld_" // as a shard sets it
	orphan := regexp.MustCompile(`^wp_([0-9a-f]{12})(?:_b|_rs|_ro|_cs|_co)?$`)
	for _, tc := range []struct {
		name string
		srv  *Server
	}{{"local", local}, {"remote", remoteOf(t, local)}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			if tc.name == "remote" {
				s.AccountPrefix = "wq_"
			}
			mon, pw, err := s.Account(ctx, RoleMonitor)
			if err != nil {
				t.Fatal(err)
			}
			if mon2, pw2, err := s.Account(ctx, RoleMonitor); err != nil || mon2 != mon || pw2 != pw {
				t.Fatalf("second call: %s %s %v", mon2, pw2, err)
			}
			if st, err := os.Stat(s.accountFile(RoleMonitor)); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("password file: %v %v", st, err)
			}
			repl, rpw, err := s.Account(ctx, RoleReplication)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{mon, repl} {
				if orphan.MatchString(n) || strings.HasPrefix(n, "wp_ld_") || strings.HasPrefix(n, "rld_") {
					t.Errorf("account %s would be collected", n)
				}
			}
			if tc.name == "local" && (mon != "wp_mon" || repl != "wp_repl") {
				t.Errorf("names %s, %s", mon, repl)
			}
			if _, _, err := s.Account(ctx, "admin"); err == nil {
				t.Error("an unknown role was accepted")
			}
			if err := s.CollectLoadUsers(ctx); err != nil {
				t.Fatal(err)
			}
			m := openTCP(t, local, mon, pw)
			if _, err := m.ExecContext(ctx, "SHOW SLAVE STATUS"); err != nil {
				t.Errorf("monitor: SHOW SLAVE STATUS: %v", err)
			}
			if _, err := m.ExecContext(ctx, "SHOW BINARY LOGS"); err != nil {
				t.Errorf("monitor: SHOW BINARY LOGS: %v", err)
			}
			if _, err := m.ExecContext(ctx, "SELECT * FROM mysql.global_priv"); err == nil {
				t.Error("monitor reads mysql.global_priv")
			}
			if _, err := m.ExecContext(ctx, "CREATE DATABASE monitor_x"); err == nil {
				t.Error("monitor creates databases")
			}
			r := openTCP(t, local, repl, rpw)
			if _, err := r.ExecContext(ctx, "SHOW MASTER STATUS"); err != nil {
				t.Errorf("replication: SHOW MASTER STATUS: %v", err)
			}
			if _, err := r.ExecContext(ctx, "CREATE DATABASE repl_x"); err == nil {
				t.Error("replication creates databases")
			}
			if _, err := r.ExecContext(ctx, "CREATE USER x@localhost"); err == nil {
				t.Error("replication creates users")
			}
		})
	}
}

func openTCP(t *testing.T, s *Server, user, pw string) *sql.DB {
	t.Helper()
	r := &Server{Remote: &Remote{Addr: "127.0.0.1:" + strconv.Itoa(s.Port()), User: user, Password: pw}}
	db, err := r.open(user, pw, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("%s logs in over TCP: %v", user, err)
	}
	return db
}
