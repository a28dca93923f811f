package sqlscan

import (
	"slices"
	"sort"
	"strings"
)

// Assignment names of the character-set group.
const (
	nameNames        = "names"
	nameCharacterSet = "character set"
)

// charsetGroup are the assignments NAMES and CHARACTER SET supersede.
var charsetGroup = setOf("character_set_client character_set_connection character_set_results collation_connection")

// setKeywords start SET items other than variable assignments: no
// variable is tracked under these names (Replay writes names unqualified).
var setKeywords = setOf("global session local names character charset password role default transaction statement")

func inGroup(name string) bool {
	return name == nameNames || name == nameCharacterSet || charsetGroup[name]
}

// classifySet classifies the tokens after SET (not SET STATEMENT).
func classifySet(toks []token) Stmt {
	var items [][]token
	start, depth := 0, 0
	for i, t := range toks {
		switch {
		case t.isPunct("("):
			depth++
		case t.isPunct(")"):
			depth--
		case t.isPunct(",") && depth == 0:
			items = append(items, toks[start:i])
			start = i + 1
		}
	}
	items = append(items, toks[start:])

	var sets []Assignment
	pin := ""
	global, session := false, false
	for _, it := range items {
		a, isGlobal, why := setItem(it)
		if isGlobal {
			global = true
			continue
		}
		session = true
		if why != "" {
			if pin == "" {
				pin = why
			}
			continue
		}
		sets = append(sets, a)
	}
	switch {
	case pin != "":
		return Stmt{Kind: Set, Pin: pin}
	case global && session:
		return Stmt{Kind: Set, Pin: PinSetGlobalMixed}
	case global:
		return Stmt{Kind: Other} // site users may not; nothing to track
	}
	return Stmt{Kind: Set, Sets: sets}
}

// setItem classifies one assignment of a SET list: the tracked
// assignment, or whether it is global, or why it pins.
func setItem(it []token) (a Assignment, global bool, pin string) {
	if len(it) == 0 {
		return a, false, PinSetUntrackable
	}
	switch {
	case it[0].is("GLOBAL"):
		return a, true, ""
	case it[0].is("SESSION") || it[0].is("LOCAL"):
		it = it[1:]
		if len(it) == 0 {
			return a, false, PinSetUntrackable
		}
	}
	t := it[0]
	switch {
	case t.kind == tUserVar:
		return a, false, PinUserVariable
	case t.is("NAMES"):
		v, ok := namesValue(it[1:])
		if !ok {
			return a, false, PinSetExpression
		}
		return Assignment{Name: nameNames, Value: v}, false, ""
	case t.is("CHARACTER") && len(it) > 1 && it[1].is("SET"), t.is("CHARSET"):
		rest := it[1:]
		if t.is("CHARACTER") {
			rest = it[2:]
		}
		if len(rest) == 1 && rest[0].is("DEFAULT") {
			return Assignment{Name: nameCharacterSet, Value: "DEFAULT"}, false, ""
		}
		cs, ok := nameValue(rest)
		if !ok {
			return a, false, PinSetExpression
		}
		return Assignment{Name: nameCharacterSet, Value: quote(cs)}, false, ""
	case t.is("PASSWORD"):
		return a, false, PinSetPassword
	case t.is("ROLE") || t.is("DEFAULT") && len(it) > 1 && it[1].is("ROLE"):
		return a, false, PinSetRole
	case t.is("TRANSACTION"):
		return a, false, PinSetTransaction
	}
	var name string
	switch t.kind {
	case tSysVar:
		name = strings.TrimPrefix(t.up, "@@")
		switch {
		case strings.HasPrefix(name, "global."):
			return a, true, ""
		case strings.HasPrefix(name, "session."):
			name = strings.TrimPrefix(name, "session.")
		case strings.HasPrefix(name, "local."):
			name = strings.TrimPrefix(name, "local.")
		}
	case tWord:
		name = strings.ToLower(t.text)
	case tQuoted:
		name = strings.ToLower(unquote(t.text))
	default:
		return a, false, PinSetUntrackable
	}
	if !validName(name) || isDigit(name[0]) || setKeywords[name] || len(it) < 2 || !(it[1].isPunct("=") || it[1].isPunct(":=")) {
		return a, false, PinSetUntrackable
	}
	v, ok := literal(it[2:])
	if !ok {
		return a, false, PinSetExpression
	}
	switch {
	case oneShotVars[name]:
		return a, false, PinOneShot
	case name == "autocommit":
		switch strings.ToLower(strings.Trim(v, `'"`)) {
		case "1", "on", "true":
			v = "1"
		case "default":
		case "0", "off", "false":
			return a, false, PinAutocommitOff
		default:
			return a, false, PinSetExpression
		}
	case charsetGroup[name]:
		// Names of character sets and collations compare as written.
		if u := strings.ToLower(strings.Trim(v, "'\"`")); validName(u) && v != "DEFAULT" && v != "null" {
			v = quote(u)
		}
	}
	return Assignment{Name: name, Value: v}, false, ""
}

