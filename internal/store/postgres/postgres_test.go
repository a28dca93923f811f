package postgres

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/storetest"
)

// The tests run against a real PostgreSQL server that TestMain starts (see
// server_test.go); each storetest dir gets its own database.

func openTest(t *testing.T, dir string) store.Store {
	t.Helper()
	srv := testServer(t)
	name := databaseFor(dir)
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	s, err := Open(t.Context(), srv.DSN(name))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	testServer(t)
	storetest.Run(t, openTest)
}

func mustOpen(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newSite(name string) *site.Site {
	return &site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: time.Now().UTC()}}
}

// gooseVersions returns the versions goose recorded in the database, in order.
func gooseVersions(t *testing.T, dsn string) []int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT version_id FROM goose_db_version ORDER BY id`)
	if err != nil {
		t.Fatalf("goose version table: %v", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestMigrationsVersioned checks that the schema is tracked by goose and that
// reopening an existing database applies nothing again and keeps the data.
func TestMigrationsVersioned(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	if err := s.CreateSite(t.Context(), newSite("a.example.com")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	first := gooseVersions(t, dsn)
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	// Version 0 is goose's own initial row, then one row per migration.
	if len(first) != len(entries)+1 || first[0] != 0 {
		t.Fatalf("versions after first open = %v, want 0 and one per migration (%d)", first, len(entries))
	}
	for range 2 {
		s := mustOpen(t, dsn)
		if _, err := s.GetSite(t.Context(), "a.example.com"); err != nil {
			t.Errorf("site after reopen: %v", err)
		}
		s.Close()
		if again := gooseVersions(t, dsn); !slices.Equal(again, first) {
			t.Fatalf("versions after reopen = %v, want %v (nothing applied again)", again, first)
		}
	}
}

// TestConcurrentOpen starts several stores on an empty database at once, as
// replicas starting together would: the advisory lock lets one migrate and
// the others find the schema in place.
func TestConcurrentOpen(t *testing.T) {
	dsn := newDatabase(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
			continue
		}
		stores[i].Close()
	}
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if vs := gooseVersions(t, dsn); len(vs) != len(entries)+1 {
		t.Errorf("versions = %v, want each migration once", vs)
	}
}

// TestTwoStoresOneDatabase runs concurrent writes through two stores on the
// same database, as two control-plane replicas would: the row lock keeps
// every update, and the revision counter gives every write its own value,
// with no gaps, across both.
func TestTwoStoresOneDatabase(t *testing.T) {
	srv := testServer(t)
	name := databaseFor(t.TempDir())
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	// One replica over the Unix socket, one over TCP with a URL.
	a, b := mustOpen(t, srv.DSN(name)), mustOpen(t, srv.URL(name))
	stores := []*Store{a, b}
	st := newSite("busy.example.com")
	if err := a.CreateSite(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 5, 10
	var mu sync.Mutex
	revs := map[int64]bool{st.Metadata.ResourceVersion: true}
	record := func(rev int64) {
		mu.Lock()
		defer mu.Unlock()
		if revs[rev] {
			t.Errorf("revision %d taken twice", rev)
		}
		revs[rev] = true
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		for w := range workers {
			wg.Go(func() {
				for k := range perWorker {
					got, err := s.UpdateSite(t.Context(), st.Metadata.Name, func(x *site.Site) error {
						x.Spec.PHP.MaxChildren++
						return nil
					})
					if err != nil {
						t.Errorf("update: %v", err)
						return
					}
					record(got.Metadata.ResourceVersion)
					// Creates of other sites interleave with the updates.
					other := newSite(fmt.Sprintf("s%d-%d-%d.example.com", i, w, k))
					if err := s.CreateSite(t.Context(), other); err != nil {
						t.Errorf("create: %v", err)
						return
					}
					record(other.Metadata.ResourceVersion)
				}
			})
		}
	}
	wg.Wait()
	const updates = 2 * workers * perWorker
	for i, s := range stores {
		got, err := s.GetSite(t.Context(), st.Metadata.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.PHP.MaxChildren != updates {
			t.Errorf("store %d sees max_children %d, want %d: lost updates", i, got.Spec.PHP.MaxChildren, updates)
		}
		if got.Metadata.Generation != 1+updates {
			t.Errorf("store %d sees generation %d, want %d", i, got.Metadata.Generation, 1+updates)
		}
		l, err := s.ListSites(t.Context(), store.ListOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Revisions 1..N, each once: the create and 2*updates writes.
		if want := int64(1 + 2*updates); l.Revision != want || len(revs) != int(want) {
			t.Errorf("store %d: revision %d after %d distinct revisions, want %d and %d", i, l.Revision, len(revs), want, want)
		}
	}
	for r := int64(1); r <= int64(len(revs)); r++ {
		if !revs[r] {
			t.Errorf("revision %d never returned", r)
		}
	}
}

// TestByteOrder checks that sites list in byte order, as with SQLite, on a
// database whose default collation (ICU en-US, see startServer) orders
// otherwise.
func TestByteOrder(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	names := []string{"b.example.com", "B.example.com", "a-b.example.com", "ab.example.com", "a.example.com", "_x.example.com", "Z.example.com", "é.example.com"}
	for _, n := range names {
		if err := s.CreateSite(t.Context(), newSite(n)); err != nil {
			t.Fatal(err)
		}
	}
	want := slices.Clone(names)
	slices.Sort(want) // Go compares strings bytewise
	var got []string
	opts := store.ListOptions{Limit: 1}
	for {
		l, err := s.ListSites(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			got = append(got, it.Metadata.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}

// TestStrings checks the strings PostgreSQL handles differently from SQLite:
// a NUL inside the JSON parts round-trips (json, not jsonb), a NUL or
// invalid UTF-8 in a column is refused with ErrInvalid and writes nothing.
func TestStrings(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	ctx := t.Context()
	withNUL := newSite("nul.example.com")
	withNUL.Spec.Title = "a\x00b"
	withNUL.Status.Conditions = []site.Condition{{Type: "Ready", Status: "False", Message: "exit\x00status 1", LastTransitionTime: time.Now().UTC()}}
	if err := s.CreateSite(ctx, withNUL); err != nil {
		t.Fatalf("create with NUL in spec: %v", err)
	}
	got, err := s.GetSite(ctx, withNUL.Metadata.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Title != withNUL.Spec.Title || got.Status.Conditions[0].Message != withNUL.Status.Conditions[0].Message {
		t.Errorf("NUL did not round-trip: %q, %q", got.Spec.Title, got.Status.Conditions[0].Message)
	}
	l, err := s.ListSites(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*site.Site{newSite("x\x00.example.com"), newSite("\xff.example.com"), func() *site.Site {
		x := newSite("shard.example.com")
		x.Status.Shard = "s\x00"
		return x
	}()} {
		if err := s.CreateSite(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("create %q: err = %v, want ErrInvalid", bad.Metadata.Name, err)
		}
	}
	if _, err := s.UpdateSite(ctx, withNUL.Metadata.Name, func(x *site.Site) error { x.Status.Shard = "\xfe"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("update to an invalid shard: err = %v, want ErrInvalid", err)
	}
	after, err := s.ListSites(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != l.Revision || len(after.Items) != 1 {
		t.Errorf("refused writes changed the store: revision %d -> %d, %d sites", l.Revision, after.Revision, len(after.Items))
	}
}

// TestTimePrecision documents that token and audit times are kept to the
// microsecond (timestamptz), and come back in UTC.
func TestTimePrecision(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 3600))
	tok := store.Token{ID: "t", Name: "n", Role: store.RoleAdmin, Hash: fmt.Sprintf("%064x", 1), CreatedAt: at}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.LookupToken(ctx, tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Truncate(time.Microsecond); !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("token created_at = %v, want %v in UTC", got.CreatedAt, want)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: at, Actor: "t", Action: "a", Target: "x", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ListAudit(ctx, store.AuditListOptions{Limit: 1})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit = %v, %v", entries, err)
	}
	if want := at.Truncate(time.Microsecond); !entries[0].Time.Equal(want) || entries[0].Time.Location() != time.UTC {
		t.Errorf("audit time = %v, want %v in UTC", entries[0].Time, want)
	}
}

// TestPanicInMutate checks that a panicking mutate rolls back and returns its
// connection: more panics than the pool has connections, then an update.
func TestPanicInMutate(t *testing.T) {
	s := mustOpen(t, newDatabase(t))
	if err := s.CreateSite(t.Context(), newSite("a.example.com")); err != nil {
		t.Fatal(err)
	}
	for range int(s.write.Config().MaxConns) + 2 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic swallowed")
				}
			}()
			_, _ = s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error {
				x.Spec.Title = "half"
				panic("boom")
			})
		}()
	}
	got, err := s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error { x.Spec.Title = "ok"; return nil })
	if err != nil {
		t.Fatalf("update after panics: %v", err)
	}
	if got.Spec.Title != "ok" || got.Metadata.Generation != 2 {
		t.Errorf("after panics: title %q generation %d, want ok and 2", got.Spec.Title, got.Metadata.Generation)
	}
}

// TestOpenErrors checks that a bad DSN or an unreachable server fails Open.
func TestOpenErrors(t *testing.T) {
	srv := testServer(t)
	for _, dsn := range []string{"postgres://[::1", srv.DSN("no_such_database")} {
		if s, err := Open(t.Context(), dsn); err == nil {
			s.Close()
			t.Errorf("open %q succeeded", dsn)
		}
	}
}

// TestMixedWrites runs creates, updates and deletes of a few names from two
// stores at once. Every write locks its site row before the revision row, so
// none may fail with a deadlock (or anything but ErrAlreadyExists and
// ErrNotFound), and the revision ends at the number of successful writes.
func TestMixedWrites(t *testing.T) {
	dsn := newDatabase(t)
	stores := []*Store{mustOpen(t, dsn), mustOpen(t, dsn)}
	names := []string{"a.example.com", "b.example.com", "c.example.com"}
	var mu sync.Mutex
	writes := int64(0)
	var wg sync.WaitGroup
	for i, s := range stores {
		for w := range 4 {
			wg.Go(func() {
				for k := range 40 {
					name := names[(i+w+k)%len(names)]
					var err error
					switch (w + k) % 3 {
					case 0:
						x := newSite(name)
						x.Metadata.UID = fmt.Sprintf("uid-%d-%d-%d", i, w, k)
						err = s.CreateSite(t.Context(), x)
					case 1:
						_, err = s.UpdateSite(t.Context(), name, func(x *site.Site) error { x.Spec.PHP.MaxChildren++; return nil })
					case 2:
						err = s.DeleteSite(t.Context(), name)
					}
					switch {
					case err == nil:
						mu.Lock()
						writes++
						mu.Unlock()
					case !errors.Is(err, store.ErrAlreadyExists) && !errors.Is(err, store.ErrNotFound):
						t.Errorf("write: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	l, err := stores[0].ListSites(t.Context(), store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Revision != writes {
		t.Errorf("revision %d after %d successful writes: want equal", l.Revision, writes)
	}
}

// TestUpgradeChainsAudit opens a database with audit rows written before
// the audit log was a hash chain (migration 4, ids with a gap): Open
// numbers them 1, 2, 3 in id order and chains them, once, and new entries
// continue the chain.
func TestUpgradeChainsAudit(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	for i := range 5 {
		if _, err := db.ExecContext(ctx, `INSERT INTO audit (time, actor, action, target, outcome) VALUES ($1, 'tok', 'site.create', $2, 'success')`,
			at.Add(time.Duration(i)*time.Second), fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit WHERE target IN ('s1', 's3')`); err != nil {
		t.Fatal(err)
	}
	list := func() []store.AuditEntry {
		s := mustOpen(t, dsn)
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
		if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != store.AuditHash(e) || e.Target != fmt.Sprintf("s%d", 2*i) {
			t.Errorf("entry %d after upgrade = %+v", i, e)
		}
		prev = e.Hash
	}
	if again := list(); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("reopening changed the chain:\n%+v\n%+v", again, first)
	}
	s := mustOpen(t, dsn)
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: time.Now(), Actor: "tok", Action: "site.delete", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.ListAudit(ctx, store.AuditListOptions{AfterSeq: 3})
	if len(got) != 1 || got[0].Seq != 4 || got[0].PrevHash != prev {
		t.Errorf("new entry = %+v, want seq 4 linked to %s", got, prev)
	}
}
