package pooler

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
	"github.com/aipress/aipress/internal/quietio"
)

// backendCollation is the collation backend connections are opened with
// (utf8mb4_general_ci); a session's own character set is replayed.
const (
	backendCollation   = "utf8mb4_general_ci"
	backendCollationID = 45
)

// capsKey are the client capability flags that change what a backend
// connection does; backends are pooled apart by them.
const capsKey = mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE | mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS

// backend is one connection to a MySQL server.
type backend struct {
	c        *client.Conn
	pool     *pool
	caps     uint32
	state    sqlscan.State
	status   uint16 // server status flags of its last response
	lastUsed time.Time
	reused   bool // it has served a statement before (it may have died in the pool)
	// tainted: its state is not known (a SET or replay failed half-way):
	// closed instead of pooled.
	tainted bool
	salt    []byte // the scramble COM_CHANGE_USER answers (changeUser)
	rbuf    []byte // reused by relay for the packets it reads
	wbuf    []byte // reused by send for the commands it writes
	// br reads the backend's connection for go-mysql's client and for
	// the pooler (rawio.go); seq is the sequence number of the next
	// packet the pooler reads.
	br  *bufio.Reader
	seq uint8
	// (Pooler.mu) lingerFor is the session b lingers for (nil: none),
	// until lingerUntil; lingerTimer puts it back then (linger.go).
	lingerFor   *session
	lingerUntil time.Time
	lingerTimer *time.Timer
}

func (b *backend) inTx() bool {
	return b.status&mysql.SERVER_STATUS_IN_TRANS != 0 || b.status&mysql.SERVER_STATUS_AUTOCOMMIT == 0
}

// pool holds an account's backend connections to one server: at most max
// open, the idle ones reused last-in first-out.
type pool struct {
	p       *Pooler
	acct    *account
	server  Backend
	replica bool

	mu      sync.Mutex
	max     int
	open    int
	idle    []*backend
	closed  bool
	changed chan struct{} // closed and replaced when a backend is freed
	watched bool          // a statement waits on changed
}

func newPool(p *Pooler, a *account, server Backend, replica bool) *pool {
	return &pool{p: p, acct: a, server: server, replica: replica, max: a.MaxBackends, changed: make(chan struct{})}
}

func (pl *pool) setMax(n int) {
	pl.mu.Lock()
	pl.max = n
	pl.signal()
	pl.mu.Unlock()
}

func (pl *pool) openCount() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.open
}

// signal wakes the statements waiting for one of pl's backends (pl.mu
// held).
func (pl *pool) signal() {
	if !pl.watched {
		return // nobody took the channel since it was made
	}
	close(pl.changed)
	pl.changed = make(chan struct{})
	pl.watched = false
}

// errBackendsBusy is returned when no backend became free in time.
type errBackendsBusy struct{ user string }

func (e errBackendsBusy) Error() string {
	return fmt.Sprintf("pooler: all backend connections of %s busy", e.user)
}

