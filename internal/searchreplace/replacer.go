package searchreplace

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Replacer rewrites one URL (or other string) into another in stored
// WordPress values. It is immutable and safe for concurrent use.
type Replacer struct {
	from, to string
	// variants are the encoded forms searched for, longest first.
	variants []variant
	// first marks the bytes a variant can start with.
	first [256]bool
	// probe is a substring of every variant's needle (see Probe).
	probe string
}

// variant is one encoded form of the search string and its replacement.
type variant struct {
	from, to []byte
	// checkBefore: the needle starts with a letter or digit, so a match
	// preceded by a scheme or host character is part of a longer word.
	checkBefore bool
	// checkAfter: the needle ends with a host character, so a match
	// followed by one continues the host (old.example → old.example.org).
	checkAfter bool
}

// Result says what rewriting one value did.
type Result struct {
	// Changed: the output differs from the input.
	Changed bool
	// Malformed: the value, or a string nested in it, is PHP serialised
	// data by WordPress's is_serialized but PHP's unserialize would reject
	// it (wrong lengths, truncated); it was rewritten as plain text, as
	// wp-cli does, and changed. It was broken before the rewrite.
	Malformed bool
	// TooDeep: a string nested more than maxNesting serialised strings
	// deep held serialised data that may hold the search string; it was
	// left as it was.
	TooDeep bool
	// fellBack: some value that looked serialised did not parse and was
	// rewritten (and changed) as plain text; the fuzz tests' round trip
	// does not hold for those (a wrong length may become right).
	fellBack bool
}

// merge adds the flags of a nested rewrite.
func (res *Result) merge(o Result) {
	res.Changed = res.Changed || o.Changed
	res.Malformed = res.Malformed || o.Malformed
	res.TooDeep = res.TooDeep || o.TooDeep
	res.fellBack = res.fellBack || o.fellBack
}

var schemeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// New returns a Replacer from from to to. from must not be empty. Both are
// normally URL prefixes without a trailing slash (http://old.example or
// https://old.example:8443/blog); see the package documentation for the
// forms and boundaries it matches.
func New(from, to string) (*Replacer, error) {
	if from == "" {
		return nil, errors.New("searchreplace: empty search string")
	}
	if strings.ContainsAny(from, "\x00") || strings.ContainsAny(to, "\x00") {
		return nil, errors.New("searchreplace: NUL in search or replacement string")
	}
	r := &Replacer{from: from, to: to}
	type pair struct{ from, to string }
	bases := []pair{{from, to}}
	probeBase := from
	if fm, tm := schemeRe.FindString(from), schemeRe.FindString(to); fm != "" && tm != "" {
		// The scheme-relative form //host… (also the tail of https://host
		// when from is http://host): the scheme, whatever it is, stays.
		rel := pair{from[len(fm)-2:], to[len(tm)-2:]}
		bases = append(bases, rel)
		probeBase = rel.from
	}
	seen := map[string]bool{}
	for _, b := range bases {
		for _, enc := range encodings {
			f, okF := enc(b.from)
			t, okT := enc(b.to)
			if !okF || !okT || f == t || seen[f] {
				continue
			}
			seen[f] = true
			r.variants = append(r.variants, variant{
				from: []byte(f), to: []byte(t),
				checkBefore: isAlnum(f[0]),
				checkAfter:  isHostByte(f[len(f)-1]),
			})
			r.first[f[0]] = true
		}
	}
	slices.SortStableFunc(r.variants, func(a, b variant) int { return len(b.from) - len(a.from) })
	r.probe = longestRun(probeBase)
	return r, nil
}

// encodings are the forms a stored value may hold the search string in;
// each returns false when it cannot encode the string.
var encodings = []func(string) (string, bool){
	func(s string) (string, bool) { return s, true },
	// json_encode's default ("\/", \uXXXX for non-ASCII); with
	// JSON_UNESCAPED_UNICODE; with JSON_UNESCAPED_SLASHES.
	func(s string) (string, bool) { return jsonEncode(s, true, true) },
	func(s string) (string, bool) { return jsonEncode(s, true, false) },
	func(s string) (string, bool) { return jsonEncode(s, false, true) },
	blockAttrEncode,
	func(s string) (string, bool) { return urlEncode(s, upperHex), true },
	func(s string) (string, bool) { return urlEncode(s, lowerHex), true },
}

