package api

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// auditEnv is an API with a checkpoint key over a SQLite file the test may
// also edit directly.
type auditEnv struct {
	*env
	path string
	srv  *server
}

func newAuditEnv(t *testing.T, every int, signed bool) *auditEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aipress.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hashSecret(adminSecret), CreatedAt: testNow},
		{ID: "tok-viewer", Name: "viewer", Role: store.RoleViewer, Hash: hashSecret(viewerSecret), CreatedAt: testNow},
		{ID: "tok-shard", Name: "shard", Role: store.RoleShard, Subject: "s1", Hash: hashSecret("shard-secret"), CreatedAt: testNow},
	} {
		if err := st.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Store: st, Placer: StaticPlacer("local"), Clock: func() time.Time { return testNow }, AuditCheckpointEvery: every}
	if signed {
		sg, err := auditlog.NewSigner(bytes.Repeat([]byte{3}, 32))
		if err != nil {
			t.Fatal(err)
		}
		cfg.AuditSigner = sg
	}
	h := New(cfg)
	return &auditEnv{env: &env{store: st, handler: h}, path: path, srv: &server{cfg: cfg, log: cfg.Logger}}
}

func (e *auditEnv) exec(t *testing.T, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *auditEnv) entries(t *testing.T) []store.AuditEntry {
	t.Helper()
	got, err := e.store.ListAudit(t.Context(), store.AuditListOptions{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAuditCallMeta: the channel, request ID and source IP of a call land
// in its audit entry, and the request ID is echoed.
func TestAuditCallMeta(t *testing.T) {
	e := newAuditEnv(t, 0, true)
	for i, tc := range []struct {
		channel, reqID       string
		wantChannel, wantReq string // wantReq "": a generated one
	}{
		{"portal", "abc-1.2:3_4", "portal", "abc-1.2:3_4"},
		{"", "", "api", ""},
		{"cli", "has space", "cli", ""},
		{"bogus", strings.Repeat("x", 129), "api", ""},
		{"assistant", strings.Repeat("y", 128), "assistant", strings.Repeat("y", 128)},
	} {
		body, _ := json.Marshal(map[string]any{"domain": fmt.Sprintf("s%d.com", i), "title": "T", "admin_email": "me@example.com"})
		req := httptest.NewRequest("POST", "/v1/sites", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		if tc.channel != "" {
			req.Header.Set(HeaderChannel, tc.channel)
		}
		if tc.reqID != "" {
			req.Header.Set(HeaderRequestID, tc.reqID)
		}
		req.RemoteAddr = "[::1]:4711"
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		echoed := rec.Header().Get(HeaderRequestID)
		all := e.entries(t)
		got := all[len(all)-1]
		if tc.wantReq != "" && echoed != tc.wantReq {
			t.Errorf("%d: echoed request ID %q, want %q", i, echoed, tc.wantReq)
		}
		if tc.wantReq == "" && (len(echoed) != 24 || echoed == tc.reqID) {
			t.Errorf("%d: echoed request ID %q, want a new one", i, echoed)
		}
		if got.Channel != tc.wantChannel || got.RequestID != echoed || got.SourceIP != "::1" || got.Actor != "tok-admin" || got.Action != "site.create" {
			t.Errorf("%d: entry %+v; want channel %q, request ID %q, source ::1", i, got, tc.wantChannel, echoed)
		}
	}
}

// TestAuditEvent: entries that are not routes (sign-in events) get the
// request's metadata and the API's clock, and join the chain.
func TestAuditEvent(t *testing.T) {
	e := newAuditEnv(t, 2, true)
	req := httptest.NewRequest("POST", "/v1/auth/signin", nil)
	req.Header.Set(HeaderChannel, "portal")
	e.srv.auditEvent(t.Context(), req, store.AuditEntry{Time: testNow.Add(-time.Hour), ActorUser: "usr-1", Action: "auth.signin", Target: "me@example.com", Outcome: "invalid_password"})
	e.srv.auditEvent(t.Context(), nil, store.AuditEntry{Actor: "tok-x", Action: "auth.signout", Outcome: "success", Channel: "cli", RequestID: "r1"})
	got := e.entries(t)
	if len(got) != 2 {
		t.Fatalf("entries %+v", got)
	}
	if g := got[0]; g.Channel != "portal" || len(g.RequestID) != 24 || g.SourceIP != "192.0.2.1" || !g.Time.Equal(testNow) || g.Outcome != "invalid_password" || g.ActorUser != "usr-1" {
		t.Errorf("sign-in entry %+v", g)
	}
	if g := got[1]; g.Channel != "cli" || g.RequestID != "r1" || g.SourceIP != "" || g.PrevHash != got[0].Hash {
		t.Errorf("sign-out entry %+v", g)
	}
	// Every 2 entries a checkpoint.
	if h, err := e.store.AuditHead(t.Context()); err != nil || h.CheckpointSeq != 2 {
		t.Errorf("head %+v, %v; want a checkpoint at 2", h, err)
	}
}

func appendOrgs(t *testing.T, st store.Store, orgs ...string) {
	t.Helper()
	for i, o := range orgs {
		if err := st.AppendAudit(t.Context(), store.AuditEntry{Time: testNow.Add(time.Duration(i) * time.Minute), Actor: "tok-admin", Org: o,
			Action: "site.update", Target: fmt.Sprintf("s%d", i), Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditListScenarios(t *testing.T) {
	e := newAuditEnv(t, 0, true)
	appendOrgs(t, e.store, "acme", "beta", "acme", "", "acme")
	for _, s := range []struct {
		name, path, token string
		status            int
		seqs              string // of the items
		next              float64
	}{
		{"all", "/v1/audit", viewerSecret, 200, "[1 2 3 4 5]", 0},
		{"admin", "/v1/audit", adminSecret, 200, "[1 2 3 4 5]", 0},
		{"org", "/v1/audit?org=acme", viewerSecret, 200, "[1 3 5]", 0},
		{"page", "/v1/audit?limit=2", viewerSecret, 200, "[1 2]", 2},
		{"next page", "/v1/audit?limit=2&after=2", viewerSecret, 200, "[3 4]", 4},
		{"org page", "/v1/audit?org=acme&limit=2&after=1", viewerSecret, 200, "[3 5]", 5},
		{"since", "/v1/audit?since=2025-01-02T03:07:05Z", viewerSecret, 200, "[4 5]", 0},
		{"since with offset", "/v1/audit?since=2025-01-02T05:07:05%2B02:00", viewerSecret, 200, "[4 5]", 0},
		{"bad since", "/v1/audit?since=24h", viewerSecret, 400, "", 0},
		{"bad after", "/v1/audit?after=-1", viewerSecret, 400, "", 0},
		{"bad limit", "/v1/audit?limit=0", viewerSecret, 400, "", 0},
		{"shard token", "/v1/audit", "shard-secret", 403, "", 0},
		{"no token", "/v1/audit", "", 401, "", 0},
		{"export shard token", "/v1/audit/export", "shard-secret", 403, "", 0},
		{"export bad since", "/v1/audit/export?since=x", viewerSecret, 400, "", 0},
	} {
		code, m, _ := e.do(t, "GET", s.path, s.token, nil)
		if code != s.status {
			t.Errorf("%s: status %d, want %d (%v)", s.name, code, s.status, m)
			continue
		}
		if code != 200 {
			continue
		}
		var seqs []int
		for _, it := range m["items"].([]any) {
			seqs = append(seqs, int(it.(map[string]any)["seq"].(float64)))
		}
		next, _ := m["next"].(float64)
		if fmt.Sprint(seqs) != s.seqs || next != s.next {
			t.Errorf("%s: seqs %v next %v, want %s next %v", s.name, seqs, next, s.seqs, s.next)
		}
	}
	// Reads are not audited.
	if n := len(e.entries(t)); n != 5 {
		t.Errorf("%d entries after reads, want 5", n)
	}
}

// TestAuditExport streams more than a page of entries as JSON lines.
func TestAuditExport(t *testing.T) {
	e := newAuditEnv(t, 0, true)
	orgs := make([]string, store.MaxLimit+2)
	for i := range orgs {
		orgs[i] = []string{"acme", "beta"}[i%2]
	}
	appendOrgs(t, e.store, orgs...)
	for _, tc := range []struct {
		query string
		n     int
		first int64
	}{
		{"", len(orgs), 1},
		{"?org=beta", len(orgs) / 2, 2},
		{"?org=acme&since=2025-01-02T03:05:05Z", len(orgs)/2 - 1, 3},
	} {
		req := httptest.NewRequest("GET", "/v1/audit/export"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer "+viewerSecret)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s: %d %s", tc.query, rec.Code, rec.Header().Get("Content-Type"))
		}
		sc := bufio.NewScanner(rec.Body)
		var n int
		prev := int64(0)
		for sc.Scan() {
			var en store.AuditEntry
			if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
				t.Fatalf("%s: line %d: %v", tc.query, n+1, err)
			}
			if n == 0 && en.Seq != tc.first || en.Seq <= prev || en.Hash != store.AuditHash(en) {
				t.Fatalf("%s: line %d: %+v (after seq %d)", tc.query, n+1, en, prev)
			}
			prev = en.Seq
			n++
		}
		if n != tc.n {
			t.Errorf("%s: %d lines, want %d", tc.query, n, tc.n)
		}
	}
}

func TestAuditVerifyAndCheckpoint(t *testing.T) {
	e := newAuditEnv(t, 1000, true)
	appendOrgs(t, e.store, "acme", "beta", "acme")
	steps := []struct {
		name, method, path, token string
		tamper                    string // SQL run before the call
		status                    int
		want                      map[string]any // fields of the body
	}{
		{"viewer may not verify", "POST", "/v1/audit/verify", viewerSecret, "", 403, nil},
		{"viewer may not checkpoint", "POST", "/v1/audit/checkpoint", viewerSecret, "", 403, nil},
		// 3 entries, then the two 403s: 5.
		{"checkpoint", "POST", "/v1/audit/checkpoint", adminSecret, "", 200, map[string]any{"created": true}},
		// The checkpoint call's own entry (6) follows it.
		{"checkpoint again", "POST", "/v1/audit/checkpoint", adminSecret, "", 200, map[string]any{"created": true}},
		{"verify", "POST", "/v1/audit/verify", adminSecret, "", 200, map[string]any{"ok": true, "entries": 7.0, "checkpoints": 2.0, "checkpoint_seq": 6.0, "unsigned": 1.0}},
		{"verify an edited row", "POST", "/v1/audit/verify", adminSecret, `UPDATE audit SET outcome = 'success' WHERE seq = 4`, 200,
			map[string]any{"ok": false, "first_bad_seq": 4.0, "problem": "entry 4 does not match its hash: it was edited"}},
	}
	for _, s := range steps {
		if s.tamper != "" {
			e.exec(t, s.tamper)
		}
		code, m, _ := e.do(t, s.method, s.path, s.token, nil)
		if code != s.status {
			t.Fatalf("%s: status %d, want %d (%v)", s.name, code, s.status, m)
		}
		for k, v := range s.want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %s = %v, want %v (%v)", s.name, k, m[k], v, m)
			}
		}
	}
	// The failed verification is itself audited, with the problem.
	all := e.entries(t)
	if last := all[len(all)-1]; last.Action != "audit.verify" || last.Detail != "entry 4 does not match its hash: it was edited" {
		t.Errorf("last entry %+v", last)
	}

	// Without a key: 501, but listing works.
	e = newAuditEnv(t, 0, false)
	for _, p := range []string{"/v1/audit/verify", "/v1/audit/checkpoint"} {
		if code, _, _ := e.do(t, "POST", p, adminSecret, nil); code != http.StatusNotImplemented {
			t.Errorf("%s without a key: %d, want 501", p, code)
		}
	}
	if code, m, _ := e.do(t, "GET", "/v1/audit", viewerSecret, nil); code != 200 || len(m["items"].([]any)) != 2 {
		t.Errorf("list without a key: %d %v", code, m)
	}
}

// TestAuditCheckpointsEveryN: audited calls sign a checkpoint every N
// entries.
func TestAuditCheckpointsEveryN(t *testing.T) {
	e := newAuditEnv(t, 3, true)
	for i := range 7 {
		e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": fmt.Sprintf("s%d.com", i), "title": "T", "admin_email": "me@example.com"})
	}
	cps, err := e.store.ListAuditCheckpoints(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps[0].Seq != 3 || cps[1].Seq != 6 {
		t.Errorf("checkpoints %+v, want at 3 and 6", cps)
	}
}
