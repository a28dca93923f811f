package api

import (
	"io"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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

func TestRoutesHavePermissions(t *testing.T) {
	known := map[perm]bool{}
	for _, ps := range platformGrants {
		for _, p := range ps {
			known[p] = true
		}
	}
	known[permAny], known[permPeople], known[permPublic] = true, true, true
	reads := []perm{permSiteRead, permOrgRead, permOrgAudit, permPlatformRead}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Pattern
		if !known[rt.Perm] || rt.Action == "" {
			t.Errorf("route %s: permission %q action %q", name, rt.Perm, rt.Action)
		}
		// The MCP endpoint's POSTs and DELETEs are protocol messages,
		// not changes: the API calls its tools make are audited.
		if rt.Mutating != (rt.Method != "GET") && rt.Pattern != "/mcp" {
			t.Errorf("route %s: Mutating = %v", name, rt.Mutating)
		}
		if rt.Mutating && slices.Contains(reads, rt.Perm) {
			t.Errorf("mutating route %s needs more than %s", name, rt.Perm)
		}
		if rt.Perm == permAny && rt.Mutating && rt.Scope != scopeHandler {
			t.Errorf("mutating route %s open to any token must check its targets inside (scopeHandler)", name)
		}
		edgeOwn := strings.HasPrefix(rt.Pattern, "/v1/edge/certificate") || rt.Pattern == "/v1/edge/logs-address"
		if edgeOwn != (rt.Perm == permEdgeOnly) {
			t.Errorf("route %s: an edge's own certificate and logs address, and only they, are for edge tokens alone", name)
		}
		if rt.Quiet && rt.Perm != permShard && rt.Perm != permEdge && rt.Perm != permEdgeOnly {
			t.Errorf("route %s: only agent and edge reports may go unaudited", name)
		}
		if strings.HasPrefix(rt.Pattern, "/v1/agent/") != (rt.Perm == permShard) {
			t.Errorf("route %s: agent routes, and only they, are for shard tokens", name)
		}
		if (rt.Scope == scopeMachine) != (rt.Perm == permShard || rt.Perm == permEdge || rt.Perm == permEdgeOnly) {
			t.Errorf("route %s: machine routes, and only they, have the machine scope", name)
		}
		if rt.Scope == scopeSite && !strings.Contains(rt.Pattern, "{name}") {
			t.Errorf("route %s: a site-scoped route needs {name}", name)
		}
		if rt.Scope == scopeOrg && !strings.Contains(rt.Pattern, "{org}") {
			t.Errorf("route %s: an organisation-scoped route needs {org}", name)
		}
	}
}
