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
// STATUS: skeleton (the API the shard codes against); the implementation is
// being written.
package pooler

import (
	"context"
	"errors"
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
	// BackendWait bounds how long a statement waits for a free backend
	// connection of its account (default 10s).
	BackendWait time.Duration
	Logger      *slog.Logger
	Clock       func() time.Time
}

// Pooler is a running pooler.
type Pooler struct {
	cfg Config
}

// New returns a pooler; Run starts it.
func New(cfg Config) (*Pooler, error) {
	return nil, errors.ErrUnsupported
}

// SetAccounts replaces the accounts the pooler accepts. A removed account,
// or one whose password or database changed, loses its client sessions and
// backend connections at once.
func (p *Pooler) SetAccounts(accts []Account) {}

// ResetAccount ends every client session and closes every backend
// connection of user (after its writes were frozen or it was dropped, so
// nothing keeps privileges it lost).
func (p *Pooler) ResetAccount(user string) {}

// Run listens until ctx is done, then closes every connection.
func (p *Pooler) Run(ctx context.Context) error { return errors.ErrUnsupported }

// Ready is closed once the pooler listens.
func (p *Pooler) Ready() <-chan struct{} { return nil }

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
	// Accounts holds the same per account (by user).
	Accounts map[string]AccountStats
}

// AccountStats are one account's counters.
type AccountStats struct {
	Clients, Backends, Pinned int
	Refused                   uint64 // clients or statements refused by the account's limits
}

// Stats returns the counters.
func (p *Pooler) Stats() Stats { return Stats{} }

// ResetPeak starts PeakBackends again from the current count.
func (p *Pooler) ResetPeak() {}
