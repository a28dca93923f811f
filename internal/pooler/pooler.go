// Package pooler is a shard's MySQL connection pooler: a MySQL-protocol
// proxy between the sites' PHP and the shard's MariaDB server (and its read
// replica). Sites keep their own database user and password; the pooler
// checks them itself, then multiplexes each site's client sessions over a
// small pool of backend connections per (database, user), between
// transactions, replaying the session state (character set, sql_mode, time
// zone and other session variables) a backend needs before a client's
// statement runs on it. Whatever makes state live on a connection pins the
// client to its backend (package sqlscan classifies statements; when in
// doubt it pins).
//
// Why not ProxySQL: Debian does not ship it, and it would be one more
// daemon with its own admin interface, configuration store and credentials
// to keep in step with the shard's sites. The protocol is spoken with
// github.com/go-mysql-org/go-mysql (its server package for the handshake and
// authentication, its client package for backend connections); what that
// library does not do — pooling, state replay, pinning, read routing — is
// written here, because it is the product.
//
// How it works. go-mysql's server package does the handshake and the
// authentication (mysql_native_password, no TLS: the pooler listens on a
// Unix socket or inside the cluster). It asks its Handler for the
// database before it checks the password, and answers any error of the
// credential provider as is; so the pooler's provider checks the scramble
// itself (from the handshake bytes it sees pass) and answers exactly what
// MariaDB answers, in MariaDB's order: a wrong password or unknown user
// 1045 "Access denied for user 'u'@'localhost' (using password: YES)",
// another database 1044, the account's client limit 1226. The greeting
// announces the primary's own version string (WordPress looks for
// "MariaDB" in it).
//
// After the handshake the pooler runs its own command loop on raw
// packets and forwards each command to a backend connection made with
// go-mysql's client package. It reads the answer itself (rawio.go), from
// the backend's one buffered reader straight into the client's held
// answer, one copy per packet, and looks only at what it must of it: its
// end (OK, ERR, result sets with their EOFs, SERVER_MORE_RESULTS_EXISTS,
// prepared-statement answers, cursors), the status flags, and an OK's
// affected rows, insert id and warnings. Neither side negotiates
// CLIENT_DEPRECATE_EOF, LOCAL_FILES, MULTI_STATEMENTS, compression or
// session tracking; the greeting announces MULTI_RESULTS and
// PS_MULTI_RESULTS (a stored procedure's result sets); the client flags
// that change a backend's behaviour (FOUND_ROWS, IGNORE_SPACE,
// MULTI_RESULTS, PS_MULTI_RESULTS) key the backend pools. A packet of 16 MiB or more is joined by the pooler's
// reader (go-mysql's for commands) and split again by go-mysql.
//
// Pools: per account and server (primary, replica), last-in first-out,
// at most Account.MaxBackends connections (a statement waits
// Config.BackendWait for one, then gets error 1203), idle ones closed
// after Config.IdleTimeout, at most Config.MaxIdle idle in all. An account
// with no idle backend takes another account's least recently used idle
// one and logs it in as its own user (COM_CHANGE_USER, changeuser.go)
// before it dials a new one. A backend put back while statements wait at
// Config.MaxServerBackends goes to the first waiting statement of its
// own account, if any, before earlier ones of other accounts (each lets
// at most two go by so), then to the first. A session's tracked state (sqlscan.State: the
// handshake's collation and the SETs it ran) is replayed on a backend
// whose state differs before a statement runs there. A SET that cannot
// fail, from a session holding no backend, only changes the tracked state
// (deferSet), and a read of tracked state is answered from the server's
// last answer to an Equal state (answers.go).
//
// A session keeps its backend: for life once a statement pins it
// (sqlscan's Stmt.Pin: user variables, temporary tables, GET_LOCK, LOCK
// TABLES, SET with expressions…, a prepared statement, USE of another
// database); while the backend's status says a transaction is open or
// autocommit is off; and through the next statement after
// SQL_CALC_FOUND_ROWS (Stmt.HoldNext) or any answer with affected rows,
// an insert id, warnings or an error (LAST_INSERT_ID(), ROW_COUNT(),
// FOUND_ROWS(), SHOW WARNINGS read their connection). A backend that holds
// a session's state is closed, never pooled, when the session ends.
//
// Reads (Stmt.Read) outside transactions, not pinned or held, go to the
// replica when Config.Gate allows for the session's last write: after a
// write the pooler reads @@last_gtid on that backend (only when a replica
// is configured) and passes it to Gate.Usable. A replica that fails sends
// the read to the primary.
//
// Failures: a pooled backend that was killed or whose server restarted
// is closed; the statement runs again on a fresh connection when it
// certainly did not run (the write failed, or the first answer was the
// server's goodbye) or when it is a read; otherwise the client gets 2013
// "Lost connection to MySQL server during query", never a guess. A
// server that is down gives each statement a clear error and the session
// lives on. Not supported: COM_CHANGE_USER from clients (an error; the
// pooler uses it on its own backends, see changeuser.go), LOAD DATA LOCAL.
package pooler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
	"github.com/aipress/aipress/internal/quietio"
	"log/slog"
	"time"
)

