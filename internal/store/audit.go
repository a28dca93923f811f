package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// AuditEntry records one mutating call or one sign-in event. The audit log
// is a hash chain: entries are numbered 1, 2, 3… (Seq, no gaps) and each
// Hash commits to every field of its entry and to the Hash before it
// (PrevHash), so editing, deleting or reordering a stored row breaks the
// chain (package auditlog verifies it and signs checkpoints of it).
type AuditEntry struct {
	// Seq, PrevHash and Hash are the store's: AppendAudit sets them.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is the token ID that made the call ("" for an unauthenticated
	// event, e.g. a failed sign-in).
	Actor string `json:"actor"`
	// ActorUser is the user the token acts for ("" for machine and legacy
	// tokens, and for entries older than users).
	ActorUser string `json:"actor_user,omitempty"`
	// Org is the organisation the call acted for ("" platform-wide).
	Org string `json:"org,omitempty"`
	// Channel is how the call came in: cli, portal, assistant or api (""
	// for entries older than channels).
	Channel string `json:"channel,omitempty"`
	Action  string `json:"action"` // e.g. "site.create"
	Target  string `json:"target"` // e.g. the site name
	Outcome string `json:"outcome"`
	// Detail says what changed, when the action alone does not (e.g.
	// "waf.exclusions +942190:/:s" for a site.update).
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	SourceIP  string `json:"source_ip,omitempty"`
	// PrevHash is the Hash of entry Seq-1 ("" for the first entry).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Audit channels: how a call reached the API (AuditEntry.Channel).
const (
	ChannelCLI       = "cli"
	ChannelPortal    = "portal"
	ChannelAssistant = "assistant"
	ChannelAPI       = "api"
)

// ValidChannel reports whether c is one of the audit channels.
func ValidChannel(c string) bool {
	switch c {
	case ChannelCLI, ChannelPortal, ChannelAssistant, ChannelAPI:
		return true
	}
	return false
}

// auditHashDomain starts every hashed encoding, so an audit hash can never
// be mistaken for the hash of anything else (and a future encoding gets a
// new domain).
const auditHashDomain = "aipress audit entry v1"

// AuditHash returns the lowercase SHA-256 hex that AppendAudit stores as
// e.Hash: the hash of a canonical encoding of every field of e but Hash
// itself (PrevHash included), so the hash commits to the whole chain before
// e. The encoding is the domain string auditHashDomain followed by, in this
// order, Seq (decimal), Time (UTC, RFC 3339 with nanoseconds, as
// time.RFC3339Nano formats it), Actor, ActorUser, Org, Channel, Action,
// Target, Outcome, Detail, RequestID, SourceIP and PrevHash, each preceded
// by its length in bytes as an 8-byte big-endian integer. Length prefixes
// make the encoding injective: no two different entries encode alike,
// whatever bytes the fields hold.
//
// Stores keep Time to the microsecond (NormalizeAuditTime); AuditHash hashes
// Time as given, so a hash is reproducible only from the stored value.
func AuditHash(e AuditEntry) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(auditHashDomain)
	field(strconv.FormatInt(e.Seq, 10))
	field(e.Time.UTC().Format(time.RFC3339Nano))
	for _, s := range []string{e.Actor, e.ActorUser, e.Org, e.Channel, e.Action, e.Target, e.Outcome, e.Detail, e.RequestID, e.SourceIP, e.PrevHash} {
		field(s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NormalizeAuditTime returns t as the stores keep audit and checkpoint
// times: UTC, truncated to the microsecond (what PostgreSQL's timestamptz
// holds).
func NormalizeAuditTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// AuditSinceBound returns t rounded up to the microsecond: stored times are
// whole microseconds, so a stored time is at or after t exactly when it is
// at or after AuditSinceBound(t) (how stores apply AuditListOptions.Since).
func AuditSinceBound(t time.Time) time.Time {
	m := NormalizeAuditTime(t)
	if m.Before(t) {
		m = m.Add(time.Microsecond)
	}
	return m
}

// SealAudit prepares e to be appended after the entry (prevSeq, prevHash)
// (0 and "" for the first entry): it normalises Time, sets Seq to prevSeq+1,
// PrevHash and Hash. Stores call it inside the transaction that holds the
// chain's head.
func SealAudit(e *AuditEntry, prevSeq int64, prevHash string) {
	e.Time = NormalizeAuditTime(e.Time)
	e.Seq = prevSeq + 1
	e.PrevHash = prevHash
	e.Hash = AuditHash(*e)
}

// AuditListOptions selects audit entries. ListAudit returns them in Seq
// order (ascending).
type AuditListOptions struct {
	// Org keeps only the entries of that organisation ("" keeps all).
	Org string
	// Orgs, when not nil, keeps only the entries of these organisations
	// (an empty, non-nil slice selects none); with Org, both apply.
	Orgs []string
	// Since keeps only the entries whose Time is at or after it (zero: all).
	Since time.Time
	// AfterSeq keeps only the entries with Seq > AfterSeq: the cursor of
	// the next page is the last Seq of the previous one.
	AfterSeq int64
	// Limit is the page size (default DefaultLimit, max MaxLimit).
	Limit int
}

// AuditCheckpoint is a signed statement that the audit chain's entry Seq had
// Hash at Time. Package auditlog signs and verifies them (Ed25519, with a
// key derived from the platform secret, named by KeyID); the store
// only keeps them.
type AuditCheckpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// AuditHead is the end of the audit chain: the last entry's Seq and Hash (0
// and "" when the log is empty) and the Seq of the last checkpoint (0 when
// there is none).
type AuditHead struct {
	Seq           int64  `json:"seq"`
	Hash          string `json:"hash"`
	CheckpointSeq int64  `json:"checkpoint_seq"`
}
