package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// ShardUsageReport is the body of POST /v1/agent/usage: what a shard
// measured of its sites (by name) since its last report, for their hourly
// usage records. ID, when set, names the report among the shard's (at most
// 128 characters): a report sent again with the same ID is counted once.
type ShardUsageReport struct {
	ID    string                    `json:"id,omitempty"`
	Sites map[string]SiteShardUsage `json:"sites"`
}

// SiteShardUsage is one site's part of a ShardUsageReport: the statements
// its database account ran since the shard's last report (a counter), and
// the sizes of its database (data and index bytes, information_schema)
// and of its own files as measured now (gauges; absent: not measured).
type SiteShardUsage struct {
	DBQueries  int64  `json:"db_queries,omitempty"`
	DBBytes    *int64 `json:"db_bytes,omitempty"`
	FilesBytes *int64 `json:"files_bytes,omitempty"`
}

// ShardUsageResponse answers POST /v1/agent/usage: how many sites' figures
// were recorded, and the sites whose figures were ignored because they are
// not (or no longer) on the reporting shard, or no stored site at all.
type ShardUsageResponse struct {
	Recorded int      `json:"recorded"`
	Ignored  []string `json:"ignored"`
}

// Bounds of a shard's usage report: its sites (a shard holds at most
// MaxShardCapacity), one report's statements per site and one size.
const (
	MaxShardUsageQueries = 1e11
	MaxShardUsageBytes   = 1 << 50 // 1 PiB
)

// validate checks a report's bounds.
func (rep *ShardUsageReport) validate() error {
	if len(rep.ID) > 128 {
		return badRequest("report id of %d characters; at most 128", len(rep.ID))
	}
	if len(rep.Sites) > MaxShardCapacity {
		return badRequest("a report may carry at most %d sites, got %d", MaxShardCapacity, len(rep.Sites))
	}
	for name, u := range rep.Sites {
		if u.DBQueries < 0 || u.DBQueries > MaxShardUsageQueries {
			return badRequest("%d database queries for %q in one report; want 0 to %d", u.DBQueries, name, int64(MaxShardUsageQueries))
		}
		for _, g := range []*int64{u.DBBytes, u.FilesBytes} {
			if g != nil && (*g < 0 || *g > MaxShardUsageBytes) {
				return badRequest("a size of %d bytes for %q; want 0 to %d", *g, name, int64(MaxShardUsageBytes))
			}
		}
	}
	return nil
}

func (s *server) agentUsage(c *call) (response, error) {
	var req ShardUsageReport
	if err := decodeEdgeReport(c, &req); err != nil {
		return response{}, err
	}
	if err := req.validate(); err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	c.target = shard
	out, err := IngestShardUsage(c.r.Context(), s.cfg.Store, shard, s.cfg.Clock(), &req)
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("%v", err)
	}
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, body: out, unchanged: true}, nil
}

// IngestShardUsage records a shard's report of its sites' usage in their
// hourly usage records (store.AddUsage, keyed "shard:"+shard and rep.ID,
// so that a report sent again is counted once), dated by the hour it
// arrives (UTC). A shard is trusted with its own sites only: figures of a
// site that is not on shard now (Status.Shard), or is no stored site, are
// ignored and listed in the answer. Remote shards report through POST
// /v1/agent/usage; the shards of `aipress up` call it directly.
func IngestShardUsage(ctx context.Context, st store.Store, shard string, now time.Time, rep *ShardUsageReport) (*ShardUsageResponse, error) {
	out := &ShardUsageResponse{Ignored: []string{}}
	if shard == "" {
		return nil, fmt.Errorf("%w: a usage report from no shard", store.ErrInvalid)
	}
	mine := map[string]bool{}
	opts := store.ListOptions{Shard: shard, Limit: store.MaxLimit}
	for {
		page, err := st.ListSites(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list sites of shard %q: %w", shard, err)
		}
		for i := range page.Items {
			if page.Items[i].Status.Shard == shard { // not a site moving in
				mine[page.Items[i].Metadata.Name] = true
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	deltas := make(map[string]store.UsageDelta, len(rep.Sites))
	for name, u := range rep.Sites {
		if !mine[name] {
			out.Ignored = append(out.Ignored, name)
			continue
		}
		deltas[name] = store.UsageDelta{Shard: shard, DBQueries: u.DBQueries, DBBytes: u.DBBytes, FilesBytes: u.FilesBytes}
	}
	slices.Sort(out.Ignored)
	if len(deltas) == 0 {
		return out, nil
	}
	applied, err := st.AddUsage(ctx, store.UsageKey{Source: "shard:" + shard, ID: rep.ID}, now, deltas)
	if err != nil {
		return nil, fmt.Errorf("add usage: %w", err)
	}
	if applied {
		out.Recorded = len(deltas)
	}
	return out, nil
}
