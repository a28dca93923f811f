package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aipress/aipress/internal/store"
)

// ExportSite starts an export of the named site (or returns the one
// already pending or running).
func (c *Client) ExportSite(ctx context.Context, name string) (*store.Job, error) {
	return c.ExportSiteAs(ctx, name, "")
}

// ExportSiteAs starts an export job of site name in format
// (store.ExportArchive, the default, or store.ExportWXR).
func (c *Client) ExportSiteAs(ctx context.Context, name, format string) (*store.Job, error) {
	var out store.Job
	var body any
	if format != "" {
		body = store.ExportParams{Format: format}
	}
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/export", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JobArchive opens the archive of a succeeded export job; the caller
// closes it. sha256 is the archive's hash as the server has it.
func (c *Client) JobArchive(ctx context.Context, id string) (body io.ReadCloser, size int64, sha256 string, err error) {
	path := "/v1/jobs/" + url.PathEscape(id) + "/archive"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, 0, "", fmt.Errorf("new request: %w", err)
	}
	c.setHeaders(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, 0, "", fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, "", responseError(resp, http.MethodGet, path)
	}
	return resp.Body, resp.ContentLength, resp.Header.Get("X-Archive-SHA256"), nil
}

// ImportRequest names the site an import creates (POST /v1/imports).
type ImportRequest struct {
	Domain, Org, Plan, Title, AdminEmail, Prefix string
	DryRun                                       bool
}

// ImportSite sends archive (size bytes, -1 unknown) to be imported; out
// receives the answer (api.ImportResponse).
func (c *Client) ImportSite(ctx context.Context, req ImportRequest, archive io.Reader, size int64, out any) error {
	q := url.Values{}
	for k, v := range map[string]string{"domain": req.Domain, "org": req.Org, "plan": req.Plan, "title": req.Title,
		"admin_email": req.AdminEmail, "prefix": req.Prefix} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if req.DryRun {
		q.Set("dry_run", "true")
	}
	path := "/v1/imports?" + q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, archive)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	hreq.ContentLength = size
	c.setHeaders(hreq)
	hreq.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		return fmt.Errorf("POST /v1/imports: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return responseError(resp, http.MethodPost, "/v1/imports")
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("POST /v1/imports: decode: %w", err)
	}
	return nil
}

// WXRImportRequest is an import of a WXR file into site Site.
type WXRImportRequest struct {
	Site                    string
	DryRun, SkipAttachments bool
}

// ImportWXR sends the WXR file (size bytes, -1 unknown) to be imported
// into an existing site (POST /v1/sites/{name}/wxr-import); out receives
// the answer (api.WXRImportResponse).
func (c *Client) ImportWXR(ctx context.Context, req WXRImportRequest, file io.Reader, size int64, out any) error {
	q := url.Values{}
	if req.DryRun {
		q.Set("dry_run", "true")
	}
	if req.SkipAttachments {
		q.Set("skip_attachments", "true")
	}
	path := sitePath(req.Site) + "/wxr-import"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path+"?"+q.Encode(), file)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	hreq.ContentLength = size
	c.setHeaders(hreq)
	hreq.Header.Set("Content-Type", "application/xml")
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return responseError(resp, http.MethodPost, path)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("POST %s: decode: %w", path, err)
	}
	return nil
}

// ResyncSite sends a delta archive pulled from the live site that site
// was imported from (size bytes, -1 unknown) to POST
// /v1/sites/{name}/resync; out receives the answer (the job).
func (c *Client) ResyncSite(ctx context.Context, site string, archive io.Reader, size int64, out any) error {
	path := sitePath(site) + "/resync"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, archive)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	hreq.ContentLength = size
	c.setHeaders(hreq)
	hreq.Header.Set("Content-Type", "application/gzip")
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return responseError(resp, http.MethodPost, path)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("POST %s: decode: %w", path, err)
	}
	return nil
}
