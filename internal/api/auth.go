package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/oidclogin"
	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/store"
)

// SessionCookie carries a browser's session secret.
const SessionCookie = "aipress_session"

// Defaults of AuthConfig.
const (
	DefaultSessionTTL       = 12 * time.Hour
	DefaultAPITokenTTL      = 90 * 24 * time.Hour
	DefaultResetTTL         = time.Hour
	DefaultDeviceTTL        = 10 * time.Minute
	DefaultDeviceInterval   = 5 * time.Second
	DefaultLockoutThreshold = 5
	DefaultLockoutDuration  = 15 * time.Minute
	// Sign-in attempts: per source IP 1 every 2 s (burst 20), per e-mail
	// address 1 every 10 s (burst 10).
	DefaultAuthIPRate     = 0.5
	DefaultAuthIPBurst    = 20
	DefaultAuthEmailRate  = 0.1
	DefaultAuthEmailBurst = 10
	// maxLimiterKeys bounds each sign-in limiter's buckets.
	maxLimiterKeys = 100_000
)

// AuthConfig configures signing in (Config.Auth). The zero value allows
// password sign-in, no sign-up and no OIDC.
type AuthConfig struct {
	// Passwords hashes new passwords (nil: password.DefaultParams).
	Passwords *password.Hasher
	// OIDC, when set, enables GET /v1/auth/oidc/start and callback.
	OIDC *oidclogin.Provider
	// OpenSignup lets anyone create a user and an organisation they own
	// (POST /v1/auth/signup); OIDCSignup also lets an OIDC identity with a
	// verified e-mail and no account do so through the callback.
	OpenSignup bool
	OIDCSignup bool
	// Mailer delivers password-reset links (nil: LogMailer to Logger).
	Mailer Mailer
	// BaseURL is where users reach the platform (links in mails, the
	// device flow's verification URI); "" uses the request's host.
	BaseURL string
	// Lifetimes (zero: the defaults above).
	SessionTTL, APITokenTTL, ResetTTL, DeviceTTL time.Duration
	DeviceInterval                               time.Duration
	// Lock-out: after LockoutThreshold consecutive failed passwords a user
	// is locked for LockoutDuration.
	LockoutThreshold int
	LockoutDuration  time.Duration
	// Rate limits of unauthenticated routes per source IP and of sign-in
	// and reset attempts per e-mail (per second; negative turns off).
	IPRate     float64
	IPBurst    int
	EmailRate  float64
	EmailBurst int
}

// authState is the server's sign-in machinery.
type authState struct {
	cfg     AuthConfig
	pw      *password.Hasher
	ips     *keyedLimiter
	emails  *keyedLimiter
	devices *deviceStore
	csrf    *http.CrossOriginProtection
}

func newAuthState(cfg AuthConfig) *authState {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SessionTTL, DefaultSessionTTL)
	def(&cfg.APITokenTTL, DefaultAPITokenTTL)
	def(&cfg.ResetTTL, DefaultResetTTL)
	def(&cfg.DeviceTTL, DefaultDeviceTTL)
	def(&cfg.DeviceInterval, DefaultDeviceInterval)
	def(&cfg.LockoutDuration, DefaultLockoutDuration)
	if cfg.LockoutThreshold <= 0 {
		cfg.LockoutThreshold = DefaultLockoutThreshold
	}
	if cfg.IPRate == 0 {
		cfg.IPRate, cfg.IPBurst = DefaultAuthIPRate, DefaultAuthIPBurst
	}
	if cfg.EmailRate == 0 {
		cfg.EmailRate, cfg.EmailBurst = DefaultAuthEmailRate, DefaultAuthEmailBurst
	}
	if cfg.Passwords == nil {
		h, err := password.New(password.DefaultParams)
		if err != nil {
			panic("api.New: " + err.Error()) // only a failing random source
		}
		cfg.Passwords = h
	}
	return &authState{cfg: cfg, pw: cfg.Passwords,
		ips:     newKeyedLimiter(cfg.IPRate, cfg.IPBurst, maxLimiterKeys),
		emails:  newKeyedLimiter(cfg.EmailRate, cfg.EmailBurst, maxLimiterKeys),
		devices: newDeviceStore(),
		csrf:    http.NewCrossOriginProtection(),
	}
}

