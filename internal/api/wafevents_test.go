package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func exclusion(rule int, path, arg string) map[string]any {
	m := map[string]any{"rule_id": rule, "path": path}
	if arg != "" {
		m["argument"] = arg
	}
	return m
}

func wafPatch(field string, ex ...map[string]any) map[string]any {
	list := []any{}
	for _, e := range ex {
		list = append(list, e)
	}
	return map[string]any{"waf": map[string]any{field: list}}
}

// TestWAFExclusionScenarios walks a site's exclusions through PATCH: each
// step's status, error code and the exclusions and generation after it.
func TestWAFExclusionScenarios(t *testing.T) {
	e := newEnv(t)
	e.create(t, "a.com")
	steps := []struct {
		name    string
		token   string
		body    any
		status  int
		code    string
		msg     string // in the error message
		want    string // the exclusions after the step
		bumped  bool   // the generation moved
		audited string // the audit detail of the step ("" : not checked)
	}{
		{name: "add", body: wafPatch("add_exclusions", exclusion(942190, "/", "s")), status: 200,
			want: "942190:/:s", bumped: true, audited: "waf.exclusions +942190:/:s"},
		{name: "add again: no change", body: wafPatch("add_exclusions", exclusion(942190, "/", "s")), status: 200, want: "942190:/:s"},
		{name: "add the same in another case", body: wafPatch("add_exclusions", exclusion(942190, "/", "S")), status: 200, want: "942190:/:s"},
		{name: "add two", body: wafPatch("add_exclusions", exclusion(941100, "/wp-json/*", "content"), exclusion(10008, "/wp-json/wp/v2/posts/*", "")),
			status: 200, want: "942190:/:s 941100:/wp-json/*:content 10008:/wp-json/wp/v2/posts/*", bumped: true},
		{name: "remove one", body: wafPatch("remove_exclusions", exclusion(941100, "/wp-json/*", "content")), status: 200,
			want: "942190:/:s 10008:/wp-json/wp/v2/posts/*", bumped: true, audited: "waf.exclusions -941100:/wp-json/*:content"},
		{name: "remove one that is not there", body: wafPatch("remove_exclusions", exclusion(941100, "/wp-json/*", "content")), status: 200,
			want: "942190:/:s 10008:/wp-json/wp/v2/posts/*"},
		{name: "replace", body: wafPatch("exclusions", exclusion(932236, "/shop/*", ""), exclusion(932236, "/shop/*", "")), status: 200,
			want: "932236:/shop/*", bumped: true, audited: "waf.exclusions=[932236:/shop/* 932236:/shop/*]"},
		{name: "unknown rule", body: wafPatch("add_exclusions", exclusion(123456, "/", "")), status: 400, code: CodeInvalidArgument,
			msg: "not in the WAF's rule set", want: "932236:/shop/*"},
		{name: "anomaly evaluation", body: wafPatch("add_exclusions", exclusion(949110, "/", "")), status: 400, code: CodeInvalidArgument,
			msg: "anomaly evaluation", want: "932236:/shop/*"},
		{name: "set-up rule", body: wafPatch("add_exclusions", exclusion(901001, "/", "")), status: 400, msg: "sets up", want: "932236:/shop/*"},
		{name: "bad path", body: wafPatch("add_exclusions", exclusion(942190, "/a/../b", "")), status: 400, msg: "not clean", want: "932236:/shop/*"},
		{name: "bad argument", body: wafPatch("add_exclusions", exclusion(942190, "/", "a b")), status: 400, msg: "argument", want: "932236:/shop/*"},
		{name: "replace and add", body: map[string]any{"waf": map[string]any{"exclusions": []any{}, "add_exclusions": []any{exclusion(942190, "/", "")}}},
			status: 400, msg: "alone", want: "932236:/shop/*"},
		{name: "viewer", token: viewerSecret, body: wafPatch("add_exclusions", exclusion(942190, "/", "s")), status: 403, code: CodeForbidden, want: "932236:/shop/*"},
		{name: "clear", body: wafPatch("exclusions"), status: 200, want: "", bumped: true},
	}
	var fifty []map[string]any
	for i := range site.MaxWAFExclusions {
		fifty = append(fifty, exclusion(942190, fmt.Sprintf("/p%d", i), ""))
	}
	more := append(fifty[:site.MaxWAFExclusions-1:site.MaxWAFExclusions-1], exclusion(942190, "/x", ""), exclusion(942190, "/y", ""))
	steps = append(steps, []struct {
		name    string
		token   string
		body    any
		status  int
		code    string
		msg     string
		want    string
		bumped  bool
		audited string
	}{
		{name: "fifty", body: wafPatch("exclusions", fifty...), status: 200, want: "50", bumped: true},
		{name: "fifty-one", body: wafPatch("add_exclusions", exclusion(942190, "/more", "")), status: 400, msg: "at most 50", want: "50"},
		{name: "fifty-one at once", body: wafPatch("exclusions", more...), status: 400, msg: "at most 50", want: "50"},
	}...)
	for _, st := range steps {
		before, _ := e.store.GetSite(context.Background(), "a.com")
		token := st.token
		if token == "" {
			token = adminSecret
		}
		code, m, _ := e.do(t, "PATCH", "/v1/sites/a.com", token, st.body)
		if code != st.status || errCode(m) != st.code && st.code != "" {
			t.Fatalf("%s: %d %v, want %d %s", st.name, code, m, st.status, st.code)
		}
		if st.msg != "" && !strings.Contains(fmt.Sprint(m), st.msg) {
			t.Errorf("%s: message %v lacks %q", st.name, m, st.msg)
		}
		after, _ := e.store.GetSite(context.Background(), "a.com")
		var got []string
		for _, x := range after.Spec.WAF.Exclusions {
			got = append(got, x.String())
		}
		if g := strings.Join(got, " "); g != st.want && !(st.want == "50" && len(got) == 50) {
			t.Errorf("%s: exclusions %q, want %q", st.name, g, st.want)
		}
		if bumped := after.Metadata.Generation != before.Metadata.Generation; bumped != st.bumped {
			t.Errorf("%s: generation %d → %d", st.name, before.Metadata.Generation, after.Metadata.Generation)
		}
		if st.audited != "" {
			entries, err := e.store.ListAudit(context.Background(), store.AuditListOptions{Limit: store.MaxLimit})
			entries = entries[max(0, len(entries)-1):] // the last one
			if err != nil || len(entries) != 1 || entries[0].Action != "site.update" || entries[0].Target != "a.com" ||
				entries[0].Outcome != "success" || entries[0].Detail != st.audited {
				t.Errorf("%s: audit %+v, %v; want detail %q", st.name, entries, err, st.audited)
			}
		}
	}
}