// get returns an idle backend with caps, or a new one, waiting up to
// Config.BackendWait for the account's limit. want is the session state
// the caller will give it (a backend taken over from another account is
// logged in with its character set).
func (pl *pool) get(ctx context.Context, caps uint32, want sqlscan.State) (*backend, error) {
	var deadline <-chan time.Time
	for {
		pl.mu.Lock()
		if pl.closed {
			pl.mu.Unlock()
			return nil, errAccountClosed
		}
		for i := len(pl.idle) - 1; i >= 0; i-- {
			if b := pl.idle[i]; b.caps == caps {
				pl.idle = append(pl.idle[:i], pl.idle[i+1:]...)
				pl.p.idle.Add(-1)
				pl.mu.Unlock()
				return b, nil
			}
		}
		if pl.open >= pl.max && len(pl.idle) == 0 {
			// Another session of the account may have one lingering.
			pl.mu.Unlock()
			if b := pl.p.takeLingering(pl, caps); b != nil {
				return b, nil
			}
			pl.mu.Lock()
		}
		var evict *backend
		if pl.open >= pl.max && len(pl.idle) > 0 {
			// An idle backend of other capabilities makes room.
			evict = pl.idle[0]
			pl.idle = pl.idle[1:]
			pl.p.idle.Add(-1)
			pl.open--
		}
		if pl.open < pl.max {
			pl.open++
			pl.mu.Unlock()
			if evict != nil {
				evict.c.Close()
				pl.p.backendOpened(pl.replica, -1)
			}
			b, err := pl.p.acquire(ctx, pl, caps, want)
			if err != nil {
				pl.mu.Lock()
				pl.open--
				pl.signal()
				pl.mu.Unlock()
				return nil, err
			}
			return b, nil
		}
		ch := pl.changed
		pl.watched = true
		pl.mu.Unlock()
		if deadline == nil {
			// (Made only when the statement waits: most find a
			// backend at once.)
			t := time.NewTimer(pl.p.cfg.BackendWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ch:
		case <-deadline:
			return nil, errBackendsBusy{pl.acct.User}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (pl *pool) dial(ctx context.Context, caps uint32) (*backend, error) {
	var sc *saltConn
	var bc *bufConn
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc = &saltConn{Conn: quietio.Wrap(nc), on: true}
		bc = newBufConn(sc)
		return bc, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.ConnectWithDialer(ctx, pl.server.Network, pl.server.Addr, pl.acct.User, pl.acct.Password, pl.acct.Database, dialer,
		func(c *client.Conn) error {
			c.SetCapability(caps)
			return c.SetCollation(backendCollation)
		})
	if err != nil {
		return nil, err
	}
	if !pl.replica {
		pl.p.learnVersion(c.GetServerVersion())
	}
	pl.p.learnBase(pl.replica, c)
	b := &backend{c: c, pool: pl, caps: caps, state: pl.p.freshState(pl.replica, backendCollationID),
		status: mysql.SERVER_STATUS_AUTOCOMMIT, br: bc.br}
	if sc != nil {
		b.salt = sc.greeting()
	}
	return b, nil
}

// put returns a clean backend to the pool.
func (pl *pool) put(b *backend) {
	b.lastUsed = pl.p.cfg.Clock()
	b.reused = true
	if b.tainted {
		pl.discard(b)
		return
	}
	over := pl.p.overflowed(pl.replica)
	pl.mu.Lock()
	closing := pl.closed || pl.open > pl.max || over
	pl.mu.Unlock()
	if closing {
		pl.discard(b)
		return
	}
	if pl.p.handoff(b) {
		pl.forget() // the waiter's pool counts it now
		return
	}
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		pl.discard(b)
		return
	}
	pl.idle = append(pl.idle, b)
	pl.p.idle.Add(1)
	pl.signal()
	pl.mu.Unlock()
	pl.p.trimIdle()
	// A statement that queued since handoff looked (or waits for other
	// capabilities) looks at the idle ones again.
	pl.p.mu.Lock()
	pl.p.puts.Add(1)
	pl.p.signalFreedLocked()
	pl.p.mu.Unlock()
}

// oldestIdle is when the pool's least recently used idle backend was put
// back (ok false: none idle).
func (pl *pool) oldestIdle() (time.Time, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.idle) == 0 {
		return time.Time{}, false
	}
	return pl.idle[0].lastUsed, true
}

// evictOldest closes the pool's least recently used idle backend; false:
// none was idle any more.
func (pl *pool) evictOldest() bool {
	pl.mu.Lock()
	if len(pl.idle) == 0 {
		pl.mu.Unlock()
		return false
	}
	b := pl.idle[0]
	pl.idle = pl.idle[1:]
	pl.p.idle.Add(-1)
	pl.open--
	pl.signal()
	pl.mu.Unlock()
	b.c.Close()
	pl.p.backendOpened(pl.replica, -1)
	return true
}

// takeIdle removes and returns an idle backend with caps for pl (nil:
// none): pl's own most recently used one, else the least recently used
// one of another account on pl's server, for changeUser. It stays counted
// as open to that server; pl counts it already (get reserved its place).
func (p *Pooler) takeIdle(pl *pool, caps uint32) *backend {
	if b := pl.takeNewest(caps); b != nil {
		return b
	}
	if p.idle.Load() == 0 {
		return nil
	}
	for {
		var from *pool
		var at time.Time
		for _, o := range p.allPools() {
			if o == pl || o.replica != pl.replica || o.server != pl.server {
				continue
			}
			if t, ok := o.oldestIdleWith(caps); ok && (from == nil || t.Before(at)) {
				from, at = o, t
			}
		}
		if from == nil {
			return nil
		}
		if b := from.takeOldest(caps); b != nil {
			return b
		}
	}
}

// takeNewest removes the pool's most recently used idle backend with caps
// (nil: none).
func (pl *pool) takeNewest(caps uint32) *backend {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i := len(pl.idle) - 1; i >= 0; i-- {
		if b := pl.idle[i]; b.caps == caps {
			pl.idle = append(pl.idle[:i], pl.idle[i+1:]...)
			pl.p.idle.Add(-1)
			pl.open--
			return b
		}
	}
	return nil
}

// oldestIdleWith is when the least recently used idle backend with caps
// was put back (ok false: none).
func (pl *pool) oldestIdleWith(caps uint32) (time.Time, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, b := range pl.idle {
		if b.caps == caps && b.salt != nil {
			return b.lastUsed, true
		}
	}
	return time.Time{}, false
}

// takeOldest removes the least recently used idle backend with caps from
// the pool (nil: none any more).
func (pl *pool) takeOldest(caps uint32) *backend {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, b := range pl.idle {
		if b.caps == caps && b.salt != nil {
			pl.idle = append(pl.idle[:i], pl.idle[i+1:]...)
			pl.p.idle.Add(-1)
			pl.open--
			pl.signal()
			return b
		}
	}
	return nil
}

// discard closes a backend that must not be reused.
func (pl *pool) discard(b *backend) {
	b.c.Close()
	pl.forget()
	pl.p.backendOpened(pl.replica, -1)
}

// forget stops counting a backend of pl's (closed, or another pool's now).
func (pl *pool) forget() {
	pl.mu.Lock()
	pl.open--
	pl.signal()
	pl.mu.Unlock()
}

// reap closes backends idle since before t.
func (pl *pool) reap(t time.Time) {
	pl.mu.Lock()
	var old []*backend
	keep := pl.idle[:0]
	for _, b := range pl.idle {
		if b.lastUsed.After(t) {
			keep = append(keep, b)
		} else {
			old = append(old, b)
		}
	}
	pl.idle = keep
	pl.p.idle.Add(-int64(len(old)))
	pl.open -= len(old)
	if len(old) > 0 {
		pl.signal()
	}
	pl.mu.Unlock()
	for _, b := range old {
		b.c.Close()
		pl.p.backendOpened(pl.replica, -1)
	}
}

// close closes the idle backends; busy ones are closed when put back.
func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	old := pl.idle
	pl.idle = nil
	pl.p.idle.Add(-int64(len(old)))
	pl.open -= len(old)
	pl.signal()
	pl.mu.Unlock()
	for _, b := range old {
		b.c.Close()
		pl.p.backendOpened(pl.replica, -1)
	}
}
