// Package gitsync keeps sites in step with a git repository: a site (one
// site file at a path) or an organisation (a directory whose *.yaml files
// are its sites) points at a repository's branch; a poller in the control
// plane's leader fetches it (go-git, into a cache under the data dir) every
// interval and when a webhook or a user asks, walks the branch's
// first-parent history from the last applied commit to its head and, for
// each commit in order, validates (a dry run) then applies the site files
// that commit changed through an Applier (the API's apply path, acting as a
// developer of the organisation). A commit that fails stops the sync there;
// the status says which commit, which file and why, and which commits wait;
// the next run retries from there, so a commit that fixes the file is
// applied. Drift is the dry run of the files at the last applied commit:
// what the sites run or store that differs from them.
//
// Configurations and their status are records in the store's settings
// (Manager: keys gitsync.site.<name> and gitsync.org.<org>, written with
// compare-and-set), so every control-plane replica sees them alike; the
// webhook secret and named credentials are sealed (AES-GCM) with a key
// derived from the platform secret.
package gitsync

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/egress"
	"github.com/aipress/aipress/internal/store"
)

// Kinds of targets.
const (
	KindSite = "site"
	KindOrg  = "org"
)

// Interval bounds and default.
const (
	DefaultInterval = 5 * time.Minute
	MinInterval     = 10 * time.Second
	MaxInterval     = 24 * time.Hour
)

// Target is what a configuration syncs: a site (Name is its domain) or an
// organisation (Name is the organisation).
type Target struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (t Target) String() string { return t.Kind + " " + t.Name }

// key is the setting the target's record is kept in.
func (t Target) key() string { return "gitsync." + t.Kind + "." + t.Name }

// Config is where a target's files are.
type Config struct {
	// URL is the repository: https:// to a public address (http:// and
	// loopback or private addresses only when the platform allows private
	// fetches: --allow-private-fetch, for tests and private mirrors).
	URL string `json:"url"`
	// Branch is the branch followed (default "main").
	Branch string `json:"branch"`
	// Path is, for a site, the site file's path in the repository
	// (default "site.yaml"); for an organisation, the directory whose
	// *.yaml and *.yml files are its sites ("" the repository's root).
	Path string `json:"path"`
	// Credentials name the organisation's credential (PUT
	// /v1/orgs/{org}/git/credentials/{name}) presented to the repository
	// (HTTP basic auth); nil for a public repository.
	Credentials *CredentialsRef `json:"credentials,omitempty"`
	// Interval is how often the repository is polled (a Go duration,
	// default 5m, between 10s and 24h).
	Interval string `json:"interval"`
}

// CredentialsRef names a stored credential.
type CredentialsRef struct {
	Secret string `json:"secret"`
}

