package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/storetest"
)

func openTest(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(dir, "aipress.db"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, openTest)
}

// TestMigrationsVersioned checks that the schema is tracked by goose and that
// reopening an existing database applies nothing again.
func TestMigrationsVersioned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aipress.db")
	versions := func() []int64 {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.QueryContext(t.Context(), `SELECT version_id FROM goose_db_version ORDER BY id`)
		if err != nil {
			t.Fatalf("goose version table: %v", err)
		}
		defer rows.Close()
		var vs []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return vs
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	first := versions()
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	// Version 0 is goose's own initial row, then one row per migration.
	if len(first) != len(entries)+1 || first[0] != 0 {
		t.Fatalf("versions after first open = %v, want 0 and one per migration (%d)", first, len(entries))
	}

	for range 2 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if again := versions(); len(again) != len(first) {
		t.Errorf("versions after reopening = %v, want %v (nothing re-applied)", again, first)
	}
}

func TestOpenPragmas(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, db := range []*sql.DB{s.write, s.read} {
		var mode string
		var fk, sync, busy int
		row := func(q string, v any) {
			t.Helper()
			if err := db.QueryRowContext(t.Context(), q).Scan(v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		row(`PRAGMA journal_mode`, &mode)
		row(`PRAGMA foreign_keys`, &fk)
		row(`PRAGMA synchronous`, &sync)
		row(`PRAGMA busy_timeout`, &busy)
		if mode != "wal" || fk != 1 || sync != 1 || busy != busyTimeoutMS {
			t.Errorf("journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d; want wal 1 1(NORMAL) %d", mode, fk, sync, busy, busyTimeoutMS)
		}
	}
	if _, err := s.read.ExecContext(t.Context(), `INSERT INTO audit (time, actor, action, target, outcome) VALUES ('', '', '', '', '')`); err == nil {
		t.Error("reader pool accepted a write; want query_only")
	}
	if n := s.write.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer max open connections = %d, want 1", n)
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}
