package leader

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ApplicationName is the application_name of the elector's connections, so
// they can be told apart in pg_stat_activity.
const ApplicationName = "aipress-leader"

// Postgres is a Locker on a PostgreSQL database: a lease is a session-level
// advisory lock, pg_try_advisory_lock(hashtext(name)), held on a connection
// of its own that nothing else uses. The lease is lost when that session
// ends. Check verifies in pg_locks that the session still holds the lock.
type Postgres struct {
	cfg *pgx.ConnConfig
}

var _ Locker = (*Postgres)(nil)

// NewPostgres returns a Locker on the database dsn names (a postgres:// URL
// or keyword/value pairs, as pgx parses them; the store's DSN).
func NewPostgres(dsn string) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("leader: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ApplicationName
	return &Postgres{cfg: cfg}, nil
}

// TryLock connects and tries the advisory lock once. Without the lock the
// connection is closed again.
func (p *Postgres) TryLock(ctx context.Context, name string) (Lease, error) {
	conn, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("leader: connect: %w", err)
	}
	var key int64
	var ok bool
	err = conn.QueryRow(ctx, `SELECT hashtext($1)::bigint, pg_try_advisory_lock(hashtext($1))`, name).Scan(&key, &ok)
	if err != nil || !ok {
		_ = conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("leader: try lock %q: %w", name, err)
		}
		return nil, nil
	}
	return &pgLease{conn: conn, key: key}, nil
}

// pgLease is a held advisory lock and its session.
type pgLease struct {
	conn *pgx.Conn
	key  int64
}

// errLockGone means the session is alive but no longer holds the lock.
var errLockGone = errors.New("advisory lock no longer held by this session")

// Check asks the server whether this session still holds the lock. A
// broken connection (e.g. the backend was terminated) is an error.
func (l *pgLease) Check(ctx context.Context) error {
	// A one-key advisory lock shows in pg_locks with the key's high 32 bits
	// in classid, the low 32 bits in objid and objsubid 1.
	u := uint64(l.key)
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`,
		int64(u>>32), int64(u&0xffffffff)).Scan(&held)
	if err != nil {
		return fmt.Errorf("leader: check lock: %w", err)
	}
	if !held {
		return errLockGone
	}
	return nil
}

// Release closes the session, which releases the lock.
func (l *pgLease) Release(ctx context.Context) error {
	return l.conn.Close(ctx)
}
