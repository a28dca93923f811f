package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// A read replica is a second mariadbd run here (Server with ReplicaOf or
// ReplicaOfRemote) that replicates the primary's binary log by GTID
// (MASTER_USE_GTID=slave_pos) with read_only=ON: only the replication
// thread and root write to it, so a site user that logs in to it (the
// accounts replicate) reads its own database and writes nothing.
//
// Seeding goes over the network, the same way for a local primary and a
// primary in another pod: mariadb-dump of every database as the primary's
// replication account (one consistent snapshot, --single-transaction, with
// the GTID position it is consistent with), loaded by the replica's root
// without binary logging, then the primary's accounts (but its root and
// system accounts: the replica keeps its own root), then replication
// starts from that position. A replica whose data cannot be trusted any
// more — a seed a crash interrupted (no "seeded" marker), an SQL thread
// stopped by an error (the data diverged), a primary that no longer has
// the binary logs the replica needs (error 1236) — is seeded again, in
// place. A replication stopped cleanly (STOP SLAVE) is left alone: someone
// meant it; the server's restart starts it again (skip_slave_start=OFF).

// Source is a primary server a replica replicates from, reached over TCP.
type Source struct {
	Addr string // host:port of the primary
	// User and Password are the primary's RoleReplication account
	// (Account): it streams the binary log and seeds the replica with
	// mariadb-dump.
	User     string
	Password string
}

func (s *Server) isReplica() bool { return s.ReplicaOf != nil || s.ReplicaOfRemote != nil }

// IsReplica reports whether the server is run as a read replica.
func (s *Server) IsReplica() bool { return s.isReplica() }

// prepareReplica checks a replica's settings.
func (s *Server) prepareReplica() error {
	if !s.isReplica() {
		return nil
	}
	if s.Remote != nil {
		return errors.New("mariadb: a replica is a server run here (Remote is set)")
	}
	if s.ReplicaOf != nil && s.ReplicaOfRemote != nil {
		return errors.New("mariadb: ReplicaOf and ReplicaOfRemote are both set")
	}
	if s.ReplicaOf != nil && (s.ReplicaOf.Remote != nil || s.ReplicaOf.Dir == s.Dir) {
		return errors.New("mariadb: ReplicaOf must be another local server")
	}
	if s.ReplicaOfRemote != nil {
		if _, _, err := net.SplitHostPort(s.ReplicaOfRemote.Addr); err != nil {
			return fmt.Errorf("mariadb: replica source address %q: %w", s.ReplicaOfRemote.Addr, err)
		}
	}
	return nil
}

// replicaConfig is the [mysqld] part only a replica has.
func (s *Server) replicaConfig() string {
	if !s.isReplica() {
		return ""
	}
	return "\n# Read replica: only the replication thread (and root) write.\n" + optionLines(ReplicaOptions(s.binlogDir()))
}

// GTIDPos returns the server's GTID position: @@gtid_binlog_pos on a
// primary (the last transaction it logged, per domain), @@gtid_slave_pos
// on a replica (the last one it applied).
func (s *Server) GTIDPos(ctx context.Context) (string, error) {
	q := "SELECT @@GLOBAL.gtid_binlog_pos"
	if s.isReplica() {
		q = "SELECT @@GLOBAL.gtid_slave_pos"
	}
	v, err := s.QueryString(ctx, q)
	if err != nil {
		return "", fmt.Errorf("mariadb: gtid position: %w", err)
	}
	return v, nil
}

// ReplicaStatus is a replica's replication state (SHOW SLAVE STATUS).
type ReplicaStatus struct {
	// Configured: the server has a primary to replicate from.
	Configured bool
	IORunning  bool // the IO thread is connected and receiving
	SQLRunning bool // the SQL thread is applying
	// SecondsBehind is Seconds_Behind_Master: nil while a thread is
	// stopped or the lag is unknown.
	SecondsBehind *int64
	GTIDPos       string // @@gtid_slave_pos: the last transaction applied
	LastError     string // the IO or SQL thread's last error ("": none)
	LastIOErrno   int
	LastSQLErrno  int
	SourceAddr    string // host:port of the primary
}

