package store

import (
	"context"
	"errors"
	"time"
)

// ErrConflict means the write contradicts the stored state in a way a retry
// cannot fix: deleting an organisation that still owns sites, accepting an
// invitation twice.
var ErrConflict = errors.New("conflict")

// DefaultOrg is the platform's own organisation, on no plan (no quotas):
// it owns the sites created before
// organisations existed (the migration moves them there) and, by default,
// the sites platform tokens create without naming one.
const DefaultOrg = "default"

// BootstrapUserID is the user the migration to organisations creates as the
// owner of DefaultOrg and platform admin; admin tokens that existed before
// belong to it.
const BootstrapUserID = "usr-admin"

// OrgKind says whether an organisation is a customer or a partner (a
// reseller that owns customer organisations).
type OrgKind string

// Organisation kinds.
const (
	OrgCustomer OrgKind = "customer"
	OrgPartner  OrgKind = "partner"
)

// Org is an organisation: it owns sites (each site belongs to exactly one),
// has members with roles, and a plan bounding what it may use.
type Org struct {
	// Name is the organisation's identifier (1-63 lowercase letters, digits
	// or '-', starting with a letter), immutable.
	Name        string  `json:"name"`
	DisplayName string  `json:"display_name"`
	Kind        OrgKind `json:"kind"`
	// Partner is the name of the partner organisation that owns this one
	// ("" for none). Members of the partner act inside it with their
	// partner role. A partner organisation has no partner itself.
	Partner string `json:"partner,omitempty"`
	// Plan names the organisation's plan (quotas: sites, disk, ...).
	Plan string `json:"plan"`
	// Branding is the white-label look the portal uses for this
	// organisation's users (a partner's applies to its organisations
	// unless they set their own).
	Branding  Branding  `json:"branding"`
	Suspended bool      `json:"suspended,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ResourceVersion changes on every write (optimistic concurrency).
	ResourceVersion int64 `json:"resource_version"`
}

// Branding are an organisation's white-label fields.
type Branding struct {
	ProductName  string `json:"product_name,omitempty"`
	LogoURL      string `json:"logo_url,omitempty"`
	PrimaryColor string `json:"primary_color,omitempty"` // #rrggbb
	AccentColor  string `json:"accent_color,omitempty"`  // #rrggbb
	SupportEmail string `json:"support_email,omitempty"`
}

// OrgRole is a user's role in an organisation.
type OrgRole string

// Organisation roles.
const (
	// OrgOwner may do everything inside the organisation: members,
	// invitations, tokens, plan, sites.
	OrgOwner OrgRole = "owner"
	// OrgDeveloper manages sites, backups, cache and code.
	OrgDeveloper OrgRole = "developer"
	// OrgViewer reads.
	OrgViewer OrgRole = "viewer"
	// OrgBilling reads the organisation, its plan and usage, and changes
	// the plan.
	OrgBilling OrgRole = "billing"
)

// Platform roles (a user's PlatformRole, or a token's Role without Org).
// RoleAdmin and RoleViewer are declared with the machine roles in store.go.
const (
	// RoleOperator runs the platform: shards, jobs, moves; reads
	// everything; does not manage accounts or tokens.
	RoleOperator Role = "operator"
	// RoleSupport reads everything and may suspend and resume sites
	// (audited).
	RoleSupport Role = "support"
	// RoleUser is the role of a user's sign-in tokens (browser sessions,
	// `aipress login`): everything the user may currently do.
	RoleUser Role = "user"
)

// User is a person who signs in.
type User struct {
	ID    string `json:"id"`    // "usr-" + hex, immutable
	Email string `json:"email"` // lowercase, unique
	Name  string `json:"name,omitempty"`
	// PasswordHash is the PHC string of the argon2id hash of the
	// password; "" when the user signs in only through OIDC.
	PasswordHash string `json:"-"`
	// OIDCIssuer and OIDCSubject link the user to an OIDC identity (the
	// pair is unique when set).
	OIDCIssuer  string `json:"oidc_issuer,omitempty"`
	OIDCSubject string `json:"oidc_subject,omitempty"`
	// EmailVerified says the user proved the address: followed a mailed
	// link (an invitation, a password reset) or signed in through an
	// identity provider that vouches for it. An account made by open
	// sign-up is not verified until then, so it is never linked to an
	// identity provider by its address alone.
	EmailVerified bool `json:"email_verified,omitempty"`
	// PlatformRole is admin, operator, support or "" (a customer).
	PlatformRole Role `json:"platform_role,omitempty"`
	// FailedLogins counts consecutive failed password sign-ins;
	// LockedUntil is set when they reach the lock-out threshold.
	FailedLogins int        `json:"failed_logins,omitempty"`
	LockedUntil  *time.Time `json:"locked_until,omitempty"`
	Disabled     bool       `json:"disabled,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	LastLoginAt  *time.Time `json:"last_login_at,omitempty"`
}

