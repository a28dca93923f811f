package pooler

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
)

// One MariaDB per test binary (primary), a second independent one as the
// stand-in replica, started on first use.
var (
	primary, replicaDB *mariadb.Server
	testRoot           string
	siteSeq            atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		fmt.Println("mariadb-server not installed: skipping")
		return 0
	}
	dir, err := os.MkdirTemp("", "pooler-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		panic(err)
	}
	testRoot = dir
	ctx, cancel := context.WithCancel(context.Background())
	var stops []func()
	defer func() {
		cancel()
		for _, f := range stops {
			f()
		}
	}()
	start := func(name string) *mariadb.Server {
		s := &mariadb.Server{Dir: filepath.Join(dir, name), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
		if err := s.Prepare(ctx); err != nil {
			panic(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		stops = append(stops, func() { <-done; s.Close() })
		select {
		case <-s.Ready():
		case err := <-done:
			panic(err)
		case <-time.After(2 * time.Minute):
			panic("mariadb not ready")
		}
		return s
	}
	primary = start("primary")
	replicaDB = start("replica")
	return m.Run()
}

// site is one test site: its database and user on the primary (and on the
// stand-in replica).
type site struct {
	Account
}

func newSite(t testing.TB, maxBackends int) site {
	t.Helper()
	n := siteSeq.Add(1)
	name := fmt.Sprintf("wp_t%d", n)
	pw := fmt.Sprintf("pw%dsecret", n)
	ctx := context.Background()
	for _, s := range []*mariadb.Server{primary, replicaDB} {
		// (A test may have killed a server: its supervisor restarts it.)
		deadline := time.Now().Add(time.Minute)
		for {
			err := s.EnsureDatabase(ctx, name, name, pw, 20)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return site{Account{User: name, Password: pw, Database: name, MaxBackends: maxBackends}}
}

// startPooler runs a pooler for accounts; cfg's zero fields are filled.
func startPooler(t testing.TB, cfg Config, accts ...Account) *Pooler {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(t.TempDir(), "mysql.sock")
	}
	if cfg.Primary.Addr == "" {
		cfg.Primary = Backend{Network: "unix", Addr: primary.Socket()}
	}
	if cfg.BackendWait == 0 {
		cfg.BackendWait = 2 * time.Second
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetAccounts(accts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pooler run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return p
}

// dsn opens a go-sql-driver pool through the pooler (or a server socket).
func open(t testing.TB, socket, user, pw, db string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pw, "unix", socket, db
	cfg.AllowNativePasswords = true
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(c)
	t.Cleanup(func() { d.Close() })
	return d
}

// conn is one client session through db.
func conn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func queryString(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) string {
	t.Helper()
	var v sql.NullString
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v.String
}

func mustExec(t *testing.T, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) sql.Result {
	t.Helper()
	r, err := q.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return r
}

func myErr(err error) *mysql.MySQLError {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}
