package waf

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// RuleInfo describes one rule of the rule set (ours or the CRS's) as its
// configuration text says.
type RuleInfo struct {
	ID  int
	Msg string
	// Paranoia is the rule's CRS paranoia level (0: not tagged).
	Paranoia int
	// Excludable says whether a site may exclude the rule: it reports
	// something (it has a message) and is neither CRS set-up and
	// initialization (900xxx, 901xxx) nor the anomaly evaluation (949xxx),
	// which would turn every rule off at once.
	Excludable bool
}

// RuleMultipartFields is the rule id the middleware reports when the fields
// of a multipart body (everything but its files) are larger than the body
// limit. It is enforced in Go, before Coraza parses the body, and can be
// excluded like a SecLang rule.
const RuleMultipartFields = 10009

// twins maps a CRS rule to our JSON twin of it (rules/json.conf): an
// exclusion of the CRS rule lifts both.
var twins = map[int]int{943110: 10210, 943120: 10211}

var (
	catalogOnce sync.Once
	catalog     map[int]RuleInfo
	catalogErr  error
)

// LookupRule returns what the rule set says about rule id.
func LookupRule(id int) (RuleInfo, bool) {
	c, err := rules()
	if err != nil {
		return RuleInfo{}, false
	}
	r, ok := c[id]
	return r, ok
}

// CheckExcludable returns an error saying why rule id may not be excluded
// by a site, or nil.
func CheckExcludable(id int) error {
	c, err := rules()
	if err != nil {
		return err
	}
	r, ok := c[id]
	switch {
	case !ok:
		return fmt.Errorf("rule %d is not in the WAF's rule set (OWASP CRS %s and AIPress's rules)", id, crsVersion)
	case !r.Excludable && id >= 949000 && id < 950000:
		return fmt.Errorf("rule %d (%s) is the anomaly evaluation; exclude the rules that matched instead", id, r.Msg)
	case !r.Excludable:
		return fmt.Errorf("rule %d sets up the rule set; it is not a detection", id)
	}
	return nil
}

// crsVersion is the CRS release embedded (coraza-coreruleset v4.25.0).
const crsVersion = "4.25"

// rules returns the catalog of every rule in the configuration text: our
// files and the CRS's request rules. It is read once from the embedded
// files (no WAF is built).
func rules() (map[int]RuleInfo, error) {
	catalogOnce.Do(func() {
		catalog = map[int]RuleInfo{}
		add := func(data []byte) {
			for _, r := range parseRules(string(data)) {
				catalog[r.ID] = r
			}
		}
		for _, name := range ruleFiles {
			data, err := rulesFS.ReadFile("rules/" + name)
			if err != nil {
				catalogErr = fmt.Errorf("waf: %w", err)
				return
			}
			add(data)
		}
		names, err := fs.Glob(coreruleset.FS, "@owasp_crs/REQUEST-*.conf")
		if err != nil || len(names) == 0 {
			catalogErr = fmt.Errorf("waf: no CRS request rules embedded (%v)", err)
			return
		}
		for _, name := range names {
			data, err := fs.ReadFile(coreruleset.FS, name)
			if err != nil {
				catalogErr = fmt.Errorf("waf: %w", err)
				return
			}
			add(data)
		}
		catalog[RuleMultipartFields] = RuleInfo{ID: RuleMultipartFields, Msg: "Multipart fields (all but the files) larger than the WAF inspects", Excludable: true}
	})
	return catalog, catalogErr
}

var (
	ruleIDRE    = regexp.MustCompile(`\bid:(\d+)`)
	ruleMsgRE   = regexp.MustCompile(`\bmsg:'((?:[^'\\]|\\.)*)'`)
	ruleLevelRE = regexp.MustCompile(`paranoia-level/(\d)`)
)

// parseRules splits SecLang text into directives (a directive starts at a
// line beginning with "Sec"; indented chain links belong to the directive
// above them) and reads the id, message and paranoia tag of each rule.
func parseRules(text string) []RuleInfo {
	var out []RuleInfo
	var cur strings.Builder
	flush := func() {
		block := cur.String()
		cur.Reset()
		m := ruleIDRE.FindStringSubmatch(block)
		if m == nil {
			return
		}
		id, err := strconv.Atoi(m[1])
		if err != nil {
			return
		}
		r := RuleInfo{ID: id}
		if mm := ruleMsgRE.FindStringSubmatch(block); mm != nil {
			r.Msg = strings.ReplaceAll(mm[1], `\'`, `'`)
		}
		if ml := ruleLevelRE.FindStringSubmatch(block); ml != nil {
			r.Paranoia, _ = strconv.Atoi(ml[1])
		}
		r.Excludable = r.Msg != "" && !strings.Contains(block, "tag:'anomaly-evaluation'") &&
			!(id >= 949000 && id < 950000) && !(id >= 900000 && id < 902000)
		out = append(out, r)
	}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "Sec") {
			flush()
		}
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			cur.WriteString(line)
		}
	}
	flush()
	return out
}

// crsPattern returns the operand of the "@rx" of CRS rule id, which must
// be anchored with "^": the pattern its JSON twin adapts.
func crsPattern(file string, id int) (string, error) {
	data, err := fs.ReadFile(coreruleset.FS, "@owasp_crs/"+file)
	if err != nil {
		return "", fmt.Errorf("waf: CRS rule %d: %w", id, err)
	}
	re := regexp.MustCompile(`SecRule ARGS_NAMES "@rx \^((?:[^"\\]|\\.)*)" \\\s*"id:` + strconv.Itoa(id) + `,`)
	m := re.FindStringSubmatch(string(data))
	if m == nil {
		return "", fmt.Errorf("waf: CRS rule %d is no longer an anchored ARGS_NAMES pattern in %s: update rules/json.conf", id, file)
	}
	return `^json\.` + m[1], nil
}

// ruleFiles are our configuration files, in the order they are loaded
// (before the CRS rules).
var ruleFiles = []string{"base.conf", "crs-setup.conf", "wordpress.conf", "json.conf"}

// twinsOf returns the rules an exclusion of id lifts: id and its twin.
func twinsOf(id int) []int {
	if t, ok := twins[id]; ok {
		return []int{id, t}
	}
	return []int{id}
}

// sortedIDs returns the catalog's rule ids in order (tests).
func sortedIDs(c map[int]RuleInfo) []int {
	ids := make([]int, 0, len(c))
	for id := range c {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
