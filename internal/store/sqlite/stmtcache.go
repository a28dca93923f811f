package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"

	sqlite "modernc.org/sqlite"
)

// maxCachedStmts bounds the prepared statements one connection keeps. The
// store's queries are a few dozen texts (list filters and IN lists make some
// more); past the bound a statement is prepared and finalized per use, as
// without the cache.
const maxCachedStmts = 256

// cachingConnector opens driver connections that keep their prepared
// statements: SQLite parses and plans a statement's text on every prepare,
// which was the largest single cost of the control plane's queries
// (bench/scale: about a quarter of the server's CPU under the create load).
//
// database/sql prepares, runs and closes a statement for every query on a
// connection that does not run queries itself (driver.QueryerContext,
// driver.ExecerContext), so the wrapped connection hides those two and
// answers prepares from its cache; closing a cached statement only hands it
// back. modernc.org/sqlite resets a statement after each run (and when its
// rows are closed), so a handed-back statement is ready for the next use.
type cachingConnector struct{ driver.Connector }

func newCachingConnector(dsn string) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return cachingConnector{c}, nil
}

// Connect implements driver.Connector.
func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

// innerConn is what cachingConn needs of the driver's connection.
type innerConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// innerStmt is what cachingConn needs of the driver's statements.
type innerStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

func newCachingConn(conn driver.Conn) (driver.Conn, error) {
	ic, ok := conn.(innerConn)
	if !ok {
		return nil, errors.Join(errors.New("sqlite: the driver's connection lacks a method the statement cache needs"), conn.Close())
	}
	return &cachingConn{inner: ic, stmts: map[string]*cachedStmt{}}, nil
}

// cachingConn is a driver connection with a statement cache. database/sql
// uses a connection from one goroutine at a time; mu guards the cache
// anyway, as a statement may be closed from the goroutine that reads its
// rows.
type cachingConn struct {
	inner innerConn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// cachedStmt is a cache entry; busy while handed out.
type cachedStmt struct {
	si   innerStmt
	busy bool
}

// PrepareContext returns the cached statement of query when it is not in
// use, else a new one (cached when there is room).
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.mu.Lock()
	e, ok := c.stmts[query]
	if ok && !e.busy {
		e.busy = true
		c.mu.Unlock()
		return &handedStmt{innerStmt: e.si, conn: c, entry: e}, nil
	}
	c.mu.Unlock()
	si, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	is, ok := si.(innerStmt)
	if !ok {
		return nil, errors.Join(errors.New("sqlite: the driver's statement lacks a method the statement cache needs"), si.Close())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, taken := c.stmts[query]; taken || len(c.stmts) >= maxCachedStmts {
		return is, nil // used once, finalized on Close
	}
	e = &cachedStmt{si: is, busy: true}
	c.stmts[query] = e
	return &handedStmt{innerStmt: is, conn: c, entry: e}, nil
}

// Prepare implements driver.Conn.
func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for q, e := range c.stmts {
		errs = append(errs, e.si.Close())
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return errors.Join(append(errs, c.inner.Close())...)
}

// Begin implements driver.Conn (database/sql calls BeginTx).
func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.inner.IsValid() }

// handedStmt is a cached statement in use; Close hands it back.
type handedStmt struct {
	innerStmt
	conn  *cachingConn
	entry *cachedStmt
}

func (h *handedStmt) Close() error {
	h.conn.mu.Lock()
	h.entry.busy = false
	h.conn.mu.Unlock()
	return nil
}
