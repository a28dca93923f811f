// Package auditlog makes the control plane's audit log tamper-evident and
// checks it.
//
// The store keeps the log as a hash chain (store.AuditEntry: every entry
// has a gap-free Seq and a Hash over all its fields and the previous
// entry's Hash, store.AuditHash). A chain alone catches an edited, deleted
// or reordered row, but not someone who edits a row and recomputes every
// hash after it. So this package also signs checkpoints — "the chain's
// entry Seq has Hash" — with an Ed25519 key derived from the backup
// key-encryption key (HKDF-SHA256, info KeyInfo): the KEK lives in the
// control plane's data directory, not in the database, so whoever can
// only edit the database cannot forge a checkpoint. Verify walks the whole
// chain and every checkpoint.
//
// Why hand-written: no maintained Go library keeps a hash-chained audit log
// in an SQL database (transparency-log libraries such as Trillian or
// sigsum need their own servers and Merkle trees); what is needed here is a
// canonical hash (store.AuditHash), an Ed25519 signature and a loop.
//
// What verification proves and what it cannot: see docs/security.md,
// "Audit log".
package auditlog

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// KeyInfo is the HKDF info string of the checkpoint signing key.
const KeyInfo = "aipress audit checkpoint v1"

// DefaultEvery is how many entries may follow the last checkpoint before
// CheckpointIfDue signs a new one.
const DefaultEvery = 100

// Store is what the package needs of store.Store.
type Store interface {
	ListAudit(ctx context.Context, opts store.AuditListOptions) ([]store.AuditEntry, error)
	AuditHead(ctx context.Context) (store.AuditHead, error)
	AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error
	ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error)
}

// Signer signs checkpoints with the key derived from a KEK.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// NewSigner derives the checkpoint key from kek (the backup key-encryption
// key, repos.LoadKEK): the Ed25519 seed is HKDF-SHA256(kek, no salt,
// KeyInfo).
func NewSigner(kek []byte) (*Signer, error) {
	if len(kek) < 16 {
		return nil, fmt.Errorf("audit checkpoint key: key-encryption key of %d bytes is too short", len(kek))
	}
	seed, err := hkdf.Key(sha256.New, kek, nil, KeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: pub, id: KeyID(pub)}, nil
}

// PublicKey returns the key that verifies the signer's checkpoints.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// KeyID returns KeyID of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// KeyID names a public key in checkpoints: the hex of the first 8 bytes of
// its SHA-256. It only says which key to try; the signature is what counts.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns the checkpoint of entry seq with hash, made at (UTC,
// microseconds: as stores keep it).
func (s *Signer) Sign(seq int64, hash string, at time.Time) store.AuditCheckpoint {
	cp := store.AuditCheckpoint{Seq: seq, Hash: hash, Time: store.NormalizeAuditTime(at), KeyID: s.id}
	cp.Signature = ed25519.Sign(s.priv, message(cp))
	return cp
}