// Healthy reports whether both threads run and no error stands.
func (r ReplicaStatus) Healthy() bool {
	return r.Configured && r.IORunning && r.SQLRunning && r.LastIOErrno == 0 && r.LastSQLErrno == 0
}

// ReadReplicaStatus reads SHOW SLAVE STATUS and @@gtid_slave_pos over db
// (root, or an account with SLAVE MONITOR: RoleMonitor).
func ReadReplicaStatus(ctx context.Context, db *sql.DB) (ReplicaStatus, error) {
	var st ReplicaStatus
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return st, fmt.Errorf("mariadb: replica status: %w", err)
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return st, fmt.Errorf("mariadb: replica status: %w", err)
	}
	row := map[string]sql.NullString{}
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return st, fmt.Errorf("mariadb: replica status: %w", err)
		}
		for i, c := range cols {
			row[c] = vals[i]
		}
		st.Configured = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("mariadb: replica status: %w", err)
	}
	if st.Configured {
		st.IORunning = row["Slave_IO_Running"].String == "Yes"
		st.SQLRunning = row["Slave_SQL_Running"].String == "Yes"
		if v := row["Seconds_Behind_Master"]; v.Valid {
			if n, err := strconv.ParseInt(v.String, 10, 64); err == nil {
				st.SecondsBehind = &n
			}
		}
		st.LastIOErrno, _ = strconv.Atoi(row["Last_IO_Errno"].String)
		st.LastSQLErrno, _ = strconv.Atoi(row["Last_SQL_Errno"].String)
		switch {
		case st.LastSQLErrno != 0:
			st.LastError = "SQL thread: " + row["Last_SQL_Error"].String
		case st.LastIOErrno != 0:
			st.LastError = "IO thread: " + row["Last_IO_Error"].String
		}
		if h := row["Master_Host"].String; h != "" {
			st.SourceAddr = net.JoinHostPort(h, row["Master_Port"].String)
		}
	}
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&st.GTIDPos); err != nil {
		return st, fmt.Errorf("mariadb: replica status: %w", err)
	}
	return st, nil
}

// ReplicaStatus returns the server's replication state (as root).
func (s *Server) ReplicaStatus(ctx context.Context) (ReplicaStatus, error) {
	if s.db == nil {
		return ReplicaStatus{}, errors.New("mariadb: server not running")
	}
	return ReadReplicaStatus(ctx, s.db)
}

// Paths of a replica's state inside Dir.
func (s *Server) seededFile() string { return filepath.Join(s.Dir, "replica-seeded") }
func (s *Server) sourceCnf() string  { return filepath.Join(s.Dir, "replica-source.cnf") }

// source is where the replica replicates from; for a local primary that is
// not up yet, errNotYet.
func (s *Server) source(ctx context.Context, force bool) (Source, error) {
	if s.ReplicaOfRemote != nil {
		return *s.ReplicaOfRemote, nil
	}
	p := s.ReplicaOf
	select {
	case <-p.Ready():
	default:
		return Source{}, errPrimaryNotReady
	}
	user, pw, err := p.account(ctx, RoleReplication, force)
	if err != nil {
		return Source{}, err
	}
	return Source{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())), User: user, Password: pw}, nil
}

var errPrimaryNotReady = errors.New("mariadb: the primary is not up yet")

// reseedGap is the least time between two seeds Run starts by itself, so
// a primary that keeps breaking its replica is not dumped in a loop.
const reseedGap = 30 * time.Second

// keepInterval is how often Run checks a replica's replication.
const keepInterval = 5 * time.Second

