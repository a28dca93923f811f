package apiclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/gitsync"
)

// gitPath is the git sync route of t.
func gitPath(t gitsync.Target) string {
	if t.Kind == gitsync.KindOrg {
		return "/v1/orgs/" + url.PathEscape(t.Name) + "/git"
	}
	return sitePath(t.Name) + "/git"
}

// PutGit sets t's git sync configuration; the answer carries the webhook's
// secret when the webhook is new.
func (c *Client) PutGit(ctx context.Context, t gitsync.Target, cfg gitsync.Config) (*gitsync.View, error) {
	var out gitsync.View
	if err := c.do(ctx, http.MethodPut, gitPath(t), cfg, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetGit returns t's git sync configuration and status.
func (c *Client) GetGit(ctx context.Context, t gitsync.Target) (*gitsync.View, error) {
	var out gitsync.View
	if err := c.do(ctx, http.MethodGet, gitPath(t), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteGit stops syncing t from git.
func (c *Client) DeleteGit(ctx context.Context, t gitsync.Target) error {
	return c.do(ctx, http.MethodDelete, gitPath(t), nil, nil)
}

// SyncGit asks for a sync of t now.
func (c *Client) SyncGit(ctx context.Context, t gitsync.Target) (*gitsync.View, error) {
	var out gitsync.View
	if err := c.do(ctx, http.MethodPost, gitPath(t)+"/sync", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func gitCredPath(org, name string) string {
	return "/v1/orgs/" + url.PathEscape(org) + "/git/credentials/" + url.PathEscape(name)
}

// PutGitCredential stores (or replaces) org's git credential name.
func (c *Client) PutGitCredential(ctx context.Context, org, name string, cred gitsync.Credential) (*gitsync.CredentialInfo, error) {
	var out gitsync.CredentialInfo
	if err := c.do(ctx, http.MethodPut, gitCredPath(org, name), cred, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteGitCredential deletes org's git credential name.
func (c *Client) DeleteGitCredential(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, gitCredPath(org, name), nil, nil)
}

// ListGitCredentials names org's git credentials.
func (c *Client) ListGitCredentials(ctx context.Context, org string) ([]gitsync.CredentialInfo, error) {
	var out api.GitCredentialList
	if err := c.do(ctx, http.MethodGet, "/v1/orgs/"+url.PathEscape(org)+"/git/credentials", nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}
