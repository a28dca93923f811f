package apiclient

import (
	"context"
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
	var out store.Job
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/export", nil, &out); err != nil {
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
