package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// Site files and code (docs/code.md).
type (
	ApplyResult  = api.ApplyResult
	SiteResponse = api.SiteResponse
)

// ApplyOptions say how Apply sends a site file.
type ApplyOptions struct {
	DryRun  bool
	Enforce bool
	// Name is the file's name in the server's error positions.
	Name string
}

// Apply sends a site file (YAML or JSON) to POST /v1/apply. An invalid
// file is an *Error whose Details list the problems.
func (c *Client) Apply(ctx context.Context, doc []byte, opts ApplyOptions) (*ApplyResult, error) {
	q := url.Values{}
	if opts.DryRun {
		q.Set("dry_run", "true")
	}
	if opts.Enforce {
		q.Set("enforce", "true")
	}
	if opts.Name != "" {
		q.Set("file", opts.Name)
	}
	path := withQuery("/v1/apply", q)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Accept", "application/json")
	c.setHeaders(req)
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, responseError(resp, http.MethodPost, path)
	}
	var out ApplyResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("POST %s: decode response: %w", path, err)
	}
	return &out, nil
}

// PatchSite changes a site (PATCH /v1/sites/{name}) and returns it with
// the code job the change started, if any.
func (c *Client) PatchSite(ctx context.Context, name string, req UpdateSiteRequest) (*SiteResponse, error) {
	var out SiteResponse
	if err := c.do(ctx, http.MethodPatch, sitePath(name), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnforceCode starts a code job that brings what the site runs back to its
// spec (POST /v1/sites/{name}/code/enforce).
func (c *Client) EnforceCode(ctx context.Context, name string) (*store.Job, error) {
	var out api.CodeEnforceResponse
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/code/enforce", nil, &out); err != nil {
		return nil, err
	}
	return out.Job, nil
}