// Backend is a MySQL server the pooler connects to.
type Backend struct {
	Network string // "unix" or "tcp"
	Addr    string // socket path or host:port
}

// Account is one site's database account. The pooler accepts a client
// only with these credentials, only for Database, and opens its backend
// connections as the same user with the same password.
type Account struct {
	User     string
	Password string
	Database string
	// MaxClients bounds the account's client connections to the pooler
	// (0: DefaultMaxClients); one more is refused with MariaDB's error
	// 1226 (max_user_connections).
	MaxClients int
	// MaxBackends bounds its backend connections to each server (0:
	// DefaultMaxBackends); it must not exceed the account's
	// MAX_USER_CONNECTIONS on the server. A statement that finds every
	// backend busy waits for one (Config.BackendWait), then fails with a
	// clear error.
	MaxBackends int
}

// Defaults of an Account's limits.
const (
	DefaultMaxClients  = 50
	DefaultMaxBackends = 10
)

// ReplicaGate says whether a read may go to the replica. Usable reports
// whether the replica is up, its lag is under the bound, and it has applied
// every transaction up to gtid (a MariaDB GTID such as "0-1-42"; "": no
// such requirement). It is called on every read routed, so it must be
// cheap (a cached observation). Package replwatch implements it.
type ReplicaGate interface {
	Usable(gtid string) bool
}

// Config configures a Pooler.
type Config struct {
	// Socket is the Unix socket the pooler listens on (created mode 0666;
	// the directory above it decides who reaches it). A stale socket is
	// replaced.
	Socket string
	// Addr, if set, is a TCP address to listen on as well (Kubernetes:
	// php-fpm in another container). "" : none.
	Addr    string
	Primary Backend
	// Replica, if set with Gate, receives reads outside transactions
	// while Gate allows; nil: everything goes to Primary.
	Replica *Backend
	Gate    ReplicaGate
	// IdleTimeout closes backend connections idle this long (default 30s).
	IdleTimeout time.Duration
	// MaxIdle bounds the idle backend connections of all accounts
	// together (default DefaultMaxIdle; negative: only IdleTimeout
	// bounds them). A backend put back beyond it closes the least
	// recently used idle backend of any account: a shard's ~50 sites
	// each keeping a warm connection would otherwise hold more
	// connections than their PHP workers did without the pooler.
	MaxIdle int
	// MaxServerBackends bounds the backend connections to each server of
	// all accounts together (default DefaultMaxServerBackends(); negative: no
	// bound). A statement that finds none idle while the bound is
	// reached waits up to QueueWait for one to be put back (and takes it
	// over, COM_CHANGE_USER), then opens one beyond the bound rather than
	// fail: sessions holding backends through transactions must not stall
	// the others. Backends beyond it close when put back.
	MaxServerBackends int
	// QueueWait is how long a statement waits at MaxServerBackends before it
	// opens one more (default 250ms).
	QueueWait time.Duration
	// Linger is how long a backend stays with the session that used it
	// last, outside transactions, for the session's next statement,
	// before it goes back to the pool (0 or negative, the default: at
	// once). See linger.go.
	Linger time.Duration
	// LingerTurn bounds how long a session keeps a backend by lingering
	// while statements of other sessions wait at MaxServerBackends: a
	// session that took its backend this long ago (by Clock) puts it back
	// after its statement instead of lingering when one waits, so a
	// longer Linger does not starve them (default DefaultLingerTurn;
	// negative: no bound). See linger.go.
	LingerTurn time.Duration
	// BackendWait bounds how long a statement waits for a free backend
	// connection of its account (default 10s).
	BackendWait time.Duration
	Logger      *slog.Logger
	Clock       func() time.Time
}

