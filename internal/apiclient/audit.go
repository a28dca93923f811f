package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// AuditQuery selects audit entries (GET /v1/audit, /v1/audit/export).
type AuditQuery struct {
	Org   string
	Since time.Time // zero: all
	After int64     // the previous page's Next
	Limit int       // 0: the server's default
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	if q.Org != "" {
		v.Set("org", q.Org)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ListAudit returns a page of audit entries in sequence order.
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) (*api.AuditList, error) {
	var out api.AuditList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/audit", q.values()), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExportAudit streams every entry q selects (Org, Since) from GET
// /v1/audit/export to fn, in sequence order. A transfer the server broke
// off is an error.
func (c *Client) ExportAudit(ctx context.Context, q AuditQuery, fn func(store.AuditEntry) error) error {
	v := q.values()
	v.Del("after")
	v.Del("limit")
	path := withQuery("/v1/audit/export", v)
	resp, err := c.getStream(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e store.AuditEntry
		switch err := dec.Decode(&e); {
		case errors.Is(err, io.EOF): // a clean end (a broken one is io.ErrUnexpectedEOF)
			return nil
		case err != nil:
			return fmt.Errorf("GET %s: %w", path, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// VerifyAudit runs POST /v1/audit/verify.
func (c *Client) VerifyAudit(ctx context.Context) (*api.AuditVerifyResponse, error) {
	var out api.AuditVerifyResponse
	if err := c.do(ctx, http.MethodPost, "/v1/audit/verify", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CheckpointAudit runs POST /v1/audit/checkpoint.
func (c *Client) CheckpointAudit(ctx context.Context) (*api.AuditCheckpointResponse, error) {
	var out api.AuditCheckpointResponse
	if err := c.do(ctx, http.MethodPost, "/v1/audit/checkpoint", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// getStream GETs path and returns the response of a 2xx answer, whose body
// the caller reads as it comes and closes; any other answer is an *Error.
func (c *Client) getStream(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	c.setHeaders(req)
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, responseError(resp, http.MethodGet, path)
	}
	return resp, nil
}