// TestWAFEventScenarios: edges report events; viewers list them, newest
// first, with a suggested exclusion; tokens are checked.
func TestWAFEventScenarios(t *testing.T) {
	e := fedEnv(t)
	ev := func(siteName string, i int, rule int, arg string) map[string]any {
		m := map[string]any{"site": siteName, "time": testNow.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			"request_id": fmt.Sprintf("req-%d", i), "method": "GET", "path": "/", "rule_id": rule,
			"message": "Detects MSSQL code execution and information gathering attempts", "action": "block", "paranoia": 1}
		if arg != "" {
			m["argument"], m["variable"] = arg, "ARGS:"+arg
		}
		return m
	}
	report := func(evs ...map[string]any) map[string]any {
		list := []any{}
		for _, e := range evs {
			list = append(list, e)
		}
		return map[string]any{"events": list}
	}
	tooMany := []map[string]any{}
	for i := range MaxWAFEventReport + 1 {
		tooMany = append(tooMany, ev("a.com", i, 942190, "s"))
	}
	bad := ev("a.com", 9, 942190, "s")
	bad["action"] = "pass"
	tests := []struct {
		name, method, path, token string
		body                      any
		status                    int
		fields                    map[string]any
	}{
		{"edge reports", "POST", "/v1/edge/waf-events", edgeSecret,
			report(ev("a.com", 1, 942190, "s"), ev("A.com", 2, 941100, "json.content"), ev("nope.com", 3, 942190, "s"), bad),
			200, map[string]any{"stored": float64(2)}},
		{"admin may report", "POST", "/v1/edge/waf-events", adminSecret, report(ev("a.com", 3, 920350, "")), 200, map[string]any{"stored": float64(1)}},
		{"viewer may not report", "POST", "/v1/edge/waf-events", viewerSecret, report(), 403, nil},
		{"shard may not report", "POST", "/v1/edge/waf-events", shard1Secret, report(), 403, nil},
		{"too many", "POST", "/v1/edge/waf-events", edgeSecret, report(tooMany...), 400, nil},
		{"unknown field", "POST", "/v1/edge/waf-events", edgeSecret, map[string]any{"events": []any{map[string]any{"site_uid": "x"}}}, 400, nil},
		{"viewer lists", "GET", "/v1/sites/a.com/waf/events", viewerSecret, nil, 200, map[string]any{
			"items.0.rule_id": float64(920350), "items.0.suggestion.flag": "920350:/", "items.0.suggestion.argument": nil,
			"items.1.rule_id": float64(941100), "items.1.argument": "json.content", "items.1.suggestion.flag": "941100:/:json.content",
			"items.2.rule_id": float64(942190), "items.2.request_id": "req-1", "items.2.path": "/", "items.2.action": "block",
			"items.2.suggestion.flag": "942190:/:s", "items.2.suggestion.command": "aipress site set a.com --waf-exclude 942190:/:s",
			"items.2.suggestion.excluded": false, "items.3": nil, "continue": nil}},
		{"a page", "GET", "/v1/sites/a.com/waf/events?limit=1", viewerSecret, nil, 200, map[string]any{"items.0.rule_id": float64(920350), "items.1": nil}},
		{"bad continue", "GET", "/v1/sites/a.com/waf/events?continue=nope", viewerSecret, nil, 400, nil},
		{"bad limit", "GET", "/v1/sites/a.com/waf/events?limit=0", viewerSecret, nil, 400, nil},
		{"unknown site", "GET", "/v1/sites/nope.com/waf/events", viewerSecret, nil, 404, nil},
		{"edge may not list", "GET", "/v1/sites/a.com/waf/events", edgeSecret, nil, 403, nil},
	}
	for _, tt := range tests {
		code, m, _ := e.do(t, tt.method, tt.path, tt.token, tt.body)
		if code != tt.status {
			t.Fatalf("%s: %d %v, want %d", tt.name, code, m, tt.status)
		}
		for path, want := range tt.fields {
			if got := pick(m, path); got != want {
				t.Errorf("%s: %s = %#v, want %#v", tt.name, path, got, want)
			}
		}
	}
	// Reports are not audited (they are the edge's, at its rate).
	entries, _ := e.store.ListAudit(context.Background(), store.AuditListOptions{})
	for _, en := range entries {
		if en.Action == "edge.waf-events" {
			t.Errorf("report audited: %+v", en)
		}
	}
	// Pages: following continue gives every event once.
	code, m, _ := e.do(t, "GET", "/v1/sites/a.com/waf/events?limit=2", viewerSecret, nil)
	cont, _ := m["continue"].(string)
	if code != 200 || cont == "" {
		t.Fatalf("first page: %d %v", code, m)
	}
	code, m, _ = e.do(t, "GET", "/v1/sites/a.com/waf/events?limit=2&continue="+cont, viewerSecret, nil)
	if code != 200 || pick(m, "items.0.rule_id") != float64(942190) || pick(m, "items.1") != nil || m["continue"] != nil {
		t.Errorf("second page: %d %v", code, m)
	}
	// Once excluded, the event says so.
	e.do(t, "PATCH", "/v1/sites/a.com", adminSecret, wafPatch("add_exclusions", exclusion(942190, "/", "s")))
	_, m, _ = e.do(t, "GET", "/v1/sites/a.com/waf/events", viewerSecret, nil)
	if pick(m, "items.2.suggestion.excluded") != true || pick(m, "items.1.suggestion.excluded") != false {
		t.Errorf("after the exclusion: %v", m)
	}
	// A site deleted and created again does not inherit its events.
	if err := e.store.DeleteSite(context.Background(), "a.com"); err != nil {
		t.Fatal(err)
	}
	e.create(t, "a.com")
	if _, m, _ := e.do(t, "GET", "/v1/sites/a.com/waf/events", viewerSecret, nil); pick(m, "items.0") != nil {
		t.Errorf("a new site with an old name sees %v", m)
	}
}

