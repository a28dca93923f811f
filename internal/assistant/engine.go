package assistant

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Step is one tool call of a Plan.
type Step struct {
	Tool string         `json:"tool"`
	Args map[string]any `json:"args,omitempty"`
	// ForEachSiteOf, when set, runs the step once per site that the
	// previous step (a listSites) returned and that the organisation of
	// this name owns ("*": every site); the argument value SiteRef is
	// replaced by each site's name.
	ForEachSiteOf string `json:"for_each_site_of,omitempty"`
}

// Argument values that Run fills in from earlier steps.
const (
	// SiteRef is each site's name in a ForEachSiteOf step.
	SiteRef = "$site"
	// LatestBackupRef is the ref of the newest snapshot the previous step
	// (a listBackups) returned.
	LatestBackupRef = "$latest_backup"
)

// Plan is what the offline engine makes of a request.
type Plan struct {
	Steps []Step `json:"steps"`
}

// NotUnderstood is Parse's error for a request it has no rule for.
type NotUnderstood struct{ Request string }

// Capabilities lists, for people, what the offline engine understands.
var Capabilities = []string{
	`list my sites`, `what's the status of example.com`,
	`create a site shop.example.com titled "Shop" [admin email me@example.com] [on the pro plan] [in org acme]`,
	`back up example.com`, `back up every site of acme`, `list the backups of example.com`,
	`restore example.com from its latest backup`, `clone example.com to copy.example.com`,
	`purge the cache of example.com`, `suspend example.com`, `resume example.com`, `delete example.com`,
	`move example.com to shard-2`, `set the cache ttl of example.com to 300 seconds`,
	`set the waf of example.com to block|detect|off`, `enable|disable the https redirect of example.com`,
	`change the plan of example.com to pro`, `list jobs [of example.com]`, `show job <id>`,
	`who am i`, `list my organisations`,
}

func (e *NotUnderstood) Error() string {
	return fmt.Sprintf("I did not understand %q. I can do these (offline engine):\n  - %s",
		e.Request, strings.Join(Capabilities, "\n  - "))
}

var (
	emailRe  = regexp.MustCompile(`[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+`)
	domainRe = regexp.MustCompile(`\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}\b`)
	refRe    = regexp.MustCompile(`\b([a-z0-9][a-z0-9-]*:[0-9a-f]{4,})\b`)
	// atRe is an RFC 3339 time (the request is lower-cased): a
	// point-in-time restore's.
	atRe     = regexp.MustCompile(`\b(\d{4}-\d{2}-\d{2}t\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:z|[+-]\d{2}:\d{2}))`)
	shardRe  = regexp.MustCompile(`\bshard[- ]?(\d+)\b`)
	toWordRe = regexp.MustCompile(`\b(?:to|onto) (?:the )?(?:shard )?([a-z][a-z0-9-]*)\b`)
	orgRe    = regexp.MustCompile(`\b(?:of|in|for|from|belonging to|owned by|under) (?:the )?(?:org(?:anisation|anization)? )?([a-z][a-z0-9-]*)\b`)
	inOrgRe  = regexp.MustCompile(`\b(?:in|for|under) (?:the )?(?:org|organisation|organization) ([a-z][a-z0-9-]*)\b`)
	titleRe  = regexp.MustCompile(`(?i)\b(?:titled|called|named|with (?:the )?title|title)\s+(?:"([^"]+)"|'([^']+)'|(.+?))(?:\s+(?:with|and|on|in|for|admin)\b|$)`)
	numRe    = regexp.MustCompile(`\b(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h)?\b`)
	planRe   = regexp.MustCompile(`\b(dev|basic|pro|business)\b`)
	jobIDRe  = regexp.MustCompile(`\bjob (?:id )?([a-z0-9][a-z0-9-]{3,})\b`)
	pathRe   = regexp.MustCompile(`(?:^|\s)(/[^\s]*)`)
	politeRe = regexp.MustCompile(`^(?:(?:please|kindly|hey|hi|ok|okay|assistant|aipress|can you|could you|would you|will you|i want to|i'd like to|i would like to|i need to|go ahead and|let's|lets)[ ,]+)+`)
)

func has(s string, words ...string) bool {
	for _, w := range words {
		if regexp.MustCompile(`\b` + regexp.QuoteMeta(w) + `\b`).MatchString(s) {
			return true
		}
	}
	return false
}

