package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
)

// startServer runs a MariaDB server in a temporary directory until the
// test ends.
func startServer(t *testing.T) *Server {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith starts a server that set (if not nil) configures first.
func startServerWith(t *testing.T, set func(*Server)) *Server {
	t.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("mariadb-server not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Dir: dir + "/db", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	if set != nil {
		set(s)
	}
	if err := s.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	select {
	case <-s.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("mariadb not ready")
	}
	return s
}

// remoteOf administers local's server as a remote one: over TCP, as an
// admin account of its own, with site (and load) users at host "%".
func remoteOf(t *testing.T, local *Server) *Server {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		"CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'admin pw#1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION",
	} {
		if err := local.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r := &Server{Dir: filepath.Join(filepath.Dir(local.Dir), "remote-client"),
		Remote:         &Remote{Addr: "127.0.0.1:" + strconv.Itoa(local.Port()), User: "admin", Password: "admin pw#1"},
		LoadUserPrefix: "rld_"}
	ctx, cancel := context.WithCancel(ctx)
	if err := r.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	select {
	case <-r.Ready():
	case <-time.After(time.Minute):
		t.Fatal("remote admin connection not ready")
	}
	return r
}

// grantState is everything a load must not change outside its database:
// accounts, passwords and privileges, routines, triggers, views, events,
// plugins, the list of databases, another site's data and a global
// setting.
func grantState(t *testing.T, s *Server) string {
	t.Helper()
	db, err := s.OpenRoot("mysql")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		"SELECT User, Host, Priv FROM mysql.global_priv ORDER BY User, Host",
		"SELECT * FROM mysql.db ORDER BY Host, Db, User",
		"SELECT * FROM mysql.tables_priv ORDER BY Host, Db, User, Table_name",
		"SELECT * FROM mysql.columns_priv ORDER BY Host, Db, User, Table_name, Column_name",
		"SELECT * FROM mysql.procs_priv ORDER BY Host, Db, User, Routine_name",
		"SELECT * FROM mysql.proxies_priv ORDER BY Host, User",
		"SELECT * FROM mysql.roles_mapping ORDER BY Host, User, Role",
		"SELECT * FROM mysql.plugin ORDER BY name",
		"SELECT db, name, definer FROM mysql.proc ORDER BY db, name",
		"SELECT db, name, definer FROM mysql.event ORDER BY db, name",
		"SELECT TRIGGER_SCHEMA, TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS ORDER BY 1, 2",
		"SELECT TABLE_SCHEMA, TABLE_NAME, DEFINER FROM information_schema.VIEWS ORDER BY 1, 2",
		"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1",
		"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys', 'wp_t') ORDER BY 1, 2",
		"SELECT * FROM wp_v.secret ORDER BY s",
		"SELECT @@GLOBAL.max_connections, @@GLOBAL.general_log, @@GLOBAL.local_infile",
	} {
		fmt.Fprintf(&b, "%s\n%s\n", q, rowsText(t, db, q))
	}
	return b.String()
}