// validName reports whether s is a plain lower-case name.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func quote(name string) string { return "'" + name + "'" }

// nameValue is a charset or collation name given as a word, a quoted
// identifier or a string.
func nameValue(toks []token) (string, bool) {
	if len(toks) != 1 {
		return "", false
	}
	var s string
	switch t := toks[0]; t.kind {
	case tWord:
		s = t.text
	case tQuoted, tString:
		s = unquote(t.text)
	default:
		return "", false
	}
	s = strings.ToLower(s)
	return s, validName(s)
}

// namesValue canonicalizes what follows NAMES: DEFAULT, cs, or cs
// COLLATE co; the collation is filled in from the character set's
// default when known.
func namesValue(toks []token) (string, bool) {
	if len(toks) == 1 && toks[0].is("DEFAULT") {
		return "DEFAULT", true
	}
	co := ""
	if len(toks) == 3 && toks[1].is("COLLATE") {
		if !toks[2].is("DEFAULT") {
			c, ok := nameValue(toks[2:])
			if !ok {
				return "", false
			}
			co = c
		}
		toks = toks[:1]
	}
	cs, ok := nameValue(toks)
	if !ok {
		return "", false
	}
	if co == "" {
		co = defaultCollations[cs]
	}
	if co == "" {
		return quote(cs), true
	}
	return quote(cs) + " COLLATE " + quote(co), true
}

