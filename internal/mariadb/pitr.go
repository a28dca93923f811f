package mariadb

// What point-in-time recovery (package pitr) needs of the server: dumps
// that say which binary log position they are consistent with, and
// connections limited to one database for replaying a site's log.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// DumpAt is Dump, and also returns the GTID position (@@gtid_binlog_pos
// form) the dump is consistent with: mariadb-dump --master-data=2 --gtid
// reads it inside the dump's own consistent snapshot (MariaDB's
// binlog_snapshot_file/position status, no global read lock) and writes it
// as a comment. gtid is "" when the server has no binary log (or is not
// MariaDB).
func (s *Server) DumpAt(ctx context.Context, name string, w io.Writer) (gtid string, err error) {
	if !ident.MatchString(name) {
		return "", fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	var logBin int
	var version string
	if err := s.db.QueryRowContext(ctx, "SELECT @@global.log_bin, VERSION()").Scan(&logBin, &version); err != nil {
		return "", fmt.Errorf("mariadb: dump %s: %w", name, err)
	}
	if logBin == 0 || !strings.Contains(version, "MariaDB") {
		return "", s.Dump(ctx, name, w)
	}
	// Dump's options, and the position.
	cmd := exec.CommandContext(ctx, "mariadb-dump", "--defaults-file="+s.clientConfig(),
		"--single-transaction", "--quick", "--skip-lock-tables", "--hex-blob", "--skip-comments",
		"--default-character-set=utf8mb4", "--add-drop-table", "--triggers", "--skip-routines", "--skip-events",
		"--master-data=2", "--gtid",
		"--", name)
	gw := &gtidWriter{w: w, start: true}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = gw, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb: dump %s: %w: %s", name, err, tail([]byte(stderr.String())))
	}
	if gw.gtid == "" {
		return "", fmt.Errorf("mariadb: dump %s: mariadb-dump wrote no GTID position", name)
	}
	return gw.gtid, nil
}

// gtidLine starts the comment mariadb-dump --master-data=2 --gtid writes
// with the position: -- SET GLOBAL gtid_slave_pos='0-1-42';
const gtidLine = "-- SET GLOBAL gtid_slave_pos='"

// gtidWriter passes a dump through and remembers the position of the last
// gtidLine (only a line that starts with it: the dump's data is inside
// INSERT statements, whose strings have their line breaks escaped).
type gtidWriter struct {
	w     io.Writer
	start bool   // at the start of a line
	line  []byte // the current line while it may be a gtidLine
	in    bool   // collecting line
	gtid  string
}

func (g *gtidWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if g.start {
			g.in, g.line = c == '-', g.line[:0]
		}
		g.start = c == '\n'
		if !g.in {
			continue
		}
		if c == '\n' {
			g.take()
			g.in = false
			continue
		}
		g.line = append(g.line, c)
		if len(g.line) > 512 || (len(g.line) <= len(gtidLine) && !bytes.HasPrefix([]byte(gtidLine), g.line)) {
			g.in = false
		}
	}
	return g.w.Write(p)
}

func (g *gtidWriter) take() {
	rest, ok := bytes.CutPrefix(g.line, []byte(gtidLine))
	if !ok {
		return
	}
	v, ok := bytes.CutSuffix(bytes.TrimRight(rest, "\r"), []byte("';"))
	if ok && len(v) > 0 && len(bytes.Trim(v, "0123456789-,")) == 0 {
		g.gtid = string(v)
	}
}

// AsDatabaseUser runs fn on a connection logged in as an ephemeral user
// that holds a site user's privileges on database name and nothing else
// (Load's load user: same prefix, same collection after a crash), dropped
// afterwards. Point-in-time recovery replays a site's log through it into
// a staging or clone database: never as root.
func (s *Server) AsDatabaseUser(ctx context.Context, name string, fn func(*sql.Conn) error) (err error) {
	if !ident.MatchString(name) {
		return fmt.Errorf("mariadb: invalid identifier %q", name)
	}
	userName := s.loadUserPrefix() + randomHex(6)
	if !ident.MatchString(userName) {
		return fmt.Errorf("mariadb: load user prefix %q makes an invalid user name", s.loadUserPrefix())
	}
	s.loadMu.Lock()
	if s.loading == nil {
		s.loading = map[string]bool{}
	}
	s.loading[userName] = true
	s.loadMu.Unlock()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.dropLoadUser(dctx, userName); derr != nil {
			err = errors.Join(err, derr)
		}
		s.loadMu.Lock()
		delete(s.loading, userName)
		s.loadMu.Unlock()
	}()
	password := randomHex(16)
	for _, q := range []string{
		fmt.Sprintf("CREATE OR REPLACE USER '%s'@'%s' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS %d", userName, s.userHost(), password, loadMaxConnections),
		fmt.Sprintf("GRANT %s ON `%s`.* TO '%s'@'%s'", loadPrivileges, grantDB(name), userName, s.userHost()),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb: a user for %s: %w", name, err)
		}
	}
	db, err := s.open(userName, password, name)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mariadb: connect as the user for %s: %w", name, err)
	}
	defer conn.Close()
	return fn(conn)
}
