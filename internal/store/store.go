// Package store defines the control plane's persistent state: sites, API
// tokens and the audit log. Store is the contract; the sqlite package
// implements it, and storetest is the contract suite every implementation must
// pass (a PostgreSQL implementation joins by passing the same suite).
package store

import (
	"context"
	"errors"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// Sentinel errors. Implementations wrap them with %w.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid marks a request the store refuses as such: a missing
	// required field, a change to an immutable field, a malformed continue
	// token or token hash.
	ErrInvalid = errors.New("invalid argument")
)

// Store is the control plane's state.
//
// Contract (checked by storetest):
//   - Every successful site write (create, update, delete) takes the next
//     value of one store-wide revision counter; a site's
//     Metadata.ResourceVersion is the revision of its last write, and
//     ListSites reports the current revision (of the snapshot the page was read
//     from). The counter survives Close and reopen. Token and audit writes do
//     not take a revision.
//   - CreateSite fails with ErrAlreadyExists when a site with that name (or
//     UID) exists (including one whose deletion was requested but not
//     finished). On success it sets s.Metadata.Generation to 1 and
//     s.Metadata.ResourceVersion; Name, UID and CreatedAt must be set by the
//     caller (else ErrInvalid).
//   - UpdateSite runs mutate on the current value inside one transaction and
//     stores the result. If mutate returns an error nothing is written and the
//     error is returned as is (not wrapped). Generation increases by one
//     exactly when the spec (or labels, or deletion request) changed; a
//     status-only change keeps it. Name, UID and CreatedAt cannot be changed:
//     a mutate that changes them makes UpdateSite fail with ErrInvalid and
//     write nothing. Generation and ResourceVersion are the store's: changes
//     mutate makes to them are ignored. When nothing changed at all nothing is
//     written and the ResourceVersion (and the revision) stays. Concurrent
//     updates never lose a write. mutate may run while the store holds its
//     write lock: it must not call the store's write methods.
//   - GetSite and UpdateSite fail with ErrNotFound for an unknown name.
//   - DeleteSite removes the record; unknown names give ErrNotFound.
//   - ListSites returns sites ordered by name, at most Limit (default 100,
//     max 1000) per page; Continue is an opaque token for the next page, empty
//     on the last one; a malformed one gives ErrInvalid. Shard filters by
//     Status.Shard.
//   - Tokens are looked up by the SHA-256 hex (lowercase) of the secret; the
//     secret itself is never stored, and CreateToken refuses a Hash that is
//     not 64 lowercase hex digits (ErrInvalid). A duplicate ID or Hash gives
//     ErrAlreadyExists. LookupToken of an unknown hash gives ErrNotFound.
//   - ListAudit returns the last limit entries appended (default 100, max
//     1000), newest (last appended) first.
//   - Times come back equal (time.Time.Equal) to what was stored.
//   - All methods are safe for concurrent use.
type Store interface {
	CreateSite(ctx context.Context, s *site.Site) error
	GetSite(ctx context.Context, name string) (*site.Site, error)
	ListSites(ctx context.Context, opts ListOptions) (*SiteList, error)
	UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error)
	DeleteSite(ctx context.Context, name string) error

	CreateToken(ctx context.Context, t Token) error
	LookupToken(ctx context.Context, hash string) (*Token, error)

	AppendAudit(ctx context.Context, e AuditEntry) error
	ListAudit(ctx context.Context, limit int) ([]AuditEntry, error)

	Close() error
}

// ListOptions selects a page of sites.
type ListOptions struct {
	Limit    int
	Continue string
	Shard    string
}

// SiteList is one page of sites.
type SiteList struct {
	Items    []site.Site `json:"items"`
	Continue string      `json:"continue,omitempty"`
	Revision int64       `json:"revision"`
}

// Role is what a token may do. Roles are checked in one place (the API's
// authorizer).
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"  // everything
	RoleViewer Role = "viewer" // read-only
)

// Token is an API credential. Hash is the SHA-256 hex of the secret.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// AuditEntry records one mutating call.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`  // token ID
	Action  string    `json:"action"` // e.g. "site.create"
	Target  string    `json:"target"` // e.g. the site name
	Outcome string    `json:"outcome"`
}
