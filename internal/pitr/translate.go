package pitr

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// Txn is one committed transaction's changes to one database, as SQL that
// replays them into a database of any name (no statement names its
// database).
type Txn struct {
	// GTID is the transaction's global transaction id.
	GTID string `json:"gtid"`
	// Time is the commit time (the binary log's resolution: seconds).
	Time int64 `json:"time"`
	// DDL: a statement MariaDB logged as text (CREATE, ALTER, DROP,
	// TRUNCATE, ...), run outside a transaction after the session
	// settings it was logged with; otherwise row changes, run in one
	// transaction.
	DDL bool `json:"ddl,omitempty"`
	// Barrier: a statement outside the database replaced its content
	// (an in-place restore's table swap, DROP DATABASE): the log cannot
	// be replayed across it. Stmts is empty.
	Barrier bool `json:"barrier,omitempty"`
	// Stmts are the statements in order (bytes: DDL text is the site's
	// and need not be valid UTF-8).
	Stmts [][]byte `json:"stmts"`
}

// committed is what the translator hands on at a transaction's end: its
// parts per database, and the databases whose whole content a statement
// outside them replaced (barriers: the log cannot be replayed across).
type committed struct {
	gtid     GTID
	time     int64
	parts    map[string]*Txn
	order    []string
	barriers []string
}

// translator turns a stream of binary log events into committed
// transactions. keep says whether a database's changes are wanted.
type translator struct {
	keep func(db string) bool
	// names of the databases whose names a barrier statement is searched for
	names func() []string

	in         bool // inside a transaction (after its GTID event)
	standalone bool
	cur        *committed
}

// errFormat: the server's binary log lacks what translation needs.
var errFormat = errors.New("binary log format")

// handle takes one event; it returns the transaction it ended, if any.
func (t *translator) handle(ev *replication.BinlogEvent) (*committed, error) {
	switch e := ev.Event.(type) {
	case *replication.MariadbGTIDEvent:
		// A new transaction (a partial one before it, e.g. after a
		// reconnect, is dropped: it is sent again whole).
		t.in = true
		t.standalone = e.IsStandalone()
		t.cur = &committed{gtid: GTID{Domain: e.GTID.DomainID, Server: e.GTID.ServerID, Seq: e.GTID.SequenceNumber}, parts: map[string]*Txn{}}
		return nil, nil
	case *replication.XIDEvent:
		return t.end(ev.Header.Timestamp), nil
	case *replication.QueryEvent:
		if !t.in {
			return nil, nil
		}
		q := string(e.Query)
		switch strings.ToUpper(strings.TrimSpace(q)) {
		case "BEGIN":
			return nil, nil
		case "COMMIT", "ROLLBACK":
			return t.end(ev.Header.Timestamp), nil
		}
		t.query(ev.Header.Timestamp, e)
		if t.standalone {
			return t.end(ev.Header.Timestamp), nil
		}
		return nil, nil
	case *replication.RowsEvent:
		if !t.in || e.Table == nil {
			return nil, nil
		}
		db := string(e.Table.Schema)
		if !t.keep(db) {
			return nil, nil
		}
		stmts, err := rowsSQL(ev.Header.EventType, e)
		if err != nil {
			return nil, fmt.Errorf("transaction %s, table %s.%s: %w", t.cur.gtid, db, e.Table.Table, err)
		}
		p := t.part(db)
		p.Stmts = append(p.Stmts, stmts...)
	}
	return nil, nil
}

func (t *translator) part(db string) *Txn {
	p, ok := t.cur.parts[db]
	if !ok {
		p = &Txn{GTID: t.cur.gtid.String()}
		t.cur.parts[db] = p
		t.cur.order = append(t.cur.order, db)
	}
	return p
}

func (t *translator) end(ts uint32) *committed {
	if !t.in {
		return nil
	}
	c := t.cur
	c.time = int64(ts)
	for _, p := range c.parts {
		p.Time = c.time
	}
	t.in, t.cur = false, nil
	return c
}

