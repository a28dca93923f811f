package mariadb

// Loading a dump. A dump is site-supplied data: its rows came from the
// site's PHP, and a dump taken from a transfer store or a backup may have
// been crafted outright. So Load never runs it as root: the mariadb client
// runs with --sandbox and --binary-mode (no client commands: no "\!", no
// "system", "source", "tee", "\e", "connect"; the command-line tool's own
// sandbox from MariaDB 10.5.25/10.6.18/10.11.8 on) and --local-infile=0, as
// an ephemeral load user that holds the privileges of a site user on the
// target database and nothing else (no FILE, GRANT, CREATE USER, TRIGGER,
// CREATE VIEW or ROUTINE privileges, no other database), with
// MAX_USER_CONNECTIONS 2. The user is created for one load and dropped
// after it; its password is in a root-only option file (0600) for that load,
// never on a command line. Users and option files a crash left behind are
// collected by CollectLoadUsers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultLoadUserPrefix starts the names of the ephemeral load users when
// Server.LoadUserPrefix is empty.
const DefaultLoadUserPrefix = "aipress_load_"

// loadPrivileges are what a load user holds on the one database it loads:
// those of a site user (grantAll), which is all a mariadb-dump of a
// WordPress database needs (DROP/CREATE TABLE, LOCK TABLES, ALTER TABLE …
// DISABLE KEYS, INSERT).
const loadPrivileges = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES"

// loadMaxConnections is the load user's MAX_USER_CONNECTIONS (the client
// uses one).
const loadMaxConnections = 2

// ErrDumpRefused is wrapped in Load's error when the server refused a
// statement of the dump (a privilege the load user lacks, a syntax error,
// a duplicate key): loading the same dump again fails the same way.
// Connection losses, lock waits, deadlocks and connection limits are not
// refusals.
var ErrDumpRefused = errors.New("the database refused the dump")

// transientCodes are server error codes that a later load of
// the same dump may not meet: too many connections, the server shutting
// down, a connection killed, lock wait timeout, deadlock, max user
// connections, a user resource exceeded.
var transientCodes = map[int]bool{1040: true, 1053: true, 1927: true, 1205: true, 1213: true, 1203: true, 1226: true}

// refused reports whether the mariadb client's stderr names a server
// error that is the dump's fault (see ErrDumpRefused): a line "ERROR
// <code> (…)" with a server error code (1000–1999, 3000 and up: MariaDB's
// own are 4000 and up) that is not transient. Client errors (2000–2999:
// connection lost, server gone) are not; the
// client's own refusals ("ERROR at line 3: Unknown command", its sandbox)
// are.
func refused(stderr string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "ERROR at line ") {
			return true
		}
		var code int
		if _, err := fmt.Sscanf(l, "ERROR %d", &code); err != nil {
			continue
		}
		return code >= 1000 && (code < 2000 || code >= 3000) && !transientCodes[code]
	}
	return false
}

// ErrNoSandbox is returned by Load when the mariadb client lacks the
// options a sandboxed load needs.
var ErrNoSandbox = errors.New("mariadb: the mariadb client lacks --sandbox or --binary-mode (MariaDB 10.5.25, 10.6.18, 10.11.8, 11.0.6 or later is needed): refusing to load a dump")

// loadClientArgs are the mariadb client's options for a load, after
// --defaults-file.
var loadClientArgs = []string{"--batch", "--sandbox", "--binary-mode", "--local-infile=0", "--default-character-set=utf8mb4"}

// loadEnv is the client's whole environment: nothing of ours leaks in, and
// $EDITOR/$PAGER (which client commands would run) name nothing useful.
var loadEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", "EDITOR=/bin/false", "VISUAL=/bin/false", "PAGER=/bin/cat", "LC_ALL=C.UTF-8"}

func (s *Server) loadUserPrefix() string {
	if s.LoadUserPrefix != "" {
		return s.LoadUserPrefix
	}
	return DefaultLoadUserPrefix
}

// checkClient makes sure the mariadb client knows the sandbox options (an
// older client would take a "\!" in a dump for a shell command). The answer
// is remembered once positive.
func (s *Server) checkClient(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.clientChecked {
		return nil
	}
	// An unknown option is reported on stderr even where --version still
	// exits 0.
	args := append([]string{"--no-defaults"}, loadClientArgs...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "mariadb", append(args, "--version")...)
	cmd.Env, cmd.Stderr = loadEnv, &stderr
	if err := cmd.Run(); err != nil || strings.Contains(strings.ToLower(stderr.String()), "unknown") {
		if err == nil {
			err = errors.New(strings.TrimSpace(stderr.String()))
		}
		return fmt.Errorf("%w: %v", ErrNoSandbox, err)
	}
	s.clientChecked = true
	return nil
}

