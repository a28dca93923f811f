package pitr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
)

// env is a MariaDB server with its binary log on, a repository and a
// shipper's settings.
type env struct {
	t    *testing.T
	srv  *mariadb.Server
	repo *repo.Repo
	cfg  Config
}

func newEnv(t *testing.T) *env {
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
	user, pw, err := s.Account(ctx, "replication")
	if err != nil {
		t.Fatal(err)
	}
	kek, err := repo.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir+"/repo", 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenURL(ctx, "file://"+dir+"/repo?metadata=skip", kek, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &env{t: t, srv: s, repo: r, cfg: Config{
		Addr: fmt.Sprintf("127.0.0.1:%d", s.Port()), User: user, Password: pw, StateDir: dir + "/pitr",
		Repo: func(context.Context) (*repo.Repo, error) { return r, nil }, Host: "shard-test",
		Flush: time.Hour, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}}
}

// site creates a database and its user; it returns a connection pool as
// that user.
func (e *env) site(name string) *sql.DB {
	e.t.Helper()
	if err := e.srv.EnsureDatabase(context.Background(), name, name, "pw-"+name, 20); err != nil {
		e.t.Fatal(err)
	}
	db, err := e.srv.OpenAs(name, "pw-"+name, name)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// start runs a shipper until the test ends (or stop is called).
func (e *env) start(sites ...Site) (sh *Shipper, stop func()) {
	e.t.Helper()
	sh, err := New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	sh.SetSites(sites)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("shipper: %v", err)
			}
		}
	}
	e.t.Cleanup(stop)
	// Running: a flush succeeds.
	deadline := time.Now().Add(time.Minute)
	for {
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := sh.Flush(fctx)
		fcancel()
		if err == nil {
			return sh, stop
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("shipper does not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) pos() string {
	e.t.Helper()
	p, err := e.srv.GTIDPos(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func exec1(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// replay replays site's segments from pos into database target as the
// target's own user.
func (e *env) replay(site Site, target string, from Start, until time.Time, cov Coverage) (*ReplayResult, error) {
	e.t.Helper()
	ctx := context.Background()
	segs, err := Segments(ctx, e.repo, site.Name, site.UID)
	if err != nil {
		e.t.Fatal(err)
	}
	db, err := e.srv.OpenAs(target, "pw-"+target, target)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	return Replay(ctx, conn, target, e.repo, segs, from, until, cov, nil)
}

func cov(s Status) Coverage { return Coverage{Log: s.Log, Since: s.Since, Through: s.Through} }

// start is where a replay from the server's position now starts.
func (e *env) start0(sh *Shipper) Start { return Start{GTID: e.pos(), Log: sh.Log()} }

// content is every table's rows of db, as text, in primary-key (or full)
// order.
func content(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query("SHOW TABLES")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := db.Query("SELECT * FROM `" + tb + "` ORDER BY 1, 2")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if v == nil {
					b.WriteString("NULL|")
				} else {
					fmt.Fprintf(&b, "%q|", v)
				}
				_ = i
			}
			lines = append(lines, b.String())
		}
		rows.Close()
		out[tb] = lines
	}
	return out
}

func sameContent(t *testing.T, want, got map[string][]string) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("tables: want %d, got %d", len(want), len(got))
	}
	for tb, w := range want {
		g := got[tb]
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("table %s differs:\nwant\n%s\ngot\n%s", tb, strings.Join(w, "\n"), strings.Join(g, "\n"))
		}
	}
}

