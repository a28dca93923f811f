package edgenode

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// lossyReports passes reports to the real API and, when lose says so,
// reports a failure although the API took the report (the answer was
// lost) or fails before sending (the API never saw it).
type lossyReports struct {
	Reports
	lose func(call int) (afterSending, beforeSending bool)
	call int
}

func (l *lossyReports) Usage(ctx context.Context, rep *api.UsageReport) ([]string, error) {
	l.call++
	after, before := l.lose(l.call)
	if before {
		return nil, errors.New("connection refused")
	}
	over, err := l.Reports.Usage(ctx, rep)
	if err == nil && after {
		return nil, errors.New("connection reset (the answer was lost)")
	}
	return over, err
}

// TestUsageReportRetried: a report whose answer is lost is sent again
// whole, with its ID, and counted once; counts made meanwhile wait for the
// next report; a report that never arrived is sent too. The usage records
// and the bandwidth show every request and byte exactly once.
func TestUsageReportRetried(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	if err := st.CreateToken(ctx, store.Token{ID: "tok-edge", Name: "edge", Role: store.RoleEdge, Hash: sum("edge-secret"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "blog.example.com", UID: "uid-1", CreatedAt: now},
		Spec: site.Spec{Domain: "blog.example.com"}, Status: site.Status{Shard: "s1"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("s1")}))
	defer srv.Close()
	// Calls: 1 taken but its answer lost; 2 (the retry of 1) never sent;
	// 3 (the retry of 1 again) fine; 4 (the new report) fine; 5 lost
	// after sending; 6 (retry) fine; 7 fine.
	reports := &lossyReports{Reports: APIReports{Client: apiclient.New(srv.URL, "edge-secret")}, lose: func(call int) (bool, bool) {
		return call == 1 || call == 5, call == 2
	}}
	traffic := sitemetrics.NewRecorder()
	sender := &usageSender{reports: reports, traffic: traffic, log: slog.New(slog.DiscardHandler)}
	meter := bandwidth.New(bandwidth.Config{Send: sender.send})
	var requests, bytes int64
	observe := func(n int64) {
		for range n {
			traffic.Observe("blog.example.com", sitemetrics.Observation{Status: 200, Cache: "HIT"})
			meter.Observe(nil, &edge.RequestInfo{Site: "blog.example.com", Bytes: 100})
			requests++
			bytes += 100
		}
	}
	for i, n := range []int64{3, 5, 7, 11, 13} {
		observe(n)
		if err := meter.Flush(ctx); err != nil && i != 1 {
			t.Fatalf("flush %d: %v", i, err)
		}
	}
	if reports.call != 7 {
		t.Errorf("%d calls, want 7", reports.call)
	}
	recs, err := st.ListUsage(ctx, store.UsageListOptions{Period: store.PeriodMonth, From: now.Add(-time.Hour), To: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var gotReq, gotBytes, gotHits int64
	for _, r := range recs {
		gotReq, gotBytes, gotHits = gotReq+r.Requests, gotBytes+r.BytesOut, gotHits+r.CacheHits
	}
	if gotReq != requests || gotBytes != bytes || gotHits != requests {
		t.Errorf("usage: %d requests, %d bytes, %d hits; want %d, %d, %d", gotReq, gotBytes, gotHits, requests, bytes, requests)
	}
	bw, err := st.ListBandwidth(ctx, store.BandwidthListOptions{Month: now.Format("2006-01")})
	if err != nil || bw["blog.example.com"] != bytes {
		t.Errorf("bandwidth %v, %v; want %d", bw, err, bytes)
	}
}