// auditAuth records one sign-in event (every attempt, success or not):
// the one place sign-in auditing goes through.
func (s *server) auditAuth(c *call, action, actor, target string, err error, detail string) {
	outcome := "success"
	if err != nil {
		outcome = asHTTPError(err).Code
	}
	if actor == "" {
		actor = "anonymous"
	}
	user := ""
	if strings.HasPrefix(actor, "usr-") {
		user = actor
	}
	s.auditEvent(c.r.Context(), c.r, store.AuditEntry{Actor: actor, ActorUser: user, Org: c.org, Action: action, Target: target,
		Outcome: outcome, Detail: detail, Channel: c.channel, RequestID: c.requestID, SourceIP: c.sourceIP})
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func validEmail(e string) bool {
	n, err := store.NormalizeEmail(e)
	return err == nil && n == e && len(e) <= 254
}

// limitEmail takes a token of the per-e-mail sign-in bucket.
func (s *server) limitEmail(email string) error {
	if ok, d := s.auth.emails.allow(email, s.cfg.Clock()); !ok {
		return rateLimited(d)
	}
	return nil
}

// errBadCredentials is the one answer of a failed password sign-in: it
// does not say whether the e-mail exists, the password was wrong or the
// account is locked or disabled.
var errBadCredentials = errorf(http.StatusUnauthorized, CodeUnauthenticated,
	"wrong e-mail or password, or the account is locked after too many failed attempts (try again later)")

// checkPassword signs a user in by e-mail and password, applying the
// lock-out. Every path verifies one argon2id hash (a dummy for unknown
// users), so the time does not tell them apart. why is for the audit log.
func (s *server) checkPassword(ctx context.Context, acc store.Accounts, email, pw string) (u *store.User, why string, err error) {
	u, err = acc.GetUserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		_ = s.auth.pw.VerifyDummy(pw)
		return nil, "unknown e-mail", errBadCredentials
	}
	if err != nil {
		return nil, "", internal(fmt.Errorf("sign in: %w", err))
	}
	now := s.cfg.Clock().UTC()
	var verr error
	if u.PasswordHash == "" {
		verr = s.auth.pw.VerifyDummy(pw)
	} else {
		verr = password.Verify(u.PasswordHash, pw)
	}
	switch {
	case u.LockedUntil != nil && now.Before(*u.LockedUntil):
		return nil, "locked", errBadCredentials
	case u.Disabled:
		return nil, "disabled", errBadCredentials
	case u.PasswordHash == "":
		return nil, "no password (OIDC only)", errBadCredentials
	case verr != nil:
		why = "wrong password"
		if !errors.Is(verr, password.ErrMismatch) {
			why = "unreadable password hash"
			s.log.Error("sign in: stored password hash", "user", u.ID, "err", verr)
		}
		th, dur := s.auth.cfg.LockoutThreshold, s.auth.cfg.LockoutDuration
		if _, err := acc.UpdateUser(ctx, u.ID, func(x *store.User) error {
			x.FailedLogins++
			if x.FailedLogins >= th {
				until := now.Add(dur)
				x.LockedUntil = &until
				x.FailedLogins = 0
				why += ", locked"
			}
			return nil
		}); err != nil {
			return nil, why, internal(fmt.Errorf("sign in: count failure: %w", err))
		}
		return nil, why, errBadCredentials
	}
	rehash := s.auth.pw.NeedsRehash(u.PasswordHash)
	var newHash string
	if rehash {
		if newHash, err = s.auth.pw.Hash(pw); err != nil {
			return nil, "", internal(err)
		}
	}
	u, err = acc.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.FailedLogins, x.LockedUntil, x.LastLoginAt = 0, nil, &now
		if rehash {
			x.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		return nil, "", internal(fmt.Errorf("sign in: %w", err))
	}
	return u, "password", nil
}

// issue creates a credential for u: a session (cookie) or an API token.
// Its Role is store.RoleUser: it may do what the user may do at each
// request (platform role and memberships), never more.
func (s *server) issue(ctx context.Context, u *store.User, kind store.TokenKind, name string) (string, *store.Token, error) {
	secret, hash, err := store.NewTokenSecret()
	if err != nil {
		return "", nil, internal(err)
	}
	id, err := randomHex(8)
	if err != nil {
		return "", nil, internal(err)
	}
	now := s.cfg.Clock().UTC()
	ttl, prefix := s.auth.cfg.APITokenTTL, "tok-"
	if kind == store.TokenSession {
		ttl, prefix = s.auth.cfg.SessionTTL, "ses-"
	}
	exp := now.Add(ttl)
	tok := store.Token{ID: prefix + id, Name: name, Role: store.RoleUser, Hash: hash, CreatedAt: now, Kind: kind,
		Prefix: secret[:len(store.TokenPrefix)+8], UserID: u.ID, ExpiresAt: &exp}
	if err := s.cfg.Store.CreateToken(ctx, tok); err != nil {
		return "", nil, internal(fmt.Errorf("create %s for %s: %w", kind, u.ID, err))
	}
	return secret, &tok, nil
}

