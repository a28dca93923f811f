// Package mariadb runs and administers one MariaDB server for a shard: it
// initialises a data directory with mariadb-install-db, runs mariadbd under a
// supervisor on its own socket and loopback port, and creates or drops one
// database and one least-privilege user per site. Dumps are loaded
// sandboxed, as an ephemeral user limited to the target database (load.go):
// their content comes from a site and is hostile.
//
// The server's root password is generated at initialisation and kept in the
// shard's data directory (mode 0600); root can only log in over the socket
// or loopback.
package mariadb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/supervise"
)

// Server is one MariaDB server a shard administers: by default one it runs
// itself (supervised, local socket and loopback port); with Remote set, an
// external MySQL/MariaDB server it reaches over TCP and does not run. The
// admin methods are the same in both modes.
type Server struct {
	Dir    string // data directory of this server (created); remote: client option file only
	Logger *slog.Logger
	// Remote, if set, is the external server to administer instead of
	// running one.
	Remote *Remote
	// LoadUserPrefix starts the names of the ephemeral users Load runs
	// dumps as (default DefaultLoadUserPrefix); CollectLoadUsers drops
	// leftovers by it, so servers that share one database server need
	// distinct prefixes (a shard uses its NamePrefix).
	LoadUserPrefix string
	// ServerID is the server's server_id in replication and in its
	// binary log's GTIDs (default 1; a replica's default is 2).
	ServerID int
	// ReplicaOf, if set, makes this (local) server a read replica of that
	// local primary: Run seeds it from the primary and replicates with
	// GTIDs (replica.go). The primary must be prepared first.
	ReplicaOf *Server
	// ReplicaOfRemote, if set, makes this (local) server a read replica of
	// a primary reached by address (Kubernetes: the primary's pod).
	ReplicaOfRemote *Source
	// AccountPrefix starts the names of the internal accounts Account
	// makes (default: LoadUserPrefix without its "ld_" ending, else
	// DefaultAccountPrefix). Shards' orphan collection never matches them.
	AccountPrefix string
	// BufferPool is a local server's innodb_buffer_pool_size in bytes
	// (0: DefaultBufferPool; see MemoryOptions).
	BufferPool int64

	port     int
	password string
	proc     *supervise.Process
	db       *sql.DB
	ready    chan struct{}

	accountMu    sync.Mutex
	accountsDone map[string]string // role → password ensured by this process (under accountMu)
	seedMu       sync.Mutex
	// A replica's check interval and least time between two seeds
	// (tests shorten them; 0: keepInterval, reseedGap).
	keepEvery, reseedGap time.Duration
	lastSeed             time.Time // under seedMu
	loadMu               sync.Mutex
	clientChecked        bool            // the mariadb client has the sandbox options
	loading              map[string]bool // load users of running loads
}

// Remote is an external MySQL/MariaDB server reached over TCP.
type Remote struct {
	Addr     string // host:port
	User     string // an account that creates databases and users and grants (root)
	Password string
	// UserHost is the host part of the site users' accounts: where the
	// sites' PHP connects from. Default "%" (any host): on Kubernetes the
	// pods' addresses are dynamic. Site passwords are 32 random characters
	// and the server's port must be reachable only inside the cluster
	// (a NetworkPolicy).
	UserHost string
}

// DefaultRemoteUserHost is the site users' host pattern on a remote server.
const DefaultRemoteUserHost = "%"

var userHostPattern = regexp.MustCompile(`^[A-Za-z0-9_.%:-]{1,255}$`)

func (r *Remote) check() error {
	host, port, err := net.SplitHostPort(r.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("mariadb: remote server address %q: want host:port", r.Addr)
	}
	if r.User == "" {
		return errors.New("mariadb: remote server: no user")
	}
	if r.UserHost == "" {
		r.UserHost = DefaultRemoteUserHost
	}
	if !userHostPattern.MatchString(r.UserHost) {
		return fmt.Errorf("mariadb: site user host %q: want a host name, IP address or pattern with %% and _", r.UserHost)
	}
	return nil
}

// userHost is the host part of site users' accounts.
func (s *Server) userHost() string {
	if s.Remote != nil {
		return s.Remote.UserHost
	}
	return "localhost"
}

// ClientHost is what the sites' PHP gives as DB_HOST: "localhost:" and the
// socket of a local server, the host:port of a remote one.
func (s *Server) ClientHost() string {
	if s.Remote != nil {
		return s.Remote.Addr
	}
	return "localhost:" + s.Socket()
}

// Paths inside Dir.
func (s *Server) dataDir() string  { return filepath.Join(s.Dir, "data") }
func (s *Server) cnf() string      { return filepath.Join(s.Dir, "my.cnf") }
func (s *Server) pwFile() string   { return filepath.Join(s.Dir, "root-password") }
func (s *Server) portFile() string { return filepath.Join(s.Dir, "port") }

