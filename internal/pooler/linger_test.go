package pooler

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"
)

// TestLinger: a backend stays with the session that used it last for
// Config.Linger. The session's next statement finds it there (no takeover);
// another site's statement waits for it, and takes it over when the session
// ends or Linger runs out; another session of the same site takes it at once.
func TestLinger(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	ctx := context.Background()
	const probe = "SELECT CONCAT_WS('|', CURRENT_USER(), DATABASE())"
	wantA, wantB := a.User+"@localhost|"+a.Database, b.User+"@localhost|"+b.Database
	// query runs probe on c in the background.
	query := func(p *Pooler, user, pass, db string) <-chan string {
		c := conn(t, open(t, p.cfg.Socket, user, pass, db))
		got := make(chan string, 1)
		go func() {
			var v string
			if err := c.QueryRowContext(ctx, probe).Scan(&v); err != nil {
				v = err.Error()
			}
			got <- v
		}()
		return got
	}

	t.Run("until the session ends", func(t *testing.T) {
		// (No turns: TestLingerTurn.)
		p := startPooler(t, Config{MaxServerBackends: 1, Linger: time.Hour, LingerTurn: -1, QueueWait: time.Hour}, a.Account, b.Account)
		dbA := open(t, p.cfg.Socket, a.User, a.Password, a.Database)
		ca := conn(t, dbA)
		if got := queryString(t, ca, probe); got != wantA {
			t.Fatalf("a: %q", got)
		}
		got := query(p, b.User, b.Password, b.Database)
		waitFor(t, func() bool { return p.Stats().Queued == 1 })
		// a's next statements find the backend it left.
		for range 3 {
			if v := queryString(t, ca, probe); v != wantA {
				t.Fatalf("a again: %q", v)
			}
		}
		if st := p.Stats(); st.Reclaimed != 3 || st.ChangedUser != 0 || st.Dialed != 1 {
			t.Fatalf("%+v: want a's 3 statements on its lingering backend, nothing taken over or dialled", st)
		}
		select {
		case v := <-got:
			t.Fatalf("b ran (%q) while a's backend lingered", v)
		default:
		}
		ca.Close()
		dbA.Close()
		if v := <-got; v != wantB {
			t.Fatalf("b after a left: %q", v)
		}
		if st := p.Stats(); st.ChangedUser != 1 || st.Dialed != 1 || st.Overflowed != 0 {
			t.Fatalf("%+v: want a's backend taken over by b", st)
		}
	})

	t.Run("until linger runs out", func(t *testing.T) {
		p := startPooler(t, Config{MaxServerBackends: 1, Linger: 50 * time.Millisecond, QueueWait: time.Hour}, a.Account, b.Account)
		ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
		mustExec(t, ca, "SET time_zone = '+03:00'")
		if v := <-query(p, b.User, b.Password, b.Database); v != wantB {
			t.Fatalf("b: %q", v)
		}
		if st := p.Stats(); st.ChangedUser != 1 || st.Dialed != 1 || st.Overflowed != 0 {
			t.Fatalf("%+v: want a's backend taken over by b once it stopped lingering", st)
		}
		// a, still connected, gets its state back on the backend.
		if v := queryString(t, ca, "SELECT CONCAT_WS('|', CURRENT_USER(), @@time_zone)"); v != a.User+"@localhost|+03:00" {
			t.Fatalf("a after b: %q", v)
		}
	})

	t.Run("off by default", func(t *testing.T) {
		// Without Linger, a session's backend goes back after each
		// statement: another site's statement takes it over at once,
		// never waiting for the session's next one.
		p := startPooler(t, Config{MaxServerBackends: 1, QueueWait: time.Hour}, a.Account, b.Account)
		ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
		if got := queryString(t, ca, probe); got != wantA {
			t.Fatalf("a: %q", got)
		}
		select {
		case v := <-query(p, b.User, b.Password, b.Database):
			if v != wantB {
				t.Fatalf("b: %q", v)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("b still waits: a's backend lingers without Config.Linger")
		}
		if v := queryString(t, ca, probe); v != wantA {
			t.Fatalf("a again: %q", v)
		}
		if st := p.Stats(); st.Reclaimed != 0 || st.Queued != 0 || st.ChangedUser != 2 || st.Dialed != 1 {
			t.Fatalf("%+v: want the one backend taken over by b and back by a, nothing lingering or queued", st)
		}
	})

	t.Run("same site at once", func(t *testing.T) {
		p := startPooler(t, Config{MaxServerBackends: 1, Linger: time.Hour, QueueWait: time.Hour}, a.Account, b.Account)
		db := open(t, p.cfg.Socket, a.User, a.Password, a.Database)
		c1, c2 := conn(t, db), conn(t, db)
		mustExec(t, c1, "SET time_zone = '+04:00'")
		if v := queryString(t, c2, "SELECT @@time_zone"); v != "SYSTEM" {
			t.Fatalf("second session's time_zone %q, want its own (SYSTEM)", v)
		}
		if v := queryString(t, c1, "SELECT @@time_zone"); v != "+04:00" {
			t.Fatalf("first session's time_zone %q", v)
		}
		if st := p.Stats(); st.Dialed != 1 || st.ChangedUser != 0 || st.Queued != 0 || st.PeakBackends != 1 {
			t.Fatalf("%+v: want the one backend passed between the sessions", st)
		}
	})
}

// TestLingerTurn: while another site's statement waits at the bound, a
// session keeps reclaiming its lingering backend until its turn
// (Config.LingerTurn, by the injected clock, from when it took the
// backend) is over; then its next statement puts the backend back instead
// of lingering, and the waiting statement takes it over. Without waiters
// a session whose turn is over lingers as before.
func TestLingerTurn(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	// (A statement that never gets the backend fails the test here.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const probe = "SELECT CONCAT_WS('|', CURRENT_USER(), DATABASE())"
	wantA, wantB := a.User+"@localhost|"+a.Database, b.User+"@localhost|"+b.Database
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	p := startPooler(t, Config{MaxServerBackends: 1, Linger: time.Hour, LingerTurn: time.Minute, QueueWait: time.Hour, Clock: clock}, a.Account, b.Account)
	ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
	cb := conn(t, open(t, p.cfg.Socket, b.User, b.Password, b.Database))

	// Nobody waits: a lingers past its turn.
	queryString(t, ca, probe)
	advance(2 * time.Minute)
	if v := queryString(t, ca, probe); v != wantA {
		t.Fatalf("a: %q", v)
	}
	if st := p.Stats(); st.Reclaimed != 1 || st.TurnsEnded != 0 {
		t.Fatalf("%+v: want a's statement on its lingering backend, no turn ended", st)
	}

	// b waits; a's turn (from its first statement) is over, but a
	// reclaimed its backend, so the turn did not start again: a's next
	// statement still finds it, then hands it over.
	got := make(chan string, 1)
	go func() {
		var v string
		if err := cb.QueryRowContext(ctx, probe).Scan(&v); err != nil {
			v = err.Error()
		}
		got <- v
	}()
	waitFor(t, func() bool { return p.Stats().Queued == 1 })
	if v := queryString(t, ca, probe); v != wantA {
		t.Fatalf("a: %q", v)
	}
	if v := <-got; v != wantB {
		t.Fatalf("b: %q", v)
	}
	if st := p.Stats(); st.Reclaimed != 2 || st.TurnsEnded != 1 || st.ChangedUser != 1 || st.Dialed != 1 || st.Overflowed != 0 {
		t.Fatalf("%+v: want a's turn ended and its backend taken over by b", st)
	}

	// b's turn starts with the backend it took: while a waits, b keeps
	// its backend for its turn, then hands it back.
	go func() {
		var v string
		if err := ca.QueryRowContext(ctx, probe).Scan(&v); err != nil {
			v = err.Error()
		}
		got <- v
	}()
	waitFor(t, func() bool { return p.Stats().Queued == 2 })
	if v := queryString(t, cb, probe); v != wantB {
		t.Fatalf("b again: %q", v)
	}
	select {
	case v := <-got:
		t.Fatalf("a ran (%q) during b's turn", v)
	default:
	}
	advance(2 * time.Minute)
	if v := queryString(t, cb, probe); v != wantB {
		t.Fatalf("b again: %q", v)
	}
	if v := <-got; v != wantA {
		t.Fatalf("a after b's turn: %q", v)
	}
	if st := p.Stats(); st.Reclaimed != 4 || st.TurnsEnded != 2 || st.ChangedUser != 2 || st.Dialed != 1 || st.Overflowed != 0 {
		t.Fatalf("%+v: want b's two statements on its backend, then its turn ended", st)
	}
}

// TestLingerCut: a statement that waited QueueWait at the bound takes over
// the backend lingering for another site's session instead of opening one
// beyond the bound; that session's next statement, finding it gone, does
// the same.
func TestLingerCut(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	const probe = "SELECT CONCAT_WS('|', CURRENT_USER(), DATABASE(), @@time_zone)"
	p := startPooler(t, Config{MaxServerBackends: 1, Linger: time.Hour, LingerTurn: -1, QueueWait: 20 * time.Millisecond}, a.Account, b.Account)
	ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
	cb := conn(t, open(t, p.cfg.Socket, b.User, b.Password, b.Database))
	mustExec(t, ca, "SET time_zone = '+02:00'")
	for i, tc := range []struct {
		c interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}
		want string
	}{
		{cb, b.User + "@localhost|" + b.Database + "|SYSTEM"},
		{ca, a.User + "@localhost|" + a.Database + "|+02:00"},
	} {
		var v string
		if err := tc.c.QueryRowContext(context.Background(), probe).Scan(&v); err != nil || v != tc.want {
			t.Fatalf("statement %d: %q %v, want %q", i, v, err, tc.want)
		}
		if st := p.Stats(); st.LingerCut != uint64(i+1) || st.ChangedUser != uint64(i+1) || st.Overflowed != 0 || st.Dialed != 1 || st.PeakBackends != 1 {
			t.Fatalf("statement %d: %+v, want the lingering backend taken over, none opened beyond the bound", i, st)
		}
	}
}

