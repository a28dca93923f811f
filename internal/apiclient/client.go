// Package apiclient is a small typed Go client for the AIPress control-plane
// API (package api). API errors are returned as *Error.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
)

// Client calls the API at BaseURL with a bearer Token.
type Client struct {
	BaseURL    string       // e.g. "http://127.0.0.1:7070"
	Token      string       // bearer token secret
	HTTPClient *http.Client // nil means http.DefaultClient
	// Channel, when set, is sent as X-AIPress-Channel (the audit log's
	// channel: cli, portal, assistant, api).
	Channel string
}

// New returns a client for baseURL authenticating with token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: baseURL, Token: token}
}

// Error is an error answered by the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // API error code, e.g. "not_found"
	Message string
	// Details are an invalid site file's problems, with their positions.
	Details []sitefile.Problem
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
}

// IsNotFound reports whether err is an API not_found error.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsExpired reports whether err is a watch's 410 expired: list again.
func IsExpired(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusGone
}

// IsConflict reports whether err is a 409 (conflict or already_exists).
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// Re-exported wire types.
type (
	ShardList           = api.ShardList
	ShardResponse       = api.ShardResponse
	CreateTokenRequest  = api.CreateTokenRequest
	CreateTokenResponse = api.CreateTokenResponse
	TokenList           = api.TokenList
	RegisterRequest     = api.RegisterRequest
	WatchSitesResponse  = api.WatchSitesResponse
	RoutesResponse      = api.RoutesResponse
	CreateSiteRequest   = api.CreateSiteRequest
	CreateSiteResponse  = api.CreateSiteResponse
	WhoAmI              = api.WhoAmIResponse
	PurgeRequest        = api.PurgeRequest
	PurgeResponse       = api.PurgeResponse
	UpdateSiteRequest   = api.UpdateSiteRequest
	UpdateCache         = api.UpdateCache
	UpdateWAF           = api.UpdateWAF
	CertificateResponse = api.CertificateResponse
	MeshBundleResponse  = api.MeshBundleResponse
	MeshCAResponse      = api.MeshCAResponse
	RotateMeshCARequest = api.RotateMeshCARequest
	WAFEventView        = api.WAFEventView
)

// ListOptions selects a page of GET /v1/sites. Zero values use the
// server's defaults.
type ListOptions struct {
	Limit    int
	Continue string
}