// binlogDir holds the binary logs (and a replica's relay logs). Like data/
// it belongs to the mysql user.
func (s *Server) binlogDir() string { return filepath.Join(s.Dir, "binlog") }

// BinlogDir is where a local server keeps its binary logs (files
// "mariadb-bin.NNNNNN", index "mariadb-bin.index").
func (s *Server) BinlogDir() string { return s.binlogDir() }

// serverID is the server_id the server runs with.
func (s *Server) serverID() int {
	switch {
	case s.ServerID > 0:
		return s.ServerID
	case s.isReplica():
		return 2
	}
	return 1
}

// runDir holds what mariadbd writes besides its data: socket, pid file and
// error log. Like data/ it belongs to the mysql user; Dir itself stays
// root's, so a compromised mariadbd cannot plant links where root writes.
func (s *Server) runDir() string { return filepath.Join(s.Dir, "run") }

// Socket is the server's Unix socket path.
func (s *Server) Socket() string { return filepath.Join(s.runDir(), "mysqld.sock") }

// Port is the server's loopback TCP port.
func (s *Server) Port() int { return s.port }

// runAs is the OS user mariadbd runs as: mysql when we are root and it
// exists, else ourselves.
func runAs() (*user.User, bool) {
	if os.Geteuid() != 0 {
		return nil, false
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, false
	}
	return u, true
}

// Prepare initialises the data directory on first use (idempotent; a
// half-initialised directory from a crash is wiped and done again) and writes
// the configuration.
func (s *Server) Prepare(ctx context.Context) error {
	s.ready = make(chan struct{})
	if s.Remote != nil {
		return s.prepareRemote()
	}
	if err := CheckBufferPool(s.BufferPool); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	// 0711: site users reach the socket inside, nothing else.
	if err := os.MkdirAll(s.Dir, 0o711); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := os.Chmod(s.Dir, 0o711); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(s.Dir, 0, 0); err != nil {
			return fmt.Errorf("mariadb: %w", err)
		}
	}
	// run/: socket, pid file, error log; 0711 so site users reach the socket.
	if err := os.MkdirAll(s.runDir(), 0o711); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := os.Chmod(s.runDir(), 0o711); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := s.chown(s.runDir()); err != nil {
		return err
	}
	// binlog/: binary logs (and a replica's relay logs), mariadbd's.
	if err := os.MkdirAll(s.binlogDir(), 0o750); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := s.chown(s.binlogDir()); err != nil {
		return err
	}
	if err := s.prepareReplica(); err != nil {
		return err
	}
	if err := s.loadOrCreateSecrets(); err != nil {
		return err
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	if err := s.writeClientConfig(); err != nil {
		return err
	}
	marker := filepath.Join(s.Dir, "initialised")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	// Not (completely) initialised: start from scratch.
	if err := os.RemoveAll(s.dataDir()); err != nil {
		return fmt.Errorf("mariadb: reset data dir: %w", err)
	}
	if err := os.MkdirAll(s.dataDir(), 0o750); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	if err := s.chown(s.dataDir()); err != nil {
		return err
	}
	args := []string{"--defaults-file=" + s.cnf(), "--auth-root-authentication-method=socket", "--skip-test-db"}
	if u, ok := runAs(); ok {
		args = append(args, "--user="+u.Username)
	}
	// mariadb-install-db has been seen to fail once under heavy load and
	// succeed when run again on a clean directory: try three times.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 {
			if s.Logger != nil {
				s.Logger.Warn("mariadb-install-db failed; retrying on a clean data dir", "attempt", attempt, "err", err)
			}
			if rerr := os.RemoveAll(s.dataDir()); rerr != nil {
				return fmt.Errorf("mariadb: reset data dir: %w", rerr)
			}
			if merr := os.MkdirAll(s.dataDir(), 0o750); merr != nil {
				return fmt.Errorf("mariadb: %w", merr)
			}
			if cerr := s.chown(s.dataDir()); cerr != nil {
				return cerr
			}
			time.Sleep(time.Second)
		}
		out, runErr := exec.CommandContext(ctx, "mariadb-install-db", args...).CombinedOutput()
		if runErr == nil {
			return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
		}
		err = fmt.Errorf("mariadb: mariadb-install-db: %w: %s", runErr, tail(out))
		if ctx.Err() != nil {
			break
		}
	}
	return err
}

func (s *Server) chown(path string) error {
	u, ok := runAs()
	if !ok {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("mariadb: chown %s: %w", path, err)
	}
	return nil
}

