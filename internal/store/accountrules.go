package store

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// ValidOrgName reports whether name can name an organisation: 1-63
// lowercase letters, digits or '-', starting with a letter.
func ValidOrgName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// NormalizeEmail returns the lowercase form of a bare email address
// ("someone@example.com", as net/mail parses it). Anything else (empty, a
// display name around the address, surrounding spaces) gives an error
// wrapping ErrInvalid.
func NormalizeEmail(email string) (string, error) {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || !strings.EqualFold(a.Address, email) {
		return "", fmt.Errorf("invalid email %q: %w", email, ErrInvalid)
	}
	return strings.ToLower(a.Address), nil
}

// ValidOrgRole reports whether r is an organisation role.
func ValidOrgRole(r OrgRole) bool {
	switch r {
	case OrgOwner, OrgDeveloper, OrgViewer, OrgBilling:
		return true
	}
	return false
}

// ValidUserPlatformRole reports whether r can be a user's PlatformRole:
// admin, operator, support or "" (a customer).
func ValidUserPlatformRole(r Role) bool {
	switch r {
	case RoleAdmin, RoleOperator, RoleSupport, "":
		return true
	}
	return false
}

// ValidateNewOrg checks what CreateOrg requires of o itself (see Accounts;
// the partner's existence is the implementation's to check, with
// CheckPartner) and fills an empty Kind with OrgCustomer. Its error wraps
// ErrInvalid and names the call.
func ValidateNewOrg(o *Org) error {
	if o == nil {
		return fmt.Errorf("create org: nil org: %w", ErrInvalid)
	}
	if o.Kind == "" {
		o.Kind = OrgCustomer
	}
	if err := validateOrg(o); err != nil {
		return fmt.Errorf("create org %q: %w", o.Name, err)
	}
	if o.CreatedAt.IsZero() {
		return fmt.Errorf("create org %q: zero created_at: %w", o.Name, ErrInvalid)
	}
	return nil
}

func validateOrg(o *Org) error {
	switch {
	case !ValidOrgName(o.Name):
		return fmt.Errorf("invalid name %q (want 1-63 of a-z, 0-9, '-', starting with a letter): %w", o.Name, ErrInvalid)
	case o.Kind != OrgCustomer && o.Kind != OrgPartner:
		return fmt.Errorf("invalid kind %q (want customer or partner): %w", o.Kind, ErrInvalid)
	case o.Kind == OrgPartner && o.Partner != "":
		return fmt.Errorf("a partner organisation cannot have a partner: %w", ErrInvalid)
	case o.Partner == o.Name:
		return fmt.Errorf("an organisation cannot be its own partner: %w", ErrInvalid)
	}
	return nil
}

// CheckPartner checks o's Partner against the stored organisation it names
// (nil when there is none): it must exist and be a partner. Its error wraps
// ErrInvalid. A zero Partner needs no check.
func CheckPartner(o *Org, partner *Org) error {
	if o.Partner == "" {
		return nil
	}
	if partner == nil || partner.Kind != OrgPartner {
		return fmt.Errorf("partner %q is not a partner organisation: %w", o.Partner, ErrInvalid)
	}
	return nil
}

// PrepareOrgUpdate applies UpdateOrg's rules (see Accounts) to next, the
// value a mutate function made from a copy of before: Name, Kind and
// CreatedAt are immutable (ErrInvalid), the rest must stay valid,
// ResourceVersion is the store's, and write reports whether anything
// changed. The caller checks a changed Partner with CheckPartner.
func PrepareOrgUpdate(before, next *Org) (write bool, err error) {
	switch {
	case next.Name != before.Name:
		return false, fmt.Errorf("name cannot change: %w", ErrInvalid)
	case next.Kind != before.Kind:
		return false, fmt.Errorf("kind cannot change: %w", ErrInvalid)
	case !next.CreatedAt.Equal(before.CreatedAt):
		return false, fmt.Errorf("created_at cannot change: %w", ErrInvalid)
	}
	if err := validateOrg(next); err != nil {
		return false, err
	}
	next.CreatedAt = before.CreatedAt
	next.ResourceVersion = before.ResourceVersion
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	return !same, nil
}

