package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"testing"
)

// A statement closed by database/sql is handed back and used again; one
// still in use is not shared.
func TestStmtCacheReuse(t *testing.T) {
	c, err := newCachingConnector(dsn(filepath.Join(t.TempDir(), "c.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc := conn.(*cachingConn)
	const q = `SELECT 1`
	inner := func(s driver.Stmt) driver.Stmt {
		if h, ok := s.(*handedStmt); ok {
			return h.innerStmt
		}
		return s
	}
	s1, err := cc.PrepareContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := cc.PrepareContext(t.Context(), q) // s1 is busy
	if err != nil {
		t.Fatal(err)
	}
	if inner(s1) == inner(s2) {
		t.Fatal("a busy statement was handed out twice")
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := cc.PrepareContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if inner(s3) != inner(s1) {
		t.Error("the closed statement was prepared again instead of reused")
	}
	_ = s3.Close()
}

// Through database/sql: the same query text runs again while its first
// rows are still open (one connection), and each run sees its own
// arguments.
func TestStmtCacheNested(t *testing.T) {
	c, err := newCachingConnector(dsn(filepath.Join(t.TempDir(), "c.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	for i := range 5 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, i, "v"); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT k FROM t WHERE k >= ? ORDER BY k`
	rows, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var outer []int
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, k)
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (`+q+`)`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var first int
		if err := tx.QueryRowContext(ctx, q, k).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first != k || n != 5-k {
			t.Errorf("inner query from %d: first %d, count %d", k, first, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 5 {
		t.Errorf("outer query saw %v, want 0..4", outer)
	}
	// Again after the rows closed: the cached statement, reset.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE k >= ?`, 2).Scan(&n); err != nil || n != 3 {
		t.Errorf("count from 2: %d, %v; want 3", n, err)
	}
}