func (s *Server) loadOrCreateSecrets() error {
	if b, err := os.ReadFile(s.pwFile()); err == nil && len(strings.TrimSpace(string(b))) == 32 {
		s.password = strings.TrimSpace(string(b))
	} else if err == nil && fileExists(filepath.Join(s.Dir, "initialised")) {
		return fmt.Errorf("mariadb: %s is damaged; restore it (the server is initialised with that password)", s.pwFile())
	} else {
		s.password = randomHex(16)
		if err := writeFileAtomic(s.pwFile(), []byte(s.password+"\n"), 0o600); err != nil {
			return fmt.Errorf("mariadb: %w", err)
		}
	}
	if b, err := os.ReadFile(s.portFile()); err == nil {
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && p > 0 {
			s.port = p
			return nil
		}
	}
	p, err := freePort()
	if err != nil {
		return fmt.Errorf("mariadb: pick port: %w", err)
	}
	s.port = p
	return os.WriteFile(s.portFile(), []byte(strconv.Itoa(p)+"\n"), 0o600)
}

// BinlogExpiry is how long a local server keeps its binary logs
// (binlog_expire_logs_seconds): long enough for a replica or the
// point-in-time log shipper that was down for a while to catch up.
const BinlogExpiry = 3 * 24 * time.Hour

// WordPressSQLMode is the sql_mode every server of a shard starts its
// sessions with: the server's default without STRICT_TRANS_TABLES, which
// WordPress removes itself on every connection (wpdb::set_sql_mode reads
// the session's sql_mode and SETs it again without NO_ZERO_DATE,
// ONLY_FULL_GROUP_BY, STRICT_TRANS_TABLES, STRICT_ALL_TABLES, TRADITIONAL
// and ANSI). Starting there, the sql_mode WordPress SETs is the server's
// own: behind the pooler a backend taken over from another site (which
// starts with the server's) needs nothing replayed. A site may still SET
// its own.
const WordPressSQLMode = "ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"

// BinlogOptions are the server options of the binary log every server
// of a shard runs with (server_id id, logs in dir), as "name=value": the
// local servers' configuration has them, and a server run elsewhere (a
// Kubernetes StatefulSet) gets them as "--name=value" arguments.
func BinlogOptions(id int, dir string) []string {
	return []string{
		"server_id=" + strconv.Itoa(id),
		"log_bin=" + filepath.Join(dir, "mariadb-bin"),
		"log_bin_index=" + filepath.Join(dir, "mariadb-bin.index"),
		"binlog_format=ROW",
		"binlog_row_image=FULL",
		"binlog_row_metadata=FULL",
		"gtid_domain_id=0",
		"gtid_strict_mode=ON",
		"binlog_expire_logs_seconds=" + strconv.Itoa(int(BinlogExpiry/time.Second)),
		"max_binlog_size=64M",
		"log_bin_trust_function_creators=ON",
	}
}

// DefaultBufferPool is innodb_buffer_pool_size when none is set. A fresh
// WordPress site has about 1.3 MiB of index, data and tablespace header
// pages (16 KiB each) that its installer, page views and backups touch;
// 50 of them would fill about 64 MiB. A shard of mostly idle sites does not
// need them all in the pool: the least recently used are evicted and an
// idle site's next request reads them again from the OS page cache (a
// fraction of a millisecond each). The pool is reserved at start and
// touched only as pages are read, so it is a bounded cost per shard that
// grows with the sites up to this size: at 50 idle sites a 32M pool costs
// ≤ 655 KiB per site, the former 128M default about 1.5 MiB
// (docs/database.md, "Server memory"). Busy or big sites want their
// working set in it: the operator raises it per shard.
const DefaultBufferPool int64 = 32 << 20

// MinBufferPool is the smallest BufferPool a server accepts.
const MinBufferPool int64 = 32 << 20

// MemoryOptions are the server options that bound a server's memory, as
// "name=value" (the local servers' configuration has them; a server run
// elsewhere gets them as arguments), with bufferPool bytes of InnoDB
// buffer pool (0: DefaultBufferPool). Besides the buffer pool the fixed
// memory of a shard's server is small (measured in docs/database.md):
//
//   - innodb_log_buffer_size 4M (default 16M, touched at start): a
//     WordPress write is a few KiB; a larger import only flushes more often.
//   - aria_pagecache_buffer_size 8M (default 128M): Aria holds the system
//     tables and internal on-disk temporary tables, nothing of the sites'.
//   - key_buffer_size 8M (default 128M, a sixth of it touched at start):
//     MyISAM indexes only, which WordPress does not create (an imported
//     old dump may).
//   - table_definition_cache 400 (MariaDB's least), table_open_cache 100
//     and innodb_open_files 300: a WordPress site has 12 tables (more with
//     plugins), 50 sites about 600. The definition cache holds the tables'
//     shares and the least recently used are closed, which also evicts them
//     from InnoDB's dictionary; an idle site's next request opens its
//     tables again (a few ms). The open table cache holds handles made
//     from those shares (cheap to make again); 100 covers the tables a
//     shard's pooler connections use at once, and tables in use stay open
//     beyond it. With 2000 and 1000 every table a site ever opened stayed:
//     616 KiB per database on a server holding 20 → 60 copies of a
//     WordPress-like schema, 285 KiB with 400/400; table_open_cache 100
//     instead of 400 saves about 150 KiB more per database at 50
//     (docs/database.md).
//   - thread_cache_size 32 (default 256): after a burst of connections
//     no more than 32 idle threads keep their stacks.
//   - performance_schema OFF.
func MemoryOptions(bufferPool int64) []string {
	if bufferPool <= 0 {
		bufferPool = DefaultBufferPool
	}
	return []string{
		"innodb_buffer_pool_size=" + FormatSize(bufferPool),
		"innodb_log_buffer_size=4M",
		"aria_pagecache_buffer_size=8M",
		"key_buffer_size=8M",
		"table_open_cache=100",
		"table_definition_cache=400",
		"innodb_open_files=300",
		"thread_cache_size=32",
		"performance_schema=OFF",
	}
}