func rowsText(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('|')
			}
			b.Write(v)
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestLoadHostileDumps loads crafted dumps through Load, on a local server
// and on the same server administered as a remote one, and checks that
// each fails (or does nothing) inside the target database only: no shell
// command runs, no file is read or written, and no account, privilege,
// password, routine, trigger, view or other database changes. A normal
// dump still loads completely. The control case runs the same attacks
// through the client as root without the sandbox (how Load ran before),
// so the checks are seen to catch them.
func TestLoadHostileDumps(t *testing.T) {
	local := startServer(t)
	ctx := context.Background()
	if err := local.EnsureDatabase(ctx, "wp_v", "wp_v", "pwV", 10); err != nil {
		t.Fatal(err)
	}
	if err := local.Exec(ctx, "CREATE TABLE wp_v.secret (s varchar(100))"); err != nil {
		t.Fatal(err)
	}
	if err := local.Exec(ctx, "INSERT INTO wp_v.secret VALUES ('the victim site''s data')"); err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureDatabase(ctx, "wp_t", "wp_t", "pwT", 10); err != nil {
		t.Fatal(err)
	}
	// A normal dump: text with quotes, backslashes, line breaks, NUL and
	// 4-byte UTF-8, binary data, a long row.
	if err := local.Exec(ctx, "CREATE TABLE wp_v.posts (id int PRIMARY KEY AUTO_INCREMENT, s longtext, b blob) CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	if err := local.Exec(ctx, "INSERT INTO wp_v.posts (s, b) VALUES (?, UNHEX('00FF0D0A5C27')), (REPEAT('x', 300000), NULL)",
		"it's a \\ \"quote\"\r\nline2 \x00 nul é 🎉 \\! touch /tmp/x"); err != nil {
		t.Fatal(err)
	}
	var normal bytes.Buffer
	if err := local.Dump(ctx, "wp_v", &normal); err != nil {
		t.Fatal(err)
	}
	if err := local.Exec(ctx, "DROP TABLE wp_v.posts"); err != nil {
		t.Fatal(err)
	}

	marks := t.TempDir()
	mark := func(n string) string { return filepath.Join(marks, n) }
	// $EDITOR is what "\e" runs: the load's environment must not carry it.
	t.Setenv("EDITOR", "touch "+mark("editor"))
	t.Setenv("VISUAL", "touch "+mark("editor"))

	type check func(t *testing.T, s *Server)
	nullLoadFile := func(t *testing.T, s *Server) {
		if v, err := local.QueryString(ctx, "SELECT COUNT(*) FROM wp_t.f WHERE s IS NOT NULL"); err != nil || v != "0" {
			t.Errorf("LOAD_FILE read a file into the table: %q %v", v, err)
		}
	}
	emptyL := func(t *testing.T, s *Server) {
		if v, err := local.QueryString(ctx, "SELECT COUNT(*) FROM wp_t.l"); err != nil || v != "0" {
			t.Errorf("a file was loaded into the table: %q %v", v, err)
		}
	}
	tests := []struct {
		name    string
		dump    string
		wantErr string // "" : the load succeeds
		check   check
	}{
		{"shell escape", "CREATE TABLE a (x int);\n\\! touch " + mark("shell") + "\nINSERT INTO a VALUES (1);\n", "Unknown command", nil},
		{"system", "system touch " + mark("system") + "\n", "SQL syntax", nil},
		{"shell escape after delimiter", "DELIMITER ;;\n\\! touch " + mark("shell2") + "\n;;\nDELIMITER ;\n", "Unknown command", nil},
		{"edit runs $EDITOR", "SELECT 1\n\\e\n;\n", "Unknown command", nil},
		{"source a file", "source /etc/passwd\n", "SQL syntax", nil},
		{"source short form", "\\. /etc/passwd\n", "Unknown command", nil},
		{"tee writes a file", "tee " + mark("tee") + "\nSELECT 1;\n", "SQL syntax", nil},
		{"pager", "pager touch " + mark("pager") + "\nSELECT 1;\n", "SQL syntax", nil},
		{"connect elsewhere", "connect wp_v\n", "SQL syntax", nil},
		{"use another database", "USE wp_v;\nDELETE FROM secret;\n", "Access denied", nil},
		{"use short form", "\\u wp_v\nDELETE FROM secret;\n", "Unknown command", nil},
		{"write another database", "INSERT INTO wp_v.secret VALUES ('planted');\n", "denied", nil},
		{"read another database", "CREATE TABLE stolen AS SELECT * FROM wp_v.secret;\n", "denied", nil},
		{"drop another database", "DROP DATABASE wp_v;\n", "Access denied", nil},
		{"create a database", "CREATE DATABASE evil;\n", "Access denied", nil},
		{"grant all", "GRANT ALL PRIVILEGES ON *.* TO 'wp_t'@'localhost' WITH GRANT OPTION;\n", "denied", nil},
		{"grant on another database", "GRANT ALL ON wp_v.* TO 'wp_t'@'%';\n", "denied", nil},
		{"create user", "CREATE USER 'evil'@'%' IDENTIFIED BY 'x';\n", "denied", nil},
		{"set root's password", "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('owned');\n", "denied", nil},
		{"alter root", "ALTER USER 'root'@'localhost' IDENTIFIED BY 'owned';\n", "denied", nil},
		{"into outfile", "SELECT 'x' INTO OUTFILE '" + mark("outfile") + "';\n", "FILE", nil},
		{"into dumpfile", "SELECT 'x' INTO DUMPFILE '" + mark("dumpfile") + "';\n", "FILE", nil},
		{"load data infile", "CREATE TABLE l (s text);\nLOAD DATA INFILE '/etc/passwd' INTO TABLE l;\n", "denied", emptyL},
		{"load data local infile", "CREATE TABLE l (s text);\nLOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE l;\n", "local infile", emptyL},
		{"load_file", "CREATE TABLE f (s longtext);\nINSERT INTO f SELECT LOAD_FILE('/etc/shadow');\n", "", nullLoadFile},
		{"trigger with a definer", "CREATE TABLE tr (x int);\nCREATE DEFINER='root'@'localhost' TRIGGER t1 BEFORE INSERT ON tr FOR EACH ROW SET NEW.x = 1;\n", "denied", nil},
		{"view with a definer", "CREATE DEFINER='root'@'localhost' SQL SECURITY DEFINER VIEW v AS SELECT * FROM mysql.global_priv;\n", "denied", nil},
		{"procedure with a definer", "DELIMITER ;;\nCREATE DEFINER='root'@'localhost' PROCEDURE p() BEGIN SELECT 1; END;;\nDELIMITER ;\n", "denied", nil},
		{"event", "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM wp_v.secret;\n", "denied", nil},
		{"global setting", "SET GLOBAL max_connections = 1;\n", "denied", nil},
		{"install a plugin", "INSTALL SONAME 'ha_connect';\n", "denied", nil},
		{"write mysql tables", "INSERT INTO mysql.global_priv VALUES ('%', 'evil', '{}');\n", "denied", nil},
		{"kill root's sessions", "KILL USER 'root';\n", "", nil}, // a no-op for a user without CONNECTION ADMIN
	}
	// The dump an attacker gets for free: everything it writes goes into the
	// target database, and the load succeeds.
	tests = append(tests, struct {
		name    string
		dump    string
		wantErr string
		check   check
	}{"own database only", "DROP TABLE IF EXISTS own;\nCREATE TABLE own (x int);\nINSERT INTO own VALUES (42);\n", "", func(t *testing.T, s *Server) {
		if v, err := local.QueryString(ctx, "SELECT x FROM wp_t.own"); err != nil || v != "42" {
			t.Errorf("own table: %q %v", v, err)
		}
	}})

	modes := []struct {
		name string
		s    *Server
	}{{"local", local}, {"remote", remoteOf(t, local)}}
	before := grantState(t, local)
	for _, mode := range modes {
		s := mode.s
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if err := local.RecreateDatabase(ctx, "wp_t"); err != nil {
						t.Fatal(err)
					}
					err := s.Load(ctx, "wp_t", strings.NewReader(tc.dump))
					switch {
					case tc.wantErr == "" && err != nil:
						t.Errorf("load: %v", err)
					case tc.wantErr != "" && err == nil:
						t.Errorf("the load succeeded, want an error with %q", tc.wantErr)
					case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
						t.Errorf("error %q lacks %q", err, tc.wantErr)
					case tc.wantErr != "" && !errors.Is(err, ErrDumpRefused):
						t.Errorf("error %q is not ErrDumpRefused: an import would retry it", err)
					}
					if ents, _ := os.ReadDir(marks); len(ents) != 0 {
						t.Errorf("files written by the load: %v", ents)
						for _, e := range ents {
							os.Remove(filepath.Join(marks, e.Name()))
						}
					}
					if after := grantState(t, local); after != before {
						t.Errorf("the load changed the server outside its database:\n%s", diffLines(before, after))
					}
					if tc.check != nil {
						tc.check(t, s)
					}
					if users, err := s.LoadUsers(ctx); err != nil || len(users) != 0 {
						t.Errorf("load users left: %v %v", users, err)
					}
					if files, _ := filepath.Glob(filepath.Join(s.Dir, "load-*")); len(files) != 0 {
						t.Errorf("load option files left: %v", files)
					}
				})
			}
			t.Run("normal dump", func(t *testing.T) {
				if err := local.RecreateDatabase(ctx, "wp_t"); err != nil {
					t.Fatal(err)
				}
				if err := s.Load(ctx, "wp_t", bytes.NewReader(normal.Bytes())); err != nil {
					t.Fatal(err)
				}
				var again bytes.Buffer
				if err := local.Dump(ctx, "wp_t", &again); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again.Bytes(), normal.Bytes()) {
					t.Errorf("the loaded database dumps differently (%d bytes, want %d)", again.Len(), normal.Len())
				}
				if v, err := local.QueryString(ctx, "SELECT COUNT(*) FROM wp_t.posts WHERE b = UNHEX('00FF0D0A5C27') AND s LIKE '%🎉%'"); err != nil || v != "1" {
					t.Errorf("rows: %q %v", v, err)
				}
			})
		})
	}

	// Control: the same attacks through the client as root without the
	// sandbox do what the checks above look for.
	t.Run("control: unsandboxed root load", func(t *testing.T) {
		root := func(dump string) error {
			cmd := exec.CommandContext(ctx, "mariadb", "--defaults-file="+local.clientConfig(), "--batch", "--", "wp_t")
			cmd.Stdin = strings.NewReader(dump)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}
		if err := root("\\! touch " + mark("shell") + "\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(mark("shell")); err != nil {
			t.Errorf("the shell escape did not run as root: %v", err)
		}
		if err := root("INSERT INTO wp_v.secret VALUES ('planted');\n"); err != nil {
			t.Fatal(err)
		}
		if after := grantState(t, local); after == before {
			t.Error("a root load that wrote another database went unnoticed")
		}
	})
}