// keepReplicating makes sure, whenever the replica (re)starts and every
// keepInterval, that it is seeded and replicating; it closes Ready the
// first time it is.
func (s *Server) keepReplicating(ctx context.Context, up <-chan struct{}) {
	every := s.keepEvery
	if every <= 0 {
		every = keepInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var ready, started bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-up:
			started = true // the server is up (and s.db set)
		case <-t.C:
		}
		if !started {
			continue
		}
		err := s.ensureReplication(ctx)
		if err == nil && !ready {
			ready = true
			close(s.ready)
		}
		if err != nil && ctx.Err() == nil && s.Logger != nil && !errors.Is(err, errPrimaryNotReady) {
			s.Logger.Warn("replica not replicating", "err", err)
		}
	}
}

// ensureReplication seeds, re-points or re-seeds the replica as needed.
func (s *Server) ensureReplication(ctx context.Context) error {
	src, err := s.source(ctx, false)
	if err != nil {
		return err
	}
	if s.ReplicaOf != nil && s.db != nil {
		// Access denied to the IO thread: repair the account on the
		// primary (and point at it again, below).
		if st, err := s.ReplicaStatus(ctx); err == nil && st.LastIOErrno == 1045 {
			if src, err = s.source(ctx, true); err != nil {
				return err
			}
		}
	}
	return s.EnsureReplicationFrom(ctx, src)
}

// EnsureReplicationFrom makes the server a replica of src if it is not
// one in working order, doing only what is missing: it seeds it when it
// was never seeded or a seed was interrupted (no primary configured), and
// seeds it again when its data cannot be trusted (the SQL thread stopped
// on an error; the primary lacks the binary log it needs, error 1236) —
// not twice within reseedGap —, points it at src when src's address or
// password changed, and starts a replication a crash left unstarted. A
// replication stopped cleanly (STOP SLAVE) is left alone. Run calls it
// every few seconds for a server with ReplicaOf or ReplicaOfRemote; it
// works as well on a server administered as Remote (its admin user needs
// SUPER or the replication admin privileges), which must run with
// read_only=ON: a server with read_only off is refused, never emptied.
func (s *Server) EnsureReplicationFrom(ctx context.Context, src Source) error {
	if s.db == nil {
		return errors.New("mariadb: server not running")
	}
	st, err := s.ReplicaStatus(ctx)
	if err != nil {
		return err
	}
	reseed := func(why string) error {
		gap := s.reseedGap
		if gap <= 0 {
			gap = reseedGap
		}
		s.seedMu.Lock()
		if !s.lastSeed.IsZero() && time.Since(s.lastSeed) < gap {
			s.seedMu.Unlock()
			return fmt.Errorf("mariadb: replica needs a new seed (%s); waiting before another", why)
		}
		s.seedMu.Unlock()
		if s.Logger != nil {
			s.Logger.Warn("seeding the replica", "why", why, "primary", src.Addr)
		}
		return s.seed(ctx, src)
	}
	switch {
	case !st.Configured:
		return reseed("not seeded")
	case st.LastSQLErrno != 0:
		return reseed(st.LastError)
	case st.LastIOErrno == 1236: // the primary lacks the binary log the replica needs
		return reseed(st.LastError)
	case st.SourceAddr != src.Addr || st.LastIOErrno == 1045: // 1045: the password changed
		return s.pointAt(ctx, src)
	case !fileExists(s.seededFile()):
		// Seeded and pointed, but a crash came before replication was
		// started and recorded.
		if err := s.Exec(ctx, "START SLAVE"); err != nil {
			return err
		}
		return s.recordSeed(src, st.GTIDPos)
	}
	return nil
}