// MallocEnv gives the environment a local server runs with besides the
// platform's own: glibc's malloc with a single arena. By default glibc gives
// threads arenas of their own (up to 8 per CPU), and each keeps the memory
// its threads freed — table handles and definitions closed by the table
// caches, a connection's buffers — for its own threads only: MariaDB's
// connection threads then hold several partly empty heaps. With one arena
// freed memory is reused by every thread. Measured on a server started by
// hand (32M buffer pool, 6 connections reading 50 WordPress databases):
// 903–1009 KiB of anonymous memory per database added (10 → 50) with
// glibc's default, 707 with one arena, 841 with two (docs/database.md).
// The cost is one lock for every allocation; a shard's server runs a few
// connections on a few CPUs.
func MallocEnv() []string { return []string{"MALLOC_ARENA_MAX=1"} }

// ParseSize parses a size as MariaDB writes it: a number of bytes with an
// optional K, M or G suffix (powers of 1024).
func ParseSize(v string) (int64, error) {
	num, mult := v, int64(1)
	if v != "" {
		switch v[len(v)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			num = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional K, M or G suffix", v)
	}
	return n * mult, nil
}

// FormatSize writes bytes as ParseSize reads them, in the largest unit
// that divides them.
func FormatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// CheckBufferPool checks a BufferPool setting (0: the default).
func CheckBufferPool(n int64) error {
	if n != 0 && n < MinBufferPool {
		return fmt.Errorf("InnoDB buffer pool of %s: at least %s", FormatSize(n), FormatSize(MinBufferPool))
	}
	return nil
}

// ReplicaOptions are the server options a read replica runs with besides
// BinlogOptions (with another server_id), relay logs in dir.
func ReplicaOptions(dir string) []string {
	return []string{
		"read_only=ON",
		"relay_log=" + filepath.Join(dir, "relay-bin"),
		"relay_log_index=" + filepath.Join(dir, "relay-bin.index"),
		"relay_log_recovery=ON",
		"log_slave_updates=OFF",
		"skip_slave_start=OFF",
		"slave_net_timeout=10",
	}
}

// optionLines writes options as option-file lines.
func optionLines(opts []string) string {
	var b strings.Builder
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	return b.String()
}

func (s *Server) writeConfig() error {
	conf := fmt.Sprintf(`# Written by aipress; changes are overwritten.
[mysqld]
datadir = %s
socket = %s
port = %d
bind-address = 127.0.0.1
pid-file = %s
log-error = %s
tmpdir = %s
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 2
max_connections = 300
sql_mode = %s
# Per-account counters (information_schema.USER_STATISTICS): each site's
# queries and connections for the shard's metrics (Statistics).
userstat = ON

# Memory: the buffer pool, and small fixed caches (MemoryOptions).
%s

# Binary log: point-in-time recovery reads it (ROW events with full
# images and column metadata) and replicas follow it by GTID.
# log_bin_trust_function_creators: without it, binary logging refuses
# triggers (and routines) from accounts without SUPER (error 1419) — what
# a site's dump loads with; the check guards statement-based logging, and
# this log is ROW only. Who may create them is still decided by the
# privileges (and DEFINER checks), as before.
%s%s
[client]
socket = %s
`, s.dataDir(), s.Socket(), s.port, filepath.Join(s.runDir(), "mariadbd.pid"), filepath.Join(s.runDir(), "error.log"), s.runDir(),
		WordPressSQLMode, optionLines(MemoryOptions(s.BufferPool)), optionLines(BinlogOptions(s.serverID(), s.binlogDir())), s.replicaConfig(), s.Socket())
	if err := os.WriteFile(s.cnf(), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("mariadb: write config: %w", err)
	}
	return nil
}

// Run runs the server until ctx is done, restarting it if it dies. On every
// (re)start it makes sure the root password is set. Use WaitReady to wait for
// the first start. With Remote it runs nothing: it connects (retrying until
// the server answers), reports ready and waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.Remote != nil {
		return s.runRemote(ctx)
	}
	// mariadbd starts as the mysql user rather than switching to it itself:
	// a process that changes its credentials loses its parent-death signal,
	// and that signal is what takes it down with a killed platform.
	command := func() *exec.Cmd {
		cmd := exec.Command("/usr/sbin/mariadbd", "--defaults-file="+s.cnf())
		cmd.Env = append(os.Environ(), MallocEnv()...)
		if u, ok := runAs(); ok {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		return cmd
	}
	s.proc = &supervise.Process{
		Name:        "mariadbd",
		Command:     command,
		PIDFile:     filepath.Join(s.Dir, "supervised.pid"),
		Match:       "mariadbd",
		StopTimeout: 60 * time.Second,
		Logger:      s.Logger,
	}
	var once bool
	// A replica is ready once it replicates (keepReplicating).
	up := make(chan struct{}, 1)
	if s.isReplica() {
		kctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.keepReplicating(kctx, up)
		once = true
	}
	return s.proc.Run(ctx, func(ctx context.Context, pid int) error {
		err := s.waitUp(ctx)
		if err == nil && !once {
			once = true
			close(s.ready)
		}
		if err == nil {
			select {
			case up <- struct{}{}:
			default:
			}
		}
		return err
	})
}