func one(tool string, args map[string]any) *Plan {
	return &Plan{Steps: []Step{{Tool: tool, Args: args}}}
}

// Parse maps a plain request to a plan of tool calls, deterministically.
// It returns *NotUnderstood when no rule fits.
func Parse(request string) (*Plan, error) {
	orig := strings.TrimSpace(request)
	s := strings.ToLower(orig)
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimRight(s, "?!. ")
	s = politeRe.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "’", "'")
	email := emailRe.FindString(s)
	noMail := emailRe.ReplaceAllString(s, " ")
	domains := domainRe.FindAllString(noMail, -1)
	dom := ""
	if len(domains) > 0 {
		dom = domains[0]
	}
	backupWord := has(s, "back up", "backup", "backups", "snapshot", "snapshots", "backed up")
	siteArg := map[string]any{"name": dom}
	nu := &NotUnderstood{Request: orig}

	switch {
	case has(s, "who am i", "whoami", "my role", "my account", "my token"):
		return one("whoami", nil), nil

	case backupWord && dom == "" && has(s, "every", "all", "each") && has(s, "site", "sites", "websites"):
		org := "*"
		rest := s[strings.Index(s, "site"):]
		if m := orgRe.FindStringSubmatch(rest); m != nil && m[1] != "me" && m[1] != "my" && m[1] != "mine" {
			org = m[1]
		}
		return &Plan{Steps: []Step{{Tool: "listSites", Args: map[string]any{"limit": 1000}},
			{Tool: "createBackup", Args: map[string]any{"name": SiteRef}, ForEachSiteOf: org}}}, nil

	case dom == "" && has(s, "org", "orgs", "organisation", "organisations", "organization", "organizations"):
		return one("listOrgs", nil), nil

	case dom != "" && has(s, "purge", "flush", "invalidate") ||
		dom != "" && has(s, "clear", "empty", "wipe", "refresh", "remove", "drop") && has(s, "cache", "cached"):
		args := map[string]any{"name": dom}
		if m := pathRe.FindStringSubmatch(noMail); m != nil {
			args["url"] = m[1]
		}
		return one("purgeSite", args), nil

	case dom != "" && has(s, "restore", "roll back", "rollback", "revert"):
		if m := atRe.FindStringSubmatch(noMail); m != nil {
			args := map[string]any{"name": dom, "at": strings.ToUpper(m[1])}
			if len(domains) > 1 {
				args["new_domain"] = domains[1]
			} else {
				args["in_place"] = true
			}
			return one("restoreSite", args), nil
		}
		if len(domains) > 1 && has(s, "to", "as", "into", "onto") {
			return clonePlan(domains[0], domains[1]), nil
		}
		if m := refRe.FindStringSubmatch(noMail); m != nil {
			return one("restoreBackup", map[string]any{"ref": m[1], "in_place": true}), nil
		}
		return &Plan{Steps: []Step{{Tool: "listBackups", Args: map[string]any{"site": dom, "limit": 1}},
			{Tool: "restoreBackup", Args: map[string]any{"ref": LatestBackupRef, "in_place": true}}}}, nil

	case len(domains) > 1 && has(s, "clone", "copy", "duplicate"):
		return clonePlan(domains[0], domains[1]), nil

	case dom != "" && has(s, "delete", "remove", "destroy", "drop", "get rid of", "tear down", "erase"):
		return one("deleteSite", siteArg), nil

	case dom != "" && has(s, "move", "migrate", "transfer", "relocate", "rehome"):
		target := ""
		if m := shardRe.FindStringSubmatch(noMail); m != nil {
			target = "shard-" + m[1]
		} else if m := toWordRe.FindStringSubmatch(strings.ReplaceAll(noMail, dom, " ")); m != nil {
			target = m[1]
		}
		if target == "" {
			return nil, nu
		}
		return one("moveSite", map[string]any{"name": dom, "target": target}), nil

	case dom != "" && has(s, "waf", "firewall"):
		args := map[string]any{"name": dom}
		waf := map[string]any{}
		paranoia := regexp.MustCompile(`paranoia(?: level)?(?: to)? (\d)`).FindStringSubmatch(s)
		switch {
		case paranoia != nil:
		case has(s, "block", "blocking", "enforce", "enforcing", "protect"):
			waf["mode"] = "block"
		case has(s, "detect", "detection", "detect-only", "monitor", "log only", "report only"):
			waf["mode"] = "detect"
		case has(s, "off", "disable", "turn off", "switch off", "deactivate"):
			waf["mode"] = "off"
		case has(s, "on", "enable", "turn on", "switch on", "activate"):
			waf["mode"] = "block"
		}
		if m := paranoia; m != nil {
			n, _ := strconv.Atoi(m[1])
			waf["paranoia_level"] = n
		}
		if len(waf) == 0 {
			return nil, nu
		}
		args["waf"] = waf
		return one("updateSite", args), nil

	case dom != "" && has(s, "cache", "caching", "ttl"):
		var ttl int
		switch {
		case has(s, "disable", "off", "turn off", "switch off", "no cache", "stop caching"):
			ttl = 0
		default:
			m := numRe.FindStringSubmatch(strings.ReplaceAll(noMail, dom, " "))
			if m == nil {
				return nil, nu
			}
			ttl, _ = strconv.Atoi(m[1])
			switch {
			case strings.HasPrefix(m[2], "m"):
				ttl *= 60
			case strings.HasPrefix(m[2], "h"):
				ttl *= 3600
			}
		}
		return one("updateSite", map[string]any{"name": dom, "cache": map[string]any{"ttl_seconds": ttl}}), nil

	case dom != "" && has(s, "https", "http to https", "ssl redirect", "redirect"):
		on := !has(s, "disable", "off", "turn off", "stop", "don't", "do not", "no longer")
		return one("updateSite", map[string]any{"name": dom, "https_redirect": on}), nil

	case dom != "" && has(s, "plan") && planRe.MatchString(s) && !has(s, "create", "new site"),
		dom != "" && has(s, "upgrade", "downgrade") && planRe.MatchString(s):
		return one("updateSite", map[string]any{"name": dom, "plan": planRe.FindString(s)}), nil

	case dom != "" && has(s, "rename", "retitle") || dom != "" && has(s, "title") && has(s, "set", "change", "update") && !has(s, "create", "new"):
		title := quoted(orig)
		if title == "" {
			if i := strings.LastIndex(strings.ToLower(orig), " to "); i >= 0 {
				title = strings.TrimSpace(orig[i+4:])
			}
		}
		if title == "" {
			return nil, nu
		}
		return one("updateSite", map[string]any{"name": dom, "title": title}), nil

	case dom != "" && has(s, "unsuspend", "resume", "reactivate", "re-enable", "reenable", "unpause", "bring back", "back online", "restart"):
		return one("resumeSite", siteArg), nil

	case dom != "" && has(s, "suspend", "disable", "pause", "deactivate", "take down", "take offline", "offline", "freeze", "block"):
		return one("suspendSite", siteArg), nil

	case dom != "" && !backupWord && has(s, "create", "new", "add", "launch", "set up", "setup", "make", "start", "spin up", "provision"):
		args := map[string]any{"domain": dom, "title": dom, "admin_email": "admin@" + dom}
		if email != "" {
			args["admin_email"] = email
		}
		if t := quoted(orig); t != "" {
			args["title"] = t
		} else if m := titleRe.FindStringSubmatch(emailRe.ReplaceAllString(orig, "")); m != nil {
			args["title"] = strings.TrimSpace(m[1] + m[2] + m[3])
		}
		if m := planRe.FindString(s); m != "" && has(s, "plan") {
			args["plan"] = m
		}
		if m := inOrgRe.FindStringSubmatch(noMail); m != nil {
			args["org"] = m[1]
		}
		return one("createSite", args), nil

	case backupWord && has(s, "list", "show", "which", "what", "when", "latest", "last", "my backups", "see"):
		args := map[string]any{}
		if dom != "" {
			args["site"] = dom
		}
		if len(args) == 0 {
			args = nil
		}
		return one("listBackups", args), nil

	case dom != "" && backupWord:
		return one("createBackup", siteArg), nil

	case jobIDRe.MatchString(noMail) && !has(s, "jobs"):
		return one("getJob", map[string]any{"id": jobIDRe.FindStringSubmatch(noMail)[1]}), nil

	case has(s, "jobs", "tasks", "operations"):
		args := map[string]any{}
		if dom != "" {
			args["site"] = dom
		}
		if has(s, "running", "active", "pending", "in progress", "ongoing") {
			args["phase"] = "Pending,Running"
		}
		if has(s, "failed", "failing") {
			args["phase"] = "Failed"
		}
		if len(args) == 0 {
			args = nil
		}
		return one("listJobs", args), nil

	case dom != "" && has(s, "status", "show", "get", "info", "details", "how is", "how's", "describe", "tell me about",
		"check", "look up", "inspect", "is", "state", "health", "up"):
		return one("getSite", siteArg), nil

	case dom == "" && has(s, "sites", "site", "websites", "domains", "blogs"):
		return one("listSites", nil), nil
	}
	return nil, nu
}

