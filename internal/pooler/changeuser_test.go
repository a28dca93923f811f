package pooler

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// TestChangeUser: an account with no idle backend takes another
// account's idle one (COM_CHANGE_USER) instead of dialling; on it the
// statement runs as its own user, with a fresh session's state, and cannot
// see the other site's tables; the first account gets its state back when
// it takes the backend again.
func TestChangeUser(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	// (Linger -1: a's backend goes back to the pool after each statement.)
	p := startPooler(t, Config{Linger: -1}, a.Account, b.Account)
	ctx := context.Background()
	dbA := open(t, p.cfg.Socket, a.User, a.Password, a.Database)
	dbB := open(t, p.cfg.Socket, b.User, b.Password, b.Database)
	ca, cb := conn(t, dbA), conn(t, dbB)

	mustExec(t, ca, "CREATE TABLE secret (v TEXT)")
	mustExec(t, ca, "INSERT INTO secret VALUES ('a only')")
	mustExec(t, ca, "SET time_zone = '+05:00'")
	if got := queryString(t, ca, "SELECT @@time_zone"); got != "+05:00" {
		t.Fatalf("a's time_zone %q", got)
	}
	st := p.Stats()
	if st.Dialed != 1 || st.BackendsPrimary != 1 {
		t.Fatalf("after a: %+v, want one backend dialled", st)
	}

	const probe = "SELECT CONCAT_WS('|', CURRENT_USER(), DATABASE(), @@time_zone)"
	want := b.User + "@localhost|" + b.Database + "|SYSTEM"
	if got := queryString(t, cb, probe); got != want {
		t.Fatalf("b on a's backend: %q, want %q", got, want)
	}
	st = p.Stats()
	if st.Dialed != 1 || st.ChangedUser != 1 || st.BackendsPrimary != 1 {
		t.Fatalf("after b: %+v, want a's backend taken over, none dialled", st)
	}
	_, err := cb.ExecContext(ctx, fmt.Sprintf("SELECT * FROM `%s`.secret", a.Database))
	if me := myErr(err); me == nil || me.Number != 1142 {
		t.Fatalf("b reading a's table: %v, want error 1142", err)
	}
	n, err := primary.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER IN (?, ?)", a.User, b.User)
	if err != nil || n != "1" {
		t.Fatalf("server sessions of a and b: %s %v, want 1", n, err)
	}

	// (An error holds the backend through the next statement.)
	queryString(t, cb, "SELECT 1")

	// a takes it back: its own user and state.
	wantA := a.User + "@localhost|" + a.Database + "|+05:00"
	if got := queryString(t, ca, probe); got != wantA {
		t.Fatalf("a again: %q, want %q", got, wantA)
	}
	if got := queryString(t, ca, "SELECT v FROM secret"); got != "a only" {
		t.Fatalf("a's table: %q", got)
	}
	if st := p.Stats(); st.Dialed != 1 || st.ChangedUser != 2 {
		t.Fatalf("after a again: %+v", st)
	}
}

