// Package store defines the control plane's persistent state: sites, shards,
// jobs, accounts (organisations, users, memberships, invitations, password
// resets; accounts.go), API tokens and the audit log. Store is the contract; the sqlite package
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
	// ErrExpired means Changes was asked for changes after a revision whose
	// tombstones were already pruned: the watcher must list everything
	// again (as Kubernetes' "410 Gone").
	ErrExpired = errors.New("revision too old")
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
//   - UpdateSites is UpdateSite for many sites in one transaction (the
//     control plane's leader places sites with it): mutate runs on each
//     named site in order under UpdateSite's rules, each written site
//     taking its own revision. The i-th error is that site's alone, as
//     UpdateSite would return it (nil, mutate's error as is, or one
//     wrapping ErrNotFound or ErrInvalid); such a site is not written and
//     the others still are. The second result is the transaction's: when
//     it is not nil nothing was written.
//   - DeleteSite removes the record; unknown names give ErrNotFound.
//   - ListSites returns sites ordered by name, at most Limit (default 100,
//     max 1000) per page; Continue is an opaque token for the next page, empty
//     on the last one; a malformed one gives ErrInvalid. Shard filters to the
//     sites that shard holds: Status.Shard, and the source and target of an
//     active move (site.Site.Shards). Unplaced filters to sites with an empty
//     Status.Shard (Shard and Unplaced together give ErrInvalid).
//   - Site.Move is stored and returned as is (nil stays nil).
//   - Tombstones: whenever a write makes a site leave a shard it was in
//     (site.Site.Shards before the write but not after, including every
//     shard of a deleted site), the store records a Tombstone for that
//     shard at the write's revision (Deleted true for DeleteSite; a deleted
//     site that held no shard gets one Tombstone with an empty Shard, so
//     that watchers of all sites see every deletion). Changes
//     returns the sites and shards written after since and the tombstones
//     recorded after since (filtered by ChangeOptions.Shard); since <
//     0 gives ErrInvalid; since older than the last PruneTombstones'
//     before gives ErrExpired. A since greater than the current revision
//     returns an empty list at the current revision. Pages are consistent:
//     following More to the end sees every change exactly once (a site
//     written twice meanwhile may show once, in its later state).
//   - PruneTombstones(before) drops tombstones with Revision < before;
//     afterwards Changes(since < before) gives ErrExpired. It returns how
//     many it dropped.
//   - Shards: CreateShard fails with ErrAlreadyExists for a known name and
//     ErrInvalid for an empty one; it sets ResourceVersion (taking a
//     revision) and fills Phase with ShardPending if empty. GetShard,
//     UpdateShard, DeleteShard and Heartbeat fail with ErrNotFound for an
//     unknown name. UpdateShard follows UpdateSite's rules (mutate's error
//     returned as is, Name and CreatedAt immutable → ErrInvalid, nothing
//     written when nothing changed) and takes a revision when it writes;
//     LastHeartbeat and Usage are the heartbeat's: UpdateShard ignores
//     changes to them. Heartbeat sets LastHeartbeat and Usage without taking
//     a revision (it must stay cheap: ~1,000 shards beat every few
//     seconds). ListShards returns every shard ordered by name. DeleteShard
//     takes a revision.
//   - Organisations (see Accounts): a site belongs to exactly one
//     organisation, Metadata.Org. CreateSite stores DefaultOrg when Org is
//     empty (and sets it in s); an Org naming no organisation gives
//     ErrInvalid. UpdateSite treats Org as immutable, like Name
//     (ErrInvalid). SetSiteOrg moves a site to another existing organisation
//     (ErrNotFound for an unknown site, ErrInvalid for an unknown
//     organisation), keeps the Generation and takes a revision; moving it
//     to the organisation it is in writes nothing. ListOptions.Orgs filters
//     ListSites.
//   - Tokens: ListTokens returns the tokens TokenFilter selects ordered by
//     ID (without hashes; TokenFilter.ID selects one by its ID); DeleteToken removes one (ErrNotFound when
//     unknown). Subject and every scope field (Kind, Prefix, UserID, Org,
//     ExpiresAt, LastUsedAt, LastUsedIP, ReplacedBy) are stored and returned
//     as is, except that an empty Kind is stored as TokenAPI (and a Kind
//     filter of TokenAPI matches the tokens created with ""). CreateToken and
//     UpdateToken refuse (ErrInvalid) a Kind other than api or session, an
//     Org-scoped token whose Role is not an OrgRole, and a UserID or Org
//     that names no user or organisation. LookupToken returns expired
//     tokens too: ExpiresAt is the caller's to check.
//   - UpdateToken follows UpdateSite's rules (mutate's error returned as is,
//     ErrNotFound for an unknown ID; ID, Hash and CreatedAt immutable →
//     ErrInvalid; nothing written when nothing changed). TouchToken sets
//     LastUsedAt and LastUsedIP only (one cheap write; ErrNotFound for an
//     unknown ID). DeleteTokens removes every token the filter selects and
//     returns how many; an empty filter (which would select every token,
//     machine tokens included) gives ErrInvalid. No token write takes a
//     revision.
//   - Tokens are looked up by the SHA-256 hex (lowercase) of the secret; the
//     secret itself is never stored, and CreateToken refuses a Hash that is
//     not 64 lowercase hex digits (ErrInvalid). A duplicate ID or Hash gives
//     ErrAlreadyExists. LookupToken of an unknown hash gives ErrNotFound.
//   - Audit: AppendAudit appends e as the next link of the hash chain, in
//     one transaction: it reads the last entry's (Seq, Hash) and stores e
//     sealed by SealAudit (Time normalised to UTC microseconds, Seq = last
//     Seq + 1, PrevHash = last Hash, Hash = AuditHash). Concurrent appends
//     (also from other processes on the same database) never fork the
//     chain: Seqs are 1, 2, 3… without gaps or repeats. The caller's Seq,
//     PrevHash and Hash are ignored; the other fields are stored as is.
//     ListAudit returns the entries matching opts in Seq order (ascending),
//     every field as stored, at most opts.Limit (default 100, max 1000).
//     AuditHead returns the chain's end and the last checkpoint's Seq.
//     CreateSiteAudited creates the site and appends e in one transaction
//     (one commit where CreateSite then AppendAudit take two): when the
//     create fails (ErrAlreadyExists, ErrInvalid…) e is not appended.
//     AddAuditCheckpoint stores a checkpoint: ErrInvalid when no entry has
//     its Seq and Hash, ErrAlreadyExists when that Seq has one already;
//     ListAuditCheckpoints returns them by Seq (ascending) after afterSeq,
//     at most limit (default 100, max 1000). Audit writes take no revision.
//   - WAF events (wafevents.go): AppendWAFEvents stores a batch (each event
//     with Site and SiteUID, else ErrInvalid and nothing stored), giving
//     each an ID greater than the IDs of every batch stored before the call
//     began, in batch order (the IDs are set in the slice); then, in the same transaction, keeps only
//     the newest keep.PerSite events (by ID) of each site in the batch,
//     when PerSite > 0, and drops every event whose Time is before
//     keep.Before, when it is not zero. ListWAFEvents returns the events of
//     opts.Site with opts.SiteUID (both required, else ErrInvalid), newest
//     first, at most Limit (default 100, max 1000) per page, with an
//     opaque Continue token for the next page (empty on the last; a
//     malformed one gives ErrInvalid). Events are not site writes: they
//     take no revision. SiteUID is returned as stored.
//   - Bandwidth (bandwidth.go, plans): AddBandwidth adds each site's bytes
//     to its count of month ("YYYY-MM"), atomically for the batch (a bad
//     month, an empty site name or negative bytes: ErrInvalid, nothing
//     added; zero bytes add nothing). ListBandwidth returns month's counts
//     by site name (an empty map when none), only opts.Sites when not nil,
//     only counts above opts.MinBytes. Counts are not site writes: they take
//     no revision, and outlive the site (a site re-created under its name
//     in the same month carries on from its count).
//   - Usage (usage.go, internal/usage): AddUsage applies one report to
//     the hourly records of the hour holding hour (UTC), atomically:
//     counters add, gauges set when not nil, the shard set when not
//     empty, and BytesOut is added to the hour's month's bandwidth (as
//     AddBandwidth, in the same transaction, so that the plans' limit and
//     the usage never disagree). A report whose key (Source, ID) was applied before, within
//     UsageReportRetention, changes nothing and returns applied false
//     (an empty ID is always applied). Bad input: ErrInvalid, nothing
//     applied. ListUsage returns the records of the hours that overlap
//     [From, To), rolled up by opts.Period (hour, day, month; grouped by
//     period, site and shard; counters summed, gauges averaged over the
//     hours that measured them), ordered by period, site, shard, a page
//     of at most Limit after opts.After; bad options: ErrInvalid. Usage
//     takes no revision and outlives its site.
//   - Settings (settings.go): GetSetting returns a key's value and
//     version (ErrNotFound when never written). PutSetting writes value
//     when the stored version is version (0: the key does not exist yet)
//     and returns the setting with its new version (version+1); otherwise
//     it writes nothing and fails with ErrConflict. A bad key, a value over
//     MaxSettingBytes or a negative version: ErrInvalid. ListSettings
//     returns every setting whose key starts with prefix, by key (an empty
//     slice when none). DeleteSetting removes key when its stored version
//     is version (ErrNotFound when it does not exist, ErrConflict when its
//     version differs). Settings take no revision.
//   - Incidents (incidents.go, package uptime): OpenIncident opens an
//     incident of site at at with cause, unless the site has one open
//     already; it returns the site's open incident and whether it made it
//     (at most one is open per site, also under concurrent calls). A bad
//     site name, a zero time or a cause over MaxIncidentCause: ErrInvalid.
//     CloseIncident sets Ended of the site's open incident to at (or to
//     Started when at is before it) and returns it; ErrNotFound when none
//     is open. ListIncidents returns the incidents opts selects by ID
//     (ascending), at most opts.Limit (default 100, max MaxIncidentList;
//     an empty slice when none). Incidents take no revision and outlive
//     their site.
//   - Times come back equal (time.Time.Equal) to what was stored.
//   - All methods are safe for concurrent use.
type Store interface {
	// Accounts (accounts.go): organisations, users, memberships,
	// invitations, password resets.
	Accounts

	CreateSite(ctx context.Context, s *site.Site) error
	// CreateSiteAudited is CreateSite that also appends e to the audit
	// chain (as AppendAudit would) in the same transaction: both are
	// written, or neither (see the contract's audit bullets).
	CreateSiteAudited(ctx context.Context, s *site.Site, e AuditEntry) error
	GetSite(ctx context.Context, name string) (*site.Site, error)
	ListSites(ctx context.Context, opts ListOptions) (*SiteList, error)
	// CountAllSites returns how many sites the store holds (deleted ones
	// too, until they are gone).
	CountAllSites(ctx context.Context) (int, error)
	UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error)
	UpdateSites(ctx context.Context, names []string, mutate func(*site.Site) error) ([]error, error)
	DeleteSite(ctx context.Context, name string) error
	// SetSiteOrg moves the site to another organisation (see the contract).
	SetSiteOrg(ctx context.Context, name, org string) (*site.Site, error)

	// Changes and PruneTombstones are the watch behind shard agents and
	// edges (list once, then follow changes from the list's revision).
	Changes(ctx context.Context, since int64, opts ChangeOptions) (*ChangeList, error)
	PruneTombstones(ctx context.Context, before int64) (int, error)

	CreateShard(ctx context.Context, sh *Shard) error
	GetShard(ctx context.Context, name string) (*Shard, error)
	ListShards(ctx context.Context) ([]Shard, error)
	UpdateShard(ctx context.Context, name string, mutate func(*Shard) error) (*Shard, error)
	DeleteShard(ctx context.Context, name string) error
	Heartbeat(ctx context.Context, name string, at time.Time, usage Usage) error

	// Jobs (jobs.go): CreateJob fails with ErrAlreadyExists for a known ID
	// and ErrInvalid without ID or Kind; it fills Phase (Pending) and takes a
	// revision, as UpdateJob does when it writes (UpdateSite's rules: mutate's
	// error returned as is, ID, Kind and CreatedAt immutable → ErrInvalid,
	// nothing written when nothing changed). GetJob and UpdateJob fail with
	// ErrNotFound for an unknown ID. ListJobs: see JobListOptions.
	CreateJob(ctx context.Context, j *Job) error
	GetJob(ctx context.Context, id string) (*Job, error)
	ListJobs(ctx context.Context, opts JobListOptions) (*JobList, error)
	UpdateJob(ctx context.Context, id string, mutate func(*Job) error) (*Job, error)

	CreateToken(ctx context.Context, t Token) error
	LookupToken(ctx context.Context, hash string) (*Token, error)
	ListTokens(ctx context.Context, f TokenFilter) ([]Token, error)
	UpdateToken(ctx context.Context, id string, mutate func(*Token) error) (*Token, error)
	TouchToken(ctx context.Context, id string, at time.Time, ip string) error
	DeleteToken(ctx context.Context, id string) error
	DeleteTokens(ctx context.Context, f TokenFilter) (int, error)

	// Audit log (audit.go): see the contract's audit bullets.
	AppendAudit(ctx context.Context, e AuditEntry) error
	ListAudit(ctx context.Context, opts AuditListOptions) ([]AuditEntry, error)
	AuditHead(ctx context.Context) (AuditHead, error)
	AddAuditCheckpoint(ctx context.Context, cp AuditCheckpoint) error
	ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]AuditCheckpoint, error)

	AppendWAFEvents(ctx context.Context, events []site.WAFEvent, keep WAFRetention) error
	ListWAFEvents(ctx context.Context, opts WAFEventListOptions) (*WAFEventList, error)

	AddBandwidth(ctx context.Context, month string, bytes map[string]int64) error
	ListBandwidth(ctx context.Context, opts BandwidthListOptions) (map[string]int64, error)

	AddUsage(ctx context.Context, key UsageKey, hour time.Time, deltas map[string]UsageDelta) (applied bool, err error)
	ListUsage(ctx context.Context, opts UsageListOptions) ([]UsageRecord, error)

	OpenIncident(ctx context.Context, site string, at time.Time, cause string) (*Incident, bool, error)
	CloseIncident(ctx context.Context, site string, at time.Time) (*Incident, error)
	ListIncidents(ctx context.Context, opts IncidentListOptions) ([]Incident, error)

	GetSetting(ctx context.Context, key string) (*Setting, error)
	PutSetting(ctx context.Context, key string, value []byte, version int64) (*Setting, error)
	ListSettings(ctx context.Context, prefix string) ([]Setting, error)
	DeleteSetting(ctx context.Context, key string, version int64) error

	Close() error
}