// Pooler is a running pooler.
type Pooler struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}

	mu                             sync.Mutex
	accounts                       map[string]*account // by user
	version                        string              // the primary's server version, once learned
	peak                           int
	stats                          Stats          // counters kept here (Clients…PinnedSessions, Queries*)
	conns                          sync.WaitGroup // client connections being served
	srv                            *server.Server
	srvVersion                     string
	idle                           atomic.Int64  // idle backends of all pools (Config.MaxIdle)
	dialed                         atomic.Uint64 // backend connections opened
	changedUser                    atomic.Uint64 // backends taken over from another account
	reclaimed                      atomic.Uint64 // statements that found their session's backend lingering
	turnsEnded                     atomic.Uint64 // backends put back at the end of their session's turn
	lingerCut                      atomic.Uint64 // lingering backends taken over at QueueWait (linger.go)
	queriesPrimary, queriesReplica atomic.Uint64
	// baseMode is each server's (primary, replica) sql_mode for new
	// sessions, read on every dial: WordPress SETs its session's sql_mode
	// to it on every connection, and a backend taken over or dialled has
	// it, so modelling it saves a replayed SET on every takeover.
	baseMode  [2]atomic.Pointer[string]
	fresh     [2]atomic.Pointer[fresh] // (freshState) the last one made per server
	puts      atomic.Uint64            // backends put back idle (changed under mu)
	queued    atomic.Uint64            // statements that waited at MaxServerBackends
	queueWait atomic.Int64             // how long they waited, summed (ns, by Config.Clock)
	overflows atomic.Uint64            // backends opened beyond MaxServerBackends

	// (mu) waitq holds the statements waiting at MaxServerBackends, first
	// come first served but for the backend's own account (handoff): a
	// backend put back is handed to the first that can use it (statements
	// arriving later cannot take it first), a backend closed wakes the
	// first to dial; dialing counts dials in
	// progress per server kind (0 primary, 1 replica).
	waitq   []*waiter
	dialing [2]int
	// (mu) lingering holds the backends lingering for their sessions,
	// oldest first (linger.go).
	lingering []*backend
	// answers keeps answers to reads of the session state (answers.go).
	answers answers
	// (mu) pools lists every account's pools; replaced, never changed,
	// when the accounts change (allPools runs on every takeover).
	pools []*pool
}

// DefaultMaxServerBackends is Config.MaxServerBackends's default: twice
// the machine's cores, at least 4. A server runs about one statement per
// core at a time; the second per core covers backends held by sessions
// between two statements of a transaction.
func DefaultMaxServerBackends() int { return max(4, 2*runtime.NumCPU()) }

// DefaultMaxIdle is Config.MaxIdle's default.
const DefaultMaxIdle = 8