var (
	branchRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)
	// secretNameRE: the names of credentials (and part of a setting key).
	secretNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,49}$`)
)

// ValidSecretName reports whether name can name a credential.
func ValidSecretName(name string) bool { return secretNameRE.MatchString(name) }

// Normalize fills defaults and validates c for kind; errors say which
// field is wrong. allowPrivate accepts plain http and loopback or private
// address literals in the URL (see package egress).
func (c *Config) Normalize(kind string, allowPrivate bool) error {
	c.URL = strings.TrimSpace(c.URL)
	if err := checkURL(c.URL, allowPrivate); err != nil {
		return err
	}
	if c.Branch == "" {
		c.Branch = "main"
	}
	if !branchRE.MatchString(c.Branch) || strings.Contains(c.Branch, "..") || strings.HasSuffix(c.Branch, "/") ||
		strings.HasSuffix(c.Branch, ".lock") {
		return fmt.Errorf("branch: %q is not a valid branch name", c.Branch)
	}
	p := strings.Trim(c.Path, "/")
	if p == "." {
		p = ""
	}
	if p != "" && (path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." || strings.ContainsAny(p, "\\\x00")) {
		return fmt.Errorf("path: %q is not a clean relative path in the repository", c.Path)
	}
	switch kind {
	case KindSite:
		if p == "" {
			p = "site.yaml"
		}
	case KindOrg:
	default:
		return fmt.Errorf("unknown target kind %q", kind)
	}
	if len(p) > 400 {
		return errors.New("path: longer than 400 characters")
	}
	c.Path = p
	if c.Credentials != nil {
		if c.Credentials.Secret == "" {
			c.Credentials = nil
		} else if !ValidSecretName(c.Credentials.Secret) {
			return fmt.Errorf("credentials.secret: %q is not a credential name (lower-case letters, digits, '-', '_'; at most 50)", c.Credentials.Secret)
		}
	}
	if c.Interval == "" {
		c.Interval = DefaultInterval.String()
	}
	d, err := time.ParseDuration(c.Interval)
	if err != nil {
		return fmt.Errorf("interval: %w", err)
	}
	if d < MinInterval || d > MaxInterval {
		return fmt.Errorf("interval: %s is not between %s and %s", d, MinInterval, MaxInterval)
	}
	c.Interval = d.String()
	return nil
}

// every returns the polling interval (Normalize checked it).
func (c Config) every() time.Duration {
	d, err := time.ParseDuration(c.Interval)
	if err != nil || d < MinInterval {
		return DefaultInterval
	}
	return d
}

// basis identifies what a status was computed from: a status of another
// repository, branch or path starts over.
func (c Config) basis() string { return c.URL + "\x00" + c.Branch + "\x00" + c.Path }

// checkURL accepts https URLs to a host that is not a loopback or private
// address literal; with allowPrivate, http and any address too. Names are
// checked again when dialled (package egress guards go-git's transport).
func checkURL(raw string, allowPrivate bool) error {
	if raw == "" {
		return errors.New("url: required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("url: %q has no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("url: %q has a query or fragment", raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("url: %q: the scheme must be https", raw)
	}
	if u.User != nil {
		return errors.New("url: credentials do not belong in the URL; store them (git credentials) and name them in credentials.secret")
	}
	if err := egress.CheckURL(raw, allowPrivate); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}

// Status is what the last sync of a target found and did.
type Status struct {
	// Basis is the Config.basis this status belongs to (internal).
	Basis string `json:"basis,omitempty"`
	// Head is the branch's head at the last fetch.
	Head string `json:"head,omitempty"`
	// LastApplied is the last commit whose files were applied.
	LastApplied *Commit `json:"last_applied,omitempty"`
	// LastError is why the sync stopped (nil when the last sync reached
	// the head).
	LastError *SyncError `json:"last_error,omitempty"`
	// Pending are the commits after LastApplied not applied yet (oldest
	// first, at most MaxListed; PendingCount counts them all).
	Pending      []Commit `json:"pending,omitempty"`
	PendingCount int      `json:"pending_count,omitempty"`
	// Drift is what the target's sites run or store that differs from
	// their files at LastApplied (a dry run): changes made outside git,
	// and code changes not in effect yet.
	Drift []Drift `json:"drift,omitempty"`
	// Notice says something worth knowing about the last sync (history
	// rewritten, commits skipped).
	Notice string `json:"notice,omitempty"`
	// LastSyncAt is when the last sync started.
	LastSyncAt *time.Time `json:"last_sync_at,omitempty"`
}

// MaxListed bounds the commits and drift entries a status lists.
const MaxListed = 50

// Commit names a commit.
type Commit struct {
	Hash    string    `json:"hash"`
	Subject string    `json:"subject,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// AppliedAt is when it was applied (LastApplied only).
	AppliedAt *time.Time `json:"applied_at,omitempty"`
}

// SyncError is why a sync stopped.
type SyncError struct {
	// Commit is the commit that failed ("" when the repository could not
	// be read at all).
	Commit string `json:"commit,omitempty"`
	// File is the site file that failed (its path in the repository).
	File string `json:"file,omitempty"`
	// Line and Column locate the error in File when it is known.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Message is why; when Line is set it does not repeat File:Line:Column
	// (an invalid file's further problems follow, one a line, each with
	// its position).
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// Drift is one difference between a site and its file.
type Drift struct {
	Site string `json:"site"`
	store.CodeChange
}

// Webhook is a target's webhook: POST Path with the body signed with the
// secret (HMAC-SHA256, X-Hub-Signature-256 or X-Gitea-Signature).
type Webhook struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	// Secret is shown once, when the webhook is made.
	Secret string `json:"secret,omitempty"`
}

// View is a target's configuration and status as the API shows it (never
// a credential; the webhook secret only when it was just made).
type View struct {
	Target
	// Org is the organisation the target belongs to.
	Org     string  `json:"org"`
	Config  Config  `json:"config"`
	Webhook Webhook `json:"webhook"`
	// SyncRequestedAt is when a sync was last asked for (webhook or POST
	// …/git/sync).
	SyncRequestedAt *time.Time `json:"sync_requested_at,omitempty"`
	Status          Status     `json:"status"`
}

// HookPath is the webhook route of id.
func HookPath(id string) string { return "/v1/git/hooks/" + id }

// Errors.
var (
	// ErrNotFound: no configuration for the target, no such webhook or
	// credential.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a bad configuration (the message says which field).
	ErrInvalid = errors.New("invalid")
	// ErrBadSignature: a webhook delivery without a valid signature.
	ErrBadSignature = errors.New("bad or missing signature")
)
