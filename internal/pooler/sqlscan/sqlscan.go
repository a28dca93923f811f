// Package sqlscan classifies the SQL text of one COM_QUERY for the pooler:
// may it run on a read replica, does it change tracked session state (SET
// of session variables, SET NAMES), does it make state live on its
// connection so the session must stay pinned to that backend, and must
// the backend be kept for the client's next statement. It also keeps a
// session's tracked state and writes the SET statements that replay it.
//
// It is a small hand-written tokenizer rather than a SQL parser (vitess'
// or TiDB's parsers know MySQL's grammar but not MariaDB's, are large, and
// the pooler needs only a handful of facts per statement). It is
// conservative: whatever it does not understand is neither a read nor
// trackable, and pins when it could carry state. The rules, the pin
// reasons and the read exclusions are listed in docs/database.md
// ("Statement classification"). The built-in function names and the
// collation table come from MariaDB 10.11 itself (tables.go; a test
// checks the collations against the running server).
package sqlscan

import "sync"

// Kind is the kind of statement.
type Kind int

const (
	Other    Kind = iota // writes, DDL, anything else: primary, no tracked effect
	Select               // SELECT / WITH … SELECT / (SELECT …) / VALUES / TABLE
	Set                  // SET …
	Use                  // USE db
	Begin                // BEGIN / START TRANSACTION / XA START
	Commit               // COMMIT
	Rollback             // ROLLBACK (not ROLLBACK TO SAVEPOINT)
	Show                 // SHOW / DESCRIBE / DESC / EXPLAIN / HELP
)

// Stmt is what the pooler needs to know about one statement.
type Stmt struct {
	Kind Kind
	// Read: the statement may run on a replica: a SELECT without locking
	// clauses (FOR UPDATE, LOCK IN SHARE MODE), INTO, user variables,
	// @@variables, connection-bound functions (GET_LOCK, LAST_INSERT_ID,
	// FOUND_ROWS, ROW_COUNT, CONNECTION_ID, NEXTVAL…) or calls of
	// functions that are not built-ins, and not pinned.
	Read bool
	// Sets are the assignments of a SET statement whose every assignment
	// is trackable (a session variable or NAMES / CHARACTER SET set to a
	// literal, DEFAULT or a plain name); nil when Kind != Set or when any
	// part is not (then Pin says why).
	Sets []Assignment
	// DB is the database of a USE statement.
	DB string
	// Pin, if not empty, says why the client's session must stay on its
	// backend connection for the rest of its life ("user variable",
	// "LOCK TABLES", "GET_LOCK", "temporary table", "prepared statement",
	// "autocommit=0", "SET with an expression", …).
	Pin string
	// HoldNext: keep this backend for the client's next statement (after
	// SQL_CALC_FOUND_ROWS, whose count FOUND_ROWS() reads there).
	HoldNext bool
}

// Assignment is one tracked session assignment.
type Assignment struct {
	// Name is the canonical lower-case variable name ("sql_mode",
	// "time_zone"), or "names" for SET NAMES and "character set" for SET
	// CHARACTER SET.
	Name string
	// Value is the SQL text that sets it again (e.g. "'utf8mb4' COLLATE
	// 'utf8mb4_unicode_ci'" for names, "'+00:00'"); "DEFAULT" resets it.
	Value string
}

// Scan classifies query (the text of one COM_QUERY, which may hold
// several statements when the client enabled multi-statements).
func Scan(query string) Stmt {
	buf := tokenBufs.Get().(*[]token)
	defer putTokens(buf)
	r := lex(query, true, *buf)
	*buf = r.toks
	st := scanTokens(r)
	if r.backslash {
		// A string literal holds a backslash: where it ends depends on
		// sql_mode NO_BACKSLASH_ESCAPES, which this package does not
		// know. Scan it both ways and keep the more careful answer.
		r = lex(query, false, *buf)
		*buf = r.toks
		st = merge(st, scanTokens(r))
	}
	return st
}

// tokenBufs holds token slices for lex to reuse (a Stmt never refers to
// its tokens, only to strings of the query).
var tokenBufs = sync.Pool{New: func() any { return new([]token) }}

// putTokens returns a token slice to tokenBufs unless it grew too large
// to keep. (Its strings keep the last query alive until the slice is
// reused or the pool dropped at a garbage collection.)
func putTokens(buf *[]token) {
	if cap(*buf) > 1024 {
		return
	}
	*buf = (*buf)[:0]
	tokenBufs.Put(buf)
}

// ScanMode classifies query knowing whether the session's sql_mode has
// NO_BACKSLASH_ESCAPES, which decides where a string literal holding a
// backslash ends. The server reports it in every OK packet's status flags
// (SERVER_STATUS_NO_BACKSLASH_ESCAPES); State.NoBackslashEscapes says
// whether the tracked state sets it. Scan, not knowing, reads such a
// query both ways and keeps the more careful answer, which pins a
// WordPress search for "it's" (escaped as 'it\'s').
func ScanMode(query string, noBackslashEscapes bool) Stmt {
	buf := tokenBufs.Get().(*[]token)
	defer putTokens(buf)
	r := lex(query, !noBackslashEscapes, *buf)
	*buf = r.toks
	return scanTokens(r)
}

// State is a session's tracked state: what its SET statements and its
// handshake's character set made different from a fresh connection.
type State struct {
	vars []Assignment
}
