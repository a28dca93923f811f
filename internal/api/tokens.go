package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
	// Role is, without Org, a platform role (admin, operator, support,
	// viewer), a machine role (shard, edge; admins only) or "user" (all of
	// the signed-in user's rights); with Org, an organisation role
	// (owner, developer, viewer, billing).
	Role store.Role `json:"role"`
	// Subject is the shard's name for role shard (required then); other
	// roles have none.
	Subject string `json:"subject,omitempty"`
	// Org scopes the token to one organisation.
	Org string `json:"org,omitempty"`
	// ExpiresInSeconds, when positive, makes the token expire that long
	// after its creation.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// CreateTokenResponse is the 201 body of POST /v1/tokens (and of a
// rotation): the token's record and its secret, shown only here (only its
// SHA-256 is stored).
type CreateTokenResponse struct {
	store.Token
	Secret string `json:"token"`
}

// RotateTokenRequest is the optional body of POST /v1/tokens/{id}/rotate.
type RotateTokenRequest struct {
	// OverlapSeconds is how long the old secret keeps working (default
	// DefaultTokenOverlap; 0 in the body means the default, a negative
	// value ends it at once).
	OverlapSeconds int64 `json:"overlap_seconds,omitempty"`
}

// DefaultTokenOverlap is how long a rotated token's old secret keeps
// working, so that every program using it can move to the new one.
const DefaultTokenOverlap = 24 * time.Hour

// maxTokenLifetime bounds ExpiresInSeconds (ten years).
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

// TokenList is the body of GET /v1/tokens (without secrets or hashes).
type TokenList struct {
	Items []store.Token `json:"items"`
}

var platformRoles = []store.Role{store.RoleAdmin, store.RoleOperator, store.RoleSupport, store.RoleViewer}

func (req *CreateTokenRequest) validate() error {
	if req.Name == "" || len(req.Name) > maxShortString {
		return badRequest("name must be 1 to %d characters", maxShortString)
	}
	if req.ExpiresInSeconds < 0 || time.Duration(req.ExpiresInSeconds)*time.Second > maxTokenLifetime {
		return badRequest("expires_in_seconds must be between 0 (never) and %d", int64(maxTokenLifetime/time.Second))
	}
	if req.Org != "" {
		if orgGrants[store.OrgRole(req.Role)] == nil {
			return badRequest("an organisation token's role must be owner, developer, viewer or billing, got %q", req.Role)
		}
		return nil
	}
	switch {
	case req.Role == store.RoleShard:
		if !ValidShardName(req.Subject) {
			return badRequest("a shard token needs subject: the shard's name (1-63 lowercase letters, digits or '-'), got %q", req.Subject)
		}
		return nil
	case req.Subject != "":
		return badRequest("only shard tokens have a subject")
	case req.Role == store.RoleEdge, req.Role == store.RoleUser, slices.Contains(platformRoles, req.Role):
		return nil
	}
	return badRequest("role must be admin, operator, support, viewer, user, shard or edge (or, with org, owner, developer, viewer or billing), got %q", req.Role)
}

