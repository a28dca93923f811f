package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// server is one of the shard's MariaDB servers, reached as root over its
// Unix socket with the credentials internal/mariadb keeps in
// <server dir>/root-client.cnf. The measuring connection sends only SHOW
// statements, so the Com_select it reads is the platform's alone; its own
// statements are counted and taken off Questions.
type server struct {
	Dir     string
	Replica bool // read_only (a replica, by the mariadb package's contract)
	db      *sql.DB
	conn    *sql.Conn
	mu      sync.Mutex
	sent    int64 // statements this connection sent
}

// findServers opens every MariaDB server below dataDir (the directories
// holding root-client.cnf) and tells the primary from replicas by
// read_only. It wants exactly one primary.
func findServers(ctx context.Context, dataDir string) (primary *server, replicas []*server, err error) {
	var cnfs []string
	err = filepath.WalkDir(filepath.Join(dataDir, "shards"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if d.IsDir() && (d.Name() == "sites" || d.Name() == "cores" || d.Name() == "data" || d.Name() == "binlog") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "root-client.cnf" {
			cnfs = append(cnfs, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var all []*server
	closeAll := func() {
		for _, s := range all {
			s.Close()
		}
	}
	for _, c := range cnfs {
		s, err := openServer(ctx, c)
		if errors.Is(err, errNotRunning) {
			continue // e.g. the replica an earlier configuration ran
		}
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		all = append(all, s)
		if s.Replica {
			replicas = append(replicas, s)
		} else if primary != nil {
			closeAll()
			return nil, nil, fmt.Errorf("two writable MariaDB servers: %s and %s", primary.Dir, s.Dir)
		} else {
			primary = s
		}
	}
	if primary == nil {
		closeAll()
		return nil, nil, fmt.Errorf("no primary MariaDB below %s (root-client.cnf files: %v)", dataDir, cnfs)
	}
	return primary, replicas, nil
}

// errNotRunning: a server's socket is not there (MariaDB removes it when
// it stops), as for the replica of an earlier configuration when a
// configuration without one runs after it.
var errNotRunning = errors.New("MariaDB not running (no socket)")

// openServer connects as root with the client config at cnf.
func openServer(ctx context.Context, cnf string) (*server, error) {
	f, err := os.Open(cnf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if kv["user"] == "" || kv["socket"] == "" {
		return nil, fmt.Errorf("%s: no user or socket", cnf)
	}
	if _, err := os.Stat(kv["socket"]); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", cnf, errNotRunning)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = kv["user"], kv["password"], "unix", kv["socket"]
	cfg.Timeout, cfg.ReadTimeout = 5*time.Second, 10*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	s := &server{Dir: filepath.Dir(cnf), db: sql.OpenDB(conn)}
	s.db.SetMaxOpenConns(1)
	if s.conn, err = s.db.Conn(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to MariaDB in %s: %w", s.Dir, err)
	}
	ro, err := s.variable(ctx, "SHOW GLOBAL VARIABLES LIKE 'read_only'")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Replica = ro == "ON"
	return s, nil
}

// Close closes the connection.
func (s *server) Close() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.db.Close()
}

// variable returns the Value of a two-column SHOW statement's first row.
func (s *server) variable(ctx context.Context, q string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	var name, v string
	if err := s.conn.QueryRowContext(ctx, q).Scan(&name, &v); err != nil {
		return "", fmt.Errorf("%s (%s): %w", q, s.Dir, err)
	}
	return v, nil
}

// cronRan counts the site databases whose WP-Cron has run (the option
// the shard's cron.php writes).
func (s *server) cronRan(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	rows, err := s.conn.QueryContext(ctx, "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = 'wp_options'")
	if err != nil {
		return 0, fmt.Errorf("list site databases (%s): %w", s.Dir, err)
	}
	var dbs []string
	for rows.Next() {
		var db string
		if err := rows.Scan(&db); err != nil {
			rows.Close()
			return 0, err
		}
		dbs = append(dbs, db)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, db := range dbs {
		s.sent++
		var k int
		if err := s.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+strings.ReplaceAll(db, "`", "``")+"`.wp_options WHERE option_name = 'aipress_cron_last_run'").Scan(&k); err != nil {
			return 0, fmt.Errorf("%s (%s): %w", db, s.Dir, err)
		}
		if k > 0 {
			n++
		}
	}
	return n, nil
}

// status returns the global status counters names asks for.
func (s *server) status(ctx context.Context, names ...string) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	rows, err := s.conn.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('"+strings.Join(names, "','")+"')")
	if err != nil {
		return nil, fmt.Errorf("status (%s): %w", s.Dir, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("status %s=%q: %w", k, v, err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, k := range names {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("status (%s): no %s", s.Dir, k)
		}
	}
	return out, nil
}

// siteUsers returns the accounts with privileges on a database of their
// own (mysql.db): the sites' users. root and the internal accounts
// (monitor, replication) have global privileges only. It is a SELECT, so
// call it before the status counters are read.
func (s *server) siteUsers(ctx context.Context) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	rows, err := s.conn.QueryContext(ctx, "SELECT DISTINCT User FROM mysql.db WHERE User <> '' AND User <> 'root'")
	if err != nil {
		return nil, fmt.Errorf("site users (%s): %w", s.Dir, err)
	}
	defer rows.Close()
	users := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		users[u] = true
	}
	return users, rows.Err()
}

// siteConns counts the connections in SHOW PROCESSLIST (the same rows as
// information_schema.PROCESSLIST, without a Com_select) whose user is in
// users, and of those the active ones (Command other than Sleep).
func (s *server) siteConns(ctx context.Context, users map[string]bool) (n, active int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	rows, err := s.conn.QueryContext(ctx, "SHOW PROCESSLIST")
	if err != nil {
		return 0, 0, fmt.Errorf("processlist (%s): %w", s.Dir, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, 0, err
	}
	userCol, cmdCol := -1, -1
	for i, c := range cols {
		switch {
		case strings.EqualFold(c, "User"):
			userCol = i
		case strings.EqualFold(c, "Command"):
			cmdCol = i
		}
	}
	if userCol < 0 || cmdCol < 0 {
		return 0, 0, fmt.Errorf("processlist: no User column in %v", cols)
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, 0, err
		}
		if users[string(vals[userCol])] {
			n++
			if string(vals[cmdCol]) != "Sleep" {
				active++
			}
		}
	}
	return n, active, rows.Err()
}

// Sent is how many statements the measuring connection has sent.
func (s *server) Sent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// series summarises samples.
type series struct {
	N    int
	Peak int
	Sum  int64
}

func (s *series) add(v int) {
	s.N++
	s.Sum += int64(v)
	s.Peak = max(s.Peak, v)
}

// Mean is the samples' mean (0 without samples).
func (s series) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.N)
}

// sampling is a running sampler: every interval, the site users'
// connections on the primary (and replicas) and the primary's
// Threads_connected.
type sampling struct {
	stopc   chan struct{}
	done    chan struct{}
	Backend series // site users' connections to the primary
	Active  series // of those, the ones running a command (not Sleep)
	Threads series // the primary's Threads_connected
	Replica series // site users' connections to the replicas, summed
	err     error
}

// It stops between two samples, never by cancelling a query's context: the
// driver closes a connection whose query was cancelled, and the connection
// is needed for the status reading after the run.
func startSampling(ctx context.Context, interval time.Duration, primary *server, replicas []*server, users map[string]bool) *sampling {
	s := &sampling{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			n, active, err := primary.siteConns(ctx, users)
			if err == nil {
				var st map[string]int64
				if st, err = primary.status(ctx, "Threads_connected"); err == nil {
					s.Backend.add(n)
					s.Active.add(active)
					s.Threads.add(int(st["Threads_connected"]))
				}
			}
			r := 0
			for _, rs := range replicas {
				if err != nil {
					break
				}
				var k int
				k, _, err = rs.siteConns(ctx, users)
				r += k
			}
			if err == nil && len(replicas) > 0 {
				s.Replica.add(r)
			}
			if err != nil {
				s.err = err
				return
			}
			select {
			case <-ctx.Done():
				s.err = ctx.Err()
				return
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns its first error.
func (s *sampling) stop() error {
	close(s.stopc)
	<-s.done
	return s.err
}
