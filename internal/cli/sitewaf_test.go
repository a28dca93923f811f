package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// seedWAFEvents stores events as an edge would report them.
func seedWAFEvents(t *testing.T, h *harness) {
	t.Helper()
	at := func(m int) time.Time { return created.Add(time.Duration(m) * time.Minute) }
	events := []site.WAFEvent{
		{Site: "blog.localhost", Time: at(1), RequestID: "3f2a9c1e0b7d4a5c6e8f9012", Method: "GET", Path: "/", RuleID: 942190,
			Message: "Detects MSSQL code execution and information gathering attempts", Variable: "ARGS:s", Argument: "s",
			Action: site.WAFActionBlock, Paranoia: 1},
		{Site: "blog.localhost", Time: at(2), RequestID: "8d1e2f3a4b5c6d7e8f901234", Method: "POST", Path: "/wp-json/myplugin/v1/notes",
			RuleID: 941100, Message: "XSS Attack Detected via libinjection", Variable: "ARGS:json.content", Argument: "content",
			Action: site.WAFActionBlock, Paranoia: 1},
		{Site: "blog.localhost", Time: at(3), RequestID: "0a1b2c3d4e5f60718293a4b5", Method: "POST", Path: "/wp-comments-post.php",
			RuleID: 10008, Message: "Request body larger than the WAF inspects (not a file upload)", Variable: "INBOUND_DATA_ERROR",
			Action: site.WAFActionBlock, Paranoia: 1},
	}
	if n, err := api.IngestWAFEvents(context.Background(), h.store, cliNow, events); err != nil || n != len(events) {
		t.Fatalf("ingest: %d, %v", n, err)
	}
}

func TestSiteWAFGolden(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "Blog", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := h.run(t, "site", "waf", "events", "blog.localhost"); err != nil || out != "No WAF events for blog.localhost.\n" {
		t.Fatalf("no events: %q, %v", out, err)
	}
	seedWAFEvents(t, h)
	steps := []struct {
		golden string
		args   []string
		stderr string
	}{
		{"waf_events_table", []string{"site", "waf", "events", "blog.localhost"}, ""},
		{"waf_events_json", []string{"site", "waf", "events", "blog.localhost", "-o", "json"}, ""},
		{"waf_events_page_table", []string{"site", "waf", "events", "blog.localhost", "--limit", "1"}, "more events exist; use --all, or --continue "},
		{"waf_exclude_table", []string{"site", "set", "blog.localhost", "--waf-exclude", "942190:/:s", "--waf-exclude", "941100:/wp-json/myplugin/*:content"}, ""},
		{"waf_events_excluded_table", []string{"site", "waf", "events", "blog.localhost", "--limit", "1", "--all"}, ""},
		{"waf_unexclude_table", []string{"site", "set", "blog.localhost", "--waf-unexclude", "942190:/:s"}, ""},
		{"waf_exclude_yaml", []string{"site", "get", "blog.localhost", "-o", "yaml"}, ""},
	}
	for _, s := range steps {
		out, stderr, err := h.run(t, s.args...)
		if err != nil {
			t.Fatalf("%v: %v (stderr %q)", s.args, err, stderr)
		}
		if !strings.Contains(stderr, s.stderr) || (s.stderr == "" && stderr != "") {
			t.Errorf("%v: stderr %q, want %q", s.args, stderr, s.stderr)
		}
		golden(t, s.golden, out)
	}
	entries, err := h.store.ListAudit(context.Background(), store.AuditListOptions{Limit: store.MaxLimit})
	entries = entries[max(0, len(entries)-2):] // the last two
	if err != nil || len(entries) != 2 || entries[1].Detail != "waf.exclusions -942190:/:s" ||
		entries[0].Detail != "waf.exclusions +942190:/:s +941100:/wp-json/myplugin/*:content" || entries[0].Actor != "tok-admin" {
		t.Errorf("audit = %+v, %v", entries, err)
	}
}

func TestSiteWAFErrors(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "Blog", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		token string
		want  string
	}{
		{args: []string{"site", "set", "blog.localhost", "--waf-exclude", "942190"}, want: "want RULE:PATH or RULE:PATH:ARGUMENT"},
		{args: []string{"site", "set", "blog.localhost", "--waf-exclude", "942190:/a/../b"}, want: "not clean"},
		{args: []string{"site", "set", "blog.localhost", "--waf-exclude", "123456:/"}, want: "rule 123456 is not in the WAF's rule set"},
		{args: []string{"site", "set", "blog.localhost", "--waf-exclude", "949110:/"}, want: "anomaly evaluation"},
		{args: []string{"site", "set", "blog.localhost", "--waf-unexclude", "x:/"}, want: "is not a number"},
		{args: []string{"site", "set", "blog.localhost", "--waf-exclude", "942190:/:s"}, token: viewerSecret, want: "may not perform site.update"},
		{args: []string{"site", "waf", "events", "nope.localhost"}, want: `site "nope.localhost" not found`},
		{args: []string{"site", "waf", "events", "blog.localhost", "--limit", "5000"}, want: "limit must be"},
		{args: []string{"site", "waf", "events", "blog.localhost", "--continue", "bogus"}, want: "invalid continue token"},
		{args: []string{"site", "waf", "events"}, want: "accepts 1 arg"},
	}
	for _, tt := range tests {
		if tt.token != "" {
			h.env[EnvToken] = tt.token
		}
		_, _, err := h.run(t, tt.args...)
		h.env[EnvToken] = adminSecret
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
	s, err := h.store.GetSite(context.Background(), "blog.localhost")
	if err != nil || len(s.Spec.WAF.Exclusions) != 0 {
		t.Errorf("refused changes left exclusions: %+v, %v", s.Spec.WAF.Exclusions, err)
	}
}