// EncodeOrg returns the JSON body implementations store for o (Name, Kind,
// Partner and ResourceVersion are columns and authoritative).
func EncodeOrg(o *Org) ([]byte, error) {
	c := *o
	c.ResourceVersion = 0
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode org %q: %w", o.Name, err)
	}
	return b, nil
}

// DecodeOrg is the inverse of EncodeOrg; the columns override the body.
func DecodeOrg(name, kind, partner string, rv int64, body []byte) (*Org, error) {
	var o Org
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("decode org %q: %w", name, err)
	}
	o.Name, o.Kind, o.Partner, o.ResourceVersion = name, OrgKind(kind), partner, rv
	return &o, nil
}

// ValidateUser checks a user as CreateUser and UpdateUser store it (see
// Accounts) and normalises its email. Its error wraps ErrInvalid.
func ValidateUser(u *User) error {
	if u == nil {
		return fmt.Errorf("nil user: %w", ErrInvalid)
	}
	email, err := NormalizeEmail(u.Email)
	switch {
	case u.ID == "":
		return fmt.Errorf("empty id: %w", ErrInvalid)
	case err != nil:
		return err
	case u.CreatedAt.IsZero():
		return fmt.Errorf("zero created_at: %w", ErrInvalid)
	case !ValidUserPlatformRole(u.PlatformRole):
		return fmt.Errorf("invalid platform role %q (want admin, operator, support or none): %w", u.PlatformRole, ErrInvalid)
	case (u.OIDCIssuer == "") != (u.OIDCSubject == ""):
		return fmt.Errorf("oidc issuer and subject go together: %w", ErrInvalid)
	}
	u.Email = email
	return nil
}

// PrepareUserUpdate applies UpdateUser's rules (see Accounts) to next, the
// value a mutate function made from a copy of before: ID and CreatedAt are
// immutable (ErrInvalid), the rest must pass ValidateUser, and write reports
// whether anything changed.
func PrepareUserUpdate(before, next *User) (write bool, err error) {
	switch {
	case next.ID != before.ID:
		return false, fmt.Errorf("id cannot change: %w", ErrInvalid)
	case !next.CreatedAt.Equal(before.CreatedAt):
		return false, fmt.Errorf("created_at cannot change: %w", ErrInvalid)
	}
	if err := ValidateUser(next); err != nil {
		return false, err
	}
	next.CreatedAt = before.CreatedAt
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	// PasswordHash is not in the JSON.
	return !same || next.PasswordHash != before.PasswordHash, nil
}

// EncodeUser returns the JSON body implementations store for u: everything
// but the columns (ID, Email, PasswordHash, OIDCIssuer, OIDCSubject).
// PasswordHash is never in the JSON.
func EncodeUser(u *User) ([]byte, error) {
	c := *u
	c.ID, c.Email, c.OIDCIssuer, c.OIDCSubject = "", "", "", ""
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode user %q: %w", u.ID, err)
	}
	return b, nil
}

// DecodeUser is the inverse of EncodeUser.
func DecodeUser(id, email, passwordHash, issuer, subject string, body []byte) (*User, error) {
	var u User
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, fmt.Errorf("decode user %q: %w", id, err)
	}
	u.ID, u.Email, u.PasswordHash, u.OIDCIssuer, u.OIDCSubject = id, email, passwordHash, issuer, subject
	return &u, nil
}

// ValidateMembership checks what PutMembership requires of m (see
// Accounts). Its error wraps ErrInvalid and names the call.
func ValidateMembership(m Membership) error {
	switch {
	case m.Org == "" || m.UserID == "":
		return fmt.Errorf("put membership: empty org or user: %w", ErrInvalid)
	case !ValidOrgRole(m.Role):
		return fmt.Errorf("put membership %s/%s: invalid role %q: %w", m.Org, m.UserID, m.Role, ErrInvalid)
	case m.CreatedAt.IsZero():
		return fmt.Errorf("put membership %s/%s: zero created_at: %w", m.Org, m.UserID, ErrInvalid)
	}
	return nil
}

