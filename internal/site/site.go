// Package site defines the Site resource: the declarative object that the
// control plane stores, the API serves and shards converge.
//
// A Site has metadata (name, uid, generation, labels), a spec (what the
// operator asked for) and a status (what the shard observed). Only the control
// plane writes spec; only the shard that hosts the site writes status.
// Generation increases on every spec change, and each condition records the
// generation it was computed from (ObservedGeneration), as in Kubernetes.
package site

import (
	"time"
)

// Phase is the coarse lifecycle state of a site, for humans and the CLI.
type Phase string

// Phases, in the order a healthy site passes through them.
const (
	PhasePending   Phase = "Pending"   // accepted, not yet converged by a shard
	PhaseCreating  Phase = "Creating"  // a shard is converging it
	PhaseReady     Phase = "Ready"     // serving
	PhaseSuspended Phase = "Suspended" // converged, not serving (503)
	PhaseDeleting  Phase = "Deleting"  // the shard is removing everything it created
	PhaseFailed    Phase = "Failed"    // convergence failed; see conditions
)

// CondMaintenance is the condition a shard sets True while it restores the
// site in place; the edge serves its maintenance page (503) meanwhile.
const CondMaintenance = "Maintenance"

// CondWritesFrozen is the condition a shard sets True once Spec.WriteFreeze
// holds (the site's database accounts may only read, no WP-Cron), and
// False once it no longer does.
const CondWritesFrozen = "WritesFrozen"

// Site is the stored and served resource.
type Site struct {
	Metadata Metadata `json:"metadata"`
	Spec     Spec     `json:"spec"`
	Status   Status   `json:"status"`
	// Move is the site's current (or last) move between shards; nil when
	// it never moved. See move.go.
	Move *Move `json:"move,omitempty"`
}

// Shards returns the shards that hold (a copy of) the site: the one in
// Status.Shard, and while a move is active its source and target too.
func (s *Site) Shards() []string {
	var out []string
	add := func(n string) {
		if n == "" {
			return
		}
		for _, o := range out {
			if o == n {
				return
			}
		}
		out = append(out, n)
	}
	add(s.Status.Shard)
	if s.Move.Active() {
		add(s.Move.Source)
		add(s.Move.Target)
	}
	return out
}

// Metadata identifies a site. Name is the site's domain (unique).
type Metadata struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
	// Org is the organisation that owns the site (store.DefaultOrg for
	// sites older than organisations).
	Org               string            `json:"org,omitempty"`
	Generation        int64             `json:"generation"`
	Labels            map[string]string `json:"labels,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
	DeletionRequested *time.Time        `json:"deletion_requested,omitempty"`
	// ResourceVersion changes on every write (spec or status); stores use it
	// for optimistic concurrency.
	ResourceVersion int64 `json:"resource_version"`
}

// Spec is what the operator asked for.
type Spec struct {
	Domain      string `json:"domain"`
	Title       string `json:"title"`
	CoreVersion string `json:"core_version,omitempty"` // WordPress core; empty = the shard's default
	Plan        string `json:"plan"`
	Suspended   bool   `json:"suspended"`
	// SuspendedBy says who suspended the site: "platform" (an admin or
	// support: only the platform may resume it) or "org" (its
	// organisation). Empty when not suspended.
	SuspendedBy string `json:"suspended_by,omitempty"`
	// WriteFreeze stops the site's writes to its database (its accounts
	// keep reading only) and its WP-Cron while it keeps serving pages:
	// the source's side of a cut-over to another host (a live import's
	// final sync). The shard reports CondWritesFrozen.
	WriteFreeze bool `json:"write_freeze,omitempty"`
	PHP         PHP  `json:"php"`
	// Limits bound what the site may use of its shard (from its plan).
	Limits Limits `json:"limits"`
	Admin  Admin  `json:"admin"`
	Cache  Cache  `json:"cache"`
	WAF    WAF    `json:"waf"`
	// HTTPSRedirect sends plain-HTTP visitors to HTTPS (when the edge
	// serves HTTPS).
	HTTPSRedirect bool `json:"https_redirect"`
	// Backup is the site's backup schedule and retention (zero fields:
	// the plan's defaults).
	Backup BackupPolicy `json:"backup"`
	// Plugins and Themes are the extensions the site runs, Options the
	// WordPress options and Constants the must-use settings it sets
	// (code.go; checked by ValidateCode). Code jobs apply them.
	Plugins   []Extension       `json:"plugins,omitempty"`
	Themes    []Extension       `json:"themes,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	Constants map[string]string `json:"constants,omitempty"`
	// Source, when set, makes the shard create the site from a backup
	// snapshot instead of installing WordPress: a clone (another domain;
	// URLs are rewritten), a restore onto another shard, a disaster
	// recovery. Immutable after creation.
	Source *Source `json:"source,omitempty"`
}

