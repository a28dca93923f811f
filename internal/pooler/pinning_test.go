package pooler

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// pinCase: session A runs setup, session B then opens a transaction (so it
// holds whatever backend A left in the pool: the one A ran on, unless A is
// pinned to it), then A's check must see what setup left on its own
// connection. Every case fails if its pinning rule is removed.
type pinCase struct {
	name  string
	setup []string
	check string
	want  string
	// checkErr: the check must fail with this error number instead.
	checkErr uint16
	cleanup  []string
	// other, if set, runs in session B right after its BEGIN and must
	// give otherWant (B never sees A's state).
	other, otherWant string
}

func TestPinning(t *testing.T) {
	cases := []pinCase{
		{name: "transaction", setup: []string{"BEGIN", "INSERT INTO t (v) VALUES ('tx')", "SELECT 1"},
			check: "SELECT COUNT(*) FROM t WHERE v = 'tx'", want: "1",
			other: "SELECT COUNT(*) FROM t WHERE v = 'tx'", otherWant: "0", cleanup: []string{"ROLLBACK"}},
		{name: "autocommit=0", setup: []string{"SET autocommit = 0", "INSERT INTO t (v) VALUES ('ac')", "SELECT 1"},
			check: "SELECT COUNT(*) FROM t WHERE v = 'ac'", want: "1",
			other: "SELECT COUNT(*) FROM t WHERE v = 'ac'", otherWant: "0", cleanup: []string{"ROLLBACK", "SET autocommit = 1"}},
		{name: "user variable", setup: []string{"SET @x = 42"}, check: "SELECT @x", want: "42"},
		{name: "user variable in select", setup: []string{"SELECT @y := 7"}, check: "SELECT @y", want: "7"},
		{name: "temporary table", setup: []string{"CREATE TEMPORARY TABLE tmp (x int)", "INSERT INTO tmp VALUES (5)", "SELECT 1"},
			check: "SELECT x FROM tmp", want: "5"},
		{name: "GET_LOCK", setup: []string{"SELECT GET_LOCK('pooler-test', 0)"}, check: "SELECT RELEASE_LOCK('pooler-test')", want: "1"},
		{name: "LOCK TABLES", setup: []string{"LOCK TABLES t READ"}, check: "SELECT COUNT(*) FROM u", checkErr: 1100,
			cleanup: []string{"UNLOCK TABLES"}},
		{name: "SQL_CALC_FOUND_ROWS", setup: []string{"SELECT SQL_CALC_FOUND_ROWS v FROM t LIMIT 1"},
			check: "SELECT FOUND_ROWS()", want: "3"},
		{name: "LAST_INSERT_ID", setup: []string{"INSERT INTO u (x) VALUES (1)"},
			check: "SELECT LAST_INSERT_ID() = (SELECT MAX(id) FROM u)", want: "1"},
		{name: "warnings", setup: []string{"SELECT CAST('1x' AS SIGNED)"},
			check: "SELECT @@warning_count", want: "1"},
		{name: "ROW_COUNT", setup: []string{"UPDATE t SET v = 'a2' WHERE v = 'a'"},
			check: "SELECT ROW_COUNT()", want: "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runPinCase(t, c)
		})
	}
	t.Run("prepared statement", func(t *testing.T) {
		s := newSite(t, 2)
		p := startPooler(t, Config{}, s.Account)
		db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
		a, b := conn(t, db), conn(t, db)
		ctx := context.Background()
		st, err := a.PrepareContext(ctx, "SELECT ? + 1")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		mustExec(t, b, "BEGIN")
		queryString(t, b, "SELECT 1")
		var n int
		if err := st.QueryRowContext(ctx, 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("prepared statement on its session: %d, %v", n, err)
		}
		mustExec(t, b, "COMMIT")
		if got := p.Stats().PinnedSessions; got != 1 {
			t.Fatalf("pinned sessions = %d, want 1", got)
		}
	})
}

func runPinCase(t *testing.T, c pinCase) {
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	db := open(t, p.cfg.Socket, s.User, s.Password, s.Database)
	mustExec(t, db, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(20))")
	mustExec(t, db, "CREATE TABLE u (id int AUTO_INCREMENT PRIMARY KEY, x int)")
	mustExec(t, db, "INSERT INTO t (v) VALUES ('a'), ('b'), ('c')")
	mustExec(t, db, "INSERT INTO u (x) VALUES (0), (0)")
	a, b := conn(t, db), conn(t, db)
	// Both backends exist: b's first statement ran on the other one.
	queryString(t, a, "SELECT 1")
	for _, q := range c.setup {
		mustExec(t, a, q)
	}
	mustExec(t, b, "BEGIN")
	queryString(t, b, "SELECT COUNT(*) FROM t")
	if c.other != "" {
		if got := queryString(t, b, c.other); got != c.otherWant {
			t.Fatalf("other session: %s = %q, want %q", c.other, got, c.otherWant)
		}
	}
	var got sql.NullString
	err := a.QueryRowContext(context.Background(), c.check).Scan(&got)
	if c.checkErr != 0 {
		if me := myErr(err); me == nil || me.Number != c.checkErr {
			t.Fatalf("%s: %v, want error %d", c.check, err, c.checkErr)
		}
	} else if err != nil || got.String != c.want {
		t.Fatalf("%s = %q, %v; want %q", c.check, got.String, err, c.want)
	}
	// The other session never sees the state.
	if strings.Contains(c.name, "user variable") {
		if v := queryString(t, b, "SELECT COALESCE(@x, @y, 'none')"); v != "none" {
			t.Fatalf("other session sees a user variable: %q", v)
		}
	}
	mustExec(t, b, "COMMIT")
	for _, q := range c.cleanup {
		mustExec(t, a, q)
	}
}
