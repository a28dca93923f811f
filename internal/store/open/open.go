// Package open selects and opens the control plane's store from the store
// spec of `aipress up --store`:
//
//   - empty: SQLite in <data-dir>/aipress.db (package sqlite), the file
//     owner-only (0600) because it holds token and password hashes;
//   - a postgres:// or postgresql:// URL: PostgreSQL (package postgres), e.g.
//     postgres://aipress:secret@db.example.com:5432/aipress?sslmode=verify-full.
//
// Anything else is refused. Errors never repeat the spec, which may carry a
// password.
package open

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/postgres"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// SQLiteFile is the SQLite store's file in the data directory.
const SQLiteFile = "aipress.db"

// ErrUnknownStore is returned (wrapped) for a spec that names no store.
var ErrUnknownStore = errors.New("unknown store")

// Kind is the implementation a spec selects.
type Kind string

// Kinds.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Parse returns the kind of store spec selects, or an error wrapping
// ErrUnknownStore.
func Parse(spec string) (Kind, error) {
	if spec == "" {
		return SQLite, nil
	}
	scheme, _, ok := strings.Cut(spec, "://")
	switch {
	case ok && (scheme == "postgres" || scheme == "postgresql"): // as pgx parses them: lower case
		return Postgres, nil
	case ok && !strings.ContainsAny(scheme, " =/@:"):
		return "", fmt.Errorf("%w: scheme %q: want empty (SQLite in the data dir) or a postgres:// or postgresql:// URL", ErrUnknownStore, scheme)
	default:
		return "", fmt.Errorf("%w: want empty (SQLite in the data dir) or a postgres:// or postgresql:// URL", ErrUnknownStore)
	}
}

// Open opens the store spec selects (see the package documentation).
// dataDir is used only by SQLite and must exist. Close the store when done.
func Open(ctx context.Context, spec, dataDir string) (store.Store, error) {
	kind, err := Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch kind {
	case Postgres:
		st, err := postgres.Open(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	default:
		return openSQLite(ctx, dataDir)
	}
}

// openSQLite opens <dataDir>/aipress.db. The store holds token and password
// hashes: owner-only. SQLite gives its WAL and shared-memory files the
// database file's mode.
func openSQLite(ctx context.Context, dataDir string) (store.Store, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("store: sqlite: no data dir")
	}
	dbPath := filepath.Join(dataDir, SQLiteFile)
	if f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	if err := os.Chmod(dbPath, 0o600); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}