// query handles a statement logged as text: kept (with its session
// settings) when its default database is kept; otherwise a barrier for
// every kept database it names.
func (t *translator) query(ts uint32, e *replication.QueryEvent) {
	db := string(e.Schema)
	if db != "" && t.keep(db) {
		switch databaseStmt(e.Query) {
		case dbNoop:
			return
		case dbReplaced:
			t.cur.barriers = append(t.cur.barriers, db)
			return
		}
		p := t.part(db)
		if t.standalone {
			p.DDL = true
			p.Stmts = append(p.Stmts, sessionSQL(ts, e.StatusVars)...)
		}
		p.Stmts = append(p.Stmts, bytes.Clone(e.Query))
		return
	}
	if t.names == nil || accountStmt(e.Query) {
		return
	}
	for _, name := range t.names() {
		if mentions(e.Query, name) {
			t.cur.barriers = append(t.cur.barriers, name)
		}
	}
}

// Query event status variables (sql/log_event.h).
const (
	qFlags2       = 0
	qSQLMode      = 1
	qCatalog      = 2
	qAutoInc      = 3
	qCharset      = 4
	qTimeZone     = 5
	qCatalogNZ    = 6
	qLCTimeNames  = 7
	qCharsetDB    = 8
	qTableMapUpd  = 9
	qMasterData   = 10
	qInvoker      = 11
	qUpdatedDBs   = 12
	qMicroseconds = 13
	qHRNow        = 128
	qXID          = 129
)

// sessionSQL is the SET statements that give a replayed DDL statement the
// session it was logged with: sql_mode, character sets, time zone and
// timestamp (for defaults such as CURRENT_TIMESTAMP). Unknown status
// variables end the parse (what was read is kept).
func sessionSQL(ts uint32, vars []byte) [][]byte {
	out := [][]byte{[]byte(fmt.Sprintf("SET TIMESTAMP=%d", ts))}
	i := 0
	for i < len(vars) {
		code := vars[i]
		i++
		need := func(n int) bool { return i+n <= len(vars) }
		switch code {
		case qFlags2, qMasterData:
			if !need(4) {
				return out
			}
			i += 4
		case qSQLMode:
			if !need(8) {
				return out
			}
			mode := binary.LittleEndian.Uint64(vars[i:])
			out = append(out, []byte(fmt.Sprintf("SET @@session.sql_mode=%d", mode)))
			i += 8
		case qCatalog:
			if !need(1) {
				return out
			}
			i += 1 + int(vars[i]) + 1
		case qAutoInc:
			i += 4
		case qCharset:
			if !need(6) {
				return out
			}
			cs := binary.LittleEndian.Uint16(vars[i:])
			cc := binary.LittleEndian.Uint16(vars[i+2:])
			sv := binary.LittleEndian.Uint16(vars[i+4:])
			out = append(out, []byte(fmt.Sprintf("SET @@session.character_set_client=%d,@@session.collation_connection=%d,@@session.collation_server=%d", cs, cc, sv)))
			i += 6
		case qTimeZone:
			if !need(1) {
				return out
			}
			n := int(vars[i])
			if !need(1 + n) {
				return out
			}
			out = append(out, []byte("SET @@session.time_zone="+quoteString(string(vars[i+1:i+1+n]))))
			i += 1 + n
		case qCatalogNZ:
			if !need(1) {
				return out
			}
			i += 1 + int(vars[i])
		case qLCTimeNames, qCharsetDB:
			i += 2
		case qTableMapUpd, qXID:
			i += 8
		case qInvoker:
			if !need(1) {
				return out
			}
			i += 1 + int(vars[i])
			if !need(1) {
				return out
			}
			i += 1 + int(vars[i])
		case qUpdatedDBs:
			if !need(1) {
				return out
			}
			n := int(vars[i])
			i++
			if n == 254 { // OVER_MAX_DBS_IN_EVENT_MTS
				n = 0
			}
			for k := 0; k < n && i < len(vars); k++ {
				for i < len(vars) && vars[i] != 0 {
					i++
				}
				i++
			}
		case qMicroseconds, qHRNow:
			if !need(3) {
				return out
			}
			us := uint32(vars[i]) | uint32(vars[i+1])<<8 | uint32(vars[i+2])<<16
			out[0] = []byte(fmt.Sprintf("SET TIMESTAMP=%d.%06d", ts, us))
			i += 3
		default:
			return out
		}
	}
	return out
}

