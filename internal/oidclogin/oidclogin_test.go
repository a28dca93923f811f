package oidclogin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// startIdP runs a real OIDC provider (mockoidc: discovery, JWKS, RS256
// ID tokens, PKCE) on a loopback port.
func startIdP(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func newProvider(t *testing.T, m *mockoidc.MockOIDC, clk *clock) *Provider {
	t.Helper()
	cfg := m.Config()
	p, err := New(context.Background(), Config{IssuerURL: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: "http://127.0.0.1:1/v1/auth/oidc/callback", Clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// authorize follows the authorization URL at the provider as the browser
// would and returns the provider's redirect to the callback.
func authorize(t *testing.T, authURL string) *url.URL {
	t.Helper()
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func callback(u *url.URL, c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/v1/auth/oidc/callback?"+u.RawQuery, nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestSignIn(t *testing.T) {
	m := startIdP(t)
	for _, tc := range []struct {
		name string
		user *mockoidc.MockUser
		// tamper changes the callback (cookie, query) before Finish.
		tamper   func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie)
		want     error
		verified bool
	}{
		{name: "verified", user: &mockoidc.MockUser{Subject: "sub-1", Email: "Ann@Example.com", EmailVerified: true}, verified: true},
		{name: "unverified e-mail", user: &mockoidc.MockUser{Subject: "sub-2", Email: "bob@example.com"}, verified: false},
		{name: "state mismatch", user: mockoidc.DefaultUser(), want: ErrBadState,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				q := u.Query()
				q.Set("state", "forged")
				u.RawQuery = q.Encode()
			}},
		{name: "no cookie", user: mockoidc.DefaultUser(), want: ErrBadState,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) { *c = nil }},
		{name: "forged cookie", user: mockoidc.DefaultUser(), want: ErrBadState,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				v := (*c).Value
				(*c).Value = "x" + v[1:]
			}},
		{name: "another flow's cookie", user: mockoidc.DefaultUser(), want: ErrBadState,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				_, other, err := p.Start("", "")
				if err != nil {
					t.Fatal(err)
				}
				*c = other
			}},
		{name: "expired flow", user: mockoidc.DefaultUser(), want: ErrBadState,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				clk.add(DefaultFlowTTL + time.Second)
			}},
		{name: "provider error", user: mockoidc.DefaultUser(), want: ErrDenied,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				q := u.Query()
				q.Del("code")
				q.Set("error", "access_denied")
				u.RawQuery = q.Encode()
			}},
		{name: "unknown code", user: mockoidc.DefaultUser(), want: ErrToken,
			tamper: func(t *testing.T, p *Provider, clk *clock, u *url.URL, c **http.Cookie) {
				q := u.Query()
				q.Set("code", "not-a-code")
				u.RawQuery = q.Encode()
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{}
			p := newProvider(t, m, clk)
			authURL, cookie, err := p.Start("/portal", "inv")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "nonce=") {
				t.Fatalf("authorization URL lacks PKCE or nonce: %s", authURL)
			}
			if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
				t.Errorf("flow cookie attributes: %+v", cookie)
			}
			m.QueueUser(tc.user)
			u := authorize(t, authURL)
			if tc.tamper != nil {
				tc.tamper(t, p, clk, u, &cookie)
			}
			id, err := p.Finish(context.Background(), callback(u, cookie))
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Finish = %v, %v; want %v", id, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Issuer != m.Issuer() || id.Subject != tc.user.Subject || id.Email != strings.ToLower(tc.user.Email) ||
				id.EmailVerified != tc.verified || id.ReturnTo != "/portal" || id.Extra != "inv" {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

// TestCodeReplay: a code is good once; a second callback with the same
// code and cookie is refused by the provider.
func TestCodeReplay(t *testing.T) {
	m := startIdP(t)
	p := newProvider(t, m, &clock{})
	authURL, cookie, err := p.Start("", "")
	if err != nil {
		t.Fatal(err)
	}
	u := authorize(t, authURL)
	if _, err := p.Finish(context.Background(), callback(u, cookie)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Finish(context.Background(), callback(u, cookie)); !errors.Is(err, ErrToken) {
		t.Fatalf("replayed code: %v, want ErrToken", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(context.Background(), Config{ClientID: "x", RedirectURL: "http://x"}); err == nil {
		t.Error("no issuer accepted")
	}
	if _, err := New(context.Background(), Config{IssuerURL: "http://127.0.0.1:1", ClientID: "x", RedirectURL: "http://x", CookieKey: []byte("short")}); err == nil {
		t.Error("short cookie key accepted")
	}
}
