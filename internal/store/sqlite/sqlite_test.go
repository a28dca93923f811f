package sqlite

import (
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/aipress/aipress/internal/site"

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

// TestMutatePanic checks that a panicking mutate does not leave the writer
// connection inside a transaction.
func TestMutatePanic(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "u", CreatedAt: time.Now()}}
	if err := s.CreateSite(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in mutate was swallowed")
			}
		}()
		_, _ = s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error {
			x.Spec.Title = "half"
			panic("boom")
		})
	}()
	got, err := s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error { x.Spec.Title = "ok"; return nil })
	if err != nil {
		t.Fatalf("update after panic: %v", err)
	}
	if got.Spec.Title != "ok" || got.Metadata.Generation != 2 {
		t.Errorf("after panic: title %q generation %d, want ok and 2", got.Spec.Title, got.Metadata.Generation)
	}
}

// TestTwoHandlesOneFile runs concurrent updates through two stores opened on
// the same file, as two processes would: IMMEDIATE transactions and the busy
// timeout must serialise them without losing a write.
func TestTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aipress.db")
	var stores []*Store
	for range 2 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	st := &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "u", CreatedAt: time.Now()}}
	if err := stores[0].CreateSite(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	const perStore = 50
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 5 {
			wg.Go(func() {
				for range perStore / 5 {
					if _, err := s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error {
						x.Spec.PHP.MaxChildren++
						return nil
					}); err != nil {
						t.Errorf("update: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for i, s := range stores {
		got, err := s.GetSite(t.Context(), "a.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.PHP.MaxChildren != 2*perStore {
			t.Errorf("store %d sees max_children %d, want %d", i, got.Spec.PHP.MaxChildren, 2*perStore)
		}
	}
}

// TestUpgradeKeepsData opens a database made by the first migration alone,
// with a site and a token in it: the later migrations keep them readable
// (no move, no subject) and in the change feed.
func TestUpgradeKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "aipress.db")
	db, err := openDB(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	old := &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "u1", Generation: 1, ResourceVersion: 1, CreatedAt: time.Now().UTC()},
		Status: site.Status{Shard: "shard-a"}}
	md, sp, st, err := store.EncodeSite(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO sites (name, uid, shard, resource_version, metadata, spec, status) VALUES (?, ?, ?, 1, ?, ?, ?)`,
			[]any{"a.example.com", "u1", "shard-a", string(md), string(sp), string(st)}},
		{`UPDATE meta SET value = 1 WHERE key = 'revision'`, nil},
		{`INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('t1', 'n', 'admin', ?, ?)`,
			[]any{strings.Repeat("a", 64), time.Now().UTC().Format(timeFormat)}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetSite(ctx, "a.example.com")
	if err != nil || got.Move != nil || got.Status.Shard != "shard-a" {
		t.Fatalf("site after upgrade = %+v, %v", got, err)
	}
	if l, err := s.ListSites(ctx, store.ListOptions{Shard: "shard-a"}); err != nil || len(l.Items) != 1 || l.Revision != 1 {
		t.Errorf("shard list after upgrade = %+v, %v", l, err)
	}
	if cl, err := s.Changes(ctx, 0, store.ChangeOptions{Shard: "shard-a"}); err != nil || len(cl.Sites) != 1 || cl.Revision != 1 {
		t.Errorf("changes after upgrade = %+v, %v", cl, err)
	}
	if tok, err := s.LookupToken(ctx, strings.Repeat("a", 64)); err != nil || tok.Subject != "" {
		t.Errorf("token after upgrade = %+v, %v", tok, err)
	}
	if err := s.DeleteSite(ctx, "a.example.com"); err != nil {
		t.Fatal(err)
	}
	if cl, err := s.Changes(ctx, 1, store.ChangeOptions{Shard: "shard-a"}); err != nil || len(cl.Removed) != 1 || !cl.Removed[0].Deleted {
		t.Errorf("changes after deleting the old site = %+v, %v", cl, err)
	}
}

// TestUpgradeChainsAudit opens a database with audit rows written before
// the audit log was a hash chain (migration 4, ids with a gap, times of
// varying width): Open numbers them 1, 2, 3 in id order and chains them,
// once, and new entries continue the chain.
func TestUpgradeChainsAudit(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "aipress.db")
	db, err := openDB(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	times := []string{"2025-03-14T15:09:26.5358979Z", "2025-03-14T15:09:27Z", "2025-03-14T15:09:28.1Z"}
	for i, id := range []int{1, 2, 5} {
		if _, err := db.ExecContext(ctx, `INSERT INTO audit (id, time, actor, action, target, outcome, detail) VALUES (?, ?, 'tok', 'site.create', ?, 'success', '')`,
			id, times[i], fmt.Sprintf("s%d", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	list := func() []store.AuditEntry {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.ListAudit(ctx, store.AuditListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := list()
	if len(first) != 3 {
		t.Fatalf("entries after upgrade: %+v", first)
	}
	prev := ""
	for i, e := range first {
		want, _ := time.Parse(time.RFC3339Nano, times[i])
		if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != store.AuditHash(e) || !e.Time.Equal(want.Truncate(time.Microsecond)) {
			t.Errorf("entry %d after upgrade = %+v", i, e)
		}
		prev = e.Hash
	}
	if again := list(); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("reopening changed the chain:\n%+v\n%+v", again, first)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: time.Now(), Actor: "tok", Action: "site.delete", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if h, err := s.AuditHead(ctx); err != nil || h.Seq != 4 {
		t.Errorf("head after a new entry = %+v, %v", h, err)
	}
	got, _ := s.ListAudit(ctx, store.AuditListOptions{AfterSeq: 3})
	if len(got) != 1 || got[0].PrevHash != prev {
		t.Errorf("new entry = %+v, want linked to %s", got, prev)
	}
}
