package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestServer(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	// Root's files stay in a root-owned directory; mariadbd writes only
	// below data/ and run/.
	if os.Geteuid() == 0 {
		if st, err := os.Stat(s.Dir); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s is not root's: %v", s.Dir, err)
		}
	}
	if err := s.EnsureDatabase(ctx, "wp_a", "wp_a", "pwA", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(ctx, "wp_a", "wp_a", "pwA", 10); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	if err := s.EnsureDatabase(ctx, "wp_b", "wp_b", "pwB", 10); err != nil {
		t.Fatal(err)
	}
	a, err := s.OpenAs("wp_a", "pwA", "wp_a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("own database: %v", err)
	}
	// The session's sql_mode has none of those WordPress removes
	// (wpdb::set_sql_mode): what WordPress SETs is the server's own.
	var mode string
	if err := a.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	for _, m := range strings.Split(mode, ",") {
		switch m {
		case "NO_ZERO_DATE", "ONLY_FULL_GROUP_BY", "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "TRADITIONAL", "ANSI":
			t.Errorf("session sql_mode %q has %s, which WordPress removes on every connection", mode, m)
		}
	}
	if _, err := a.ExecContext(ctx, "SELECT * FROM wp_b.t"); err == nil {
		t.Fatal("user a could read database b")
	}
	for _, other := range []string{"other", "wpXa"} { // "_" is a wildcard in grants
		if _, err := a.ExecContext(ctx, "CREATE DATABASE "+other); err == nil {
			t.Fatalf("user a could create database %s", other)
		}
	}

	// Freeze: the user reads but cannot write, even on a connection opened
	// before the revoke (it is ended); unfreeze restores writing.
	if _, err := a.ExecContext(ctx, "INSERT INTO t VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	if err := s.FreezeWrites(ctx, "wp_a", "wp_a"); err != nil {
		t.Fatal(err)
	}
	if err := s.FreezeWrites(ctx, "wp_a", "wp_a"); err != nil {
		t.Fatalf("second freeze: %v", err)
	}
	if frozen, err := s.WritesFrozen(ctx, "wp_a", "wp_a"); err != nil || !frozen {
		t.Fatalf("WritesFrozen = %v, %v", frozen, err)
	}
	if _, err := a.ExecContext(ctx, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("a frozen user wrote")
	}
	if _, err := a.ExecContext(ctx, "SELECT COUNT(*) FROM t"); err != nil {
		t.Fatalf("a frozen user cannot read: %v", err)
	}
	// Dump and load into another database.
	var dump bytes.Buffer
	if err := s.Dump(ctx, "wp_a", &dump); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(ctx, "wp_c", "wp_c", "pwC", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx, "wp_c", &dump); err != nil {
		t.Fatal(err)
	}
	if v, err := s.QueryString(ctx, "SELECT COUNT(*) FROM wp_c.t"); err != nil || v != "1" {
		t.Fatalf("loaded rows = %q, %v", v, err)
	}
	if err := s.DropDatabase(ctx, "wp_c", "wp_c"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnfreezeWrites(ctx, "wp_a", "wp_a"); err != nil {
		t.Fatal(err)
	}
	if frozen, err := s.WritesFrozen(ctx, "wp_a", "wp_a"); err != nil || frozen {
		t.Fatalf("WritesFrozen after unfreeze = %v, %v", frozen, err)
	}
	// (A session keeps the database privileges it had when it selected
	// the database: WordPress connects per request, so a new connection.)
	a2, err := s.OpenAs("wp_a", "pwA", "wp_a")
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if _, err := a2.ExecContext(ctx, "DELETE FROM t"); err != nil {
		t.Fatalf("unfrozen user cannot write: %v", err)
	}
	a.SetMaxIdleConns(0) // drop the connection that saw the freeze

	// A killed server is restarted by its supervisor and the data is kept.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := a.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadb did not come back after kill")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s.Process().Starts() < 2 {
		t.Fatalf("starts = %d, want a restart", s.Process().Starts())
	}
	if err := s.DropDatabase(ctx, "wp_a", "wp_a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.DatabaseExists(ctx, "wp_a"); ok {
		t.Fatal("database still exists")
	}
	if ok, _ := s.UserExists(ctx, "wp_a"); ok {
		t.Fatal("user still exists")
	}
	dbs, err := s.ListDatabases(ctx, "wp_")
	if err != nil || len(dbs) != 1 || dbs[0] != "wp_b" {
		t.Fatalf("ListDatabases = %v, %v", dbs, err)
	}
}

