package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// WAF event retention and report bounds.
const (
	// WAFEventsPerSite is how many events the store keeps per site.
	WAFEventsPerSite = 200
	// WAFEventMaxAge is how long an event is kept.
	WAFEventMaxAge = 7 * 24 * time.Hour
	// MaxWAFEventReport is the most events one report may carry.
	MaxWAFEventReport = 500
)

// WAFEventsReport is the body of POST /v1/edge/waf-events: what an edge's
// WAF refused since its last report.
type WAFEventsReport struct {
	Events []site.WAFEvent `json:"events"`
}

// WAFEventsReportResponse says how many events of a report were stored
// (events of unknown sites, or malformed ones, are dropped).
type WAFEventsReportResponse struct {
	Stored int `json:"stored"`
}

// WAFEventView is one event of GET /v1/sites/{name}/waf/events with the
// exclusion that would let such a request through.
type WAFEventView struct {
	site.WAFEvent
	// Suggestion is nil when the rule may not be excluded.
	Suggestion *WAFSuggestion `json:"suggestion,omitempty"`
}

// WAFSuggestion is the narrowest exclusion covering an event: its rule, on
// its exact path, for its argument (the whole rule when the match was not
// in an argument).
type WAFSuggestion struct {
	site.WAFExclusion
	// Flag is the exclusion as `aipress site set --waf-exclude` takes it;
	// Command the whole command.
	Flag    string `json:"flag"`
	Command string `json:"command"`
	// Excluded: the site's exclusions already cover the event (it
	// happened before they were set).
	Excluded bool `json:"excluded"`
}

// WAFEventsResponse is the body of GET /v1/sites/{name}/waf/events.
type WAFEventsResponse struct {
	Items    []WAFEventView `json:"items"`
	Continue string         `json:"continue,omitempty"`
}

func (s *server) listWAFEvents(c *call) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	st, err := s.cfg.Store.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	cont := c.r.URL.Query().Get("continue")
	list, err := s.cfg.Store.ListWAFEvents(ctx, store.WAFEventListOptions{Site: name, SiteUID: st.Metadata.UID, Limit: limit, Continue: cont})
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("invalid continue token %q", cont)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("list WAF events of %q: %w", name, err))
	}
	out := WAFEventsResponse{Items: make([]WAFEventView, 0, len(list.Items)), Continue: list.Continue}
	for _, ev := range list.Items {
		out.Items = append(out.Items, WAFEventView{WAFEvent: ev, Suggestion: Suggest(ev, name, st.Spec.WAF.Exclusions)})
	}
	return response{status: http.StatusOK, body: out}, nil
}

// Suggest returns the narrowest exclusion that would have let the event's
// request through this rule: the rule on the event's exact path (or, when
// that path cannot be an exclusion's, the deepest directory prefix that
// can), for the event's argument. Nil when the rule may not be excluded.
func Suggest(ev site.WAFEvent, siteName string, current []site.WAFExclusion) *WAFSuggestion {
	if waf.CheckExcludable(ev.RuleID) != nil {
		return nil
	}
	e := site.WAFExclusion{RuleID: ev.RuleID, Path: suggestPath(ev.RuleID, ev.Path)}
	if site.ValidWAFArgument(ev.Argument) {
		e.Argument = ev.Argument
	}
	sg := &WAFSuggestion{WAFExclusion: e, Flag: e.String(),
		Command: "aipress site set " + siteName + " --waf-exclude " + shellQuote(e.String())}
	for _, x := range current {
		if x.Covers(ev.RuleID, ev.Path, ev.Argument) {
			sg.Excluded = true
		}
	}
	return sg
}

func suggestPath(rule int, p string) string {
	valid := func(p string) bool { return site.WAFExclusion{RuleID: rule, Path: p}.Validate() == nil }
	if valid(p) {
		return p
	}
	for i := strings.LastIndex(p, "/"); i >= 0; i = strings.LastIndex(p[:i], "/") {
		if c := p[:i+1] + "*"; valid(c) {
			return c
		}
	}
	return "/*"
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and "_-.,/:@[]".
func shellQuote(s string) string {
	plain := true
	for _, r := range s {
		if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.,/:@[]", r))) {
			plain = false
			break
		}
	}
	if plain && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (s *server) reportWAFEvents(c *call) (response, error) {
	var req WAFEventsReport
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if len(req.Events) > MaxWAFEventReport {
		return response{}, badRequest("a report may carry at most %d events, got %d", MaxWAFEventReport, len(req.Events))
	}
	n, err := IngestWAFEvents(c.r.Context(), s.cfg.Store, s.cfg.Clock(), req.Events)
	if err != nil {
		return response{}, internal(err)
	}
	// Events take no revision: nobody is to be woken.
	return response{status: http.StatusOK, body: WAFEventsReportResponse{Stored: n}, unchanged: true}, nil
}

// IngestWAFEvents stores the events an edge reports: each is checked and
// trimmed (an unknown site, action or rule drops it; over-long fields are
// cut), stamped with its site's UID, and stored with the retention
// WAFEventsPerSite and WAFEventMaxAge. now is the control plane's time. It
// returns how many events were stored. The in-process edge of `aipress up`
// calls it directly; remote edges through POST /v1/edge/waf-events.
func IngestWAFEvents(ctx context.Context, st store.Store, now time.Time, events []site.WAFEvent) (int, error) {
	now = now.UTC()
	uids := map[string]string{} // site → UID, "" for none
	keep := make([]site.WAFEvent, 0, len(events))
	for _, ev := range events {
		name, err := site.NormalizeDomain(ev.Site)
		if err != nil || ev.RuleID <= 0 || (ev.Action != site.WAFActionBlock && ev.Action != site.WAFActionDetect) {
			continue
		}
		uid, ok := uids[name]
		if !ok {
			s, err := st.GetSite(ctx, name)
			switch {
			case err == nil && s.Metadata.DeletionRequested == nil:
				uid = s.Metadata.UID
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return 0, fmt.Errorf("ingest WAF events: get site %q: %w", name, err)
			}
			uids[name] = uid
		}
		if uid == "" {
			continue
		}
		ev.ID, ev.Site, ev.SiteUID = 0, name, uid
		if ev.Time.IsZero() || ev.Time.After(now.Add(time.Hour)) {
			ev.Time = now
		}
		ev.Time = ev.Time.UTC()
		ev.RequestID = clip(ev.RequestID, 64)
		ev.Method = clip(ev.Method, 16)
		ev.Path = clip(ev.Path, 512)
		ev.Message = clip(ev.Message, 256)
		ev.Variable = clip(ev.Variable, 200)
		ev.Argument = clip(ev.Argument, site.MaxWAFArgument)
		ev.Paranoia = min(max(ev.Paranoia, 0), 4)
		keep = append(keep, ev)
	}
	if err := st.AppendWAFEvents(ctx, keep, store.WAFRetention{PerSite: WAFEventsPerSite, Before: now.Add(-WAFEventMaxAge)}); err != nil {
		return 0, fmt.Errorf("ingest WAF events: %w", err)
	}
	return len(keep), nil
}

// clip cuts s to at most n bytes, on a rune boundary, and drops invalid
// UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
