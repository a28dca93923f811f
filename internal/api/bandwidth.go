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
// other traffic counts for its charts (Sites; the bytes are Bytes').
type UsageReport struct {
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
	out, err := IngestReport(c.r.Context(), s.cfg.Store, s.plans(), s.cfg.SiteMetrics, s.cfg.Clock(), &req)
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
	return IngestReport(ctx, st, ps, nil, now, &UsageReport{Bytes: bytes})
}

// IngestReport is IngestUsage of a whole report: it also adds the sites'
// traffic (rep.Sites, with their bytes) to sm, when sm is not nil. The
// counts must be valid (sitemetrics.Delta.Validate). Counts of names that
// are no stored site are dropped (they would only grow the table and the
// time series).
func IngestReport(ctx context.Context, st store.Store, ps *plans.Set, sm SiteMetrics, now time.Time, rep *UsageReport) (*UsageReportResponse, error) {
	month := plans.Month(now)
	exists := map[string]bool{}
	isSite := func(name string) (bool, error) {
		if ok, seen := exists[name]; seen {
			return ok, nil
		}
		_, err := st.GetSite(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Errorf("get site %q: %w", name, err)
		}
		exists[name] = err == nil
		return err == nil, nil
	}
	known := make(map[string]int64, len(rep.Bytes))
	for name, n := range rep.Bytes {
		if ok, err := isSite(name); err != nil {
			return nil, err
		} else if ok {
			known[name] = n
		}
	}
	var deltas map[string]sitemetrics.Delta
	if sm != nil {
		deltas = make(map[string]sitemetrics.Delta, len(rep.Sites))
		for name, d := range rep.Sites {
			if ok, err := isSite(name); err != nil {
				return nil, err
			} else if ok {
				deltas[name] = d
			}
		}
		for name, n := range known {
			d := deltas[name]
			d.Bytes = max(n, 0)
			deltas[name] = d
		}
	}
	if len(known) > 0 {
		if err := st.AddBandwidth(ctx, month, known); err != nil {
			return nil, fmt.Errorf("add bandwidth: %w", err)
		}
	}
	// The charts' counts, once the report was taken (a refused one adds
	// nothing anywhere).
	if len(deltas) > 0 {
		sm.Record(deltas)
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
