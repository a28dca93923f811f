package searchreplace

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Options tune RewriteDatabase.
type Options struct {
	// BatchSize is how many rows one SELECT reads and one transaction
	// updates; 0 means 500.
	BatchSize int
	// DryRun counts what would change and writes nothing.
	DryRun bool
	// SkipColumns names further columns never rewritten, as "table.column"
	// with the full table name. The posts tables' guid is always skipped.
	SkipColumns []string
}

// Report is what RewriteDatabase did.
type Report struct {
	Tables []TableReport
	// Totals over Tables.
	RowsScanned, RowsChanged, CellsChanged, CellsMalformed, CellsTooDeep int64
	// BytesScanned is the size of the text values read (rows scanned).
	BytesScanned int64
	// Warnings are tables skipped (no primary key), broken serialised
	// values rewritten as plain text and values nested too deep to follow.
	Warnings []string
}

// TableReport is one table's part of a Report.
type TableReport struct {
	Name string
	// Columns are the columns rewritten.
	Columns []string
	// RowsScanned counts the rows read: those in which some text column
	// holds the Replacer's probe (all rows when it has none).
	RowsScanned int64
	// BytesScanned is the size of the text values of the rows scanned.
	BytesScanned int64
	RowsChanged  int64
	// CellsChanged counts column values rewritten.
	CellsChanged int64
	// CellsMalformed counts values (among CellsChanged) that held
	// serialised data WordPress would unserialise but PHP rejects (wrong
	// lengths, truncated), alone or nested; they were rewritten as plain
	// text and are as broken as before (Result.Malformed).
	CellsMalformed int64
	// CellsTooDeep counts values holding serialised strings nested too
	// deep to follow, left as they were there (Result.TooDeep).
	CellsTooDeep int64
	// Skipped says why the table was not processed ("" when it was).
	Skipped string
}

const defaultBatch = 500

// textTypes are the information_schema DATA_TYPEs rewritten. MariaDB
// reports JSON columns as longtext. Binary and blob columns are left alone:
// they may hold anything, and WordPress keeps none of its text in them.
var textTypes = map[string]bool{
	"char": true, "varchar": true, "tinytext": true, "text": true, "mediumtext": true, "longtext": true, "json": true,
}

// table is one table's layout.
type table struct {
	name string
	pk   []string // primary key columns in key order
	cols []string // text columns to rewrite
}

// RewriteDatabase replaces from with to (see New) in every text column of
// every base table of db's current database whose name starts with prefix,
// but primary-key columns and the posts tables' guid. It reads rows in
// primary-key order, opts.BatchSize at a time, and writes the changed cells
// of each batch by primary key in one transaction. Tables without a
// primary key are skipped with a warning. A second run with the same
// arguments changes nothing. The database should have no other writers
// while it runs.
func RewriteDatabase(ctx context.Context, db *sql.DB, prefix, from, to string, opts Options) (Report, error) {
	var rep Report
	r, err := New(from, to)
	if err != nil {
		return rep, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatch
	}
	tables, err := loadTables(ctx, db, prefix, opts.SkipColumns)
	if err != nil {
		return rep, err
	}
	for _, t := range tables {
		tr := TableReport{Name: t.name, Columns: t.cols}
		switch {
		case len(t.pk) == 0:
			tr.Skipped = "no primary key"
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("table %s skipped: it has no primary key", t.name))
		case len(t.cols) == 0:
			tr.Skipped = "no text columns"
		default:
			if err := rewriteTable(ctx, db, r, t, opts, &tr); err != nil {
				return rep, fmt.Errorf("searchreplace: table %s: %w", t.name, err)
			}
		}
		if tr.CellsMalformed > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("table %s: %d values hold broken serialised data (PHP cannot unserialise them); rewritten as plain text", t.name, tr.CellsMalformed))
		}
		if tr.CellsTooDeep > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("table %s: %d values hold serialised strings nested more than %d deep; those were left as they were", t.name, tr.CellsTooDeep, maxNesting))
		}
		rep.RowsScanned += tr.RowsScanned
		rep.BytesScanned += tr.BytesScanned
		rep.RowsChanged += tr.RowsChanged
		rep.CellsChanged += tr.CellsChanged
		rep.CellsMalformed += tr.CellsMalformed
		rep.CellsTooDeep += tr.CellsTooDeep
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}

