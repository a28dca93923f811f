package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// The authorization matrix: every route of openapi.yaml × every kind of
// caller × every target (a site or organisation of the caller's own
// organisation, of another organisation, or the platform itself) has an
// expected answer, written out here independently of the code's
// permissions. A route added to openapi.yaml without an entry fails.
//
// The answers: A allowed, F forbidden (403), H hidden (404: the caller may
// not learn the target exists), U unauthenticated (401), - no such target.

// matrixCallers are the kinds of callers, in the column order of profiles.
var matrixCallers = []string{
	"admin", "operator", "support", "viewer", // platform tokens
	"owner", "developer", "orgviewer", "billing", // members of acme (sign-in tokens)
	"partner",  // owner of the partner resell, which owns acme
	"devtoken", // an acme-scoped developer token of the owner
	"shard", "edge", "anonymous",
}

// profiles: for each caller (in matrixCallers order), the answers for
// (own organisation, other organisation, platform).
var profiles = map[string][]string{
	//              admin  operator support viewer  owner  developer orgviewer billing partner devtoken shard  edge   anonymous
	"site.read":    {"AA-", "AA-", "AA-", "AA-", "AH-", "AH-", "AH-", "FH-", "AH-", "AH-", "FF-", "FF-", "UU-"},
	"site.write":   {"AA-", "FF-", "FF-", "FF-", "AH-", "AH-", "FH-", "FH-", "AH-", "AH-", "FF-", "FF-", "UU-"},
	"site.suspend": {"AA-", "FF-", "AA-", "FF-", "AH-", "AH-", "FH-", "FH-", "AH-", "AH-", "FF-", "FF-", "UU-"},
	"site.secrets": {"AA-", "FF-", "FF-", "FF-", "AH-", "AH-", "FH-", "FH-", "AH-", "AH-", "FF-", "FF-", "UU-"},
	// Organisations: billing reads its organisation (plan, usage) but
	// not its sites; a partner's owner acts in the partner's
	// organisations as their owner.
	"org.read":    {"AA-", "AA-", "AA-", "AA-", "AH-", "AH-", "AH-", "AH-", "AH-", "AH-", "FF-", "FF-", "UU-"},
	"org.write":   {"AA-", "FF-", "FF-", "FF-", "AH-", "FH-", "FH-", "FH-", "AH-", "FH-", "FF-", "FF-", "UU-"},
	"org.members": {"AA-", "FF-", "FF-", "FF-", "AH-", "FH-", "FH-", "FH-", "AH-", "FH-", "FF-", "FF-", "UU-"},
	"org.billing": {"AA-", "FF-", "FF-", "FF-", "AH-", "FH-", "FH-", "AH-", "AH-", "FH-", "FF-", "FF-", "UU-"},
	// Creating an organisation: platform admins, and members reach the
	// handler, which lets only owners of a partner create (under it;
	// TestOrgScenarios).
	"org.create": {"--A", "--F", "--F", "--F", "--A", "--A", "--A", "--A", "--A", "--A", "--F", "--F", "--U"},
	// Lists (of sites, backups, jobs, organisations): allowed to every
	// member of an organisation (filtered inside: billing sees no site)
	// and to platform readers.
	"site.list":      {"--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--F", "--F", "--U"},
	"platform.read":  {"--A", "--A", "--A", "--A", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--U"},
	"platform.ops":   {"--A", "--A", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--U"},
	"platform.admin": {"--A", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--U"},
	"shard":          {"--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--A", "--F", "--U"},
	"edge":           {"--A", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--A", "--U"},
	"edge-only":      {"--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--F", "--A", "--U"},
	"any":            {"--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--U"},
	// The assistant and MCP act for people: machine tokens are refused.
	"people": {"--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--F", "--F", "--U"},
	"public": {"--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A", "--A"},
}

// matrix maps every route to its profile.
var matrix = map[string]string{
	"GET /v1/sites":                        "site.list",
	"POST /v1/sites":                       "site.write",
	"POST /v1/imports":                     "site.write",
	"GET /v1/sites/{name}":                 "site.read",
	"PATCH /v1/sites/{name}":               "site.write",
	"DELETE /v1/sites/{name}":              "site.write",
	"POST /v1/sites/{name}/suspend":        "site.suspend",
	"POST /v1/sites/{name}/resume":         "site.suspend",
	"POST /v1/sites/{name}/purge":          "site.write",
	"POST /v1/sites/{name}/login-link":     "site.write",
	"POST /v1/sites/{name}/move":           "platform.ops",
	"POST /v1/sites/{name}/move/abort":     "platform.ops",
	"GET /v1/sites/{name}/waf/events":      "site.read",
	"GET /v1/sites/{name}/metrics":         "site.read",
	"GET /v1/sites/{name}/incidents":       "site.read",
	"GET /v1/sites/{name}/status-page":     "site.read",
	"PUT /v1/sites/{name}/status-page":     "site.write",
	"GET /v1/sites/{name}/logs":            "site.read",
	"POST /v1/sites/{name}/secrets/rotate": "site.secrets",
	"POST /v1/sites/{name}/code/enforce":   "site.write",
	"POST /v1/apply":                       "site.write",
	"POST /v1/sites/{name}/backups":        "site.write",
	"POST /v1/sites/{name}/export":         "site.write",
	"POST /v1/sites/{name}/wxr-import":     "site.write",
	"POST /v1/sites/{name}/resync":         "site.write",
	"POST /v1/sites/{name}/freeze":         "site.write",
	"POST /v1/sites/{name}/unfreeze":       "site.write",
	"POST /v1/sites/{name}/restore":        "site.write",
	"POST /v1/sites/{name}/updates":        "site.write",
	"POST /v1/updates":                     "platform.admin",
	// Git sync: a site's as its other settings; an organisation's like
	// its sites (who may write its sites sets it); credentials like
	// secrets; the webhook needs no token (its signature is checked
	// inside).
	"PUT /v1/sites/{name}/git":                       "site.write",
	"GET /v1/sites/{name}/git":                       "site.read",
	"DELETE /v1/sites/{name}/git":                    "site.write",
	"POST /v1/sites/{name}/git/sync":                 "site.write",
	"PUT /v1/orgs/{org}/git":                         "site.write",
	"GET /v1/orgs/{org}/git":                         "site.read",
	"DELETE /v1/orgs/{org}/git":                      "site.write",
	"POST /v1/orgs/{org}/git/sync":                   "site.write",
	"GET /v1/orgs/{org}/git/credentials":             "site.secrets",
	"PUT /v1/orgs/{org}/git/credentials/{secret}":    "site.secrets",
	"DELETE /v1/orgs/{org}/git/credentials/{secret}": "site.secrets",
	"POST /v1/git/hooks/{id}":                        "public",
	"GET /v1/backups":                                "site.list",
	"GET /v1/backups/coverage":                       "platform.read",
	"GET /v1/backups/{ref}":                          "site.read",
	"POST /v1/backups/{ref}/restore":                 "site.write",
	"POST /v1/backups/verify":                        "platform.ops",
	"POST /v1/backups/prune":                         "platform.ops",
	"GET /v1/jobs":                                   "site.list",
	"GET /v1/sla":                                    "site.list",
	"GET /v1/jobs/{id}":                              "site.read",
	"GET /v1/jobs/{id}/archive":                      "site.write",
	// Uploads: site.write (as changing a site's code) in the named
	// organisation, checked inside; listing: site readers.
	"POST /v1/artefacts":                   "site.write",
	"GET /v1/artefacts":                    "site.read",
	"GET /v1/shards":                       "platform.read",
	"GET /v1/shards/{name}":                "platform.read",
	"DELETE /v1/shards/{name}":             "platform.ops",
	"POST /v1/shards/{name}/cordon":        "platform.ops",
	"POST /v1/shards/{name}/uncordon":      "platform.ops",
	"POST /v1/shards/{name}/drain":         "platform.ops",
	"POST /v1/shards/{name}/recover":       "platform.ops",
	"GET /v1/tokens":                       "any",
	"POST /v1/tokens":                      "any",
	"DELETE /v1/tokens/{id}":               "any",
	"POST /v1/tokens/{id}/rotate":          "any",
	"GET /v1/orgs":                         "site.list",
	"POST /v1/orgs":                        "org.create",
	"GET /v1/orgs/{org}":                   "org.read",
	"PATCH /v1/orgs/{org}":                 "org.billing",
	"DELETE /v1/orgs/{org}":                "org.write",
	"GET /v1/orgs/{org}/members":           "org.read",
	"PUT /v1/orgs/{org}/members/{user}":    "org.members",
	"DELETE /v1/orgs/{org}/members/{user}": "org.members",
	"POST /v1/orgs/{org}/invites":          "org.members",
	"GET /v1/orgs/{org}/invites":           "org.members",
	"DELETE /v1/orgs/{org}/invites/{id}":   "org.members",
	"GET /v1/users":                        "platform.read",
	"POST /v1/users":                       "platform.admin",
	"GET /v1/users/{id}":                   "any",
	"PATCH /v1/users/{id}":                 "any",
	"DELETE /v1/users/{id}":                "platform.admin",
	"POST /v1/agent/register":              "shard",
	"POST /v1/agent/heartbeat":             "shard",
	"POST /v1/agent/usage":                 "shard",
	"GET /v1/agent/sites":                  "shard",
	"PUT /v1/agent/sites/{name}/status":    "shard",
	"PUT /v1/agent/sites/{name}/move":      "shard",
	"POST /v1/agent/sites/{name}/finalize": "shard",
	"GET /v1/agent/sites/{name}/move-key":  "shard",
	"GET /v1/agent/sites/{name}/login-key": "shard",
	"GET /v1/agent/jobs":                   "shard",
	"GET /v1/agent/jobs/{id}":              "shard",
	"PUT /v1/agent/jobs/{id}":              "shard",
	"GET /v1/agent/backup-access":          "shard",
	"GET /v1/agent/artefacts/{sha256}":     "shard",
	"POST /v1/agent/certificate":           "shard",
	"POST /v1/edge/certificate":            "edge-only",
	"PUT /v1/edge/logs-address":            "edge-only",
	"GET /v1/agent/mesh-ca":                "shard",
	"GET /v1/edge/mesh-ca":                 "edge",
	"GET /v1/mesh/ca":                      "platform.admin",
	"POST /v1/mesh/ca/rotate":              "platform.admin",
	"GET /v1/routes":                       "edge",
	"POST /v1/edge/waf-events":             "edge",
	"POST /v1/edge/usage":                  "edge",
	"POST /v1/edge/probes":                 "edge",
	"GET /v1/edge/peers":                   "edge",
	"GET /v1/usage":                        "site.list", // filtered inside: what the caller may read
	"GET /v1/cost":                         "site.list",
	"GET /v1/whoami":                       "any",
	"GET /v1/assistant":                    "people",
	"POST /v1/assistant/chat":              "people",
	"POST /v1/assistant/confirm":           "people",
	"POST /v1/assistant/cancel":            "people",
	"GET /v1/openapi.yaml":                 "any",
	"GET /metrics":                         "platform.read",
	"GET /v1/audit":                        "site.list", // owners: their organisations' entries; other members: none
	"GET /v1/audit/export":                 "site.list",
	"POST /v1/audit/verify":                "platform.admin",
	"POST /v1/audit/checkpoint":            "platform.admin",
	// Signing in: public, except signing out and approving a device
	// (any token at the door; the handlers refuse machine tokens).
	"POST /v1/auth/signup":    "public",
	"POST /v1/auth/login":     "public",
	"POST /v1/auth/logout":    "any",
	"GET /v1/auth/oidc/start": "public",
	// Status pages: anyone; a site's only when published (404 else,
	// TestStatusPageOptIn).
	"GET /status":                          "public",
	"GET /status/{name}":                   "public",
	"GET /v1/auth/oidc/callback":           "public",
	"POST /v1/auth/password-reset":         "public",
	"POST /v1/auth/password-reset/confirm": "public",
	"POST /v1/invites/accept":              "public",
	"POST /v1/auth/device":                 "public",
	"POST /v1/auth/device/approve":         "any",
	"POST /v1/auth/device/token":           "public",
	// The MCP endpoint: any token; its tools call the API with the
	// caller's credential, which decides each call.
	"GET /mcp":    "people",
	"POST /mcp":   "people",
	"DELETE /mcp": "people",
}

// matrixFixture is a store with two customer organisations (acme, owned
// by the partner resell, and globex), a site in each, and a token for
// every caller of matrixCallers.
type matrixFixture struct {
	env     *env
	secrets map[string]string // caller → token secret
	sites   map[string]string // "own"/"other" → site name
	orgs    map[string]string // "own"/"other" → organisation
}

func newMatrixFixture(t *testing.T) *matrixFixture {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t)
	st := e.store
	f := &matrixFixture{env: e, secrets: map[string]string{"admin": adminSecret, "viewer": viewerSecret},
		sites: map[string]string{"own": "acme.test", "other": "globex.test"},
		orgs:  map[string]string{"own": "acme", "other": "globex"}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateOrg(ctx, &store.Org{Name: "resell", Kind: store.OrgPartner, Plan: "business", CreatedAt: testNow}))
	must(st.CreateOrg(ctx, &store.Org{Name: "acme", Kind: store.OrgCustomer, Partner: "resell", Plan: "business", CreatedAt: testNow}))
	must(st.CreateOrg(ctx, &store.Org{Name: "globex", Kind: store.OrgCustomer, Plan: "business", CreatedAt: testNow}))
	token := func(caller string, tok store.Token) {
		t.Helper()
		secret := "secret-" + caller
		tok.ID, tok.Name, tok.Hash, tok.CreatedAt = "tok-"+caller, caller, hashSecret(secret), testNow
		must(st.CreateToken(ctx, tok))
		f.secrets[caller] = secret
	}
	user := func(caller, org string, role store.OrgRole) {
		t.Helper()
		id := "usr-" + caller
		must(st.CreateUser(ctx, &store.User{ID: id, Email: caller + "@example.com", CreatedAt: testNow}))
		must(st.PutMembership(ctx, store.Membership{Org: org, UserID: id, Role: role, CreatedAt: testNow}))
		token(caller, store.Token{Role: store.RoleUser, Kind: store.TokenSession, UserID: id})
	}
	for _, r := range []store.Role{store.RoleOperator, store.RoleSupport} {
		token(string(r), store.Token{Role: r})
	}
	user("owner", "acme", store.OrgOwner)
	user("developer", "acme", store.OrgDeveloper)
	user("orgviewer", "acme", store.OrgViewer)
	user("billing", "acme", store.OrgBilling)
	user("partner", "resell", store.OrgOwner)
	token("devtoken", store.Token{Role: store.Role(store.OrgDeveloper), Org: "acme", UserID: "usr-owner"})
	token("shard", store.Token{Role: store.RoleShard, Subject: "local"})
	token("edge", store.Token{Role: store.RoleEdge})
	for _, which := range []string{"own", "other"} {
		must(st.CreateSite(ctx, &site.Site{
			Metadata: site.Metadata{Name: f.sites[which], UID: "uid-" + which, Org: f.orgs[which], CreatedAt: testNow},
			Spec:     site.Spec{Domain: f.sites[which], Plan: "basic"},
		}))
	}
	return f
}

// matrixHandler serves the real routes with the real authentication and
// authorization but stub handlers: a handler of a route whose targets are
// found inside (scopeHandler) checks the organisation the test names in
// X-Test-Org, as real handlers check the organisation of what they find.
func matrixHandler(e *env) http.Handler {
	srv := &server{cfg: Config{Store: e.store, Clock: func() time.Time { return testNow }}, log: slog.New(slog.DiscardHandler)}
	srv.cfg.Hub = NewHub(e.store, srv.log)
	mux := http.NewServeMux()
	for _, rt := range routes {
		rt := rt
		mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			c := &call{r: r, action: rt.Action, perm: rt.Perm}
			err := srv.admit(c, rt)
			if err == nil && rt.Scope == scopeHandler {
				if org := r.Header.Get("X-Test-Org"); org != "" {
					err = c.allow(org, errorf(http.StatusNotFound, CodeNotFound, "not found"))
				}
			}
			if err != nil {
				srv.writeError(w, r, err)
				return
			}
			w.WriteHeader(299) // reached the handler
		})
	}
	return mux
}

func TestAuthorizationMatrix(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := yaml.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	for p, row := range profiles {
		if len(row) != len(matrixCallers) {
			t.Fatalf("profile %s has %d columns, want %d", p, len(row), len(matrixCallers))
		}
	}
	f := newMatrixFixture(t)
	h := matrixHandler(f.env)
	var ops []string
	for path, methods := range doc.Paths {
		for m := range methods {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete"}, m) {
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	cells := 0
	for _, op := range ops {
		prof, ok := matrix[op]
		if !ok {
			t.Errorf("%s is in openapi.yaml but not in the authorization matrix (authz_test.go): say who may call it", op)
			continue
		}
		method, path, _ := strings.Cut(op, " ")
		for ci, caller := range matrixCallers {
			for ti, target := range []string{"own", "other", "platform"} {
				want := profiles[prof][ci][ti]
				if want == '-' {
					continue
				}
				cells++
				url := path
				url = strings.ReplaceAll(url, "{name}", cmp.Or(f.sites[target], "shard-x"))
				url = strings.ReplaceAll(url, "{org}", cmp.Or(f.orgs[target], "acme"))
				url = strings.ReplaceAll(url, "{id}", "x1")
				url = strings.ReplaceAll(url, "{user}", "usr-x")
				url = strings.ReplaceAll(url, "{ref}", "r:1")
				req := httptest.NewRequest(method, url, nil)
				if caller != "anonymous" {
					req.Header.Set("Authorization", "Bearer "+f.secrets[caller])
				}
				if target != "platform" {
					req.Header.Set("X-Test-Org", f.orgs[target])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				got := map[int]byte{299: 'A', 401: 'U', 403: 'F', 404: 'H'}[rec.Code]
				if got != want {
					t.Errorf("%s as %s on %s: got %d (%c), want %c", op, caller, target, rec.Code, cmp.Or(got, '?'), want)
				}
			}
		}
	}
	for op := range matrix {
		if !slices.Contains(ops, op) {
			t.Errorf("matrix entry %s is not a route of openapi.yaml", op)
		}
	}
	t.Logf("authorization matrix: %d routes × %d callers: %d cells checked", len(ops), len(matrixCallers), cells)
}

var _ = fmt.Sprint