// From returns the search string.
func (r *Replacer) From() string { return r.from }

// To returns the replacement string.
func (r *Replacer) To() string { return r.to }

// Probe returns a string that occurs in every value Rewrite would change
// (the longest run of URL-unreserved characters in the scheme-relative
// search string, which no encoding alters, "--" excluded); empty when
// there is none. The database pass uses it to skip rows on the server.
// (An S: string, which PHP reads but never writes, could hide it behind
// \xx escapes.)
func (r *Replacer) Probe() string { return r.probe }

// Replace is a convenience for New(from, to) and ReplaceString. An invalid
// from (empty) changes nothing.
func Replace(value, from, to string) (string, bool) {
	r, err := New(from, to)
	if err != nil {
		return value, false
	}
	return r.ReplaceString(value)
}

// ReplaceString rewrites s; see Rewrite.
func (r *Replacer) ReplaceString(s string) (string, bool) {
	out, res := r.Rewrite([]byte(s))
	if !res.Changed {
		return s, false
	}
	return string(out), true
}

// Replace rewrites v and says whether it changed; see Rewrite.
func (r *Replacer) Replace(v []byte) ([]byte, bool) {
	out, res := r.Rewrite(v)
	return out, res.Changed
}

// Rewrite returns v with every occurrence of the search string, in any of
// its forms, replaced. A value that starts with PHP serialised data
// (possibly with surrounding whitespace, as WordPress's maybe_unserialize
// trims) is rewritten string by string with lengths recomputed, recursing
// into strings that are themselves serialised; anything else, including a
// value that looks serialised but does not parse, is rewritten as plain
// text (see Result for what is reported). When nothing changes, the
// returned slice is v itself.
func (r *Replacer) Rewrite(v []byte) ([]byte, Result) {
	return r.rewrite(v, 0)
}

// maxNesting bounds how many serialised strings deep (a string holding
// serialised data holding a string that holds serialised data …) values
// are parsed: WordPress nests two or three; each level costs a pass over
// the value. Arrays and objects nest without a limit.
const maxNesting = 64

// rewrite rewrites v, a value nested in nesting serialised strings.
func (r *Replacer) rewrite(v []byte, nesting int) ([]byte, Result) {
	if !r.mayMatch(v) {
		return v, Result{}
	}
	lead, body, trail := trimPHP(v)
	if looksSerialized(body) {
		if nesting >= maxNesting {
			if r.startsSerialized(body, nesting) {
				return v, Result{TooDeep: true}
			}
		} else if out, res, ok := r.rewriteValues(body, nesting); ok {
			if !res.Changed {
				return v, res
			}
			buf := make([]byte, 0, len(lead)+len(out)+len(trail))
			buf = append(append(append(buf, lead...), out...), trail...)
			return buf, res
		}
		// Not serialised data after all (custom CSS such as
		// "a:hover{…}"), or broken serialised data: plain text.
		out, changed := r.replacePlain(v, 0)
		return out, Result{Changed: changed, Malformed: changed && wpIsSerialized(body), fellBack: changed}
	}
	out, changed := r.replacePlain(v, 0)
	return out, Result{Changed: changed}
}

// mayMatch reports whether any variant occurs in v at all, or v may hold
// an S: string (whose escapes may hide one).
func (r *Replacer) mayMatch(v []byte) bool {
	for _, vr := range r.variants {
		if bytes.Contains(v, vr.from) {
			return true
		}
	}
	return bytes.Contains(v, []byte("S:")) && bytes.IndexByte(v, '\\') >= 0
}

