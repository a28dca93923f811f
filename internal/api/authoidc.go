package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aipress/aipress/internal/oidclogin"
	"github.com/aipress/aipress/internal/store"
)

func (s *server) oidcProvider() (*oidclogin.Provider, error) {
	if s.auth.cfg.OIDC == nil {
		return nil, errorf(http.StatusNotImplemented, CodeUnimplemented, "no OIDC provider is configured")
	}
	return s.auth.cfg.OIDC, nil
}

// localPath keeps a return address on this site: a path, not "//host".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') || len(p) > 1024 {
		return "/"
	}
	// Browsers drop tabs and line breaks from URLs ("/\t/evil" becomes
	// "//evil"): no control character, and no scheme or host once parsed.
	if strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "/"
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return p
}

func (s *server) oidcStart(c *call) (response, error) {
	p, err := s.oidcProvider()
	if err != nil {
		return response{}, err
	}
	q := c.r.URL.Query()
	authURL, cookie, err := p.Start(localPath(q.Get("return_to")), q.Get("invite"))
	if err != nil {
		return response{}, internal(err)
	}
	h := http.Header{}
	h.Set("Location", authURL)
	return response{status: http.StatusFound, header: h, cookies: []*http.Cookie{cookie}}, nil
}

func (s *server) oidcCallback(c *call) (response, error) {
	p, err := s.oidcProvider()
	if err != nil {
		return response{}, err
	}
	ctx := c.r.Context()
	clear := p.ClearCookie()
	id, err := p.Finish(ctx, c.r)
	var u *store.User
	why := ""
	if err == nil {
		u, why, err = s.oidcUser(c, id)
	} else {
		switch {
		case errors.Is(err, oidclogin.ErrBadState):
			err = HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Msg: "the sign-in state is missing, expired or forged; start again", Err: err}
		case errors.Is(err, oidclogin.ErrDenied), errors.Is(err, oidclogin.ErrToken):
			err = HTTPError{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Msg: "the identity provider did not sign you in", Err: err}
		default:
			err = HTTPError{Status: http.StatusBadGateway, Code: CodeInternal, Msg: "the identity provider is unavailable", Err: err}
		}
	}
	actor, target := "", ""
	if u != nil {
		actor = u.ID
	}
	if id != nil {
		target = id.Email
		why = strings.TrimPrefix(why+", subject "+id.Subject, ", ")
	}
	c.target = target
	var resp response
	if err == nil {
		resp, err = s.signedIn(c, u, false, "oidc", http.StatusSeeOther)
	}
	s.auditAuth(c, "auth.login.oidc", actor, target, err, strings.TrimPrefix(why+", ip "+clientIP(c.r), ", "))
	if err != nil {
		return response{}, err
	}
	resp.cookies = append(resp.cookies, clear)
	resp.header = http.Header{}
	resp.header.Set("Location", localPath(id.ReturnTo))
	return resp, nil
}

var errUnverified = errorf(http.StatusForbidden, CodeForbidden, "the identity provider has not verified this e-mail address")

