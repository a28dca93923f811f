package shard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/pooler"
	"github.com/aipress/aipress/internal/replwatch"
	"github.com/aipress/aipress/internal/site"
)

// The shard's database tier: the connection pooler (package pooler) between
// the sites' PHP and MariaDB, and the read replica it sends reads to
// (Config.DirectDB, Config.Replica).
//
// The pooler runs in the shard's process beside MariaDB and php-fpm and
// listens on Layout.PoolerSocket, which every site's wp-config.php names
// (DB_HOST "localhost:" and the socket). Its accounts are every site's
// database accounts as secrets.json records them — during a DB password
// rotation both (rotate.go) — with the site's limits: MaxBackends its
// DBConnections (the account's MAX_USER_CONNECTIONS), MaxClients its
// DBClients. They are read again from the sites' directories after every
// change (syncPooler): a convergence pass, each rotation step, an import, a
// restore, a deletion. After a freeze, an unfreeze or a drop of an account
// the pooler ends that account's sessions and backend connections
// (resetPooled), so no pooled connection keeps privileges it lost (a
// database-level privilege change reaches an open connection only at its
// next USE).
//
// With the pooler on, the sites' PHP needs no way to MariaDB's own socket,
// and is given none (restrictDBDir): MariaDB's directory is root's with
// group mysql, mode 0710 (mariadbd, running as mysql, reaches its data and
// socket through the group; site users are neither), so a site cannot
// connect past its pooler limits. Over TCP, site accounts exist only for
// "localhost" (the socket) on a local server; an external server's port is
// kept from the site users by the site firewall, which allows it only
// without the pooler.

// dbDirMode is the mode of a local MariaDB's (and replica's) directory
// while the pooler runs: root and the mysql group only.
const dbDirMode = 0o710

// restrictDBDir makes dir (a local MariaDB's Dir, after its Prepare set it
// to 0711) reachable only by root and mariadbd's group. Without root there
// is nothing to restrict: every process is the caller.
func restrictDBDir(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	gid := 0
	if u, err := user.Lookup("mysql"); err == nil {
		gid, _ = strconv.Atoi(u.Gid) // mariadbd runs as mysql (mariadb.runAs)
	}
	if err := os.Chown(dir, 0, gid); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	if err := os.Chmod(dir, dbDirMode); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	return nil
}

// lateGate is the pooler's ReplicaGate before and between the replica
// watches: no watch, no reads on the replica.
type lateGate struct {
	w atomic.Pointer[replwatch.Watch]
}

func (g *lateGate) Usable(gtid string) bool {
	w := g.w.Load()
	return w != nil && w.Usable(gtid)
}

// dbTier is the shard's pooler, replica and replica watch.
type dbTier struct {
	mu      sync.Mutex
	pool    *pooler.Pooler // the running one (nil: none, or DirectDB)
	ready   chan struct{}  // closed once a pooler listened
	readyOK bool
	syncMu  sync.Mutex // orders syncPooler's reads and SetAccounts
	replica *mariadb.Server
	gate    lateGate
	limits  map[string]site.Limits // by site ID, as the last pass saw them
}

// poolerOn reports whether the shard runs a pooler.
func (s *Shard) poolerOn() bool { return !s.cfg.DirectDB }

// clientHost is the sites' DB_HOST: the pooler's socket, or without it the
// database server's own address.
func (s *Shard) clientHost() string {
	if s.poolerOn() {
		return "localhost:" + s.layout.PoolerSocket()
	}
	return s.db.ClientHost()
}

// Pooler returns the shard's running pooler (nil: DirectDB, or not
// started yet). Tests and the benchmark read its Stats.
func (s *Shard) Pooler() *pooler.Pooler {
	s.tier.mu.Lock()
	defer s.tier.mu.Unlock()
	return s.tier.pool
}

// Replica returns the shard's local read replica (nil: none).
func (s *Shard) Replica() *mariadb.Server { return s.tier.replica }

// ReplicaGate returns what decides whether a read may go to the replica
// (tests).
func (s *Shard) ReplicaGate() pooler.ReplicaGate { return &s.tier.gate }

// checkDBConfig checks DirectDB and Replica against Database.
func (s *Shard) checkDBConfig() error {
	if err := s.checkManagedReplica(); err != nil {
		return err
	}
	r := s.cfg.Replica
	if r == "" {
		return nil
	}
	if err := CheckReplica(r); err != nil {
		return err
	}
	if s.cfg.DirectDB {
		return errors.New("a database replica needs the pooler (DirectDB is set): it routes the reads")
	}
	if r == ReplicaLocal && s.cfg.Database != nil {
		return errors.New(`database replica "local" replicates the shard's own MariaDB; with an external server give its replica's HOST:PORT`)
	}
	if r != ReplicaLocal && s.cfg.Database == nil {
		return fmt.Errorf("database replica %s: a replica by address is one of an external server (Database); the shard's own MariaDB takes %q", r, ReplicaLocal)
	}
	return nil
}

