// Package oidclogin is the control plane's OpenID Connect relying party: it
// signs users in through an external identity provider with the
// authorization-code flow and PKCE (github.com/coreos/go-oidc/v3 for
// discovery and ID-token verification, golang.org/x/oauth2 for the code
// exchange).
//
// Start makes the provider's authorization URL and a short-lived cookie
// holding the flow's state, nonce and PKCE verifier, signed with
// HMAC-SHA256 (the browser carries it; the server keeps nothing). Finish
// checks the cookie's signature and age, compares the state the provider
// sent back, exchanges the code with the verifier, verifies the ID token
// (signature against the provider's keys, issuer, audience, expiry) and its
// nonce, and returns the identity. Deciding which user the identity is —
// by (issuer, subject), else by a verified e-mail — is the caller's
// (internal/api), which needs the store.
package oidclogin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// CookieName is the cookie that carries a flow's state between Start and
// Finish.
const CookieName = "aipress_oidc"

// DefaultFlowTTL is how long a started sign-in may take.
const DefaultFlowTTL = 10 * time.Minute

// Config configures a Provider.
type Config struct {
	// IssuerURL is the provider's issuer (discovery at
	// IssuerURL/.well-known/openid-configuration). Required.
	IssuerURL string
	// ClientID and ClientSecret are this platform's registration at the
	// provider. ClientID is required.
	ClientID     string
	ClientSecret string
	// RedirectURL is the platform's callback
	// (https://<control plane>/v1/auth/oidc/callback). Required.
	RedirectURL string
	// Scopes asked for; default openid, email, profile.
	Scopes []string
	// CookieKey signs the flow cookie (at least 32 bytes). Nil: a random
	// key made by New; flows then survive only within this process.
	CookieKey []byte
	// SecureCookie sets the Secure attribute on the flow cookie.
	SecureCookie bool
	// FlowTTL bounds a flow (default DefaultFlowTTL).
	FlowTTL time.Duration
	// HTTPClient talks to the provider (default http.DefaultClient).
	HTTPClient *http.Client
	// Clock is the time source (default time.Now).
	Clock func() time.Time
}

// Provider is a configured relying party. It is safe for concurrent use.
type Provider struct {
	cfg      Config
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	issuer   string
}

// Identity is who the provider says signed in.
type Identity struct {
	Issuer        string
	Subject       string
	Email         string // lowercase
	EmailVerified bool
	Name          string
	// ReturnTo and Extra are what the caller passed to Start.
	ReturnTo string
	Extra    string
}

// Errors of Finish that are the browser's or the provider's doing (the
// caller answers them with 400/401, not 500).
var (
	ErrBadState = errors.New("oidc: missing, forged, expired or mismatched sign-in state")
	ErrDenied   = errors.New("oidc: the provider refused the sign-in")
	ErrToken    = errors.New("oidc: code exchange or ID token verification failed")
)

// New discovers the provider's endpoints and keys and returns a Provider.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.IssuerURL == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: issuer URL, client ID and redirect URL are required")
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if cfg.FlowTTL <= 0 {
		cfg.FlowTTL = DefaultFlowTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.CookieKey == nil {
		cfg.CookieKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CookieKey); err != nil {
			return nil, fmt.Errorf("oidc: cookie key: %w", err)
		}
	} else if len(cfg.CookieKey) < 32 {
		return nil, errors.New("oidc: cookie key must be at least 32 bytes")
	}
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery of %s: %w", cfg.IssuerURL, err)
	}
	return &Provider{
		cfg:    cfg,
		issuer: cfg.IssuerURL,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: prov.Endpoint(), Scopes: cfg.Scopes},
		verifier: prov.VerifierContext(oidc.ClientContext(context.Background(), cfg.HTTPClient),
			&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Clock}),
	}, nil
}

// Issuer returns the provider's issuer URL (what users are linked by).
func (p *Provider) Issuer() string { return p.issuer }

// flow is the signed cookie's content.
type flow struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	ReturnTo string    `json:"r,omitempty"`
	Extra    string    `json:"x,omitempty"`
	Expires  time.Time `json:"e"`
}

// Start begins a sign-in: it returns the provider's authorization URL to
// redirect the browser to and the flow cookie to set with that redirect.
// returnTo and extra (e.g. an invitation's secret) ride in the signed
// cookie and are handed back by Finish (the caller validates returnTo).
func (p *Provider) Start(returnTo, extra string) (authURL string, cookie *http.Cookie, err error) {
	f := flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(), ReturnTo: returnTo, Extra: extra,
		Expires: p.cfg.Clock().Add(p.cfg.FlowTTL)}
	val, err := p.seal(f)
	if err != nil {
		return "", nil, err
	}
	authURL = p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	return authURL, p.cookie(val, int(p.cfg.FlowTTL/time.Second)), nil
}

// ClearCookie returns the cookie that deletes the flow cookie (set it with
// Finish's answer, whatever it was).
func (p *Provider) ClearCookie() *http.Cookie { return p.cookie("", -1) }

func (p *Provider) cookie(val string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: val, Path: "/v1/auth/oidc/", MaxAge: maxAge,
		HttpOnly: true, Secure: p.cfg.SecureCookie, SameSite: http.SameSiteLaxMode}
}

func (p *Provider) seal(f flow) (string, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("oidc: flow cookie: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(p.mac(payload)), nil
}

func (p *Provider) mac(payload string) []byte {
	m := hmac.New(sha256.New, p.cfg.CookieKey)
	m.Write([]byte("aipress oidc flow\x00" + payload))
	return m.Sum(nil)
}

func (p *Provider) open(val string) (*flow, error) {
	payload, sig, ok := strings.Cut(val, ".")
	if !ok {
		return nil, ErrBadState
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, p.mac(payload)) {
		return nil, ErrBadState
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ErrBadState
	}
	var f flow
	if err := json.Unmarshal(b, &f); err != nil || !p.cfg.Clock().Before(f.Expires) {
		return nil, ErrBadState
	}
	return &f, nil
}

// Finish completes a sign-in from the provider's redirect to the callback
// (r carries the flow cookie and the code and state query parameters). Its
// errors wrap ErrBadState, ErrDenied or ErrToken, or are the provider's
// unavailability.
func (p *Provider) Finish(ctx context.Context, r *http.Request) (*Identity, error) {
	q := r.URL.Query()
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, ErrBadState
	}
	f, err := p.open(c.Value)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return nil, ErrBadState
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("%w: %s", ErrDenied, e)
	}
	code := q.Get("code")
	if code == "" {
		return nil, fmt.Errorf("%w: no code", ErrDenied)
	}
	ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: exchange: %w", ErrToken, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: no id_token in the token response", ErrToken)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce mismatch", ErrToken)
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"` // bool; some providers send "true"
		Name          string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrToken, err)
	}
	verified := claims.EmailVerified == true || claims.EmailVerified == "true"
	return &Identity{Issuer: idt.Issuer, Subject: idt.Subject, Email: strings.ToLower(strings.TrimSpace(claims.Email)),
		EmailVerified: verified, Name: claims.Name, ReturnTo: f.ReturnTo, Extra: f.Extra}, nil
}
