package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/store"
)

// The mesh CA and its rotation (package mtls): every CA generation derives
// from the platform secret, so replicas share only the rotation state, a
// store setting. Issuing reads it through a short cache; rotating reads it
// afresh and writes it with compare-and-set.

// meshCAKey is the store setting holding the mesh CA's mtls.CAState.
const meshCAKey = "mesh.ca"

// meshStateTTL is how long a replica issues on a state it read: well under
// mtls's allowance for replicas acting on a stale state (a minute).
const meshStateTTL = 5 * time.Second

// meshCA follows the rotation state in the store.
type meshCA struct {
	ca *mtls.CA
	st store.Store

	mu      sync.Mutex
	state   mtls.CAState
	version int64
	read    time.Time // monotonic: when state was read
}

// load reads the state from the store (the initial state when none was
// ever written).
func (m *meshCA) load(ctx context.Context) (mtls.CAState, int64, error) {
	set, err := m.st.GetSetting(ctx, meshCAKey)
	if errors.Is(err, store.ErrNotFound) {
		return mtls.InitialCAState(), 0, nil
	}
	if err != nil {
		return mtls.CAState{}, 0, err
	}
	var st mtls.CAState
	if err := json.Unmarshal(set.Value, &st); err != nil {
		return mtls.CAState{}, 0, fmt.Errorf("mesh CA state: %w", err)
	}
	if err := st.Validate(); err != nil {
		return mtls.CAState{}, 0, err
	}
	return st, set.Version, nil
}

// current is the state, read at most meshStateTTL ago.
func (m *meshCA) current(ctx context.Context) (mtls.CAState, error) {
	m.mu.Lock()
	if !m.read.IsZero() && time.Since(m.read) < meshStateTTL {
		st := m.state
		m.mu.Unlock()
		return st, nil
	}
	m.mu.Unlock()
	st, version, err := m.load(ctx)
	if err != nil {
		return mtls.CAState{}, err
	}
	m.remember(st, version)
	return st, nil
}

func (m *meshCA) remember(st mtls.CAState, version int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if version >= m.version || m.read.IsZero() {
		m.state, m.version, m.read = st, version, time.Now()
	}
}

// advance does phase and stores the new state; a write that lost to
// another replica's reads again and decides again.
func (m *meshCA) advance(ctx context.Context, phase string, now time.Time, force bool) (mtls.CAState, bool, error) {
	for attempt := 0; ; attempt++ {
		st, version, err := m.load(ctx)
		if err != nil {
			return mtls.CAState{}, false, err
		}
		if phase == "" {
			phase = st.NextPhase()
		}
		next, changed, err := st.Advance(phase, now, force)
		if err != nil || !changed {
			m.remember(st, version)
			return st, false, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return mtls.CAState{}, false, err
		}
		set, err := m.st.PutSetting(ctx, meshCAKey, b, version)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return mtls.CAState{}, false, err
		}
		m.remember(next, set.Version)
		return next, true, nil
	}
}

// MeshBundleResponse is the answer of GET /v1/agent/mesh-ca and GET
// /v1/edge/mesh-ca: the CA bundle holders trust, which they compare with
// theirs to learn of a rotation.
type MeshBundleResponse struct {
	// CA is the PEM bundle: the issuing CA first, during a rotation the
	// other generation after it.
	CA string `json:"ca"`
	// BundleID names the bundle's CAs in order (mtls.BundleID).
	BundleID string `json:"bundle_id"`
}

// MeshCAResponse is the answer of GET /v1/mesh/ca and POST
// /v1/mesh/ca/rotate.
type MeshCAResponse struct {
	mtls.CAState
	// NextPhase is the phase `rotate` does when none is named.
	NextPhase string `json:"next_phase"`
	// SwitchAfter (after start): when switch is allowed without force.
	SwitchAfter time.Time `json:"switch_after,omitzero"`
	// Changed (rotate): whether the phase changed the state (false: it
	// was done already).
	Changed bool `json:"changed"`
	MeshBundleResponse
}

func (s *server) meshAnswer(ctx context.Context, st mtls.CAState) (MeshCAResponse, error) {
	bundle, err := s.mesh.ca.Bundle(st)
	if err != nil {
		return MeshCAResponse{}, err
	}
	id, err := mtls.BundleID(bundle)
	if err != nil {
		return MeshCAResponse{}, err
	}
	out := MeshCAResponse{CAState: st, NextPhase: st.NextPhase(), MeshBundleResponse: MeshBundleResponse{CA: string(bundle), BundleID: id}}
	if st.Phase == mtls.PhaseStart {
		out.SwitchAfter = st.StartedAt.Add(mtls.SwitchGrace)
	}
	return out, nil
}

func (s *server) noMesh() error {
	return errorf(http.StatusNotImplemented, CodeUnimplemented, "this control plane issues no certificates")
}

// meshBundle answers a holder's check of the CA bundle.
func (s *server) meshBundle(c *call) (response, error) {
	if s.mesh == nil {
		return response{}, s.noMesh()
	}
	st, err := s.mesh.current(c.r.Context())
	if err != nil {
		return response{}, err
	}
	out, err := s.meshAnswer(c.r.Context(), st)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: out.MeshBundleResponse}, nil
}

// getMeshCA answers the rotation state, read afresh.
func (s *server) getMeshCA(c *call) (response, error) {
	if s.mesh == nil {
		return response{}, s.noMesh()
	}
	st, version, err := s.mesh.load(c.r.Context())
	if err != nil {
		return response{}, err
	}
	s.mesh.remember(st, version)
	out, err := s.meshAnswer(c.r.Context(), st)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: out}, nil
}

// RotateMeshCARequest is the body of POST /v1/mesh/ca/rotate.
type RotateMeshCARequest struct {
	// Phase is start, switch or finish; empty: the next one.
	Phase string `json:"phase,omitempty"`
	// Force skips the wait for holders: switch before SwitchAfter, finish
	// before old_leaves_until.
	Force bool `json:"force,omitempty"`
}

// rotateMeshCA does a phase of the CA rotation.
func (s *server) rotateMeshCA(c *call) (response, error) {
	if s.mesh == nil {
		return response{}, s.noMesh()
	}
	var req RotateMeshCARequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	switch req.Phase {
	case "", mtls.PhaseStart, mtls.PhaseSwitch, mtls.PhaseFinish:
	default:
		return response{}, badRequest("phase must be %q, %q or %q (or empty: the next one), got %q", mtls.PhaseStart, mtls.PhaseSwitch, mtls.PhaseFinish, req.Phase)
	}
	c.target = "mesh-ca"
	st, changed, err := s.mesh.advance(c.r.Context(), req.Phase, s.cfg.Clock(), req.Force)
	if errors.Is(err, mtls.ErrTooEarly) || errors.Is(err, mtls.ErrPhaseOrder) {
		return response{}, HTTPError{Status: http.StatusConflict, Code: CodeConflict, Msg: err.Error(), Err: err}
	}
	if err != nil {
		return response{}, err
	}
	c.detail = "phase=" + st.Phase + " issuing=" + strconv.Itoa(st.Issuing) + " force=" + strconv.FormatBool(req.Force)
	out, err := s.meshAnswer(c.r.Context(), st)
	if err != nil {
		return response{}, err
	}
	out.Changed = changed
	// The state is no site write: nothing the routing tables or agents
	// watch changed (holders poll the bundle).
	return response{status: http.StatusOK, body: out, unchanged: true}, nil
}
