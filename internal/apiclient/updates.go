package apiclient

import (
	"context"
	"net/http"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// FleetUpdateRequest is the body of CreateFleetUpdate.
type FleetUpdateRequest = api.FleetUpdateRequest

// CreateUpdate starts a staged update of a site (POST
// /v1/sites/{name}/updates) and returns its job.
func (c *Client) CreateUpdate(ctx context.Context, name string, p store.UpdateParams) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/updates", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateFleetUpdate starts a fleet update (POST /v1/updates) and returns
// its job.
func (c *Client) CreateFleetUpdate(ctx context.Context, req FleetUpdateRequest) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, "/v1/updates", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