// BackupPolicy says how often a site is backed up and which snapshots are
// kept. EveryHours 0 takes the plan's default; negative turns scheduled
// backups off. Zero Keep fields take the plan's defaults.
type BackupPolicy struct {
	EveryHours int       `json:"every_hours"`
	Keep       Retention `json:"keep"`
}

// Retention is how many snapshots to keep per period: the newest snapshot of
// each of the last Hourly hours, Daily days, Weekly ISO weeks and Monthly
// months (a snapshot kept by any rule is kept), as restic's forget policy.
type Retention struct {
	Hourly  int `json:"hourly"`
	Daily   int `json:"daily"`
	Weekly  int `json:"weekly"`
	Monthly int `json:"monthly"`
}

// Source is the snapshot a site is created from.
type Source struct {
	Snapshot string `json:"snapshot"`
	// FromSite and FromURL are the site (domain) the snapshot was taken of
	// and its URL then; URLs are rewritten from FromURL to the new site's.
	FromSite string `json:"from_site"`
	FromURL  string `json:"from_url,omitempty"`
	// At, if set, is a point in time after the snapshot: the site is
	// made from the snapshot and then the source site's shipped database
	// log is replayed up to and including At (point-in-time recovery as a
	// clone; store.RestoreParams.At).
	At *time.Time `json:"at,omitempty"`
	// Import, if set, makes the site from an archive of a WordPress site
	// (package siteport) instead of a snapshot (Snapshot is then empty):
	// its shard imports it (internal/shard, siteport.go).
	Import *ImportSource `json:"import,omitempty"`
}

// ImportSource is the archive a site is imported from.
type ImportSource struct {
	// Key is the archive's object in the transfer store; Prefix the
	// table prefix to take when its dump holds several sites.
	Key    string `json:"key"`
	Prefix string `json:"prefix,omitempty"`
}

// Cache is the site's full-page cache policy at the edge.
type Cache struct {
	// TTLSeconds is how long an anonymous page stays fresh; 0 disables
	// the page cache for the site.
	TTLSeconds int `json:"ttl_seconds"`
}

// WAF modes.
const (
	WAFOff    = "off"
	WAFDetect = "detect"
	WAFBlock  = "block"
)

// WAF is the site's web application firewall policy at the edge.
type WAF struct {
	Mode          string `json:"mode"`           // off, detect or block
	ParanoiaLevel int    `json:"paranoia_level"` // OWASP CRS paranoia level, 1–4
	// Exclusions lift single rules for single paths (and arguments): the
	// owner's fixes for false positives (waf.go).
	Exclusions []WAFExclusion `json:"exclusions,omitempty"`
}

// Defaults fills zero policy fields with the platform's defaults: pages
// cached for 5 minutes, WAF blocking at paranoia level 1.
func (s *Spec) Defaults() {
	if s.WAF.Mode == "" {
		s.WAF.Mode = WAFBlock
	}
	if s.WAF.ParanoiaLevel == 0 {
		s.WAF.ParanoiaLevel = 1
	}
}

// PHP holds per-site PHP settings.
type PHP struct {
	MaxChildren       int `json:"max_children"`
	MemoryLimitMB     int `json:"memory_limit_mb"`
	UploadMaxMB       int `json:"upload_max_mb"`
	IdleTimeoutSecond int `json:"idle_timeout_seconds"`
	// RequestTimeoutSeconds ends a PHP request that runs longer
	// (php-fpm's request_terminate_timeout); 0: DefaultLimits'.
	RequestTimeoutSeconds int `json:"request_timeout_seconds,omitempty"`
}

// Limits are a site's shares of its shard, set by its plan. Zero fields
// take DefaultLimits (sites stored before limits existed have none).
type Limits struct {
	// DiskMB bounds what the site's PHP can write: its uploads, temporary
	// files and logs.
	DiskMB int `json:"disk_mb,omitempty"`
	// DBConnections bounds the site database user's concurrent
	// connections to the database server (MariaDB's MAX_USER_CONNECTIONS):
	// with the shard's pooler, its backend connections.
	DBConnections int `json:"db_connections,omitempty"`
	// DBClients bounds the site's client connections to the shard's
	// pooler (PHP requests, cron, wp-cli holding a connection at once);
	// one more is refused with MariaDB's error 1226. Without the pooler
	// (DirectDB) only DBConnections applies.
	DBClients int `json:"db_clients,omitempty"`
}

