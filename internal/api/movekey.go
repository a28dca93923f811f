package api

import (
	"net/http"
)

// MoveKey is the body of GET /v1/agent/sites/{name}/move-key: the key that
// authenticates the export of the site's current move in the transfer
// store (the source signs the export's manifest with it, the target checks
// it; see repos.MoveKey). The transfer store is shared by every shard, so
// the key is what keeps one shard — or anyone else who can write to the
// store — from substituting another site's export.
type MoveKey struct {
	UID    string `json:"uid"`
	MoveID string `json:"move_id"`
	Key    []byte `json:"key"`
}

// agentMoveKey gives the key of a site's active move to the move's source
// or target shard, and to no other.
func (s *server) agentMoveKey(c *call) (response, error) {
	if s.cfg.Backups == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "move keys are not configured on this control plane (it has no key-encryption key)")
	}
	st, err := s.pathSite(c)
	if err != nil {
		return response{}, err
	}
	name := st.Metadata.Name
	shard, m := c.token.Subject, st.Move
	if !m.Active() || (shard != m.Source && shard != m.Target) {
		return response{}, errorf(http.StatusForbidden, CodeForbidden, "shard %q is neither the source nor the target of an active move of site %q", shard, name)
	}
	return response{status: http.StatusOK, body: MoveKey{UID: st.Metadata.UID, MoveID: m.ID, Key: s.cfg.Backups.MoveKey(st.Metadata.UID, m.ID)}}, nil
}
