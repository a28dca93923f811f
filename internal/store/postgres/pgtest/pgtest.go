// Package pgtest starts a throwaway PostgreSQL server for tests: one cluster
// per test binary, in a temporary directory, on a free loopback port and a
// Unix socket in the same directory, run as the postgres user when the tests
// run as root. Tests get their own databases on it.
//
// A test package uses it from TestMain:
//
//	var pg pgtest.Env
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) { dsn := pg.Server(t).NewDatabase(t); ... }
//
// Without PostgreSQL server binaries on the machine the tests that ask for
// the server are skipped; any other failure to start it fails the binary.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoPostgres means the machine has no PostgreSQL server binaries.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/postgres); run 'make deps' as root to install them")

// Server is a throwaway PostgreSQL cluster. Create it with Start.
type Server struct {
	root   string // temporary directory: data/, the socket, postgres.log
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	admin  *pgxpool.Pool // on the "postgres" database, for CREATE DATABASE
}

// findBinDir returns the bin directory of the newest PostgreSQL installed the
// Debian way, or the directory of postgres on PATH.
func findBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoPostgres
}

// serverCredential returns the user the server runs as: PostgreSQL refuses to
// run as root, so root runs it as the postgres user the Debian package
// creates; anyone else runs it as themselves (nil).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres user to run the server as (run 'make deps'): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start initialises a cluster in a new temporary directory, starts it and
// waits until it accepts connections. It returns ErrNoPostgres when there is
// no PostgreSQL to start. Stop it with Stop.
func Start(ctx context.Context) (_ *Server, err error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// A short path under /tmp (1777, traversable by the server's user): the
	// socket path must stay under 108 bytes.
	root, err := os.MkdirTemp("", "aipress-pg-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(root)
		}
	}()
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	logFile, err := os.Create(filepath.Join(root, "postgres.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	if cred != nil {
		if err := logFile.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	logTail := func() string {
		b, _ := os.ReadFile(logFile.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	command := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Dir = root // the server's user may not be able to enter the test's directory
		c.Stdout, c.Stderr = logFile, logFile
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}

	data := filepath.Join(root, "data")
	// The cluster's default collation is ICU's en-US on purpose: site names
	// must still list in byte order (the name column is COLLATE "C").
	initdb := command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
		"--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US", "--no-sync", "--no-instructions")
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, logTail())
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv := &Server{root: root, port: port, exited: make(chan struct{})}
	srv.cmd = command("postgres", "-D", data, "-k", root, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=400")
	// Should the test binary die, the server goes down with it.
	srv.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		_ = srv.cmd.Wait()
		close(srv.exited)
	}()
	defer func() {
		if err != nil {
			srv.stopProcess()
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		pool, err := pgxpool.New(ctx, srv.DSN("postgres"))
		if err == nil {
			err = pool.Ping(ctx)
			if err == nil {
				srv.admin = pool
				return srv, nil
			}
			pool.Close()
		}
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("postgres exited before accepting connections: %s\n%s", srv.cmd.ProcessState, logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres does not accept connections after 60s: %w\n%s", err, logTail())
		}
	}
}

// DSN returns the connection string (keyword/value pairs) of database db,
// over the Unix socket.
func (srv *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", srv.root, srv.port, db)
}

// URL returns the connection string of database db, over TCP, as a
// postgres:// URL.
func (srv *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", srv.port, db)
}

// stopProcess shuts the server down (SIGINT: fast shutdown), killing it if it
// has not exited after 30 seconds.
func (srv *Server) stopProcess() {
	_ = srv.cmd.Process.Signal(os.Interrupt)
	select {
	case <-srv.exited:
	case <-time.After(30 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.exited
	}
}

// Stop closes the admin pool, stops the server and removes its directory.
func (srv *Server) Stop() error {
	if srv.admin != nil {
		srv.admin.Close()
	}
	srv.stopProcess()
	return os.RemoveAll(srv.root)
}

// Admin returns a pool on the "postgres" database, as the superuser, e.g. to
// look at pg_locks or terminate backends.
func (srv *Server) Admin() *pgxpool.Pool { return srv.admin }

// CreateDatabase creates database name (UTF8, from template0) unless it
// exists.
func (srv *Server) CreateDatabase(ctx context.Context, name string) error {
	_, err := srv.admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8'`)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

// DatabaseFor names a database after key (e.g. a storetest dir): the same key
// gives the same name, so reopening it reaches the same data.
func DatabaseFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "aipress_" + hex.EncodeToString(sum[:10])
}

// NewDatabase creates a database no other test uses and returns its DSN
// (over the Unix socket).
func (srv *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := DatabaseFor(t.TempDir())
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return srv.DSN(name)
}

// Env is a test binary's server, or why there is none. Keep one in a
// package-level variable of the test package and run Main from TestMain.
type Env struct {
	srv  *Server
	skip string
}

// Server returns the binary's server, or skips t when there is none.
func (e *Env) Server(t testing.TB) *Server {
	t.Helper()
	if e.srv == nil {
		t.Skip(e.skip)
	}
	return e.srv
}

// Main starts the server (or notes that there is no PostgreSQL to start),
// runs the tests and stops the server. It returns the exit code for
// os.Exit: 1 if the server fails to start or m.Run fails.
func (e *Env) Main(m *testing.M) int {
	ctx := context.Background()
	srv, err := Start(ctx)
	switch {
	case errors.Is(err, ErrNoPostgres):
		e.skip = err.Error()
	case err != nil:
		fmt.Fprintf(os.Stderr, "postgres tests: %v\n", strings.TrimSpace(err.Error()))
		return 1
	default:
		e.srv = srv
		defer func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "postgres tests: stop server: %v\n", err)
			}
		}()
	}
	return m.Run()
}