// ListSites returns one page of sites.
func (c *Client) ListSites(ctx context.Context, opts ListOptions) (*store.SiteList, error) {
	q := url.Values{}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Continue != "" {
		q.Set("continue", opts.Continue)
	}
	path := "/v1/sites"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out store.SiteList
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateSite creates a site. The response holds the admin password, shown
// only this once.
func (c *Client) CreateSite(ctx context.Context, req CreateSiteRequest) (*CreateSiteResponse, error) {
	var out CreateSiteResponse
	if err := c.do(ctx, http.MethodPost, "/v1/sites", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSite returns the named site.
func (c *Client) GetSite(ctx context.Context, name string) (*site.Site, error) {
	return c.siteCall(ctx, http.MethodGet, sitePath(name))
}

// DeleteSite requests deletion of the named site and returns it (phase
// Deleting); the shard removes it asynchronously.
func (c *Client) DeleteSite(ctx context.Context, name string) (*site.Site, error) {
	return c.siteCall(ctx, http.MethodDelete, sitePath(name))
}

// UpdateSite changes the fields of req that are set (PATCH).
func (c *Client) UpdateSite(ctx context.Context, name string, req UpdateSiteRequest) (*site.Site, error) {
	var out site.Site
	if err := c.do(ctx, http.MethodPatch, sitePath(name), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SuspendSite sets spec.suspended on the named site.
func (c *Client) SuspendSite(ctx context.Context, name string) (*site.Site, error) {
	return c.siteCall(ctx, http.MethodPost, sitePath(name)+"/suspend")
}

// ResumeSite clears spec.suspended on the named site.
func (c *Client) ResumeSite(ctx context.Context, name string) (*site.Site, error) {
	return c.siteCall(ctx, http.MethodPost, sitePath(name)+"/resume")
}

// FreezeSite sets (on) or clears spec.write_freeze on the named site:
// its shard takes its database writes and WP-Cron away, or gives them
// back (condition WritesFrozen).
func (c *Client) FreezeSite(ctx context.Context, name string, on bool) (*site.Site, error) {
	if on {
		return c.siteCall(ctx, http.MethodPost, sitePath(name)+"/freeze")
	}
	return c.siteCall(ctx, http.MethodPost, sitePath(name)+"/unfreeze")
}

// PurgeSite purges the named site's pages from the edge's page cache: the
// page at req.URL, the pages tagged req.Tag, or (both empty) every page.
func (c *Client) PurgeSite(ctx context.Context, name string, req PurgeRequest) (*PurgeResponse, error) {
	var out PurgeResponse
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/purge", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WhoAmI describes the client's token.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	if err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OpenAPI returns the server's OpenAPI document (YAML).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var out []byte
	if err := c.do(ctx, http.MethodGet, "/v1/openapi.yaml", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func sitePath(name string) string { return "/v1/sites/" + url.PathEscape(name) }

func (c *Client) siteCall(ctx context.Context, method, path string) (*site.Site, error) {
	var out site.Site
	if err := c.do(ctx, method, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// setHeaders sets the headers every request carries.
func (c *Client) setHeaders(req *http.Request) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Channel != "" {
		req.Header.Set(api.HeaderChannel, c.Channel)
	}
}

// do sends a request with an optional JSON body and decodes the response
// into out (a *[]byte receives the raw body).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	c.setHeaders(req)
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 && out != nil {
		if dec, ok := out.(streamDecoder); ok {
			if err := dec(resp.Body); err != nil {
				return fmt.Errorf("%s %s: decode response: %w", method, path, err)
			}
			return nil
		}
		if _, raw := out.(*[]byte); !raw {
			// Stream the body: an edge's first list of 50,000 routes is
			// tens of megabytes.
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("%s %s: decode response: %w", method, path, err)
			}
			return nil
		}
	}
	if resp.StatusCode >= 300 {
		return responseError(resp, method, path)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// responseError reads an error response (status >= 300) into an *Error.
func responseError(resp *http.Response, method, path string) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	var eb api.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
	}
	return &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode),
		Message: fmt.Sprintf("%s %s: unexpected HTTP %s", method, path, resp.Status)}
}

// WAFEventsResponse is a page of GET /v1/sites/{name}/waf/events.
type WAFEventsResponse = api.WAFEventsResponse

// ListWAFEvents returns a page of the site's recent WAF events, newest
// first, with suggested exclusions.
func (c *Client) ListWAFEvents(ctx context.Context, name string, opts ListOptions) (*WAFEventsResponse, error) {
	q := url.Values{}
	pageQuery(q, opts.Limit, opts.Continue)
	var out WAFEventsResponse
	if err := c.do(ctx, http.MethodGet, withQuery(sitePath(name)+"/waf/events", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportWAFEvents sends an edge's WAF events (edge token) and returns how
// many the control plane stored.
func (c *Client) ReportWAFEvents(ctx context.Context, events []site.WAFEvent) (int, error) {
	var out api.WAFEventsReportResponse
	if err := c.do(ctx, http.MethodPost, "/v1/edge/waf-events", api.WAFEventsReport{Events: events}, &out); err != nil {
		return 0, err
	}
	return out.Stored, nil
}

// ReportUsage sends an edge's response bytes per site since its last
// report (edge token) and returns the sites over their plan's bandwidth.
func (c *Client) ReportUsage(ctx context.Context, bytes map[string]int64) (*api.UsageReportResponse, error) {
	return c.SendUsageReport(ctx, &api.UsageReport{Bytes: bytes})
}

// ReportProbes sends an edge's uptime probe results (edge token) and
// returns how many incidents they opened and closed.
func (c *Client) ReportProbes(ctx context.Context, results []uptime.Result) (*uptime.Recorded, error) {
	var out uptime.Recorded
	if err := c.do(ctx, http.MethodPost, "/v1/edge/probes", api.ProbeReport{Results: results}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EdgePeers lists the live edges' names (GET /v1/edge/peers).
func (c *Client) EdgePeers(ctx context.Context) ([]string, error) {
	var out api.EdgePeers
	if err := c.do(ctx, http.MethodGet, "/v1/edge/peers", nil, &out); err != nil {
		return nil, err
	}
	return out.Edges, nil
}

// SLA returns the SLA report of month ("YYYY-MM"; empty: the current
// one) of the sites q selects (org, q, site).
func (c *Client) SLA(ctx context.Context, q url.Values) (*uptime.Report, error) {
	var out uptime.Report
	if err := c.do(ctx, http.MethodGet, "/v1/sla?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Incidents returns a page of site's incidents, oldest first, after the
// incident ID after.
func (c *Client) Incidents(ctx context.Context, name string, after int64, limit int) (*api.IncidentList, error) {
	var out api.IncidentList
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if err := c.do(ctx, http.MethodGet, "/v1/sites/"+url.PathEscape(name)+"/incidents?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetStatusPage makes site's public status page public or private.
func (c *Client) SetStatusPage(ctx context.Context, name string, public bool) (*api.StatusPageSetting, error) {
	var out api.StatusPageSetting
	if err := c.do(ctx, http.MethodPut, "/v1/sites/"+url.PathEscape(name)+"/status-page", api.StatusPageSetting{Public: public}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StatusPage says whether site's status page is public.
func (c *Client) StatusPage(ctx context.Context, name string) (*api.StatusPageSetting, error) {
	var out api.StatusPageSetting
	if err := c.do(ctx, http.MethodGet, "/v1/sites/"+url.PathEscape(name)+"/status-page", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendUsageReport sends an edge's whole usage report (edge token): the
// bytes per site and each site's traffic for the charts.
func (c *Client) SendUsageReport(ctx context.Context, rep *api.UsageReport) (*api.UsageReportResponse, error) {
	var out api.UsageReportResponse
	if err := c.do(ctx, http.MethodPost, "/v1/edge/usage", rep, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
