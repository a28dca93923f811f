package searchreplace

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// looksSerialized reports whether the (trimmed) value may start with PHP
// serialised data: "N;", or a type letter and ':'. It is broader than
// WordPress's is_serialized (which wants a final ';' or '}' and does not
// know C:, r:, R: or S:) because PHP's unserialize reads the first value
// and ignores what follows, and plugins call it directly: a value it
// accepts is rewritten as serialised data, lengths fixed. One that does not
// parse is rewritten as plain text.
func looksSerialized(b []byte) bool {
	if len(b) >= 2 && b[0] == 'N' && b[1] == ';' {
		return true
	}
	if len(b) < 4 || b[1] != ':' {
		return false
	}
	return strings.IndexByte("bidsSaOCErR", b[0]) >= 0
}

// wpIsSerialized is WordPress's is_serialized (strict) on a trimmed value:
// what WordPress would hand to unserialize.
func wpIsSerialized(b []byte) bool {
	if string(b) == "N;" {
		return true
	}
	if len(b) < 4 || b[1] != ':' {
		return false
	}
	if last := b[len(b)-1]; last != ';' && last != '}' {
		return false
	}
	digitsUntil := func(i int, ok func(byte) bool, end byte) bool {
		j := i
		for j < len(b) && ok(b[j]) {
			j++
		}
		return j > i && j < len(b) && b[j] == end
	}
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	switch b[0] {
	case 's':
		if b[len(b)-2] != '"' {
			return false
		}
		fallthrough
	case 'a', 'O', 'E':
		return digitsUntil(2, isDigit, ':')
	case 'b', 'i', 'd':
		// ^x:[0-9.E+-]+;$
		j := 2
		for j < len(b) && (isDigit(b[j]) || strings.IndexByte(".E+-", b[j]) >= 0) {
			j++
		}
		return j > 2 && j == len(b)-1 && b[j] == ';'
	}
	return false
}

// errSyntax is any departure from PHP's serialisation grammar.
var errSyntax = errors.New("not PHP serialised data")

// rewriteSerialized rewrites one complete serialised value in b, which must
// consume b exactly.
func (r *Replacer) rewriteSerialized(b []byte, nesting int) ([]byte, Result, error) {
	p := newParser(r, b, nesting)
	if err := p.value(); err != nil {
		return nil, Result{}, err
	}
	if p.pos != len(b) {
		return nil, Result{}, fmt.Errorf("%w: %d trailing bytes", errSyntax, len(b)-p.pos)
	}
	return p.out, p.res, nil
}

// rewriteValues rewrites body when it starts with a serialised value, the
// one PHP's unserialize reads (it ignores what follows). Further values
// after it are rewritten as serialised data too, and the rest from the
// first that does not parse as plain text. ok is false when body does not
// start with a serialised value.
func (r *Replacer) rewriteValues(body []byte, nesting int) (out []byte, res Result, ok bool) {
	p := newParser(r, body, nesting)
	if err := p.value(); err != nil {
		return nil, Result{}, false
	}
	for p.pos < len(body) {
		pos, n := p.pos, len(p.out)
		if err := p.value(); err != nil {
			p.out = p.out[:n]
			tail, changed := r.replacePlain(body, pos)
			p.out = append(p.out, tail...)
			p.res.Changed = p.res.Changed || changed
			p.res.fellBack = p.res.fellBack || changed
			break
		}
	}
	return p.out, p.res, true
}

// startsSerialized reports whether body starts with a serialised value,
// without looking into the strings it holds.
func (r *Replacer) startsSerialized(body []byte, nesting int) bool {
	p := newParser(r, body, nesting)
	p.frozen = true
	return p.value() == nil
}

func newParser(r *Replacer, in []byte, nesting int) *parser {
	return &parser{r: r, in: in, nesting: nesting, out: make([]byte, 0, len(in)+64)}
}

// parser reads PHP serialised data from in and writes the rewritten data to
// out: every token is copied byte for byte, except string values (never
// array keys or property names) whose content the Replacer changed, which
// are written with their new byte length.
type parser struct {
	r   *Replacer
	in  []byte
	pos int
	out []byte
	// nesting counts the serialised strings in is nested in.
	nesting int
	// frozen: only check the grammar; strings are copied, not rewritten.
	frozen bool
	// values counts the values a reference may point at (every non-key
	// value but R:), numbered from 1 as PHP does.
	values int
	// custom: a C: value was read. PHP numbers the values its payload
	// holds too (the class's unserialize shares the numbering), so
	// references past values may be right.
	custom bool
	res    Result
}

func (p *parser) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errSyntax, what, p.pos)
}

