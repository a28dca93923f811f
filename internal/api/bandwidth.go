package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/store"
)

// UsageReport is the body of POST /v1/edge/usage: the response body bytes
// an edge sent per site (by name) since its last report.
type UsageReport struct {
	Bytes map[string]int64 `json:"bytes"`
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

func (s *server) reportUsage(c *call) (response, error) {
	var req UsageReport
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if len(req.Bytes) > MaxUsageReport {
		return response{}, badRequest("a report may carry at most %d sites, got %d", MaxUsageReport, len(req.Bytes))
	}
	for name, n := range req.Bytes {
		if n > MaxUsageReportBytes {
			// Edges report every few seconds: no real count is near
			// this, and a huge one would stop the site (509) or
			// overflow the month's sum for every edge.
			return response{}, badRequest("%d bytes for %q in one report; at most %d", n, name, int64(MaxUsageReportBytes))
		}
	}
	out, err := IngestUsage(c.r.Context(), s.cfg.Store, s.plans(), s.cfg.Clock(), req.Bytes)
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("%v", err)
	}
	if err != nil {
		return response{}, internal(err)
	}
	// Counts take no revision: nobody is to be woken.
	return response{status: http.StatusOK, body: out, unchanged: true}, nil
}

// IngestUsage adds an edge's counts to this month's (now's, UTC) and
// returns the sites over their plan's bandwidth: those whose count is
// beyond their plan's bandwidth_gb (plans without a limit never are;
// sites no longer stored are left out). The in-process edge of `aipress
// up` calls it directly; remote edges through POST /v1/edge/usage.
func IngestUsage(ctx context.Context, st store.Store, ps *plans.Set, now time.Time, bytes map[string]int64) (*UsageReportResponse, error) {
	month := plans.Month(now)
	// Counts of names that are no site are dropped: they would only
	// grow the table.
	known := make(map[string]int64, len(bytes))
	for name, n := range bytes {
		if _, err := st.GetSite(ctx, name); err == nil {
			known[name] = n
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get site %q: %w", name, err)
		}
	}
	if len(known) > 0 {
		if err := st.AddBandwidth(ctx, month, known); err != nil {
			return nil, fmt.Errorf("add bandwidth: %w", err)
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