// account is an Account with its sessions and backend pools.
type account struct {
	Account
	closed   bool
	sessions map[*session]struct{}
	primary  *pool
	replica  *pool
	refused  uint64
	pinned   int
}

// New returns a pooler; Run starts it.
func New(cfg Config) (*Pooler, error) {
	if cfg.Socket == "" && cfg.Addr == "" {
		return nil, errors.New("pooler: no socket or address to listen on")
	}
	if cfg.Primary.Addr == "" {
		return nil, errors.New("pooler: no primary")
	}
	if cfg.Replica != nil && cfg.Gate == nil {
		return nil, errors.New("pooler: a replica needs a gate")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.BackendWait <= 0 {
		cfg.BackendWait = 10 * time.Second
	}
	if cfg.MaxServerBackends == 0 {
		cfg.MaxServerBackends = DefaultMaxServerBackends()
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 250 * time.Millisecond
	}
	if cfg.LingerTurn == 0 {
		cfg.LingerTurn = DefaultLingerTurn
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Pooler{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), accounts: map[string]*account{}}, nil
}

func (a Account) normalized() Account {
	if a.MaxClients <= 0 {
		a.MaxClients = DefaultMaxClients
	}
	if a.MaxBackends <= 0 {
		a.MaxBackends = DefaultMaxBackends
	}
	return a
}

// SetAccounts replaces the accounts the pooler accepts. A removed account,
// or one whose password or database changed, loses its client sessions and
// backend connections at once.
func (p *Pooler) SetAccounts(accts []Account) {
	want := map[string]Account{}
	for _, a := range accts {
		want[a.User] = a.normalized()
	}
	var drop []*account
	p.mu.Lock()
	for user, old := range p.accounts {
		n, ok := want[user]
		if !ok || n.Password != old.Password || n.Database != old.Database {
			delete(p.accounts, user)
			drop = append(drop, old)
			continue
		}
		// Limits change in place.
		old.MaxClients = n.MaxClients
		old.primary.setMax(n.MaxBackends)
		if old.replica != nil {
			old.replica.setMax(n.MaxBackends)
		}
		old.MaxBackends = n.MaxBackends
	}
	for user, a := range want {
		if _, ok := p.accounts[user]; !ok {
			p.accounts[user] = p.newAccount(a)
		}
	}
	p.listPools()
	p.mu.Unlock()
	for _, a := range drop {
		p.closeAccount(a)
	}
}

func (p *Pooler) newAccount(a Account) *account {
	acct := &account{Account: a, sessions: map[*session]struct{}{}}
	acct.primary = newPool(p, acct, p.cfg.Primary, false)
	if p.cfg.Replica != nil {
		acct.replica = newPool(p, acct, *p.cfg.Replica, true)
	}
	return acct
}

// closeAccount ends an account's sessions and closes its backends.
func (p *Pooler) closeAccount(a *account) {
	p.mu.Lock()
	a.closed = true
	var ss []*session
	for s := range a.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.kill()
	}
	a.primary.close()
	if a.replica != nil {
		a.replica.close()
	}
}

// ResetAccount ends every client session and closes every backend
// connection of user (after its writes were frozen or it was dropped, so
// nothing keeps privileges it lost).
func (p *Pooler) ResetAccount(user string) {
	p.mu.Lock()
	old, ok := p.accounts[user]
	if ok {
		p.accounts[user] = p.newAccount(old.Account)
		p.listPools()
	}
	p.mu.Unlock()
	if ok {
		p.closeAccount(old)
	}
}