// rowsSQL translates a rows event into statements.
func rowsSQL(typ replication.EventType, e *replication.RowsEvent) ([][]byte, error) {
	tbl := e.Table
	if len(tbl.ColumnName) != int(tbl.ColumnCount) {
		return nil, fmt.Errorf("%w: no column names (binlog_row_metadata must be FULL)", errFormat)
	}
	for _, sk := range e.SkippedColumns {
		if len(sk) > 0 {
			return nil, fmt.Errorf("%w: partial row image (binlog_row_image must be FULL)", errFormat)
		}
	}
	c := newColumns(tbl)
	var out [][]byte
	switch typ {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		if len(e.Rows) == 0 {
			return nil, nil
		}
		var b strings.Builder
		b.WriteString("INSERT INTO ")
		b.WriteString(quoteIdent(string(tbl.Table)))
		b.WriteString(" (")
		for i := range c.names {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(c.names[i])
		}
		b.WriteString(") VALUES ")
		for r, row := range e.Rows {
			if r > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for i, v := range row {
				if i > 0 {
					b.WriteByte(',')
				}
				lit, err := c.literal(i, v, false)
				if err != nil {
					return nil, err
				}
				b.WriteString(lit)
			}
			b.WriteByte(')')
		}
		out = append(out, []byte(b.String()))
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		if len(e.Rows)%2 != 0 {
			return nil, errors.New("update rows event with an odd number of row images")
		}
		for r := 0; r < len(e.Rows); r += 2 {
			before, after := e.Rows[r], e.Rows[r+1]
			var b strings.Builder
			b.WriteString("UPDATE ")
			b.WriteString(quoteIdent(string(tbl.Table)))
			b.WriteString(" SET ")
			n := 0
			for i := range after {
				lb, err := c.literal(i, before[i], false)
				if err != nil {
					return nil, err
				}
				la, err := c.literal(i, after[i], false)
				if err != nil {
					return nil, err
				}
				if lb == la {
					continue
				}
				if n > 0 {
					b.WriteByte(',')
				}
				n++
				b.WriteString(c.names[i])
				b.WriteByte('=')
				b.WriteString(la)
			}
			if n == 0 {
				continue
			}
			where, err := c.where(before)
			if err != nil {
				return nil, err
			}
			b.WriteString(where)
			out = append(out, []byte(b.String()))
		}
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		for _, row := range e.Rows {
			where, err := c.where(row)
			if err != nil {
				return nil, err
			}
			out = append(out, []byte("DELETE FROM "+quoteIdent(string(tbl.Table))+where))
		}
	default:
		return nil, fmt.Errorf("unsupported rows event %s", typ)
	}
	return out, nil
}

// columns is what formatting a table's values needs.
type columns struct {
	tbl      *replication.TableMapEvent
	names    []string
	unsigned map[int]bool
	charset  map[int]string // character columns with a known character set
	enumset  map[int]bool
	pk       []int
}

func newColumns(tbl *replication.TableMapEvent) *columns {
	c := &columns{tbl: tbl, unsigned: tbl.UnsignedMap(), charset: map[int]string{}, enumset: map[int]bool{}}
	for _, n := range tbl.ColumnName {
		c.names = append(c.names, quoteIdent(string(n)))
	}
	for i, coll := range tbl.CollationMap() {
		if cs := charsetOf(coll); cs != "" {
			c.charset[i] = cs
		}
	}
	for i := range tbl.ColumnType {
		if tbl.IsEnumOrSetColumn(i) {
			c.enumset[i] = true
		}
	}
	for _, k := range tbl.PrimaryKey {
		c.pk = append(c.pk, int(k))
	}
	return c
}

// where is the WHERE clause finding a row by its before image: by its
// primary key, or (a table without one) by every column, one row.
func (c *columns) where(row []any) (string, error) {
	var b strings.Builder
	b.WriteString(" WHERE ")
	cols := c.pk
	limit := ""
	if len(cols) == 0 {
		cols = make([]int, len(row))
		for i := range cols {
			cols[i] = i
		}
		limit = " LIMIT 1"
	}
	for k, i := range cols {
		if i >= len(row) {
			return "", fmt.Errorf("primary key column %d of %d", i, len(row))
		}
		if k > 0 {
			b.WriteString(" AND ")
		}
		lit, err := c.literal(i, row[i], true)
		if err != nil {
			return "", err
		}
		b.WriteString(c.names[i])
		b.WriteString("<=>")
		b.WriteString(lit)
	}
	b.WriteString(limit)
	return b.String(), nil
}