// StartReplicationFrom seeds this running server, now, from the primary
// at primaryAddr (host:port) with that primary's RoleReplication account,
// and starts replicating from it by GTID. Whatever the server held but its
// own system accounts (and the account it is administered as) is
// replaced; it must run with read_only=ON (a primary is refused).
// EnsureReplicationFrom seeds only when needed.
func (s *Server) StartReplicationFrom(ctx context.Context, primaryAddr, user, password string) error {
	if s.db == nil {
		return errors.New("mariadb: server not running")
	}
	if _, _, err := net.SplitHostPort(primaryAddr); err != nil {
		return fmt.Errorf("mariadb: primary address %q: %w", primaryAddr, err)
	}
	return s.seed(ctx, Source{Addr: primaryAddr, User: user, Password: password})
}

func (s *Server) recordSeed(src Source, pos string) error {
	if err := writeFileAtomic(s.seededFile(), []byte(src.Addr+" "+pos+" "+time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		return fmt.Errorf("mariadb: replica: %w", err)
	}
	return nil
}

// systemUsers are accounts every server has of its own: never copied to a
// replica nor dropped from it.
var systemUsers = map[string]bool{"root": true, "mysql": true, "mariadb.sys": true, "PUBLIC": true, "": true}

var systemDatabases = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// seed replaces the replica's databases and accounts by the primary's and
// starts replicating from the position the copy is consistent with.
func (s *Server) seed(ctx context.Context, src Source) error {
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	if err := os.Remove(s.seededFile()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) error {
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("mariadb: seed replica: %s: %w", strings.Join(strings.Fields(q)[:2], " "), err)
		}
		return nil
	}
	pdb, pconn, err := connectSource(ctx, src)
	if err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	defer pdb.Close()
	defer pconn.Close()
	// Never empty a server that is not configured as a replica.
	var readOnly, id, primaryID int
	var self string
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@GLOBAL.server_id, CURRENT_USER()").Scan(&readOnly, &id, &self); err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	if readOnly == 0 {
		return errors.New("mariadb: seed replica: the server runs with read_only=OFF; a replica runs with it ON (is this the primary?)")
	}
	if err := pconn.QueryRowContext(ctx, "SELECT @@GLOBAL.server_id").Scan(&primaryID); err != nil {
		return fmt.Errorf("mariadb: seed replica: the primary's server_id: %w", err)
	}
	if id == primaryID {
		return fmt.Errorf("mariadb: seed replica: the replica has the primary's server_id %d", id)
	}
	s.lastSeed = time.Now() // (what the checks above refuse does not count)
	keep := account{}
	if i := strings.LastIndexByte(self, '@'); i > 0 {
		keep = account{self[:i], self[i+1:]}
	}
	// Nothing the seed does goes to the replica's own binary log. (The
	// connection goes back to the pool afterwards: logging back on.)
	if err := exec("SET SESSION sql_log_bin = 0"); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION sql_log_bin = 1")
	if err := exec("STOP SLAVE"); err != nil {
		return err
	}
	if err := exec("RESET SLAVE ALL"); err != nil {
		return err
	}
	// Start empty: databases and accounts of an earlier seed go.
	dbs, err := listConn(ctx, conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	for _, d := range dbs {
		if !systemDatabases[d] {
			if err := exec("DROP DATABASE `" + quoteIdent(d) + "`"); err != nil {
				return err
			}
		}
	}
	if err := dropNonSystemUsers(ctx, conn, keep); err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	pos, err := s.loadPrimaryDump(ctx, src)
	if err != nil {
		return err
	}
	// Accounts after the data: one created meanwhile is both copied and
	// replayed, and the site accounts' statements are idempotent (CREATE
	// USER IF NOT EXISTS, ALTER, GRANT, DROP USER IF EXISTS).
	if err := copyUsers(ctx, pconn, conn, keep); err != nil {
		return fmt.Errorf("mariadb: seed replica: %w", err)
	}
	if err := exec("SET GLOBAL gtid_slave_pos = ?", pos); err != nil {
		return err
	}
	if err := s.changeMaster(ctx, conn, src); err != nil {
		return err
	}
	if err := exec("START SLAVE"); err != nil {
		return err
	}
	return s.recordSeed(src, pos)
}