// Load runs the SQL read from r (a Dump) in database name, sandboxed, as an
// ephemeral user that may touch database name only (see the top of this
// file). A statement the user may not run (a GRANT, another database, a
// file) or a client command ends the load with an error that quotes the
// client's message; what ran before it stays in database name. Load never
// weakens what r may do by retrying.
func (s *Server) Load(ctx context.Context, name string, r io.Reader) (err error) {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	if err := s.checkClient(ctx); err != nil {
		return err
	}
	userName := s.loadUserPrefix() + randomHex(6)
	if !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: load user prefix %q makes an invalid user name", s.loadUserPrefix())
	}
	s.loadMu.Lock()
	if s.loading == nil {
		s.loading = map[string]bool{}
	}
	s.loading[userName] = true // before the user exists: CollectLoadUsers leaves it alone
	s.loadMu.Unlock()
	cnf := s.loadOptionFile(userName)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.dropLoadUser(dctx, userName); derr != nil {
			err = errors.Join(err, derr) // CollectLoadUsers tries again
		}
		s.loadMu.Lock()
		delete(s.loading, userName)
		s.loadMu.Unlock()
	}()
	password := randomHex(16)
	if err := s.writeLoadOptions(cnf, userName, password); err != nil {
		return err
	}
	for _, q := range []string{
		// OR REPLACE: a replica seeded while this load ran may have the
		// user already when it replays this statement (replica.go).
		fmt.Sprintf("CREATE OR REPLACE USER '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", userName, s.userHost(), password, loadMaxConnections),
		fmt.Sprintf("GRANT %s ON `%s`.* TO '%s'@'%s'", loadPrivileges, grantDB(name), userName, s.userHost()),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: load into %s: create the load user: %w", name, err)
		}
	}
	cmd := exec.CommandContext(ctx, "mariadb", append(append([]string{"--defaults-file=" + cnf}, loadClientArgs...), "--", name)...)
	var stderr strings.Builder
	cmd.Env, cmd.Stdin, cmd.Stderr = loadEnv, r, &stderr
	if err := cmd.Run(); err != nil {
		if refused(stderr.String()) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrDumpRefused, err)
		}
		return fmt.Errorf("mariadb: load into %s (sandboxed, as a user limited to that database): %w: %s", name, err, clientError(stderr.String()))
	}
	return nil
}

// clientError is the mariadb client's own error lines from its stderr (in
// batch mode it also echoes the failing statement, which can be long and
// is the dump's content), or a shortened stderr when it has none.
func clientError(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "ERROR") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return tail([]byte(stderr))
	}
	return tail([]byte(strings.Join(lines, "; ")))
}

// loadOptionFile is the option file of load user userName: in Dir, which is
// root's (0711 locally, 0700 for a remote server), the file root's alone.
func (s *Server) loadOptionFile(userName string) string {
	return filepath.Join(s.Dir, "load-"+userName+".cnf")
}

// writeLoadOptions writes the option file a load logs in with.
func (s *Server) writeLoadOptions(path, userName, password string) error {
	var conf string
	if s.Remote != nil {
		host, port, err := net.SplitHostPort(s.Remote.Addr)
		if err != nil {
			return fmt.Errorf("mariadb: remote server address %q: %w", s.Remote.Addr, err)
		}
		if strings.ContainsAny(host+port, "\r\n\x00") {
			return errors.New("mariadb: remote server settings contain a line break")
		}
		conf = fmt.Sprintf("[client]\nprotocol = tcp\nhost = %s\nport = %s\nuser = %s\npassword = %s\n",
			optionValue(host), optionValue(port), userName, password)
	} else {
		conf = fmt.Sprintf("[client]\nuser = %s\npassword = %s\nsocket = %s\n", userName, password, optionValue(s.Socket()))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("mariadb: load option file: %w", err)
	}
	_, werr := f.WriteString("# Written by aipress for one load; removed after it.\n" + conf)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("mariadb: load option file: %w", err)
	}
	return nil
}

// dropLoadUser drops load user userName, ends any session it still has and
// removes its option file (each idempotent).
func (s *Server) dropLoadUser(ctx context.Context, userName string) error {
	if !strings.HasPrefix(userName, s.loadUserPrefix()) || !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: %q is no load user", userName)
	}
	var errs []error
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", userName, s.userHost())); err != nil {
		errs = append(errs, fmt.Errorf("mariadb: drop load user %s: %w", userName, err))
	} else if err := s.killSessions(ctx, userName); err != nil {
		errs = append(errs, fmt.Errorf("mariadb: end the sessions of load user %s: %w", userName, err))
	}
	if err := os.Remove(s.loadOptionFile(userName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("mariadb: %w", err))
	}
	return errors.Join(errs...)
}

// killSessions ends every session of userName (from any host).
func (s *Server) killSessions(ctx context.Context, userName string) error {
	rows, err := s.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", userName)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		_, err := s.db.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
		var me *mysql.MySQLError
		if err != nil && !(errors.As(err, &me) && me.Number == 1094) { // 1094: unknown thread: it ended meanwhile
			return err
		}
	}
	return nil
}

// LoadUsers returns the load users of this server's prefix that exist
// (tests and CollectLoadUsers).
func (s *Server) LoadUsers(ctx context.Context) ([]string, error) {
	return s.list(ctx, "SELECT User FROM mysql.user WHERE Host = ? AND User LIKE ?", s.userHost(), s.loadUserPrefix())
}

// CollectLoadUsers drops the load users (and removes the option files) of
// this server's prefix that no running Load uses: what a crash during a
// load leaves behind. Shards call it with their orphan collection.
func (s *Server) CollectLoadUsers(ctx context.Context) error {
	users, err := s.LoadUsers(ctx)
	if err != nil {
		return err
	}
	prefix := "load-" + s.loadUserPrefix()
	if files, err := filepath.Glob(filepath.Join(s.Dir, "load-*.cnf")); err == nil {
		for _, f := range files {
			if b := filepath.Base(f); strings.HasPrefix(b, prefix) {
				users = append(users, strings.TrimSuffix(strings.TrimPrefix(b, "load-"), ".cnf"))
			}
		}
	}
	var errs []error
	done := map[string]bool{}
	for _, u := range users {
		s.loadMu.Lock()
		busy := s.loading[u]
		s.loadMu.Unlock()
		if busy || done[u] || !ident.MatchString(u) {
			continue
		}
		done[u] = true
		if s.Logger != nil {
			s.Logger.Warn("removing a load user left by an interrupted load", "user", u)
		}
		errs = append(errs, s.dropLoadUser(ctx, u))
	}
	return errors.Join(errs...)
}