// ValidateNewInvite checks what CreateInvite requires of inv itself (see
// Accounts) and normalises its email. Its error wraps ErrInvalid and names
// the call.
func ValidateNewInvite(inv *Invite) error {
	email, err := NormalizeEmail(inv.Email)
	switch {
	case inv.ID == "":
		return fmt.Errorf("create invite: empty id: %w", ErrInvalid)
	case inv.Org == "":
		return fmt.Errorf("create invite %q: empty org: %w", inv.ID, ErrInvalid)
	case err != nil:
		return fmt.Errorf("create invite %q: %w", inv.ID, err)
	case !ValidOrgRole(inv.Role):
		return fmt.Errorf("create invite %q: invalid role %q: %w", inv.ID, inv.Role, ErrInvalid)
	case !isSHA256Hex(inv.Hash):
		return fmt.Errorf("create invite %q: hash is not a lowercase sha-256 hex: %w", inv.ID, ErrInvalid)
	case inv.CreatedAt.IsZero() || inv.ExpiresAt.IsZero():
		return fmt.Errorf("create invite %q: zero created_at or expires_at: %w", inv.ID, ErrInvalid)
	}
	inv.Email = email
	return nil
}

// ValidateNewResetToken checks what CreateResetToken requires of rt itself
// (see Accounts). Its error wraps ErrInvalid and names the call.
func ValidateNewResetToken(rt ResetToken) error {
	switch {
	case rt.UserID == "":
		return fmt.Errorf("create reset token: empty user: %w", ErrInvalid)
	case !isSHA256Hex(rt.Hash):
		return fmt.Errorf("create reset token for %q: hash is not a lowercase sha-256 hex: %w", rt.UserID, ErrInvalid)
	case rt.CreatedAt.IsZero() || rt.ExpiresAt.IsZero():
		return fmt.Errorf("create reset token for %q: zero created_at or expires_at: %w", rt.UserID, ErrInvalid)
	}
	return nil
}

// Expired reports whether something that expires at exp has expired at at
// (at >= exp).
func Expired(exp, at time.Time) bool { return !at.Before(exp) }

// NormalizeTokenScope checks the scope fields of t as CreateToken and
// UpdateToken store them (see Store) and fills an empty Kind with TokenAPI.
// Whether UserID and Org exist is the implementation's to check. Its error
// wraps ErrInvalid.
func NormalizeTokenScope(t *Token) error {
	if t.Kind == "" {
		t.Kind = TokenAPI
	}
	switch {
	case t.Kind != TokenAPI && t.Kind != TokenSession:
		return fmt.Errorf("invalid kind %q (want api or session): %w", t.Kind, ErrInvalid)
	case t.Org != "" && !ValidOrgRole(OrgRole(t.Role)):
		return fmt.Errorf("role %q is not an organisation role, as a token scoped to %q needs: %w", t.Role, t.Org, ErrInvalid)
	}
	return nil
}

// PrepareTokenUpdate applies UpdateToken's rules (see Store) to next, the
// value a mutate function made from a copy of before: ID, Hash and
// CreatedAt are immutable (ErrInvalid), the scope must pass
// NormalizeTokenScope, and write reports whether anything changed.
func PrepareTokenUpdate(before, next *Token) (write bool, err error) {
	switch {
	case next.ID != before.ID:
		return false, fmt.Errorf("id cannot change: %w", ErrInvalid)
	case next.Hash != before.Hash:
		return false, fmt.Errorf("hash cannot change: %w", ErrInvalid)
	case !next.CreatedAt.Equal(before.CreatedAt):
		return false, fmt.Errorf("created_at cannot change: %w", ErrInvalid)
	}
	if err := NormalizeTokenScope(next); err != nil {
		return false, err
	}
	next.CreatedAt = before.CreatedAt
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	return !same, nil
}

// ValidateDeleteTokens refuses the empty filter, which would delete every
// token (see Store). Its error wraps ErrInvalid.
func ValidateDeleteTokens(f TokenFilter) error {
	if f == (TokenFilter{}) {
		return fmt.Errorf("delete tokens: empty filter: %w", ErrInvalid)
	}
	return nil
}

// TokenKindFilter returns the stored kinds a TokenFilter's Kind selects
// (nil for all).
func TokenKindFilter(k TokenKind) []string {
	switch k {
	case "":
		return nil
	case TokenAPI:
		return []string{string(TokenAPI), ""}
	}
	return []string{string(k)}
}