// Run listens until ctx is done, then closes every connection.
func (p *Pooler) Run(ctx context.Context) error {
	var lns []net.Listener
	if p.cfg.Socket != "" {
		if err := os.MkdirAll(filepath.Dir(p.cfg.Socket), 0o755); err != nil {
			return fmt.Errorf("pooler: %w", err)
		}
		if err := os.Remove(p.cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pooler: stale socket: %w", err)
		}
		ln, err := net.Listen("unix", p.cfg.Socket)
		if err != nil {
			return fmt.Errorf("pooler: %w", err)
		}
		if err := os.Chmod(p.cfg.Socket, 0o666); err != nil {
			ln.Close()
			return fmt.Errorf("pooler: %w", err)
		}
		lns = append(lns, ln)
	}
	if p.cfg.Addr != "" {
		ln, err := net.Listen("tcp", p.cfg.Addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("pooler: %w", err)
		}
		lns = append(lns, ln)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- p.serve(ctx, ln)
		}()
	}
	go func() {
		<-ctx.Done()
		for _, ln := range lns {
			ln.Close()
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); p.reap(ctx) }()
	close(p.ready)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	wg.Wait()
	// Close everything.
	p.mu.Lock()
	accts := make([]*account, 0, len(p.accounts))
	for _, a := range p.accounts {
		accts = append(accts, a)
	}
	p.mu.Unlock()
	for _, a := range accts {
		p.closeAccount(a)
	}
	p.conns.Wait()
	return err
}

func (p *Pooler) serve(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("pooler: accept: %w", err)
		}
		p.conns.Add(1)
		go func() {
			defer p.conns.Done()
			p.handle(ctx, quietio.Wrap(c))
		}()
	}
}

// reap closes idle backends now and then.
func (p *Pooler) reap(ctx context.Context) {
	every := p.cfg.IdleTimeout / 4
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.ReapIdle()
		}
	}
}

// ReapIdle closes backend connections idle for at least Config.IdleTimeout
// (by Config.Clock); Run calls it periodically.
func (p *Pooler) ReapIdle() {
	now := p.cfg.Clock()
	for _, pl := range p.allPools() {
		pl.reap(now.Add(-p.cfg.IdleTimeout))
	}
}

func (p *Pooler) allPools() []*pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pools
}

// listPools makes p.pools anew from p.accounts (p.mu held).
func (p *Pooler) listPools() {
	pools := make([]*pool, 0, 2*len(p.accounts))
	for _, a := range p.accounts {
		pools = append(pools, a.primary)
		if a.replica != nil {
			pools = append(pools, a.replica)
		}
	}
	p.pools = pools
}

// trimIdle closes the least recently used idle backends of any account
// while there are more than Config.MaxIdle.
func (p *Pooler) trimIdle() {
	if p.cfg.MaxIdle < 0 {
		return
	}
	for p.idle.Load() > int64(p.cfg.MaxIdle) {
		var oldest *pool
		var at time.Time
		for _, pl := range p.allPools() {
			if t, ok := pl.oldestIdle(); ok && (oldest == nil || t.Before(at)) {
				oldest, at = pl, t
			}
		}
		if oldest == nil || !oldest.evictOldest() {
			return
		}
	}
}

// Ready is closed once the pooler listens.
func (p *Pooler) Ready() <-chan struct{} { return p.ready }

// Stats is a snapshot of the pooler's counters.
type Stats struct {
	Clients         int // client sessions open
	BackendsPrimary int // backend connections open to the primary
	BackendsReplica int
	// PeakBackends is the highest BackendsPrimary+BackendsReplica since
	// the pooler started or ResetPeak.
	PeakBackends   int
	PinnedSessions int    // client sessions pinned to their backend now
	QueriesPrimary uint64 // statements run on the primary
	QueriesReplica uint64
	// Dialed counts backend connections opened; ChangedUser the idle
	// backends one account took over from another (COM_CHANGE_USER);
	// Queued the statements that waited at Config.MaxServerBackends, Overflowed
	// the backends opened beyond it after Config.QueueWait.
	Dialed, ChangedUser, Queued, Overflowed uint64
	// Reclaimed counts the statements that found the backend their
	// session's last statement left lingering (Config.Linger); TurnsEnded
	// the backends put back instead of lingering because their session's
	// turn was over while statements waited (Config.LingerTurn);
	// LingerCut the lingering backends another account's statement took
	// over after Config.QueueWait instead of opening one beyond the bound.
	Reclaimed, TurnsEnded, LingerCut uint64
	// QueueWait is how long the Queued statements waited for their
	// backend, summed: the latency the bound adds.
	QueueWait time.Duration
	// Accounts holds the same per account (by user).
	Accounts map[string]AccountStats
}

