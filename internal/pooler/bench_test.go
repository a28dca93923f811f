package pooler

import (
	"database/sql"
	"testing"
)

// BenchmarkStatement: one small statement through the pooler, when the
// session's site has an idle backend of its own ("own"), when it takes
// over another site's ("takeover": COM_CHANGE_USER), and the same with
// WordPress's session state to replay ("takeover+state"); "direct" is the
// same statement on a connection straight to MariaDB (the anchor).
func BenchmarkStatement(b *testing.B) {
	s1, s2 := newSite(b, 2), newSite(b, 2)
	p := startPooler(b, Config{MaxIdle: 1, MaxServerBackends: 1}, s1.Account, s2.Account)
	wpState := []string{
		"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'",
		"SET SESSION sql_mode='NO_ENGINE_SUBSTITUTION'",
	}
	session := func(s site, state bool) *sql.Conn {
		c := conn(b, open(b, p.cfg.Socket, s.User, s.Password, s.Database))
		if state {
			for _, q := range wpState {
				if _, err := c.ExecContext(b.Context(), q); err != nil {
					b.Fatal(err)
				}
			}
		}
		return c
	}
	run := func(b *testing.B, conns ...*sql.Conn) {
		var v int
		for i := 0; b.Loop(); i++ {
			if err := conns[i%len(conns)].QueryRowContext(b.Context(), "SELECT 1").Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		db, err := primary.OpenAs(s1.User, s1.Password, s1.Database)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		c := conn(b, db)
		run(b, c)
	})
	b.Run("own", func(b *testing.B) { run(b, session(s1, false)) })
	b.Run("takeover", func(b *testing.B) { run(b, session(s1, false), session(s2, false)) })
	b.Run("takeover+state", func(b *testing.B) { run(b, session(s1, true), session(s2, true)) })
}
