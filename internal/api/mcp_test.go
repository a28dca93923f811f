package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// TestMCPHandOff: /mcp answers 501 without Config.MCP; with one, an
// authenticated request reaches it with its caller in the context (bearer
// or session cookie), its answer passes through untouched, an
// unauthenticated one never reaches it, and none is audited.
func TestMCPHandOff(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.do(t, "POST", "/mcp", adminSecret, "{}"); code != http.StatusNotImplemented {
		t.Errorf("POST /mcp without an MCP server: %d, want 501", code)
	}
	ctx := context.Background()
	const sessionSecret = "aip_session-secret-0123456789"
	if err := e.store.CreateUser(ctx, &store.User{ID: "usr-1", Email: "u@example.com", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateToken(ctx, store.Token{ID: "tok-sess", Name: "s", Role: store.RoleUser, Kind: store.TokenSession,
		UserID: "usr-1", Hash: hashSecret(sessionSecret), CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	var got []Caller
	h := New(Config{Store: e.store, Clock: func() time.Time { return testNow },
		MCP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := CallerFrom(r.Context())
			if !ok {
				t.Error("no caller in the context")
			}
			got = append(got, c)
			w.Header().Set("Mcp-Session-Id", "s1")
			w.WriteHeader(http.StatusAccepted)
		})})
	for _, c := range []struct {
		method, cookie, bearer string
		status                 int
		want                   Caller
	}{
		{"POST", "", adminSecret, http.StatusAccepted, Caller{TokenID: "tok-admin", Secret: adminSecret}},
		{"GET", sessionSecret, "", http.StatusAccepted, Caller{TokenID: "tok-sess", UserID: "usr-1", Secret: sessionSecret}},
		{"DELETE", "", sessionSecret, http.StatusAccepted, Caller{TokenID: "tok-sess", UserID: "usr-1", Secret: sessionSecret}},
		{"POST", "", "", http.StatusUnauthorized, Caller{}},
		{"POST", "", "aip_wrong-0000000000", http.StatusUnauthorized, Caller{}},
	} {
		got = nil
		req := httptest.NewRequest(c.method, "/mcp", strings.NewReader("{}"))
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.cookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%s /mcp (bearer %q cookie %q): %d, want %d", c.method, c.bearer, c.cookie, rec.Code, c.status)
		}
		if c.status == http.StatusAccepted && (len(got) != 1 || got[0] != c.want || rec.Header().Get("Mcp-Session-Id") != "s1") {
			t.Errorf("%s /mcp: the MCP server saw %+v, want %+v", c.method, got, c.want)
		}
		if c.status != http.StatusAccepted && len(got) != 0 {
			t.Errorf("%s /mcp unauthenticated reached the MCP server", c.method)
		}
	}
	entries, err := e.store.ListAudit(ctx, store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "mcp") {
			t.Errorf("the MCP transport was audited: %+v", en)
		}
	}
}