// secureCookies: cookies are Secure unless the API is reached over plain
// HTTP on a loopback address (a developer's `aipress up`); behind a TLS
// proxy (plain HTTP from a non-loopback host) they are Secure.
func secureCookies(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip == nil || !ip.IsLoopback()
}

func sessionCookie(r *http.Request, secret string, ttl time.Duration) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: secureCookies(r), SameSite: http.SameSiteLaxMode}
}

func clearSessionCookie(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: secureCookies(r), SameSite: http.SameSiteLaxMode}
}

// baseURL is where users reach the platform.
func (s *server) baseURL(r *http.Request) string {
	if s.auth.cfg.BaseURL != "" {
		return strings.TrimRight(s.auth.cfg.BaseURL, "/")
	}
	scheme := "http"
	if secureCookies(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// UserInfo is the public part of a user in sign-in answers.
type UserInfo struct {
	ID           string     `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name,omitempty"`
	PlatformRole store.Role `json:"platform_role,omitempty"`
}

func userInfo(u *store.User) UserInfo {
	return UserInfo{ID: u.ID, Email: u.Email, Name: u.Name, PlatformRole: u.PlatformRole}
}

// LoginRequest is the body of POST /v1/auth/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Token asks for a bearer API token (for programs) instead of a
	// session cookie; Name names it.
	Token bool   `json:"token,omitempty"`
	Name  string `json:"name,omitempty"`
}

// LoginResponse answers a successful sign-in. Token (the secret) is set
// only for {"token":true} and device-flow sign-ins; a session's secret is
// only in the Set-Cookie header.
type LoginResponse struct {
	User      UserInfo        `json:"user"`
	TokenID   string          `json:"token_id"`
	Kind      store.TokenKind `json:"kind"`
	ExpiresAt time.Time       `json:"expires_at"`
	Token     string          `json:"token,omitempty"`
}

// signedIn answers a sign-in of u: a session cookie, or an API token.
func (s *server) signedIn(c *call, u *store.User, apiToken bool, name string, status int) (response, error) {
	kind := store.TokenSession
	if apiToken {
		kind = store.TokenAPI
	}
	if name == "" {
		name = string(kind)
	}
	secret, tok, err := s.issue(c.r.Context(), u, kind, name)
	if err != nil {
		return response{}, err
	}
	body := LoginResponse{User: userInfo(u), TokenID: tok.ID, Kind: kind, ExpiresAt: *tok.ExpiresAt}
	resp := response{status: status, body: &body}
	if apiToken {
		body.Token = secret
	} else {
		resp.cookies = []*http.Cookie{sessionCookie(c.r, secret, s.auth.cfg.SessionTTL)}
	}
	return resp, nil
}

func (s *server) login(c *call) (response, error) {
	var req LoginRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	email := normEmail(req.Email)
	c.target = email
	ctx := c.r.Context()
	u, why, err := func() (*store.User, string, error) {
		if email == "" || req.Password == "" {
			return nil, "", badRequest("email and password are required")
		}
		if len(req.Password) > 4*password.MaxLength || len(req.Name) > maxShortString {
			return nil, "", badRequest("password or name too long")
		}
		if err := s.limitEmail(email); err != nil {
			return nil, "rate limited (e-mail)", err
		}
		acc := s.cfg.Store
		return s.checkPassword(ctx, acc, email, req.Password)
	}()
	actor := ""
	if u != nil {
		actor = u.ID
	}
	var resp response
	if err == nil {
		resp, err = s.signedIn(c, u, req.Token, req.Name, http.StatusOK)
	}
	s.auditAuth(c, "auth.login", actor, email, err, strings.TrimPrefix(why+", ip "+clientIP(c.r), ", "))
	return resp, err
}

func (s *server) logout(c *call) (response, error) {
	c.target = c.token.ID
	if c.token.UserID == "" {
		return response{}, badRequest("token %q is no user's sign-in; delete machine tokens with DELETE /v1/tokens/{id}", c.token.ID)
	}
	if err := s.cfg.Store.DeleteToken(c.r.Context(), c.token.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return response{}, internal(fmt.Errorf("sign out: %w", err))
	}
	return response{status: http.StatusNoContent, cookies: []*http.Cookie{clearSessionCookie(c.r)}}, nil
}

// SignupRequest is the body of POST /v1/auth/signup.
type SignupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name,omitempty"`
	// Org names the new organisation (default: made from the e-mail).
	Org string `json:"org,omitempty"`
	// OrgDisplayName defaults to Org.
	OrgDisplayName string `json:"org_display_name,omitempty"`
}

