package api

import (
	"io"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/store"
)

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                           `json:"openapi"`
		Paths   map[string]map[string]any        `json:"paths"`
		Comps   struct{ Schemas map[string]any } `json:"components"`
		Sec     []map[string][]string            `json:"security"`
	}
	if err := yaml.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	methods := map[string]bool{"get": true, "post": true, "put": true, "patch": true, "delete": true, "head": true, "options": true}
	var inSpec, inRouter []string
	for path, ops := range doc.Paths {
		for m := range ops {
			if methods[m] {
				inSpec = append(inSpec, strings.ToUpper(m)+" "+path)
			}
		}
	}
	for _, rt := range routes {
		inRouter = append(inRouter, rt.Method+" "+rt.Pattern)
	}
	sort.Strings(inSpec)
	sort.Strings(inRouter)
	if strings.Join(inSpec, "\n") != strings.Join(inRouter, "\n") {
		t.Errorf("routes differ:\nopenapi.yaml:\n%s\nrouter:\n%s", strings.Join(inSpec, "\n"), strings.Join(inRouter, "\n"))
	}
	for _, s := range []string{"Site", "SiteList", "CreateSiteRequest", "CreateSiteResponse", "Error"} {
		if doc.Comps.Schemas[s] == nil {
			t.Errorf("schema %s missing", s)
		}
	}
	if len(doc.Sec) != 1 || doc.Sec[0]["bearer"] == nil {
		t.Errorf("global security = %v, want bearer", doc.Sec)
	}
}

func TestServeOpenAPI(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest("GET", "/v1/openapi.yaml", nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || string(body) != string(openAPISpec) || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET openapi.yaml: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestRoutesHaveRoles(t *testing.T) {
	for _, rt := range routes {
		if _, ok := allowedRoles[rt.Role]; !ok || rt.Action == "" {
			t.Errorf("route %s %s: role %q action %q", rt.Method, rt.Pattern, rt.Role, rt.Action)
		}
		if rt.Mutating != (rt.Method != "GET") {
			t.Errorf("route %s %s: Mutating = %v", rt.Method, rt.Pattern, rt.Mutating)
		}
		if rt.Mutating && rt.Role != store.RoleAdmin && rt.Role != store.RoleShard && rt.Role != roleEdgeOnly {
			t.Errorf("mutating route %s %s needs admin, shard or (its own certificate) edge", rt.Method, rt.Pattern)
		}
		if strings.HasPrefix(rt.Pattern, "/v1/edge/") != (rt.Role == roleEdgeOnly) {
			t.Errorf("route %s %s: edge routes, and only they, are for edge tokens alone", rt.Method, rt.Pattern)
		}
		if rt.Quiet && rt.Role != store.RoleShard {
			t.Errorf("route %s %s: only agent reports may go unaudited", rt.Method, rt.Pattern)
		}
		if strings.HasPrefix(rt.Pattern, "/v1/agent/") != (rt.Role == store.RoleShard) {
			t.Errorf("route %s %s: agent routes, and only they, are for shard tokens", rt.Method, rt.Pattern)
		}
	}
}
