package apiclient

import (
	"context"
	"net/http"

	"github.com/aipress/aipress/internal/api"
)

// LoginKey is a site's login key (GET /v1/agent/sites/{name}/login-key).
type LoginKey = api.LoginKey

// LoginKey returns the login key of site name (shard token of the shard
// that hosts it only).
func (c *Client) LoginKey(ctx context.Context, name string) (*LoginKey, error) {
	var out LoginKey
	if err := c.do(ctx, http.MethodGet, agentSitePath(name)+"/login-key", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// LoginLink is the answer of POST /v1/sites/{name}/login-link.
type LoginLink = api.LoginLink

// LoginLink makes a one-time link that signs a browser into the site's
// wp-admin.
func (c *Client) LoginLink(ctx context.Context, name string) (*LoginLink, error) {
	var out LoginLink
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/login-link", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
