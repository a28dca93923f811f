package api

import (
	"context"
	"testing"
)

func TestPatchSite(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com"}); code != 201 {
		t.Fatalf("create: %d", code)
	}
	get := func() (gen int64, title string, redirect bool, ttl int, mode string, pl int) {
		s, err := e.store.GetSite(context.Background(), "a.com")
		if err != nil {
			t.Fatal(err)
		}
		return s.Metadata.Generation, s.Spec.Title, s.Spec.HTTPSRedirect, s.Spec.Cache.TTLSeconds, s.Spec.WAF.Mode, s.Spec.WAF.ParanoiaLevel
	}
	gen0, _, _, ttl0, _, _ := get()
	code, m, _ := e.do(t, "PATCH", "/v1/sites/A.com", adminSecret, map[string]any{"https_redirect": true, "waf": map[string]any{"mode": "detect", "paranoia_level": 3}})
	if code != 200 {
		t.Fatalf("patch: %d %v", code, m)
	}
	gen, title, redirect, ttl, mode, pl := get()
	if gen != gen0+1 || title != "T" || !redirect || ttl != ttl0 || mode != "detect" || pl != 3 {
		t.Errorf("after patch: gen %d→%d title %q redirect %v ttl %d mode %q pl %d", gen0, gen, title, redirect, ttl, mode, pl)
	}
	if code, _, _ := e.do(t, "PATCH", "/v1/sites/a.com", adminSecret, map[string]any{"title": "New", "cache": map[string]any{"ttl_seconds": 0}}); code != 200 {
		t.Fatalf("patch 2: %d", code)
	}
	if _, title, redirect, ttl, _, _ := get(); title != "New" || ttl != 0 || !redirect {
		t.Errorf("patch 2: title %q ttl %d redirect %v", title, ttl, redirect)
	}
	for _, tc := range []struct {
		name, token string
		body        any
		status      int
		path        string
	}{
		{"viewer", viewerSecret, map[string]any{"title": "x"}, 403, "/v1/sites/a.com"},
		{"unknown field", adminSecret, map[string]any{"colour": "red"}, 400, "/v1/sites/a.com"},
		{"bad mode", adminSecret, map[string]any{"waf": map[string]any{"mode": "panic"}}, 400, "/v1/sites/a.com"},
		{"bad paranoia", adminSecret, map[string]any{"waf": map[string]any{"paranoia_level": 5}}, 400, "/v1/sites/a.com"},
		{"negative ttl", adminSecret, map[string]any{"cache": map[string]any{"ttl_seconds": -1}}, 400, "/v1/sites/a.com"},
		{"empty title", adminSecret, map[string]any{"title": ""}, 400, "/v1/sites/a.com"},
		{"unknown site", adminSecret, map[string]any{"title": "x"}, 404, "/v1/sites/b.com"},
	} {
		if code, _, _ := e.do(t, "PATCH", tc.path, tc.token, tc.body); code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.status)
		}
	}
	if _, title, _, _, _, _ := get(); title != "New" {
		t.Errorf("a refused patch changed the title to %q", title)
	}
	e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil)
	if code, _, _ := e.do(t, "PATCH", "/v1/sites/a.com", adminSecret, map[string]any{"title": "x"}); code != 409 {
		t.Errorf("patch of a deleting site: %d, want 409", code)
	}
}