// diffLines returns the lines of b that a lacks and the other way round.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	am, bm := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !bm[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !am[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCollectLoadUsers checks that load users and option files a crash
// left behind are removed, and that other users, another prefix's load
// users and the user of a running load are not.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   bool
	}{
		{"ERROR 1227 (42000) at line 12: Access denied; you need (at least one of) the SUPER privilege(s)\n", true},
		{"ERROR 1064 (42000) at line 3: You have an error in your SQL syntax\n", true},
		{"ERROR at line 1: Unknown command '\\u'.\n", true},
		{"ERROR 2013 (HY000) at line 40: Lost connection to server during query\n", false},
		{"ERROR 2002 (HY000): Can't connect to local server through socket\n", false},
		{"ERROR 1213 (40001) at line 9: Deadlock found when trying to get lock\n", false},
		{"ERROR 1040 (HY000): Too many connections\n", false},
		{"ERROR 4166 (HY000) at line 2: The used command is not allowed because the MariaDB server or client has disabled the local infile capability\n", true},
		{"ERROR 2006 (HY000) at line 7: Server has gone away\n", false},
		{"mariadb: unknown option '--sandbox'\n", false},
		{"", false},
	} {
		if got := refused(tc.stderr); got != tc.want {
			t.Errorf("refused(%q) = %v, want %v", tc.stderr, got, tc.want)
		}
	}
}

