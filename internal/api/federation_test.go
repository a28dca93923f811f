package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// testCSR is a certificate request for a fresh key.
func testCSR(t *testing.T) []byte {
	t.Helper()
	c, err := mtls.LoadCredentials(t.TempDir(), mtls.Identity{Role: mtls.RoleEdge, Name: "whoever"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := c.CSR()
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// checkCertificate checks that an answer's certificate names identity
// whatever the request asked for, and chains to the answer's CA.
func checkCertificate(identity string) func(t *testing.T, e *env, m map[string]any) {
	return func(t *testing.T, e *env, m map[string]any) {
		cb, _ := pem.Decode([]byte(get(m, "certificate").(string)))
		if cb == nil {
			t.Fatalf("no certificate in %v", m)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		id, err := mtls.IdentityOf(cert)
		if err != nil || id.String() != identity {
			t.Errorf("certificate identity %v, %v; want %s", id, err, identity)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(get(m, "ca").(string))) || string(e.ca.CertPEM()) != get(m, "ca") {
			t.Fatal("answer's CA is not the authority's")
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("certificate does not verify: %v", err)
		}
	}
}

const (
	shard1Secret = "shard1-secret"
	shard2Secret = "shard2-secret"
	shard9Secret = "shard9-secret"
	edgeSecret   = "edge-secret"
)

// fedEnv is an env with shard and edge tokens, shards s1 and s2 (Ready),
// s3 (Ready, cordoned), s4 (Unhealthy), and the site a.com Ready on s1.
func fedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	for _, tok := range []store.Token{
		{ID: "tok-s1", Name: "s1", Role: store.RoleShard, Subject: "s1", Hash: hashSecret(shard1Secret), CreatedAt: testNow},
		{ID: "tok-s2", Name: "s2", Role: store.RoleShard, Subject: "s2", Hash: hashSecret(shard2Secret), CreatedAt: testNow},
		{ID: "tok-s9", Name: "s9", Role: store.RoleShard, Subject: "s9", Hash: hashSecret(shard9Secret), CreatedAt: testNow},
		{ID: "tok-edge", Name: "edge", Role: store.RoleEdge, Hash: hashSecret(edgeSecret), CreatedAt: testNow},
	} {
		if err := e.store.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range []store.Shard{
		{Name: "s1", Phase: store.ShardReady, CreatedAt: testNow, Dir: "/srv/s1"},
		{Name: "s2", Phase: store.ShardReady, CreatedAt: testNow, Dir: "/srv/s2"},
		{Name: "s3", Phase: store.ShardReady, Cordoned: true, CreatedAt: testNow},
		{Name: "s4", Phase: store.ShardUnhealthy, CreatedAt: testNow},
	} {
		if err := e.store.CreateShard(ctx, &sh); err != nil {
			t.Fatal(err)
		}
	}
	e.place(t, "a.com", "s1", site.PhaseReady)
	return e
}

// place creates a site and sets its shard and phase.
func (e *env) place(t *testing.T, domain, shard string, phase site.Phase) *site.Site {
	t.Helper()
	e.create(t, domain)
	st, err := e.store.UpdateSite(context.Background(), domain, func(s *site.Site) error {
		s.Status.Shard, s.Status.Phase = shard, phase
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// activeJob stores a job of kind in phase for the site name.
func (e *env) activeJob(t *testing.T, name string, kind store.JobKind, phase store.JobPhase, shard string) {
	t.Helper()
	j := &store.Job{ID: "job-" + string(kind), Kind: kind, Site: name, SiteUID: e.uid(t, name), Shard: shard,
		Params: []byte(`{}`), Phase: phase, CreatedAt: testNow}
	now := testNow
	if phase != store.JobPending {
		j.StartedAt = &now
	}
	if phase == store.JobSucceeded || phase == store.JobFailed {
		j.FinishedAt = &now
	}
	if err := e.store.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

// notMoving fails unless the site has no move and the refusal names the
// job that blocks it.
func (e *env) notMoving(t *testing.T, name string, m map[string]any) {
	t.Helper()
	st, err := e.store.GetSite(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Move.Active() {
		t.Errorf("site %s moves: %+v", name, st.Move)
	}
	if msg, _ := get(m, "error.message").(string); !strings.Contains(msg, "job-") {
		t.Errorf("the refusal does not name the job: %v", m)
	}
}

func (e *env) uid(t *testing.T, name string) string {
	t.Helper()
	st, err := e.store.GetSite(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Metadata.UID
}

// expand replaces the placeholders of a test's strings: {uid:a.com} by
// a.com's UID, {docroot:SHARD} and {endpoint:SHARD} by a.com's docroot and
// pool endpoint in the layout of SHARD (directory /srv/SHARD).
func (e *env) expand(t *testing.T, s string) string {
	t.Helper()
	if !strings.Contains(s, "{") {
		return s
	}
	uid := e.uid(t, "a.com")
	r := []string{"{uid:a.com}", uid}
	for _, sh := range []string{"s1", "s2"} {
		l := shardlayout.Layout{Name: sh, Dir: "/srv/" + sh}
		r = append(r, "{docroot:"+sh+"}", l.Site(uid).Docroot, "{endpoint:"+sh+"}", l.Endpoint(uid))
	}
	return strings.NewReplacer(r...).Replace(s)
}

// expandBody expands the placeholders of a JSON body.
func (e *env) expandBody(t *testing.T, body any) any {
	t.Helper()
	if body == nil {
		return nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal([]byte(e.expand(t, string(b))), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFederationScenarios(t *testing.T) {
	const uidA = "{uid:a.com}" // replaced by a.com's UID in bodies
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *env)
		method string
		path   string
		token  string
		body   any
		status int
		code   string
		fields map[string]any
		// check runs after the request.
		check func(t *testing.T, e *env, m map[string]any)
	}{
		// Roles: shard and edge tokens reach only their routes.
		{name: "shard whoami", method: "GET", path: "/v1/whoami", token: shard1Secret, status: 200, fields: map[string]any{"role": "shard", "subject": "s1"}},
		{name: "edge whoami", method: "GET", path: "/v1/whoami", token: edgeSecret, status: 200, fields: map[string]any{"role": "edge"}},
		{name: "shard lists sites forbidden", method: "GET", path: "/v1/sites", token: shard1Secret, status: 403, code: "forbidden"},
		{name: "shard watches routes forbidden", method: "GET", path: "/v1/routes", token: shard1Secret, status: 403, code: "forbidden"},
		{name: "shard creates token forbidden", method: "POST", path: "/v1/tokens", token: shard1Secret, body: map[string]any{"name": "x", "role": "admin"}, status: 403, code: "forbidden"},
		{name: "edge lists sites forbidden", method: "GET", path: "/v1/sites", token: edgeSecret, status: 403, code: "forbidden"},
		{name: "edge agent sites forbidden", method: "GET", path: "/v1/agent/sites", token: edgeSecret, status: 403, code: "forbidden"},
		{name: "admin agent sites forbidden", method: "GET", path: "/v1/agent/sites", token: adminSecret, status: 403, code: "forbidden"},
		{name: "admin reports status forbidden", method: "PUT", path: "/v1/agent/sites/a.com/status", token: adminSecret, body: map[string]any{"uid": uidA}, status: 403, code: "forbidden"},
		{name: "viewer routes forbidden", method: "GET", path: "/v1/routes", token: viewerSecret, status: 403, code: "forbidden"},
		{name: "admin routes", method: "GET", path: "/v1/routes", token: adminSecret, status: 200},

		// Registration and heartbeats.
		{name: "register new shard", method: "POST", path: "/v1/agent/register", token: shard9Secret,
			body:   map[string]any{"capacity": 20, "labels": map[string]string{"zone": "a"}, "roots": []string{"/usr/share/wordpress"}, "agent_version": "1.2"},
			status: 201, fields: map[string]any{"name": "s9", "phase": "Pending", "capacity": 20.0, "labels.zone": "a", "agent_version": "1.2"}},
		{name: "register keeps cordon and phase", setup: func(t *testing.T, e *env) {
			if _, err := e.store.UpdateShard(context.Background(), "s1", func(sh *store.Shard) error { sh.Cordoned = true; return nil }); err != nil {
				t.Fatal(err)
			}
		}, method: "POST", path: "/v1/agent/register", token: shard1Secret, body: map[string]any{"capacity": 7},
			status: 200, fields: map[string]any{"name": "s1", "phase": "Ready", "cordoned": true, "capacity": 7.0}},
		{name: "register bad root", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"roots": []string{"rel/dir"}}, status: 400, code: "invalid_argument"},
		{name: "register negative capacity", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"capacity": -1}, status: 400, code: "invalid_argument"},
		// A shard's word on its capacity is capped by the operator.
		{name: "register capacity above the cap", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"capacity": 90000},
			status: 201, fields: map[string]any{"capacity": float64(DefaultMaxShardCapacity)}},
		{name: "register dir and gateway", method: "POST", path: "/v1/agent/register", token: shard9Secret,
			body:   map[string]any{"capacity": 5, "dir": "/var/lib/aipress-shard", "gateway": "shard-9.internal:8443"},
			status: 201, fields: map[string]any{"dir": "/var/lib/aipress-shard", "gateway": "shard-9.internal:8443"}},
		{name: "register root dir", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"dir": "/"}, status: 400, code: "invalid_argument"},
		{name: "register relative dir", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"dir": "srv/x"}, status: 400, code: "invalid_argument"},
		{name: "register gateway URL", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"gateway": "http://x:1"}, status: 400, code: "invalid_argument"},
		{name: "register gateway without port", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"gateway": "x.internal"}, status: 400, code: "invalid_argument"},
		{name: "register gateway on any address", method: "POST", path: "/v1/agent/register", token: shard9Secret, body: map[string]any{"gateway": "0.0.0.0:8443"}, status: 400, code: "invalid_argument"},
		{name: "heartbeat unregistered", method: "POST", path: "/v1/agent/heartbeat", token: shard9Secret, body: map[string]any{"usage": map[string]any{"sites": 1}}, status: 404, code: "not_found"},
		{name: "heartbeat", method: "POST", path: "/v1/agent/heartbeat", token: shard1Secret, body: map[string]any{"usage": map[string]any{"sites": 3, "serving": 2}}, status: 204,
			check: func(t *testing.T, e *env, _ map[string]any) {
				sh, err := e.store.GetShard(context.Background(), "s1")
				if err != nil || sh.Usage.Sites != 3 || sh.LastHeartbeat == nil || !sh.LastHeartbeat.Equal(testNow) {
					t.Errorf("shard after heartbeat = %+v, %v", sh, err)
				}
			}},

		// Status reports.
		{name: "status report", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body:   map[string]any{"uid": uidA, "status": map[string]any{"phase": "Suspended", "shard": "s2", "observed_generation": 1, "endpoint": "{endpoint:s1}", "docroot": "{docroot:s1}"}},
			status: 200, fields: map[string]any{"status.phase": "Suspended", "status.shard": "s1", "status.endpoint": "{endpoint:s1}", "status.docroot": "{docroot:s1}"}},
		// A shard reports only where its own site lives by its registered
		// layout: never a path or socket of its choosing.
		{name: "status report docroot /", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Ready", "docroot": "/"}}, status: 422, code: "invalid_argument"},
		{name: "status report another shard's docroot", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Ready", "docroot": "{docroot:s2}"}}, status: 422, code: "invalid_argument"},
		{name: "status report TCP endpoint", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Ready", "endpoint": "tcp:127.0.0.1:9100"}}, status: 422, code: "invalid_argument"},
		{name: "status report another socket", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Ready", "endpoint": "unix:/srv/s1/php/run/wp_other.sock"}}, status: 422, code: "invalid_argument"},
		{name: "status report of an unregistered dir", setup: func(t *testing.T, e *env) {
			if _, err := e.store.UpdateShard(context.Background(), "s1", func(sh *store.Shard) error { sh.Dir = ""; return nil }); err != nil {
				t.Fatal(err)
			}
		}, method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Ready", "docroot": "{docroot:s1}"}}, status: 422, code: "invalid_argument"},

		// Certificates for the gateway channel: each token gets one for
		// its own identity only.
		{name: "shard certificate", method: "POST", path: "/v1/agent/certificate", token: shard1Secret, body: map[string]any{"csr": "{csr}"},
			status: 200, fields: map[string]any{"identity": "aipress://shard/s1"}, check: checkCertificate("aipress://shard/s1")},
		{name: "edge certificate", method: "POST", path: "/v1/edge/certificate", token: edgeSecret, body: map[string]any{"csr": "{csr}"},
			status: 200, fields: map[string]any{"identity": "aipress://edge/tok-edge"}, check: checkCertificate("aipress://edge/tok-edge")},
		{name: "admin edge certificate forbidden", method: "POST", path: "/v1/edge/certificate", token: adminSecret, body: map[string]any{"csr": "{csr}"}, status: 403, code: "forbidden"},
		{name: "shard edge certificate forbidden", method: "POST", path: "/v1/edge/certificate", token: shard1Secret, body: map[string]any{"csr": "{csr}"}, status: 403, code: "forbidden"},
		{name: "edge shard certificate forbidden", method: "POST", path: "/v1/agent/certificate", token: edgeSecret, body: map[string]any{"csr": "{csr}"}, status: 403, code: "forbidden"},
		{name: "certificate without csr", method: "POST", path: "/v1/agent/certificate", token: shard1Secret, body: map[string]any{}, status: 400, code: "invalid_argument"},
		{name: "certificate bad csr", method: "POST", path: "/v1/agent/certificate", token: shard1Secret, body: map[string]any{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, status: 400, code: "invalid_argument"},
		{name: "status report wrong uid", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard1Secret,
			body: map[string]any{"uid": "other", "status": map[string]any{"phase": "Ready"}}, status: 409, code: "conflict"},
		{name: "status report by another shard", method: "PUT", path: "/v1/agent/sites/a.com/status", token: shard2Secret,
			body: map[string]any{"uid": uidA, "status": map[string]any{"phase": "Failed"}}, status: 409, code: "conflict"},
		{name: "status report unknown site", method: "PUT", path: "/v1/agent/sites/x.com/status", token: shard1Secret,
			body: map[string]any{"uid": "u", "status": map[string]any{}}, status: 404, code: "not_found"},

		// Finalize.
		{name: "finalize without deletion", method: "POST", path: "/v1/agent/sites/a.com/finalize", token: shard1Secret, body: map[string]any{"uid": uidA}, status: 409, code: "conflict"},
		{name: "finalize", setup: func(t *testing.T, e *env) { e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil) },
			method: "POST", path: "/v1/agent/sites/a.com/finalize", token: shard1Secret, body: map[string]any{"uid": uidA}, status: 204,
			check: func(t *testing.T, e *env, _ map[string]any) {
				if _, err := e.store.GetSite(context.Background(), "a.com"); err == nil {
					t.Error("site still there")
				}
			}},
		{name: "finalize by another shard", setup: func(t *testing.T, e *env) { e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil) },
			method: "POST", path: "/v1/agent/sites/a.com/finalize", token: shard2Secret, body: map[string]any{"uid": uidA}, status: 409, code: "conflict"},
		{name: "move report without move", method: "PUT", path: "/v1/agent/sites/a.com/move", token: shard1Secret, body: map[string]any{"uid": uidA, "move": map[string]any{}}, status: 409, code: "conflict"},

		// Shards.
		{name: "list shards", method: "GET", path: "/v1/shards?limit=3", token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				items, _ := m["items"].([]any)
				if len(items) != 3 || m["continue"] == nil || get(items[0].(map[string]any), "name") != "s1" {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "list shards second page", method: "GET", path: "/v1/shards?limit=3&continue=" + store.EncodeContinue("s3"), token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				items, _ := m["items"].([]any)
				if len(items) != 1 || m["continue"] != nil || get(items[0].(map[string]any), "name") != "s4" {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "list shards bad continue", method: "GET", path: "/v1/shards?continue=!!", token: viewerSecret, status: 400, code: "invalid_argument"},
		{name: "get shard counts sites", method: "GET", path: "/v1/shards/s1", token: viewerSecret, status: 200, fields: map[string]any{"name": "s1", "sites": 1.0}},
		{name: "get unknown shard", method: "GET", path: "/v1/shards/nope", token: viewerSecret, status: 404, code: "not_found"},
		{name: "cordon", method: "POST", path: "/v1/shards/s1/cordon", token: adminSecret, status: 200, fields: map[string]any{"cordoned": true, "draining": false}},
		{name: "drain cordons", method: "POST", path: "/v1/shards/s2/drain", token: adminSecret, status: 200, fields: map[string]any{"cordoned": true, "draining": true}},
		{name: "uncordon", method: "POST", path: "/v1/shards/s3/uncordon", token: adminSecret, status: 200, fields: map[string]any{"cordoned": false, "draining": false}},
		{name: "viewer cordon forbidden", method: "POST", path: "/v1/shards/s1/cordon", token: viewerSecret, status: 403, code: "forbidden"},
		{name: "cordon unknown", method: "POST", path: "/v1/shards/nope/cordon", token: adminSecret, status: 404, code: "not_found"},
		{name: "delete shard with sites", method: "DELETE", path: "/v1/shards/s1", token: adminSecret, status: 409, code: "conflict"},
		{name: "delete empty shard", method: "DELETE", path: "/v1/shards/s2", token: adminSecret, status: 204},
		{name: "delete unknown shard", method: "DELETE", path: "/v1/shards/nope", token: adminSecret, status: 404, code: "not_found"},

		// Tokens.
		{name: "create shard token", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "s5", "role": "shard", "subject": "s5"}, status: 201,
			fields: map[string]any{"role": "shard", "subject": "s5", "name": "s5"},
			check: func(t *testing.T, e *env, m map[string]any) {
				secret, _ := m["token"].(string)
				if !strings.HasPrefix(secret, "aip_") || len(secret) != 52 {
					t.Fatalf("token = %q", secret)
				}
				tok, err := e.store.LookupToken(context.Background(), hashSecret(secret))
				if err != nil || tok.ID != m["id"] || tok.Subject != "s5" {
					t.Errorf("stored token = %+v, %v", tok, err)
				}
				if code, w, _ := e.do(t, "GET", "/v1/whoami", secret, nil); code != 200 || w["subject"] != "s5" {
					t.Errorf("whoami with the new token: %d %v", code, w)
				}
			}},
		{name: "create shard token without subject", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "x", "role": "shard"}, status: 400, code: "invalid_argument"},
		{name: "create shard token bad subject", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "x", "role": "shard", "subject": "S_1"}, status: 400, code: "invalid_argument"},
		{name: "create viewer token with subject", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "x", "role": "viewer", "subject": "s1"}, status: 400, code: "invalid_argument"},
		{name: "create token bad role", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "x", "role": "root"}, status: 400, code: "invalid_argument"},
		{name: "create edge token", method: "POST", path: "/v1/tokens", token: adminSecret, body: map[string]any{"name": "edge-1", "role": "edge"}, status: 201, fields: map[string]any{"role": "edge"}},
		{name: "list tokens", method: "GET", path: "/v1/tokens", token: adminSecret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				items, _ := m["items"].([]any)
				if len(items) != 6 {
					t.Errorf("tokens = %v", items)
				}
				for _, it := range items {
					if _, ok := it.(map[string]any)["hash"]; ok {
						t.Error("token list shows hashes")
					}
				}
			}},
		{name: "a viewer token manages no token: it lists none", method: "GET", path: "/v1/tokens", token: viewerSecret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				if items, _ := m["items"].([]any); len(items) != 0 {
					t.Errorf("viewer sees tokens: %v", items)
				}
			}},
		{name: "a viewer may not revoke a token", method: "DELETE", path: "/v1/tokens/tok-s2", token: viewerSecret, status: 404, code: "not_found"},
		{name: "delete token", method: "DELETE", path: "/v1/tokens/tok-s2", token: adminSecret, status: 204,
			check: func(t *testing.T, e *env, _ map[string]any) {
				if code, _, _ := e.do(t, "GET", "/v1/whoami", shard2Secret, nil); code != 401 {
					t.Errorf("deleted token still works: %d", code)
				}
			}},
		{name: "delete unknown token", method: "DELETE", path: "/v1/tokens/nope", token: adminSecret, status: 404, code: "not_found"},

		// Moves.
		{name: "move", method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 202,
			fields: map[string]any{"move.source": "s1", "move.target": "s2", "move.phase": "Copying", "move.requested_at": "2025-01-02T03:04:05Z", "status.shard": "s1"}},
		{name: "move to cordoned", method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s3"}, status: 400, code: "invalid_argument"},
		{name: "move to unhealthy", method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s4"}, status: 400, code: "invalid_argument"},
		{name: "move to same shard", method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s1"}, status: 400, code: "invalid_argument"},
		{name: "move to unknown shard", method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s7"}, status: 400, code: "invalid_argument"},
		{name: "move unknown site", method: "POST", path: "/v1/sites/x.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 404, code: "not_found"},
		{name: "move pending site", setup: func(t *testing.T, e *env) { e.place(t, "b.com", "s1", site.PhaseCreating) },
			method: "POST", path: "/v1/sites/b.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 409, code: "conflict"},
		{name: "move twice", setup: func(t *testing.T, e *env) {
			e.do(t, "POST", "/v1/sites/a.com/move", adminSecret, map[string]any{"target": "s2"})
		},
			method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 409, code: "conflict"},
		{name: "move during a code job", setup: func(t *testing.T, e *env) { e.activeJob(t, "a.com", store.JobCode, store.JobRunning, "s1") },
			method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 409, code: "conflict",
			check: func(t *testing.T, e *env, m map[string]any) { e.notMoving(t, "a.com", m) }},
		{name: "move during a staged update", setup: func(t *testing.T, e *env) { e.activeJob(t, "a.com", store.JobUpdate, store.JobPending, "") },
			method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 409, code: "conflict",
			check: func(t *testing.T, e *env, m map[string]any) { e.notMoving(t, "a.com", m) }},
		{name: "move after a code job", setup: func(t *testing.T, e *env) { e.activeJob(t, "a.com", store.JobCode, store.JobSucceeded, "s1") },
			method: "POST", path: "/v1/sites/a.com/move", token: adminSecret, body: map[string]any{"target": "s2"}, status: 202, fields: map[string]any{"move.phase": "Copying"}},
		{name: "viewer move forbidden", method: "POST", path: "/v1/sites/a.com/move", token: viewerSecret, body: map[string]any{"target": "s2"}, status: 403, code: "forbidden"},
		{name: "abort without move", method: "POST", path: "/v1/sites/a.com/move/abort", token: adminSecret, status: 409, code: "conflict"},
		{name: "abort", setup: func(t *testing.T, e *env) {
			e.do(t, "POST", "/v1/sites/a.com/move", adminSecret, map[string]any{"target": "s2"})
		},
			method: "POST", path: "/v1/sites/a.com/move/abort", token: adminSecret, status: 202, fields: map[string]any{"move.phase": "Aborting"}},

		// Lists for agents and edges.
		{name: "agent lists its sites with the hash", setup: func(t *testing.T, e *env) { e.place(t, "b.com", "s2", site.PhaseReady) },
			method: "GET", path: "/v1/agent/sites", token: shard1Secret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				sites, _ := m["sites"].([]any)
				if len(sites) != 1 || get(sites[0].(map[string]any), "metadata.name") != "a.com" || get(sites[0].(map[string]any), "spec.admin.password_hash") == nil {
					t.Errorf("agent sites = %v", m)
				}
				if rev, _ := m["revision"].(float64); rev <= 0 {
					t.Errorf("revision = %v", m["revision"])
				}
			}},
		{name: "edge lists routes without hashes", setup: func(t *testing.T, e *env) { e.place(t, "b.com", "s2", site.PhaseReady) },
			method: "GET", path: "/v1/routes", token: edgeSecret, status: 200,
			check: func(t *testing.T, _ *env, m map[string]any) {
				sites, _ := m["sites"].([]any)
				shards, _ := m["shards"].([]any)
				if len(sites) != 2 || len(shards) != 4 {
					t.Errorf("routes = %v", m)
				}
				for _, s := range sites {
					if get(s.(map[string]any), "spec.admin.password_hash") != nil {
						t.Error("routes leak the password hash")
					}
				}
			}},
		{name: "watch bad since", method: "GET", path: "/v1/agent/sites?since=-1", token: shard1Secret, status: 400, code: "invalid_argument"},
		{name: "watch bad wait", method: "GET", path: "/v1/routes?since=1&wait=soon", token: edgeSecret, status: 400, code: "invalid_argument"},
		{name: "watch expired", setup: func(t *testing.T, e *env) {
			e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil)
			if _, err := e.store.PruneTombstones(context.Background(), 1000); err != nil {
				t.Fatal(err)
			}
		}, method: "GET", path: "/v1/agent/sites?since=1&wait=0s", token: shard1Secret, status: 410, code: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := fedEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			body := tt.body
			if m, ok := body.(map[string]any); ok && m["csr"] == "{csr}" {
				m = maps.Clone(m)
				m["csr"] = string(testCSR(t))
				body = m
			}
			body = e.expandBody(t, body)
			code, m, hdr := e.do(t, tt.method, tt.path, tt.token, body)
			if code != tt.status {
				t.Fatalf("status = %d, want %d; body %v", code, tt.status, m)
			}
			if got := errCode(m); got != tt.code {
				t.Errorf("error code = %q, want %q; body %v", got, tt.code, m)
			}
			for path, want := range tt.fields {
				if w, ok := want.(string); ok {
					want = e.expand(t, w)
				}
				if got := get(m, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if code >= 400 && hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", hdr.Get("Content-Type"))
			}
			if tt.check != nil {
				tt.check(t, e, m)
			}
		})
	}
}

// TestMoveReports walks a move through the shards' reports: each shard's
// report keeps only its own fields, the import switches the site, and the
// source's cleanup finishes it.
func TestMoveReports(t *testing.T) {
	e := fedEnv(t)
	uid := e.uid(t, "a.com")
	steps := []struct {
		token  string
		path   string
		body   map[string]any
		status int
		fields map[string]any
	}{
		{adminSecret, "/v1/sites/a.com/move", map[string]any{"target": "s2"}, 202, map[string]any{"move.phase": "Copying"}},
		// The pre-copy: the source exports (it may not report the
		// target's pre-import; the target's error is not its to set yet),
		// then the target imports, and the freeze begins.
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{
			"pre_artifact": "moves/a.com.pre", "pre_exported": "2025-01-02T03:04:05Z", "pre_imported": "2025-01-02T03:04:05Z",
		}}, 200, map[string]any{"move.phase": "Copying", "move.pre_artifact": "moves/a.com.pre", "move.pre_imported": nil}},
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"pre_artifact": "x", "error": "no core"}},
			200, map[string]any{"move.phase": "Copying", "move.pre_artifact": "moves/a.com.pre", "move.error": "no core"}},
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"error": "not mine"}},
			200, map[string]any{"move.phase": "Copying", "move.error": "no core"}},
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"pre_imported": "2025-01-02T03:04:06Z"}},
			200, map[string]any{"move.phase": "Exporting", "move.error": nil}},
		// The source may not report the import.
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{
			"freeze_started": "2025-01-02T03:04:06Z", "artifact": "moves/a.com.tar", "imported": "2025-01-02T03:04:07Z", "target_endpoint": "tcp:evil:9000",
		}}, 200, map[string]any{"move.phase": "Exporting", "move.artifact": "moves/a.com.tar", "move.imported": nil, "move.target_endpoint": nil}},
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"exported": "2025-01-02T03:04:08Z"}},
			200, map[string]any{"move.phase": "Importing", "move.freeze_started": "2025-01-02T03:04:06Z"}},
		// A shard outside the move may not report.
		{shard9Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"imported": "2025-01-02T03:04:09Z"}}, 409, nil},
		// The target may not report the export's fields, nor a cleanup before the switch.
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"cleaned_up": "2025-01-02T03:04:09Z", "artifact": "x", "error": "disk full"}},
			200, map[string]any{"move.phase": "Importing", "move.artifact": "moves/a.com.tar", "move.cleaned_up": nil, "move.error": "disk full"}},
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"id": "another-move", "imported": "2025-01-02T03:04:09Z"}}, 409, nil},
		// The target reports where the site lives on it: only its layout's
		// paths are taken.
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{
			"imported": "2025-01-02T03:04:10Z", "target_endpoint": "tcp:evil:9000", "target_docroot": "{docroot:s2}",
		}}, 422, nil},
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{
			"imported": "2025-01-02T03:04:10Z", "target_endpoint": "{endpoint:s2}", "target_docroot": "{docroot:s1}",
		}}, 422, nil},
		{shard2Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{
			"imported": "2025-01-02T03:04:10Z", "target_endpoint": "{endpoint:s2}", "target_docroot": "{docroot:s2}",
		}}, 200, map[string]any{"move.phase": "CleaningUp", "status.shard": "s2", "status.endpoint": "{endpoint:s2}",
			"status.docroot": "{docroot:s2}", "move.switched": "2025-01-02T03:04:05Z", "move.error": nil}},
		// After the switch the source no longer reports status, and the move cannot be aborted.
		{shard1Secret, "/v1/agent/sites/a.com/status", map[string]any{"uid": uid, "status": map[string]any{"phase": "Failed"}}, 409, nil},
		{adminSecret, "/v1/sites/a.com/move/abort", nil, 409, nil},
		{shard2Secret, "/v1/agent/sites/a.com/status", map[string]any{"uid": uid, "status": map[string]any{"phase": "Ready", "endpoint": "{endpoint:s2}"}}, 200, map[string]any{"status.shard": "s2"}},
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"cleaned_up": "2025-01-02T03:04:11Z"}},
			200, map[string]any{"move.phase": "Done"}},
		{shard1Secret, "/v1/agent/sites/a.com/move", map[string]any{"uid": uid, "move": map[string]any{"error": "late"}}, 409, nil},
	}
	for i, s := range steps {
		method := "PUT"
		if strings.HasPrefix(s.path, "/v1/sites/") {
			method = "POST"
		}
		var body any
		if s.body != nil {
			body = e.expandBody(t, s.body)
		}
		code, m, _ := e.do(t, method, s.path, s.token, body)
		if code != s.status {
			t.Fatalf("step %d %s: %d, want %d; %v", i, s.path, code, s.status, m)
		}
		for path, want := range s.fields {
			if w, ok := want.(string); ok {
				want = e.expand(t, w)
			}
			if got := get(m, path); got != want {
				t.Errorf("step %d: %s = %#v, want %#v", i, path, got, want)
			}
		}
	}
}