// message is what a checkpoint's signature covers: a domain string, seq,
// hash, time (RFC 3339, UTC) and key ID, each length-prefixed as in
// store.AuditHash.
func message(cp store.AuditCheckpoint) []byte {
	var b []byte
	for _, f := range []string{KeyInfo, strconv.FormatInt(cp.Seq, 10), cp.Hash, cp.Time.UTC().Format(time.RFC3339Nano), cp.KeyID} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// Checkpoint signs and stores a checkpoint of the chain's current head. It
// returns the last checkpoint and whether it made it: an empty log gets
// none (zero checkpoint, false), a head that has one already keeps it,
// and a checkpoint another replica stored at the same seq meanwhile counts
// as done.
func Checkpoint(ctx context.Context, st Store, sg *Signer, now time.Time) (store.AuditCheckpoint, bool, error) {
	head, err := st.AuditHead(ctx)
	if err != nil {
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit checkpoint: %w", err)
	}
	if head.Seq == 0 {
		return store.AuditCheckpoint{}, false, nil
	}
	if head.CheckpointSeq == head.Seq {
		cps, err := st.ListAuditCheckpoints(ctx, head.Seq-1, 1)
		if err != nil || len(cps) == 0 {
			return store.AuditCheckpoint{}, false, fmt.Errorf("audit checkpoint: reading checkpoint %d: %w", head.Seq, errors.Join(err, store.ErrNotFound))
		}
		return cps[0], false, nil
	}
	cp := sg.Sign(head.Seq, head.Hash, now)
	switch err := st.AddAuditCheckpoint(ctx, cp); {
	case errors.Is(err, store.ErrAlreadyExists):
		return cp, false, nil
	case err != nil:
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit checkpoint: %w", err)
	}
	return cp, true, nil
}

// CheckpointIfDue signs a checkpoint when at least every entries (default
// DefaultEvery when every <= 0) follow the last one. It reports whether it
// stored one.
func CheckpointIfDue(ctx context.Context, st Store, sg *Signer, every int, now time.Time) (bool, error) {
	if every <= 0 {
		every = DefaultEvery
	}
	head, err := st.AuditHead(ctx)
	if err != nil {
		return false, fmt.Errorf("audit checkpoint: %w", err)
	}
	if head.Seq-head.CheckpointSeq < int64(every) {
		return false, nil
	}
	_, made, err := Checkpoint(ctx, st, sg, now)
	return made, err
}

// Report is the outcome of Verify.
type Report struct {
	// OK: every entry and checkpoint checked out.
	OK bool `json:"ok"`
	// Entries is how many entries were read (up to the first problem).
	Entries int64 `json:"entries"`
	// Checkpoints is how many checkpoints were verified.
	Checkpoints int `json:"checkpoints"`
	// CheckpointSeq is the last verified checkpoint's seq: entries up to
	// it are vouched for by a signature.
	CheckpointSeq int64 `json:"checkpoint_seq"`
	// Unsigned is how many entries follow the last verified checkpoint:
	// their deletion (all of them at once) could not be detected.
	Unsigned int64 `json:"unsigned"`
	// FirstBadSeq is the first entry that cannot be trusted (0 when OK).
	FirstBadSeq int64 `json:"first_bad_seq,omitempty"`
	// Problem says what is wrong ("" when OK).
	Problem string `json:"problem,omitempty"`
}

// Options configure Verify.
type Options struct {
	// Keys are the trusted checkpoint keys: the current signer's and those
	// of key-encryption keys retired by a rotation.
	Keys []ed25519.PublicKey
	// MaxUnsigned, when > 0, is how many entries may follow the last
	// verified checkpoint. Checkpoints are made every N entries: many
	// more unsigned entries than N mean checkpoints were deleted (to hide
	// a rewritten chain). 0: no limit.
	MaxUnsigned int64

	pageSize int // tests: smaller pages (default pageSize)
}

// pageSize is how many entries and checkpoints Verify reads at a time.
const pageSize = store.MaxLimit

// Verify walks the audit chain in seq order and every checkpoint, and
// reports the first problem: a missing entry (a gap in seq, or entries
// missing after the last checkpoint's seq), an entry that does not link to
// the one before (reordered or edited prev hash), an entry whose hash does
// not match its contents (edited), a checkpoint whose signature does not
// verify under any of opts.Keys (edited, forged, or made with a key not given),
// or a chain that differs from a checkpoint at its seq (the entries after
// the last matching checkpoint were rewritten and rehashed), or more
// entries after the last checkpoint than opts.MaxUnsigned. The error is
// for failures to read the store, not for tampering.
func Verify(ctx context.Context, st Store, opts Options) (Report, error) {
	byID := map[string]ed25519.PublicKey{}
	for _, k := range opts.Keys {
		byID[KeyID(k)] = k
	}
	size := pageSize
	if opts.pageSize > 0 {
		size = opts.pageSize
	}
	var r Report
	fail := func(seq int64, format string, args ...any) (Report, error) {
		r.OK, r.FirstBadSeq, r.Problem, r.Unsigned = false, seq, fmt.Sprintf(format, args...), 0
		return r, nil
	}
	checkSig := func(cp store.AuditCheckpoint) string {
		k, ok := byID[cp.KeyID]
		switch {
		case !ok:
			return fmt.Sprintf("checkpoint at entry %d is signed by key %q, which is not a trusted checkpoint key", cp.Seq, cp.KeyID)
		case !ed25519.Verify(k, message(cp), cp.Signature):
			return fmt.Sprintf("checkpoint at entry %d has an invalid signature: it was edited or forged", cp.Seq)
		}
		return ""
	}
	// Checkpoints are read a page at a time alongside the entries.
	var cps []store.AuditCheckpoint
	cpAfter, cpDone := int64(0), false
	nextCP := func() (*store.AuditCheckpoint, error) {
		if len(cps) == 0 && !cpDone {
			page, err := st.ListAuditCheckpoints(ctx, cpAfter, size)
			if err != nil {
				return nil, err
			}
			cps = page
			if len(page) < size {
				cpDone = true
			}
			if len(page) > 0 {
				cpAfter = page[len(page)-1].Seq
			}
		}
		if len(cps) == 0 {
			return nil, nil
		}
		return &cps[0], nil
	}

	prevSeq, prevHash := int64(0), ""
	for {
		page, err := st.ListAudit(ctx, store.AuditListOptions{AfterSeq: prevSeq, Limit: size})
		if err != nil {
			return r, fmt.Errorf("verify audit log: %w", err)
		}
		for _, e := range page {
			if e.Seq != prevSeq+1 {
				return fail(prevSeq+1, "entry %d is missing (the entry after %d is %d): entries were deleted", prevSeq+1, prevSeq, e.Seq)
			}
			if e.PrevHash != prevHash {
				return fail(e.Seq, "entry %d does not link to entry %d: entries were reordered or edited", e.Seq, prevSeq)
			}
			if store.AuditHash(e) != e.Hash {
				return fail(e.Seq, "entry %d does not match its hash: it was edited", e.Seq)
			}
			r.Entries++
			prevSeq, prevHash = e.Seq, e.Hash
			for {
				cp, err := nextCP()
				if err != nil {
					return r, fmt.Errorf("verify audit log: %w", err)
				}
				if cp == nil || cp.Seq > e.Seq {
					break
				}
				if cp.Seq < e.Seq { // seq < 1: not a checkpoint AddAuditCheckpoint stores
					return fail(r.CheckpointSeq+1, "checkpoint at entry %d names no entry", cp.Seq)
				}
				if p := checkSig(*cp); p != "" {
					return fail(cp.Seq, "%s", p)
				}
				if cp.Hash != e.Hash {
					return fail(r.CheckpointSeq+1, "the chain at entry %d differs from its signed checkpoint: entries after %d were rewritten", cp.Seq, r.CheckpointSeq)
				}
				r.Checkpoints++
				r.CheckpointSeq = cp.Seq
				cps = cps[1:]
			}
		}
		if len(page) < size {
			break
		}
	}
	// A checkpoint past the end vouches for entries that are gone.
	cp, err := nextCP()
	if err != nil {
		return r, fmt.Errorf("verify audit log: %w", err)
	}
	if cp != nil {
		if p := checkSig(*cp); p != "" {
			return fail(cp.Seq, "%s", p)
		}
		return fail(prevSeq+1, "a signed checkpoint vouches for entries up to %d, but the log ends at %d: entries were deleted", cp.Seq, prevSeq)
	}
	r.Unsigned = prevSeq - r.CheckpointSeq
	if opts.MaxUnsigned > 0 && r.Unsigned > opts.MaxUnsigned {
		return fail(r.CheckpointSeq+1, "%d entries follow the last checkpoint (at entry %d), more than the %d allowed: checkpoints were deleted or not made", r.Unsigned, r.CheckpointSeq, opts.MaxUnsigned)
	}
	r.OK = true
	return r, nil
}
