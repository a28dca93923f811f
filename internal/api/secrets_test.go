package api

import (
	"net/http"
	"testing"

	"github.com/aipress/aipress/internal/site"
)

// TestRotateSecretScenarios: POST /v1/sites/{name}/secrets/rotate makes a
// secret.rotate job on the site's shard, is idempotent per kind, and
// refuses what it cannot do.
func TestRotateSecretScenarios(t *testing.T) {
	const path = "/v1/sites/a.com/secrets/rotate"
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *env)
		path   string
		token  string
		body   any
		status int
		code   string
		fields map[string]any
		check  func(t *testing.T, e *env, m map[string]any)
	}{
		{name: "db password", body: map[string]any{"kind": "db-password"}, status: 202,
			fields: map[string]any{"kind": "secret.rotate", "site": "a.com", "shard": "s1", "phase": "Pending",
				"params.kind": "db-password", "params.reason": "manual"},
			check: func(t *testing.T, e *env, m map[string]any) {
				code, again, _ := e.do(t, "POST", path, adminSecret, map[string]any{"kind": "db-password"})
				if code != http.StatusOK || again["id"] != m["id"] {
					t.Errorf("again: %d %v, want 200 and job %v", code, again["id"], m["id"])
				}
				code, other, _ := e.do(t, "POST", path, adminSecret, map[string]any{"kind": "salts"})
				if code != http.StatusConflict {
					t.Errorf("salts during a db-password rotation: %d %v, want 409", code, other)
				}
			}},
		{name: "salts", body: map[string]any{"kind": "salts"}, status: 202,
			fields: map[string]any{"kind": "secret.rotate", "params.kind": "salts"}},
		{name: "suspended site", setup: func(t *testing.T, e *env) {
			e.place(t, "s.com", "s2", site.PhaseSuspended)
		}, path: "/v1/sites/s.com/secrets/rotate", body: map[string]any{"kind": "salts"}, status: 202,
			fields: map[string]any{"shard": "s2"}},
		{name: "unknown kind", body: map[string]any{"kind": "api-token"}, status: 400, code: "invalid_argument"},
		{name: "no body", status: 400, code: "invalid_argument"},
		{name: "unknown field", body: map[string]any{"kind": "salts", "x": 1}, status: 400, code: "invalid_argument"},
		{name: "viewer forbidden", token: viewerSecret, body: map[string]any{"kind": "salts"}, status: 403, code: "forbidden"},
		{name: "shard token forbidden", token: shard1Secret, body: map[string]any{"kind": "salts"}, status: 403, code: "forbidden"},
		{name: "unknown site", path: "/v1/sites/x.com/secrets/rotate", body: map[string]any{"kind": "salts"}, status: 404, code: "not_found"},
		{name: "pending site", setup: func(t *testing.T, e *env) { e.place(t, "p.com", "s1", site.PhasePending) },
			path: "/v1/sites/p.com/secrets/rotate", body: map[string]any{"kind": "db-password"}, status: 409, code: "conflict"},
		{name: "deleting site", setup: func(t *testing.T, e *env) { e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil) },
			body: map[string]any{"kind": "db-password"}, status: 409, code: "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fedEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			p, tok := tt.path, tt.token
			if p == "" {
				p = path
			}
			if tok == "" {
				tok = adminSecret
			}
			code, m, _ := e.do(t, "POST", p, tok, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %v", code, tt.status, m)
			}
			if tt.code != "" && errCode(m) != tt.code {
				t.Errorf("code %q, want %q: %v", errCode(m), tt.code, m)
			}
			for k, want := range tt.fields {
				if got := get(m, k); got != want {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
			if tt.check != nil {
				tt.check(t, e, m)
			}
		})
	}
}
