package sqlscan

import (
	"slices"
	"strings"
	"testing"
)

// WordPress's own queries (wp-includes: WP_Query, options, meta, terms,
// comments, search) must stay reads.
var wordpressReads = []string{
	"SELECT option_name, option_value FROM wp_options WHERE autoload = 'yes'",
	"SELECT option_name, option_value FROM wp_options WHERE autoload IN ( 'yes', 'on', 'auto-on', 'auto' )",
	"SELECT option_value FROM wp_options WHERE option_name = 'siteurl' LIMIT 1",
	"SELECT SQL_CALC_FOUND_ROWS  wp_posts.ID\n\t\t\t\t\t FROM wp_posts \n\t\t\t\t\t WHERE 1=1  AND ((wp_posts.post_type = 'post' AND (wp_posts.post_status = 'publish'))) \n\t\t\t\t\t \n\t\t\t\t\t ORDER BY wp_posts.post_date DESC\n\t\t\t\t\t LIMIT 0, 10",
	"SELECT post_id, meta_key, meta_value FROM wp_postmeta WHERE post_id IN (1,2,3) ORDER BY meta_id ASC",
	"SELECT user_id, meta_key, meta_value FROM wp_usermeta WHERE user_id IN (1) ORDER BY umeta_id ASC",
	"SELECT  t.*, tt.*, tr.object_id FROM wp_terms AS t  INNER JOIN wp_term_taxonomy AS tt ON t.term_id = tt.term_id INNER JOIN wp_term_relationships AS tr ON tr.term_taxonomy_id = tt.term_taxonomy_id WHERE tt.taxonomy IN ('category', 'post_tag', 'post_format') AND tr.object_id IN (1) ORDER BY t.name ASC",
	"SELECT wp_comments.comment_ID FROM wp_comments  WHERE ( comment_approved = '1' ) AND  comment_post_ID = 1 AND comment_parent = 0  ORDER BY wp_comments.comment_date_gmt ASC, wp_comments.comment_ID ASC",
	"SELECT COUNT(*) FROM wp_comments WHERE ( comment_approved = '1' ) AND comment_post_ID = 1",
	"SELECT comment_approved, COUNT( * ) AS total FROM wp_comments  GROUP BY comment_approved",
	`SELECT SQL_CALC_FOUND_ROWS  wp_posts.ID FROM wp_posts  WHERE 1=1  AND (((wp_posts.post_title LIKE '{abc}hello@example.com; DROP TABLE x -- /* \' " {abc}') OR (wp_posts.post_excerpt LIKE '{abc}@x{abc}') OR (wp_posts.post_content LIKE '%GET_LOCK(''a'', 1) #%')))  AND wp_posts.post_type IN ('post', 'page', 'attachment') ORDER BY wp_posts.post_title LIKE '{abc}hello{abc}' DESC, wp_posts.post_date DESC LIMIT 0, 10`,
	"SELECT YEAR(post_date) AS `year`, MONTH(post_date) AS `month`, count(ID) as posts FROM wp_posts  WHERE post_type = 'post' AND post_status = 'publish' GROUP BY YEAR(post_date), MONTH(post_date) ORDER BY post_date DESC",
	"SELECT DISTINCT YEAR( post_date ) AS year, MONTH( post_date ) AS month FROM wp_posts WHERE post_type = 'attachment' ORDER BY post_date DESC",
	"SELECT DATE_FORMAT(post_date, '%Y-%m') AS d, LOWER(CONCAT(post_name, '-', ID)) FROM wp_posts",
	"SELECT * FROM wp_users WHERE user_login = 'admin' LIMIT 1",
	"SELECT MAX(post_modified_gmt) FROM wp_posts WHERE post_status = 'publish'",
	"SELECT autoload FROM wp_options WHERE option_name = 'x' LIMIT 1",
	"SELECT t.term_id FROM wp_terms AS t INNER JOIN wp_term_taxonomy AS tt ON t.term_id = tt.term_id WHERE tt.taxonomy IN ('category') AND t.name = 'Uncategorized' ORDER BY t.name ASC",
	"SELECT ID FROM wp_posts WHERE post_name = 'hello-world' AND post_type IN ('post','attachment') /* a comment with GET_LOCK( and @x */",
	"SELECT 1 -- GET_LOCK(\n",
	"SELECT 1 # @x\n",
	"SELECT `GET_LOCK` FROM t", // a column named like the function
	"(SELECT a FROM t) UNION (SELECT b FROM u) ORDER BY 1",
	"WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n < 5) SELECT n FROM c",
	"WITH c AS (SELECT 1 AS n), d AS (SELECT 2) SELECT COUNT(*) AS x FROM c, d",
	"select id from wp_posts where post_title like '%--%' and post_content like '%/*%'",
	"SELECT CAST(meta_value AS SIGNED) AS v, CAST(x AS DECIMAL(10,2)), CONVERT(y, CHAR(10)) FROM wp_postmeta",
	"SELECT * FROM t FORCE INDEX (PRIMARY) WHERE a IN (SELECT b FROM u) AND EXISTS (SELECT 1)",
	"SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t WINDOW w AS (ORDER BY c)",
	"SELECT \"double \"\" quoted\", 'it''s' FROM t",
	"SELECT @@SESSION.sql_mode IS NULL", // placeholder overwritten below
	"SELECT SUM(x) FROM t -- comment",
	"SELECT MATCH (a) AGAINST ('x') FROM t WHERE MATCH (a) AGAINST ('x' IN BOOLEAN MODE)",
	"VALUES (1), (2)",
	"SELECT 'a\\'; GET_LOCK(1,2); -- ' FROM t",
}

