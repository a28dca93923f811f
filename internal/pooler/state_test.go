package pooler

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStateIsolation: a session's SETs never show in another session's
// (same site or another site's) statements, and follow the session to
// whatever backend it runs on.
func TestStateIsolation(t *testing.T) {
	s1, s2 := newSite(t, 2), newSite(t, 2)
	p := startPooler(t, Config{}, s1.Account, s2.Account)
	db1 := open(t, p.cfg.Socket, s1.User, s1.Password, s1.Database)
	db2 := open(t, p.cfg.Socket, s2.User, s2.Password, s2.Database)
	a, b := conn(t, db1), conn(t, db1)
	other := conn(t, db2)
	const probe = "SELECT CONCAT_WS('|', @@sql_mode, @@time_zone, @@character_set_client, @@collation_connection)"
	defaultA := queryString(t, a, probe)
	defaultOther := queryString(t, other, probe)
	mustExec(t, a, "SET sql_mode = 'ANSI_QUOTES'")
	mustExec(t, a, "SET time_zone = '+05:00'")
	mustExec(t, a, "SET NAMES latin1")
	want := "ANSI_QUOTES|+05:00|latin1|latin1_swedish_ci"
	if got := queryString(t, a, probe); got != want {
		t.Fatalf("own session: %q, want %q", got, want)
	}
	// b takes the backend a used; a's next statement runs on the other
	// backend, which gets a's state replayed.
	mustExec(t, b, "BEGIN")
	if got := queryString(t, b, probe); got != defaultA {
		t.Fatalf("same site, other session: %q, want %q", got, defaultA)
	}
	if got := queryString(t, a, probe); got != want {
		t.Fatalf("own session on another backend: %q, want %q", got, want)
	}
	mustExec(t, b, "COMMIT")
	if got := queryString(t, b, probe); got != defaultA {
		t.Fatalf("same site after commit: %q, want %q", got, defaultA)
	}
	if got := queryString(t, other, probe); got != defaultOther {
		t.Fatalf("other site: %q, want %q", got, defaultOther)
	}
	// SET back to DEFAULT is tracked too.
	mustExec(t, a, "SET time_zone = DEFAULT")
	mustExec(t, b, "BEGIN")
	queryString(t, b, "SELECT 1")
	if got := queryString(t, a, "SELECT @@time_zone"); got != "SYSTEM" {
		t.Fatalf("time_zone after DEFAULT: %q", got)
	}
	mustExec(t, b, "COMMIT")
	if st := p.Stats(); st.PinnedSessions != 0 {
		t.Fatalf("SETs pinned: %+v", st)
	}
}

// TestMultiplexing: many client sessions, one after another and a few at a
// time, share few backends.
func TestMultiplexing(t *testing.T) {
	s := newSite(t, 3)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	mustExec(t, db, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v int)")
	db.SetMaxIdleConns(0)
	for i := range 30 {
		// One client session (as a PHP request has), then the next.
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, c, fmt.Sprintf("INSERT INTO t (v) VALUES (%d)", i)) // (with ? the driver prepares: pinned)
		queryString(t, c, "SELECT COUNT(*) FROM t")
		c.Close()
		waitClients(t, p, 0)
	}
	st := p.Stats()
	if st.PeakBackends != 1 || st.BackendsPrimary != 1 {
		t.Fatalf("sequential sessions: %+v, want one backend", st)
	}
	// Eight sessions open at once, taking turns: at most MaxBackends.
	db.SetMaxIdleConns(8)
	conns := make([]*sql.Conn, 8)
	for i := range conns {
		conns[i] = conn(t, db)
	}
	for round := range 3 {
		for _, c := range conns {
			if got := queryString(t, c, "SELECT COUNT(*) FROM t"); got != "30" {
				t.Fatalf("round %d: %s", round, got)
			}
		}
	}
	st = p.Stats()
	if st.Clients != 8 || st.PeakBackends > 3 {
		t.Fatalf("eight sessions: %+v", st)
	}
	if st.QueriesPrimary < 84 {
		t.Fatalf("queries = %d", st.QueriesPrimary)
	}
}

// waitClients waits until the pooler has n client sessions (a client's
// quit is asynchronous).
func waitClients(t *testing.T, p *Pooler, n int) {
	t.Helper()
	for range 500 {
		if p.Stats().Clients == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("clients = %d, want %d", p.Stats().Clients, n)
}

// TestIdleReaper: backends idle longer than IdleTimeout (by the injected
// clock) are closed; ResetPeak starts the peak again.
func TestIdleReaper(t *testing.T) {
	s := newSite(t, 3)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	p := startPooler(t, Config{IdleTimeout: time.Hour, Clock: clock, Linger: -1}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a, b := conn(t, db), conn(t, db)
	mustExec(t, a, "BEGIN")
	queryString(t, a, "SELECT 1")
	queryString(t, b, "SELECT 1") // a second backend
	mustExec(t, a, "COMMIT")
	if st := p.Stats(); st.BackendsPrimary != 2 || st.PeakBackends != 2 {
		t.Fatalf("before: %+v", st)
	}
	p.ReapIdle()
	if st := p.Stats(); st.BackendsPrimary != 2 {
		t.Fatalf("reaped too early: %+v", st)
	}
	now.Add(int64(2 * time.Hour))
	p.ReapIdle()
	if st := p.Stats(); st.BackendsPrimary != 0 || st.PeakBackends != 2 {
		t.Fatalf("after the idle timeout: %+v", st)
	}
	p.ResetPeak()
	if got := queryString(t, a, "SELECT 5"); got != "5" {
		t.Fatal(got)
	}
	if st := p.Stats(); st.BackendsPrimary != 1 || st.PeakBackends != 1 {
		t.Fatalf("after ResetPeak: %+v", st)
	}
}

// TestLargePackets: statements and rows over 16 MB (split into several
// protocol packets) pass both ways.
func TestLargePackets(t *testing.T) {
	ctx := context.Background()
	if _, err := primary.QueryString(ctx, "SET GLOBAL max_allowed_packet = 64*1024*1024"); err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	mustExec(t, db, "CREATE TABLE big (id int PRIMARY KEY, b longtext)")
	const n = 17 << 20
	mustExec(t, db, fmt.Sprintf("INSERT INTO big VALUES (1, '%s')", strings.Repeat("x", n)))
	if got := queryString(t, db, "SELECT LENGTH(b) FROM big"); got != fmt.Sprint(n) {
		t.Fatalf("stored length %s", got)
	}
	if got := queryString(t, db, "SELECT b FROM big"); len(got) != n {
		t.Fatalf("read back %d bytes", len(got))
	}
	if got := queryString(t, db, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
}

// TestMaxIdle: the idle backends of all accounts together stay within
// Config.MaxIdle; the least recently used one is closed (without the
// bound each of the three sites would keep its own warm backend).
func TestMaxIdle(t *testing.T) {
	sites := []site{newSite(t, 3), newSite(t, 3), newSite(t, 3)}
	var accts []Account
	for _, s := range sites {
		accts = append(accts, s.Account)
	}
	p := startPooler(t, Config{MaxIdle: 1}, accts...)
	for round := range 2 {
		for _, s := range sites {
			db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
			if got := queryString(t, db, "SELECT 1"); got != "1" {
				t.Fatalf("round %d: %s", round, got)
			}
			db.Close()
			waitClients(t, p, 0)
			if st := p.Stats(); st.BackendsPrimary != 1 {
				t.Fatalf("round %d, after %s: %d backends open, want 1 (MaxIdle)", round, s.User, st.BackendsPrimary)
			}
		}
	}
}
