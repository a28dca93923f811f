package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aipress/aipress/internal/api"
)

// Artefact wire types.
type (
	ArtefactUpload = api.ArtefactUpload
	ArtefactList   = api.ArtefactList
)

// ArtefactListOptions selects a page of GET /v1/artefacts.
type ArtefactListOptions struct {
	Org      string
	Limit    int
	Continue string
}

// UploadArtefact uploads the zip archive r (POST /v1/artefacts) for org
// ("" the caller's only organisation); kind is "plugin", "theme", "core"
// or "" (detected). It answers the upload's record (also when org had
// uploaded it already).
func (c *Client) UploadArtefact(ctx context.Context, org, kind string, r io.Reader) (*ArtefactUpload, error) {
	q := url.Values{}
	if org != "" {
		q.Set("org", org)
	}
	if kind != "" {
		q.Set("kind", kind)
	}
	path := withQuery("/v1/artefacts", q)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, r)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Accept", "application/json")
	c.setHeaders(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, responseError(resp, http.MethodPost, path)
	}
	var out ArtefactUpload
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("POST %s: decode response: %w", path, err)
	}
	return &out, nil
}

// ListArtefacts returns a page of an organisation's uploads.
func (c *Client) ListArtefacts(ctx context.Context, opts ArtefactListOptions) (*ArtefactList, error) {
	q := url.Values{}
	if opts.Org != "" {
		q.Set("org", opts.Org)
	}
	pageQuery(q, opts.Limit, opts.Continue)
	var out ArtefactList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/artefacts", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentArtefact opens an uploaded archive for a shard agent (GET
// /v1/agent/artefacts/{sha256}); the caller closes it. A 404 is an error
// for which IsNotFound is true. The caller checks the SHA-256 (the
// artefact store does).
func (c *Client) AgentArtefact(ctx context.Context, sha256 string) (io.ReadCloser, error) {
	path := "/v1/agent/artefacts/" + url.PathEscape(sha256)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	c.setHeaders(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp, http.MethodGet, path)
	}
	return resp.Body, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}
