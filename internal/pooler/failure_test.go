package pooler

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// TestLimits: one client more than MaxClients gets MariaDB's 1226; a
// statement that finds every backend busy gets a clear error after
// BackendWait, and works once one is free.
func TestLimits(t *testing.T) {
	s := newSite(t, 1)
	s.MaxClients = 2
	p := startPooler(t, Config{BackendWait: 300 * time.Millisecond}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a, b := conn(t, db), conn(t, db)
	queryString(t, a, "SELECT 1")
	queryString(t, b, "SELECT 1")
	_, err := db.Conn(context.Background())
	me := myErr(err)
	want := fmt.Sprintf("User '%s' has exceeded the 'max_user_connections' resource (current value: 2)", s.User)
	if me == nil || me.Number != 1226 || me.Message != want {
		t.Fatalf("third client: %v, want 1226 %q", err, want)
	}
	// a holds the only backend in its transaction.
	mustExec(t, a, "BEGIN")
	queryString(t, a, "SELECT 1")
	var v int
	err = b.QueryRowContext(context.Background(), "SELECT 1").Scan(&v)
	if me := myErr(err); me == nil || me.Number != 1203 {
		t.Fatalf("statement without a free backend: %v, want error 1203", err)
	}
	mustExec(t, a, "COMMIT")
	if got := queryString(t, b, "SELECT 2"); got != "2" {
		t.Fatalf("after the backend is free: %q", got)
	}
	if st := p.Stats().Accounts[s.User]; st.Refused != 2 {
		t.Fatalf("refused = %d, want 2", st.Refused)
	}
}

// killBackends kills the user's connections on the primary as root.
func killBackends(t *testing.T, user string) int {
	t.Helper()
	ctx := context.Background()
	ids, err := primary.QueryString(ctx, "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE USER = ?", user)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var id int
	for _, f := range splitComma(ids) {
		fmt.Sscan(f, &id)
		if _, err := primary.QueryString(ctx, fmt.Sprintf("KILL %d", id)); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		n++
	}
	// KILL is asynchronous.
	for range 100 {
		left, _ := primary.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", user)
		if left == "0" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// TestKilledBackend: a pooled backend killed on the server is replaced;
// the client's next statements (a write and a read) run exactly once.
func TestKilledBackend(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a := conn(t, db)
	mustExec(t, a, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v int)")
	queryString(t, a, "SELECT COUNT(*) FROM t")
	if n := killBackends(t, s.User); n == 0 {
		t.Fatal("no backend to kill")
	}
	mustExec(t, a, "INSERT INTO t (v) VALUES (1)")
	if got := queryString(t, a, "SELECT COUNT(*) FROM t"); got != "1" {
		t.Fatalf("rows after kill = %s, want 1", got)
	}
	killBackends(t, s.User)
	if got := queryString(t, a, "SELECT COUNT(*) FROM t"); got != "1" {
		t.Fatalf("read after kill = %s", got)
	}
	// A pinned session loses its connection: a clear error, then it
	// works again (on a fresh connection, without its lost state).
	mustExec(t, a, "SET @pin = 1")
	killBackends(t, s.User)
	var v sql.NullString
	err := a.QueryRowContext(context.Background(), "SELECT @pin").Scan(&v)
	if err == nil && v.String == "1" {
		t.Fatal("a killed pinned connection's state survived?")
	}
	if err != nil {
		if me := myErr(err); me == nil || (me.Number != 2013 && me.Number != 1927) {
			t.Fatalf("pinned session after kill: %v", err)
		}
	}
	if got := queryString(t, a, "SELECT COUNT(*) FROM t"); got != "1" {
		t.Fatalf("after a lost pinned connection: %s", got)
	}
}

// TestServerRestart: MariaDB killed and restarted by its supervisor: the
// client session gets clear errors meanwhile, then works again.
func TestServerRestart(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a := conn(t, db)
	mustExec(t, a, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v int)")
	mustExec(t, a, "INSERT INTO t (v) VALUES (1)")
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	sawError := false
	for {
		var n string
		err := a.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM t").Scan(&n)
		if err == nil {
			if n != "1" {
				t.Fatalf("after restart: %s rows", n)
			}
			break
		}
		if myErr(err) == nil {
			t.Fatalf("not a MySQL error (the session must survive): %v", err)
		}
		sawError = true
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = sawError // the supervisor may be back before the first statement
	mustExec(t, a, "INSERT INTO t (v) VALUES (2)")
	if got := queryString(t, a, "SELECT COUNT(*) FROM t"); got != "2" {
		t.Fatalf("rows = %s", got)
	}
}

// TestResetAccount: ResetAccount and a changed password end the
// account's sessions; new ones work with the current credentials.
func TestResetAccount(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	a := conn(t, db)
	queryString(t, a, "SELECT 1")
	p.ResetAccount(s.User)
	var v int
	if err := a.QueryRowContext(context.Background(), "SELECT 1").Scan(&v); err == nil {
		t.Fatal("session survived ResetAccount")
	}
	if got := queryString(t, db, "SELECT 3"); got != "3" {
		t.Fatal(got)
	}
	if st := p.Stats(); st.BackendsPrimary > 1 {
		t.Fatalf("backends after reset: %+v", st)
	}
	b := conn(t, db)
	queryString(t, b, "SELECT 1")
	changed := s.Account
	changed.Password = "other"
	p.SetAccounts([]Account{changed})
	if err := b.QueryRowContext(context.Background(), "SELECT 1").Scan(&v); err == nil {
		t.Fatal("session survived a password change")
	}
	if err := open(t, p.cfg.Socket, s.User, s.Password, s.Database).Ping(); myErr(err) == nil || myErr(err).Number != 1045 {
		t.Fatalf("old password after the change: %v", err)
	}
}

// TestServerDown: with the server unreachable a login fails (as a direct
// connect would: WordPress shows its database error page), clearly.
func TestServerDown(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{Primary: Backend{Network: "unix", Addr: t.TempDir() + "/gone.sock"}}, s.Account)
	err := open(t, p.cfg.Socket, s.User, s.Password, s.Database).Ping()
	if me := myErr(err); me == nil || me.Number != 2002 {
		t.Fatalf("login with the server down: %v, want error 2002", err)
	}
	if st := p.Stats(); st.Clients != 0 || st.BackendsPrimary != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// Wrong passwords are still refused first.
	err = open(t, p.cfg.Socket, s.User, "nope", s.Database).Ping()
	if me := myErr(err); me == nil || me.Number != 1045 {
		t.Fatalf("wrong password with the server down: %v", err)
	}
}