// oidcUser finds (or, for an invitation or open sign-up, makes) the user
// an OIDC identity signs in as: by (issuer, subject); else, with an
// invitation from the flow, the invited e-mail's user; else by verified
// e-mail an existing user not yet linked to another identity; else a new
// user and organisation when OIDC sign-up is open. Otherwise it refuses.
func (s *server) oidcUser(c *call, id *oidclogin.Identity) (*store.User, string, error) {
	ctx := c.r.Context()
	acc := s.cfg.Store
	u, err := acc.GetUserByOIDC(ctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		if u.Disabled {
			return nil, "disabled", errorf(http.StatusForbidden, CodeForbidden, "this account is disabled")
		}
		return u, "linked identity", s.touchLogin(ctx, acc, u)
	case !errors.Is(err, store.ErrNotFound):
		return nil, "", internal(err)
	}
	if !id.EmailVerified || id.Email == "" {
		return nil, "unverified e-mail", errUnverified
	}
	if id.Extra != "" {
		u, err := s.oidcInvite(ctx, acc, id)
		return u, "invitation", err
	}
	u, err = acc.GetUserByEmail(ctx, id.Email)
	switch {
	case err == nil:
		if u, err = s.link(ctx, acc, u, id); err != nil {
			return nil, "", err
		}
		return u, "linked by e-mail", s.touchLogin(ctx, acc, u)
	case !errors.Is(err, store.ErrNotFound):
		return nil, "", internal(err)
	}
	if s.auth.cfg.OpenSignup && s.auth.cfg.OIDCSignup {
		u, err := s.createAccount(c, id.Email, "", id.Name, "", "", id.Issuer, id.Subject)
		return u, "signed up", err
	}
	return nil, "no account", errorf(http.StatusForbidden, CodeForbidden, "no account for %s; ask an organisation owner for an invitation", id.Email)
}

// oidcInvite accepts the flow's invitation for the identity (its e-mail
// must be the invited one) and returns the user, linked or created.
func (s *server) oidcInvite(ctx context.Context, acc store.Accounts, id *oidclogin.Identity) (*store.User, error) {
	inv, err := s.takeInvite(ctx, acc, id.Extra)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(inv.Email, id.Email) {
		s.restoreInvite(ctx, acc, inv, id.Extra)
		return nil, errorf(http.StatusForbidden, CodeForbidden, "the invitation is for another e-mail address than %s", id.Email)
	}
	u, err := acc.GetUserByEmail(ctx, inv.Email)
	switch {
	case err == nil:
		u, err = s.link(ctx, acc, u, id)
	case errors.Is(err, store.ErrNotFound):
		u, err = s.newUser(ctx, acc, inv.Email, "", id.Name, id.Issuer, id.Subject, true)
	default:
		err = internal(err)
	}
	if err != nil {
		s.restoreInvite(ctx, acc, inv, id.Extra)
		return nil, err
	}
	if err := s.join(ctx, acc, inv, u); err != nil {
		return nil, err
	}
	return u, s.touchLogin(ctx, acc, u)
}

// link ties u to the identity, unless u is tied to another one.
//
// Linking by address alone is refused for a platform account (its admin
// links it) and for an account with a password whose address was never
// proven: whoever made it by open sign-up would otherwise keep its
// password and tokens once the address's real owner lands in it.
func (s *server) link(ctx context.Context, acc store.Accounts, u *store.User, id *oidclogin.Identity) (*store.User, error) {
	switch {
	case u.Disabled:
		return nil, errorf(http.StatusForbidden, CodeForbidden, "this account is disabled")
	case u.OIDCSubject != "":
		return nil, errorf(http.StatusForbidden, CodeForbidden, "%s is linked to another identity", u.Email)
	case u.PlatformRole != "":
		return nil, errorf(http.StatusForbidden, CodeForbidden,
			"%s is a platform account: it is not linked to an identity provider by e-mail", u.Email)
	case u.PasswordHash != "" && !u.EmailVerified:
		return nil, errorf(http.StatusForbidden, CodeForbidden,
			"%s has an account whose address was never verified: reset its password (which verifies it), then sign in here", u.Email)
	}
	u, err := acc.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.OIDCIssuer, x.OIDCSubject = id.Issuer, id.Subject
		x.EmailVerified = true
		return nil
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, errorf(http.StatusConflict, CodeAlreadyExists, "this identity is linked to another user")
	}
	if err != nil {
		return nil, internal(fmt.Errorf("link identity: %w", err))
	}
	return u, nil
}

func (s *server) touchLogin(ctx context.Context, acc store.Accounts, u *store.User) error {
	now := s.cfg.Clock().UTC()
	_, err := acc.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.LastLoginAt = &now
		return nil
	})
	if err != nil {
		return internal(fmt.Errorf("sign in %s: %w", u.ID, err))
	}
	return nil
}
