package sqlscan

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
)

// startServer runs a MariaDB server in a temporary directory until the
// test ends, with a site database and user "s" (password "pw").
func startServer(t *testing.T) *mariadb.Server {
	t.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("mariadb-server not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &mariadb.Server{Dir: dir + "/db", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	if err := s.Prepare(ctx); err != nil {
		cancel()
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
	if err := s.EnsureDatabase(ctx, "s", "s", "pw", 50); err != nil {
		t.Fatal(err)
	}
	return s
}

// conn opens one connection whose handshake asks for collation.
func conn(t *testing.T, s *mariadb.Server, collation string) (*sql.Conn, func()) {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = "s", "pw", "s"
	cfg.Net, cfg.Addr = "unix", s.Socket()
	cfg.Collation = collation
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	cn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return cn, func() { cn.Close(); db.Close() }
}

// sessionVars are the variables the scenarios set, read back.
var sessionVars = []string{"character_set_client", "character_set_connection", "character_set_results",
	"collation_connection", "sql_mode", "time_zone", "wait_timeout", "autocommit", "group_concat_max_len",
	"max_statement_time", "sql_select_limit"}

func readVars(t *testing.T, c *sql.Conn, scope string) string {
	t.Helper()
	sel := make([]string, len(sessionVars))
	for i, v := range sessionVars {
		sel[i] = "@@" + scope + "." + v
	}
	vals := make([]sql.NullString, len(sessionVars))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := c.QueryRowContext(context.Background(), "SELECT "+strings.Join(sel, ", ")).Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, v := range vals {
		fmt.Fprintf(&b, "%s=%s(%v) ", sessionVars[i], v.String, v.Valid)
	}
	return b.String()
}

// run executes stmts on c, tracking them in state.
func run(t *testing.T, c *sql.Conn, state *State, stmts []string) {
	t.Helper()
	for _, q := range stmts {
		st := Scan(q)
		if st.Kind != Set || st.Sets == nil || st.Pin != "" {
			t.Fatalf("%q: %+v", q, st)
		}
		if _, err := c.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		state.Apply(st.Sets)
	}
}

// TestReplayOnMariaDB proves on MariaDB 10.11 that Replay's statements
// are accepted and give a connection the state a client's SETs and
// handshake gave another, whatever state the connection had before.
func TestReplayOnMariaDB(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()

	t.Run("collation table", func(t *testing.T) {
		c, done := conn(t, s, "utf8mb4_general_ci")
		defer done()
		rows, err := c.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME, IS_DEFAULT FROM information_schema.COLLATIONS WHERE ID IS NOT NULL AND ID < 256")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var id int
			var cs, co, def string
			if err := rows.Scan(&id, &cs, &co, &def); err != nil {
				t.Fatal(err)
			}
			n++
			if collations[id].charset != cs || collations[id].name != co {
				t.Errorf("collation %d: %v, server %s %s", id, collations[id], cs, co)
			}
			if def == "Yes" && defaultCollations[cs] != co {
				t.Errorf("default of %s: %s, server %s", cs, defaultCollations[cs], co)
			}
		}
		if n == 0 || rows.Err() != nil {
			t.Fatalf("%d collations: %v", n, rows.Err())
		}
	})

	handshakes := []struct {
		name string
		id   uint8
	}{{"utf8mb4_general_ci", 45}, {"utf8mb4_unicode_ci", 224}, {"latin1_swedish_ci", 8}}
	scenarios := [][]string{
		nil, // the handshake alone
		{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'", "SET SESSION sql_mode='NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'"},
		{"SET NAMES latin1", "SET character_set_results = NULL", "SET time_zone='+02:00'", "SET wait_timeout=100", "SET autocommit=1"},
		{"SET CHARACTER SET latin1", "SET collation_connection = utf8mb4_bin"},
		{"SET NAMES DEFAULT"},
		{"SET character_set_client = latin1, sql_mode=DEFAULT, group_concat_max_len = 4096"},
		{"/*!40101 SET NAMES utf8mb4 */", "SET @@session.max_statement_time = 2.5", "SET LOCAL sql_select_limit = 1000", "SET time_zone = DEFAULT"},
		{"SET NAMES binary, @@time_zone = 'SYSTEM'", "SET CHARSET DEFAULT"},
	}
	for ai, a := range handshakes {
		for bi, b := range handshakes {
			for si, want := range scenarios {
				// The other client's leftovers on connection B.
				dirt := scenarios[(si+ai+bi+1)%len(scenarios)]
				name := fmt.Sprintf("%s/%s/%d", a.name, b.name, si)
				t.Run(name, func(t *testing.T) {
					ca, doneA := conn(t, s, a.name)
					defer doneA()
					sa := NewState(a.id)
					run(t, ca, &sa, want)
					cb, doneB := conn(t, s, b.name)
					defer doneB()
					sb := NewState(b.id)
					if fresh := NewState(b.id); len(dirt) == 0 && a.id == b.id && len(want) == 0 != sa.Equal(fresh) {
						t.Fatalf("Equal: %v %v", sa, fresh)
					}
					run(t, cb, &sb, dirt)
					replay := sa.Replay(sb)
					for _, q := range replay {
						if _, err := cb.ExecContext(ctx, q); err != nil {
							t.Fatalf("replay %q: %v", q, err)
						}
					}
					if got, want := readVars(t, cb, "session"), readVars(t, ca, "session"); got != want {
						t.Errorf("after %q from %v:\n got %s\nwant %s", replay, sb, got, want)
					}
					if replay == nil && !sa.Equal(sb) {
						t.Errorf("no replay for unequal states")
					}
				})
			}
		}
	}

	// NewState(0) is the server's default: replaying it gives the global
	// values.
	for _, h := range handshakes {
		c, done := conn(t, s, h.name)
		run(t, c, new(State), []string{"SET time_zone='+01:00'"})
		from := NewState(h.id)
		from.Apply([]Assignment{{"time_zone", "'+01:00'"}})
		for _, q := range NewState(0).Replay(from) {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%q: %v", q, err)
			}
		}
		if got, want := readVars(t, c, "session"), readVars(t, c, "global"); got != want {
			t.Errorf("%s: server default:\n got %s\nwant %s", h.name, got, want)
		}
		done()
	}
	// A character set MariaDB refuses for clients (ucs2) makes it refuse
	// the connection; NewState leaves the server's default.
	if len(NewState(35).vars) != 0 || collations[35].name != "ucs2_general_ci" {
		t.Fatalf("NewState(ucs2): %v", NewState(35))
	}
}
