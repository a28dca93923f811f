package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Rotating the CA without downtime. Every generation's key derives from
// the platform secret (NewAuthorityGen), so what replicas share is only a
// small state (CAState, kept in the store by the control plane): which
// generation issues leaves and which generations holders trust, the
// bundle. A rotation goes in three phases, each a new state:
//
//   - start: the bundle becomes old + new CA while the old one still
//     issues. Holders learn it at their next check (Credentials.Keep
//     compares the bundle the control plane serves with theirs and renews
//     when it changed), so before any leaf moves every holder trusts both.
//   - switch: the new CA issues; the bundle's order changes (the issuing CA
//     comes first), so holders renew at their next check and move to leaves
//     of the new CA, which every peer already trusts.
//   - finish: the old CA leaves the bundle; holders renew once more and stop
//     trusting it, so a leaf of the old CA is refused from then on.
//
// Every phase is safe to retry (the phase already reached is a no-op) and
// refused out of order.

// MaxGeneration bounds CA generations (a rotation a day for 27 years).
const MaxGeneration = 10000

// CheckInterval is how often holders (Credentials.Keep in shard agents and
// edges) check their certificate and the CA bundle.
const CheckInterval = 10 * time.Minute

// SwitchGrace is how long after start the switch waits by default: two
// holder checks, so a holder whose first check failed has retried.
const SwitchGrace = 2 * CheckInterval

// stateSlack covers control-plane replicas that still act on a cached
// state for a moment after a phase changed.
const stateSlack = time.Minute

// Phases of a CA rotation.
const (
	PhaseStart  = "start"
	PhaseSwitch = "switch"
	PhaseFinish = "finish"
)