// AccountStats are one account's counters.
type AccountStats struct {
	Clients, Backends, Pinned int
	Refused                   uint64 // clients or statements refused by the account's limits
}

// Stats returns the counters.
func (p *Pooler) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.PeakBackends = p.peak
	st.Dialed, st.ChangedUser = p.dialed.Load(), p.changedUser.Load()
	st.QueriesPrimary, st.QueriesReplica = p.queriesPrimary.Load(), p.queriesReplica.Load()
	st.Queued, st.Overflowed = p.queued.Load(), p.overflows.Load()
	st.Reclaimed, st.TurnsEnded, st.LingerCut = p.reclaimed.Load(), p.turnsEnded.Load(), p.lingerCut.Load()
	st.QueueWait = time.Duration(p.queueWait.Load())
	st.Accounts = map[string]AccountStats{}
	for user, a := range p.accounts {
		as := AccountStats{Clients: len(a.sessions), Pinned: a.pinned, Refused: a.refused, Backends: a.primary.openCount()}
		if a.replica != nil {
			as.Backends += a.replica.openCount()
		}
		st.Accounts[user] = as
	}
	return st
}

// ResetPeak starts PeakBackends again from the current count.
func (p *Pooler) ResetPeak() {
	p.mu.Lock()
	p.peak = p.stats.BackendsPrimary + p.stats.BackendsReplica
	p.mu.Unlock()
}

// backendOpened and backendClosed count backends (pool calls them).
func (p *Pooler) backendOpened(replica bool, delta int) {
	p.mu.Lock()
	if replica {
		p.stats.BackendsReplica += delta
	} else {
		p.stats.BackendsPrimary += delta
	}
	if n := p.stats.BackendsPrimary + p.stats.BackendsReplica; n > p.peak {
		p.peak = n
	}
	if delta < 0 {
		p.signalFreedLocked()
	}
	p.mu.Unlock()
}

// learnBase reads the sql_mode a new session of c's server starts with.
func (p *Pooler) learnBase(replica bool, c *client.Conn) {
	r, err := c.Execute("SELECT @@SESSION.sql_mode")
	if err != nil {
		return
	}
	if m, err := r.GetString(0, 0); err == nil {
		p.baseMode[kind(replica)].Store(&m)
	}
}

// base is the session state a new session of the server starts with
// besides its character set: its sql_mode once a dial read it.
func (p *Pooler) base(replica bool) []sqlscan.Assignment {
	m := p.baseMode[kind(replica)].Load()
	if m == nil {
		return nil
	}
	return []sqlscan.Assignment{sqlscan.Literal("sql_mode", *m)}
}

// freshState is the state of a backend just logged in with collation
// coll: the server's defaults. The last one made per server is kept (every
// takeover asks for it; a State is never changed in place, so backends
// share it).
func (p *Pooler) freshState(replica bool, coll uint8) sqlscan.State {
	k := kind(replica)
	mode := p.baseMode[k].Load()
	if f := p.fresh[k].Load(); f != nil && f.mode == mode && f.coll == coll {
		return f.st
	}
	st := sqlscan.NewState(coll)
	if mode != nil {
		st.Apply([]sqlscan.Assignment{sqlscan.Literal("sql_mode", *mode)})
	}
	p.fresh[k].Store(&fresh{mode: mode, coll: coll, st: st})
	return st
}

// fresh is a freshState made for a server's base sql_mode (as learnBase
// stored it) and a collation.
type fresh struct {
	mode *string
	coll uint8
	st   sqlscan.State
}