// TestAbortReports rolls a move back: the target cleans up, the source
// unfreezes.
func TestAbortReports(t *testing.T) {
	e := fedEnv(t)
	uid := e.uid(t, "a.com")
	e.do(t, "POST", "/v1/sites/a.com/move", adminSecret, map[string]any{"target": "s2"})
	e.do(t, "POST", "/v1/sites/a.com/move/abort", adminSecret, nil)
	_, m, _ := e.do(t, "PUT", "/v1/agent/sites/a.com/move", shard2Secret, map[string]any{"uid": uid, "move": map[string]any{"cleaned_up": "2025-01-02T03:04:06Z", "unfrozen": "2025-01-02T03:04:06Z"}})
	if get(m, "move.phase") != "Aborting" || get(m, "move.unfrozen") != nil || get(m, "move.cleaned_up") == nil {
		t.Fatalf("after the target's cleanup: %v", m["move"])
	}
	_, m, _ = e.do(t, "PUT", "/v1/agent/sites/a.com/move", shard1Secret, map[string]any{"uid": uid, "move": map[string]any{"unfrozen": "2025-01-02T03:04:07Z"}})
	if get(m, "move.phase") != "Aborted" || get(m, "status.shard") != "s1" {
		t.Fatalf("after the source's unfreeze: %v", m)
	}
}