// orgNameFor makes an organisation name from an e-mail address.
func orgNameFor(email string) (string, error) {
	local, _, _ := strings.Cut(email, "@")
	b := strings.Builder{}
	for _, r := range strings.ToLower(local) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "org-" + name
	}
	suffix, err := randomHex(3)
	if err != nil {
		return "", err
	}
	return strings.Trim(name, "-") + "-" + suffix, nil
}

func (s *server) signup(c *call) (response, error) {
	var req SignupRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	email := normEmail(req.Email)
	c.target = email
	u, err := s.createAccount(c, email, req.Password, req.Name, req.Org, req.OrgDisplayName, "", "")
	actor := ""
	if u != nil {
		actor = u.ID
	}
	var resp response
	if err == nil {
		resp, err = s.signedIn(c, u, false, "", http.StatusCreated)
	}
	s.auditAuth(c, "auth.signup", actor, email, err, "ip "+clientIP(c.r))
	return resp, err
}

// createAccount makes a user (with a password, or linked to an OIDC
// identity) and an organisation the user owns. A failure undoes what was
// made, so a retry starts afresh.
func (s *server) createAccount(c *call, email, pw, name, org, orgDisplay, issuer, subject string) (*store.User, error) {
	if !s.auth.cfg.OpenSignup {
		return nil, errorf(http.StatusForbidden, CodeForbidden, "sign-up is closed on this platform; ask an organisation owner for an invitation")
	}
	if !validEmail(email) {
		return nil, badRequest("email %q is not an e-mail address", email)
	}
	if len(name) > maxShortString || len(orgDisplay) > maxShortString {
		return nil, badRequest("name and org_display_name are at most %d characters", maxShortString)
	}
	if issuer == "" {
		if err := password.CheckPolicy(pw, email); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	if org == "" {
		var err error
		if org, err = orgNameFor(email); err != nil {
			return nil, internal(err)
		}
	} else if !store.ValidOrgName(org) {
		return nil, badRequest("org %q: use 1-63 lowercase letters, digits or '-', starting with a letter", org)
	}
	if orgDisplay == "" {
		orgDisplay = org
	}
	acc := s.cfg.Store
	ctx := c.r.Context()
	if _, err := acc.GetOrg(ctx, org); err == nil {
		return nil, errorf(http.StatusConflict, CodeAlreadyExists, "organisation %q exists; choose another name", org)
	}
	if err := s.orgNameFree(ctx, org); err != nil {
		return nil, err
	}
	// Sign-up proves an address only through an identity provider.
	u, err := s.newUser(ctx, acc, email, pw, name, issuer, subject, issuer != "")
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock().UTC()
	err = acc.CreateOrg(ctx, &store.Org{Name: org, DisplayName: orgDisplay, Kind: store.OrgCustomer, CreatedAt: now})
	if err == nil {
		err = acc.PutMembership(ctx, store.Membership{Org: org, UserID: u.ID, Role: store.OrgOwner, CreatedAt: now})
		if err != nil {
			_ = acc.DeleteOrg(ctx, org)
		}
	}
	if err != nil {
		_ = acc.DeleteUser(ctx, u.ID)
		switch {
		case errors.Is(err, store.ErrAlreadyExists):
			return nil, errorf(http.StatusConflict, CodeAlreadyExists, "organisation %q exists; choose another name", org)
		case errors.Is(err, store.ErrInvalid):
			return nil, badRequest("organisation %q: %v", org, err)
		}
		return nil, internal(fmt.Errorf("sign up: %w", err))
	}
	return u, nil
}

// newUser creates a user with a password or an OIDC link.
// newUser stores a new user; verified says the address is proven (see
// store.User.EmailVerified).
func (s *server) newUser(ctx context.Context, acc store.Accounts, email, pw, name, issuer, subject string, verified bool) (*store.User, error) {
	id, err := randomHex(8)
	if err != nil {
		return nil, internal(err)
	}
	u := &store.User{ID: "usr-" + id, Email: email, Name: name, OIDCIssuer: issuer, OIDCSubject: subject,
		EmailVerified: verified, CreatedAt: s.cfg.Clock().UTC()}
	if pw != "" {
		if u.PasswordHash, err = s.auth.pw.Hash(pw); err != nil {
			return nil, internal(err)
		}
	}
	err = acc.CreateUser(ctx, u)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, errorf(http.StatusConflict, CodeAlreadyExists, "a user with e-mail %q exists; sign in or reset the password", email)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("create user: %w", err))
	}
	return u, nil
}

