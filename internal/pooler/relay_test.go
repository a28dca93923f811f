package pooler

import (
	"context"
	"testing"
)

// TestRelayAnswers: an answer of many packets (many held writes of 64
// KiB) and an error after rows were sent reach the client whole and in
// order, and the session goes on.
func TestRelayAnswers(t *testing.T) {
	ctx := context.Background()
	s := newSite(t, 2)
	p := startPooler(t, Config{}, s.Account)
	c := conn(t, open(t, p.cfg.Socket, s.User, s.Password, s.Database))

	rows, err := c.QueryContext(ctx, "SELECT seq, REPEAT('x', 20) FROM seq_1_to_30000")
	if err != nil {
		t.Fatal(err)
	}
	n, sum := 0, 0
	for rows.Next() {
		var v int
		var x string
		if err := rows.Scan(&v, &x); err != nil {
			t.Fatal(err)
		}
		n++
		sum += v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 30000 || sum != 30000*30001/2 {
		t.Fatalf("%d rows, sum %d", n, sum)
	}

	// An error after rows were sent: the client sees it, the session goes on.
	rows, err = c.QueryContext(ctx, "SELECT IF(seq < 3, seq, (SELECT seq FROM seq_1_to_2)) FROM seq_1_to_5")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if myErr(err) == nil || myErr(err).Number != 1242 {
		t.Fatalf("subquery of two rows: %v, want error 1242", err)
	}
	if got := queryString(t, c, "SELECT 8"); got != "8" {
		t.Fatal(got)
	}
}