// wpTables are tables with the column types of WordPress core and common
// plugins, and one without a primary key.
var wpTables = []string{
	"SET SESSION sql_mode=''",
	"CREATE TABLE `wp_posts` (`ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT, `post_author` bigint(20) unsigned NOT NULL DEFAULT 0, `post_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00', `post_content` longtext NOT NULL, `post_title` text NOT NULL, `post_status` varchar(20) NOT NULL DEFAULT 'publish', `menu_order` int(11) NOT NULL DEFAULT 0, `comment_count` bigint(20) NOT NULL DEFAULT 0, PRIMARY KEY (`ID`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci",
	"CREATE TABLE `types` (`id` int(11) NOT NULL, `ti` tinyint(4), `tu` tinyint(3) unsigned, `si` smallint(6), `su` smallint(5) unsigned, `mi` mediumint(9), `mu` mediumint(8) unsigned, `ii` int(11), `iu` int(10) unsigned, `bi` bigint(20), `bu` bigint(20) unsigned, `de` decimal(20,6), `fl` float, `db` double, `bt` bit(10), `en` enum('a','b','c'), `st` set('x','y','z'), `dt` datetime(6), `ts` timestamp NULL DEFAULT NULL, `da` date, `tm` time(3), `yr` year, `ch` char(10), `vb` varbinary(50), `bl` longblob, `tx` mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, `l1` varchar(20) CHARACTER SET latin1, `js` json, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE `wp_options` (`option_name` varchar(191) NOT NULL, `option_value` longtext NOT NULL, `autoload` varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (`option_name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
	"CREATE TABLE `nopk` (`a` int, `b` varchar(10), `f` float) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}

var wpWrites = []string{
	"SET SESSION sql_mode=''",
	"SET time_zone='+05:30'",
	"INSERT INTO wp_posts (post_author, post_date, post_content, post_title) VALUES (1, '0000-00-00 00:00:00', 'It''s \"quoted\" \\\\ back\\\\slash\\n and emoji 😀 and \\0 nul', 'Hello 世界')",
	"INSERT INTO wp_posts (ID, post_author, post_date, post_content, post_title) VALUES (18446744073709551615, 18446744073709551614, '2026-12-05 10:42:00', '', '')",
	"INSERT INTO types VALUES (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, -12345678901234.123456, 3.1415927, 2.718281828459045, b'1010101010', 'b', 'x,z', '2026-12-05 10:42:00.123456', '2026-06-01 12:00:00', '0000-00-00', '-838:59:59.000', 2026, 'pad  ', X'00FF0027225C0A', X'DEADBEEF00', 'ünïcödé 😀 ''q''', _latin1 X'636166E9', '{\"a\": [1, 2.5, \"x\"]}')",
	"INSERT INTO types (id, fl, db, ts, tm, yr, bt, en, st) VALUES (2, 1e-38, 1.7976931348623157e308, '1970-01-01 05:30:01', '00:00:00', 0, b'0', NULL, '')",
	"INSERT INTO types (id) VALUES (3)",
	"INSERT INTO wp_options VALUES ('siteurl', 'http://a.example', 'yes'), ('blogname', 'Ä''s blog', 'yes'), ('trail ', 'trailing space key', 'no')",
	"INSERT INTO nopk VALUES (1, 'x', 0.1), (1, 'x', 0.1), (2, NULL, NULL)",
	"UPDATE wp_posts SET post_title = 'Changed ''title'' 😀', comment_count = -5 WHERE ID = 1",
	"UPDATE types SET bu = 9223372036854775808, fl = 0.1, st = 'y', vb = NULL, ts = '2038-01-19 08:44:07' WHERE id = 1",
	"UPDATE wp_options SET option_value = 'v2' WHERE option_name = 'blogname'",
	"UPDATE nopk SET b = 'y' WHERE a = 1 LIMIT 1",
	"UPDATE nopk SET b = 'z' WHERE a = 2",
	"UPDATE nopk SET f = 2.5 WHERE b = 'x'",
	"DELETE FROM nopk WHERE b = 'y'",
	"DELETE FROM wp_options WHERE option_name = 'trail '",
	"DELETE FROM types WHERE id = 3",
	"ALTER TABLE wp_posts ADD COLUMN `guid` varchar(255) NOT NULL DEFAULT '' AFTER `post_title`",
	"UPDATE wp_posts SET guid = CONCAT('http://a.example/?p=', ID)",
	"CREATE TABLE later (id int primary key, t timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, v text)",
	"INSERT INTO later (id, v) VALUES (1, 'made after the create')",
	"TRUNCATE TABLE later",
	"INSERT INTO later (id, v) VALUES (2, 'after truncate')",
	"BEGIN",
	"INSERT INTO wp_posts (ID, post_content, post_title) VALUES (100, 'in a transaction', 't')",
	"UPDATE wp_options SET option_value = 'v3' WHERE option_name = 'siteurl'",
	"COMMIT",
	"BEGIN",
	"INSERT INTO wp_posts (ID, post_content, post_title) VALUES (101, 'rolled back', 'r')",
	"ROLLBACK",
	"SET time_zone=DEFAULT",
	"SET sql_mode=DEFAULT",
}

// TestRoundTrip: every WordPress column type and tricky values (binary,
// emoji, quotes, backslashes, NULL, zero dates, the largest unsigned
// numbers, floats, bits, enums and sets), updates and deletes by primary
// key and without one, DDL and a rolled-back transaction go through the
// log and replay, as the target's own user, into a database of another
// name with the same content.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	src := e.site("wp_src")
	e.site("wp_dst")
	st := Site{Name: "src", UID: "uid-src", DB: "wp_src"}
	sh, _ := e.start(st)
	from := e.start0(sh)
	conn, err := src.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(append([]string{}, wpTables...), wpWrites...) {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	status, err := sh.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.replay(st, "wp_dst", from, status.Through, cov(status))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied == 0 {
		t.Fatal("nothing applied")
	}
	dst, _ := e.srv.OpenAs("wp_dst", "pw-wp_dst", "wp_dst")
	defer dst.Close()
	want := content(t, src)
	if len(want["types"]) != 2 || len(want["nopk"]) != 2 || len(want["later"]) != 1 {
		t.Fatalf("source content unexpected: %v", want)
	}
	sameContent(t, want, content(t, dst))
	// Exact float and timestamp values (text can round).
	var n int
	if err := dst.QueryRow("SELECT COUNT(*) FROM wp_dst.types d JOIN wp_src.types s USING (id)").Scan(&n); err == nil {
		t.Fatal("the site's user reads another database")
	}
	for _, q := range []string{"SELECT HEX(fl), HEX(db), UNIX_TIMESTAMP(ts), HEX(bl), HEX(tx), HEX(l1) FROM types ORDER BY id"} {
		var a, b []string
		for _, db := range []*sql.DB{src, dst} {
			rows, err := db.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var c1, c2, c3, c4, c5, c6 sql.NullString
				rows.Scan(&c1, &c2, &c3, &c4, &c5, &c6)
				line := fmt.Sprint(c1, c2, c3, c4, c5, c6)
				if db == src {
					a = append(a, line)
				} else {
					b = append(b, line)
				}
			}
			rows.Close()
		}
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s:\nsource %v\nreplay %v", q, a, b)
		}
	}
}

