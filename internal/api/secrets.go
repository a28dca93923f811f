package api

import (
	"encoding/json"
	"net/http"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// RotateSecretRequest is the body of POST /v1/sites/{name}/secrets/rotate.
type RotateSecretRequest struct {
	// Kind is "db-password" (no request fails; the site alternates between
	// two database accounts) or "salts" (every user of the site is logged
	// out).
	Kind string `json:"kind"`
}

// rotateSiteSecret starts a secret.rotate job on the site's shard (202 and
// the job), or answers the rotation of the same kind already pending or
// running (200). A rotation of the other kind in flight is a conflict: the
// two would race on the site's configuration.
func (s *server) rotateSiteSecret(c *call) (response, error) {
	ctx := c.r.Context()
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req RotateSecretRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.Kind != store.SecretDBPassword && req.Kind != store.SecretSalts {
		return response{}, badRequest("kind must be %q or %q, got %q", store.SecretDBPassword, store.SecretSalts, req.Kind)
	}
	st, err := s.getPlacedSite(ctx, name, "rotate its secrets")
	if err != nil {
		return response{}, err
	}
	if st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended {
		return response{}, conflict("site %q is %s; only a Ready or Suspended site's secrets are rotated", name, st.Status.Phase)
	}
	c.detail = "kind=" + req.Kind
	if j, err := s.activeJob(ctx, store.JobRotateSecret, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		var p store.RotateParams
		_ = json.Unmarshal(j.Params, &p)
		if p.Kind != req.Kind {
			return response{}, conflict("site %q has a %s rotation in flight (job %s); retry when it is over", name, p.Kind, j.ID)
		}
		return response{status: http.StatusOK, body: j, unchanged: true}, nil
	}
	j, err := s.createJob(ctx, store.JobRotateSecret, name, st.Metadata.UID, st.Status.Shard, store.RotateParams{Kind: req.Kind, Reason: "manual"})
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}
