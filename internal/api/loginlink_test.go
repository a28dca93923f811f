package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/loginlink"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

var testPlatformSecret = bytes.Repeat([]byte{9}, 32)

// setPhase makes the store say the site's shard reported phase.
func (e *env) setPhase(t *testing.T, name string, phase site.Phase, suspended bool) *site.Site {
	t.Helper()
	st, err := e.store.UpdateSite(context.Background(), name, func(s *site.Site) error {
		s.Status.Phase, s.Status.Shard, s.Spec.Suspended = phase, "local", suspended
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLoginLink(t *testing.T) {
	e := newEnv(t)
	e.create(t, "blog.localhost")
	st := e.setPhase(t, "blog.localhost", site.PhaseReady, false)

	code, m, _ := e.do(t, "POST", "/v1/sites/blog.localhost/login-link", adminSecret, nil)
	if code != http.StatusOK {
		t.Fatalf("login-link: %d %v", code, m)
	}
	raw, _ := m["url"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host != "blog.localhost:8080" || u.Path != "/" {
		t.Fatalf("url %q: want the site's public URL with the token", raw)
	}
	if m["user"] != st.Spec.Admin.User || st.Spec.Admin.User == "" {
		t.Errorf("user %v, want %q", m["user"], st.Spec.Admin.User)
	}
	exp, err := time.Parse(time.RFC3339, m["expires_at"].(string))
	if err != nil || !exp.Equal(testNow.Add(loginlink.TTL)) {
		t.Errorf("expires_at %v (%v), want %v", m["expires_at"], err, testNow.Add(loginlink.TTL))
	}
	token := u.Query().Get(loginlink.Param)
	c, err := loginlink.Verify(loginlink.Key(testPlatformSecret, st.Metadata.UID), token, st.Metadata.UID, testNow)
	if err != nil {
		t.Fatalf("the link's token does not verify under the site's key: %v", err)
	}
	if c.User != st.Spec.Admin.User {
		t.Errorf("token user %q", c.User)
	}
	// Another link is another token (another nonce).
	_, m2, _ := e.do(t, "POST", "/v1/sites/blog.localhost/login-link", adminSecret, nil)
	if m2["url"] == raw {
		t.Error("two links are equal")
	}

	entries, err := e.store.ListAudit(context.Background(), store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Action == "site.login-link" && en.Target == "blog.localhost" && en.Outcome == "success" {
			n++
			if strings.Contains(en.Detail, token) {
				t.Error("the audit log holds the token")
			}
		}
	}
	if n != 2 {
		t.Errorf("%d site.login-link audit entries, want 2", n)
	}
}

// A site that redirects to HTTPS, on a platform whose edges serve HTTPS,
// gets an https:// link whose token is marked for TLS only; without an
// HTTPS listener the link stays http:// and unmarked.
func TestLoginLinkHTTPS(t *testing.T) {
	tests := []struct {
		name       string
		redirect   bool
		noListener bool
		wantURL    string
		wantTLS    bool
	}{
		{"redirect, HTTPS listener", true, false, "https://blog.localhost:8443/", true},
		{"no redirect", false, false, "http://blog.localhost:8080/", false},
		{"redirect, no HTTPS listener", true, true, "http://blog.localhost/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(t, "blog.localhost")
			e.setPhase(t, "blog.localhost", site.PhaseReady, false)
			st, err := e.store.UpdateSite(context.Background(), "blog.localhost", func(s *site.Site) error {
				s.Spec.HTTPSRedirect = tt.redirect
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.noListener {
				e.handler = New(Config{Store: e.store, Clock: func() time.Time { return testNow },
					LoginKey: func(uid string) []byte { return loginlink.Key(testPlatformSecret, uid) }})
			}
			code, m, _ := e.do(t, "POST", "/v1/sites/blog.localhost/login-link", adminSecret, nil)
			if code != http.StatusOK {
				t.Fatalf("login-link: %d %v", code, m)
			}
			raw, _ := m["url"].(string)
			if !strings.HasPrefix(raw, tt.wantURL+"?"+loginlink.Param+"=") {
				t.Fatalf("url %q, want %s?%s=…", raw, tt.wantURL, loginlink.Param)
			}
			u, _ := url.Parse(raw)
			c, err := loginlink.Verify(loginlink.Key(testPlatformSecret, st.Metadata.UID), u.Query().Get(loginlink.Param), st.Metadata.UID, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if c.TLS != tt.wantTLS {
				t.Errorf("token's tls %v, want %v", c.TLS, tt.wantTLS)
			}
			if err := c.CheckTLS(false); (err != nil) != tt.wantTLS {
				t.Errorf("over plain HTTP: %v", err)
			}
		})
	}
}

func TestLoginLinkRefused(t *testing.T) {
	e := newEnv(t)
	e.create(t, "blog.localhost")
	tests := []struct {
		name      string
		phase     site.Phase
		suspended bool
		want      int
	}{
		{"pending", site.PhasePending, false, http.StatusConflict},
		{"creating", site.PhaseCreating, false, http.StatusConflict},
		{"suspended", site.PhaseSuspended, true, http.StatusConflict},
		{"suspension requested", site.PhaseReady, true, http.StatusConflict},
		{"ready", site.PhaseReady, false, http.StatusOK},
		{"failed after serving", site.PhaseFailed, false, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.setPhase(t, "blog.localhost", tt.phase, tt.suspended)
			code, m, _ := e.do(t, "POST", "/v1/sites/blog.localhost/login-link", adminSecret, nil)
			if code != tt.want {
				t.Fatalf("%d %v, want %d", code, m, tt.want)
			}
		})
	}
	if code, _, _ := e.do(t, "POST", "/v1/sites/nope.localhost/login-link", adminSecret, nil); code != http.StatusNotFound {
		t.Errorf("unknown site: %d", code)
	}
	if code, _, _ := e.do(t, "POST", "/v1/sites/blog.localhost/login-link", viewerSecret, nil); code != http.StatusForbidden {
		t.Errorf("viewer: %d, want 403", code)
	}
}

func TestAgentLoginKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tok := range []store.Token{
		{ID: "tok-local", Name: "local", Role: store.RoleShard, Subject: "local", Hash: hashSecret("local-secret"), CreatedAt: testNow},
		{ID: "tok-other", Name: "other", Role: store.RoleShard, Subject: "other", Hash: hashSecret("other-secret"), CreatedAt: testNow},
	} {
		if err := e.store.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	e.create(t, "blog.localhost")
	st := e.setPhase(t, "blog.localhost", site.PhaseReady, false)
	code, m, _ := e.do(t, "GET", "/v1/agent/sites/blog.localhost/login-key", "local-secret", nil)
	if code != http.StatusOK {
		t.Fatalf("the site's own shard: %d %v", code, m)
	}
	key, _ := base64.StdEncoding.DecodeString(m["key"].(string))
	if m["uid"] != st.Metadata.UID || !bytes.Equal(key, loginlink.Key(testPlatformSecret, st.Metadata.UID)) {
		t.Errorf("got %v", m)
	}
	if code, m, _ := e.do(t, "GET", "/v1/agent/sites/blog.localhost/login-key", "other-secret", nil); code != http.StatusForbidden {
		t.Errorf("another shard: %d %v, want 403", code, m)
	}
}
