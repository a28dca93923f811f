package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Operator calls: shards, tokens and site moves.

// ListShards returns one page of shards.
func (c *Client) ListShards(ctx context.Context, opts ListOptions) (*ShardList, error) {
	q := url.Values{}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Continue != "" {
		q.Set("continue", opts.Continue)
	}
	path := "/v1/shards"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ShardList
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetShard returns the named shard and how many sites are on it.
func (c *Client) GetShard(ctx context.Context, name string) (*ShardResponse, error) {
	var out ShardResponse
	if err := c.do(ctx, http.MethodGet, shardPath(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CordonShard stops placing new sites on the shard.
func (c *Client) CordonShard(ctx context.Context, name string) (*store.Shard, error) {
	return c.shardCall(ctx, shardPath(name)+"/cordon")
}

// UncordonShard lets the shard take new sites again (and stops a drain).
func (c *Client) UncordonShard(ctx context.Context, name string) (*store.Shard, error) {
	return c.shardCall(ctx, shardPath(name)+"/uncordon")
}

// DrainShard cordons the shard and has the leader move its sites away.
func (c *Client) DrainShard(ctx context.Context, name string) (*store.Shard, error) {
	return c.shardCall(ctx, shardPath(name)+"/drain")
}

// DeleteShard removes the record of a shard that holds no sites.
func (c *Client) DeleteShard(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, shardPath(name), nil, nil)
}

// CreateToken creates an API token; the response holds its secret, shown
// only this once.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (*CreateTokenResponse, error) {
	var out CreateTokenResponse
	if err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens returns every token (without secrets).
func (c *Client) ListTokens(ctx context.Context) (*TokenList, error) {
	var out TokenList
	if err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateToken gives the token a new secret; the old one keeps working for
// overlap (0: the server's default).
func (c *Client) RotateToken(ctx context.Context, id string, overlap time.Duration) (*CreateTokenResponse, error) {
	var out CreateTokenResponse
	req := api.RotateTokenRequest{OverlapSeconds: int64(overlap / time.Second)}
	if err := c.do(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/rotate", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteToken revokes the token with that id.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// MoveSite starts moving the named site to the target shard.
func (c *Client) MoveSite(ctx context.Context, name, target string) (*site.Site, error) {
	var out site.Site
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/move", api.MoveSiteRequest{Target: target}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AbortMove rolls back the named site's move (before its switch).
func (c *Client) AbortMove(ctx context.Context, name string) (*site.Site, error) {
	return c.siteCall(ctx, http.MethodPost, sitePath(name)+"/move/abort")
}

// Agent calls (a token of role shard).

// Register registers the token's shard (or updates its registration).
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*store.Shard, error) {
	var out store.Shard
	if err := c.do(ctx, http.MethodPost, "/v1/agent/register", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentCertificate asks for the token's shard's gateway certificate for the
// key of csrPEM (package mtls).
func (c *Client) AgentCertificate(ctx context.Context, csrPEM []byte) (*CertificateResponse, error) {
	var out CertificateResponse
	if err := c.do(ctx, http.MethodPost, "/v1/agent/certificate", api.CertificateRequest{CSR: string(csrPEM)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EdgeCertificate asks for the token's edge's certificate for the key of
// csrPEM, with which it authenticates to shards' gateways.
func (c *Client) EdgeCertificate(ctx context.Context, csrPEM []byte) (*CertificateResponse, error) {
	var out CertificateResponse
	if err := c.do(ctx, http.MethodPost, "/v1/edge/certificate", api.CertificateRequest{CSR: string(csrPEM)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EdgeLogsAddress registers the address where the token's edge serves
// sites' access logs to the control plane (package logmesh).
func (c *Client) EdgeLogsAddress(ctx context.Context, addr string) error {
	return c.do(ctx, http.MethodPut, "/v1/edge/logs-address", api.EdgeLogsAddressRequest{Address: addr}, nil)
}

// AgentMeshCA returns the mesh CA bundle a shard's gateway should trust
// (a cheap check: a changed bundle means a CA rotation's phase changed).
func (c *Client) AgentMeshCA(ctx context.Context) (*MeshBundleResponse, error) {
	var out MeshBundleResponse
	if err := c.do(ctx, http.MethodGet, "/v1/agent/mesh-ca", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EdgeMeshCA returns the mesh CA bundle an edge should trust.
func (c *Client) EdgeMeshCA(ctx context.Context) (*MeshBundleResponse, error) {
	var out MeshBundleResponse
	if err := c.do(ctx, http.MethodGet, "/v1/edge/mesh-ca", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MeshCA returns the mesh CA's rotation state and bundle (platform admins).
func (c *Client) MeshCA(ctx context.Context) (*MeshCAResponse, error) {
	var out MeshCAResponse
	if err := c.do(ctx, http.MethodGet, "/v1/mesh/ca", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateMeshCA does a phase of the mesh CA's rotation (platform admins).
func (c *Client) RotateMeshCA(ctx context.Context, req RotateMeshCARequest) (*MeshCAResponse, error) {
	var out MeshCAResponse
	if err := c.do(ctx, http.MethodPost, "/v1/mesh/ca/rotate", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportShardUsage sends the token's shard's report of its sites' usage
// (POST /v1/agent/usage).
func (c *Client) ReportShardUsage(ctx context.Context, rep *api.ShardUsageReport) (*api.ShardUsageResponse, error) {
	var out api.ShardUsageResponse
	if err := c.do(ctx, http.MethodPost, "/v1/agent/usage", rep, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat reports that the token's shard is alive, with its usage.
func (c *Client) Heartbeat(ctx context.Context, usage store.Usage) error {
	return c.do(ctx, http.MethodPost, "/v1/agent/heartbeat", api.HeartbeatRequest{Usage: usage}, nil)
}

// AgentSites lists every site the token's shard holds, and the revision to
// watch from.
func (c *Client) AgentSites(ctx context.Context) (*WatchSitesResponse, error) {
	var out WatchSitesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/agent/sites", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WatchAgentSites long-polls the changes of the shard's sites after since
// for at most wait (0: the server's default). A 410 (IsExpired) means: list
// again.
func (c *Client) WatchAgentSites(ctx context.Context, since int64, wait time.Duration) (*WatchSitesResponse, error) {
	var out WatchSitesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/agent/sites?"+watchQuery(since, wait), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportStatus reports the status the shard observed for the site with that
// UID, and returns the stored site.
func (c *Client) ReportStatus(ctx context.Context, name, uid string, status site.Status) (*site.Site, error) {
	var out site.Site
	req := api.StatusReport{UID: uid, Status: status}
	if err := c.do(ctx, http.MethodPut, agentSitePath(name)+"/status", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportMove reports the shard's step of the site's move, and returns the
// stored site (its move advanced).
func (c *Client) ReportMove(ctx context.Context, name, uid string, move site.Move) (*site.Site, error) {
	var out site.Site
	req := api.MoveReport{UID: uid, Move: move}
	if err := c.do(ctx, http.MethodPut, agentSitePath(name)+"/move", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Finalize removes the record of a site whose teardown the shard finished.
func (c *Client) Finalize(ctx context.Context, name, uid string) error {
	return c.do(ctx, http.MethodPost, agentSitePath(name)+"/finalize", api.FinalizeRequest{UID: uid}, nil)
}

// Edge calls (a token of role edge, or admin).

// Routes lists every site and shard, and the revision to watch from.
//
// The answer is decoded as it arrives, one site at a time: at 50,000 sites
// the whole document is tens of megabytes that are never held at once.
func (c *Client) Routes(ctx context.Context) (*RoutesResponse, error) {
	var out RoutesResponse
	dec := streamDecoder(func(r io.Reader) error { return decodeRoutes(r, &out) })
	if err := c.do(ctx, http.MethodGet, "/v1/routes", nil, dec); err != nil {
		return nil, err
	}
	return &out, nil
}

// streamDecoder, given to do as its out, decodes a successful answer's
// body itself.
type streamDecoder func(io.Reader) error

// decodeRoutes decodes a RoutesResponse from r, its sites array element
// by element, so that only one site's JSON is buffered at a time (a
// json.Decoder reads a whole value before it decodes it). Keys it does not
// know are skipped, as encoding/json does.
func decodeRoutes(r io.Reader, out *RoutesResponse) error {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch key {
		case "site_count":
			err = dec.Decode(&out.SiteCount)
		case "sites":
			if out.Sites, err = decodeSites(dec, out.SiteCount); err != nil {
				return fmt.Errorf("sites: %w", err)
			}
		case "shards":
			err = dec.Decode(&out.Shards)
		case "removed":
			err = dec.Decode(&out.Removed)
		case "revision":
			err = dec.Decode(&out.Revision)
		case "more":
			err = dec.Decode(&out.More)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if out.Sites == nil {
		out.Sites = []site.Site{}
	}
	return nil
}

// routeChunk is how many sites decodeSites decodes into one chunk when it
// is not told how many to expect.
const routeChunk = 1024

// decodeSites decodes a JSON array of sites (or null) one element at a
// time. With a hint (the list's site_count, sent before the sites) it
// decodes straight into a slice of that capacity, which append grows only
// should more sites come. Without one, into chunks of routeChunk sites
// copied once into a slice of the exact length at the end, which holds
// every site twice for a moment; a slice grown by append alone would
// allocate about four times the final one (a site.Site is 632 bytes;
// 50,000 of them are 32 MB).
func decodeSites(dec *json.Decoder, hint int) ([]site.Site, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("want an array, got %v", tok)
	}
	if hint > 0 {
		out := make([]site.Site, 0, hint)
		for dec.More() {
			out = append(out, site.Site{})
			if err := dec.Decode(&out[len(out)-1]); err != nil {
				return nil, err
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return nil, err
		}
		return out, nil
	}
	var chunks [][]site.Site
	n := 0
	for dec.More() {
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == routeChunk {
			chunks = append(chunks, make([]site.Site, 0, routeChunk))
		}
		c := &chunks[len(chunks)-1]
		*c = append(*c, site.Site{})
		if err := dec.Decode(&(*c)[len(*c)-1]); err != nil {
			return nil, err
		}
		n++
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	out := make([]site.Site, 0, n)
	for i, c := range chunks {
		out = append(out, c...)
		chunks[i] = nil // garbage as soon as copied
	}
	return out, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// WatchRoutes long-polls the changes of sites and shards after since.
func (c *Client) WatchRoutes(ctx context.Context, since int64, wait time.Duration) (*RoutesResponse, error) {
	var out RoutesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/routes?"+watchQuery(since, wait), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func shardPath(name string) string { return "/v1/shards/" + url.PathEscape(name) }

func (c *Client) shardCall(ctx context.Context, path string) (*store.Shard, error) {
	var out store.Shard
	if err := c.do(ctx, http.MethodPost, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func watchQuery(since int64, wait time.Duration) string {
	q := url.Values{}
	q.Set("since", strconv.FormatInt(since, 10))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	return q.Encode()
}

func agentSitePath(name string) string { return "/v1/agent/sites/" + url.PathEscape(name) }