// IngestWAFEvents cleans what edges send and keeps retention.
func TestIngestWAFEvents(t *testing.T) {
	e := newEnv(t)
	e.create(t, "a.com")
	ctx := context.Background()
	now := testNow
	long := strings.Repeat("é", 300)
	n, err := IngestWAFEvents(ctx, e.store, now, []site.WAFEvent{
		{Site: "a.com", RuleID: 942190, Action: "detect", Path: "/" + long, Message: long, RequestID: long, Paranoia: 9,
			Time: now.Add(48 * time.Hour)}, // a clock ahead: stamped now
		{Site: "a.com", RuleID: 0, Action: "block"},
		{Site: "a.com", RuleID: 942190, Action: "block", Time: now.Add(-WAFEventMaxAge - time.Minute)}, // pruned at once
		{Site: "not a domain", RuleID: 942190, Action: "block"},
	})
	if err != nil || n != 2 {
		t.Fatalf("ingest = %d, %v; want 2 stored", n, err)
	}
	st, _ := e.store.GetSite(ctx, "a.com")
	list, err := e.store.ListWAFEvents(ctx, store.WAFEventListOptions{Site: "a.com", SiteUID: st.Metadata.UID})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("events = %+v, %v", list, err)
	}
	ev := list.Items[0]
	if !ev.Time.Equal(now) || len(ev.Path) > 512 || len(ev.Message) > 256 || len(ev.RequestID) > 64 || ev.Paranoia != 4 ||
		!strings.HasSuffix(ev.Message, "é") {
		t.Errorf("event = %+v", ev)
	}
	var many []site.WAFEvent
	for i := range WAFEventsPerSite + 10 {
		many = append(many, site.WAFEvent{Site: "a.com", RuleID: 942190, Action: "block", Time: now.Add(time.Duration(i) * time.Millisecond)})
	}
	if _, err := IngestWAFEvents(ctx, e.store, now, many); err != nil {
		t.Fatal(err)
	}
	list, _ = e.store.ListWAFEvents(ctx, store.WAFEventListOptions{Site: "a.com", SiteUID: st.Metadata.UID, Limit: 1000})
	if len(list.Items) != WAFEventsPerSite {
		t.Errorf("%d events kept, want %d", len(list.Items), WAFEventsPerSite)
	}
}

