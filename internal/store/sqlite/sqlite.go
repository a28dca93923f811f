// Package sqlite implements store.Store on one SQLite file with the pure-Go
// modernc.org/sqlite driver, so the control plane is a single static binary
// with no database server to run.
//
// How it is built, and why:
//
//   - Two *sql.DB handles on the same file, as PocketBase does. The writer has
//     exactly one connection and carries every write and every transaction:
//     SQLite admits one writer at a time anyway, and queueing writers in Go
//     instead of on the file lock avoids SQLITE_BUSY and makes read-modify-write
//     (UpdateSite) race-free inside the process. The readers are a pool of
//     query-only connections which, in WAL mode, read consistent snapshots
//     concurrently with the writer.
//   - Writes are committed in groups (groupcommit.go): what queued while a
//     transaction ran is written by the next one, each write in a savepoint
//     of its own, so a burst of writes costs a few commits, not one each.
//   - Writer transactions begin IMMEDIATE, so a transaction holds the write
//     lock from its first read, also against other processes on the same file.
//   - Each connection keeps its prepared statements (stmtcache.go): SQLite
//     would otherwise parse and plan every query's text on every call.
//   - Pragmas on every connection: busy_timeout first (so the others wait for
//     a lock instead of failing), then journal_mode=WAL, foreign_keys=ON and
//     synchronous=NORMAL (in WAL mode: never corrupt, may lose the last
//     transactions on power loss, much faster than FULL).
//   - The schema is versioned with goose migrations embedded in the binary
//     (migrations/*.sql), run through a goose.Provider (no global goose
//     state); each applies once and is recorded in goose_db_version.
//   - A site is stored as columns for what is looked up, constrained or
//     filtered on (name, uid, shard, move_source, move_target,
//     resource_version) plus the JSON of its metadata, spec, status and move,
//     so a new site.Site field needs no migration. move_source and
//     move_target hold an active move's shards (else empty), so the shard
//     filter (site.Site.Shards) is three indexed equalities.
//   - The store-wide revision counter is one row of the meta table, bumped in
//     the same transaction as the site or shard write it versions. The
//     tombstones a site write causes are inserted in that transaction too,
//     and Changes reads the revision, the sites, the shards and the
//     tombstones in one read transaction (one WAL snapshot).
//   - Organisations and users are a JSON body plus columns for what is
//     looked up or unique (accounts.go), so a new field needs no
//     migration; memberships, invitations and reset tokens cascade on the
//     deletion of their organisation or user through foreign keys, tokens
//     and sites (whose org and user_id columns were added by ALTER TABLE,
//     which cannot add such keys) are checked and cleaned up by the store.
//   - Shards are a JSON body plus columns for what Heartbeat writes
//     (last_heartbeat, usage): a heartbeat is one UPDATE on the writer
//     connection that takes no revision, and UpdateShard never writes those
//     columns, so neither overwrites the other.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"strings"
	"sync"

	"github.com/pressly/goose/v3"

	"github.com/aipress/aipress/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeoutMS is how long a connection waits for a lock held by another
// connection (in practice: another process) before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// Store is a store.Store backed by a SQLite file. Create it with Open.
type Store struct {
	write *sql.DB // one connection: all writes and transactions
	read  *sql.DB // query-only pool
	// wgate is the committer's token and pending the writes waiting for
	// the next group commit (groupcommit.go).
	wgate   chan struct{}
	pmu     sync.Mutex
	pending []*txReq

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path, applies pending
// migrations and returns the store. path is a file path; it must not contain
// '?' (the driver reads parameters from there). Close the store when done.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("open sqlite store: invalid path %q: want a file path without '?'", path)
	}
	write, err := openDB(ctx, path, false)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: writer: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	if err := migrate(ctx, write); err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite store: %w", err), write.Close())
	}
	read, err := openDB(ctx, path, true)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite store: readers: %w", err), write.Close())
	}
	n := max(4, runtime.NumCPU())
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	s := &Store{write: write, read: read, wgate: make(chan struct{}, 1)}
	if err := chainLegacyAudit(ctx, s); err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite store: %w", err), s.Close())
	}
	return s, nil
}

// openDB opens a handle on path and checks that a connection can be made.
func openDB(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	c, err := newCachingConnector(dsn(path, readOnly))
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// dsn builds the driver's data source name. The driver applies _busy_timeout
// first, then the _pragma list, then _foreign_keys, _synchronous and, last,
// _query_only; hence the mix of forms, which yields exactly busy_timeout,
// journal_mode, foreign_keys, synchronous (, query_only).
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "NORMAL")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// migrate applies the embedded migrations that db has not seen yet.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes both handles. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Readers first, so the writer's close is the last one and SQLite
		// checkpoints and removes the WAL file.
		s.closeErr = errors.Join(s.read.Close(), s.write.Close())
	})
	return s.closeErr
}

// ignoreDone drops sql.ErrTxDone, which Rollback returns after the context
// ended (database/sql has rolled back already).
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// nextRevision bumps the store-wide revision and returns the new value.
func nextRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("bump revision: %w", err)
	}
	return rev, nil
}
