package searchreplace

import (
	"errors"
	"fmt"
	"strconv"
)

// looksSerialized reports whether the (trimmed) value has the shape of PHP
// serialised data: "N;", or a type letter and ':' and a final ';' or '}'.
// It is broader than WordPress's is_serialized (which does not know C:, r:
// or R:), so that more values that merely resemble serialised data are left
// alone rather than rewritten as text.
func looksSerialized(b []byte) bool {
	if len(b) == 2 && b[0] == 'N' && b[1] == ';' {
		return true
	}
	if len(b) < 4 || b[1] != ':' {
		return false
	}
	switch b[0] {
	case 'N', 'b', 'i', 'd', 's', 'S', 'a', 'O', 'C', 'E', 'r', 'R':
	default:
		return false
	}
	last := b[len(b)-1]
	return last == ';' || last == '}'
}

// errSyntax is any departure from PHP's serialisation grammar.
var errSyntax = errors.New("not PHP serialised data")

// rewriteSerialized rewrites one complete serialised value in b, which must
// consume b exactly.
func (r *Replacer) rewriteSerialized(b []byte, depth int) ([]byte, Result, error) {
	p := &parser{r: r, in: b, depth: depth, out: make([]byte, 0, len(b)+64)}
	if err := p.value(false); err != nil {
		return nil, Result{}, err
	}
	if p.pos != len(b) {
		return nil, Result{}, fmt.Errorf("%w: %d trailing bytes", errSyntax, len(b)-p.pos)
	}
	return p.out, p.res, nil
}

// parser reads PHP serialised data from in and writes the rewritten data to
// out: every token is copied byte for byte, except string values (never
// array keys or property names) whose content the Replacer changed, which
// are written with their new byte length.
type parser struct {
	r     *Replacer
	in    []byte
	pos   int
	out   []byte
	depth int
	// values counts the values a reference may point at (every non-key
	// value but R:), numbered from 1 as PHP does.
	values int
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

// value parses one value; key says it is an array key or property name,
// which may only be an integer or a string and is never rewritten.
func (p *parser) value(key bool) error {
	start := p.pos
	copyTok := func() { p.out = append(p.out, p.in[start:p.pos]...) }
	if len(p.in)-p.pos < 2 {
		return p.fail("truncated")
	}
	tag := p.in[p.pos]
	if key && tag != 'i' && tag != 's' {
		return p.fail("key that is neither integer nor string")
	}
	if tag == 'N' {
		if err := p.expect("N;"); err != nil {
			return err
		}
		p.values++
		copyTok()
		return nil
	}
	if p.in[p.pos+1] != ':' {
		return p.fail("expected ':'")
	}
	p.pos += 2
	if !key && tag != 'R' {
		p.values++
	}
	switch tag {
	case 'b':
		if p.pos >= len(p.in) || (p.in[p.pos] != '0' && p.in[p.pos] != '1') {
			return p.fail("bad boolean")
		}
		p.pos++
	case 'i':
		if err := p.skipInt(); err != nil {
			return err
		}
	case 'd':
		if err := p.skipFloat(); err != nil {
			return err
		}
	case 'r', 'R':
		n, err := p.uint()
		if err != nil {
			return err
		}
		if n < 1 || n > p.values {
			return p.fail("reference to an unknown value")
		}
	case 'E':
		// An enum case, Class:Case: no URLs in it.
		if _, err := p.quoted(); err != nil {
			return err
		}
	case 's':
		return p.str(start, key)
	case 'a':
		return p.container(start)
	case 'O':
		if _, err := p.quoted(); err != nil {
			return err
		}
		if err := p.expect(":"); err != nil {
			return err
		}
		return p.container(start)
	case 'C':
		// Serializable::serialize() output: opaque bytes of the class's
		// own format, copied as they are.
		if _, err := p.quoted(); err != nil {
			return err
		}
		if err := p.expect(":"); err != nil {
			return err
		}
		n, err := p.uint()
		if err != nil {
			return err
		}
		if err := p.expect(":{"); err != nil {
			return err
		}
		if len(p.in)-p.pos < n {
			return p.fail("custom data shorter than its length")
		}
		p.pos += n
		if err := p.expect("}"); err != nil {
			return err
		}
		copyTok()
		return nil
	default:
		// Including S: (escaped strings, never written by PHP 7 or 8).
		return p.fail("unsupported type " + strconv.QuoteRune(rune(tag)))
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	copyTok()
	return nil
}

// str parses the rest of s:N:"…"; (start is at the 's'). A value string is
// rewritten, recursively when it is itself serialised data.
func (p *parser) str(start int, key bool) error {
	s, err := p.quoted()
	if err != nil {
		return err
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	if key {
		p.out = append(p.out, p.in[start:p.pos]...)
		return nil
	}
	if p.depth+1 > maxDepth {
		return p.fail("nested too deep")
	}
	ns, res := p.r.rewrite(s, p.depth+1)
	p.res.Malformed = p.res.Malformed || res.Malformed
	if !res.Changed {
		p.out = append(p.out, p.in[start:p.pos]...)
		return nil
	}
	p.res.Changed = true
	p.out = append(p.out, "s:"...)
	p.out = strconv.AppendInt(p.out, int64(len(ns)), 10)
	p.out = append(p.out, ':', '"')
	p.out = append(p.out, ns...)
	p.out = append(p.out, '"', ';')
	return nil
}

// container parses N:{key value …} after a: or O:…: (the count is next).
// The header is copied from start.
func (p *parser) container(start int) error {
	n, err := p.uint()
	if err != nil {
		return err
	}
	if err := p.expect(":{"); err != nil {
		return err
	}
	p.out = append(p.out, p.in[start:p.pos]...)
	p.depth++
	if p.depth > maxDepth {
		return p.fail("nested too deep")
	}
	for i := 0; i < n; i++ {
		if err := p.value(true); err != nil {
			return err
		}
		if err := p.value(false); err != nil {
			return err
		}
	}
	p.depth--
	end := p.pos
	if err := p.expect("}"); err != nil {
		return err
	}
	p.out = append(p.out, p.in[end:p.pos]...)
	return nil
}