// allowNewToken checks that the caller may hand out req: a token never
// carries more than its creator may do. A signed-in user's tokens act for
// that user (and die with the user's rights); machine and platform tokens
// without a user are made by platform admins.
func (s *server) allowNewToken(c *call, req *CreateTokenRequest) (userID string, err error) {
	p := c.who
	deny := func(format string, args ...any) error {
		return errorf(http.StatusForbidden, CodeForbidden, format, args...)
	}
	if p.user != nil {
		userID = p.user.ID
	}
	switch {
	case req.Org != "":
		if decide(p, permOrgRead, req.Org) == hide {
			return "", orgNotFound(req.Org)
		}
		if _, err := s.cfg.Store.GetOrg(c.r.Context(), req.Org); errors.Is(err, store.ErrNotFound) {
			return "", orgNotFound(req.Org)
		} else if err != nil {
			return "", internal(err)
		}
		if _, ok := narrowOrgRole(store.OrgRole(req.Role), p.orgs[req.Org]); ok {
			return userID, nil
		}
		if p.platformCan(permPlatformAdm) {
			// A platform admin's token for an organisation it is no
			// member of acts for no user (bounded by nobody's rights).
			return "", nil
		}
		return "", deny("you may not make a %s token for organisation %q (your role there: %q)", req.Role, req.Org, p.orgs[req.Org])
	case req.Role == store.RoleUser:
		if p.user == nil {
			return "", badRequest("role user needs a signed-in user (this token has none)")
		}
		if p.token.Role != store.RoleUser {
			return "", deny("only a user's sign-in may make tokens with all of the user's rights")
		}
		return userID, nil
	case req.Role == store.RoleShard, req.Role == store.RoleEdge:
		if !p.platformCan(permPlatformAdm) {
			return "", deny("only platform admins make %s tokens", req.Role)
		}
		return "", nil
	default: // a platform role, at most the one this token acts with
		if !platformRoleWithin(req.Role, p.platform) {
			return "", deny("you may not make a %s token (this token's platform role: %q)", req.Role, p.platform)
		}
		return userID, nil
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newToken stores a new token like t (ID, secret, prefix and creation
// time are new) and returns it with its secret.
func (s *server) newToken(c *call, t store.Token) (*CreateTokenResponse, error) {
	secret, hash, err := store.NewTokenSecret()
	if err != nil {
		return nil, internal(err)
	}
	id, err := randomHex(6)
	if err != nil {
		return nil, internal(err)
	}
	t.ID = string(t.Role) + "-" + id
	if t.Org != "" {
		t.ID = "org-" + id
	}
	t.Hash, t.Prefix = hash, store.SecretPrefix(secret)
	t.CreatedAt = s.cfg.Clock().UTC()
	t.LastUsedAt, t.LastUsedIP, t.ReplacedBy = nil, "", ""
	c.target = t.ID
	if err := s.cfg.Store.CreateToken(c.r.Context(), t); err != nil {
		return nil, internal(fmt.Errorf("create token: %w", err))
	}
	t.Hash = ""
	return &CreateTokenResponse{Token: t, Secret: secret}, nil
}

func (s *server) createToken(c *call) (response, error) {
	var req CreateTokenRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	c.target = req.Name
	if err := req.validate(); err != nil {
		return response{}, err
	}
	userID, err := s.allowNewToken(c, &req)
	if err != nil {
		return response{}, err
	}
	t := store.Token{Name: req.Name, Role: req.Role, Subject: req.Subject, Org: req.Org, UserID: userID, Kind: store.TokenAPI}
	if req.ExpiresInSeconds > 0 {
		at := s.cfg.Clock().UTC().Add(time.Duration(req.ExpiresInSeconds) * time.Second)
		t.ExpiresAt = &at
	}
	c.org = req.Org
	out, err := s.newToken(c, t)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusCreated, body: out}, nil
}

// mayManageToken reports whether the caller may see and revoke t:
// platform admins any token; a token itself; a user's sign-in (role user)
// the user's tokens; organisation owners their organisation's tokens. A
// narrower token of a user does not reach the user's other tokens.
func mayManageToken(p *principal, t *store.Token) bool {
	switch {
	case p.platformCan(permPlatformAdm), p.token.ID == t.ID:
		return true
	case p.user != nil && t.UserID == p.user.ID && p.token.Role == store.RoleUser:
		return true
	case t.Org != "":
		return p.can(permOrgMembers, t.Org)
	}
	return false
}

// mayRotateToken reports whether the caller may take a new secret for t:
// only for itself (a token, or a user's sign-in for the user's tokens), or
// a platform admin for a token that acts for no user. Another user's token
// is revoked, never rotated: its new secret would act as that user.
func mayRotateToken(p *principal, t *store.Token) bool {
	switch {
	case p.token.ID == t.ID:
		return true
	case t.UserID != "":
		return p.user != nil && t.UserID == p.user.ID && p.token.Role == store.RoleUser
	}
	return p.platformCan(permPlatformAdm)
}

func (s *server) listTokens(c *call) (response, error) {
	ctx := c.r.Context()
	var filters []store.TokenFilter
	switch p := c.who; {
	case p.platformCan(permPlatformAdm):
		filters = []store.TokenFilter{{}}
	default:
		if p.user != nil {
			filters = append(filters, store.TokenFilter{UserID: p.user.ID})
		}
		for _, org := range p.visibleOrgs(permOrgMembers) {
			filters = append(filters, store.TokenFilter{Org: org})
		}
	}
	seen := map[string]bool{}
	out := []store.Token{}
	for _, f := range filters {
		toks, err := s.cfg.Store.ListTokens(ctx, f)
		if err != nil {
			return response{}, internal(fmt.Errorf("list tokens: %w", err))
		}
		for _, t := range toks {
			if !seen[t.ID] && mayManageToken(c.who, &t) {
				seen[t.ID] = true
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, func(a, b store.Token) int { return strings.Compare(a.ID, b.ID) })
	return response{status: http.StatusOK, body: TokenList{Items: out}}, nil
}

// findToken returns the token id names if the caller may manage it, else
// 404 (a token the caller may not manage is not shown to exist).
func (s *server) findToken(c *call, id string) (*store.Token, error) {
	notFound := errorf(http.StatusNotFound, CodeNotFound, "token %q not found", id)
	toks, err := s.cfg.Store.ListTokens(c.r.Context(), store.TokenFilter{ID: id})
	if err != nil {
		return nil, internal(fmt.Errorf("list tokens: %w", err))
	}
	for i := range toks {
		if toks[i].ID == id {
			if !mayManageToken(c.who, &toks[i]) {
				return nil, notFound
			}
			c.org = toks[i].Org
			return &toks[i], nil
		}
	}
	return nil, notFound
}

func (s *server) deleteToken(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	if _, err := s.findToken(c, id); err != nil {
		return response{}, err
	}
	err := s.cfg.Store.DeleteToken(c.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "token %q not found", id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete token %q: %w", id, err))
	}
	return response{status: http.StatusNoContent}, nil
}

// rotateToken makes a new secret for a token: a new token with the same
// name, scope, role and expiry, and the old one expiring after the overlap
// window (ReplacedBy names the new one). Rotating an already rotated token
// is refused: rotate its replacement.
func (s *server) rotateToken(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	var req RotateTokenRequest
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	old, err := s.findToken(c, id)
	if err != nil {
		return response{}, err
	}
	if old.Kind == store.TokenSession {
		return response{}, badRequest("token %q is a browser session; sign in again instead", id)
	}
	if old.ReplacedBy != "" {
		return response{}, conflict("token %q was already rotated; rotate %q", id, old.ReplacedBy)
	}
	if !mayRotateToken(c.who, old) {
		return response{}, errorf(http.StatusForbidden, CodeForbidden, "only its user may rotate token %q (revoke it instead)", id)
	}
	// A rotation never hands out more than the caller could make anew.
	again := CreateTokenRequest{Name: old.Name, Role: old.Role, Subject: old.Subject, Org: old.Org}
	if _, err := s.allowNewToken(c, &again); err != nil {
		return response{}, err
	}
	overlap := DefaultTokenOverlap
	switch {
	case req.OverlapSeconds > 0:
		overlap = time.Duration(req.OverlapSeconds) * time.Second
	case req.OverlapSeconds < 0:
		overlap = 0
	}
	next := *old
	if old.ExpiresAt != nil {
		// The new secret lives as long as the old one was meant to,
		// counted from now.
		at := s.cfg.Clock().UTC().Add(old.ExpiresAt.Sub(old.CreatedAt))
		next.ExpiresAt = &at
	}
	out, err := s.newToken(c, next)
	if err != nil {
		return response{}, err
	}
	retire := s.cfg.Clock().UTC().Add(overlap)
	_, err = s.cfg.Store.UpdateToken(c.r.Context(), id, func(t *store.Token) error {
		t.ReplacedBy = out.ID
		if t.ExpiresAt == nil || retire.Before(*t.ExpiresAt) {
			t.ExpiresAt = &retire
		}
		return nil
	})
	if err != nil {
		_ = s.cfg.Store.DeleteToken(c.r.Context(), out.ID) // no half rotation
		return response{}, internal(fmt.Errorf("rotate token %q: %w", id, err))
	}
	c.detail = "replaced by " + out.ID + ", old secret valid until " + retire.Format(time.RFC3339)
	return response{status: http.StatusCreated, body: out}, nil
}
