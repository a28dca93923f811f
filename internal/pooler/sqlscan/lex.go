package sqlscan

import (
	"strings"
	"unsafe"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tWord    tokKind = iota // unquoted identifier or keyword
	tQuoted                 // `identifier`
	tString                 // '…' or "…"
	tNumber                 // 12, 1.5e3, 0xff
	tUserVar                // @x, @'x', @`x`, a lone @ ('u'@'host')
	tSysVar                 // @@x, @@session.x, @@global.x
	tPunct                  // ( ) , ; = := and any other operator byte
)

type token struct {
	kind tokKind
	text string // the source text (words: as written)
	up   string // words: upper case; sysvars: lower case; punct: text
}

// is reports whether t is the unquoted keyword kw (upper case).
func (t token) is(kw string) bool { return t.kind == tWord && t.up == kw }

// isPunct reports whether t is the punctuation p.
func (t token) isPunct(p string) bool { return t.kind == tPunct && t.text == p }

// lexResult is the outcome of tokenizing one query.
type lexResult struct {
	toks []token
	// bad: an unterminated string, identifier or comment (the server
	// refuses the query).
	bad bool
	// backslash: a string literal holds a backslash, so the tokens depend
	// on sql_mode NO_BACKSLASH_ESCAPES.
	backslash bool
	// tooLong: more than maxTokens tokens (not classified).
	tooLong bool
}

// maxTokens bounds the work per query; a longer query is lexed up to it
// and then marked too long (classified conservatively).
const maxTokens = 1 << 16

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '_' || c == '$' || c >= 0x80
}

// lex tokenizes q. Comments are skipped except executable comments
// (/*! … */, /*!50001 … */, /*M! … */, /*M!100500 … */), whose contents
// are code whatever version they name. backslashEscapes selects how
// string literals end: with backslash escapes (MariaDB's default) or
// without (sql_mode NO_BACKSLASH_ESCAPES).
//
// The tokens are appended to toks[:0] (a buffer to reuse, or nil).
func lex(q string, backslashEscapes bool, toks []token) lexResult {
	r := lexResult{toks: toks[:0]}
	n := len(q)
	// upper is q with ASCII letters in upper case, made once for all its
	// words (the first time one holds a lower-case letter).
	upper := ""
	exec := 0 // depth of executable comments
	i := 0
	for i < n {
		if len(r.toks) >= maxTokens {
			r.tooLong = true
			return r
		}
		c := q[i]
		switch {
		case isSpace(c):
			i++
		case c == '#':
			i = skipLine(q, i)
		case c == '-' && i+1 < n && q[i+1] == '-' && (i+2 == n || q[i+2] <= ' '):
			i = skipLine(q, i)
		case c == '/' && i+1 < n && q[i+1] == '*':
			switch {
			case i+2 < n && q[i+2] == '!':
				exec++
				i += 3
				for i < n && isDigit(q[i]) {
					i++
				}
			case i+3 < n && q[i+2] == 'M' && q[i+3] == '!':
				exec++
				i += 4
				for i < n && isDigit(q[i]) {
					i++
				}
			default:
				end := strings.Index(q[i+2:], "*/")
				if end < 0 {
					r.bad = true
					return r
				}
				i += 2 + end + 2
			}
		case c == '*' && exec > 0 && i+1 < n && q[i+1] == '/':
			exec--
			i += 2
		case c == '\'' || c == '"':
			end, bs, ok := scanString(q, i, backslashEscapes)
			if bs {
				r.backslash = true
			}
			if !ok {
				r.bad = true
				return r
			}
			r.toks = append(r.toks, token{kind: tString, text: q[i:end]})
			i = end
		case c == '`':
			end, _, ok := scanString(q, i, false)
			if !ok {
				r.bad = true
				return r
			}
			r.toks = append(r.toks, token{kind: tQuoted, text: q[i:end], up: strings.ToUpper(unquote(q[i:end]))})
			i = end
		case c == '@' && i+1 < n && q[i+1] == '@':
			j := i + 2
			for j < n && (isWordByte(q[j]) || q[j] == '.') {
				j++
			}
			r.toks = append(r.toks, token{kind: tSysVar, text: q[i:j], up: strings.ToLower(q[i:j])})
			i = j
		case c == '@':
			j := i + 1
			if j < n && (q[j] == '\'' || q[j] == '"' || q[j] == '`') {
				end, bs, ok := scanString(q, j, backslashEscapes && q[j] != '`')
				if bs {
					r.backslash = true
				}
				if !ok {
					r.bad = true
					return r
				}
				j = end
			} else {
				for j < n && (isWordByte(q[j]) || q[j] == '.') {
					j++
				}
			}
			r.toks = append(r.toks, token{kind: tUserVar, text: q[i:j]})
			i = j
		case isDigit(c) || c == '.' && i+1 < n && isDigit(q[i+1]):
			j := i + 1
			for j < n {
				d := q[j]
				if isWordByte(d) || d == '.' {
					j++
					continue
				}
				if (d == '+' || d == '-') && (q[j-1] == 'e' || q[j-1] == 'E') && j+1 < n && isDigit(q[j+1]) {
					j++
					continue
				}
				break
			}
			r.toks = append(r.toks, token{kind: tNumber, text: q[i:j]})
			i = j
		case isWordByte(c):
			j := i + 1
			for j < n && isWordByte(q[j]) {
				j++
			}
			up, ascii := q[i:j], true
			lower := false
			for _, b := range []byte(up) {
				ascii = ascii && b < 0x80
				lower = lower || 'a' <= b && b <= 'z'
			}
			switch {
			case !ascii:
				up = strings.ToUpper(up)
			case lower:
				if upper == "" {
					upper = asciiUpper(q)
				}
				up = upper[i:j]
			}
			r.toks = append(r.toks, token{kind: tWord, text: q[i:j], up: up})
			i = j
		case c == ':' && i+1 < n && q[i+1] == '=':
			r.toks = append(r.toks, token{kind: tPunct, text: ":=", up: ":="})
			i += 2
		default:
			r.toks = append(r.toks, token{kind: tPunct, text: q[i : i+1], up: q[i : i+1]})
			i++
		}
	}
	if exec > 0 {
		r.bad = true
	}
	return r
}

// asciiUpper is s with its ASCII letters in upper case (what
// strings.ToUpper does to an ASCII word), other bytes as they are.
func asciiUpper(s string) string {
	if s == "" {
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	// b is this string's alone and never written again.
	return unsafe.String(&b[0], len(b))
}

func skipLine(q string, i int) int {
	if end := strings.IndexByte(q[i:], '\n'); end >= 0 {
		return i + end + 1
	}
	return len(q)
}

// scanString returns the end (exclusive) of the quoted text starting at
// q[i] (its quote byte), whether it holds a backslash, and whether it is
// terminated. A doubled quote stands for itself.
func scanString(q string, i int, backslashEscapes bool) (end int, backslash, ok bool) {
	quote := q[i]
	j := i + 1
	for j < len(q) {
		switch q[j] {
		case '\\':
			backslash = true
			if backslashEscapes {
				j += 2
				continue
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j += 2
				continue
			}
			return j + 1, backslash, true
		}
		j++
	}
	return len(q), backslash, false
}

// unquote returns the content of a backtick-, single- or double-quoted
// token without escapes other than doubled quotes (enough for names).
func unquote(s string) string {
	if len(s) < 2 {
		return s
	}
	quote := s[0:1]
	return strings.ReplaceAll(s[1:len(s)-1], quote+quote, quote)
}