// TestSitesNeverCross: two sites' transactions (and one transaction
// writing both, by root) land each in its own site's segments; another
// database's are dropped.
func TestSitesNeverCross(t *testing.T) {
	e := newEnv(t)
	a, b := e.site("wp_a"), e.site("wp_b")
	e.site("wp_other")
	e.site("wp_a2")
	sa, sb := Site{Name: "a", UID: "uid-a", DB: "wp_a"}, Site{Name: "b", UID: "uid-b", DB: "wp_b"}
	exec1(t, a, "CREATE TABLE t (id int primary key, v varchar(20))")
	exec1(t, b, "CREATE TABLE t (id int primary key, v varchar(20))")
	sh, _ := e.start(sa, sb)
	from := e.start0(sh)
	exec1(t, a, "INSERT INTO t VALUES (1, 'a1')")
	exec1(t, b, "INSERT INTO t VALUES (1, 'b1')")
	root, err := e.srv.OpenRoot("mysql")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	exec1(t, root, "CREATE TABLE wp_other.t (id int primary key)", "INSERT INTO wp_other.t VALUES (7)")
	tx, _ := root.Begin()
	for _, q := range []string{"INSERT INTO wp_a.t VALUES (2, 'a2')", "INSERT INTO wp_b.t VALUES (2, 'b2')", "INSERT INTO wp_other.t VALUES (8)"} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	exec1(t, b, "UPDATE t SET v = 'b1x' WHERE id = 1")
	status, err := sh.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, st := range []Site{sa, sb} {
		segs, err := Segments(ctx, e.repo, st.Name, st.UID)
		if err != nil || len(segs) != 1 {
			t.Fatalf("%s: %d segments, %v", st.Name, len(segs), err)
		}
		rc, err := e.repo.OpenStream(ctx, segs[0].Snapshot, StreamName)
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		readTxns(rc, func(tx *Txn) (bool, error) {
			for _, q := range tx.Stmts {
				all = append(all, string(q))
			}
			return true, nil
		})
		rc.Close()
		joined := strings.Join(all, "\n")
		other := map[string]string{"a": "b", "b": "a"}[st.Name]
		// Values are hex: 'a1' is 6131, 'b1' 6231, 'a2' 6132, 'b2' 6232.
		hexOf := func(s string) string { return fmt.Sprintf("%X", s) }
		for _, own := range []string{st.Name + "1", st.Name + "2"} {
			if !strings.Contains(joined, hexOf(own)) {
				t.Errorf("site %s lacks its %s: %s", st.Name, own, joined)
			}
		}
		for _, foreign := range []string{other + "1", other + "2"} {
			if strings.Contains(joined, hexOf(foreign)) {
				t.Errorf("site %s has %s's %s: %s", st.Name, other, foreign, joined)
			}
		}
		if strings.Contains(joined, "wp_") || strings.Contains(joined, "(8)") || strings.Contains(joined, "(7)") {
			t.Errorf("site %s: %s", st.Name, joined)
		}
	}
	// Replaying a's log into a copy of a's starting point gives a's rows.
	exec1(t, root, "CREATE TABLE wp_a2.t (id int primary key, v varchar(20))")
	if _, err := e.replay(sa, "wp_a2", from, status.Through, cov(status)); err != nil {
		t.Fatal(err)
	}
	a2, _ := e.srv.OpenAs("wp_a2", "pw-wp_a2", "wp_a2")
	defer a2.Close()
	sameContent(t, content(t, a), content(t, a2))
}

