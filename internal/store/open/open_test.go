package open

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/postgres"
	"github.com/aipress/aipress/internal/store/postgres/pgtest"
	"github.com/aipress/aipress/internal/store/sqlite"
)

var pg pgtest.Env

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// roundTrip writes a site through st and reads it back.
func roundTrip(t *testing.T, st store.Store) {
	t.Helper()
	s := &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "uid-a", CreatedAt: time.Now().UTC()}}
	if err := st.CreateSite(t.Context(), s); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := st.GetSite(t.Context(), s.Metadata.Name); err != nil {
		t.Fatalf("get: %v", err)
	}
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*sqlite.Store); !ok {
		t.Fatalf("empty spec opened %T, want *sqlite.Store", st)
	}
	roundTrip(t, st)
	fi, err := os.Stat(filepath.Join(dir, SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", SQLiteFile, fi.Mode().Perm())
	}
}

func TestOpenSQLiteFixesMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SQLiteFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after open = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestOpenPostgres(t *testing.T) {
	srv := pg.Server(t)
	for _, scheme := range []string{"postgres", "postgresql"} {
		t.Run(scheme, func(t *testing.T) {
			name := pgtest.DatabaseFor(t.TempDir())
			if err := srv.CreateDatabase(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			spec := srv.URL(name)
			spec = scheme + strings.TrimPrefix(spec, "postgres")
			dir := t.TempDir()
			st, err := Open(t.Context(), spec, dir)
			if err != nil {
				t.Fatalf("open %s: %v", spec, err)
			}
			defer st.Close()
			if _, ok := st.(*postgres.Store); !ok {
				t.Fatalf("%s opened %T, want *postgres.Store", spec, st)
			}
			roundTrip(t, st)
			if _, err := os.Stat(filepath.Join(dir, SQLiteFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("postgres store created %s in the data dir (stat: %v)", SQLiteFile, err)
			}
		})
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	// A closed port: Open fails, and the error does not show the password.
	_, err := Open(t.Context(), "postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", t.TempDir())
	if err == nil {
		t.Fatal("open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestOpenUnknown(t *testing.T) {
	for _, spec := range []string{
		"mysql://u:hunter2@db/aipress",
		"sqlite:///var/lib/aipress/aipress.db",
		"host=/run/postgresql dbname=aipress password=hunter2",
		"/var/lib/aipress/aipress.db",
		"postgres:/db",
		"Postgres://db/aipress", // pgx takes lower-case schemes only
	} {
		st, err := Open(t.Context(), spec, t.TempDir())
		if err == nil {
			st.Close()
			t.Errorf("Open(%q) succeeded", spec)
			continue
		}
		if !errors.Is(err, ErrUnknownStore) || !strings.Contains(err.Error(), "postgres://") {
			t.Errorf("Open(%q) = %v, want ErrUnknownStore naming postgres://", spec, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): error shows the password: %v", spec, err)
		}
	}
}
