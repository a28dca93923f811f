package replwatch

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/pooler"
)

// End to end: the pooler in front of a real primary and its real replica,
// with this package as its gate.

type e2eSite struct {
	pooler.Account
	db *sql.DB // through the pooler
}

func newE2ESite(t *testing.T, p *pair, name, value string) e2eSite {
	t.Helper()
	ctx := context.Background()
	pw := name + "-secret"
	if err := p.primary.EnsureDatabase(ctx, name, name, pw, 20); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE " + name + ".t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(40))",
		"INSERT INTO " + name + ".t (v) VALUES ('" + value + "')",
	} {
		if err := p.primary.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return e2eSite{Account: pooler.Account{User: name, Password: pw, Database: name}}
}

func openSocket(t *testing.T, socket, user, pw, db string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pw, "unix", socket, db
	cfg.AllowNativePasswords = true
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(c)
	t.Cleanup(func() { d.Close() })
	return d
}

// selects counts the SELECTs user ran on s (userstat).
func selects(t *testing.T, s *mariadb.Server, user string) int {
	t.Helper()
	v, err := s.QueryString(context.Background(), "SELECT IFNULL(SUM(SELECT_COMMANDS), 0) FROM information_schema.USER_STATISTICS WHERE USER = ?", user)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

func sessionOf(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *sql.Conn) string {
	t.Helper()
	var v sql.NullString
	if err := c.QueryRowContext(context.Background(), "SELECT GROUP_CONCAT(v ORDER BY id) FROM t").Scan(&v); err != nil {
		t.Fatalf("read: %v", err)
	}
	return v.String
}

// where runs f, which makes n SELECTs as user, and says on which server
// they ran. (A server counts a statement just after it answered it: the
// counts are awaited.)
func where(t *testing.T, p *pair, user string, n int, f func()) (onPrimary, onReplica int) {
	t.Helper()
	// The counts of statements answered before f may still be on their
	// way: they are taken once they stop moving.
	p0, r0 := selects(t, p.primary, user), selects(t, p.replica, user)
	for {
		time.Sleep(100 * time.Millisecond)
		p1, r1 := selects(t, p.primary, user), selects(t, p.replica, user)
		if p1 == p0 && r1 == r0 {
			break
		}
		p0, r0 = p1, r1
	}
	f()
	waitFor(t, "the servers' statement counts", func() bool {
		onPrimary, onReplica = selects(t, p.primary, user)-p0, selects(t, p.replica, user)-r0
		return onPrimary+onReplica >= n
	})
	return onPrimary, onReplica
}

// usableAgain waits for an observation made after now that finds the
// replica usable (the one before may predate a change to the replica).
func usableAgain(t *testing.T, w *Watch, what string) {
	t.Helper()
	n := w.Status().Observations
	waitFor(t, what, func() bool { return w.Status().Observations > n+1 && w.Usable("") })
}

func TestPoolerWithReplica(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	for _, s := range []*mariadb.Server{p.primary, p.replica} {
		if err := s.Exec(ctx, "SET GLOBAL userstat = ON"); err != nil {
			t.Fatal(err)
		}
	}
	a := newE2ESite(t, p, "wp_ea", "a1")
	b := newE2ESite(t, p, "wp_eb", "b1")
	p.caughtUp(t)
	// (StaleAfter: a loaded machine may take a while to answer — 3 s was
	// not always enough in a full make test; hung replicas are TestWatch's.)
	w := p.watch(t, Config{Interval: 50 * time.Millisecond, StaleAfter: 10 * time.Second, MaxLag: time.Hour})
	waitFor(t, "replica usable", func() bool { return w.Usable("") })

	pcfg := pooler.Config{
		Socket:      filepath.Join(t.TempDir(), "mysql.sock"),
		Primary:     pooler.Backend{Network: "unix", Addr: p.primary.Socket()},
		Replica:     &pooler.Backend{Network: "unix", Addr: p.replica.Socket()},
		Gate:        w,
		BackendWait: 5 * time.Second,
	}
	pl, err := pooler.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	pl.SetAccounts([]pooler.Account{a.Account, b.Account})
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pl.Run(pctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-pl.Ready()
	a.db = openSocket(t, pcfg.Socket, a.User, a.Password, a.Database)
	b.db = openSocket(t, pcfg.Socket, b.User, b.Password, b.Database)
	sa, sb := sessionOf(t, a.db), sessionOf(t, b.db)
	read(t, sa) // (a's first statement: its replica backend is dialled)

	// Reads outside transactions go to the replica, each site's its own.
	onP, onR := where(t, p, a.User, 20, func() {
		for i := 0; i < 20; i++ {
			if got := read(t, sa); got != "a1" {
				t.Fatalf("site a read %q", got)
			}
		}
	})
	if onR < 20 || onP != 0 {
		t.Fatalf("20 reads: %d SELECTs on the replica, %d on the primary; want them all on the replica", onR, onP)
	}
	if got := read(t, sb); got != "b1" {
		t.Fatalf("site b read %q", got)
	}
	if _, err := sb.ExecContext(ctx, "SELECT * FROM wp_ea.t"); err == nil {
		t.Fatal("site b read site a's table through the pooler")
	}

	// Read-your-writes on a replica that applies late (both threads run,
	// within the generous MaxLag): the writer reads its write at once, from
	// the primary; another session still reads from the replica (which has
	// not applied it yet).
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 30", "START SLAVE"} {
		if err := p.replica.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	usableAgain(t, w, "replica usable with the delay")
	if _, err := sa.ExecContext(ctx, "INSERT INTO t (v) VALUES ('a2')"); err != nil {
		t.Fatal(err)
	}
	// (The replica applies a2 only in 30s: what a read returns says where
	// it ran.)
	if got := read(t, sa); got != "a1,a2" {
		t.Fatalf("the writer read %q after its write, want a1,a2", got)
	}
	other := sessionOf(t, a.db)
	if got := read(t, other); got != "a1" {
		t.Fatalf("another session read %q, want a1 from the delayed replica", got)
	}
	if got := read(t, sa); got != "a1,a2" {
		t.Fatalf("the writer's second read: %q, want a1,a2", got)
	}
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 0", "START SLAVE"} {
		if err := p.replica.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p.caughtUp(t)

	// SQL thread stopped: the replica is not used; a session reads its own
	// write and another session reads it too (from the primary).
	if err := p.replica.Exec(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica unusable with its SQL thread stopped", func() bool { return !w.Usable("") })
	if _, err := sa.ExecContext(ctx, "INSERT INTO t (v) VALUES ('a3')"); err != nil {
		t.Fatal(err)
	}
	// (The replica has not applied a3: the reads ran on the primary.)
	if got := read(t, sa); got != "a1,a2,a3" {
		t.Fatalf("the writer read %q with the SQL thread stopped", got)
	}
	if got := read(t, other); got != "a1,a2,a3" {
		t.Fatalf("another session read %q with the SQL thread stopped", got)
	}
	if err := p.replica.Exec(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	p.caughtUp(t)
	waitFor(t, "replica usable again", func() bool { return w.Usable("") })

	// A hung replica (SIGSTOP): its observation ages out and reads go to
	// the primary, correct and each site's own.
	if err := p.replica.Process().Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			p.replica.Process().Signal(syscall.SIGCONT)
		}
	}()
	waitFor(t, "a hung replica unusable", func() bool { return !w.Usable("") })
	for i := 0; i < 5; i++ {
		if got := read(t, sessionOf(t, a.db)); got != "a1,a2,a3" {
			t.Fatalf("site a read %q with the replica hung", got)
		}
		if got := read(t, sessionOf(t, b.db)); got != "b1" {
			t.Fatalf("site b read %q with the replica hung", got)
		}
	}
	p.replica.Process().Signal(syscall.SIGCONT)
	stopped = false
	waitFor(t, "usable after SIGCONT", func() bool { return w.Usable("") })

	// A killed replica: reads go to the primary until it is back.
	if err := p.replica.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a killed replica unusable", func() bool { return !w.Usable("") })
	if _, err := sb.ExecContext(ctx, "INSERT INTO t (v) VALUES ('b2')"); err != nil {
		t.Fatal(err)
	}
	pos, err := p.primary.GTIDPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, sb); got != "b1,b2" {
		t.Fatalf("site b read %q with the replica down", got)
	}
	if got := read(t, sessionOf(t, a.db)); got != "a1,a2,a3" {
		t.Fatalf("site a read %q with the replica down", got)
	}
	waitFor(t, "usable for "+pos+" after the restart", func() bool { return w.Usable(pos) })
	if err := p.replica.Exec(ctx, "SET GLOBAL userstat = ON"); err != nil { // (not kept over a restart)
		t.Fatal(err)
	}
	onP, onR = where(t, p, b.User, 1, func() {
		if got := read(t, sb); got != "b1,b2" {
			t.Fatalf("site b read %q after the replica's restart", got)
		}
	})
	if onR == 0 {
		t.Fatalf("reads do not return to the restarted replica (%d on the primary)", onP)
	}
}

// Lag beyond MaxLag (the default, 1s) sends every read to the primary:
// a session that did not write sees another session's write.
func TestPoolerReplicaLag(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	for _, s := range []*mariadb.Server{p.primary, p.replica} {
		if err := s.Exec(ctx, "SET GLOBAL userstat = ON"); err != nil {
			t.Fatal(err)
		}
	}
	a := newE2ESite(t, p, "wp_la", "a1")
	p.caughtUp(t)
	w := p.watch(t, Config{Interval: 50 * time.Millisecond, StaleAfter: 3 * time.Second})
	pcfg := pooler.Config{
		Socket:  filepath.Join(t.TempDir(), "mysql.sock"),
		Primary: pooler.Backend{Network: "unix", Addr: p.primary.Socket()},
		Replica: &pooler.Backend{Network: "unix", Addr: p.replica.Socket()},
		Gate:    w,
	}
	pl, err := pooler.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	pl.SetAccounts([]pooler.Account{a.Account})
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pl.Run(pctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-pl.Ready()
	a.db = openSocket(t, pcfg.Socket, a.User, a.Password, a.Database)
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 60", "START SLAVE"} {
		if err := p.replica.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	usableAgain(t, w, "replica usable with the delay")
	reader := sessionOf(t, a.db)
	if onP, onR := where(t, p, a.User, 1, func() { read(t, reader) }); onR == 0 || onP != 0 {
		t.Fatalf("before the lag: %d on the replica, %d on the primary", onR, onP)
	}
	writer := sessionOf(t, a.db)
	if _, err := writer.ExecContext(ctx, "INSERT INTO t (v) VALUES ('a2')"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lag beyond MaxLag seen", func() bool { return w.Status().Lag > DefaultMaxLag && !w.Usable("") })
	// (The replica applies a2 only in 60s: reading it says the primary.)
	if got := read(t, reader); got != "a1,a2" {
		t.Fatalf("a reader read %q with the replica lagging", got)
	}
}
