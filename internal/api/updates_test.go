package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func TestUpdateRoutes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test", "c.test"} {
		e.place(t, d, "local", site.PhaseReady)
	}
	e.place(t, "new.test", "local", site.PhaseCreating)
	if _, err := e.store.UpdateSite(ctx, "b.test", func(s *site.Site) error {
		s.Spec.Plugins = []site.Extension{{Name: "hello", Version: "1.0", Active: true}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hello2 := map[string]any{"plugins": []any{map[string]any{"name": "hello", "version": "2.0", "active": true}}}
	for _, tc := range []struct {
		name, method, path string
		body               any
		code               int
		want               string // in the body
	}{
		{"a staged update", "POST", "/v1/sites/a.test/updates", map[string]any{"plugins": []any{map[string]any{"name": "hello", "version": "2.0", "active": true}},
			"smoke": map[string]any{"paths": []string{"/shop"}, "contains": "Shop"}}, 202, `"kind":"update"`},
		{"a second one while it runs", "POST", "/v1/sites/a.test/updates", hello2, 409, "being updated already"},
		{"an empty change", "POST", "/v1/sites/b.test/updates", map[string]any{}, 400, "nothing to update"},
		{"an unknown field", "POST", "/v1/sites/b.test/updates", map[string]any{"plugin": "x"}, 400, "plugin"},
		{"removing what is not there", "POST", "/v1/sites/b.test/updates", map[string]any{"remove": []string{"nope"}}, 400, "neither a plugin"},
		{"a bad smoke path", "POST", "/v1/sites/b.test/updates", map[string]any{"core_version": "6.4.2", "smoke": map[string]any{"paths": []string{"shop"}}}, 400, "smoke.paths"},
		{"fleet set by the caller", "POST", "/v1/sites/b.test/updates", map[string]any{"core_version": "6.4.2", "fleet": "job-x"}, 400, "fleet"},
		{"an upload source", "POST", "/v1/sites/b.test/updates", map[string]any{"plugins": []any{map[string]any{"name": "x", "source": map[string]any{"type": "upload", "sha256": strings.Repeat("a", 64)}}}}, 400, "upload"},
		{"a site not Ready", "POST", "/v1/sites/new.test/updates", hello2, 409, "only a Ready site"},
		{"an unknown site", "POST", "/v1/sites/nope.test/updates", hello2, 404, ""},
		{"fleet: two selectors", "POST", "/v1/updates", map[string]any{"change": hello2, "sites": []string{"a.test"}, "org": "default"}, 400, "exactly one"},
		{"fleet: no selector", "POST", "/v1/updates", map[string]any{"change": hello2}, 400, "exactly one"},
		{"fleet: unknown site", "POST", "/v1/updates", map[string]any{"change": hello2, "sites": []string{"a.test", "zz.test"}}, 400, "zz.test"},
		{"fleet: a bad rate", "POST", "/v1/updates", map[string]any{"change": hello2, "sites": []string{"a.test"}, "max_failure_rate": 1.5}, 400, "max_failure_rate"},
		{"fleet: the change does not apply", "POST", "/v1/updates", map[string]any{"change": map[string]any{"remove": []string{"hello"}}, "org": "default"}, 400, "does not apply to every site"},
		{"fleet: nobody runs it", "POST", "/v1/updates", map[string]any{"change": hello2, "with_plugin": "nothing"}, 400, "no site matches"},
		{"fleet by plugin", "POST", "/v1/updates", map[string]any{"change": hello2, "with_plugin": "hello", "canary": 1, "wave_size": 5}, 202, `"sites":["b.test"]`},
		{"fleet of an org", "POST", "/v1/updates", map[string]any{"change": hello2, "org": "default", "parallel": 2}, 202, `"sites":["a.test","b.test","c.test","new.test"]`},
		{"fleet of a list, in its order", "POST", "/v1/updates", map[string]any{"change": hello2, "sites": []string{"c.test", "a.test"}}, 202, `"sites":["c.test","a.test"]`},
		{"fleet: a viewer may not", "POST", "/v1/updates", map[string]any{"change": hello2, "sites": []string{"a.test"}}, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := adminSecret
			if strings.Contains(tc.name, "viewer") {
				tok = viewerSecret
			}
			code, m, _ := e.do(t, tc.method, tc.path, tok, tc.body)
			raw, _ := json.Marshal(m)
			if code != tc.code || !strings.Contains(string(raw), tc.want) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, raw, tc.code, tc.want)
			}
			if code == http.StatusAccepted {
				var j store.Job
				_ = json.Unmarshal(raw, &j)
				if j.Shard != "" || j.Phase != store.JobPending {
					t.Errorf("job %+v: want a Pending control-plane job", j)
				}
			}
		})
	}
	// A staging site cannot be created by hand.
	code, m, _ := e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": "u12345678-a-test.staging.invalid", "title": "x", "admin_email": "me@example.com"})
	if code != 400 || !strings.Contains(get(m, "error.message").(string), "reserved") {
		t.Errorf("create a staging name: %d %v", code, m)
	}
}
