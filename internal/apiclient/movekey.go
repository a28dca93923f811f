package apiclient

import (
	"context"
	"net/http"

	"github.com/aipress/aipress/internal/api"
)

// MoveKey is the key of a site's move (GET /v1/agent/sites/{name}/move-key).
type MoveKey = api.MoveKey

// MoveKey returns the key that authenticates the export of site name's
// current move (shard token of the move's source or target only).
func (c *Client) MoveKey(ctx context.Context, name string) (*MoveKey, error) {
	var out MoveKey
	if err := c.do(ctx, http.MethodGet, agentSitePath(name)+"/move-key", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