func init() {
	// @@ reads are not replica reads (read_only, gtid positions differ).
	wordpressReads = slices.DeleteFunc(wordpressReads, func(q string) bool { return strings.Contains(q, "@@") })
}

func TestWordPressReads(t *testing.T) {
	for _, q := range wordpressReads {
		st := Scan(q)
		if strings.Contains(q, `\`) {
			// Not knowing the sql_mode, Scan is careful; WordPress
			// escapes with backslashes under the default sql_mode.
			if st.Read || st.Pin != PinBackslash {
				t.Errorf("%q: %+v", q, st)
			}
			st = ScanMode(q, false)
		}
		if st.Kind != Select || !st.Read || st.Pin != "" || st.Sets != nil {
			t.Errorf("%q: %+v, want a read", q, st)
		}
		if want := strings.Contains(q, "SQL_CALC_FOUND_ROWS"); st.HoldNext != want {
			t.Errorf("%q: HoldNext %v", q, st.HoldNext)
		}
	}
}

func TestNotRead(t *testing.T) {
	for _, q := range []string{
		"SELECT * FROM t FOR UPDATE",
		"SELECT * FROM t WHERE a = 1 LOCK IN SHARE MODE",
		"SELECT * FROM t FOR SHARE",
		"SELECT a INTO OUTFILE '/tmp/x' FROM t",
		"SELECT a FROM t INTO DUMPFILE '/tmp/x'",
		"SELECT a, b INTO x, y FROM t",
		"SELECT LAST_INSERT_ID()",
		"SELECT FOUND_ROWS()",
		"select found_rows()",
		"SELECT ROW_COUNT()",
		"SELECT CONNECTION_ID()",
		"SELECT NEXTVAL(s)",
		"SELECT LASTVAL(s)",
		"SELECT SETVAL(s, 10)",
		"SELECT NEXT VALUE FOR s",
		"SELECT PREVIOUS VALUE FOR s",
		"SELECT MASTER_POS_WAIT('f', 4)",
		"SELECT MASTER_GTID_WAIT('0-1-1')",
		"SELECT SLEEP(1)",
		"SELECT BENCHMARK(10, MD5('x'))",
		"SELECT LOAD_FILE('/etc/passwd')",
		"SELECT IS_FREE_LOCK('x')",
		"SELECT @@read_only",
		"SELECT @@SESSION.sql_mode",
		"SELECT /*! FOUND_ROWS() */",
		"SELECT /*!50001 FOUND_ROWS() */",
		"SELECT /*M!100500 FOUND_ROWS() */",
		"SELECT 1 /*!40000 FOR UPDATE */",
		"WITH c AS (SELECT 1) SELECT * FROM c FOR UPDATE",
		"(SELECT LAST_INSERT_ID())",
	} {
		st := Scan(q)
		if st.Read || st.Pin != "" {
			t.Errorf("%q: %+v, want not a read, not pinned", q, st)
		}
	}
}

func TestPin(t *testing.T) {
	for _, c := range []struct{ q, pin string }{
		{"SET @x = 1", PinUserVariable},
		{"SET @x := 1, sql_mode = ''", PinUserVariable},
		{"SELECT @x := 1", PinUserVariable},
		{"SELECT @x", PinUserVariable},
		{"SELECT * FROM t WHERE a = @`x`", PinUserVariable},
		{"INSERT INTO t VALUES (@x)", PinUserVariable},
		{"SELECT a INTO @x FROM t", PinUserVariable},
		{"SELECT /*! @x */ 1", PinUserVariable},
		{"SELECT GET_LOCK('a', 10)", PinLock},
		{"select get_lock('a', 10)", PinLock},
		{"DO GET_LOCK('a', 10)", PinLock},
		{"SELECT RELEASE_LOCK('a')", PinLock},
		{"DO RELEASE_ALL_LOCKS()", PinLock},
		{"SELECT IS_USED_LOCK('a')", PinLock},
		{"SELECT GET_LOCK ('a', 10)", PinLock},
		{"UPDATE seq SET id = LAST_INSERT_ID(id + 1)", PinLastInsertIDSet},
		{"LOCK TABLES t WRITE", PinLockTables},
		{"lock table t read", PinLockTables},
		{"UNLOCK TABLES", PinUnlockTables},
		{"FLUSH TABLES WITH READ LOCK", PinFlushLock},
		{"BACKUP LOCK t", PinBackupLock},
		{"CREATE TEMPORARY TABLE t (a int)", PinTemporaryTable},
		{"CREATE OR REPLACE TEMPORARY TABLE t (a int)", PinTemporaryTable},
		{"create temporary table if not exists t select 1", PinTemporaryTable},
		{"DROP TEMPORARY TABLE t", PinTemporaryTable},
		{"/*!40101 CREATE TEMPORARY TABLE t (a int) */", PinTemporaryTable},
		{"PREPARE s FROM 'SELECT 1'", PinPrepared},
		{"EXECUTE s", PinPrepared},
		{"EXECUTE IMMEDIATE 'SELECT 1'", PinPrepared},
		{"DEALLOCATE PREPARE s", PinPrepared},
		{"DROP PREPARE s", PinPrepared},
		{"HANDLER t OPEN", PinHandler},
		{"XA START 'x'", PinXA},
		{"XA END 'x'", PinXA},
		{"CALL p()", PinCall},
		{"SELECT my_func(1) FROM t", PinStoredFunction},
		{"SELECT db.my_func(1)", PinStoredFunction},
		{"SELECT `my func`(1)", PinStoredFunction},
		{"INSERT INTO t (a) VALUES (my_func(1))", PinStoredFunction},
		{"UPDATE t SET a = f(1)", PinStoredFunction},
		{"BEGIN NOT ATOMIC SELECT 1; END", PinCompound},
		{"IF 1 THEN SELECT 1; END IF", PinCompound},
		{"COMMIT AND CHAIN", PinChain},
		{"ROLLBACK RELEASE", PinChain},
		{"SET autocommit = 0", PinAutocommitOff},
		{"SET autocommit=OFF", PinAutocommitOff},
		{"SET SESSION autocommit = 'off'", PinAutocommitOff},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", PinSetTransaction},
		{"SET SESSION TRANSACTION READ ONLY", PinSetTransaction},
		{"SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')", PinSetExpression},
		{"SET sql_mode = (SELECT 'x')", PinSetExpression},
		{"SET time_zone = @@global.time_zone", PinSetExpression},
		{"SET wait_timeout = 1 + 1", PinSetExpression},
		{"SET NAMES CONCAT('utf8', 'mb4')", PinSetExpression},
		{"SET insert_id = 5", PinOneShot},
		{"SET GLOBAL max_connections = 1, sql_mode = ''", PinSetGlobalMixed},
		{"SET PASSWORD = PASSWORD('x')", PinSetPassword},
		{"SET PASSWORD FOR 'a'@'b' = 'x'", PinSetPassword},
		{"SET ROLE r", PinSetRole},
		{"SET DEFAULT ROLE r", PinSetRole},
		{"SET STATEMENT max_statement_time=1 FOR SELECT GET_LOCK('a', 1)", PinLock},
		{"SET STATEMENT max_statement_time=@x FOR SELECT 1", PinUserVariable},
		{"SET sql_mode=''; SELECT 1", PinMulti},
		{"SET STATEMENT max_statement_time=1 FOR SET sql_mode=''", PinSetStatementSet},
		{"SET @@session.insert_id = 5", PinOneShot},
		{"SET @@0 = 0", PinSetUntrackable},
		{"SET `session` = ''", PinSetUntrackable},
		{"SELECT 1; SELECT GET_LOCK('a', 1)", PinLock},
		{"SET x.y = 1", PinSetUntrackable},
		{"SET sql_mode = 'a\\'b'", PinBackslash},
	} {
		st := Scan(c.q)
		if st.Pin != c.pin || st.Read || st.Sets != nil {
			t.Errorf("%q: %+v, want pin %q", c.q, st, c.pin)
		}
	}
}

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		q    string
		kind Kind
		db   string
	}{
		{"BEGIN", Begin, ""},
		{"begin work", Begin, ""},
		{"START TRANSACTION", Begin, ""},
		{"START TRANSACTION READ ONLY", Begin, ""},
		{"START TRANSACTION WITH CONSISTENT SNAPSHOT", Begin, ""},
		{"COMMIT", Commit, ""},
		{"COMMIT WORK", Commit, ""},
		{"COMMIT AND NO CHAIN NO RELEASE", Commit, ""},
		{"ROLLBACK", Rollback, ""},
		{"ROLLBACK TO SAVEPOINT a", Other, ""},
		{"ROLLBACK WORK TO a", Other, ""},
		{"SAVEPOINT a", Other, ""},
		{"SHOW TABLES", Show, ""},
		{"DESCRIBE wp_posts", Show, ""},
		{"DESC wp_posts", Show, ""},
		{"EXPLAIN SELECT 1", Show, ""},
		{"HELP 'x'", Show, ""},
		{"USE wp_a", Use, "wp_a"},
		{"USE `wp a`", Use, "wp a"},
		{"INSERT INTO wp_posts (post_title) VALUES ('x')", Other, ""},
		{"INSERT INTO `wp_options` (`option_name`, `option_value`, `autoload`) VALUES ('a', 'b', 'yes') ON DUPLICATE KEY UPDATE `option_name` = VALUES(`option_name`), `option_value` = VALUES(`option_value`)", Other, ""},
		{"REPLACE INTO t (a) VALUES (REPLACE('a', 'b', 'c'))", Other, ""},
		{"INSERT IGNORE db.t (a) SELECT 1", Other, ""},
		{"UPDATE wp_options SET option_value = 'x' WHERE option_name = 'y'", Other, ""},
		{"DELETE FROM wp_options WHERE option_name LIKE '\\_transient\\_%'", Other, ""},
		{"CREATE TABLE t (a int, KEY k (a))", Other, ""},
		{"CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", Other, ""},
		{"SET GLOBAL max_connections = 1", Other, ""},
		{"SET @@global.max_connections = 1", Other, ""},
		{"SET STATEMENT max_statement_time=1 FOR SELECT 1", Select, ""},
		{"SET STATEMENT max_statement_time=1 FOR UPDATE t SET a = 1", Other, ""},
		{"WITH c AS (SELECT 1) UPDATE t SET a = 1", Other, ""},
		{"", Other, ""},
		{"   -- nothing\n", Other, ""},
		{"SELECT 'unterminated", Other, ""},
	} {
		st := Scan(c.q)
		if st.Kind != c.kind || st.DB != c.db {
			t.Errorf("%q: %+v, want kind %d db %q", c.q, st, c.kind, c.db)
		}
		if st.Pin != "" {
			t.Errorf("%q: pinned %q", c.q, st.Pin)
		}
		if st.Read != (c.kind == Select) {
			t.Errorf("%q: Read %v", c.q, st.Read)
		}
	}
}

func TestSets(t *testing.T) {
	const utf8mb4 = "'utf8mb4' COLLATE 'utf8mb4_general_ci'"
	for _, c := range []struct {
		q    string
		want []Assignment
	}{
		{"SET NAMES utf8mb4", []Assignment{{"names", utf8mb4}}},
		{"SET NAMES 'utf8mb4'", []Assignment{{"names", utf8mb4}}},
		{"set names \"UTF8MB4\"", []Assignment{{"names", utf8mb4}}},
		{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'", []Assignment{{"names", "'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'"}}},
		{"SET NAMES utf8mb4 COLLATE DEFAULT", []Assignment{{"names", utf8mb4}}},
		{"SET NAMES DEFAULT", []Assignment{{"names", "DEFAULT"}}},
		{"SET CHARACTER SET latin1", []Assignment{{"character set", "'latin1'"}}},
		{"SET CHARSET 'utf8mb4'", []Assignment{{"character set", "'utf8mb4'"}}},
		{"SET NAMES utf8mb4, sql_mode=''", []Assignment{{"names", utf8mb4}, {"sql_mode", "''"}}},
		{"SET SESSION sql_mode='NO_ZERO_DATE,STRICT_TRANS_TABLES'", []Assignment{{"sql_mode", "'NO_ZERO_DATE,STRICT_TRANS_TABLES'"}}},
		{"SET @@session.time_zone = '+00:00'", []Assignment{{"time_zone", "'+00:00'"}}},
		{"SET @@SESSION.TIME_ZONE = '+00:00'", []Assignment{{"time_zone", "'+00:00'"}}},
		{"SET @@local.wait_timeout = 10", []Assignment{{"wait_timeout", "10"}}},
		{"SET LOCAL wait_timeout = -1", []Assignment{{"wait_timeout", "-1"}}},
		{"SET @@group_concat_max_len := 1e6", []Assignment{{"group_concat_max_len", "1e6"}}},
		{"SET `sql_mode` = DEFAULT", []Assignment{{"sql_mode", "DEFAULT"}}},
		{"SET autocommit = 1", []Assignment{{"autocommit", "1"}}},
		{"SET autocommit = ON", []Assignment{{"autocommit", "1"}}},
		{"SET big_tables = ON, foreign_key_checks = 0", []Assignment{{"big_tables", "on"}, {"foreign_key_checks", "0"}}},
		{"SET character_set_results = NULL", []Assignment{{"character_set_results", "null"}}},
		{"SET collation_connection = utf8mb4_bin", []Assignment{{"collation_connection", "'utf8mb4_bin'"}}},
		{"/*!40101 SET NAMES utf8mb4 */", []Assignment{{"names", utf8mb4}}},
		{"SET sql_mode = ''; SET time_zone = 'UTC';", []Assignment{{"sql_mode", "''"}, {"time_zone", "'UTC'"}}},
		// The string ends in the same place with or without backslash
		// escapes; replayed verbatim under the same sql_mode it means
		// the same.
		{"SET sql_mode = 'a\\\\b'", []Assignment{{"sql_mode", "'a\\\\b'"}}},
	} {
		st := Scan(c.q)
		if st.Kind != Set || st.Pin != "" || st.Read || !slices.Equal(st.Sets, c.want) {
			t.Errorf("%q: %+v, want %v", c.q, st, c.want)
		}
	}
}

func TestState(t *testing.T) {
	apply := func(s *State, qs ...string) {
		t.Helper()
		for _, q := range qs {
			st := Scan(q)
			if st.Sets == nil {
				t.Fatalf("%q: %+v", q, st)
			}
			s.Apply(st.Sets)
		}
	}
	fresh := NewState(0)
	if r := fresh.Replay(fresh); r != nil {
		t.Fatalf("fresh replay: %q", r)
	}
	if !NewState(45).Equal(NewState(45)) || NewState(45).Equal(NewState(224)) || NewState(45).Equal(fresh) {
		t.Fatal("NewState equality")
	}
	// SET NAMES utf8mb4 is what a utf8mb4_general_ci handshake gives.
	s := NewState(0)
	apply(&s, "SET NAMES utf8mb4")
	if !s.Equal(NewState(45)) {
		t.Fatalf("%v != %v", s, NewState(45))
	}
	if got := NewState(45).Replay(NewState(224)); !slices.Equal(got, []string{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'"}) {
		t.Fatalf("handshake replay: %q", got)
	}
	if got := fresh.Replay(NewState(45)); !slices.Equal(got, []string{"SET character_set_client=DEFAULT, character_set_results=DEFAULT, collation_connection=DEFAULT"}) {
		t.Fatalf("back to default: %q", got)
	}
	// Later assignments replace earlier ones; NAMES supersedes the
	// character_set_* variables.
	a := NewState(224)
	apply(&a, "SET sql_mode = 'A'", "SET time_zone = '+00:00'", "SET character_set_results = NULL",
		"SET sql_mode = 'B'", "SET NAMES latin1", "SET character_set_client = utf8mb4", "SET wait_timeout = 5", "SET wait_timeout = DEFAULT")
	want := []Assignment{{"time_zone", "'+00:00'"}, {"sql_mode", "'B'"}, {"names", "'latin1' COLLATE 'latin1_swedish_ci'"}, {"character_set_client", "'utf8mb4'"}}
	if !slices.Equal(a.vars, want) {
		t.Fatalf("state %v, want %v", a.vars, want)
	}
	b := NewState(0)
	apply(&b, "SET NAMES latin1, character_set_client = 'UTF8MB4'", "SET time_zone='+00:00', sql_mode='B'")
	if !a.Equal(b) || !b.Equal(a) {
		t.Fatalf("%v != %v", a, b)
	}
	if r := a.Replay(b); r != nil {
		t.Fatalf("equal replay: %q", r)
	}
	got := a.Replay(fresh)
	if !slices.Equal(got, []string{"SET NAMES 'latin1' COLLATE 'latin1_swedish_ci', character_set_client='utf8mb4', sql_mode='B', time_zone='+00:00'"}) {
		t.Fatalf("replay: %q", got)
	}
	c := NewState(224)
	apply(&c, "SET wait_timeout = 10", "SET time_zone='+00:00'")
	got = a.Replay(c)
	if !slices.Equal(got, []string{"SET NAMES 'latin1' COLLATE 'latin1_swedish_ci', character_set_client='utf8mb4', sql_mode='B', wait_timeout=DEFAULT"}) {
		t.Fatalf("replay: %q", got)
	}
	// A partial group after a shared prefix replays only the rest.
	d := NewState(224)
	apply(&d, "SET character_set_results = binary")
	if got := d.Replay(NewState(224)); !slices.Equal(got, []string{"SET character_set_results='binary'"}) {
		t.Fatalf("suffix replay: %q", got)
	}
	// From a different group to one without NAMES: reset first.
	e := NewState(0)
	apply(&e, "SET character_set_results = binary")
	if got := e.Replay(NewState(224)); !slices.Equal(got, []string{"SET character_set_client=DEFAULT, collation_connection=DEFAULT, character_set_results='binary'"}) {
		t.Fatalf("reset replay: %q", got)
	}
	// NAMES DEFAULT takes the global character set's default collation,
	// not the global collation: not the server's default state.
	f := NewState(45)
	apply(&f, "SET NAMES DEFAULT")
	if f.Equal(fresh) || !slices.Equal(f.vars, []Assignment{{"names", "DEFAULT"}}) {
		t.Fatalf("NAMES DEFAULT: %v", f)
	}
	// Resets to the global values where nothing else is set vanish.
	g := NewState(45)
	apply(&g, "SET character_set_client=DEFAULT, character_set_results=DEFAULT, collation_connection=DEFAULT")
	if !g.Equal(fresh) {
		t.Fatalf("reset: %v", g)
	}
}

// Replay's statements scan as trackable SETs that rebuild the state.
func checkReplay(t testing.TB, s, from State) {
	out := s.Replay(from)
	if s.Equal(from) != (out == nil) {
		t.Fatalf("Equal %v but replay %q", s.Equal(from), out)
	}
	got := State{vars: slices.Clone(from.vars)}
	for _, q := range out {
		st := Scan(q)
		if st.Kind != Set || st.Sets == nil || st.Pin != "" {
			t.Fatalf("replay %q scans as %+v", q, st)
		}
		got.Apply(st.Sets)
	}
	if !got.Equal(s) {
		t.Fatalf("replay %q of %v from %v gives %v", out, s.vars, from.vars, got.vars)
	}
}

func FuzzScan(f *testing.F) {
	for _, q := range wordpressReads {
		f.Add(q)
	}
	for _, q := range []string{"SET NAMES utf8mb4, sql_mode=''", "SET @@session.time_zone='+00:00'", "SET /*!40101 character_set_client = latin1 */",
		"SET STATEMENT a=1 FOR SET b=2", "/*M!100500 SET x=1*/", "SET x = 'a''b', y = \"c\"\"d\", z = `e`", "WITH a (b) AS (", "SET"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		st := Scan(q)
		if st.Read && (st.Kind != Select || st.Pin != "") {
			t.Fatalf("%q: %+v", q, st)
		}
		if st.Sets != nil && (st.Kind != Set || st.Pin != "") {
			t.Fatalf("%q: %+v", q, st)
		}
		if st.Sets == nil {
			return
		}
		s := NewState(uint8(len(q)))
		s.Apply(st.Sets)
		checkReplay(t, s, NewState(0))
		checkReplay(t, s, NewState(45))
		checkReplay(t, NewState(8), s)
		checkReplay(t, NewState(0), s)
		checkReplay(t, s, s)
	})
}

// TestStateCollation: the collation a connection can be logged in with to
// have a state's character-set group (WordPress's SET NAMES … COLLATE).
func TestStateCollation(t *testing.T) {
	for _, tc := range []struct {
		hs   uint8
		sets []string
		id   uint8
		ok   bool
	}{
		{45, nil, 45, true},
		{45, []string{"SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'"}, 246, true},
		{45, []string{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_520_ci'", "SET time_zone = '+00:00'"}, 246, true},
		{45, []string{"SET NAMES latin1"}, 8, true},
		{45, []string{"SET NAMES utf8mb4", "SET character_set_results = NULL"}, 0, false},
		{0, nil, 0, false},
	} {
		s := NewState(tc.hs)
		for _, q := range tc.sets {
			s.Apply(Scan(q).Sets)
		}
		id, ok := s.Collation()
		if id != tc.id || ok != tc.ok {
			t.Errorf("%d %q: %d %v, want %d %v", tc.hs, tc.sets, id, ok, tc.id, tc.ok)
			continue
		}
		if ok {
			// Only the other variables are left to replay.
			g := NewState(id)
			var rest []string
			for _, a := range s.vars {
				if !inGroup(a.Name) {
					rest = append(rest, a.sql())
				}
			}
			got := s.Replay(g)
			if len(rest) == 0 && got != nil || len(rest) > 0 && !slices.Equal(got, []string{"SET " + strings.Join(rest, ", ")}) {
				t.Errorf("%q: replay on a connection of collation %d: %q", tc.sets, id, got)
			}
		}
	}
}

// TestLiteral: a value the pooler reads from the server is recorded as the
// same SET from a client (WordPress's sql_mode) would be.
func TestLiteral(t *testing.T) {
	const mode = "ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
	a, b := NewState(45), NewState(45)
	a.Apply([]Assignment{Literal("SQL_MODE", mode)})
	b.Apply(Scan("SET SESSION sql_mode='" + mode + "'").Sets)
	if !a.Same(b) || a.Replay(b) != nil {
		t.Fatalf("%v != %v", a, b)
	}
	if got := Literal("x", `it's \ ok`).Value; got != `'it''s \\ ok'` {
		t.Fatalf("escaped: %s", got)
	}
}