func clonePlan(from, to string) *Plan {
	return &Plan{Steps: []Step{{Tool: "listBackups", Args: map[string]any{"site": from, "limit": 1}},
		{Tool: "restoreBackup", Args: map[string]any{"ref": LatestBackupRef, "new_domain": to}}}}
}

func quoted(s string) string {
	for _, q := range []string{`"`, `'`, "“"} {
		closeQ := q
		if q == "“" {
			closeQ = "”"
		}
		if i := strings.Index(s, q); i >= 0 {
			if j := strings.Index(s[i+len(q):], closeQ); j > 0 {
				return s[i+len(q) : i+len(q)+j]
			}
		}
	}
	return ""
}

// StepResult is what one step (or one site of a ForEachSiteOf step) gave.
type StepResult struct {
	Step   Step           `json:"step"`
	Args   map[string]any `json:"args,omitempty"` // resolved
	Result *Result        `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// Run performs plan through l: read and write steps are called, destructive
// or costly ones (create a site, take a backup) come back as proposals (Result.Proposal) for the caller to Confirm.
// A step that needs an earlier step's answer (LatestBackupRef) fails when
// that step was not performed. Run stops at the first error and returns the
// results so far with it.
func Run(ctx context.Context, l *Layer, plan *Plan) ([]StepResult, error) {
	var out []StepResult
	var prev *Result
	for _, st := range plan.Steps {
		if st.ForEachSiteOf != "" {
			names, err := sitesOf(prev, st.ForEachSiteOf)
			if err != nil {
				return out, err
			}
			if len(names) == 0 {
				return out, fmt.Errorf("no site of %q is visible to you", st.ForEachSiteOf)
			}
			for _, n := range names {
				args := substitute(st.Args, SiteRef, n)
				res, err := l.Call(ctx, st.Tool, args)
				sr := StepResult{Step: st, Args: args, Result: res}
				if err != nil {
					sr.Error = err.Error()
					return append(out, sr), err
				}
				out = append(out, sr)
			}
			prev = nil
			continue
		}
		args := st.Args
		if hasValue(args, LatestBackupRef) {
			ref, err := latestRef(prev)
			if err != nil {
				return out, err
			}
			args = substitute(args, LatestBackupRef, ref)
		}
		res, err := l.Call(ctx, st.Tool, args)
		sr := StepResult{Step: st, Args: args, Result: res}
		if err != nil {
			sr.Error = err.Error()
			return append(out, sr), err
		}
		out = append(out, sr)
		prev = res
	}
	return out, nil
}

func hasValue(args map[string]any, v string) bool {
	for _, x := range args {
		if x == v {
			return true
		}
	}
	return false
}

func substitute(args map[string]any, from, to string) map[string]any {
	out := make(map[string]any, len(args))
	for k, v := range args {
		if v == from {
			v = to
		}
		out[k] = v
	}
	return out
}

func items(r *Result) []any {
	if r == nil {
		return nil
	}
	m, _ := r.Data.(map[string]any)
	it, _ := m["items"].([]any)
	return it
}

func latestRef(prev *Result) (string, error) {
	it := items(prev)
	if len(it) == 0 {
		return "", fmt.Errorf("the site has no backup to restore from")
	}
	e, _ := it[0].(map[string]any)
	ref, _ := e["ref"].(string)
	if ref == "" {
		return "", fmt.Errorf("the newest backup has no ref")
	}
	return ref, nil
}

func sitesOf(prev *Result, org string) ([]string, error) {
	if prev == nil {
		return nil, fmt.Errorf("a for-each step needs a site list before it")
	}
	var names []string
	for _, x := range items(prev) {
		s, _ := x.(map[string]any)
		md, _ := s["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		o, _ := md["org"].(string)
		if o == "" {
			o = "default"
		}
		if name != "" && (org == "*" || o == org) {
			names = append(names, name)
		}
	}
	return names, nil
}
