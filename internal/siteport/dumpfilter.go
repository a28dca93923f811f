package siteport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// lineBuf is the size of the filter's read buffer: a statement's head
// (CREATE TABLE, SET, DELIMITER …) is decided within it; longer lines
// (extended INSERTs) pass through in pieces.
const lineBuf = 64 << 10

// maxOptionsLine bounds how much of one INSERT into an options table is
// kept to look for siteurl, home and db_version.
const maxOptionsLine = 16 << 20

// DumpScan is what a dump says about itself.
type DumpScan struct {
	// Tables are the tables the dump creates, in its order.
	Tables []string `json:"tables"`
	// Charset is the dump's SET NAMES ("" when it has none).
	Charset string `json:"charset,omitempty"`
	// Options are siteurl, home, db_version, template, stylesheet and
	// blogname as the INSERTs into <prefix>options carry them (keyed by
	// prefix+"options" table, then option name).
	Options map[string]map[string]string `json:"-"`
	// Removed counts what the filter took out: "DEFINER clause",
	// "CREATE DATABASE", "USE", "trigger or routine block".
	Removed map[string]int `json:"removed,omitempty"`
	// Bytes is the dump's size.
	Bytes int64 `json:"bytes"`
}

// Prefix returns the WordPress table prefix of the dump: the p for which
// it creates p+"options" and p+"posts". A dump with none is refused
// (ErrNoOptions); one with several prefixes must name one (want).
func (d *DumpScan) Prefix(want string) (string, error) {
	var found []string
	for _, t := range d.Tables {
		p, ok := strings.CutSuffix(t, "options")
		if ok && slices.Contains(d.Tables, p+"posts") {
			found = append(found, p)
		}
	}
	switch {
	case want != "" && slices.Contains(found, want):
		return want, nil
	case want != "":
		return "", fmt.Errorf("%w: no %soptions and %sposts tables in the dump (it has WordPress tables for prefixes %q)", ErrNoOptions, want, want, found)
	case len(found) == 0:
		return "", fmt.Errorf("%w: the dump creates no <prefix>options and <prefix>posts tables (tables: %s)", ErrNoOptions, shortList(d.Tables))
	case len(found) > 1:
		return "", fmt.Errorf("the dump holds several WordPress sites (table prefixes %q): name one", found)
	}
	return found[0], nil
}

// Option is option name of the site with table prefix p ("" if the dump
// does not set it).
func (d *DumpScan) Option(p, name string) string { return d.Options[p+"options"][name] }

// ErrNoOptions is a dump without a WordPress options table.
var ErrNoOptions = errors.New("missing tables")

// ErrCharset is a dump in a character set other than UTF-8.
var ErrCharset = errors.New("dump for another character set")

func shortList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	if len(s) > 8 {
		return strings.Join(s[:8], ", ") + fmt.Sprintf(" and %d more", len(s)-8)
	}
	return strings.Join(s, ", ")
}

var (
	createTableRE = regexp.MustCompile("(?i)^CREATE TABLE (?:IF NOT EXISTS )?`([^`]+)`")
	setNamesRE    = regexp.MustCompile(`(?i)^(?:/\*!\d+ )?SET NAMES '?(\w+)'?`)
	definerRE     = regexp.MustCompile("(?i)DEFINER\\s*=\\s*(?:`[^`]*`|'[^']*'|[\\w.%-]+)(?:\\s*@\\s*(?:`[^`]*`|'[^']*'|[\\w.%-]+))?")
	optionsInsRE  = regexp.MustCompile("(?i)^INSERT (?:IGNORE )?INTO `([^`]*options)`")
	optionRowRE   = regexp.MustCompile(`\(\s*\d+\s*,\s*'(siteurl|home|db_version|template|stylesheet|blogname|active_plugins)'\s*,\s*'((?:[^'\\]|\\.|'')*)'`)
	createDBRE    = regexp.MustCompile(`(?i)^(?:/\*!\d+ )?CREATE DATABASE`)
	useRE         = regexp.MustCompile(`(?i)^USE\s`)
	delimiterRE   = regexp.MustCompile(`(?i)^DELIMITER\s+(\S+)`)
)

// utf8Charsets are the SET NAMES values a dump may have.
var utf8Charsets = []string{"utf8", "utf8mb3", "utf8mb4", "binary"}

// DumpFilter is the dump as the loader gets it (see the package comment);
// Scan fills as it is read.
type DumpFilter struct {
	br      *bufio.Reader
	Scan    DumpScan
	pending []byte
	// midLine: the rest of a line whose head was decided (skip or pass).
	midLine, skipLine bool
	inBlock           bool
	// inInsert: an INSERT's rows, one line each in mariadb-dump 10.11
	// (values never hold a raw line break), until a line ends with ";".
	inInsert  bool
	capture   []byte
	capturing bool
	err       error
}