// replacePlain replaces, left to right and without rescanning replacements,
// every variant occurrence in v[from:] that sits on host boundaries (which
// may look at v[:from]). It returns v[from:] rewritten.
func (r *Replacer) replacePlain(v []byte, from int) ([]byte, bool) {
	var out []byte
	copied := from // v[from:copied] is in out (once out is in use)
	for i := from; i < len(v); i++ {
		if !r.first[v[i]] {
			continue
		}
		for _, vr := range r.variants {
			if !bytes.HasPrefix(v[i:], vr.from) || !vr.boundaries(v, i) {
				continue
			}
			if out == nil {
				out = make([]byte, 0, len(v)-from+len(vr.to)-len(vr.from)+16)
			}
			out = append(append(out, v[copied:i]...), vr.to...)
			i += len(vr.from) - 1
			copied = i + 1
			break
		}
	}
	if out == nil {
		return v[from:], false
	}
	return append(out, v[copied:]...), true
}

// boundaries reports whether the match of vr at v[i:] is a whole one. The
// characters around it are read as the text means them: a JSON escape
// (\n, \u0022) or a percent-encoded byte (%2F) counts as the character it
// stands for.
func (vr variant) boundaries(v []byte, i int) bool {
	if vr.checkBefore && i > 0 && isSchemeOrHostByte(charBefore(v, i)) {
		return false
	}
	if vr.checkAfter {
		j := i + len(vr.from)
		if j < len(v) {
			c, w := charAt(v, j)
			if isHostByte(c) {
				return false
			}
			// old.example.org continues the host; "old.example." ending a
			// sentence does not.
			if c == '.' && j+w < len(v) {
				if d, _ := charAt(v, j+w); isHostByte(d) {
					return false
				}
			}
		}
	}
	return true
}

// nonASCII stands for a decoded character outside ASCII, which never
// continues a host.
const nonASCII = 0x80

// charBefore returns the character that ends at v[i-1] (i > 0): the one a
// JSON escape ending there stands for (\n, \t, \u003e: the backslash not
// itself escaped), or a percent-encoded byte (%2F), or else v[i-1].
func charBefore(v []byte, i int) byte {
	c := v[i-1]
	if !isAlnum(c) {
		return c // escapes end in a letter or digit
	}
	if i >= 6 && v[i-5] == 'u' && v[i-6] == '\\' && isHex(v[i-4]) && isHex(v[i-3]) && isHex(v[i-2]) && isHex(c) && jsonEscapeAt(v, i-6) {
		return decodedASCII(hexVal(v[i-4 : i]))
	}
	if i >= 2 && v[i-2] == '\\' && strings.IndexByte("bfnrt", c) >= 0 && jsonEscapeAt(v, i-2) {
		return '\n' // a control character
	}
	if i >= 3 && v[i-3] == '%' && isHex(v[i-2]) && isHex(c) {
		return decodedASCII(hexVal(v[i-2 : i]))
	}
	return c
}

// charAt returns the character that starts at v[j] and its width: a
// \uXXXX or %XX escape decoded, else v[j]. (A backslash after a match,
// which ends in a host byte, always starts an escape.)
func charAt(v []byte, j int) (byte, int) {
	switch v[j] {
	case '\\':
		if len(v)-j >= 6 && v[j+1] == 'u' && isHex(v[j+2]) && isHex(v[j+3]) && isHex(v[j+4]) && isHex(v[j+5]) {
			return decodedASCII(hexVal(v[j+2 : j+6])), 6
		}
	case '%':
		if len(v)-j >= 3 && isHex(v[j+1]) && isHex(v[j+2]) {
			return decodedASCII(hexVal(v[j+1 : j+3])), 3
		}
	}
	return v[j], 1
}

