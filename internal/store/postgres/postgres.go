// Package postgres implements store.Store on a PostgreSQL database with
// github.com/jackc/pgx/v5, for control planes that run more than one replica
// or want the state on a managed database server. It passes the same contract
// suite (storetest) as the sqlite package and keeps the same semantics.
//
// How it is built, and why:
//
//   - Two pgxpool pools on the same database: one carries every write
//     transaction, the other every read. UpdateSite's mutate may read the
//     store (GetSite) while its transaction holds a write connection; with one
//     pool, as many concurrent updates as the pool has connections, each
//     reading inside mutate, would wait for each other forever.
//   - Write transactions run at READ COMMITTED (set explicitly, whatever the
//     server's default_transaction_isolation). UpdateSite reads the site with
//     SELECT ... FOR UPDATE, runs mutate and writes the result in the same
//     transaction, so concurrent updates, also from other processes (control
//     plane replicas), queue on the row lock and none is lost.
//   - The store-wide revision counter is one row of the meta table, bumped
//     with UPDATE meta SET value = value + 1 ... RETURNING value in the
//     transaction of the site write it versions. The row lock is held until
//     commit, so revisions are taken and committed in the same order, strictly
//     increase, and a write that fails or rolls back leaves no gap. Every site
//     write locks its site row first and the meta row second, so writers
//     cannot deadlock on the two.
//   - ListSites reads the revision and the page in one REPEATABLE READ, READ
//     ONLY transaction: both come from one snapshot. So does Changes (the
//     revision, the prune horizon, sites, shards and tombstones). Since a
//     write holds the meta row lock until it commits, revisions become
//     visible in order, and a snapshot holds every write up to its revision.
//   - Shard writes (create, update, delete) take revisions as site writes
//     do, locking the shard row first and meta second. A site write inserts
//     its tombstones in its own transaction. Heartbeat is one UPDATE of the
//     shard row's last_heartbeat and usage columns, which UpdateShard never
//     writes: it takes no revision and neither overwrites the other.
//   - The schema is versioned with goose migrations embedded in the binary
//     (migrations/*.sql), run through a goose.Provider (no global goose state)
//     over a database/sql handle on the write pool; each applies once and is
//     recorded in goose_db_version. A PostgreSQL advisory lock (goose's
//     session locker) serialises replicas that start at the same time.
//   - A site is stored as columns for what is looked up, constrained or
//     filtered on (name, uid, shard, move_source, move_target,
//     resource_version) plus the JSON of its metadata, spec, status and move,
//     as in the sqlite package; the columns are authoritative. name is
//     COLLATE "C", so sites are listed in byte order whatever the database's
//     locale, as SQLite lists them (shards' names too, and tokens are listed
//     by ID COLLATE "C"). The continue token has the same format as the
//     sqlite package's.
//   - Unique violations (SQLSTATE 23505) become store.ErrAlreadyExists;
//     strings PostgreSQL cannot store in a text column (a NUL byte, invalid
//     UTF-8; SQLSTATE 22021 and 22P05) become store.ErrInvalid.
//
// Differences from the sqlite package a caller may notice: token CreatedAt,
// shard LastHeartbeat and audit Time are timestamptz columns, so they come
// back truncated to the
// microsecond (time.Time.Equal holds for times with whole microseconds; site
// times live in the JSON and keep nanoseconds); and a site name, UID or shard
// containing a NUL byte or invalid UTF-8 is refused with store.ErrInvalid.
//
// # Pointing AIPress at PostgreSQL
//
// `aipress up --store postgres://…` (package store/open) selects this store.
// An operator:
//
//  1. Creates a role and a UTF8 database owned by it, e.g.
//     createuser aipress && createdb -O aipress -E UTF8 -T template0 aipress.
//  2. Passes the connection string, as a URL
//     (postgres://aipress:secret@db.example.com:5432/aipress?sslmode=verify-full)
//     (--store takes URLs only; Open also takes keyword/value pairs such as
//     host=/run/postgresql dbname=aipress). Anything
//     pgx and libpq understand works, including the PG* environment variables,
//     ~/.pgpass, pool_max_conns and, to keep AIPress in its own schema of a
//     shared database, options=-csearch_path=aipress (the schema must exist).
//  3. Starts the control plane: Open applies the migrations on first start, and
//     every replica pointing at the same database shares the same state.
//
// Moving existing state from SQLite to PostgreSQL needs an export/import step
// that does not exist yet.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/aipress/aipress/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// rollbackTimeout bounds the rollback of a failed write transaction, which
// runs even when the caller's context has ended.
const rollbackTimeout = 5 * time.Second

// Store is a store.Store backed by a PostgreSQL database. Create it with Open.
type Store struct {
	write *pgxpool.Pool // write transactions
	read  *pgxpool.Pool // reads, including reads from inside UpdateSite's mutate

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the PostgreSQL database that dsn names (a postgres:// URL
// or libpq keyword/value pairs, as pgx parses them), applies pending
// migrations and returns the store. Close the store when done.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	write, err := newPool(ctx, cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("open postgres store: writer pool: %w", err)
	}
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	read, err := newPool(ctx, cfg)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open postgres store: reader pool: %w", err)
	}
	s := &Store{write: write, read: read}
	if err := chainLegacyAudit(ctx, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return s, nil
}

// newPool creates a pool and checks that a connection can be made.
func newPool(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// migrate applies the embedded migrations the database has not seen yet,
// holding goose's advisory lock so concurrent Opens migrate once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Retry the lock every second (goose's default is every 5 s) for up to
	// five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing db leaves the pool open
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes both pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.read.Close()
		s.write.Close()
	})
	return nil
}

// inTx runs fn in a READ COMMITTED write transaction and commits it when fn
// returns nil. fn's error is returned as is (UpdateSite passes mutate's error
// through).
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite})
	if err != nil {
		return mapErr(err)
	}
	// Roll back on every path that does not commit, a panic in fn (mutate is
	// the caller's code) included, so the connection goes back to the pool.
	// After a commit Rollback is a no-op. Should the rollback fail (the
	// connection broke, e.g. because ctx ended), pgx closes the connection and
	// the server rolls the transaction back.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return mapErr(tx.Commit(ctx))
}

// nextRevision bumps the store-wide revision and returns the new value. The
// meta row stays locked until the transaction ends.
func nextRevision(ctx context.Context, tx pgx.Tx) (int64, error) {
	var rev int64
	err := tx.QueryRow(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("bump revision: %w", err)
	}
	return rev, nil
}

// SQLSTATE codes the store maps to its sentinels.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeCharNotInRepertoire  = "22021" // e.g. a NUL byte or invalid UTF-8 in text
	codeUntranslatableChar   = "22P05" // e.g. \u0000 in jsonb
	constraintSitesUIDUnique = "sites_uid_key"
)

// pgError returns err's PostgreSQL error, if it carries one.
func pgError(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	ok := errors.As(err, &pe)
	return pe, ok
}

// mapErr turns the PostgreSQL errors that have a store meaning into the
// store's sentinels and returns any other error unchanged.
func mapErr(err error) error {
	pe, ok := pgError(err)
	if !ok {
		return err
	}
	switch pe.Code {
	case codeUniqueViolation:
		return store.ErrAlreadyExists
	case codeForeignKeyViolation:
		// A write naming an organisation or user that does not exist.
		return fmt.Errorf("%s: %w", pe.Message, store.ErrInvalid)
	case codeCharNotInRepertoire, codeUntranslatableChar:
		return fmt.Errorf("%s: %w", pe.Message, store.ErrInvalid)
	}
	return err
}
