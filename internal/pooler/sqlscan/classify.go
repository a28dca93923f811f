package sqlscan

import (
	"slices"
	"strings"
)

// Pin reasons (Stmt.Pin).
const (
	PinUserVariable    = "user variable"
	PinLock            = "GET_LOCK"
	PinLastInsertIDSet = "LAST_INSERT_ID(expr)"
	PinLockTables      = "LOCK TABLES"
	PinUnlockTables    = "UNLOCK TABLES"
	PinFlushLock       = "FLUSH with a lock"
	PinBackupLock      = "BACKUP LOCK"
	PinTemporaryTable  = "temporary table"
	PinPrepared        = "prepared statement"
	PinHandler         = "HANDLER"
	PinXA              = "XA transaction"
	PinCall            = "CALL"
	PinStoredFunction  = "stored function call"
	PinCompound        = "compound statement"
	PinChain           = "transaction chain or release"
	PinAutocommitOff   = "autocommit=0"
	PinSetTransaction  = "SET TRANSACTION"
	PinSetExpression   = "SET with an expression"
	PinSetUntrackable  = "SET of an untrackable variable"
	PinOneShot         = "SET of a one-statement variable"
	PinSetGlobalMixed  = "SET GLOBAL with session assignments"
	PinSetPassword     = "SET PASSWORD"
	PinSetRole         = "SET ROLE"
	PinSetStatementSet = "SET STATEMENT … FOR SET"
	PinMulti           = "multiple statements"
	PinBackslash       = "meaning depends on NO_BACKSLASH_ESCAPES"
	PinTooLong         = "query too long to classify"
)

// pinFuncs are functions whose effect lives on the connection.
var pinFuncs = setOf("GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS IS_USED_LOCK")

// notReadFuncs are functions whose result depends on the connection or
// the server it runs on, or that have side effects: a SELECT calling one
// runs on the primary (on the client's held backend).
var notReadFuncs = setOf(`LAST_INSERT_ID FOUND_ROWS ROW_COUNT CONNECTION_ID NEXTVAL LASTVAL SETVAL
	MASTER_POS_WAIT MASTER_GTID_WAIT SOURCE_POS_WAIT SLEEP BENCHMARK LOAD_FILE IS_FREE_LOCK
	BINLOG_GTID_POS WSREP_LAST_SEEN_GTID WSREP_LAST_WRITTEN_GTID WSREP_SYNC_WAIT_UPTO_GTID`)

// builtins are MariaDB's built-in function names.
var builtins = setOf(builtinNames)

// parenWords are keywords (and type names) that may precede "(" without
// being a function call.
var parenWords = setOf(`ALL AND ANY AS ASC AGAINST BETWEEN BY CASE COLUMNS CROSS DESC DISTINCT
	DISTINCTROW DIV DO DUPLICATE ELSE ELSEIF ESCAPE EXCEPT EXISTS FOLLOWING FOR FORCE FROM HAVING
	IGNORE IN INDEX INNER INTERSECT INTO IS JOIN KEY LATERAL LIKE LIMIT MATCH MINUS NATURAL NESTED
	NOT NVARCHAR OFFSET ON OR ORDER ORDINALITY OUTER OVER PARTITION PATH PRECEDING RANGE RECURSIVE
	REGEXP RETURNING RLIKE ROWS SELECT SET SOME STRAIGHT_JOIN TABLE THEN TINYINT SMALLINT
	MEDIUMINT INT INTEGER UNION UNSIGNED SIGNED UPDATE USING VALUE VALUES VARCHAR VARBINARY
	TEXT TIMESTAMP WHEN WHERE WINDOW WITH XOR YEAR NUMERIC REAL NCHAR`)