func TestCollectLoadUsers(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	s.LoadUserPrefix = "wp_ld_"
	for _, q := range []string{
		"CREATE USER 'wp_ld_0123456789ab'@'localhost' IDENTIFIED BY 'x'",
		"CREATE USER 'wp_ld_running00000'@'localhost' IDENTIFIED BY 'x'",
		"CREATE USER 'w1234_ld_0123456789ab'@'localhost' IDENTIFIED BY 'x'", // another shard's
		"CREATE USER 'wp_0123456789ab'@'localhost' IDENTIFIED BY 'x'",       // a site's
	} {
		if err := s.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	left := s.loadOptionFile("wp_ld_fedcba987654")
	if err := os.WriteFile(left, []byte("[client]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.loading = map[string]bool{"wp_ld_running00000": true}
	if err := s.CollectLoadUsers(ctx); err != nil {
		t.Fatal(err)
	}
	users, err := s.ListUsers(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(users, " "); got != "w1234_ld_0123456789ab wp_0123456789ab wp_ld_running00000" {
		t.Errorf("users after collection: %s", got)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("option file left: %v", err)
	}
}

// TestLoadNeedsSandbox checks that Load refuses to run with a mariadb
// client that lacks the sandbox options, before it touches the server.
func TestLoadNeedsSandbox(t *testing.T) {
	bin := t.TempDir()
	old := "#!/bin/sh\necho \"mariadb: unknown option '--sandbox'\" >&2\necho 'mariadb  Ver 15.1 Distrib 10.3.39-MariaDB'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(bin, "mariadb"), []byte(old), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	s := &Server{Dir: t.TempDir()} // no server: Load must stop before it needs one
	err := s.Load(context.Background(), "wp_t", strings.NewReader("SELECT 1;\n"))
	if !errors.Is(err, ErrNoSandbox) {
		t.Fatalf("Load with an old client = %v, want ErrNoSandbox", err)
	}
	if !strings.Contains(err.Error(), "--sandbox") {
		t.Errorf("error %q does not say what is missing", err)
	}
}