// PasswordResetRequest is the body of POST /v1/auth/password-reset.
type PasswordResetRequest struct {
	Email string `json:"email"`
}

// resetPrefix starts password-reset secrets.
const resetPrefix = "aipr_"

func (s *server) passwordReset(c *call) (response, error) {
	var req PasswordResetRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	email := normEmail(req.Email)
	c.target = email
	ctx := c.r.Context()
	why, err := func() (string, error) {
		if email == "" {
			return "", badRequest("email is required")
		}
		if err := s.limitEmail(email); err != nil {
			return "rate limited (e-mail)", err
		}
		acc := s.cfg.Store
		u, err := acc.GetUserByEmail(ctx, email)
		if errors.Is(err, store.ErrNotFound) {
			return "unknown e-mail", nil
		}
		if err != nil {
			return "", internal(err)
		}
		if u.Disabled {
			return "disabled", nil
		}
		rnd, err := randomHex(24)
		if err != nil {
			return "", internal(err)
		}
		secret := resetPrefix + rnd
		now := s.cfg.Clock().UTC()
		if err := acc.CreateResetToken(ctx, store.ResetToken{Hash: store.TokenHash(secret), UserID: u.ID, CreatedAt: now,
			ExpiresAt: now.Add(s.auth.cfg.ResetTTL)}); err != nil {
			return "", internal(fmt.Errorf("password reset: %w", err))
		}
		// The secret rides in the fragment, which a browser never sends to a
		// server (nor in a Referer), as the invitation link's does.
		link := s.baseURL(c.r) + "/reset-password#" + url.QueryEscape(secret)
		if err := s.mailer().Send(ctx, Mail{To: u.Email, Subject: "Reset your AIPress password",
			Body: "Someone asked to reset the password of your AIPress account.\n\nTo choose a new password, open\n\n  " + link +
				"\n\nwithin " + s.auth.cfg.ResetTTL.String() + " (or POST {\"token\":\"" + secret + "\",\"new_password\":...} to /v1/auth/password-reset/confirm).\nIf it was not you, ignore this mail."}); err != nil {
			return "", internal(fmt.Errorf("password reset mail: %w", err))
		}
		return "mailed", nil
	}()
	s.auditAuth(c, "auth.password-reset", "", email, err, why+", ip "+clientIP(c.r))
	if err != nil && asHTTPError(err).Status != http.StatusInternalServerError {
		return response{}, err
	}
	if err != nil {
		// A failing store or mailer is logged, not told: the answer is
		// the same whether the e-mail exists.
		s.log.Error("password reset", "err", err)
	}
	return response{status: http.StatusAccepted, body: struct{}{}}, nil
}

func (s *server) mailer() Mailer {
	if s.auth.cfg.Mailer != nil {
		return s.auth.cfg.Mailer
	}
	return LogMailer{Logger: s.log, Clock: s.cfg.Clock}
}

// PasswordResetConfirmRequest is the body of
// POST /v1/auth/password-reset/confirm.
type PasswordResetConfirmRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