// pointAt (re)points replication at src, keeping the applied position.
func (s *Server) pointAt(ctx context.Context, src Source) error {
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mariadb: replica: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "STOP SLAVE"); err != nil {
		return fmt.Errorf("mariadb: replica: stop: %w", err)
	}
	if err := s.changeMaster(ctx, conn, src); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("mariadb: replica: start: %w", err)
	}
	return nil
}

func (s *Server) changeMaster(ctx context.Context, conn *sql.Conn, src Source) error {
	host, port, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return fmt.Errorf("mariadb: replica source %q: %w", src.Addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("mariadb: replica source %q: %w", src.Addr, err)
	}
	// MASTER_CONNECT_RETRY=1: a restarted primary is found again within a
	// second (the default waits a minute).
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %d, MASTER_USER = %s, MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
		sqlString(host), p, sqlString(src.User), sqlString(src.Password))
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("mariadb: replica: change master: %w", err)
	}
	return nil
}

// sqlString quotes v as an SQL string literal.
func sqlString(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(v) + "'"
}

var gtidComment = regexp.MustCompile(`(?m)^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';$`)

// loadPrimaryDump pipes mariadb-dump of the primary's databases into the
// replica's mariadb client (as root, without binary logging) and returns
// the GTID position the dump is consistent with.
func (s *Server) loadPrimaryDump(ctx context.Context, src Source) (string, error) {
	host, port, err := net.SplitHostPort(src.Addr)
	if err != nil {
		return "", fmt.Errorf("mariadb: replica source %q: %w", src.Addr, err)
	}
	for _, v := range []string{host, port, src.User, src.Password} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return "", errors.New("mariadb: replica source settings contain a line break")
		}
	}
	conf := fmt.Sprintf("# Written by aipress; changes are overwritten.\n[client]\nprotocol = tcp\nhost = %s\nport = %s\nuser = %s\npassword = %s\n",
		optionValue(host), optionValue(port), optionValue(src.User), optionValue(src.Password))
	if err := writeFileAtomic(s.sourceCnf(), []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("mariadb: seed replica: %w", err)
	}
	// --master-data=2 --gtid: the position as a comment (read below, set
	// after the accounts are copied); --single-transaction: one snapshot
	// of the InnoDB tables; the mysql schema is not copied (accounts are
	// copied by copyUsers, the rest is the replica's own).
	dump := exec.CommandContext(ctx, "mariadb-dump", "--defaults-file="+s.sourceCnf(),
		"--all-databases", "--ignore-database=mysql", "--ignore-database=sys",
		"--single-transaction", "--master-data=2", "--gtid", "--quick", "--hex-blob",
		"--default-character-set=utf8mb4", "--routines", "--events", "--triggers", "--max-allowed-packet=1G")
	load := exec.CommandContext(ctx, "mariadb", "--defaults-file="+s.clientConfig(),
		"--init-command=SET SESSION sql_log_bin = 0", "--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--batch")
	pr, pw := io.Pipe()
	sniff := &lineSniffer{}
	var dumpErr, loadErr bytes.Buffer
	dump.Stdout, dump.Stderr = io.MultiWriter(pw, sniff), &dumpErr
	load.Stdin, load.Stdout, load.Stderr = pr, io.Discard, &loadErr
	if err := load.Start(); err != nil {
		return "", fmt.Errorf("mariadb: seed replica: %w", err)
	}
	derr := dump.Run()
	if derr != nil {
		pw.CloseWithError(derr)
	} else {
		pw.Close()
	}
	lerr := load.Wait()
	pr.Close()
	if derr != nil {
		return "", fmt.Errorf("mariadb: seed replica: mariadb-dump of %s: %w: %s", src.Addr, derr, tail(dumpErr.Bytes()))
	}
	if lerr != nil {
		return "", fmt.Errorf("mariadb: seed replica: load: %w: %s", lerr, tail(loadErr.Bytes()))
	}
	if sniff.gtid == nil {
		return "", errors.New("mariadb: seed replica: the dump has no GTID position")
	}
	return *sniff.gtid, nil
}

