package site

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of WAF exclusions.
const (
	// MaxWAFExclusions is how many exclusions one site may have.
	MaxWAFExclusions = 50
	// MaxWAFExclusionPath is the longest exclusion path, in bytes.
	MaxWAFExclusionPath = 256
	// MaxWAFArgument is the longest argument name, in bytes.
	MaxWAFArgument = 100
)

// ErrInvalidExclusion is returned (wrapped) for a malformed WAF exclusion.
var ErrInvalidExclusion = errors.New("invalid WAF exclusion")

// WAFExclusion lifts one WAF rule for one path of a site, entirely or for
// one request argument only: the owner's fix for a false positive.
//
// Path is the request's URL path (decoded, without the query) and matches
// exactly, or — when it ends in "*" — as a prefix: "/" is the front page
// only, "/wp-json/wc/*" everything under /wp-json/wc/, "/*" the whole site.
// A request whose path is not clean (dot segments, "//") matches no
// exclusion.
//
// Argument, when set, is the name of the request argument (query string,
// form field, multipart field, or JSON key: "content" covers a JSON body's
// top-level "content", which the WAF calls json.content; "meta.title" a
// nested key) that the rule no longer inspects; everything else stays
// inspected. Argument names match case-insensitively, as in ModSecurity.
// Empty: the rule is off for the path.
type WAFExclusion struct {
	RuleID   int    `json:"rule_id"`
	Path     string `json:"path"`
	Argument string `json:"argument,omitempty"`
}

// String returns the exclusion in the CLI's RULE:PATH[:ARGUMENT] form.
func (e WAFExclusion) String() string {
	s := strconv.Itoa(e.RuleID) + ":" + e.Path
	if e.Argument != "" {
		s += ":" + e.Argument
	}
	return s
}

// ParseWAFExclusion parses RULE:PATH[:ARGUMENT] (e.g. "942190:/:s") and
// checks its syntax (Validate). Whether the rule exists is for the caller
// to check.
func ParseWAFExclusion(s string) (WAFExclusion, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return WAFExclusion{}, fmt.Errorf("%w %q: want RULE:PATH or RULE:PATH:ARGUMENT, e.g. 942190:/:s", ErrInvalidExclusion, s)
	}
	id, err := strconv.Atoi(parts[0])
	if err != nil {
		return WAFExclusion{}, fmt.Errorf("%w %q: rule %q is not a number", ErrInvalidExclusion, s, parts[0])
	}
	e := WAFExclusion{RuleID: id, Path: parts[1]}
	if len(parts) == 3 {
		e.Argument = parts[2]
		if e.Argument == "" {
			return WAFExclusion{}, fmt.Errorf("%w %q: empty argument (leave out the last ':' to lift the rule for the whole path)", ErrInvalidExclusion, s)
		}
	}
	if err := e.Validate(); err != nil {
		return WAFExclusion{}, err
	}
	return e, nil
}

// Validate checks the exclusion's syntax: a rule id in CRS's range
// (1–999,999), a clean absolute path of at most MaxWAFExclusionPath bytes
// without ':', '?', '#', '\', spaces or control characters, with '*' only as
// its last character, and an argument of 1–MaxWAFArgument letters, digits,
// '_', '-', '.', '[' or ']'.
func (e WAFExclusion) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidExclusion, e, fmt.Sprintf(format, args...))
	}
	if e.RuleID < 1 || e.RuleID > 999999 {
		return bad("rule id %d is out of range (1 to 999999)", e.RuleID)
	}
	if err := validExclusionPath(e.Path); err != "" {
		return bad("path %q %s", e.Path, err)
	}
	if e.Argument != "" && !ValidWAFArgument(e.Argument) {
		return bad("argument %q: use 1 to %d letters, digits, '_', '-', '.', '[' or ']'", e.Argument, MaxWAFArgument)
	}
	return nil
}

// ValidWAFArgument reports whether name may be an exclusion's argument.
func ValidWAFArgument(name string) bool {
	if name == "" || len(name) > MaxWAFArgument {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// validExclusionPath returns why p is not a valid exclusion path, or "".
func validExclusionPath(p string) string {
	switch {
	case p == "":
		return "is empty"
	case p[0] != '/':
		return "must start with '/'"
	case len(p) > MaxWAFExclusionPath:
		return fmt.Sprintf("is longer than %d bytes", MaxWAFExclusionPath)
	case !utf8.ValidString(p):
		return "is not UTF-8"
	}
	for i, r := range p {
		switch {
		case r == '*' && i != len(p)-1:
			return "may have '*' only at its end"
		case r == ':' || r == '?' || r == '#' || r == '\\':
			return fmt.Sprintf("may not contain %q", r)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return "may not contain spaces or control characters"
		}
	}
	if !CleanURLPath(strings.TrimSuffix(p, "*")) {
		return "is not clean (no '//', '.' or '..' segments)"
	}
	return ""
}

// CleanURLPath reports whether p has no empty ("//"), "." or ".." segment.
// A trailing slash is allowed.
func CleanURLPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

// MatchesPath reports whether the exclusion applies to a request for the
// URL path p (decoded). Unclean paths match nothing.
func (e WAFExclusion) MatchesPath(p string) bool {
	if prefix, ok := strings.CutSuffix(e.Path, "*"); ok {
		return strings.HasPrefix(p, prefix) && CleanURLPath(p)
	}
	return p == e.Path && CleanURLPath(p)
}

// Covers reports whether the exclusion lifts rule for argument (empty: the
// rule as a whole) on path.
func (e WAFExclusion) Covers(rule int, path, argument string) bool {
	if e.RuleID != rule || !e.MatchesPath(path) {
		return false
	}
	return e.Argument == "" || strings.EqualFold(e.Argument, argument)
}

// WAF event actions: what the WAF did with the request.
const (
	WAFActionBlock  = "block"  // refused (403, or 400/413 for malformed or oversized bodies)
	WAFActionDetect = "detect" // would have been refused; the site's WAF is in detect mode
)

// WAFEvent is one WAF rule match on a request the WAF refused (or, in
// detect mode, would have refused): what `aipress site waf events` shows.
type WAFEvent struct {
	// ID is assigned by the store: it increases with every event stored.
	ID   int64  `json:"id,omitempty"`
	Site string `json:"site"`
	// SiteUID is the site's metadata.uid, which the control plane sets
	// when it stores the event: a site deleted and created again under
	// its name does not inherit its events.
	SiteUID   string    `json:"-"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Method    string    `json:"method"`
	// Path is the request's URL path (decoded, without the query).
	Path    string `json:"path"`
	RuleID  int    `json:"rule_id"`
	Message string `json:"message"`
	// Variable is what the rule matched, e.g. "ARGS_GET:s" or
	// "REQUEST_HEADERS:User-Agent"; Argument the request argument it
	// names (JSON keys without their "json." prefix), if any.
	Variable string `json:"variable,omitempty"`
	Argument string `json:"argument,omitempty"`
	Action   string `json:"action"`
	Paranoia int    `json:"paranoia"`
}