// TestResume: a shipper stopped and started again (also one that dies
// before shipping what it read) resumes exactly: every transaction once,
// none missing.
func TestResume(t *testing.T) {
	e := newEnv(t)
	a := e.site("wp_a")
	e.site("wp_c")
	sa := Site{Name: "a", UID: "uid-a", DB: "wp_a"}
	exec1(t, a, "CREATE TABLE t (id int primary key auto_increment, v int)")
	sh, stop := e.start(sa)
	from := e.start0(sh)
	exec1(t, a, "INSERT INTO t (v) VALUES (1)", "INSERT INTO t (v) VALUES (2)")
	if _, err := sh.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	exec1(t, a, "INSERT INTO t (v) VALUES (3)")
	stop() // ships what it holds
	exec1(t, a, "INSERT INTO t (v) VALUES (4)", "UPDATE t SET v = v * 10 WHERE id = 2")

	// Second run: reads what was written while stopped; dies before
	// shipping it (no flush at all).
	sh2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sh2.SetSites([]Site{sa})
	sh2.noFinalFlush = true
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- sh2.Run(ctx2) }()
	target, _ := ParsePos(e.pos())
	if err := waitRunning(sh2, target); err != nil {
		t.Fatal(err)
	}
	cancel2()
	<-done2

	// Third run: ships 4 and the update exactly once.
	exec1(t, a, "INSERT INTO t (v) VALUES (5)")
	sh3, _ := e.start(sa)
	status, err := sh3.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	segs, err := Segments(context.Background(), e.repo, sa.Name, sa.UID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var order []string
	for _, sg := range segs {
		rc, _ := e.repo.OpenStream(context.Background(), sg.Snapshot, StreamName)
		readTxns(rc, func(tx *Txn) (bool, error) {
			seen[tx.GTID]++
			order = append(order, tx.GTID)
			return true, nil
		})
		rc.Close()
	}
	if len(seen) != 6 {
		t.Errorf("want 6 transactions, got %d: %v", len(seen), order)
	}
	for g, n := range seen {
		if n != 1 {
			t.Errorf("transaction %s shipped %d times", g, n)
		}
	}
	exec1(t, a) // nothing
	root, _ := e.srv.OpenRoot("mysql")
	defer root.Close()
	exec1(t, root, "CREATE TABLE wp_c.t (id int primary key auto_increment, v int)")
	if _, err := e.replay(sa, "wp_c", from, status.Through, cov(status)); err != nil {
		t.Fatal(err)
	}
	c, _ := e.srv.OpenAs("wp_c", "pw-wp_c", "wp_c")
	defer c.Close()
	sameContent(t, content(t, a), content(t, c))
}

