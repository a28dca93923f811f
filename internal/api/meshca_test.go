package api

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/store"
)

// issuerGen returns the CA generation whose key signed the certificate of
// a certificate answer, and the generations of its bundle in order.
func issuerGen(t *testing.T, ca *mtls.CA, m map[string]any) (int, []int) {
	t.Helper()
	keys := map[string]int{}
	for g := 1; g <= 3; g++ {
		a, err := ca.Generation(g)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(a.CertPEM())
		c, _ := x509.ParseCertificate(b.Bytes)
		keys[string(c.SubjectKeyId)] = g
	}
	var bundle []int
	rest := []byte(get(m, "ca").(string))
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, keys[string(c.SubjectKeyId)])
	}
	gen := 0
	if cert, ok := m["certificate"].(string); ok {
		b, _ := pem.Decode([]byte(cert))
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		gen = keys[string(c.AuthorityKeyId)]
	}
	return gen, bundle
}

func gens(v ...int) []int { return v }

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A CA rotation through the API, step by step: what each phase answers,
// which generation the certificate routes issue under and which bundle
// they hand out, the refusals (too early, out of order, bad phase), the
// no-op retries, and a second replica on the same store following.
func TestMeshCARotation(t *testing.T) {
	e := fedEnv(t)
	csr := string(testCSR(t))
	type step struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
		// issuing/bundle: want these generations in the answer (issuing:
		// of the certificate, when the answer has one; else the state's).
		issuing int
		bundle  []int
		changed *bool
	}
	yes, no := true, false
	cert := func(name string, issuing int, bundle []int) step {
		return step{name, "POST", "/v1/agent/certificate", shard1Secret, map[string]any{"csr": csr}, 200, issuing, bundle, nil}
	}
	edgeCert := func(name string, issuing int, bundle []int) step {
		return step{name, "POST", "/v1/edge/certificate", edgeSecret, map[string]any{"csr": csr}, 200, issuing, bundle, nil}
	}
	rotate := func(name string, body any, status, issuing int, bundle []int, changed *bool) step {
		return step{name, "POST", "/v1/mesh/ca/rotate", adminSecret, body, status, issuing, bundle, changed}
	}
	for _, s := range []step{
		{"state of a new install", "GET", "/v1/mesh/ca", adminSecret, nil, 200, 1, gens(1), nil},
		{"a shard's bundle check", "GET", "/v1/agent/mesh-ca", shard1Secret, nil, 200, 0, gens(1), nil},
		cert("a certificate before any rotation", 1, gens(1)),
		rotate("switch before start", map[string]any{"phase": "switch", "force": true}, 409, 0, nil, nil),
		rotate("finish before start", map[string]any{"phase": "finish", "force": true}, 409, 0, nil, nil),
		rotate("an unknown phase", map[string]any{"phase": "rollback"}, 400, 0, nil, nil),
		rotate("an unknown field", map[string]any{"phse": "start"}, 400, 0, nil, nil),
		rotate("start", map[string]any{"phase": "start"}, 200, 1, gens(1, 2), &yes),
		rotate("start again", map[string]any{"phase": "start"}, 200, 1, gens(1, 2), &no),
		cert("after start the old CA issues, both are trusted", 1, gens(1, 2)),
		edgeCert("an edge's too", 1, gens(1, 2)),
		{"an edge's bundle check", "GET", "/v1/edge/mesh-ca", edgeSecret, nil, 200, 0, gens(1, 2), nil},
		rotate("switch before holders checked", map[string]any{"phase": "switch"}, 409, 0, nil, nil),
		rotate("finish before switch", map[string]any{"phase": "finish", "force": true}, 409, 0, nil, nil),
		rotate("switch, forced", map[string]any{"phase": "switch", "force": true}, 200, 2, gens(2, 1), &yes),
		rotate("switch again", map[string]any{"phase": "switch"}, 200, 2, gens(2, 1), &no),
		cert("after switch the new CA issues", 2, gens(2, 1)),
		rotate("start while switched", map[string]any{"phase": "start", "force": true}, 409, 0, nil, nil),
		rotate("finish while old leaves may be valid", map[string]any{"phase": "finish"}, 409, 0, nil, nil),
		rotate("finish (the next phase), forced", map[string]any{"force": true}, 200, 2, gens(2), &yes),
		rotate("finish again", map[string]any{"phase": "finish"}, 200, 2, gens(2), &no),
		cert("after finish only the new CA", 2, gens(2)),
		{"a shard may not rotate", "POST", "/v1/mesh/ca/rotate", shard1Secret, map[string]any{"phase": "start"}, 403, 0, nil, nil},
		{"a viewer may not read the state", "GET", "/v1/mesh/ca", viewerSecret, nil, 403, 0, nil, nil},
	} {
		code, m, _ := e.do(t, s.method, s.path, s.token, s.body)
		if code != s.status {
			t.Fatalf("%s: %d %v, want %d", s.name, code, m, s.status)
		}
		if s.bundle == nil {
			continue
		}
		gen, bundle := issuerGen(t, e.meshCA, m)
		if gen == 0 && s.issuing != 0 {
			gen = int(get(m, "issuing").(float64))
		}
		if gen != s.issuing || !equalInts(bundle, s.bundle) {
			t.Fatalf("%s: issuing %d, bundle %v; want %d, %v", s.name, gen, bundle, s.issuing, s.bundle)
		}
		if s.changed != nil && get(m, "changed") != *s.changed {
			t.Fatalf("%s: changed %v, want %v", s.name, get(m, "changed"), *s.changed)
		}
	}
	// Each phase is in the audit log.
	entries, err := e.store.ListAudit(t.Context(), store.AuditListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var rotations []string
	for _, a := range entries {
		if a.Action == "mesh.ca.rotate" && a.Outcome == "success" {
			rotations = append(rotations, a.Detail)
		}
	}
	if len(rotations) != 6 || !strings.Contains(strings.Join(rotations, ","), "phase=switch issuing=2 force=true") {
		t.Errorf("audited rotations: %q, want start, switch and finish, each twice (the no-op retries)", rotations)
	}

	// A second replica sharing the store and the platform secret issues
	// under generation 2 at once, and its certificates verify under the
	// first replica's bundle.
	ca2, err := mtls.NewCA(bytes.Repeat([]byte{7}, 32), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	replica := New(Config{MeshCA: ca2, Store: e.store, Placer: StaticPlacer("local"), Clock: func() time.Time { return testNow }})
	req := httptest.NewRequest("POST", "/v1/agent/certificate", strings.NewReader(`{"csr":`+jsonString(csr)+`}`))
	req.Header.Set("Authorization", "Bearer "+shard1Secret)
	rec := httptest.NewRecorder()
	replica.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("replica: %d %s", rec.Code, rec.Body)
	}
	var m map[string]any
	if err := jsonUnmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if gen, bundle := issuerGen(t, e.meshCA, m); gen != 2 || !equalInts(bundle, gens(2)) {
		t.Fatalf("replica issues under %d with bundle %v, want 2 and [2]", gen, bundle)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