// Literal is the assignment of string value to session variable name as
// Scan records `SET SESSION name = 'value'`.
func Literal(name, value string) Assignment {
	v := strings.ReplaceAll(strings.ReplaceAll(value, `\`, `\\`), "'", "''")
	return Assignment{Name: strings.ToLower(name), Value: "'" + v + "'"}
}

// literal is a SET value that is a literal, DEFAULT or a plain name:
// its canonical text.
func literal(toks []token) (string, bool) {
	switch {
	case len(toks) == 2 && (toks[0].isPunct("-") || toks[0].isPunct("+")) && toks[1].kind == tNumber && isNumber(toks[1].text):
		return toks[0].text + toks[1].text, true
	case len(toks) != 1:
		return "", false
	}
	t := toks[0]
	switch t.kind {
	case tString, tQuoted:
		return t.text, true
	case tNumber:
		return t.text, isNumber(t.text) || validName(strings.ToLower(t.text))
	case tWord:
		if t.up == "DEFAULT" {
			return "DEFAULT", true
		}
		l := strings.ToLower(t.text)
		return l, validName(l)
	}
	return "", false
}

func isNumber(s string) bool {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		for _, c := range s[2:] {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
		return len(s) > 2
	}
	digits, dot, exp := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			digits = true
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && digits && !exp:
			exp = true
			digits = false
			if i+1 < len(s) && (s[i+1] == '+' || s[i+1] == '-') {
				i++
			}
		default:
			return false
		}
	}
	return digits
}

// NewState is the state of a session whose handshake asked for the
// character set and collation with this id (0: the server's default).
// A handshake sets what SET NAMES sets, so the state is that NAMES
// assignment. Id 0 and ids MariaDB 10.11 does not know give the server's
// global character_set_client, character_set_results and
// collation_connection: the empty state (Replay turns a connection back
// to it with those three set to DEFAULT). Character sets MariaDB refuses
// for clients (ucs2, utf16, utf16le, utf32) fail the handshake; their
// state is the empty one too. A backend connection's state starts as
// NewState of the collation its own handshake asked for.
func NewState(collationID uint8) State {
	c := collations[collationID]
	switch c.charset {
	case "", "ucs2", "utf16", "utf16le", "utf32":
		return State{}
	}
	return State{vars: []Assignment{{Name: nameNames, Value: quote(c.charset) + " COLLATE " + quote(c.name)}}}
}

// Collation returns the collation id whose NewState has s's character-set
// group (a connection logged in with it needs no SET NAMES replayed), or
// false when s's group is not one such NAMES.
func (s State) Collation() (uint8, bool) {
	g, _ := s.split()
	if len(g) != 1 || g[0].Name != nameNames {
		return 0, false
	}
	id, ok := namesCollation[g[0].Value]
	return id, ok
}

// KnownNames reports whether a is a SET NAMES of a character set and
// collation that belong together and that MariaDB 10.11 accepts for a
// client (as NewState records one): a SET that cannot fail, and gives no
// warning.
func (a Assignment) KnownNames() bool {
	if a.Name != nameNames {
		return false
	}
	id, ok := namesCollation[a.Value]
	return ok && len(NewState(id).vars) == 1
}

// namesCollation maps NewState's NAMES value of each collation to its id.
var namesCollation = func() map[string]uint8 {
	m := map[string]uint8{}
	for id, c := range collations {
		if c.name != "" {
			m[quote(c.charset)+" COLLATE "+quote(c.name)] = uint8(id)
		}
	}
	return m
}()

// NoBackslashEscapes reports whether the tracked sql_mode has
// NO_BACKSLASH_ESCAPES (false when sql_mode is not tracked: the server's
// global sql_mode, which the platform never sets so).
func (s State) NoBackslashEscapes() bool {
	for _, v := range s.vars {
		if v.Name == "sql_mode" {
			return strings.Contains(strings.ToUpper(v.Value), "NO_BACKSLASH_ESCAPES")
		}
	}
	return false
}

// Apply records assignments (in order; a later one of a name replaces an
// earlier one; NAMES and CHARACTER SET reset the character_set_* and
// collation_connection variables they imply).
func (s *State) Apply(a []Assignment) {
	for _, x := range a {
		if inGroup(x.Name) {
			s.vars = append(s.vars, x)
			continue
		}
		s.vars = slices.DeleteFunc(s.vars, func(v Assignment) bool { return v.Name == x.Name })
		if x.Value != "DEFAULT" {
			s.vars = append(s.vars, x)
		}
	}
	s.normalizeGroup()
}

// With returns s with assignments a applied (s itself is not changed).
func (s State) With(a []Assignment) State {
	n := State{vars: slices.Clone(s.vars)}
	n.Apply(a)
	return n
}

// The character-set group sets three slots: the client's character set,
// the results', and the connection's character set and collation.
const (
	slotClient = 1 << iota
	slotResults
	slotConnection
	allSlots = slotClient | slotResults | slotConnection
)

func slotsOf(name string) int {
	switch name {
	case nameNames, nameCharacterSet:
		return allSlots
	case "character_set_client":
		return slotClient
	case "character_set_results":
		return slotResults
	case "character_set_connection", "collation_connection":
		return slotConnection // each sets both
	}
	return 0
}

// resets are the assignments that give each slot its global value, as
// on a connection whose handshake named no character set the server
// knows (character_set_connection=DEFAULT would not: it takes the
// character set's default collation, not the global collation).
var resets = []Assignment{
	{Name: "character_set_client", Value: "DEFAULT"},
	{Name: "character_set_results", Value: "DEFAULT"},
	{Name: "collation_connection", Value: "DEFAULT"},
}

func isReset(a Assignment) bool {
	return a.Value == "DEFAULT" && slices.ContainsFunc(resets, func(r Assignment) bool { return r.Name == a.Name })
}

// normalizeGroup drops the character-set assignments whose every slot a
// later one sets, and resets to the global value that no NAMES or
// CHARACTER SET precedes (the slot has its global value already).
func (s *State) normalizeGroup() {
	for {
		n := len(s.vars)
		covered := 0
		for i := len(s.vars) - 1; i >= 0; i-- {
			slots := slotsOf(s.vars[i].Name)
			if slots == 0 {
				continue
			}
			if slots&^covered == 0 {
				s.vars = slices.Delete(s.vars, i, i+1)
				continue
			}
			covered |= slots
		}
		all := false
		s.vars = slices.DeleteFunc(s.vars, func(v Assignment) bool {
			if slotsOf(v.Name) == allSlots {
				all = true
			}
			return !all && isReset(v)
		})
		if len(s.vars) == n {
			return
		}
	}
}

// split returns the character-set group in order and the other
// variables by name.
func (s State) split() (group []Assignment, other map[string]string) {
	other = map[string]string{}
	for _, v := range s.vars {
		if inGroup(v.Name) {
			group = append(group, v)
		} else {
			other[v.Name] = v.Value
		}
	}
	return group, other
}

// Same reports whether s and o hold the same assignments in the same
// order: then they are Equal (a cheaper test first).
func (s State) Same(o State) bool { return slices.Equal(s.vars, o.vars) }

// Equal reports whether s and o set the same values.
func (s State) Equal(o State) bool {
	sg, so := s.split()
	og, oo := o.split()
	if !slices.Equal(sg, og) || len(so) != len(oo) {
		return false
	}
	for k, v := range so {
		if w, ok := oo[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Replay returns the statements (at most a few, each one SET) that turn a
// backend connection whose state is from into s: variables only from has
// are set to DEFAULT, the others to s's values. It returns nil when the
// states are Equal. The values are the SQL literals Scan took from the
// client's statements, emitted as they were written.
func (s State) Replay(from State) []string {
	sg, so := s.split()
	fg, fo := from.split()
	var parts []string
	if !slices.Equal(sg, fg) {
		var emit []Assignment
		switch {
		case len(fg) <= len(sg) && slices.Equal(fg, sg[:len(fg)]):
			emit = sg[len(fg):]
		case len(sg) > 0 && slotsOf(sg[0].Name) == allSlots:
			emit = sg
		default:
			// Give the slots s does not set their global values first.
			set := 0
			for _, a := range sg {
				set |= slotsOf(a.Name)
			}
			for _, r := range resets {
				if slotsOf(r.Name)&set == 0 {
					emit = append(emit, r)
				}
			}
			emit = append(emit, sg...)
		}
		for _, a := range emit {
			parts = append(parts, a.sql())
		}
	}
	names := make([]string, 0, len(so)+len(fo))
	for k := range so {
		names = append(names, k)
	}
	for k := range fo {
		if _, ok := so[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		v, ok := so[k]
		if !ok {
			v = "DEFAULT"
		}
		if w, ok := fo[k]; ok && w == v {
			continue
		}
		parts = append(parts, Assignment{Name: k, Value: v}.sql())
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{"SET " + strings.Join(parts, ", ")}
}

// sql is the assignment as an item of a SET list.
func (a Assignment) sql() string {
	switch a.Name {
	case nameNames:
		return "NAMES " + a.Value
	case nameCharacterSet:
		return "CHARACTER SET " + a.Value
	}
	return a.Name + "=" + a.Value
}