func kind(replica bool) int {
	if replica {
		return 1
	}
	return 0
}

// openTo is the number of backends open to the primary or the replica
// (p.mu held).
func (p *Pooler) openTo(replica bool) int {
	if replica {
		return p.stats.BackendsReplica
	}
	return p.stats.BackendsPrimary
}

// overflowed reports whether more backends than Config.MaxServerBackends are
// open to the server while no statement waits for one.
func (p *Pooler) overflowed(replica bool) bool {
	if p.cfg.MaxServerBackends < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waitq) == 0 && p.openTo(replica) > p.cfg.MaxServerBackends
}

// waiter is a statement waiting at Config.MaxServerBackends for a backend
// of pl's server with caps: it receives one handed over, or nil when it
// may dial.
type waiter struct {
	pl   *pool
	caps uint32
	ch   chan *backend // buffered: sent to under p.mu, never blocks
	// (p.mu) passed counts the backends handed to later waiters of
	// their own accounts (handoff).
	passed int
	since  time.Time // when the statement first queued (by Config.Clock)
}

// signalFreed wakes the first statement waiting at
// Config.MaxServerBackends to dial (a backend closed).
func (p *Pooler) signalFreed() {
	p.mu.Lock()
	p.signalFreedLocked()
	p.mu.Unlock()
}

func (p *Pooler) signalFreedLocked() {
	if len(p.waitq) > 0 {
		p.waitq[0].ch <- nil
		p.waitq = p.waitq[1:]
	}
}

// handoff gives b, being put back, to a statement waiting for a backend of
// its server with its capabilities; false: none waits. The first waiter
// of b's own account gets it (no COM_CHANGE_USER: two round trips and a
// fresh session on the server, and the statement it would cost the next
// one) before waiters of other accounts that came earlier, but a waiter
// lets at most maxPassed backends go by that way: then it is served
// first come first served.
func (p *Pooler) handoff(b *backend) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	serves := func(w *waiter) bool { return w.serves(b) }
	first, own := -1, -1
	for i, w := range p.waitq {
		if !serves(w) {
			continue
		}
		if first < 0 {
			first = i
			if w.passed >= maxPassed {
				break
			}
		}
		if w.pl == b.pool {
			own = i
			break
		}
	}
	if first < 0 {
		return false
	}
	pick := first
	if own > first {
		pick = own
		for _, w := range p.waitq[first:own] {
			if serves(w) {
				w.passed++
			}
		}
	}
	w := p.waitq[pick]
	p.waitq = slices.Delete(p.waitq, pick, pick+1)
	w.ch <- b
	return true
}

// serves reports whether w can use b (p.mu held): the same server and
// capabilities, and b its own account's or one it can take over.
func (w *waiter) serves(b *backend) bool {
	return w.caps == b.caps && w.pl.replica == b.pool.replica && w.pl.server == b.pool.server && (w.pl == b.pool || b.salt != nil)
}

// waitsFor reports whether a statement waits at Config.MaxServerBackends
// that b would serve, and whether one of those has waited half of
// Config.QueueWait by now (p.mu held).
func (p *Pooler) waitsFor(b *backend, now time.Time) (waits, long bool) {
	for _, w := range p.waitq {
		if w.serves(b) {
			waits = true
			if now.Sub(w.since) >= p.cfg.QueueWait/2 {
				return true, true
			}
		}
	}
	return waits, false
}

// maxPassed is how many backends handoff lets go by a waiting statement
// to later ones of the backends' own accounts.
const maxPassed = 2