// Ready is closed once the server answered for the first time (a
// replica: once it is seeded and replicating). Call it after Prepare.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Process gives access to the supervised process (tests kill it).
func (s *Server) Process() *supervise.Process { return s.proc }

// waitUp waits until root can log in; on a fresh data directory it sets the
// root password over the socket (root uses socket authentication until then).
func (s *Server) waitUp(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.connectRoot(ctx); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("mariadb: not up after 90s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) connectRoot(ctx context.Context) error {
	if s.db != nil {
		return s.db.PingContext(ctx)
	}
	marker := filepath.Join(s.Dir, "root-password-set")
	if _, err := os.Stat(marker); err != nil && s.rootPasswordWorks(ctx) {
		// A crash came between setting the password and the marker.
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return fmt.Errorf("mariadb: %w", err)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		// Fresh server: root authenticates by socket peer credentials,
		// which needs the mariadb client (the Go driver lacks that plugin).
		sqlText := fmt.Sprintf("ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('%s'); FLUSH PRIVILEGES;", s.password)
		// On stdin: a command line is readable by every local user.
		cmd := exec.CommandContext(ctx, "mariadb", "--defaults-file="+s.cnf(), "-uroot")
		cmd.Stdin = strings.NewReader(sqlText)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mariadb: set root password: %w: %s", err, tail(out))
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return fmt.Errorf("mariadb: %w", err)
		}
	}
	db, err := s.open("root", s.password, "")
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("mariadb: connect as root: %w", err)
	}
	db.SetMaxOpenConns(4)
	s.db = db
	return nil
}

// rootPasswordWorks reports whether root can log in with its password.
func (s *Server) rootPasswordWorks(ctx context.Context) bool {
	db, err := s.open("root", s.password, "")
	if err != nil {
		return false
	}
	defer db.Close()
	return db.PingContext(ctx) == nil
}

func (s *Server) open(userName, password, dbName string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = userName
	cfg.Passwd = password
	if s.Remote != nil {
		cfg.Net, cfg.Addr = "tcp", s.Remote.Addr
	} else {
		cfg.Net = "unix"
		cfg.Addr = s.Socket()
	}
	cfg.DBName = dbName
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	cfg.AllowNativePasswords = true
	cfg.Logger = &mysql.NopLogger{} // errors are returned; the driver's own log is noise
	cfg.MultiStatements = false
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	return sql.OpenDB(c), nil
}

// OpenAs opens a connection pool as the given user (tests use it to check
// isolation).
func (s *Server) OpenAs(userName, password, dbName string) (*sql.DB, error) {
	return s.open(userName, password, dbName)
}

