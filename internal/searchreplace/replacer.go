package searchreplace

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
	// Malformed: the value, or a string nested in it, looked like PHP
	// serialised data and held the search string but did not parse; it was
	// left byte for byte as it was.
	Malformed bool
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
		for _, enc := range []func(string) string{
			func(s string) string { return s },
			jsonEscape,
			func(s string) string { return urlEncode(s, upperHex) },
			func(s string) string { return urlEncode(s, lowerHex) },
		} {
			f, t := enc(b.from), enc(b.to)
			if f == t || seen[f] {
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

// From returns the search string.
func (r *Replacer) From() string { return r.from }

// To returns the replacement string.
func (r *Replacer) To() string { return r.to }

// Probe returns a string that occurs in every value Rewrite would change
// (the longest run of URL-unreserved characters in the scheme-relative
// search string, which no encoding alters); empty when there is none. The
// database pass uses it to skip rows on the server.
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
// its forms, replaced. A value that is PHP serialised data (possibly with
// surrounding whitespace, as WordPress's maybe_unserialize trims) is
// rewritten string by string with lengths recomputed, recursing into
// strings that are themselves serialised; a value that looks serialised but
// does not parse is returned untouched with Result.Malformed; anything else
// is rewritten as plain text. When nothing changes, the returned slice is v
// itself.
func (r *Replacer) Rewrite(v []byte) ([]byte, Result) {
	return r.rewrite(v, 0)
}

// maxDepth bounds nesting (containers and serialised strings together), as
// PHP's unserialize_max_depth (4096) does.
const maxDepth = 4096

func (r *Replacer) rewrite(v []byte, depth int) ([]byte, Result) {
	if !r.mayMatch(v) {
		return v, Result{}
	}
	lead, body, trail := trimPHP(v)
	if looksSerialized(body) {
		out, res, err := r.rewriteSerialized(body, depth)
		if err != nil {
			return v, Result{Malformed: true}
		}
		if !res.Changed {
			return v, res
		}
		buf := make([]byte, 0, len(lead)+len(out)+len(trail))
		buf = append(append(append(buf, lead...), out...), trail...)
		return buf, res
	}
	out, changed := r.replacePlain(v)
	return out, Result{Changed: changed}
}

// mayMatch reports whether any variant occurs in v at all.
func (r *Replacer) mayMatch(v []byte) bool {
	for _, vr := range r.variants {
		if bytes.Contains(v, vr.from) {
			return true
		}
	}
	return false
}

// replacePlain replaces, left to right and without rescanning replacements,
// every variant occurrence that sits on host boundaries.
func (r *Replacer) replacePlain(v []byte) ([]byte, bool) {
	var out []byte
	copied := 0 // v[:copied] is in out (once out is in use)
	for i := 0; i < len(v); i++ {
		if !r.first[v[i]] {
			continue
		}
		for _, vr := range r.variants {
			if !bytes.HasPrefix(v[i:], vr.from) || !vr.boundaries(v, i) {
				continue
			}
			if out == nil {
				out = make([]byte, 0, len(v)+len(vr.to)-len(vr.from)+16)
			}
			out = append(append(out, v[copied:i]...), vr.to...)
			i += len(vr.from) - 1
			copied = i + 1
			break
		}
	}
	if out == nil {
		return v, false
	}
	return append(out, v[copied:]...), true
}

// boundaries reports whether the match of vr at v[i:] is a whole one.
func (vr variant) boundaries(v []byte, i int) bool {
	if vr.checkBefore && i > 0 && isSchemeOrHostByte(v[i-1]) {
		return false
	}
	if vr.checkAfter {
		j := i + len(vr.from)
		if j < len(v) {
			c := v[j]
			if isHostByte(c) {
				return false
			}
			// old.example.org continues the host; "old.example." ending a
			// sentence does not.
			if c == '.' && j+1 < len(v) && isHostByte(v[j+1]) {
				return false
			}
		}
	}
	return true
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

// jsonEscape escapes s as json_encode does by default for the characters a
// URL holds: '/' becomes "\/", '"' and '\' are backslashed.
func jsonEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `/`, `\/`).Replace(s)
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
// JSON escaping and URL encoding leave as it is.
func longestRun(s string) string {
	best, start := "", -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isUnreserved(s[i]) {
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
