package pooler

import (
	"database/sql"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// processCPU is the user+system CPU time process pid has used (0 when
// /proc cannot tell).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100 // USER_HZ
}

// BenchmarkStatement: one small statement through the pooler, when the
// session's site has an idle backend of its own ("own"), when the backend
// lingers with the session since its last statement ("lingering",
// Config.Linger), when it takes
// over another site's ("takeover": COM_CHANGE_USER), the same with
// WordPress's character set (given in COM_CHANGE_USER) and with a variable
// to replay as well; "direct" is the
// same statement on a connection straight to MariaDB (the anchor);
// "+rows" an answer of 200 rows (WordPress's autoloaded options are a few
// hundred), "direct+rows" its anchor.
func BenchmarkStatement(b *testing.B) {
	s1, s2 := newSite(b, 2), newSite(b, 2)
	// (Linger -1: backends go back to the pool after each statement, so
	// two sites' sessions take turns on the one backend.)
	p := startPooler(b, Config{MaxIdle: 1, MaxServerBackends: 1, Linger: -1}, s1.Account, s2.Account)
	// What WordPress sets on a shard's MariaDB (whose sql_mode it
	// leaves alone), and one variable more to replay.
	wordpress := []string{"SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'"}
	replayed := append(slices.Clone(wordpress), "SET time_zone = '+00:00'")
	session := func(s site, state []string) *sql.Conn {
		c := conn(b, open(b, p.cfg.Socket, s.User, s.Password, s.Database))
		{
			for _, q := range state {
				if _, err := c.ExecContext(b.Context(), q); err != nil {
					b.Fatal(err)
				}
			}
		}
		return c
	}
	// rows: WordPress's autoloaded options are a few hundred rows.
	const rowsQuery = "SELECT seq, REPEAT('x', 40) FROM seq_1_to_200"
	query := func(b *testing.B, c *sql.Conn, q string) {
		var v int
		if q != rowsQuery {
			if err := c.QueryRowContext(b.Context(), q).Scan(&v); err != nil {
				b.Fatal(err)
			}
			return
		}
		rows, err := c.QueryContext(b.Context(), q)
		if err != nil {
			b.Fatal(err)
		}
		var x sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&v, &x); err != nil {
				b.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil || v != 200 {
			b.Fatal(v, err)
		}
		rows.Close()
	}
	runQuery := func(b *testing.B, q string, conns ...*sql.Conn) {
		cpu0 := processCPU(primary.Process().PID())
		self0 := processCPU(os.Getpid())
		n := 0
		for i := 0; b.Loop(); i++ {
			query(b, conns[i%len(conns)], q)
			n++
		}
		// CPU time per statement of MariaDB and of this process (the
		// pooler and the client): the cost on a busy machine.
		if n > 0 {
			b.ReportMetric(float64((processCPU(primary.Process().PID())-cpu0).Microseconds())/float64(n), "mariadb-µs/op")
			b.ReportMetric(float64((processCPU(os.Getpid())-self0).Microseconds())/float64(n), "self-µs/op")
		}
	}
	run := func(b *testing.B, conns ...*sql.Conn) { runQuery(b, "SELECT 1", conns...) }
	b.Run("direct", func(b *testing.B) {
		db, err := primary.OpenAs(s1.User, s1.Password, s1.Database)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		c := conn(b, db)
		run(b, c)
	})
	b.Run("own", func(b *testing.B) { run(b, session(s1, nil)) })
	b.Run("direct+rows", func(b *testing.B) {
		db, err := primary.OpenAs(s1.User, s1.Password, s1.Database)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		runQuery(b, rowsQuery, conn(b, db))
	})
	b.Run("own+rows", func(b *testing.B) { runQuery(b, rowsQuery, session(s1, nil)) })
	b.Run("lingering", func(b *testing.B) {
		pl := startPooler(b, Config{MaxServerBackends: 1, Linger: 5 * time.Millisecond}, s1.Account)
		c := conn(b, open(b, pl.cfg.Socket, s1.User, s1.Password, s1.Database))
		if _, err := c.ExecContext(b.Context(), "DO 1"); err != nil { // the backend to linger
			b.Fatal(err)
		}
		run(b, c)
		if st := pl.Stats(); st.Reclaimed == 0 {
			b.Fatalf("%+v: no statement found its lingering backend", st)
		}
	})
	b.Run("takeover", func(b *testing.B) { run(b, session(s1, nil), session(s2, nil)) })
	b.Run("takeover+wordpress", func(b *testing.B) { run(b, session(s1, wordpress), session(s2, wordpress)) })
	b.Run("takeover+replay", func(b *testing.B) { run(b, session(s1, replayed), session(s2, replayed)) })
}