// loadTables reads the layout of the prefix's base tables.
func loadTables(ctx context.Context, db *sql.DB, prefix string, skip []string) ([]*table, error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		return nil, fmt.Errorf("searchreplace: current database: %w", err)
	}
	if !schema.Valid {
		return nil, errors.New("searchreplace: no database selected")
	}
	byName := map[string]*table{}
	var tables []*table
	err := query(ctx, db, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`,
		[]any{schema.String}, func(scan func(...any) error) error {
			var name string
			if err := scan(&name); err != nil {
				return err
			}
			if strings.HasPrefix(name, prefix) {
				t := &table{name: name}
				byName[name] = t
				tables = append(tables, t)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("searchreplace: list tables: %w", err)
	}
	err = query(ctx, db, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION`,
		[]any{schema.String}, func(scan func(...any) error) error {
			var tn, cn string
			if err := scan(&tn, &cn); err != nil {
				return err
			}
			if t := byName[tn]; t != nil {
				t.pk = append(t.pk, cn)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("searchreplace: primary keys: %w", err)
	}
	posts := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `([0-9]+_)?posts$`)
	err = query(ctx, db, `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_GENERATED FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
		[]any{schema.String}, func(scan func(...any) error) error {
			var tn, cn, typ, gen string
			if err := scan(&tn, &cn, &typ, &gen); err != nil {
				return err
			}
			t := byName[tn]
			switch {
			case t == nil, !textTypes[strings.ToLower(typ)], gen != "NEVER",
				slices.Contains(t.pk, cn),
				cn == "guid" && posts.MatchString(tn),
				slices.Contains(skip, tn+"."+cn):
				return nil
			}
			t.cols = append(t.cols, cn)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("searchreplace: columns: %w", err)
	}
	return tables, nil
}

// query runs q and calls row for each result row.
func query(ctx context.Context, db *sql.DB, q string, args []any, row func(scan func(...any) error) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// quoteIdent quotes a MariaDB identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// likeEscape escapes s for LIKE … ESCAPE '!'.
func likeEscape(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// change is one row's rewritten cells.
type change struct {
	pk   []any
	cols []string
	vals []any
}

// rewriteTable pages through t by primary key.
func rewriteTable(ctx context.Context, db *sql.DB, r *Replacer, t *table, opts Options, tr *TableReport) error {
	sel := make([]string, 0, len(t.pk)+len(t.cols))
	for _, c := range t.pk {
		sel = append(sel, quoteIdent(c))
	}
	var filter []string
	for _, c := range t.cols {
		sel = append(sel, quoteIdent(c))
		filter = append(filter, "CAST("+quoteIdent(c)+" AS BINARY) LIKE ? ESCAPE '!'")
	}
	order := strings.Join(sel[:len(t.pk)], ", ")
	// Keyset condition (p1 > ?) OR (p1 = ? AND p2 > ?) OR …
	var keyset []string
	for i := range t.pk {
		var and []string
		for j := 0; j < i; j++ {
			and = append(and, quoteIdent(t.pk[j])+" = ?")
		}
		and = append(and, quoteIdent(t.pk[i])+" > ?")
		keyset = append(keyset, "("+strings.Join(and, " AND ")+")")
	}
	pattern := "%" + likeEscape(r.Probe()) + "%"
	base := "SELECT " + strings.Join(sel, ", ") + " FROM " + quoteIdent(t.name)

	var last []any
	for {
		var where []string
		var args []any
		if last != nil {
			where = append(where, "("+strings.Join(keyset, " OR ")+")")
			for i := range t.pk {
				args = append(args, last[:i+1]...)
			}
		}
		if r.Probe() != "" {
			where = append(where, "("+strings.Join(filter, " OR ")+")")
			for range t.cols {
				args = append(args, pattern)
			}
		}
		q := base
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += fmt.Sprintf(" ORDER BY %s LIMIT %d", order, opts.BatchSize)
		changes, n, lastPK, err := readBatch(ctx, db, r, t, q, args, tr)
		if err != nil {
			return err
		}
		tr.RowsScanned += int64(n)
		if len(changes) > 0 && !opts.DryRun {
			if err := writeBatch(ctx, db, t, changes); err != nil {
				return err
			}
		}
		if n < opts.BatchSize {
			return nil
		}
		last = lastPK
	}
}

// readBatch runs one page query and rewrites its rows in memory.
func readBatch(ctx context.Context, db *sql.DB, r *Replacer, t *table, q string, args []any, tr *TableReport) ([]change, int, []any, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("select: %w", err)
	}
	defer rows.Close()
	var changes []change
	var last []any
	n := 0
	dest := make([]any, len(t.pk)+len(t.cols))
	for rows.Next() {
		pk := make([]any, len(t.pk))
		vals := make([][]byte, len(t.cols))
		for i := range pk {
			dest[i] = &pk[i]
		}
		for i := range vals {
			dest[len(pk)+i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, nil, fmt.Errorf("scan: %w", err)
		}
		for i, v := range pk {
			// Character keys go back as strings, compared in the
			// column's collation as ORDER BY sorts them.
			if b, ok := v.([]byte); ok {
				pk[i] = string(b)
			}
		}
		n++
		last = pk
		var ch change
		for i, v := range vals {
			if v == nil {
				continue
			}
			tr.BytesScanned += int64(len(v))
			out, res := r.Rewrite(v)
			if res.Malformed {
				tr.CellsMalformed++
			}
			if res.TooDeep {
				tr.CellsTooDeep++
			}
			if res.Changed {
				ch.cols = append(ch.cols, t.cols[i])
				ch.vals = append(ch.vals, out)
			}
		}
		if len(ch.cols) > 0 {
			ch.pk = pk
			changes = append(changes, ch)
			tr.RowsChanged++
			tr.CellsChanged += int64(len(ch.cols))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("select: %w", err)
	}
	return changes, n, last, nil
}

// writeBatch updates the changed rows in one transaction.
func writeBatch(ctx context.Context, db *sql.DB, t *table, changes []change) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var keyCond []string
	for _, c := range t.pk {
		keyCond = append(keyCond, quoteIdent(c)+" = ?")
	}
	where := " WHERE " + strings.Join(keyCond, " AND ")
	for _, ch := range changes {
		set := make([]string, len(ch.cols))
		for i, c := range ch.cols {
			set[i] = quoteIdent(c) + " = ?"
		}
		args := append(append([]any{}, ch.vals...), ch.pk...)
		if _, err := tx.ExecContext(ctx, "UPDATE "+quoteIdent(t.name)+" SET "+strings.Join(set, ", ")+where, args...); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