// TestChangeUserChurn: many sites' sessions at once over few idle
// backends; every statement runs as its own site's user in its own
// database with its own session state.
func TestChangeUserChurn(t *testing.T) {
	const nSites, perSite, rounds = 6, 2, 30
	var sites []site
	var accts []Account
	for range nSites {
		s := newSite(t, 3)
		sites = append(sites, s)
		accts = append(accts, s.Account)
	}
	p := startPooler(t, Config{MaxIdle: 2}, accts...)
	var wg sync.WaitGroup
	errs := make(chan error, nSites*perSite)
	for i, s := range sites {
		db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
		for j := range perSite {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := db.Conn(context.Background())
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				tz := fmt.Sprintf("+0%d:%d0", i%10, j)
				if _, err := c.ExecContext(context.Background(), "SET time_zone = '"+tz+"'"); err != nil {
					errs <- err
					return
				}
				want := s.User + "@localhost|" + s.Database + "|" + tz
				for r := range rounds {
					var got string
					if err := c.QueryRowContext(context.Background(), "SELECT CONCAT_WS('|', CURRENT_USER(), DATABASE(), @@time_zone)").Scan(&got); err != nil {
						errs <- fmt.Errorf("%s round %d: %w", s.User, r, err)
						return
					}
					if got != want {
						errs <- fmt.Errorf("%s round %d: %q, want %q", s.User, r, got, want)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	var msgs []string
	for err := range errs {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		t.Fatal(strings.Join(msgs, "\n"))
	}
	st := p.Stats()
	if st.ChangedUser == 0 {
		t.Fatalf("no backend changed hands: %+v", st)
	}
	t.Logf("dialled %d, changed user %d, peak %d", st.Dialed, st.ChangedUser, st.PeakBackends)
}

// TestServerBackends: at Config.MaxServerBackends a statement waits for a
// backend to be put back and takes it over; when none comes back within
// QueueWait it opens one more, which closes when put back.
func TestServerBackends(t *testing.T) {
	s1, s2, s3 := newSite(t, 3), newSite(t, 3), newSite(t, 3)
	sessions := func(p *Pooler) (c1, c2, c3 *sql.Conn) {
		c1 = conn(t, open(t, p.cfg.Socket, s1.User, s1.Password, s1.Database))
		c2 = conn(t, open(t, p.cfg.Socket, s2.User, s2.Password, s2.Database))
		c3 = conn(t, open(t, p.cfg.Socket, s3.User, s3.Password, s3.Database))
		// Two transactions hold both backends the bound allows.
		mustExec(t, c1, "BEGIN")
		queryString(t, c1, "SELECT 1")
		mustExec(t, c2, "BEGIN")
		queryString(t, c2, "SELECT 1")
		return c1, c2, c3
	}

	t.Run("handed over", func(t *testing.T) {
		p := startPooler(t, Config{MaxServerBackends: 2, QueueWait: time.Minute}, s1.Account, s2.Account, s3.Account)
		c1, c2, c3 := sessions(p)
		got := make(chan string, 1)
		go func() {
			var v string
			if err := c3.QueryRowContext(context.Background(), "SELECT CURRENT_USER()").Scan(&v); err != nil {
				v = err.Error()
			}
			got <- v
		}()
		waitFor(t, func() bool { return p.Stats().Queued == 1 })
		mustExec(t, c1, "COMMIT")
		if v := <-got; v != s3.User+"@localhost" {
			t.Fatalf("third site: %q", v)
		}
		mustExec(t, c2, "COMMIT")
		st := p.Stats()
		if st.Dialed != 2 || st.Overflowed != 0 || st.ChangedUser != 1 || st.PeakBackends != 2 {
			t.Fatalf("%+v: want 2 dialled, 1 taken over, none beyond the bound", st)
		}
	})

	t.Run("overflow", func(t *testing.T) {
		p := startPooler(t, Config{MaxServerBackends: 2, QueueWait: 50 * time.Millisecond}, s1.Account, s2.Account, s3.Account)
		c1, c2, c3 := sessions(p)
		if v := queryString(t, c3, "SELECT CURRENT_USER()"); v != s3.User+"@localhost" {
			t.Fatalf("third site: %q", v)
		}
		st := p.Stats()
		if st.Queued != 1 || st.Overflowed != 1 || st.PeakBackends != 3 {
			t.Fatalf("%+v: want one backend beyond the bound", st)
		}
		if st.QueueWait < 50*time.Millisecond {
			t.Fatalf("queue wait %v counted, want at least QueueWait (50ms)", st.QueueWait)
		}
		if st.BackendsPrimary != 2 {
			t.Fatalf("%d backends open after the third site's statement, want 2 (the one beyond the bound closed)", st.BackendsPrimary)
		}
		mustExec(t, c1, "COMMIT")
		mustExec(t, c2, "COMMIT")
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTakeoverNoReplay: a session in WordPress's state (its character set
// and the server's own sql_mode, which WordPress SETs on every connection)
// takes over another site's backend with one COM_CHANGE_USER and nothing
// replayed: the server counts one statement more per takeover, not two.
func TestTakeoverNoReplay(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	p := startPooler(t, Config{MaxServerBackends: 1}, a.Account, b.Account)
	ctx := context.Background()
	var conns []*sql.Conn
	for _, s := range []site{a, b} {
		c := conn(t, open(t, p.cfg.Socket, s.User, s.Password, s.Database))
		mustExec(t, c, "SET NAMES utf8mb4")
		mustExec(t, c, "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'")
		mode := queryString(t, c, "SELECT @@SESSION.sql_mode")
		mustExec(t, c, "SET SESSION sql_mode='"+mode+"'")
		conns = append(conns, c)
	}
	questions := func() int {
		v, err := primary.QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	before, changed := questions(), p.Stats().ChangedUser
	const rounds = 10
	for range rounds {
		for _, c := range conns {
			if got := queryString(t, c, "SELECT @@collation_connection"); got != "utf8mb4_unicode_520_ci" {
				t.Fatalf("collation %q", got)
			}
		}
	}
	takeovers := int(p.Stats().ChangedUser - changed)
	if takeovers < rounds {
		t.Fatalf("%d takeovers in %d rounds: the sites did not share the backend", takeovers, rounds)
	}
	// (questions() itself counts once.)
	if got, want := questions()-before-1, 2*rounds+takeovers; got != want {
		t.Fatalf("the server ran %d statements for %d statements and %d takeovers: want %d (a SET replayed on takeovers?)", got, 2*rounds, takeovers, want)
	}
}

// TestSetNoReplay: a SET that gives the backend the session's next state
// by itself runs without the session's state replayed first (two sessions
// of a site taking turns on one backend, each setting its own time zone
// and character set: one statement each at the server), while a SET that
// leaves some of the other session's state in place still gets it
// replayed away.
func TestSetNoReplay(t *testing.T) {
	s := newSite(t, 1)
	p := startPooler(t, Config{MaxServerBackends: 1, Linger: -1}, s.Account)
	ctx := context.Background()
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a, b := conn(t, db), conn(t, db)
	questions := func() int {
		v, err := primary.QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	mustExec(t, a, "DO 1")
	mustExec(t, b, "DO 1")
	before := questions()
	const rounds = 5
	for range rounds {
		mustExec(t, a, "SET time_zone = '+03:00', NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'")
		mustExec(t, b, "SET time_zone = '+04:00', NAMES latin1")
	}
	if got := questions() - before - 1; got != 2*rounds {
		t.Fatalf("the server ran %d statements for %d SETs: a replay before each?", got, 2*rounds)
	}
	mustExec(t, a, "SET time_zone = DEFAULT")
	mustExec(t, b, "SET time_zone = DEFAULT")
	for _, c := range []struct {
		conn *sql.Conn
		want string
	}{{a, "utf8mb4_unicode_520_ci"}, {b, "latin1_swedish_ci"}, {a, "utf8mb4_unicode_520_ci"}} {
		if got := queryString(t, c.conn, "SELECT @@collation_connection"); got != c.want {
			t.Fatalf("collation %q, want %q", got, c.want)
		}
	}
	// A's time zone stays A's: B's SET NAMES does not cover it.
	mustExec(t, a, "SET time_zone = '+01:00'")
	mustExec(t, b, "SET NAMES utf8mb4")
	if got := queryString(t, b, "SELECT CONCAT(@@time_zone, ' ', @@collation_connection)"); got != "SYSTEM utf8mb4_general_ci" {
		t.Fatalf("B sees %q", got)
	}
	if got := queryString(t, a, "SELECT CONCAT(@@time_zone, ' ', @@collation_connection)"); got != "+01:00 utf8mb4_unicode_520_ci" {
		t.Fatalf("A sees %q", got)
	}
	if st := p.Stats(); st.Dialed != 1 {
		t.Fatalf("%d backends dialled: the sessions did not share one", st.Dialed)
	}
}

// TestSetDeferred: a SET NAMES that cannot fail, from a session holding no
// backend, is answered by the pooler and reaches the server only with the
// session's next statement (WordPress's two SET NAMES at connect cost no
// statement of their own); one that can fail runs at once and fails as it
// does directly; one in a transaction runs in it.
func TestSetDeferred(t *testing.T) {
	s := newSite(t, 1)
	p := startPooler(t, Config{MaxServerBackends: 1, Linger: -1}, s.Account)
	ctx := context.Background()
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	direct := conn(t, open(t, primary.Socket(), s.User, s.Password, s.Database))
	a, b := conn(t, db), conn(t, db)
	questions := func() int {
		v, err := primary.QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	mustExec(t, a, "DO 1")
	mustExec(t, b, "DO 1")
	mode := queryString(t, a, "SELECT @@SESSION.sql_mode")
	before := questions()
	mustExec(t, a, "SET NAMES utf8mb4")
	mustExec(t, a, "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'")
	mustExec(t, b, "SET NAMES latin1")
	mustExec(t, a, "SET SESSION sql_mode='"+mode+"'") // WordPress's, the server's own
	if got := questions() - before - 1; got != 0 {
		t.Fatalf("the server ran %d statements for three SET NAMES and a SET of the server's sql_mode", got)
	}
	if got := queryString(t, a, "SELECT CONCAT(@@collation_connection, ' ', @@sql_mode)"); got != "utf8mb4_unicode_520_ci "+mode {
		t.Fatalf("A's collation and sql_mode %q", got)
	}
	// Another sql_mode runs at once (it might fail).
	before = questions()
	mustExec(t, b, "SET SESSION sql_mode='ANSI_QUOTES'")
	if got := questions() - before - 1; got == 0 {
		t.Fatal("a SET of another sql_mode did not reach the server")
	}
	if got := queryString(t, a, "SELECT @@sql_mode"); got != mode {
		t.Fatalf("A's sql_mode %q after B's SET", got)
	}
	mustExec(t, b, "SET SESSION sql_mode='"+mode+"'")
	if got := queryString(t, b, "SELECT CONCAT(@@character_set_client, ' ', @@character_set_results, ' ', @@collation_connection)"); got != "latin1 latin1 latin1_swedish_ci" {
		t.Fatalf("B's character sets %q", got)
	}
	// Errors are the server's, at once.
	for _, q := range []string{"SET NAMES 'nosuchcharset'", "SET NAMES utf8mb4 COLLATE latin1_swedish_ci", "SET NAMES ucs2"} {
		_, derr := direct.ExecContext(ctx, q)
		_, perr := a.ExecContext(ctx, q)
		d, pe := myErr(derr), myErr(perr)
		if d == nil || pe == nil || d.Number != pe.Number {
			t.Fatalf("%s: through the pooler %v, directly %v", q, perr, derr)
		}
	}
	if got := queryString(t, a, "SELECT @@collation_connection"); got != "utf8mb4_unicode_520_ci" {
		t.Fatalf("A's collation after the failed SETs %q", got)
	}
	// In a transaction the SET runs on the transaction's backend.
	mustExec(t, a, "BEGIN")
	before = questions()
	mustExec(t, a, "SET NAMES latin1")
	if got := questions() - before - 1; got != 1 {
		t.Fatalf("the server ran %d statements for a SET NAMES in a transaction", got)
	}
	if got := queryString(t, a, "SELECT @@collation_connection"); got != "latin1_swedish_ci" {
		t.Fatalf("A's collation in its transaction %q", got)
	}
	mustExec(t, a, "COMMIT")
	if got := queryString(t, b, "SELECT @@collation_connection"); got != "latin1_swedish_ci" {
		t.Fatalf("B's collation %q", got)
	}
}

// TestHandoffOwnAccount: a backend put back while statements wait at the
// server's limit goes to a waiting statement of its own account before an
// earlier one of another account (no COM_CHANGE_USER).
func TestHandoffOwnAccount(t *testing.T) {
	a, b := newSite(t, 4), newSite(t, 4)
	p := startPooler(t, Config{MaxServerBackends: 1, QueueWait: time.Minute, Linger: -1}, a.Account, b.Account)
	a1 := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
	mustExec(t, a1, "BEGIN") // holds the only backend
	queryString(t, a1, "SELECT 1")

	query := func(c *sql.Conn, name string, done chan<- error) {
		var v string
		err := c.QueryRowContext(context.Background(), "SELECT CURRENT_USER()").Scan(&v)
		if err == nil && !strings.HasPrefix(v, strings.SplitN(name, "#", 2)[0]+"@") {
			err = fmt.Errorf("%s ran as %s", name, v)
		}
		done <- err
	}
	queue := func(c *sql.Conn, name string, queued uint64) chan error {
		done := make(chan error, 1)
		go query(c, name, done)
		waitFor(t, func() bool { return p.Stats().Queued == queued })
		return done
	}
	bDone := queue(conn(t, open(t, p.cfg.Socket, b.User, b.Password, b.Database)), b.User, 1)
	aDone := queue(conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database)), a.User+"#2", 2)
	mustExec(t, a1, "COMMIT") // the backend goes to a's waiting statement, not b's
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	// The one backend went to a's statement first and then to b's: one
	// takeover. Handed to b first, it would have been taken over twice
	// (to b, back to a). (The order the two answers arrive in says
	// nothing: b's may come first while a's goroutine waits for a CPU.)
	if st := p.Stats(); st.ChangedUser != 1 || st.Dialed != 1 {
		t.Fatalf("%+v: want one takeover (a's backend to b, once), one dial", st)
	}
}

// TestScramble: the pooler's mysql_native_password answer is go-mysql's
// (CalcPassword), which MariaDB accepts at login (TestChangeUser checks
// that end to end), and nothing for an empty password.
func TestScramble(t *testing.T) {
	salt := []byte("0123456789abcdefghij")
	for _, tc := range []struct{ name, password string }{
		{"empty", ""},
		{"short", "x"},
		{"site", "Zq8-vL2m9tWb3kPs"},
		{"long", strings.Repeat("long password ", 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := mysql.CalcPassword(salt, []byte(tc.password))
			got := scramble([]byte("prefix"), salt, tc.password)
			if string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
				t.Fatalf("scramble %x, want prefix+%x", got, want)
			}
		})
	}
}