// acquire finds pl a backend beyond those idle in pl itself: one put
// back meanwhile, another account's idle one taken over, or a new one —
// waiting up to Config.QueueWait while Config.MaxServerBackends are open. pl
// has counted it already.
func (p *Pooler) acquire(ctx context.Context, pl *pool, caps uint32, want sqlscan.State) (*backend, error) {
	k := kind(pl.replica)
	var deadline <-chan time.Time
	over, requeue := false, false
	passed := 0         // (handoff) kept when the statement queues again
	var since time.Time // when it first queued, kept when it queues again
	defer func() {
		if !since.IsZero() {
			p.queueWait.Add(int64(p.cfg.Clock().Sub(since)))
		}
	}()
	for {
		puts := p.puts.Load()
		if b := p.takeIdle(pl, caps); b != nil {
			if b, ok := p.takeOver(pl, b, want); ok {
				return b, nil
			}
			continue
		}
		if b := p.takeLingering(pl, caps); b != nil {
			// Counted in pl.open already, like its place get reserved.
			pl.mu.Lock()
			pl.open--
			pl.mu.Unlock()
			return b, nil
		}
		if over {
			// Waited QueueWait: a backend lingering for another
			// account's session is idle, and taken over before one
			// opens beyond the bound.
			if b := p.takeLingeringOther(pl, caps); b != nil {
				p.lingerCut.Add(1)
				if b, ok := p.takeOver(pl, b, want); ok {
					return b, nil
				}
				continue
			}
		}
		p.mu.Lock()
		if over || p.cfg.MaxServerBackends < 0 || p.openTo(pl.replica)+p.dialing[k] < p.cfg.MaxServerBackends {
			p.dialing[k]++
			p.mu.Unlock()
			b, err := pl.dial(ctx, caps)
			p.mu.Lock()
			p.dialing[k]--
			p.mu.Unlock()
			if err != nil {
				p.signalFreed()
				return nil, err
			}
			p.dialed.Add(1)
			if over {
				p.overflows.Add(1)
			}
			p.backendOpened(pl.replica, 1)
			return b, nil
		}
		if p.puts.Load() != puts {
			// One was put back idle since takeIdle looked: look again.
			p.mu.Unlock()
			continue
		}
		if since.IsZero() {
			since = p.cfg.Clock()
		}
		w := &waiter{pl: pl, caps: caps, ch: make(chan *backend, 1), passed: passed, since: since}
		if requeue {
			// Woken, it lost the place it dialled for: it keeps its turn.
			p.waitq = slices.Insert(p.waitq, 0, w)
		} else {
			p.waitq = append(p.waitq, w)
		}
		p.mu.Unlock()
		if deadline == nil {
			p.queued.Add(1)
			t := time.NewTimer(p.cfg.QueueWait)
			defer t.Stop()
			deadline = t.C
		}
		var err error
		var b *backend
		woken := false
		select {
		case b = <-w.ch:
			woken = true
		case <-deadline:
			over = true
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		if !woken {
			if i := slices.Index(p.waitq, w); i >= 0 {
				p.waitq = slices.Delete(p.waitq, i, i+1)
			} else {
				b, woken = <-w.ch, true // handed one meanwhile (under p.mu)
			}
		}
		passed = w.passed
		p.mu.Unlock()
		requeue = woken && b == nil
		if b != nil {
			if err != nil {
				b.c.Close()
				p.backendOpened(pl.replica, -1)
				return nil, err
			}
			if b, ok := p.takeOver(pl, b, want); ok {
				return b, nil
			}
			continue
		}
		if err != nil {
			return nil, err
		}
	}
}

// takeOver makes b, handed or taken from the pool of its account, pl's: a
// COM_CHANGE_USER when the accounts differ. false: b failed and is closed.
func (p *Pooler) takeOver(pl *pool, b *backend, want sqlscan.State) (*backend, bool) {
	if b.pool == pl {
		return b, true
	}
	coll, ok := want.Collation()
	if !ok {
		coll = backendCollationID
	}
	if err := pl.changeUser(b, coll); err != nil {
		b.c.Close()
		p.backendOpened(pl.replica, -1)
		return nil, false
	}
	b.pool = pl
	p.changedUser.Add(1)
	return b, true
}