// pick is get with list indices: "items.0.rule_id".
func pick(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		ev   site.WAFEvent
		want string // flag; "" for none
		cmd  string
	}{
		{site.WAFEvent{RuleID: 942190, Path: "/", Argument: "s"}, "942190:/:s", "aipress site set a.com --waf-exclude 942190:/:s"},
		{site.WAFEvent{RuleID: 920350, Path: "/feed/"}, "920350:/feed/", ""},
		{site.WAFEvent{RuleID: 942190, Path: "/a b/c", Argument: "q"}, "942190:/*:q", "aipress site set a.com --waf-exclude '942190:/*:q'"},
		{site.WAFEvent{RuleID: 942190, Path: "/shop/x:y", Argument: "q"}, "942190:/shop/*:q", ""},
		{site.WAFEvent{RuleID: 942190, Path: "/it's", Argument: "q"}, "942190:/it's:q", `aipress site set a.com --waf-exclude '942190:/it'\''s:q'`},
		{site.WAFEvent{RuleID: 942190, Path: "/", Argument: "a b"}, "942190:/", ""},
		{site.WAFEvent{RuleID: 949110, Path: "/"}, "", ""},
		{site.WAFEvent{RuleID: 123456, Path: "/"}, "", ""},
	}
	for _, tt := range tests {
		sg := Suggest(tt.ev, "a.com", nil)
		if tt.want == "" {
			if sg != nil {
				t.Errorf("Suggest(%+v) = %+v, want none", tt.ev, sg)
			}
			continue
		}
		if sg == nil || sg.Flag != tt.want || (tt.cmd != "" && sg.Command != tt.cmd) {
			t.Errorf("Suggest(%+v) = %+v, want %s (%s)", tt.ev, sg, tt.want, tt.cmd)
			continue
		}
		if _, err := site.ParseWAFExclusion(sg.Flag); err != nil {
			t.Errorf("suggested %q does not parse: %v", sg.Flag, err)
		}
	}
}