// oneShotVars affect only the next statement (or are per-connection
// bookkeeping): replaying them later would be wrong.
var oneShotVars = setOf("insert_id last_insert_id identity rand_seed1 rand_seed2 gtid_seq_no pseudo_thread_id")

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// scanTokens classifies one lexed query.
func scanTokens(r lexResult) Stmt {
	if r.tooLong {
		return Stmt{Kind: Other, Pin: PinTooLong}
	}
	if r.bad || len(r.toks) == 0 {
		// The server refuses it (syntax error, empty query).
		return Stmt{Kind: Other}
	}
	toks := r.toks
	var two [2][]token // (most queries are one statement: no allocation)
	stmts := two[:0]
	if startsStoredProgram(toks) {
		// CREATE PROCEDURE … BEGIN …; …; END holds semicolons.
		stmts = [][]token{trimSemicolons(toks)}
	} else {
		start := 0
		for i, t := range toks {
			if t.isPunct(";") {
				if i > start {
					stmts = append(stmts, toks[start:i])
				}
				start = i + 1
			}
		}
		if start < len(toks) {
			stmts = append(stmts, toks[start:])
		}
	}
	switch len(stmts) {
	case 0:
		return Stmt{Kind: Other}
	case 1:
		return classify(stmts[0], 0)
	}
	// Several statements: trackable only when all are trackable SETs.
	var sets []Assignment
	pin := ""
	allSets := true
	for _, part := range stmts {
		st := classify(part, 0)
		if st.Kind != Set || st.Sets == nil {
			allSets = false
		}
		sets = append(sets, st.Sets...)
		if pin == "" {
			pin = st.Pin
		}
	}
	if allSets {
		return Stmt{Kind: Set, Sets: sets}
	}
	if pin == "" {
		pin = PinMulti
	}
	return Stmt{Kind: Other, Pin: pin}
}

func startsStoredProgram(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	if toks[0].is("CREATE") {
		return true
	}
	return isCompoundStart(toks)
}

func isCompoundStart(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[0]
	switch {
	case t.is("BEGIN") && len(toks) > 1 && toks[1].is("NOT"):
		return true
	case t.is("IF") || t.is("CASE") || t.is("LOOP") || t.is("WHILE") || t.is("REPEAT") ||
		t.is("DECLARE") || t.is("FOR"):
		return true
	case (t.kind == tWord || t.kind == tQuoted) && len(toks) > 1 && toks[1].isPunct(":"):
		return true // label: BEGIN …
	}
	return false
}

func trimSemicolons(toks []token) []token {
	for len(toks) > 0 && toks[len(toks)-1].isPunct(";") {
		toks = toks[:len(toks)-1]
	}
	return toks
}

// maxNesting bounds SET STATEMENT … FOR SET STATEMENT … recursion.
const maxNesting = 4

// classify classifies one statement (toks is not empty).
func classify(toks []token, depth int) Stmt {
	var st Stmt
	first := toks[0]
	checkFuncs := false // look for stored function calls
	exempt := map[int]bool{}
	switch {
	case first.isPunct("(") || first.is("SELECT") || first.is("VALUES") || first.is("TABLE"):
		i := 0
		for i < len(toks) && toks[i].isPunct("(") {
			i++
		}
		if i < len(toks) && (toks[i].is("SELECT") || toks[i].is("VALUES") || toks[i].is("TABLE") || toks[i].is("WITH")) {
			st.Kind = Select
			if toks[i].is("WITH") && !withSelect(toks[i:], exempt, i) {
				st.Kind = Other
			}
		}
		checkFuncs = true
	case first.is("WITH"):
		if withSelect(toks, exempt, 0) {
			st.Kind = Select
		}
		checkFuncs = true
	case first.is("SET"):
		if len(toks) > 1 && toks[1].is("STATEMENT") {
			return setStatement(toks, depth)
		}
		st = classifySet(toks[1:])
		checkFuncs = true
	case first.is("USE"):
		st.Kind = Other
		if len(toks) == 2 && (toks[1].kind == tWord || toks[1].kind == tQuoted) {
			st.Kind = Use
			st.DB = toks[1].text
			if toks[1].kind == tQuoted {
				st.DB = unquote(toks[1].text)
			}
		}
	case first.is("BEGIN"):
		switch {
		case len(toks) == 1 || len(toks) == 2 && toks[1].is("WORK"):
			st.Kind = Begin
		default:
			st.Pin = PinCompound
		}
	case first.is("START"):
		if len(toks) > 1 && toks[1].is("TRANSACTION") {
			st.Kind = Begin
		}
	case first.is("COMMIT"), first.is("ROLLBACK"):
		st.Kind = Commit
		if first.is("ROLLBACK") {
			st.Kind = Rollback
		}
		for i := 1; i < len(toks); i++ {
			switch {
			case toks[i].is("TO"):
				st.Kind = Other // ROLLBACK TO SAVEPOINT
			case toks[i].is("CHAIN") || toks[i].is("RELEASE"):
				if !toks[i-1].is("NO") {
					st.Kind = Other
					st.Pin = PinChain
				}
			}
		}
	case first.is("SHOW") || first.is("DESCRIBE") || first.is("DESC") || first.is("EXPLAIN") || first.is("HELP"):
		st.Kind = Show
	case first.is("XA"):
		if len(toks) > 1 && (toks[1].is("START") || toks[1].is("BEGIN")) {
			st.Kind = Begin
		}
		st.Pin = PinXA
	case first.is("LOCK"):
		st.Pin = PinLockTables
	case first.is("UNLOCK"):
		st.Pin = PinUnlockTables
	case first.is("FLUSH"):
		if slices.ContainsFunc(toks, func(t token) bool { return t.is("LOCK") || t.is("EXPORT") }) {
			st.Pin = PinFlushLock
		}
	case first.is("BACKUP"):
		st.Pin = PinBackupLock
	case first.is("CREATE") || first.is("DROP"):
		for i := 1; i < len(toks) && i < 5; i++ {
			if toks[i].is("TEMPORARY") {
				st.Pin = PinTemporaryTable
			}
			if first.is("DROP") && toks[i].is("PREPARE") {
				st.Pin = PinPrepared
			}
		}
		if isCompoundStart(toks) {
			st.Pin = PinCompound
		}
	case first.is("PREPARE") || first.is("EXECUTE") || first.is("DEALLOCATE"):
		st.Pin = PinPrepared
	case first.is("HANDLER"):
		st.Pin = PinHandler
	case first.is("CALL"):
		st.Pin = PinCall
	case isCompoundStart(toks):
		st.Pin = PinCompound
	case first.is("INSERT") || first.is("REPLACE"):
		exemptInsertTable(toks, exempt)
		checkFuncs = true
	case first.is("UPDATE") || first.is("DELETE") || first.is("DO"):
		checkFuncs = true
	}

	f := scanFacts(toks, checkFuncs, exempt)
	if st.Pin == "" {
		switch {
		case f.userVar:
			st.Pin = PinUserVariable
		case f.pin != "":
			st.Pin = f.pin
		case f.storedFunc:
			st.Pin = PinStoredFunction
		}
	}
	if st.Pin != "" {
		st.Sets = nil
	}
	st.Read = st.Kind == Select && st.Pin == "" && !f.notRead
	st.HoldNext = f.calcFoundRows
	return st
}