var ident = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// EnsureDatabase creates database name and user name@localhost (a remote
// server's site user host) with password, granting it all privileges on
// that database only, and limits the user to maxConnections concurrent
// connections (MAX_USER_CONNECTIONS, so one site cannot take the server's
// max_connections from the others; beyond it MariaDB refuses a connection
// with error 1226, "has exceeded the 'max_user_connections' resource"). It
// is idempotent: an existing user gets its password and limit reset, so a
// plan change takes effect on the next call (for new connections; open
// ones stay).
func (s *Server) EnsureDatabase(ctx context.Context, name, userName, password string, maxConnections int) error {
	if !ident.MatchString(name) || !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: invalid identifier %q/%q", name, userName)
	}
	if strings.ContainsAny(password, `'\`) {
		return errors.New("mariadb: password contains quote characters")
	}
	if maxConnections <= 0 {
		// 0 would mean "no limit of its own" to MariaDB.
		return fmt.Errorf("mariadb: user %s: connection limit %d, want at least 1", userName, maxConnections)
	}
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", userName, s.userHost(), password, maxConnections),
		fmt.Sprintf("ALTER USER '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", userName, s.userHost(), password, maxConnections),
		s.grantAll(name, userName),
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: ensure database %s: %w", name, err)
		}
	}
	return nil
}

// grantAll is the GRANT of a site user's privileges on its database. In a
// database-level grant "_" is a wildcard: it is escaped, or the user could
// create (and fill) databases such as wpX<id> nobody removes.
func (s *Server) grantAll(name, userName string) string {
	return fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES ON `%s`.* TO '%s'@'%s'", grantDB(name), userName, s.userHost())
}

func grantDB(name string) string { return strings.ReplaceAll(name, "_", `\_`) }

// writePrivileges are the privileges FreezeWrites revokes.
const writePrivileges = "INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX"

// FreezeWrites revokes userName's write privileges on database name (it
// keeps SELECT, so the site still reads) and ends the user's open
// connections: a database-level privilege change reaches a session only when
// it selects the database again, so a connection opened before the revoke
// could keep writing. Idempotent.
func (s *Server) FreezeWrites(ctx context.Context, name, userName string) error {
	if !ident.MatchString(name) || !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: invalid identifier %q/%q", name, userName)
	}
	if s.Remote != nil {
		return s.freezeRemote(ctx, name, userName)
	}
	for _, q := range []string{
		fmt.Sprintf("REVOKE %s ON `%s`.* FROM '%s'@'localhost'", writePrivileges, grantDB(name), userName),
		fmt.Sprintf("KILL HARD CONNECTION USER '%s'@'localhost'", userName),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: freeze writes to %s: %w", name, err)
		}
	}
	return nil
}

// UnfreezeWrites gives userName back every privilege EnsureDatabase grants
// on database name. Idempotent.
func (s *Server) UnfreezeWrites(ctx context.Context, name, userName string) error {
	if !ident.MatchString(name) || !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: invalid identifier %q/%q", name, userName)
	}
	if _, err := s.db.ExecContext(ctx, s.grantAll(name, userName)); err != nil {
		return fmt.Errorf("mariadb: unfreeze writes to %s: %w", name, err)
	}
	return nil
}

// WritesFrozen reports whether userName lacks the write privileges on
// database name that FreezeWrites revokes (all of them).
func (s *Server) WritesFrozen(ctx context.Context, name, userName string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mysql.db WHERE Host = ? AND User = ? AND Db = ?
		AND (Insert_priv = 'Y' OR Update_priv = 'Y' OR Delete_priv = 'Y' OR Create_priv = 'Y' OR Drop_priv = 'Y' OR Alter_priv = 'Y' OR Index_priv = 'Y')`,
		s.userHost(), userName, grantDB(name)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("mariadb: %w", err)
	}
	return n == 0, nil
}

// clientConfig is an option file for the mariadb command-line tools that
// logs in as root over the socket; it is root's alone (0600), so the
// password is on no command line.
func (s *Server) clientConfig() string { return filepath.Join(s.Dir, "root-client.cnf") }

func (s *Server) writeClientConfig() error {
	if s.Remote != nil {
		return s.writeRemoteClientConfig()
	}
	conf := fmt.Sprintf("# Written by aipress; changes are overwritten.\n[client]\nuser = root\npassword = %s\nsocket = %s\n", s.password, s.Socket())
	if err := writeFileAtomic(s.clientConfig(), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("mariadb: write client config: %w", err)
	}
	return nil
}

// Dump writes a consistent SQL dump of database name to w: one
// transaction's snapshot (--single-transaction; WordPress's tables are
// InnoDB), without CREATE DATABASE or USE, so Load can put it into a
// database of another name.
func (s *Server) Dump(ctx context.Context, name string, w io.Writer) error {
	return s.DumpTables(ctx, name, nil, w)
}

// DumpTables is Dump of the named tables of database name only (every
// table when tables is nil; nothing but the header when it is empty and
// not nil).
func (s *Server) DumpTables(ctx context.Context, name string, tables []string, w io.Writer) error {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	if tables != nil && len(tables) == 0 {
		_, err := io.WriteString(w, "-- no table changed\n")
		return err
	}
	for _, t := range tables {
		if !ident.MatchString(t) {
			return fmt.Errorf("mariadb: invalid table name %q", t)
		}
	}
	args := append([]string{"--defaults-file=" + s.clientConfig(),
		"--single-transaction", "--quick", "--skip-lock-tables", "--hex-blob", "--skip-comments",
		"--default-character-set=utf8mb4", "--add-drop-table", "--triggers", "--skip-routines", "--skip-events",
		"--", name}, tables...)
	cmd := exec.CommandContext(ctx, "mariadb-dump", args...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mariadb: dump %s: %w: %s", name, err, tail([]byte(stderr.String())))
	}
	return nil
}

// RecreateDatabase drops and creates database name (empty), keeping grants.
func (s *Server) RecreateDatabase(ctx context.Context, name string) error {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	for _, q := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", name),
		fmt.Sprintf("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: recreate database %s: %w", name, err)
		}
	}
	return nil
}