// Membership gives a user a role in an organisation.
type Membership struct {
	Org       string    `json:"org"`
	UserID    string    `json:"user_id"`
	Role      OrgRole   `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Invite is an invitation to join an organisation with a role, redeemed
// with a secret link; Hash is the TokenHash of the secret.
type Invite struct {
	ID         string     `json:"id"`
	Org        string     `json:"org"`
	Email      string     `json:"email"`
	Role       OrgRole    `json:"role"`
	Hash       string     `json:"-"`
	CreatedBy  string     `json:"created_by"` // user or token ID
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// ResetToken lets a user set a new password once; Hash is the TokenHash of
// the secret mailed to them.
type ResetToken struct {
	Hash      string     `json:"-"`
	UserID    string     `json:"user_id"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// TokenKind tells API tokens from browser sessions.
type TokenKind string

// Token kinds.
const (
	TokenAPI     TokenKind = "api"     // a bearer token for programs ("" means api)
	TokenSession TokenKind = "session" // a browser session (cookie)
)

// OrgListOptions selects a page of organisations, ordered by name.
type OrgListOptions struct {
	// Names, when not nil, keeps only these organisations (an empty,
	// non-nil slice selects none).
	Names []string
	// Partner keeps only the organisations of this partner.
	Partner  string
	Limit    int
	Continue string
}

// OrgList is one page of organisations.
type OrgList struct {
	Items    []Org  `json:"items"`
	Continue string `json:"continue,omitempty"`
}

// UserListOptions selects a page of users, ordered by ID.
type UserListOptions struct {
	// Org keeps only the organisation's members.
	Org      string
	Limit    int
	Continue string
}

// UserList is one page of users.
type UserList struct {
	Items    []User `json:"items"`
	Continue string `json:"continue,omitempty"`
}

// MembershipFilter selects memberships; empty fields match all.
type MembershipFilter struct {
	Org    string
	UserID string
}

// TokenFilter selects tokens; empty fields match all.
type TokenFilter struct {
	// ID selects one token by its ID.
	ID     string
	UserID string
	Org    string
	Kind   TokenKind
}

// Accounts is the store's part for organisations, users, memberships,
// invitations and password resets.
//
// Contract (checked by storetest):
//   - CreateOrg fails with ErrInvalid for an invalid name or kind, a
//     partner organisation that names a partner, or a Partner that is not
//     an existing partner organisation; ErrAlreadyExists for a known name.
//     It sets ResourceVersion. UpdateOrg follows UpdateSite's rules (Name,
//     Kind and CreatedAt immutable → ErrInvalid). DeleteOrg fails with
//     ErrConflict while the organisation owns sites or (a partner) owns
//     organisations, and removes its memberships, invitations and
//     organisation-scoped tokens with it.
//   - CountSites returns how many sites the organisation owns (including
//     those whose deletion was requested).
//   - Users: CreateUser fails with ErrAlreadyExists for a known ID, email
//     (compared lowercase) or OIDC issuer+subject pair. GetUserByEmail
//     compares lowercase. DeleteUser removes the user's memberships and
//     tokens with it. UpdateUser: ID and CreatedAt immutable (ErrInvalid);
//     a changed email must stay unique (ErrAlreadyExists).
//   - PutMembership creates or replaces the (Org, UserID) membership; the
//     organisation and user must exist (ErrNotFound). DeleteMembership of an
//     unknown pair gives ErrNotFound. ListMemberships orders by org, then
//     user.
//   - CreateInvite: Hash as CreateToken's (ErrInvalid otherwise), duplicate
//     ID or Hash → ErrAlreadyExists. AcceptInvite marks the invite whose
//     hash matches accepted at `at` and returns it: ErrNotFound when
//     unknown or expired at `at`, ErrConflict when already accepted (two
//     concurrent accepts: exactly one succeeds).
//   - UseResetToken does the same for reset tokens (ErrNotFound when
//     unknown, expired or already used; exactly one concurrent use wins).
//   - Lists page as ListSites does (Limit default 100, max 1000; opaque
//     Continue).
//
// What the list above leaves open, decided here (and checked by storetest
// too):
//   - CreateOrg needs a CreatedAt (ErrInvalid), fills an empty Kind with
//     OrgCustomer and takes a revision for ResourceVersion, as UpdateOrg
//     does when it writes. The body (every field but Name, Kind, Partner
//     and ResourceVersion, which are columns) is stored as JSON, so a new
//     Org field needs no migration. GetOrg, UpdateOrg and DeleteOrg of an
//     unknown name give ErrNotFound. UpdateOrg checks a changed Partner as
//     CreateOrg does. DeleteOrg of DefaultOrg gives ErrConflict (sites
//     created without an organisation go there).
//   - CountSites of an unknown organisation is 0.
//   - CreateUser needs an ID, a CreatedAt and an email NormalizeEmail
//     accepts (stored normalised), a PlatformRole that is admin, operator,
//     support or "", and OIDCIssuer and OIDCSubject both set or both empty;
//     else ErrInvalid. UpdateUser checks the same. As for orgs, the fields
//     without a column live in a JSON body. GetUser, GetUserByEmail,
//     GetUserByOIDC, UpdateUser and DeleteUser give ErrNotFound for an
//     unknown user.
//   - PutMembership refuses a Role that is not an OrgRole and a zero
//     CreatedAt (ErrInvalid); replacing a membership changes its Role and
//     keeps its first CreatedAt.
//   - CreateInvite needs an ID, an OrgRole, an email NormalizeEmail accepts
//     (stored normalised), CreatedAt and ExpiresAt (ErrInvalid), and an
//     existing organisation (ErrNotFound). ListInvites returns the
//     organisation's invitations (accepted and expired ones too) ordered by
//     ID; DeleteInvite of an unknown ID gives ErrNotFound. AcceptInvite
//     checks, in order: unknown → ErrNotFound, accepted → ErrConflict,
//     expired (at >= ExpiresAt) → ErrNotFound.
//   - CreateResetToken needs a Hash as CreateToken's, CreatedAt and
//     ExpiresAt (ErrInvalid) and an existing user (ErrNotFound); a
//     duplicate Hash gives ErrAlreadyExists. DeleteUser removes the user's
//     reset tokens too. A token is expired when at >= ExpiresAt.
//   - Users, memberships, invitations and reset tokens take no revision.
type Accounts interface {
	CreateOrg(ctx context.Context, o *Org) error
	GetOrg(ctx context.Context, name string) (*Org, error)
	ListOrgs(ctx context.Context, opts OrgListOptions) (*OrgList, error)
	UpdateOrg(ctx context.Context, name string, mutate func(*Org) error) (*Org, error)
	DeleteOrg(ctx context.Context, name string) error
	CountSites(ctx context.Context, org string) (int, error)

	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (*User, error)
	GetUserByEmail(ctx context.Context, email string) (*User, error)
	GetUserByOIDC(ctx context.Context, issuer, subject string) (*User, error)
	ListUsers(ctx context.Context, opts UserListOptions) (*UserList, error)
	UpdateUser(ctx context.Context, id string, mutate func(*User) error) (*User, error)
	DeleteUser(ctx context.Context, id string) error

	PutMembership(ctx context.Context, m Membership) error
	DeleteMembership(ctx context.Context, org, userID string) error
	ListMemberships(ctx context.Context, f MembershipFilter) ([]Membership, error)

	CreateInvite(ctx context.Context, inv Invite) error
	ListInvites(ctx context.Context, org string) ([]Invite, error)
	DeleteInvite(ctx context.Context, id string) error
	AcceptInvite(ctx context.Context, hash string, at time.Time) (*Invite, error)

	CreateResetToken(ctx context.Context, rt ResetToken) error
	UseResetToken(ctx context.Context, hash string, at time.Time) (*ResetToken, error)
}