// TestLingerTurnWaited: a statement that has waited half of QueueWait (by
// the injected clock) ends the turn of the session whose backend it would
// serve: that session's next statement hands the backend over though its
// turn is not over.
func TestLingerTurnWaited(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	// (A statement that never gets the backend fails the test here.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	p := startPooler(t, Config{MaxServerBackends: 1, Linger: time.Hour, LingerTurn: 24 * time.Hour, QueueWait: time.Hour, Clock: clock}, a.Account, b.Account)
	ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
	cb := conn(t, open(t, p.cfg.Socket, b.User, b.Password, b.Database))
	queryString(t, ca, "SELECT 1")
	got := make(chan error, 1)
	go func() {
		var v int
		got <- cb.QueryRowContext(ctx, "SELECT 2").Scan(&v)
	}()
	waitFor(t, func() bool { return p.Stats().Queued == 1 })
	// b has waited less than half of QueueWait: a keeps its backend.
	now.Add(int64(29 * time.Minute))
	queryString(t, ca, "SELECT 1")
	select {
	case err := <-got:
		t.Fatalf("b ran (%v) before it waited half of QueueWait", err)
	default:
	}
	now.Add(int64(time.Minute))
	queryString(t, ca, "SELECT 1")
	if err := <-got; err != nil {
		t.Fatalf("b: %v", err)
	}
	if st := p.Stats(); st.Reclaimed != 2 || st.TurnsEnded != 1 || st.ChangedUser != 1 || st.Overflowed != 0 {
		t.Fatalf("%+v: want a's turn ended by b's wait and its backend taken over", st)
	}
}