// BenchmarkRequest: what a WordPress request asks of the database, one
// request per op: a new connection, the statements wpdb runs on connect
// (two SET NAMES, the read of the sql_mode and its SET), then ten small
// reads, then the connection closed; three sites take turns on one
// backend ("pooler", Config.MaxServerBackends 1, so backends change hands
// between requests) against the same straight to MariaDB ("direct", the
// anchor). Besides the CPU per request of MariaDB and of this process
// (the pooler and the client), it reports the statements MariaDB ran per
// request (questions/op).
func BenchmarkRequest(b *testing.B) {
	sites := []site{newSite(b, 2), newSite(b, 2), newSite(b, 2)}
	accts := make([]Account, len(sites))
	for i, s := range sites {
		accts[i] = s.Account
	}
	p := startPooler(b, Config{MaxServerBackends: 1}, accts...)
	questions := func() int {
		v, err := primary.QueryString(b.Context(), "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	run := func(b *testing.B, socket string) {
		dbs := make([]*sql.DB, len(sites))
		for i, s := range sites {
			dbs[i] = open(b, socket, s.User, s.Password, s.Database)
			dbs[i].SetMaxIdleConns(0) // a new connection per request, as PHP's
		}
		mode := ""
		request := func(db *sql.DB) {
			c, err := db.Conn(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for _, q := range []string{"SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'"} {
				if _, err := c.ExecContext(b.Context(), q); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.QueryRowContext(b.Context(), "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
				b.Fatal(err)
			}
			if _, err := c.ExecContext(b.Context(), "SET SESSION sql_mode='"+mode+"'"); err != nil {
				b.Fatal(err)
			}
			for range 10 {
				var v int
				if err := c.QueryRowContext(b.Context(), "SELECT 1").Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu0 := processCPU(primary.Process().PID())
		self0 := processCPU(os.Getpid())
		q0 := questions()
		n := 0
		for i := 0; b.Loop(); i++ {
			request(dbs[i%len(dbs)])
			n++
		}
		if n > 0 {
			b.ReportMetric(float64(questions()-q0-1)/float64(n), "questions/op")
			b.ReportMetric(float64((processCPU(primary.Process().PID())-cpu0).Microseconds())/float64(n), "mariadb-µs/op")
			b.ReportMetric(float64((processCPU(os.Getpid())-self0).Microseconds())/float64(n), "self-µs/op")
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, primary.Socket()) })
	b.Run("pooler", func(b *testing.B) { run(b, p.cfg.Socket) })
}

// BenchmarkRequestConcurrent: BenchmarkRequest's WordPress request, by
// eight clients at once (two per site, four sites) on two backends
// (Config.MaxServerBackends 2, no lingering), so statements queue at the
// bound and backends change hands between them. Besides the CPU per
// request it reports the backends taken over (COM_CHANGE_USER) per
// request (changed/op) and the statements that queued (queued/op).
func BenchmarkRequestConcurrent(b *testing.B) {
	sites := []site{newSite(b, 4), newSite(b, 4), newSite(b, 4), newSite(b, 4)}
	accts := make([]Account, len(sites))
	for i, s := range sites {
		accts[i] = s.Account
	}
	p := startPooler(b, Config{MaxServerBackends: 2, Linger: -1, QueueWait: time.Minute}, accts...)
	dbs := make([]*sql.DB, len(sites))
	for i, s := range sites {
		dbs[i] = open(b, p.cfg.Socket, s.User, s.Password, s.Database)
		dbs[i].SetMaxIdleConns(0) // a new connection per request, as PHP's
	}
	request := func(db *sql.DB) error {
		c, err := db.Conn(b.Context())
		if err != nil {
			return err
		}
		defer c.Close()
		for _, q := range []string{"SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'"} {
			if _, err := c.ExecContext(b.Context(), q); err != nil {
				return err
			}
		}
		var mode string
		if err := c.QueryRowContext(b.Context(), "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
			return err
		}
		if _, err := c.ExecContext(b.Context(), "SET SESSION sql_mode='"+mode+"'"); err != nil {
			return err
		}
		for range 10 {
			var v int
			if err := c.QueryRowContext(b.Context(), "SELECT 1").Scan(&v); err != nil {
				return err
			}
		}
		return nil
	}
	st0 := p.Stats()
	cpu0 := processCPU(primary.Process().PID())
	self0 := processCPU(os.Getpid())
	var next atomic.Int64
	b.SetParallelism(8 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		db := dbs[int(next.Add(1))%len(dbs)]
		for pb.Next() {
			if err := request(db); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if n := float64(b.N); n > 0 {
		st := p.Stats()
		b.ReportMetric(float64(st.ChangedUser-st0.ChangedUser)/n, "changed/op")
		b.ReportMetric(float64(st.Queued-st0.Queued)/n, "queued/op")
		b.ReportMetric(float64((processCPU(primary.Process().PID())-cpu0).Microseconds())/n, "mariadb-µs/op")
		b.ReportMetric(float64((processCPU(os.Getpid())-self0).Microseconds())/n, "self-µs/op")
	}
}