// NewDumpFilter filters the dump r.
func NewDumpFilter(r io.Reader) *DumpFilter {
	return &DumpFilter{br: bufio.NewReaderSize(r, lineBuf), Scan: DumpScan{Options: map[string]map[string]string{}, Removed: map[string]int{}}}
}

// ScanDump reads the dump r to its end and returns what it says,
// refusing one in a non-UTF-8 character set (ErrCharset).
func ScanDump(r io.Reader) (*DumpScan, error) {
	f := NewDumpFilter(r)
	if _, err := io.Copy(io.Discard, f); err != nil {
		return nil, err
	}
	if c := strings.ToLower(f.Scan.Charset); c != "" && !slices.Contains(utf8Charsets, c) {
		return &f.Scan, fmt.Errorf("%w: the dump is written in %s (SET NAMES %s); convert it to utf8mb4 (mariadb-dump --default-character-set=utf8mb4) and import again", ErrCharset, c, c)
	}
	return &f.Scan, nil
}

func (f *DumpFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		chunk, err := f.br.ReadSlice('\n')
		f.Scan.Bytes += int64(len(chunk))
		full := err == bufio.ErrBufferFull
		if err != nil && !full {
			if err != io.EOF {
				err = fmt.Errorf("read the dump: %w", err)
			}
			f.err = err
		}
		if len(chunk) == 0 {
			continue
		}
		if !f.midLine {
			f.lineStart(chunk)
		} else if !f.skipLine {
			f.pending = append(f.pending[:0], chunk...)
		}
		if f.capturing {
			if len(f.capture)+len(chunk) <= maxOptionsLine {
				f.capture = append(f.capture, chunk...)
			}
		}
		f.midLine = full
		if !full && f.inInsert && bytes.HasSuffix(bytes.TrimRight(chunk, "\r\n \t"), []byte(";")) {
			f.inInsert = false
			if f.capturing {
				f.scanOptions()
			}
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// lineStart decides what to do with the line starting with chunk.
func (f *DumpFilter) lineStart(chunk []byte) {
	f.skipLine = false
	if f.inInsert {
		f.pending = append(f.pending[:0], chunk...)
		return
	}
	f.capturing, f.capture = false, f.capture[:0]
	trim := bytes.TrimSpace(chunk)
	if f.inBlock {
		if m := delimiterRE.FindSubmatch(trim); m != nil && string(m[1]) == ";" {
			f.inBlock = false
		}
		f.skipLine = true
		return
	}
	if bytes.HasPrefix(trim, []byte("INSERT ")) || bytes.HasPrefix(trim, []byte("insert ")) || bytes.HasPrefix(trim, []byte("REPLACE ")) {
		f.inInsert = true
		if m := optionsInsRE.FindSubmatch(trim); m != nil {
			f.capturing = true
		}
		f.pending = append(f.pending[:0], chunk...)
		return
	}
	switch {
	case delimiterRE.Match(trim):
		if m := delimiterRE.FindSubmatch(trim); string(m[1]) != ";" {
			f.inBlock = true
			f.Scan.Removed["trigger or routine block"]++
		}
		f.skipLine = true
		return
	case createDBRE.Match(trim):
		f.Scan.Removed["CREATE DATABASE"]++
		f.skipLine = true
		return
	case useRE.Match(trim):
		f.Scan.Removed["USE"]++
		f.skipLine = true
		return
	}
	if m := createTableRE.FindSubmatch(trim); m != nil {
		f.Scan.Tables = append(f.Scan.Tables, string(m[1]))
	}
	if m := setNamesRE.FindSubmatch(trim); m != nil && f.Scan.Charset == "" {
		f.Scan.Charset = string(m[1])
	}
	if definerRE.Match(chunk) {
		f.Scan.Removed["DEFINER clause"] += len(definerRE.FindAllIndex(chunk, -1))
		chunk = definerRE.ReplaceAll(chunk, nil)
	}
	f.pending = append(f.pending[:0], chunk...)
}

// scanOptions reads the captured INSERT into an options table.
func (f *DumpFilter) scanOptions() {
	f.capturing = false
	m := optionsInsRE.FindSubmatch(f.capture)
	if m == nil {
		return
	}
	table := string(m[1])
	opts := f.Scan.Options[table]
	if opts == nil {
		opts = map[string]string{}
		f.Scan.Options[table] = opts
	}
	for _, r := range optionRowRE.FindAllSubmatch(f.capture, -1) {
		opts[string(r[1])] = unquoteSQL(string(r[2]))
	}
	f.capture = f.capture[:0]
}

// unquoteSQL undoes the escapes of a single-quoted MySQL string.
func unquoteSQL(s string) string {
	if !strings.ContainsAny(s, `\'`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0':
				b.WriteByte(0)
			case 'Z':
				b.WriteByte(26)
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