func waitRunning(sh *Shipper, target Pos) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		sh.mu.Lock()
		ok := sh.loaded
		sh.mu.Unlock()
		if ok {
			return sh.waitFor(ctx, target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nextSecond waits until the clock's second changes and returns the new
// time (commit times have a second's resolution).
func nextSecond() time.Time {
	start := time.Now().Unix()
	for time.Now().Unix() == start {
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// TestUntil: a replay up to a time between two writes applies exactly the
// first; coverage short of the time, a gap, and a replaced database are
// clear errors.
func TestUntil(t *testing.T) {
	e := newEnv(t)
	a := e.site("wp_a")
	e.site("wp_c")
	e.site("wp_d")
	sa := Site{Name: "a", UID: "uid-a", DB: "wp_a"}
	exec1(t, a, "CREATE TABLE t (id int primary key, v varchar(10))")
	root, _ := e.srv.OpenRoot("mysql")
	defer root.Close()
	exec1(t, root, "CREATE TABLE wp_c.t (id int primary key, v varchar(10))", "CREATE TABLE wp_d.t (id int primary key, v varchar(10))")
	sh, stop := e.start(sa)
	from := e.start0(sh)
	nextSecond()
	exec1(t, a, "INSERT INTO t VALUES (1, 'A')")
	at := nextSecond()
	nextSecond()
	exec1(t, a, "INSERT INTO t VALUES (2, 'B')")
	status, err := sh.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cv := cov(status)
	res, err := e.replay(sa, "wp_c", from, at, cv)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 {
		t.Errorf("applied %d", res.Applied)
	}
	c, _ := e.srv.OpenAs("wp_c", "pw-wp_c", "wp_c")
	defer c.Close()
	if got := content(t, c)["t"]; len(got) != 1 || !strings.Contains(got[0], `"A"`) {
		t.Errorf("restored at %s: %v", at, got)
	}
	// The segments prove their own coverage too.
	segs, _ := Segments(context.Background(), e.repo, sa.Name, sa.UID)
	if got := CoverageOf(segs, from); got.Since != status.Since || got.Through.Before(at) {
		t.Errorf("CoverageOf = %+v", got)
	}
	// A flush that marks the site proves coverage from the repository
	// alone even when the site wrote nothing since.
	nextSecond()
	marked, err := sh.Flush(context.Background(), sa)
	if err != nil {
		t.Fatal(err)
	}
	segs, _ = Segments(context.Background(), e.repo, sa.Name, sa.UID)
	if got := CoverageOf(segs, from); !got.Through.Equal(marked.Through) || !marked.Through.After(status.Through) {
		t.Errorf("CoverageOf after a mark = %+v, want through %s", got, marked.Through)
	}
	if last := segs[len(segs)-1].Meta; last.Txns != 0 || last.End != marked.Pos {
		t.Errorf("the mark is not the last segment: %+v", last)
	}
	if _, err := e.replay(sa, "wp_d", from, status.Through.Add(time.Hour), cv); !errors.Is(err, ErrNotCovered) {
		t.Errorf("beyond coverage: %v", err)
	}
	if _, err := e.replay(sa, "wp_d", Start{Log: from.Log}, at, cv); !errors.Is(err, ErrNoPosition) {
		t.Errorf("no position: %v", err)
	}
	// The state is lost: the log starts again later, a gap.
	stop()
	exec1(t, a, "INSERT INTO t VALUES (3, 'C')")
	if err := os.RemoveAll(e.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	sh2, _ := e.start(sa)
	exec1(t, a, "INSERT INTO t VALUES (4, 'D')")
	st2, err := sh2.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.replay(sa, "wp_d", from, st2.Through, cov(st2)); !errors.Is(err, ErrGap) {
		t.Errorf("across a gap: %v", err)
	}
	// A database replaced by root (an in-place restore's swap) is a
	// barrier.
	exec1(t, root, "CREATE DATABASE wp_a_rs", "CREATE TABLE wp_a_rs.t (id int primary key, v varchar(10))",
		"RENAME TABLE `wp_a`.`t` TO `wp_a_rs`.`t_old`, `wp_a_rs`.`t` TO `wp_a`.`t`")
	exec1(t, a, "INSERT INTO t VALUES (5, 'E')")
	st3, err := sh2.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, root, "DELETE FROM wp_d.t")
	if _, err := e.replay(sa, "wp_d", Start{GTID: st2.Since, Log: st2.Log}, st3.Through, cov(st3)); !errors.Is(err, ErrBarrier) {
		t.Errorf("across a replaced database: %v", err)
	}
}