func (s *server) passwordResetConfirm(c *call) (response, error) {
	var req PasswordResetConfirmRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	u, err := func() (*store.User, error) {
		if req.Token == "" {
			return nil, badRequest("token is required")
		}
		if err := password.CheckPolicy(req.NewPassword, ""); err != nil {
			return nil, badRequest("%v", err)
		}
		acc := s.cfg.Store
		now := s.cfg.Clock().UTC()
		rt, err := acc.UseResetToken(ctx, store.TokenHash(req.Token), now)
		if errors.Is(err, store.ErrNotFound) {
			return nil, badRequest("the reset token is unknown, expired or already used; ask for a new one")
		}
		if err != nil {
			return nil, internal(err)
		}
		hash, err := s.auth.pw.Hash(req.NewPassword)
		if err != nil {
			return nil, internal(err)
		}
		wasVerified := false
		u, err := acc.UpdateUser(ctx, rt.UserID, func(x *store.User) error {
			if err := password.CheckPolicy(req.NewPassword, x.Email); err != nil {
				return badRequest("%v (the reset token is used up; ask for a new one)", err)
			}
			wasVerified = x.EmailVerified
			x.PasswordHash, x.FailedLogins, x.LockedUntil = hash, 0, nil
			x.EmailVerified = true // the mailed link proved the address
			return nil
		})
		if err != nil {
			var he HTTPError
			if errors.As(err, &he) {
				return nil, he
			}
			return nil, internal(fmt.Errorf("reset password of %s: %w", rt.UserID, err))
		}
		// Sign-ins made with the old password end; an account whose
		// address was never proven loses every token (whoever made it
		// may not be the address's owner, who has just proven it).
		if err := s.revokeSessions(ctx, u.ID, !wasVerified); err != nil {
			return nil, internal(err)
		}
		return u, nil
	}()
	actor, target := "", ""
	if u != nil {
		actor, target = u.ID, u.Email
	}
	c.target = target
	s.auditAuth(c, "auth.password-reset.confirm", actor, target, err, "ip "+clientIP(c.r))
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: struct {
		User UserInfo `json:"user"`
	}{userInfo(u)}}, nil
}

// revokeSessions deletes the user's sign-ins: browser sessions, the
// tokens with all of the user's rights (`aipress login`) and its platform
// tokens; with all, every token of the user. Organisation-scoped API
// tokens (a CI job's) otherwise stay: their owner revokes them.
func (s *server) revokeSessions(ctx context.Context, userID string, all bool) error {
	toks, err := s.cfg.Store.ListTokens(ctx, store.TokenFilter{UserID: userID})
	if err != nil {
		return fmt.Errorf("revoke sign-ins: %w", err)
	}
	for _, t := range toks {
		if all || t.Kind == store.TokenSession || t.Org == "" {
			if err := s.cfg.Store.DeleteToken(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("revoke sign-in %s: %w", t.ID, err)
			}
		}
	}
	return nil
}

// AcceptInviteRequest is the body of POST /v1/invites/accept.
type AcceptInviteRequest struct {
	Token string `json:"token"`
	// Password and Name make the new user when the invited e-mail has no
	// account yet (an existing user just joins; their password is kept).
	Password string `json:"password,omitempty"`
	Name     string `json:"name,omitempty"`
	// OIDC asks to accept by signing in with the identity provider: the
	// answer's redirect starts that flow.
	OIDC bool `json:"oidc,omitempty"`
}

// AcceptInviteResponse answers POST /v1/invites/accept.
type AcceptInviteResponse struct {
	Org  string        `json:"org,omitempty"`
	Role store.OrgRole `json:"role,omitempty"`
	User *UserInfo     `json:"user,omitempty"`
	// Redirect (with oidc) is where the browser goes to sign in with the
	// identity provider; the invitation is accepted at the callback.
	Redirect string `json:"redirect,omitempty"`
	// SignedIn: a new user was made and signed in (session cookie set).
	SignedIn bool `json:"signed_in,omitempty"`
}