// jsonEscapeAt reports whether the backslash at v[k] starts an escape: an
// odd number of backslashes ends there.
func jsonEscapeAt(v []byte, k int) bool {
	n := 0
	for ; k >= 0 && v[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}

func decodedASCII(n int) byte {
	if n >= 0x80 {
		return nonASCII
	}
	return byte(n)
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// hexVal decodes hex digits (checked by isHex).
func hexVal(b []byte) int {
	n := 0
	for _, c := range b {
		switch {
		case c <= '9':
			n = n<<4 | int(c-'0')
		case c >= 'a':
			n = n<<4 | int(c-'a'+10)
		default:
			n = n<<4 | int(c-'A'+10)
		}
	}
	return n
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isHostByte: a byte that continues a host name or port (ASCII letters,
// digits, '-' and '_'; '.' is handled apart).
func isHostByte(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// isSchemeOrHostByte: a byte that would make a preceding word part of the
// match's scheme or host (xhttp://, sub.old.example).
func isSchemeOrHostByte(c byte) bool { return isHostByte(c) || c == '.' || c == '+' }

// jsonEncode writes s as json_encode writes a string's content: '"', '\\'
// and control characters escaped, '/' as "\/" when slashes, characters
// outside ASCII as \uXXXX (UTF-16, lower-case hex) when unicode. It fails
// on invalid UTF-8, as json_encode does.
func jsonEncode(s string, slashes, unicode bool) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '/' && slashes:
			b.WriteString(`\/`)
		case c < 0x20:
			jsonControl(&b, byte(c))
		case c >= 0x80 && unicode:
			if c > 0xffff {
				c -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(c>>10), 0xdc00+(c&0x3ff))
			} else {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String(), true
}

func jsonControl(b *strings.Builder, c byte) {
	if i := strings.IndexByte("\b\f\n\r\t", c); i >= 0 {
		b.WriteByte('\\')
		b.WriteByte("bfnrt"[i])
		return
	}
	fmt.Fprintf(b, `\u%04x`, c)
}

// blockAttrEncode writes s as the block editor writes a string in a
// block's attributes (serializeAttributes in @wordpress/blocks, and
// serialize_block_attributes in PHP): JSON without escaping '/' or
// non-ASCII, then '\\', '"', '<', '>', '&' and each "--" (left to right)
// as \u escapes, so that the JSON can sit in an HTML comment.
func blockAttrEncode(s string) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\u005c`)
		case c == '"':
			b.WriteString(`\u0022`)
		case c == '<':
			b.WriteString(`\u003c`)
		case c == '>':
			b.WriteString(`\u003e`)
		case c == '&':
			b.WriteString(`\u0026`)
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			b.WriteString(`\u002d\u002d`)
			i++
		case c < 0x20:
			jsonControl(&b, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

const (
	upperHex = "0123456789ABCDEF"
	lowerHex = "0123456789abcdef"
)

// urlEncode percent-encodes every byte but the unreserved ones (RFC 3986:
// letters, digits, "-._~"), as PHP's rawurlencode does, with hex digits
// from hex.
func urlEncode(s, hex string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool { return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' }

// longestRun returns the longest run of unreserved characters in s, which
// JSON escaping and URL encoding leave as they are, but for each "--" (the
// block editor's encoding escapes those).
func longestRun(s string) string {
	kept := make([]bool, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && i+1 < len(s) && s[i+1] == '-' {
			i++ // both stay false
			continue
		}
		kept[i] = isUnreserved(s[i])
	}
	best, start := "", -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && kept[i] {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > len(best) {
			best = s[start:i]
		}
		start = -1
	}
	return best
}

// trimPHP splits v into leading whitespace, body and trailing whitespace as
// PHP's trim() sees them.
func trimPHP(v []byte) (lead, body, trail []byte) {
	const ws = " \t\n\r\x00\x0b"
	i, j := 0, len(v)
	for i < j && strings.IndexByte(ws, v[i]) >= 0 {
		i++
	}
	for j > i && strings.IndexByte(ws, v[j-1]) >= 0 {
		j--
	}
	return v[:i], v[i:j], v[j:]
}

// String describes the Replacer for logs.
func (r *Replacer) String() string { return fmt.Sprintf("%q → %q", r.from, r.to) }