// ListOptions selects a page of sites.
type ListOptions struct {
	Limit    int
	Continue string
	Shard    string
	Unplaced bool
	// Orgs, when not nil, keeps only the sites of these organisations (an
	// empty, non-nil slice selects none): how lists show a caller only
	// what it may see.
	Orgs []string
	// NameContains, when not empty, keeps only the sites whose name
	// contains it (names are lower case: pass it lower-cased).
	NameContains string
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
	// RoleShard is a shard agent's: register, watch and report for the
	// shard named by the token's Subject, nothing else.
	RoleShard Role = "shard"
	// RoleEdge is an edge's: watch the routing table.
	RoleEdge Role = "edge"
)

// Token is an API credential. Hash is the SHA-256 hex of the secret.
type Token struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Subject is what the token is bound to: the shard's name for
	// RoleShard, empty otherwise.
	Subject   string    `json:"subject,omitempty"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// Kind is api (a bearer token; "" reads as api) or session (a
	// browser's sign-in, sent as a cookie).
	Kind TokenKind `json:"kind,omitempty"`
	// Prefix is the start of the secret (TokenPrefix and 8 hex digits),
	// kept to recognise a token in lists and logs.
	Prefix string `json:"prefix,omitempty"`
	// UserID is the user the token acts for ("" for machine and legacy
	// tokens). Its rights never exceed the user's current ones.
	UserID string `json:"user_id,omitempty"`
	// Org scopes the token to one organisation; Role is then an OrgRole
	// (owner, developer, viewer, billing). "" is platform-wide: Role is a
	// platform or machine role.
	Org string `json:"org,omitempty"`
	// ExpiresAt, when set, is when the token stops working.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// LastUsedAt and LastUsedIP are when and from where the token was
	// last accepted (updated at most once a minute).
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	LastUsedIP string     `json:"last_used_ip,omitempty"`
	// ReplacedBy names the token a rotation replaced this one with; the
	// old one keeps working until its ExpiresAt (the overlap window).
	ReplacedBy string `json:"replaced_by,omitempty"`
}
