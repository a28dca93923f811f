package pooler

import (
	"bytes"
	"context"
	"strconv"
	"testing"
)

// TestStateRead: WordPress's read of its sql_mode is answered by the
// pooler, byte for byte as the server answered a session with an Equal
// tracked state (another site's: the answer holds nothing of the site's);
// a session with another state, or in a transaction, asks the server.
func TestStateRead(t *testing.T) {
	a, b := newSite(t, 2), newSite(t, 2)
	p := startPooler(t, Config{}, a.Account, b.Account)
	ctx := context.Background()
	questions := func() int {
		v, err := primary.QueryString(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	const q = "SELECT @@SESSION.sql_mode"
	direct := queryString(t, conn(t, open(t, primary.Socket(), a.User, a.Password, a.Database)), q)
	ca := conn(t, open(t, p.cfg.Socket, a.User, a.Password, a.Database))
	cb := conn(t, open(t, p.cfg.Socket, b.User, b.Password, b.Database))
	mustExec(t, cb, "DO 1")
	if got := queryString(t, ca, q); got != direct {
		t.Fatalf("A's sql_mode %q, directly %q", got, direct)
	}
	before := questions()
	if got := queryString(t, cb, q); got != direct {
		t.Fatalf("B's sql_mode %q, directly %q", got, direct)
	}
	if n := questions() - before - 1; n != 0 {
		t.Fatalf("the server ran %d statements for B's read of its sql_mode", n)
	}
	p.answers.mu.Lock()
	for k, x := range p.answers.m {
		for _, s := range []string{a.User, a.Database, b.User} {
			if bytes.Contains(x.data, []byte(s)) {
				t.Errorf("the answer kept for %q holds %q", k.query, s)
			}
		}
	}
	p.answers.mu.Unlock()
	// Another state: the server answers.
	mustExec(t, cb, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	before = questions()
	if got := queryString(t, cb, q); got != "ANSI_QUOTES" {
		t.Fatalf("B's sql_mode %q after its SET", got)
	}
	if got := queryString(t, ca, q); got != direct {
		t.Fatalf("A's sql_mode %q after B's SET", got)
	}
	if n := questions() - before - 1; n < 2 {
		t.Fatalf("the server ran %d statements for two reads of two states", n)
	}
	// In a transaction: its backend answers.
	mustExec(t, ca, "BEGIN")
	before = questions()
	if got := queryString(t, ca, q); got != direct {
		t.Fatalf("A's sql_mode %q in a transaction", got)
	}
	if n := questions() - before - 1; n != 1 {
		t.Fatalf("the server ran %d statements for a read in a transaction", n)
	}
	mustExec(t, ca, "COMMIT")
	// PHP's mysqli reads the pooler's answer as the server's.
	first := wpdb(t, p.cfg.Socket, a.User, a.Password, a.Database)
	second := wpdb(t, p.cfg.Socket, a.User, a.Password, a.Database)
	if first["strict"] != false || second["strict"] != false || first["collation"] != second["collation"] {
		t.Fatalf("wpdb: %v, then %v", first, second)
	}
}
