package pooler

import (
	"context"
	"testing"
)

// TestForwarding: an authenticated client runs statements through the
// pooler and sees its own database.
func TestForwarding(t *testing.T) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	mustExec(t, db, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(20))")
	mustExec(t, db, "INSERT INTO t (v) VALUES (?), (?)", "a", "b")
	if got := queryString(t, db, "SELECT GROUP_CONCAT(v ORDER BY id) FROM t"); got != "a,b" {
		t.Fatalf("rows = %q", got)
	}
	if got := queryString(t, db, "SELECT DATABASE()"); got != s.Database {
		t.Fatalf("database = %q", got)
	}
	if got := queryString(t, db, "SELECT VERSION()"); got == "" {
		t.Fatal("no version")
	}
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAuthErrors: wrong password, unknown user, other database: the same
// codes and messages as MariaDB's own.
func TestAuthErrors(t *testing.T) {
	s := newSite(t, 2)
	other := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account, other.Account)
	cases := []struct{ name, user, pw, db string }{
		{"wrong password", s.User, "nope", s.Database},
		{"unknown user", "nobody", "x", ""},
		{"other database", s.User, s.Password, other.Database},
		{"unknown database", s.User, s.Password, "wp_missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errDirect := open(t, primary.Socket(), c.user, c.pw, c.db).PingContext(context.Background())
			errPooled := open(t, p.cfg.Socket, c.user, c.pw, c.db).PingContext(context.Background())
			d, pe := myErr(errDirect), myErr(errPooled)
			if d == nil || pe == nil {
				t.Fatalf("direct %v, pooled %v: want MySQL errors", errDirect, errPooled)
			}
			if d.Number != pe.Number || d.Message != pe.Message || d.SQLState != pe.SQLState {
				t.Fatalf("direct %d %s %q, pooled %d %s %q", d.Number, d.SQLState, d.Message, pe.Number, pe.SQLState, pe.Message)
			}
		})
	}
}