// prepareDBTier readies the pooler's directory, the local replica and
// MariaDB's directory's mode (after s.db.Prepare).
func (s *Shard) prepareDBTier(ctx context.Context) error {
	if s.cfg.Database == nil && s.poolerOn() {
		if err := restrictDBDir(s.db.Dir); err != nil {
			return err
		}
	}
	if s.tier.replica != nil {
		if err := s.tier.replica.Prepare(ctx); err != nil {
			return err
		}
		if err := restrictDBDir(s.tier.replica.Dir); err != nil {
			return err
		}
	}
	if !s.poolerOn() {
		return nil
	}
	for _, d := range []string{filepath.Dir(s.layout.PoolerDir()), s.layout.PoolerDir()} {
		if err := ensureDir(d, 0o711, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// primaryBackend is where the pooler reaches the primary.
func (s *Shard) primaryBackend() pooler.Backend {
	if s.cfg.Database != nil {
		return pooler.Backend{Network: "tcp", Addr: s.cfg.Database.Addr}
	}
	return pooler.Backend{Network: "unix", Addr: s.db.Socket()}
}

// replicaBackend is where the pooler reaches the replica (nil: none).
func (s *Shard) replicaBackend() *pooler.Backend {
	switch {
	case s.tier.replica != nil:
		return &pooler.Backend{Network: "unix", Addr: s.tier.replica.Socket()}
	case s.cfg.Replica != "" && s.cfg.Replica != ReplicaLocal:
		return &pooler.Backend{Network: "tcp", Addr: s.cfg.Replica}
	}
	return nil
}

// startDBTier starts, on wg until ctx ends, the replica, its watch and the
// pooler (restarted when it fails). Call waitDBTier for the pooler's first
// start.
func (s *Shard) startDBTier(ctx context.Context, wg *sync.WaitGroup) {
	s.tier.mu.Lock()
	s.tier.ready = make(chan struct{})
	s.tier.mu.Unlock()
	if r := s.tier.replica; r != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	if s.replicaBackend() != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.runReplicaWatch(ctx) }()
	}
	if s.cfg.ReplicaManaged {
		wg.Add(1)
		go func() { defer wg.Done(); s.runManagedReplica(ctx) }()
	}
	if s.poolerOn() {
		wg.Add(1)
		go func() { defer wg.Done(); s.runPooler(ctx) }()
	}
}

// dbTierReady is closed once the pooler listens (at once without one).
func (s *Shard) dbTierReady() <-chan struct{} {
	if !s.poolerOn() {
		c := make(chan struct{})
		close(c)
		return c
	}
	s.tier.mu.Lock()
	defer s.tier.mu.Unlock()
	return s.tier.ready
}

// restartBackoff bounds the waits between restarts of the pooler and the
// replica watch.
const (
	minRestart = 200 * time.Millisecond
	maxRestart = 10 * time.Second
)

// runPooler runs the pooler until ctx ends, starting a new one when it
// fails.
func (s *Shard) runPooler(ctx context.Context) {
	log := s.log.With("component", "pooler")
	wait := minRestart
	for ctx.Err() == nil {
		started := time.Now()
		err := s.runPoolerOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			wait = minRestart
		}
		log.Error("pooler stopped; restarting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRestart)
	}
}

func (s *Shard) runPoolerOnce(ctx context.Context) error {
	var gate pooler.ReplicaGate
	replica := s.replicaBackend()
	if replica != nil {
		gate = &s.tier.gate
	}
	p, err := pooler.New(pooler.Config{
		Socket:            s.layout.PoolerSocket(),
		Primary:           s.primaryBackend(),
		Replica:           replica,
		Gate:              gate,
		MaxServerBackends: s.cfg.PoolerBackends,
		Linger:            s.cfg.PoolerLinger,
		Logger:            s.log.With("component", "pooler"),
		Clock:             s.cfg.Clock,
	})
	if err != nil {
		return fmt.Errorf("pooler: %w", err)
	}
	// Its accounts before it listens: a request must not find its site
	// unknown.
	s.tier.syncMu.Lock()
	p.SetAccounts(s.poolerAccounts())
	s.tier.mu.Lock()
	s.tier.pool = p
	s.tier.mu.Unlock()
	s.tier.syncMu.Unlock()
	defer func() {
		s.tier.mu.Lock()
		if s.tier.pool == p {
			s.tier.pool = nil
		}
		s.tier.mu.Unlock()
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	select {
	case <-p.Ready():
		s.tier.mu.Lock()
		if !s.tier.readyOK {
			s.tier.readyOK = true
			close(s.tier.ready)
		}
		s.tier.mu.Unlock()
		s.log.Info("pooler listening", "socket", s.layout.PoolerSocket())
	case err := <-done:
		if err == nil {
			err = errors.New("pooler returned before it listened")
		}
		return err
	}
	err = <-done
	if err == nil && ctx.Err() == nil {
		err = errors.New("pooler returned")
	}
	return err
}

// runReplicaWatch watches the replica until ctx ends (restarted when it
// fails); the pooler's gate follows it.
func (s *Shard) runReplicaWatch(ctx context.Context) {
	log := s.log.With("component", "replwatch")
	wait := minRestart
	for ctx.Err() == nil {
		err := s.runReplicaWatchOnce(ctx)
		s.tier.gate.w.Store(nil)
		if ctx.Err() != nil {
			return
		}
		log.Warn("replica watch stopped; reads go to the primary until it restarts", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRestart)
	}
}

func (s *Shard) runReplicaWatchOnce(ctx context.Context) error {
	cfg := replwatch.Config{
		Primary: s.primaryBackend(), Replica: *s.replicaBackend(),
		Clock: s.cfg.Clock, Logger: s.log.With("component", "replwatch"),
	}
	if s.cfg.Database != nil {
		// The external server's admin account watches (it may read
		// replication state on both).
		cfg.User, cfg.Password = s.cfg.Database.User, s.cfg.Database.Password
	} else {
		select {
		case <-s.db.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
		var err error
		if cfg.User, cfg.Password, err = s.db.Account(ctx, mariadb.RoleMonitor); err != nil {
			return fmt.Errorf("monitor account: %w", err)
		}
	}
	w := replwatch.New(cfg)
	s.tier.gate.w.Store(w)
	return w.Run(ctx)
}

// noteLimits records site id's limits for its pooler accounts; changed
// says whether they differ from what was recorded.
func (s *Shard) noteLimits(id string, l site.Limits) (changed bool) {
	l = l.WithDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tier.limits == nil {
		s.tier.limits = map[string]site.Limits{}
	}
	if old, ok := s.tier.limits[id]; ok && old == l {
		return false
	}
	s.tier.limits[id] = l
	return true
}

// forgetLimits drops what noteLimits recorded of site id.
func (s *Shard) forgetLimits(id string) {
	s.mu.Lock()
	delete(s.tier.limits, id)
	s.mu.Unlock()
}

// poolerAccounts are the accounts of every site directory's secrets: the
// account in use, and during a rotation the other one too.
func (s *Shard) poolerAccounts() []pooler.Account {
	ents, err := os.ReadDir(s.sitesDir())
	if err != nil {
		return nil
	}
	var out []pooler.Account
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		n := s.namesForID(e.Name())
		sec, err := readSecretsFile(n.Dir)
		if err != nil {
			continue // not (yet) a site with a database
		}
		s.mu.Lock()
		l, ok := s.tier.limits[n.ID]
		s.mu.Unlock()
		if !ok {
			l = site.Limits{}.WithDefaults()
		}
		add := func(user, password string) {
			if password == "" || slices.ContainsFunc(out, func(a pooler.Account) bool { return a.User == user }) {
				return
			}
			out = append(out, pooler.Account{User: user, Password: password, Database: n.DB,
				MaxClients: l.DBClients, MaxBackends: l.DBConnections})
		}
		add(sec.dbUser(n), sec.DBPassword)
		if r := sec.DBRotation; r != nil {
			switch r.Step {
			case rotPrepared:
				add(dbUserFor(n, r.Slot), r.Password)
			case rotSwitched:
				add(dbUserFor(n, r.OldSlot), r.OldPassword)
			}
		}
	}
	// The template database's account while a template is built
	// (template.go).
	s.tpl.Lock()
	if a := s.tplAccount; a != nil {
		out = append(out, *a)
	}
	s.tpl.Unlock()
	return out
}

// syncPooler gives the pooler the accounts the sites' directories hold now.
func (s *Shard) syncPooler() {
	if !s.poolerOn() {
		return
	}
	s.tier.syncMu.Lock()
	defer s.tier.syncMu.Unlock()
	if p := s.Pooler(); p != nil {
		p.SetAccounts(s.poolerAccounts())
	}
}

// resetPooled ends the pooler's sessions and backend connections of users
// (after a freeze, an unfreeze or a drop).
func (s *Shard) resetPooled(users ...string) {
	if p := s.Pooler(); p != nil {
		for _, u := range users {
			p.ResetAccount(u)
		}
	}
}

// clientSessions counts user's open client sessions: the pooler's when it
// runs, else the database server's.
func (s *Shard) clientSessions(ctx context.Context, user string) (int, error) {
	if s.poolerOn() {
		p := s.Pooler()
		if p == nil {
			return 0, nil // no pooler listening: no client is connected
		}
		return p.Stats().Accounts[user].Clients, nil
	}
	return s.db.UserSessions(ctx, user)
}
