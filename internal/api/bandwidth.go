package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

// UsageReport is the body of POST /v1/edge/usage: the response body bytes
// an edge sent per site (by name) since its last report, and the site's
// other traffic counts for its charts and usage records (Sites; the bytes
// are Bytes'). ID, when set, names the report among its sender's (at most
// 128 characters; edges send 128 random bits in hex): a report sent again
// with the same ID — the edge did not hear the answer — is counted once.
type UsageReport struct {
	ID    string                       `json:"id,omitempty"`
	Bytes map[string]int64             `json:"bytes"`
	Sites map[string]sitemetrics.Delta `json:"sites,omitempty"`
}

// UsageReportResponse answers POST /v1/edge/usage: the accounting month
// and every site over its plan's bandwidth in it (the edge answers their
// visitors 509 until the next report says otherwise).
type UsageReportResponse struct {
	Month string   `json:"month"`
	Over  []string `json:"over"`
}

// MaxUsageReport bounds the sites of one usage report.
const MaxUsageReport = 100_000

// MaxUsageReportBytes bounds one site's count in one report (1 TB: an
// edge reports every 10 s).
const MaxUsageReportBytes = 1e12

// MaxUsageReportBody bounds the body of one usage report (more than
// MaxUsageReport sites' counts: about 150 bytes each).
const MaxUsageReportBody = 32 << 20

func (s *server) reportUsage(c *call) (response, error) {
	var req UsageReport
	if err := decodeEdgeReport(c, &req); err != nil {
		return response{}, err
	}
	if len(req.Bytes) > MaxUsageReport || len(req.Sites) > MaxUsageReport {
		return response{}, badRequest("a report may carry at most %d sites, got %d and %d", MaxUsageReport, len(req.Bytes), len(req.Sites))
	}
	for name, d := range req.Sites {
		if err := d.Validate(); err != nil {
			return response{}, badRequest("counts of %q: %v", name, err)
		}
	}
	for name, n := range req.Bytes {
		if n > MaxUsageReportBytes {
			// Edges report every few seconds: no real count is near
			// this, and a huge one would stop the site (509) or
			// overflow the month's sum for every edge.
			return response{}, badRequest("%d bytes for %q in one report; at most %d", n, name, int64(MaxUsageReportBytes))
		}
	}
	if len(req.ID) > 128 {
		return response{}, badRequest("report id of %d characters; at most 128", len(req.ID))
	}
	// Report IDs are the sender's: its token names it.
	out, err := IngestReport(c.r.Context(), s.cfg.Store, s.plans(), s.cfg.SiteMetrics, "token:"+c.token.ID, s.cfg.Clock(), &req)
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("%v", err)
	}
	if err != nil {
		return response{}, internal(err)
	}
	// Counts take no revision: nobody is to be woken.
	return response{status: http.StatusOK, body: out, unchanged: true}, nil
}

// decodeEdgeReport decodes an edge's report (usage, probes) into v. An
// edge token only (the routes' permission): its report of every site may
// be larger than other bodies (MaxUsageReportBody).
func decodeEdgeReport(c *call, v any) error {
	c.r.Body = http.MaxBytesReader(nil, c.r.Body, MaxUsageReportBody)
	dec := json.NewDecoder(c.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// IngestUsage adds an edge's counts to this month's (now's, UTC) and
// returns the sites over their plan's bandwidth: those whose count is
// beyond their plan's bandwidth_gb (plans without a limit never are;
// sites no longer stored are left out). The in-process edge of `aipress
// up` calls it directly; remote edges through POST /v1/edge/usage.
func IngestUsage(ctx context.Context, st store.Store, ps *plans.Set, now time.Time, bytes map[string]int64) (*UsageReportResponse, error) {
	return IngestReport(ctx, st, ps, nil, "", now, &UsageReport{Bytes: bytes})
}

// IngestReport is IngestUsage of a whole report: it also adds the sites'
// traffic to their hourly usage records (store.AddUsage, with the bytes,
// in the same transaction), and to sm (rep.Sites, with their bytes) when
// sm is not nil. source names the sender (its token) for rep.ID: a report
// whose (source, ID) was ingested before adds nothing anywhere. The counts
// must be valid (sitemetrics.Delta.Validate). Counts of names that are no
// stored site are dropped (they would only grow the tables and the time
// series). A site's record is dated by the hour the report arrives (UTC)
// and names the shard the site is on then.
func IngestReport(ctx context.Context, st store.Store, ps *plans.Set, sm SiteMetrics, source string, now time.Time, rep *UsageReport) (*UsageReportResponse, error) {
	month := plans.Month(now)
	shardOf := map[string]*string{} // nil: no such site
	lookup := func(name string) (*string, error) {
		if sh, seen := shardOf[name]; seen {
			return sh, nil
		}
		s, err := st.GetSite(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get site %q: %w", name, err)
		}
		if err == nil {
			shardOf[name] = &s.Status.Shard
		} else {
			shardOf[name] = nil
		}
		return shardOf[name], nil
	}
	usage := make(map[string]store.UsageDelta, len(rep.Bytes))
	for name, n := range rep.Bytes {
		if sh, err := lookup(name); err != nil {
			return nil, err
		} else if sh != nil {
			usage[name] = store.UsageDelta{Shard: *sh, BytesOut: n} // negative: ErrInvalid
		}
	}
	for name, d := range rep.Sites {
		sh, err := lookup(name)
		if err != nil {
			return nil, err
		}
		if sh == nil {
			continue
		}
		u := usage[name]
		u.Shard, u.Requests, u.CacheHits, u.PHPMicros = *sh, d.Requests, d.CacheHits, d.PHPMicros
		usage[name] = u
	}
	for name, u := range usage {
		if u == (store.UsageDelta{Shard: u.Shard}) {
			delete(usage, name)
		}
	}
	applied := true
	if len(usage) > 0 {
		var err error
		applied, err = st.AddUsage(ctx, store.UsageKey{Source: source, ID: rep.ID}, now, usage)
		if err != nil {
			return nil, fmt.Errorf("add usage: %w", err)
		}
	}
	// The charts' counts, once the report was taken (a refused or
	// repeated one adds nothing anywhere).
	if sm != nil && applied {
		deltas := make(map[string]sitemetrics.Delta, len(rep.Sites))
		for name, d := range rep.Sites {
			if shardOf[name] != nil {
				deltas[name] = d
			}
		}
		for name, u := range usage {
			d := deltas[name]
			d.Bytes = u.BytesOut
			deltas[name] = d
		}
		if len(deltas) > 0 {
			sm.Record(deltas)
		}
	}
	out := &UsageReportResponse{Month: month, Over: []string{}}
	// Only sites beyond the smallest limit can be over.
	var least int64
	for _, p := range ps.All() {
		if b := p.BandwidthBytes(); b > 0 && (least == 0 || b < least) {
			least = b
		}
	}
	if least == 0 {
		return out, nil
	}
	used, err := st.ListBandwidth(ctx, store.BandwidthListOptions{Month: month, MinBytes: least})
	if err != nil {
		return nil, fmt.Errorf("list bandwidth: %w", err)
	}
	for name, n := range used {
		s, err := st.GetSite(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get site %q: %w", name, err)
		}
		p, ok := ps.Get(s.Spec.Plan)
		if !ok {
			p = ps.Default()
		}
		if limit := p.BandwidthBytes(); limit > 0 && n > limit {
			out.Over = append(out.Over, name)
		}
	}
	slices.Sort(out.Over)
	return out, nil
}