// CAState is the CA's rotation state.
type CAState struct {
	// Issuing is the generation that issues leaves (1 on a new install).
	Issuing int `json:"issuing"`
	// Trusted are the generations in the bundle, the issuing one first.
	Trusted []int `json:"trusted"`
	// Phase is the last phase done: "" (no rotation ever), start, switch
	// or finish.
	Phase string `json:"phase,omitempty"`
	// StartedAt, SwitchedAt, FinishedAt: when the current (or last)
	// rotation's phases were done.
	StartedAt  time.Time `json:"started_at,omitzero"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// OldLeavesUntil (after switch): the latest NotAfter a leaf of the
	// previous generation may carry; finish waits for it unless forced.
	OldLeavesUntil time.Time `json:"old_leaves_until,omitzero"`
}

// InitialCAState is the state of an install that never rotated its CA.
func InitialCAState() CAState { return CAState{Issuing: 1, Trusted: []int{1}} }

// Validate reports whether s is a state transitions can start from.
func (s CAState) Validate() error {
	if s.Issuing < 1 || s.Issuing > MaxGeneration || len(s.Trusted) == 0 || len(s.Trusted) > 2 {
		return fmt.Errorf("mtls: invalid CA state %+v", s)
	}
	for _, g := range s.Trusted {
		if g < 1 || g > MaxGeneration {
			return fmt.Errorf("mtls: invalid CA state %+v", s)
		}
	}
	if s.Trusted[0] != s.Issuing || (len(s.Trusted) == 2) != s.Rotating() {
		return fmt.Errorf("mtls: invalid CA state %+v", s)
	}
	return nil
}

// Rotating reports whether a rotation is under way (started, not finished).
func (s CAState) Rotating() bool { return s.Phase == PhaseStart || s.Phase == PhaseSwitch }

// NextPhase is the phase that continues from s: start when no rotation is
// under way.
func (s CAState) NextPhase() string {
	switch s.Phase {
	case PhaseStart:
		return PhaseSwitch
	case PhaseSwitch:
		return PhaseFinish
	}
	return PhaseStart
}

// ErrTooEarly marks a phase refused because holders may not have caught up
// yet (Advance's force overrides it).
var ErrTooEarly = errors.New("too early")

// ErrPhaseOrder marks a phase asked out of order (start, switch, finish).
var ErrPhaseOrder = errors.New("out of order")

// Advance returns the state after phase at now, and whether it changed
// anything (a phase already done is a no-op: retries are safe). A phase
// out of order fails with ErrPhaseOrder; switch before SwitchGrace after
// start and finish before OldLeavesUntil fail with ErrTooEarly unless
// force.
func (s CAState) Advance(phase string, now time.Time, force bool) (CAState, bool, error) {
	if err := s.Validate(); err != nil {
		return s, false, err
	}
	next := s
	next.Trusted = append([]int(nil), s.Trusted...)
	switch phase {
	case PhaseStart:
		switch s.Phase {
		case PhaseStart:
			return s, false, nil
		case PhaseSwitch:
			return s, false, fmt.Errorf("mtls: a rotation to generation %d is switched already; finish it first: %w", s.Issuing, ErrPhaseOrder)
		}
		if s.Issuing >= MaxGeneration {
			return s, false, fmt.Errorf("mtls: the CA is at its last generation %d", s.Issuing)
		}
		next = CAState{Issuing: s.Issuing, Trusted: []int{s.Issuing, s.Issuing + 1}, Phase: PhaseStart, StartedAt: now}
	case PhaseSwitch:
		switch s.Phase {
		case PhaseSwitch:
			return s, false, nil
		case PhaseStart:
		default:
			return s, false, fmt.Errorf("mtls: no rotation under way; start one first: %w", ErrPhaseOrder)
		}
		if ready := s.StartedAt.Add(SwitchGrace); now.Before(ready) && !force {
			return s, false, fmt.Errorf("mtls: holders check the CA bundle every %s; switch after %s (or force it once every shard gateway and edge has renewed): %w",
				CheckInterval, ready.UTC().Format(time.RFC3339), ErrTooEarly)
		}
		old, gen := s.Trusted[0], s.Trusted[1]
		next.Issuing, next.Trusted, next.Phase, next.SwitchedAt = gen, []int{gen, old}, PhaseSwitch, now
		// A replica may still issue under the old generation for as long
		// as it caches the state it read before this switch.
		next.OldLeavesUntil = now.Add(DefaultTTL + stateSlack)
	case PhaseFinish:
		switch s.Phase {
		case PhaseSwitch:
		case PhaseFinish:
			return s, false, nil
		case PhaseStart:
			return s, false, fmt.Errorf("mtls: the rotation to generation %d is not switched yet; switch first: %w", s.Trusted[1], ErrPhaseOrder)
		default:
			return s, false, fmt.Errorf("mtls: no rotation under way; start one first: %w", ErrPhaseOrder)
		}
		if now.Before(s.OldLeavesUntil) && !force {
			return s, false, fmt.Errorf("mtls: leaves of generation %d may be valid until %s; finish then, or force it once every shard gateway and edge has renewed: %w",
				s.Trusted[1], s.OldLeavesUntil.UTC().Format(time.RFC3339), ErrTooEarly)
		}
		next.Trusted, next.Phase, next.FinishedAt = []int{s.Issuing}, PhaseFinish, now
	default:
		return s, false, fmt.Errorf("mtls: unknown phase %q (start, switch or finish)", phase)
	}
	return next, true, nil
}

// CA is every generation of the platform's CA: derived from one secret on
// demand and kept. Safe for concurrent use.
type CA struct {
	secret []byte
	clock  func() time.Time

	mu   sync.Mutex
	gens map[int]*Authority
}

// NewCA returns the CA of secret (see NewAuthorityGen). clock may be nil.
func NewCA(secret []byte, clock func() time.Time) (*CA, error) {
	if _, err := NewAuthorityGen(secret, 1, clock); err != nil {
		return nil, err
	}
	return &CA{secret: append([]byte(nil), secret...), clock: clock, gens: map[int]*Authority{}}, nil
}

// Generation returns generation gen's authority.
func (c *CA) Generation(gen int) (*Authority, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.gens[gen]; ok {
		return a, nil
	}
	a, err := NewAuthorityGen(c.secret, gen, c.clock)
	if err != nil {
		return nil, err
	}
	c.gens[gen] = a
	return a, nil
}

// Bundle is the PEM of st's trusted generations, in st's order.
func (c *CA) Bundle(st CAState) ([]byte, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	var out []byte
	for _, g := range st.Trusted {
		a, err := c.Generation(g)
		if err != nil {
			return nil, err
		}
		out = append(out, a.certPEM...)
	}
	return out, nil
}

// Issue signs a certificate for id under st's issuing generation (see
// Authority.Issue) and returns it with st's bundle.
func (c *CA) Issue(st CAState, csrPEM []byte, id Identity, ttl time.Duration) (certPEM, bundle []byte, notAfter time.Time, err error) {
	bundle, err = c.Bundle(st)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	a, err := c.Generation(st.Issuing)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	certPEM, notAfter, err = a.Issue(csrPEM, id, ttl)
	return certPEM, bundle, notAfter, err
}

// BundleID names a bundle's CAs in order: the hex SHA-256 of their
// public keys. Replicas sign their CA certificates each with its own
// signature, so bundles are compared by their keys, never their bytes.
func BundleID(bundlePEM []byte) (string, error) {
	certs, err := parseBundle(bundlePEM)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, c := range certs {
		k := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		h.Write(k[:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseBundle returns the CA certificates of a PEM bundle, in order.
func parseBundle(bundlePEM []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(bundlePEM)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("mtls: the CA bundle is not PEM")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("mtls: CA bundle: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("mtls: CA bundle: %q is not a CA", c.Subject.CommonName)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("mtls: no CA certificate in the bundle")
	}
	return out, nil
}
