package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"
)

// TestDumpAt: a dump records the position it is consistent with (a write
// after the dump is not covered), and a user for one database reaches that
// database only.
func TestDumpAt(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	if err := s.EnsureDatabase(ctx, "wp_a", "wp_a", "pwA", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(ctx, "wp_b", "wp_b", "pwB", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "CREATE TABLE wp_a.t (id int primary key, v text)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "INSERT INTO wp_a.t VALUES (1, '-- SET GLOBAL gtid_slave_pos=''9-9-9'';\n')"); err != nil {
		t.Fatal(err)
	}
	before, err := s.GTIDPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	gtid, err := s.DumpAt(ctx, "wp_a", &dump)
	if err != nil {
		t.Fatal(err)
	}
	if gtid != before {
		t.Errorf("DumpAt position %q, server was at %q", gtid, before)
	}
	if err := s.Exec(ctx, "INSERT INTO wp_a.t VALUES (2, 'later')"); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.GTIDPos(ctx); after == gtid {
		t.Errorf("a later write did not move the position %q", after)
	}
	err = s.AsDatabaseUser(ctx, "wp_b", func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, "CREATE TABLE t (x int)"); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, "SELECT * FROM wp_a.t"); err == nil {
			return errors.New("the user for wp_b reads wp_a")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if users, err := s.LoadUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("users left: %v, %v", users, err)
	}
}

// TestGTIDWriter: the position comment is found across write boundaries,
// and only at the start of a line.
func TestGTIDWriter(t *testing.T) {
	dump := "INSERT INTO t VALUES ('x -- SET GLOBAL gtid_slave_pos=''9-9-9'';');\n-- SET GLOBAL gtid_slave_pos='0-1-42,1-2-7';\n/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
	for size := 1; size <= len(dump); size++ {
		var out bytes.Buffer
		g := &gtidWriter{w: &out, start: true}
		for i := 0; i < len(dump); i += size {
			g.Write([]byte(dump[i:min(i+size, len(dump))]))
		}
		if g.gtid != "0-1-42,1-2-7" || out.String() != dump {
			t.Fatalf("writes of %d: gtid %q", size, g.gtid)
		}
	}
}