// expect consumes the literal s.
func (p *parser) expect(s string) error {
	if len(p.in)-p.pos < len(s) || string(p.in[p.pos:p.pos+len(s)]) != s {
		return p.fail("expected " + strconv.Quote(s))
	}
	p.pos += len(s)
	return nil
}

// uint reads an unsigned decimal (PHP's uiv: [0-9]+) that fits an int.
func (p *parser) uint() (int, error) {
	start := p.pos
	for p.pos < len(p.in) && '0' <= p.in[p.pos] && p.in[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == start {
		return 0, p.fail("expected digits")
	}
	n, err := strconv.Atoi(string(p.in[start:p.pos]))
	if err != nil || n > len(p.in) {
		// Lengths and counts beyond the input cannot be satisfied.
		return 0, p.fail("number out of range")
	}
	return n, nil
}

// skipInt reads [+-]?[0-9]+.
func (p *parser) skipInt() error {
	if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
		p.pos++
	}
	start := p.pos
	for p.pos < len(p.in) && '0' <= p.in[p.pos] && p.in[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == start {
		return p.fail("expected an integer")
	}
	return nil
}

// skipFloat reads what PHP accepts after "d:": an integer, a decimal with
// digits on at least one side of the point, either with an exponent, or
// NAN, INF, -INF.
func (p *parser) skipFloat() error {
	for _, w := range []string{"NAN;", "INF;", "-INF;"} {
		if len(p.in)-p.pos >= len(w) && string(p.in[p.pos:p.pos+len(w)]) == w {
			p.pos += len(w) - 1
			return nil
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
		p.pos++
	}
	digits := func() int {
		s := p.pos
		for p.pos < len(p.in) && '0' <= p.in[p.pos] && p.in[p.pos] <= '9' {
			p.pos++
		}
		return p.pos - s
	}
	n := digits()
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		n += digits()
	}
	if n == 0 {
		return p.fail("expected a number")
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		return p.skipInt()
	}
	return nil
}

// quoted reads N:"…" (a length-prefixed name) and returns the name.
func (p *parser) quoted() ([]byte, error) {
	n, err := p.uint()
	if err != nil {
		return nil, err
	}
	if err := p.expect(`:"`); err != nil {
		return nil, err
	}
	if len(p.in)-p.pos < n {
		return nil, p.fail("string shorter than its length")
	}
	s := p.in[p.pos : p.pos+n]
	p.pos += n
	if err := p.expect(`"`); err != nil {
		return nil, err
	}
	return s, nil
}

// escapedQuoted reads N:"…" of an S: string, in which a backslash and two
// hex digits stand for one byte and N counts the bytes it stands for, and
// returns the decoded string.
func (p *parser) escapedQuoted() ([]byte, error) {
	n, err := p.uint()
	if err != nil {
		return nil, err
	}
	if err := p.expect(`:"`); err != nil {
		return nil, err
	}
	s := make([]byte, 0, n)
	for range n {
		if p.pos >= len(p.in) {
			return nil, p.fail("string shorter than its length")
		}
		c := p.in[p.pos]
		if c == '\\' {
			if len(p.in)-p.pos < 3 || !isHex(p.in[p.pos+1]) || !isHex(p.in[p.pos+2]) {
				return nil, p.fail("bad escape")
			}
			c = byte(hexVal(p.in[p.pos+1 : p.pos+3]))
			p.pos += 2
		}
		s = append(s, c)
		p.pos++
	}
	if err := p.expect(`"`); err != nil {
		return nil, err
	}
	return s, nil
}

// value parses one complete value. Arrays and objects nest without
// recursion: open holds, for each open one, how many keys and values it
// still has to read (a key when the number is even).
func (p *parser) value() error {
	var open []int
	for {
		if n := len(open); n > 0 && open[n-1] == 0 {
			end := p.pos
			if err := p.expect("}"); err != nil {
				return err
			}
			p.out = append(p.out, p.in[end:p.pos]...)
			open = open[:n-1]
		} else {
			key := false
			if n > 0 {
				key = open[n-1]%2 == 0
				open[n-1]--
			}
			entries, container, err := p.token(key)
			if err != nil {
				return err
			}
			if container {
				open = append(open, 2*entries)
			}
		}
		if len(open) == 0 {
			return nil
		}
	}
}

// token parses one scalar or string, or the header of an array or object
// (container is then true and entries its number of entries); key says it
// is an array key or property name, which may only be an integer or a
// string and is never rewritten.
func (p *parser) token(key bool) (entries int, container bool, err error) {
	start := p.pos
	copyTok := func() { p.out = append(p.out, p.in[start:p.pos]...) }
	if len(p.in)-p.pos < 2 {
		return 0, false, p.fail("truncated")
	}
	tag := p.in[p.pos]
	if key && tag != 'i' && tag != 's' && tag != 'S' {
		return 0, false, p.fail("key that is neither integer nor string")
	}
	if tag == 'N' {
		if err := p.expect("N;"); err != nil {
			return 0, false, err
		}
		p.values++
		copyTok()
		return 0, false, nil
	}
	if p.in[p.pos+1] != ':' {
		return 0, false, p.fail("expected ':'")
	}
	p.pos += 2
	if !key && tag != 'R' {
		p.values++
	}
	switch tag {
	case 'b':
		if p.pos >= len(p.in) || (p.in[p.pos] != '0' && p.in[p.pos] != '1') {
			return 0, false, p.fail("bad boolean")
		}
		p.pos++
	case 'i':
		if err := p.skipInt(); err != nil {
			return 0, false, err
		}
	case 'd':
		if err := p.skipFloat(); err != nil {
			return 0, false, err
		}
	case 'r', 'R':
		n, err := p.uint()
		if err != nil {
			return 0, false, err
		}
		if n < 1 || n > p.values && !p.custom {
			return 0, false, p.fail("reference to an unknown value")
		}
	case 'E':
		// An enum case, Class:Case: no URLs in it.
		if _, err := p.quoted(); err != nil {
			return 0, false, err
		}
	case 's', 'S':
		return 0, false, p.str(start, key, tag == 'S')
	case 'a':
		n, err := p.header(start)
		return n, err == nil, err
	case 'O':
		if _, err := p.quoted(); err != nil {
			return 0, false, err
		}
		if err := p.expect(":"); err != nil {
			return 0, false, err
		}
		n, err := p.header(start)
		return n, err == nil, err
	case 'C':
		// Serializable::serialize() output: opaque bytes of the class's
		// own format, copied as they are.
		if _, err := p.quoted(); err != nil {
			return 0, false, err
		}
		if err := p.expect(":"); err != nil {
			return 0, false, err
		}
		n, err := p.uint()
		if err != nil {
			return 0, false, err
		}
		if err := p.expect(":{"); err != nil {
			return 0, false, err
		}
		if len(p.in)-p.pos < n {
			return 0, false, p.fail("custom data shorter than its length")
		}
		p.pos += n
		if err := p.expect("}"); err != nil {
			return 0, false, err
		}
		p.custom = true
		copyTok()
		return 0, false, nil
	default:
		return 0, false, p.fail("unsupported type " + strconv.QuoteRune(rune(tag)))
	}
	if err := p.expect(";"); err != nil {
		return 0, false, err
	}
	copyTok()
	return 0, false, nil
}

// header reads N:{ after a: or O:…: and copies the header from start.
func (p *parser) header(start int) (int, error) {
	n, err := p.uint()
	if err != nil {
		return 0, err
	}
	if err := p.expect(":{"); err != nil {
		return 0, err
	}
	p.out = append(p.out, p.in[start:p.pos]...)
	return n, nil
}

// str parses the rest of s:N:"…"; or S:N:"…"; (escaped; start is at the
// type letter). A value string is rewritten, as a value of its own: it may
// be serialised data itself (PHP unserialises it separately).
func (p *parser) str(start int, key, escaped bool) error {
	var s []byte
	var err error
	if escaped {
		s, err = p.escapedQuoted()
	} else {
		s, err = p.quoted()
	}
	if err != nil {
		return err
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	if key || p.frozen {
		p.out = append(p.out, p.in[start:p.pos]...)
		return nil
	}
	ns, res := p.r.rewrite(s, p.nesting+1)
	p.res.merge(res)
	if !res.Changed {
		p.out = append(p.out, p.in[start:p.pos]...)
		return nil
	}
	p.out = append(p.out, p.in[start], ':')
	p.out = strconv.AppendInt(p.out, int64(len(ns)), 10)
	p.out = append(p.out, ':', '"')
	if escaped {
		p.out = appendEscaped(p.out, ns)
	} else {
		p.out = append(p.out, ns...)
	}
	p.out = append(p.out, '"', ';')
	return nil
}

// appendEscaped writes s as an S: string's content: the backslash, control
// characters and bytes outside printable ASCII as a backslash and two hex
// digits.
func appendEscaped(out, s []byte) []byte {
	for _, c := range s {
		if c == '\\' || c < 0x20 || c >= 0x7f {
			out = append(out, '\\', lowerHex[c>>4], lowerHex[c&15])
			continue
		}
		out = append(out, c)
	}
	return out
}