// literal formats column i's value v as an exact SQL literal. In a
// comparison (cmp) a FLOAT is cast to FLOAT so that it equals the stored
// single-precision value.
func (c *columns) literal(i int, v any, cmp bool) (string, error) {
	if v == nil {
		return "NULL", nil
	}
	typ := c.tbl.ColumnType[i]
	if c.enumset[i] {
		switch x := v.(type) {
		case int64:
			return strconv.FormatUint(uint64(x), 10), nil
		}
		return "", fmt.Errorf("column %s: enum/set value of type %T", c.names[i], v)
	}
	uns := c.unsigned[i]
	switch typ {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
		var n int64
		var width uint
		switch x := v.(type) {
		case int8:
			n, width = int64(x), 8
		case int16:
			n, width = int64(x), 16
		case int32:
			n, width = int64(x), 32
			if typ == mysql.MYSQL_TYPE_INT24 {
				width = 24
			}
		case int64:
			n, width = x, 64
		default:
			return "", fmt.Errorf("column %s: integer of type %T", c.names[i], v)
		}
		if uns && n < 0 {
			u := uint64(n)
			if width < 64 {
				u &= (uint64(1) << width) - 1
			}
			return strconv.FormatUint(u, 10), nil
		}
		return strconv.FormatInt(n, 10), nil
	case mysql.MYSQL_TYPE_YEAR:
		return fmt.Sprint(v), nil
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		s, ok := v.(string)
		if !ok || !isNumber(s) {
			return "", fmt.Errorf("column %s: decimal %v", c.names[i], v)
		}
		return s, nil
	case mysql.MYSQL_TYPE_FLOAT:
		f, ok := v.(float32)
		if !ok {
			return "", fmt.Errorf("column %s: float of type %T", c.names[i], v)
		}
		if math.IsInf(float64(f), 0) || math.IsNaN(float64(f)) {
			return "", fmt.Errorf("column %s: float %v", c.names[i], f)
		}
		s := strconv.FormatFloat(float64(f), 'g', -1, 32)
		if cmp {
			return "CAST(" + s + " AS FLOAT)", nil
		}
		return s, nil
	case mysql.MYSQL_TYPE_DOUBLE:
		f, ok := v.(float64)
		if !ok {
			return "", fmt.Errorf("column %s: double of type %T", c.names[i], v)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("column %s: double %v", c.names[i], f)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case mysql.MYSQL_TYPE_BIT:
		x, ok := v.(int64)
		if !ok {
			return "", fmt.Errorf("column %s: bit of type %T", c.names[i], v)
		}
		return strconv.FormatUint(uint64(x), 10), nil
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2,
		mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE, mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		s, ok := v.(string)
		if !ok || strings.Trim(s, "0123456789-:. ") != "" {
			return "", fmt.Errorf("column %s: temporal value %v", c.names[i], v)
		}
		return "'" + s + "'", nil
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_BLOB,
		mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB, mysql.MYSQL_TYPE_JSON,
		mysql.MYSQL_TYPE_GEOMETRY:
		var raw []byte
		switch x := v.(type) {
		case string:
			raw = []byte(x)
		case []byte:
			raw = x
		default:
			return "", fmt.Errorf("column %s: string of type %T", c.names[i], v)
		}
		return c.hexLiteral(i, raw), nil
	}
	return "", fmt.Errorf("column %s: unsupported type %d", c.names[i], typ)
}

// hexLiteral is X'..' with the column's character set as introducer when
// it has one (a string of that character set, so comparisons use the
// column's collation and its indexes).
func (c *columns) hexLiteral(i int, b []byte) string {
	h := "X'" + hex.EncodeToString(b) + "'"
	if cs, ok := c.charset[i]; ok {
		return "_" + cs + " " + h
	}
	return h
}

// charsetOf names the character set of a MariaDB collation id, for the
// common ones ("" otherwise, and for binary).
func charsetOf(id uint64) string {
	if id >= 1024 && id < 2048 { // MariaDB's NO PAD variants
		id -= 1024
	}
	switch {
	case id == 45 || id == 46 || (id >= 224 && id <= 247):
		return "utf8mb4"
	case id == 33 || id == 83 || (id >= 192 && id <= 215):
		return "utf8mb3"
	case id == 5 || id == 8 || id == 15 || id == 31 || (id >= 47 && id <= 49) || id == 94:
		return "latin1"
	case id == 11 || id == 65:
		return "ascii"
	}
	return ""
}

// Kinds of statements on a whole database.
const (
	dbNone     = iota // not one
	dbNoop            // changes no table: CREATE DATABASE IF NOT EXISTS, ALTER DATABASE
	dbReplaced        // replaces the content: DROP DATABASE, CREATE (OR REPLACE) DATABASE
)

// databaseStmt classifies a statement MariaDB logged as text on a whole
// database (it logs them with that database as the default).
func databaseStmt(q []byte) int {
	f := strings.Fields(strings.ToUpper(string(stripComments(q[:min(len(q), 200)]))))
	if len(f) < 2 {
		return dbNone
	}
	obj := 1
	if f[0] == "CREATE" && len(f) > 3 && f[1] == "OR" && f[2] == "REPLACE" {
		obj = 3
	}
	if obj >= len(f) || (f[obj] != "DATABASE" && f[obj] != "SCHEMA") {
		return dbNone
	}
	switch f[0] {
	case "ALTER":
		return dbNoop
	case "CREATE":
		if obj == 1 && len(f) > 4 && f[2] == "IF" && f[3] == "NOT" && f[4] == "EXISTS" {
			return dbNoop
		}
		return dbReplaced
	case "DROP":
		return dbReplaced
	}
	return dbNone
}

// stripComments drops /* */ comments (MariaDB's executable comments
// included: their content is ignored for classification) and leading
// whitespace.
func stripComments(q []byte) []byte {
	var out []byte
	for i := 0; i < len(q); i++ {
		if q[i] == '/' && i+1 < len(q) && q[i+1] == '*' {
			end := bytes.Index(q[i+2:], []byte("*/"))
			if end < 0 {
				break
			}
			i += end + 3
			out = append(out, ' ')
			continue
		}
		out = append(out, q[i])
	}
	return out
}

// accountStmt reports whether q manages accounts or privileges (CREATE,
// ALTER, DROP, RENAME USER or ROLE, GRANT, REVOKE, SET PASSWORD): such a
// statement names databases and users but changes no table.
func accountStmt(q []byte) bool {
	f := strings.Fields(strings.ToUpper(string(stripComments(q[:min(len(q), 200)]))))
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "GRANT", "REVOKE":
		return true
	case "SET":
		return len(f) > 1 && strings.HasPrefix(f[1], "PASSWORD")
	case "CREATE", "ALTER", "DROP", "RENAME":
		k := 1
		if len(f) > 3 && f[1] == "OR" && f[2] == "REPLACE" {
			k = 3
		}
		return k < len(f) && (f[k] == "USER" || f[k] == "ROLE")
	}
	return false
}

// mentions reports whether query names a table of database db (db.t or
// `db`.t), case-insensitively, db not inside a longer identifier.
func mentions(query []byte, db string) bool {
	q := bytes.ToLower(query)
	word := func(c byte) bool {
		return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 0x80
	}
	quoted := []byte("`" + strings.ToLower(db) + "`.")
	if bytes.Contains(q, quoted) {
		return true
	}
	bare := []byte(strings.ToLower(db) + ".")
	for off := 0; ; {
		k := bytes.Index(q[off:], bare)
		if k < 0 {
			return false
		}
		k += off
		if k == 0 || !word(q[k-1]) {
			return true
		}
		off = k + 1
	}
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	return strings.Trim(s, "0123456789.-") == "" && strings.Count(s, ".") <= 1
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString quotes s for SQL (NO_BACKSLASH_ESCAPES-independent only for
// strings without backslashes; used for time zone names).
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}