// DropDatabase removes database name and user userName (idempotent).
func (s *Server) DropDatabase(ctx context.Context, name, userName string) error {
	if !ident.MatchString(name) || !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: invalid identifier %q/%q", name, userName)
	}
	for _, q := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", name),
		fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", userName, s.userHost()),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: drop database %s: %w", name, err)
		}
	}
	return nil
}

// DatabaseExists reports whether database name exists.
func (s *Server) DatabaseExists(ctx context.Context, name string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("mariadb: %w", err)
	}
	return n > 0, nil
}

// UserExists reports whether the site user userName exists (at localhost,
// or a remote server's site user host).
func (s *Server) UserExists(ctx context.Context, userName string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", userName, s.userHost()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("mariadb: %w", err)
	}
	return n > 0, nil
}

// ListDatabases returns the names of databases that start with prefix.
func (s *Server) ListDatabases(ctx context.Context, prefix string) ([]string, error) {
	return s.list(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", prefix)
}

// ListUsers returns the names of site users (@localhost, or a remote
// server's site user host) that start with prefix.
func (s *Server) ListUsers(ctx context.Context, prefix string) ([]string, error) {
	return s.list(ctx, "SELECT User FROM mysql.user WHERE Host = ? AND User LIKE ?", s.userHost(), prefix)
}

func (s *Server) list(ctx context.Context, q string, args ...any) ([]string, error) {
	prefix := args[len(args)-1].(string)
	args[len(args)-1] = strings.ReplaceAll(prefix, "_", `\_`) + "%"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("mariadb: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Query runs a single-value query as root (tests and status checks).
func (s *Server) QueryString(ctx context.Context, q string, args ...any) (string, error) {
	var v sql.NullString
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&v)
	if err != nil {
		return "", err
	}
	return v.String, nil
}

// Kill sends SIGKILL to the running mariadbd (fault-injection in tests).
func (s *Server) Kill() error {
	if s.proc == nil {
		return supervise.ErrNotRunning
	}
	return s.proc.Signal(syscall.SIGKILL)
}

// Close releases the admin connection.
func (s *Server) Close() error {
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail shortens a tool's output for an error: the first lines (where
// mariadb-install-db says what went wrong) and the last ones.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 1200 {
		s = s[:600] + " ... " + s[len(s)-600:]
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// writeFileAtomic writes data to a temporary file and renames it over path,
// so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// CreateSchema creates database name (empty, utf8mb4) unless it exists.
// Unlike EnsureDatabase it makes no user: restores stage a site's
// database under another name and swap its tables in (SwapTables).
func (s *Server) CreateSchema(ctx context.Context, name string) error {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	q := fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name)
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("mariadb: create database %s: %w", name, err)
	}
	return nil
}

// DropSchema drops database name if it exists (no user is touched).
func (s *Server) DropSchema(ctx context.Context, name string) error {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", name)); err != nil {
		return fmt.Errorf("mariadb: drop database %s: %w", name, err)
	}
	return nil
}

// Now is the server's clock in whole Unix seconds (rounded down), for
// ChangedTables.
func (s *Server) Now(ctx context.Context) (int64, error) {
	var t int64
	if err := s.db.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP()").Scan(&t); err != nil {
		return 0, fmt.Errorf("mariadb: now: %w", err)
	}
	return t, nil
}