// A site's database user gets at most its plan's number of connections
// (MariaDB refuses the next with error 1226) while another site's user
// still connects; a new limit applies to the next connection. The same on
// a server administered remotely over TCP (site users @'%').
func TestUserConnectionLimit(t *testing.T) {
	local := startServer(t)
	ctx := context.Background()
	remote := remoteOf(t, local)

	for _, tc := range []struct {
		name string
		srv  *Server
	}{{"local", local}, {"remote", remote}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			site, other := "wp_lim_"+tc.name, "wp_oth_"+tc.name
			if err := s.EnsureDatabase(ctx, site, site, "pwS", 0); err == nil {
				t.Error("a limit of 0 (unlimited to MariaDB) was accepted")
			}
			if err := s.EnsureDatabase(ctx, site, site, "pwS", 2); err != nil {
				t.Fatal(err)
			}
			if err := s.EnsureDatabase(ctx, site, site, "pwS", 2); err != nil {
				t.Fatalf("second ensure: %v", err)
			}
			if err := s.EnsureDatabase(ctx, other, other, "pwO", 2); err != nil {
				t.Fatal(err)
			}
			db, err := s.OpenAs(site, "pwS", site)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var held []*sql.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			connect := func() error {
				c, err := db.Conn(ctx)
				if err == nil {
					err = c.PingContext(ctx)
				}
				if err != nil {
					if c != nil {
						c.Close()
					}
					return err
				}
				held = append(held, c)
				return nil
			}
			refused := func(what string) {
				t.Helper()
				err := connect()
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != 1226 {
					t.Fatalf("%s: got %v, want MariaDB error 1226 (max_user_connections resource exceeded)", what, err)
				}
			}
			for i := 0; i < 2; i++ {
				if err := connect(); err != nil {
					t.Fatalf("connection %d of 2: %v", i+1, err)
				}
			}
			refused("third connection with a limit of 2")

			o, err := s.OpenAs(other, "pwO", other)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if err := o.PingContext(ctx); err != nil {
				t.Fatalf("another site's user cannot connect while the first is at its limit: %v", err)
			}

			// A plan change: the next connection gets the new limit.
			if err := s.EnsureDatabase(ctx, site, site, "pwS", 3); err != nil {
				t.Fatal(err)
			}
			if err := connect(); err != nil {
				t.Fatalf("third connection after raising the limit to 3: %v", err)
			}
			refused("fourth connection with a limit of 3")
		})
	}
}

// TestDropUserEndsSessions: a dropped account's connection opened before
// the drop (a persistent connection, a long request) is ended with it;
// MariaDB alone would let it keep the account's privileges.
func TestDropUserEndsSessions(t *testing.T) {
	local := startServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		srv  *Server
	}{{"local", local}, {"remote", remoteOf(t, local)}} {
		t.Run(tc.name, func(t *testing.T) {
			s, name := tc.srv, "wp_drop_"+tc.name
			if err := s.EnsureDatabase(ctx, name, name, "pwD", 5); err != nil {
				t.Fatal(err)
			}
			db, err := s.OpenAs(name, "pwD", name)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "CREATE TABLE t (x int)"); err != nil {
				t.Fatal(err)
			}
			if err := s.DropUser(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
				t.Fatal("a connection of the dropped account still writes")
			}
			if n, err := s.UserSessions(ctx, name); err != nil || n != 0 {
				t.Errorf("sessions after the drop: %d, %v", n, err)
			}
		})
	}
}