// DefaultLimits are the limits of a site whose spec names none.
var DefaultLimits = Limits{DiskMB: 1024, DBConnections: 20, DBClients: 50}

// DefaultRequestTimeoutSeconds is the PHP request timeout of a site whose
// spec names none.
const DefaultRequestTimeoutSeconds = 120

// WithDefaults returns l with zero fields set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.DiskMB <= 0 {
		l.DiskMB = DefaultLimits.DiskMB
	}
	if l.DBConnections <= 0 {
		l.DBConnections = DefaultLimits.DBConnections
	}
	if l.DBClients <= 0 {
		l.DBClients = DefaultLimits.DBClients
	}
	return l
}

// Admin is the site's first administrator. PasswordHash is a bcrypt hash;
// the plain password is shown once, at creation, and never stored.
type Admin struct {
	User         string `json:"user"`
	Email        string `json:"email"`
	PasswordHash string `json:"password_hash,omitempty"`
}

// Status is what the hosting shard observed.
type Status struct {
	Phase              Phase       `json:"phase"`
	Shard              string      `json:"shard,omitempty"`
	URL                string      `json:"url,omitempty"`
	ObservedGeneration int64       `json:"observed_generation"`
	Conditions         []Condition `json:"conditions,omitempty"`
	// Endpoint is the site's php-fpm pool on its shard ("unix:/path"),
	// and Docroot its document root there, as the shard reported them; the
	// control plane accepts only the values the shard's registered layout
	// gives (package shardlayout), and edges derive their own.
	Endpoint string `json:"endpoint,omitempty"`
	Docroot  string `json:"docroot,omitempty"`
	// DiskUsedMB is what the site stores on its volume, as its shard
	// measured it last (full passes); 0 when unknown. Plan downgrades
	// below it are refused.
	DiskUsedMB int `json:"disk_used_mb,omitempty"`
	// Code is what the site runs (code.go), as its shard observed it.
	Code *CodeStatus `json:"code,omitempty"`
	// Provision is how the shard's first convergence of the site went,
	// step by step (set once, when the site first became Ready).
	Provision *Provision `json:"provision,omitempty"`
}

// Provision times a site's creation on its shard: when the shard's agent
// first began converging it (Seen; the time from Metadata.CreatedAt to it
// is placement and the agent's wake-up) and how long each step of that
// convergence took, in order. Method is how WordPress was installed:
// "template" (a clone of the shard's pre-installed template database) or
// "installer" (WordPress's own installer).
type Provision struct {
	Generation int64           `json:"generation"`
	Seen       time.Time       `json:"seen"`
	Steps      []ProvisionStep `json:"steps"`
	Method     string          `json:"method,omitempty"`
	// PoolStartMs is how long starting the site's PHP pool took; it runs
	// beside the files and install steps (step pool_wait is what was left
	// of it after them).
	PoolStartMs float64 `json:"pool_start_ms,omitempty"`
	// Pool is how the site's PHP pool started: "spare" (a pool made ahead
	// was given to the site, without a reload of php-fpm) or "reload".
	Pool string `json:"pool,omitempty"`
}

// ProvisionStep is one step of a site's creation and its duration.
type ProvisionStep struct {
	Step string  `json:"step"`
	Ms   float64 `json:"ms"`
}

// Condition is one observed aspect of a site (Database, Files, Installed,
// Pool, Ready), as in Kubernetes API conventions.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"` // "True", "False", "Unknown"
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	ObservedGeneration int64     `json:"observed_generation"`
	LastTransitionTime time.Time `json:"last_transition_time"`
}

// SetCondition sets c on s, moving LastTransitionTime only when the status
// flips. now is injected so callers control the clock. It reports whether
// anything changed.
func (s *Status) SetCondition(c Condition, now time.Time) bool {
	for i := range s.Conditions {
		old := &s.Conditions[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message && old.ObservedGeneration == c.ObservedGeneration {
			return false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		*old = c
		return true
	}
	c.LastTransitionTime = now
	s.Conditions = append(s.Conditions, c)
	return true
}

// Condition returns the condition of type t, or nil.
func (s *Status) Condition(t string) *Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}