// ChangedTables returns the base tables of database name that may have
// changed since the server's clock said since (Now): made or written in
// that second or later, or whose last write the server does not know
// (InnoDB forgets it when the server restarts), sorted.
func (s *Server) ChangedTables(ctx context.Context, name string, since int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'
		AND (UPDATE_TIME IS NULL OR CREATE_TIME IS NULL OR UNIX_TIMESTAMP(UPDATE_TIME) >= ? OR UNIX_TIMESTAMP(CREATE_TIME) >= ?)
		ORDER BY TABLE_NAME`, name, since, since)
	if err != nil {
		return nil, fmt.Errorf("mariadb: changed tables of %s: %w", name, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("mariadb: changed tables of %s: %w", name, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TableSchemas returns a fingerprint (SHA-256 of SHOW CREATE TABLE) of
// every base table of database name, by table: a table whose fingerprint
// changed had its definition changed (or rows inserted: the counter of
// an AUTO_INCREMENT column is part of it).
func (s *Server) TableSchemas(ctx context.Context, name string) (map[string]string, error) {
	tables, err := s.Tables(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(tables))
	for _, t := range tables {
		if !ident.MatchString(t) {
			return nil, fmt.Errorf("mariadb: invalid table name %q", t)
		}
		var tn, def string
		if err := s.db.QueryRowContext(ctx, fmt.Sprintf("SHOW CREATE TABLE `%s`.`%s`", name, t)).Scan(&tn, &def); err != nil {
			return nil, fmt.Errorf("mariadb: definition of %s.%s: %w", name, t, err)
		}
		sum := sha256.Sum256([]byte(def))
		out[t] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

// DropTables drops the named tables of database name if they exist.
func (s *Server) DropTables(ctx context.Context, name string, tables []string) error {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	for _, t := range tables {
		if !ident.MatchString(t) {
			return fmt.Errorf("mariadb: invalid table name %q", t)
		}
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("DROP TABLE IF EXISTS `%s`.`%s`", name, t)); err != nil {
			return fmt.Errorf("mariadb: drop table %s.%s: %w", name, t, err)
		}
	}
	return nil
}

// Tables returns the base tables of database name, sorted.
func (s *Server) Tables(ctx context.Context, name string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", name)
	if err != nil {
		return nil, fmt.Errorf("mariadb: tables of %s: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("mariadb: tables of %s: %w", name, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TextColumns returns the character columns of database name's base
// tables, as "table.column", sorted.
func (s *Server) TextColumns(ctx context.Context, name string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT CONCAT(c.TABLE_NAME, '.', c.COLUMN_NAME) FROM information_schema.COLUMNS c "+
		"JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE' "+
		"WHERE c.TABLE_SCHEMA = ? AND c.DATA_TYPE IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext') ORDER BY 1", name)
	if err != nil {
		return nil, fmt.Errorf("mariadb: columns of %s: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("mariadb: columns of %s: %w", name, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DataSize returns the data and index bytes of database name as
// information_schema estimates them (a progress total, not exact).
func (s *Server) DataSize(ctx context.Context, name string) (int64, error) {
	var n sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", name).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("mariadb: size of %s: %w", name, err)
	}
	return n.Int64, nil
}

// SwapTables replaces the tables of database live by those of database
// staging in one RENAME TABLE statement, which MariaDB applies atomically
// (crash-safe since 10.6): every table of live moves to database old
// (created if missing, expected empty) and every table of staging moves to
// live, or nothing moves. Privileges granted on live apply to the tables
// moved in. The caller drops staging and old afterwards.
func (s *Server) SwapTables(ctx context.Context, live, staging, old string) error {
	for _, n := range []string{live, staging, old} {
		if !ident.MatchString(n) {
			return fmt.Errorf("mariadb: invalid identifier %q", n)
		}
	}
	if err := s.CreateSchema(ctx, old); err != nil {
		return err
	}
	cur, err := s.Tables(ctx, live)
	if err != nil {
		return err
	}
	next, err := s.Tables(ctx, staging)
	if err != nil {
		return err
	}
	if len(next) == 0 {
		return fmt.Errorf("mariadb: swap tables: %s has no tables", staging)
	}
	var parts []string
	for _, t := range cur {
		parts = append(parts, fmt.Sprintf("`%s`.`%s` TO `%s`.`%s`", live, quoteIdent(t), old, quoteIdent(t)))
	}
	for _, t := range next {
		parts = append(parts, fmt.Sprintf("`%s`.`%s` TO `%s`.`%s`", staging, quoteIdent(t), live, quoteIdent(t)))
	}
	if _, err := s.db.ExecContext(ctx, "RENAME TABLE "+strings.Join(parts, ", ")); err != nil {
		return fmt.Errorf("mariadb: swap tables of %s: %w", live, err)
	}
	return nil
}

// quoteIdent escapes a name for use between backquotes.
func quoteIdent(n string) string { return strings.ReplaceAll(n, "`", "``") }

// OpenRoot opens a connection pool as root (a remote server's admin user)
// on database dbName (tools that rewrite a site's database in bulk use it).
func (s *Server) OpenRoot(dbName string) (*sql.DB, error) {
	if !ident.MatchString(dbName) {
		return nil, fmt.Errorf("mariadb: invalid identifier %q", dbName)
	}
	if s.Remote != nil {
		return s.open(s.Remote.User, s.Remote.Password, dbName)
	}
	return s.open("root", s.password, dbName)
}

// Exec runs one statement as root.
func (s *Server) Exec(ctx context.Context, q string, args ...any) error {
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	return nil
}

// DropUser removes site user userName (idempotent) and ends the sessions
// it still has open: MariaDB checks an account's password only when a
// connection is made, so a dropped account's open (or persistent)
// connection would otherwise keep its database privileges.
func (s *Server) DropUser(ctx context.Context, userName string) error {
	if !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: invalid identifier %q", userName)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", userName, s.userHost())); err != nil {
		return fmt.Errorf("mariadb: drop user %s: %w", userName, err)
	}
	if err := s.endSessions(ctx, userName); err != nil {
		return fmt.Errorf("mariadb: drop user %s: %w", userName, err)
	}
	return nil
}

// UserSessions counts the open sessions of userName (from any host).
func (s *Server) UserSessions(ctx context.Context, userName string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", userName).Scan(&n); err != nil {
		return 0, fmt.Errorf("mariadb: sessions of %s: %w", userName, err)
	}
	return n, nil
}