func (s *server) acceptInvite(c *call) (response, error) {
	var req AcceptInviteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.Token == "" {
		return response{}, badRequest("token is required")
	}
	if req.OIDC {
		if s.auth.cfg.OIDC == nil {
			return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "no OIDC provider is configured")
		}
		return response{status: http.StatusOK, body: AcceptInviteResponse{
			Redirect: "/v1/auth/oidc/start?invite=" + url.QueryEscape(req.Token)}}, nil
	}
	ctx := c.r.Context()
	var created bool
	inv, u, err := func() (*store.Invite, *store.User, error) {
		if req.Password != "" {
			if err := password.CheckPolicy(req.Password, ""); err != nil {
				return nil, nil, badRequest("%v", err)
			}
		}
		acc := s.cfg.Store
		inv, err := s.takeInvite(ctx, acc, req.Token)
		if err != nil {
			return nil, nil, err
		}
		u, err := acc.GetUserByEmail(ctx, inv.Email)
		if err == nil && !s.signedInAs(c, u) {
			// Joining an existing account takes that account's
			// sign-in: the invitation's secret alone proves only the
			// mailbox, and an owner must not add people unasked.
			s.restoreInvite(ctx, acc, inv, req.Token)
			return inv, nil, errorf(http.StatusUnauthorized, CodeUnauthenticated,
				"%s already has an account: sign in as that user, then accept the invitation", inv.Email)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			if req.Password == "" {
				s.restoreInvite(ctx, acc, inv, req.Token)
				return inv, nil, badRequest("%s has no account yet: send a password (or sign in with oidc)", inv.Email)
			}
			if err := password.CheckPolicy(req.Password, inv.Email); err != nil {
				s.restoreInvite(ctx, acc, inv, req.Token)
				return inv, nil, badRequest("%v", err)
			}
			if u, err = s.newUser(ctx, acc, inv.Email, req.Password, req.Name, "", "", true); err != nil {
				s.restoreInvite(ctx, acc, inv, req.Token)
				return inv, nil, err
			}
			created = true
		case err != nil:
			s.restoreInvite(ctx, acc, inv, req.Token)
			return inv, nil, internal(err)
		}
		if err := s.join(ctx, acc, inv, u); err != nil {
			return inv, u, err
		}
		return inv, u, nil
	}()
	actor, target := "", ""
	if u != nil {
		actor = u.ID
	}
	if inv != nil {
		target = inv.Org
		c.org = inv.Org // the organisation's owners see who joined
	}
	c.target = target
	s.auditAuth(c, "invite.accept", actor, target, err, "ip "+clientIP(c.r))
	if err != nil {
		return response{}, err
	}
	ui := userInfo(u)
	body := AcceptInviteResponse{Org: inv.Org, Role: inv.Role, User: &ui, SignedIn: created}
	if !created {
		return response{status: http.StatusOK, body: body}, nil
	}
	resp, err := s.signedIn(c, u, false, "", http.StatusOK)
	resp.body = body
	return resp, err
}

// takeInvite accepts the invitation whose secret is token.
func (s *server) takeInvite(ctx context.Context, acc store.Accounts, token string) (*store.Invite, error) {
	inv, err := acc.AcceptInvite(ctx, store.TokenHash(token), s.cfg.Clock().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, badRequest("the invitation is unknown or expired; ask for a new one")
	case errors.Is(err, store.ErrConflict):
		return nil, errorf(http.StatusConflict, CodeConflict, "the invitation was already accepted; sign in")
	case err != nil:
		return nil, internal(fmt.Errorf("accept invitation: %w", err))
	}
	return inv, nil
}

// restoreInvite undoes takeInvite when the acceptance cannot complete, so
// bad input loses nothing: the invitation is made again, unaccepted, with
// the same secret.
func (s *server) restoreInvite(ctx context.Context, acc store.Accounts, inv *store.Invite, token string) {
	again := *inv
	again.AcceptedAt, again.Hash = nil, store.TokenHash(token)
	if err := acc.DeleteInvite(ctx, inv.ID); err != nil {
		s.log.Error("restore invitation", "invite", inv.ID, "err", err)
		return
	}
	if err := acc.CreateInvite(ctx, again); err != nil {
		s.log.Error("restore invitation", "invite", inv.ID, "err", err)
	}
}

// join gives u the invitation's role in its organisation.
// signedInAs reports whether the call carries a sign-in (a session or an
// `aipress login` token) of user u.
func (s *server) signedInAs(c *call, u *store.User) bool {
	tok, err := s.authenticate(c.r)
	return err == nil && tok.UserID == u.ID && tok.Role == store.RoleUser
}

func (s *server) join(ctx context.Context, acc store.Accounts, inv *store.Invite, u *store.User) error {
	err := acc.PutMembership(ctx, store.Membership{Org: inv.Org, UserID: u.ID, Role: inv.Role, CreatedAt: s.cfg.Clock().UTC()})
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "organisation %q no longer exists", inv.Org)
	}
	if err != nil {
		return internal(fmt.Errorf("join %s: %w", inv.Org, err))
	}
	return nil
}