// lineSniffer watches a dump go by for the GTID position comment; it keeps
// only the start of the current line.
type lineSniffer struct {
	line []byte
	gtid *string
}

func (l *lineSniffer) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			if m := gtidComment.FindSubmatch(l.line); m != nil {
				g := string(m[1])
				l.gtid = &g
			}
			l.line = l.line[:0]
			continue
		}
		if len(l.line) < 256 {
			l.line = append(l.line, b)
		}
	}
	return len(p), nil
}

// listConn returns the first column of q's rows.
func listConn(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

type account struct{ user, host string }

func (a account) String() string { return sqlString(a.user) + "@" + sqlString(a.host) }

// accounts lists the non-system accounts (not roles) on conn's server.
// mysql.global_priv is read rather than the mysql.user view: comparing
// that view's columns with a literal fails under a utf8mb4 connection
// when the server's collation is utf8mb4_unicode_ci (error 1267).
func accounts(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]account, error) {
	rows, err := q.QueryContext(ctx, "SELECT User, Host, Priv FROM mysql.global_priv")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []account
	for rows.Next() {
		var a account
		var priv string
		if err := rows.Scan(&a.user, &a.host, &priv); err != nil {
			return nil, err
		}
		var p struct {
			IsRole bool `json:"is_role"`
		}
		_ = json.Unmarshal([]byte(priv), &p)
		if !systemUsers[a.user] && !p.IsRole {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}

func dropNonSystemUsers(ctx context.Context, conn *sql.Conn, keep account) error {
	accts, err := accounts(ctx, conn)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	for _, a := range accts {
		if a == keep {
			continue
		}
		if _, err := conn.ExecContext(ctx, "DROP USER IF EXISTS "+a.String()); err != nil {
			return fmt.Errorf("drop account %s: %w", a, err)
		}
	}
	return nil
}

// connectSource opens a connection to the primary src.
func connectSource(ctx context.Context, src Source) (*sql.DB, *sql.Conn, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", src.Addr, src.User, src.Password
	cfg.Timeout, cfg.ReadTimeout = 10*time.Second, 60*time.Second
	cfg.AllowNativePasswords = true
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, err
	}
	pdb := sql.OpenDB(c)
	pconn, err := pdb.Conn(ctx)
	if err != nil {
		pdb.Close()
		return nil, nil, fmt.Errorf("connect to the primary %s: %w", src.Addr, err)
	}
	return pdb, pconn, nil
}

// copyUsers creates on conn's server (the replica) every non-system
// account of the primary (pconn), with its password hash, limits and grants,
// but keep (the account the replica is administered as).
func copyUsers(ctx context.Context, pconn, conn *sql.Conn, keep account) error {
	accts, err := accounts(ctx, pconn)
	if err != nil {
		return fmt.Errorf("the primary's accounts: %w", err)
	}
	for _, a := range accts {
		if a == keep {
			continue
		}
		var create string
		if err := pconn.QueryRowContext(ctx, "SHOW CREATE USER "+a.String()).Scan(&create); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == 1396 { // dropped meanwhile
				continue
			}
			return fmt.Errorf("account %s: %w", a, err)
		}
		create, ok := strings.CutPrefix(create, "CREATE USER ")
		if !ok {
			return fmt.Errorf("account %s: unexpected %q", a, create)
		}
		grants, err := listConn(ctx, pconn, "SHOW GRANTS FOR "+a.String())
		if err != nil {
			return fmt.Errorf("grants of %s: %w", a, err)
		}
		for _, q := range append([]string{"CREATE OR REPLACE USER " + create}, grants...) {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("account %s: %w", a, err)
			}
		}
	}
	return nil
}