// facts are what a statement's tokens say wherever they occur.
type facts struct {
	userVar       bool
	pin           string
	storedFunc    bool
	notRead       bool // locking clause, INTO, @@variables, connection-bound functions
	calcFoundRows bool
}

func scanFacts(toks []token, checkFuncs bool, exempt map[int]bool) facts {
	var f facts
	next := func(i int) token {
		if i+1 < len(toks) {
			return toks[i+1]
		}
		return token{}
	}
	for i, t := range toks {
		switch t.kind {
		case tUserVar:
			f.userVar = true
			f.notRead = true
		case tSysVar:
			f.notRead = true
		case tQuoted:
			if next(i).isPunct("(") && checkFuncs && !exempt[i] {
				f.storedFunc = true
				f.notRead = true
			}
		case tWord:
			n := next(i)
			switch t.up {
			case "SQL_CALC_FOUND_ROWS":
				f.calcFoundRows = true
			case "INTO":
				f.notRead = true
			case "FOR":
				if n.is("UPDATE") || n.is("SHARE") {
					f.notRead = true
				}
			case "LOCK":
				if n.is("IN") {
					f.notRead = true
				}
			case "NEXT", "PREVIOUS":
				if n.is("VALUE") && i+2 < len(toks) && toks[i+2].is("FOR") {
					f.notRead = true
				}
			}
			if !n.isPunct("(") {
				continue
			}
			qualified := i > 0 && toks[i-1].isPunct(".")
			switch {
			case qualified:
				if checkFuncs && !exempt[i] {
					f.storedFunc = true
					f.notRead = true
				}
			case pinFuncs[t.up]:
				if f.pin == "" {
					f.pin = PinLock
				}
				f.notRead = true
			case t.up == "LAST_INSERT_ID" && i+2 < len(toks) && !toks[i+2].isPunct(")"):
				if f.pin == "" {
					f.pin = PinLastInsertIDSet
				}
				f.notRead = true
			case notReadFuncs[t.up] || strings.HasPrefix(t.up, "WSREP_"):
				f.notRead = true
			case builtins[t.up] || parenWords[t.up]:
			default:
				if checkFuncs && !exempt[i] {
					f.storedFunc = true
					f.notRead = true
				}
			}
		}
	}
	return f
}