// TestNoopStatusWritesNothing: a report equal to the stored status takes no
// revision and wakes nobody.
func TestNoopStatusWritesNothing(t *testing.T) {
	e := fedEnv(t)
	st, err := e.store.GetSite(context.Background(), "a.com")
	if err != nil {
		t.Fatal(err)
	}
	before := e.notifies.Load()
	code, m, _ := e.do(t, "PUT", "/v1/agent/sites/a.com/status", shard1Secret, StatusReport{UID: st.Metadata.UID, Status: st.Status})
	if code != 200 || get(m, "metadata.resource_version") != float64(st.Metadata.ResourceVersion) {
		t.Fatalf("no-op report: %d %v (rv was %d)", code, m, st.Metadata.ResourceVersion)
	}
	if e.notifies.Load() != before {
		t.Error("a no-op report notified")
	}
}

// TestLongPoll: a watch returns as soon as something changes, and at the
// wait's end with nothing at the current revision.
func TestLongPoll(t *testing.T) {
	e := fedEnv(t)
	_, list, _ := e.do(t, "GET", "/v1/agent/sites", shard1Secret, nil)
	rev := int64(list["revision"].(float64))

	// Nothing changed: the wait runs out, the answer is empty.
	code, m, _ := e.do(t, "GET", "/v1/agent/sites?wait=0s&since="+itoa(rev), shard1Secret, nil)
	if code != 200 || len(m["sites"].([]any)) != 0 || int64(m["revision"].(float64)) != rev {
		t.Fatalf("empty watch: %d %v", code, m)
	}

	// Another shard's change does not answer s1's watch; a change of
	// a.com does.
	type result struct {
		code int
		m    map[string]any
	}
	done := make(chan result, 1)
	go func() {
		code, m, _ := e.do(t, "GET", "/v1/agent/sites?wait=60s&since="+itoa(rev), shard1Secret, nil)
		done <- result{code, m}
	}()
	e.place(t, "b.com", "s2", site.PhaseReady)
	e.do(t, "POST", "/v1/sites/a.com/suspend", adminSecret, nil)
	r := <-done
	if r.code != 200 {
		t.Fatalf("watch: %d %v", r.code, r.m)
	}
	sites := r.m["sites"].([]any)
	if len(sites) != 1 || get(sites[0].(map[string]any), "metadata.name") != "a.com" || get(sites[0].(map[string]any), "spec.suspended") != true {
		t.Fatalf("watch answered %v", r.m)
	}

	// Deleting a.com leaves a tombstone for s1; the edge's watch sees the
	// deletion too, and b.com.
	rev = int64(r.m["revision"].(float64))
	e.do(t, "DELETE", "/v1/sites/a.com", adminSecret, nil)
	if err := e.store.DeleteSite(context.Background(), "a.com"); err != nil {
		t.Fatal(err)
	}
	_, m, _ = e.do(t, "GET", "/v1/agent/sites?wait=0s&since="+itoa(rev), shard1Secret, nil)
	removed, _ := m["removed"].([]any)
	if len(removed) != 1 || get(removed[0].(map[string]any), "name") != "a.com" || get(removed[0].(map[string]any), "deleted") != true {
		t.Fatalf("tombstones = %v", m)
	}
	_, m, _ = e.do(t, "GET", "/v1/routes?wait=0s&since=0", edgeSecret, nil)
	if len(m["sites"].([]any)) != 1 || len(m["shards"].([]any)) != 4 {
		t.Fatalf("routes since 0 = %v", m)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestUnplacedCreate: without a Placer, new sites are stored unplaced.
func TestUnplacedCreate(t *testing.T) {
	e := newEnv(t)
	e.handler = New(Config{Store: e.store, Clock: func() time.Time { return testNow }})
	code, m, _ := e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": "a.com", "title": "T", "admin_email": "me@example.com"})
	if code != http.StatusCreated || m["shard"] != "" || get(m, "site.status.phase") != "Pending" {
		t.Fatalf("create: %d %v", code, m)
	}
}

// TestObserveLeavesOutLongPolls: Config.Observe (the API latency
// histogram) hears of every answer but the long polls, whose time is how
// long nothing changed: the routing table and the shard's sites and jobs
// listed are observed, the same routes waiting with since= are not.
func TestObserveLeavesOutLongPolls(t *testing.T) {
	e := fedEnv(t)
	rev := func(path, token string) int64 {
		status, m, _ := e.do(t, "GET", path, token, nil)
		if status != 200 {
			t.Fatalf("GET %s: %d %v", path, status, m)
		}
		v, _ := m["revision"].(float64)
		return int64(v)
	}
	steps := []struct {
		path, token string
		observed    bool
	}{
		{"/v1/routes", edgeSecret, true},
		{"/v1/routes?since=%d&wait=10ms", edgeSecret, false},
		{"/v1/agent/sites", shard1Secret, true},
		{"/v1/agent/sites?since=%d&wait=10ms", shard1Secret, false},
		{"/v1/agent/jobs", shard1Secret, true},
		{"/v1/agent/jobs?since=%d&wait=10ms", shard1Secret, false},
		{"/v1/sites", adminSecret, true},
	}
	var r int64
	for _, st := range steps {
		path := st.path
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, r)
		}
		e.observedMu.Lock()
		before := len(e.observed)
		e.observedMu.Unlock()
		if v := rev(path, st.token); v > 0 {
			r = v
		}
		e.observedMu.Lock()
		got := len(e.observed) - before
		e.observedMu.Unlock()
		if want := map[bool]int{true: 1, false: 0}[st.observed]; got != want {
			t.Errorf("GET %s: observed %d times, want %d", path, got, want)
		}
	}
}
