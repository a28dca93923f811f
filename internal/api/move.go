package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// MoveSiteRequest is the body of POST /v1/sites/{name}/move.
type MoveSiteRequest struct {
	Target string `json:"target"` // the shard to move the site to
}

// moveSite starts moving a site to another shard: it records the move
// (phase Copying: the pre-copy, then the freeze); the source and target shards' agents then do their
// steps and report them (PUT /v1/agent/sites/{name}/move).
func (s *server) moveSite(c *call) (response, error) {
	var req MoveSiteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if !ValidShardName(req.Target) {
		return response{}, badRequest("target %q is not a shard name", req.Target)
	}
	target, err := s.cfg.Store.GetShard(c.r.Context(), req.Target)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, badRequest("target shard %q does not exist", req.Target)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get shard %q: %w", req.Target, err))
	}
	switch {
	case target.Draining:
		return response{}, badRequest("target shard %q is draining", target.Name)
	case target.Cordoned:
		return response{}, badRequest("target shard %q is cordoned", target.Name)
	case target.Phase != store.ShardReady:
		return response{}, badRequest("target shard %q is %s, not Ready", target.Name, target.Phase)
	}
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	if err := s.checkNoCodeJob(c.r.Context(), name); err != nil {
		return response{}, err
	}
	id, err := randomHex(8)
	if err != nil {
		return response{}, internal(err)
	}
	now := s.cfg.Clock().UTC()
	return s.update(c, http.StatusAccepted, func(st *site.Site) error {
		name := st.Metadata.Name
		switch {
		case st.Metadata.DeletionRequested != nil:
			return conflict("site %q is being deleted", name)
		case st.Move.Active():
			return conflict("site %q is already moving (%s to %s, %s)", name, st.Move.Source, st.Move.Target, st.Move.Phase)
		case st.Status.Shard == "":
			return conflict("site %q is not placed on a shard yet", name)
		case st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended:
			return conflict("site %q is %s; only a Ready or Suspended site can move", name, st.Status.Phase)
		case st.Status.Shard == target.Name:
			return badRequest("site %q is already on shard %q", name, target.Name)
		}
		st.Move = &site.Move{ID: id, Source: st.Status.Shard, Target: target.Name, Phase: site.MoveCopying, RequestedAt: now}
		return nil
	})
}

// checkNoCodeJob refuses (409) to move a site while a code job or a
// staged update of it is Pending or Running: the move would export the
// site in the middle of the change (and the code job's rollback would run
// on the wrong shard). Wait for the job to end, then move.
func (s *server) checkNoCodeJob(ctx context.Context, name string) error {
	cur, err := s.cfg.Store.GetSite(ctx, name)
	if err != nil {
		return nil //nolint:nilerr // update reports a missing site with its usual error
	}
	for _, kind := range []store.JobKind{store.JobCode, store.JobUpdate} {
		l, err := s.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: name, Kind: kind,
			Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit})
		if err != nil {
			return internal(fmt.Errorf("list %s jobs: %w", kind, err))
		}
		for _, j := range l.Items {
			if j.SiteUID != "" && j.SiteUID != cur.Metadata.UID {
				continue // a job of an earlier site of that name
			}
			what := "a code job"
			if kind == store.JobUpdate {
				what = "a staged update"
			}
			return conflict("site %q has %s in progress (job %s, %s); move it once the job has ended", name, what, j.ID, j.Phase)
		}
	}
	return nil
}

// abortMove rolls back a move that has not switched yet (phase Aborting:
// the target removes its copy, the source unfreezes). Aborting an aborting
// move is harmless.
func (s *server) abortMove(c *call) (response, error) {
	return s.update(c, http.StatusAccepted, func(st *site.Site) error {
		m := st.Move
		switch {
		case !m.Active():
			return conflict("site %q has no active move", st.Metadata.Name)
		case m.Phase == site.MoveAborting:
			return nil
		case m.Switched != nil || m.Phase == site.MoveCleaningUp:
			return conflict("the move of site %q already switched to shard %q; move it back instead", st.Metadata.Name, m.Target)
		}
		m.Phase = site.MoveAborting
		m.Error = ""
		return nil
	})
}