// skipParens returns the index after the parenthesis group opening at
// toks[i].
func skipParens(toks []token, i int) int {
	depth := 0
	for ; i < len(toks); i++ {
		switch {
		case toks[i].isPunct("("):
			depth++
		case toks[i].isPunct(")"):
			depth--
			if depth <= 0 {
				return i + 1
			}
		}
	}
	return len(toks)
}

// withSelect walks WITH [RECURSIVE] name [(cols)] AS (…) [, …], marks the
// names (at offset+index) as not being function calls, and reports
// whether the statement after it is a SELECT.
func withSelect(toks []token, exempt map[int]bool, offset int) bool {
	i := 1
	if i < len(toks) && toks[i].is("RECURSIVE") {
		i++
	}
	for i < len(toks) {
		if toks[i].kind != tWord && toks[i].kind != tQuoted {
			return false
		}
		exempt[offset+i] = true
		i++
		if i < len(toks) && toks[i].isPunct("(") {
			i = skipParens(toks, i)
		}
		if i >= len(toks) || !toks[i].is("AS") {
			return false
		}
		i++
		if i >= len(toks) || !toks[i].isPunct("(") {
			return false
		}
		i = skipParens(toks, i)
		if i < len(toks) && toks[i].isPunct(",") {
			i++
			continue
		}
		break
	}
	for i < len(toks) && toks[i].isPunct("(") {
		i++
	}
	return i < len(toks) && (toks[i].is("SELECT") || toks[i].is("VALUES") || toks[i].is("TABLE"))
}

// exemptInsertTable marks the table name of INSERT/REPLACE [INTO] t (cols).
func exemptInsertTable(toks []token, exempt map[int]bool) {
	i := 1
	for i < len(toks) && (toks[i].is("LOW_PRIORITY") || toks[i].is("DELAYED") ||
		toks[i].is("HIGH_PRIORITY") || toks[i].is("IGNORE") || toks[i].is("INTO")) {
		i++
	}
	for i < len(toks) && (toks[i].kind == tWord || toks[i].kind == tQuoted) {
		exempt[i] = true
		if i+1 < len(toks) && toks[i+1].isPunct(".") {
			i += 2
			continue
		}
		break
	}
}

// setStatement classifies SET STATEMENT assignments FOR statement: the
// inner statement's class; the assignments last only for it.
func setStatement(toks []token, depth int) Stmt {
	forAt := -1
	for i := 2; i < len(toks); {
		if toks[i].isPunct("(") {
			i = skipParens(toks, i)
			continue
		}
		if toks[i].is("FOR") {
			forAt = i
			break
		}
		i++
	}
	if forAt < 0 || forAt+1 >= len(toks) {
		return Stmt{Kind: Other} // syntax error
	}
	if depth >= maxNesting {
		return Stmt{Kind: Other, Pin: PinCompound}
	}
	st := classify(toks[forAt+1:], depth+1)
	if st.Kind == Set && st.Sets != nil {
		st.Pin = PinSetStatementSet
	}
	st.Sets = nil
	f := scanFacts(toks[2:forAt], true, nil)
	if st.Pin == "" {
		switch {
		case f.userVar:
			st.Pin = PinUserVariable
		case f.pin != "":
			st.Pin = f.pin
		case f.storedFunc:
			st.Pin = PinStoredFunction
		}
	}
	st.Read = st.Read && st.Pin == "" && !f.notRead
	return st
}

// merge combines the classifications of one query lexed two ways.
func merge(a, b Stmt) Stmt {
	if a.Kind == b.Kind && a.Read == b.Read && slices.Equal(a.Sets, b.Sets) && a.DB == b.DB &&
		a.Pin == b.Pin && a.HoldNext == b.HoldNext {
		return a
	}
	m := Stmt{Kind: a.Kind, Read: a.Read && b.Read, HoldNext: a.HoldNext || b.HoldNext, Pin: a.Pin, DB: a.DB}
	if a.Kind != b.Kind || a.DB != b.DB {
		m.Kind, m.DB, m.Pin = Other, "", PinBackslash
	}
	if m.Pin == "" {
		m.Pin = b.Pin
	}
	if a.Sets != nil && slices.Equal(a.Sets, b.Sets) {
		m.Sets = a.Sets
	} else if (a.Sets != nil || b.Sets != nil) && m.Pin == "" {
		m.Pin = PinBackslash
	}
	if m.Pin != "" {
		m.Sets = nil
		m.Read = false
	}
	return m
}
