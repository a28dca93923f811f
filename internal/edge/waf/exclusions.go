package waf

import (
	"regexp"

	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/aipress/aipress/internal/site"
)

// ruleRemover is what Coraza's transactions offer for ctl:ruleRemoveById
// and ctl:ruleRemoveTargetById; site exclusions use it per request, so the
// 50,000 sites of an edge share one rule set per paranoia level (ruleSet
// checks that transactions have it).
type ruleRemover interface {
	RemoveRuleByID(id int)
	RemoveRuleTargetByID(id int, variable variables.RuleVariable, key string, keyRx *regexp.Regexp)
}

// argVariables are the collections an argument exclusion removes the
// argument from: its value (ARGS, and the GET/POST halves rules may name)
// and its name.
var argVariables = []variables.RuleVariable{
	variables.Args, variables.ArgsGet, variables.ArgsPost,
	variables.ArgsNames, variables.ArgsGetNames, variables.ArgsPostNames,
}

// exclusions are the site exclusions that apply to one request.
type exclusions []site.WAFExclusion

// wholeRule reports whether rule id is off for the request.
func (ex exclusions) wholeRule(id int) bool {
	for _, e := range ex {
		if e.Argument == "" && e.RuleID == id {
			return true
		}
	}
	return false
}

// applyExclusions lifts, for this transaction only, the rules and rule
// targets that the site's exclusions name for path, and returns the
// exclusions that applied. An argument exclusion covers the argument under
// its own name (query, form, multipart field) and as a JSON key
// (json.<name>). It must run before the request's headers are processed.
func applyExclusions(tx types.Transaction, path string, list *[]site.WAFExclusion) exclusions {
	if list == nil {
		return nil
	}
	var applied exclusions
	for _, e := range *list {
		if e.MatchesPath(path) {
			applied = append(applied, e)
		}
	}
	if len(applied) == 0 {
		return nil
	}
	rr, ok := tx.(ruleRemover)
	if !ok { // checked when the rule set was built; fail closed
		return nil
	}
	for _, e := range applied {
		for _, id := range twinsOf(e.RuleID) {
			if e.Argument == "" {
				rr.RemoveRuleByID(id)
				continue
			}
			for _, v := range argVariables {
				rr.RemoveRuleTargetByID(id, v, e.Argument, nil)
				rr.RemoveRuleTargetByID(id, v, "json."+e.Argument, nil)
			}
		}
	}
	return applied
}
