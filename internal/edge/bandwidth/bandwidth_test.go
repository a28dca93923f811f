package bandwidth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// The plans of the test: small allows 10,000 bytes a month, big 1 GB.
const testPlans = `default: small
plans:
- {name: small, max_sites: 0, disk_mb: 64, db_connections: 3, php: {max_children: 1, memory_limit_mb: 64, upload_max_mb: 8, idle_timeout_seconds: 5, request_timeout_seconds: 30}, backup: {every_hours: -1}, bandwidth_gb: 0.00001}
- {name: big, max_sites: 0, disk_mb: 64, db_connections: 3, php: {max_children: 1, memory_limit_mb: 64, upload_max_mb: 8, idle_timeout_seconds: 5, request_timeout_seconds: 30}, backup: {every_hours: -1}, bandwidth_gb: 1}
`

// TestBandwidthEnforced: a real edge serving two sites' static files counts
// what each sends; the meter reports it to the control plane's IngestUsage
// on a real store; the site past its plan's bandwidth then gets 509 with a
// page saying why and a Retry-After to the next month, the other site
// serves on, and moving the site to a larger plan lets it serve again at
// the next report. A failed report keeps its counts.
func TestBandwidthEnforced(t *testing.T) {
	ctx := t.Context()
	ps, err := plans.Parse([]byte(testPlans), "test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	var routes []edge.Route
	for _, name := range []string{"hungry.example", "quiet.example"} {
		if err := st.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: now},
			Spec: site.Spec{Domain: name, Title: name, Plan: "small"}}); err != nil {
			t.Fatal(err)
		}
		docroot := t.TempDir()
		if err := os.WriteFile(filepath.Join(docroot, "file.txt"), []byte(strings.Repeat("x", 4000)), 0o644); err != nil {
			t.Fatal(err)
		}
		routes = append(routes, edge.Route{Host: name, Site: name, Docroot: docroot, Endpoint: "unix:/nonexistent", State: edge.Serving})
	}

	failNext := false
	meter := bandwidth.New(bandwidth.Config{Clock: func() time.Time { return now },
		Send: func(ctx context.Context, b map[string]int64) ([]string, error) {
			if failNext {
				failNext = false
				return nil, errors.New("control plane unreachable")
			}
			r, err := api.IngestUsage(ctx, st, ps, now, b)
			if err != nil {
				return nil, err
			}
			return r.Over, nil
		}})
	ed := edge.New(edge.Config{Middlewares: []edge.Middleware{meter.Middleware()}, Observe: meter.Observe})
	ed.SetTable(edge.NewTable(routes))
	srv := httptest.NewServer(ed)
	t.Cleanup(srv.Close)
	get := func(host string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/file.txt", nil)
		req.Host = host
		// The bytes counted are the bytes sent: identity, or the edge
		// would send (and count) its stored gzip copy of the file.
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	usage := func(name string) int64 {
		t.Helper()
		u, err := st.ListBandwidth(ctx, storeMonth(now, name))
		if err != nil {
			t.Fatal(err)
		}
		return u[name]
	}

	for range 2 {
		if code, _, _ := get("hungry.example"); code != 200 {
			t.Fatalf("within the limit: %d", code)
		}
	}
	get("quiet.example")
	failNext = true
	if err := meter.Flush(ctx); err == nil {
		t.Fatal("the failing report did not fail")
	}
	if u := usage("hungry.example"); u != 0 {
		t.Fatalf("a failed report stored %d bytes", u)
	}
	get("hungry.example") // 12,000 bytes: over the 10,000
	if err := meter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if u, q := usage("hungry.example"), usage("quiet.example"); u != 12000 || q != 4000 {
		t.Errorf("counted %d and %d bytes, want 12000 and 4000 (a failed report's counts kept)", u, q)
	}
	code, hdr, body := get("hungry.example")
	if code != bandwidth.StatusBandwidthExceeded || !strings.Contains(body, "used all the bandwidth its plan includes this month") {
		t.Errorf("over the limit: %d %.300s; want 509 saying why", code, body)
	}
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra != 3601 {
		t.Errorf("Retry-After = %q, want 3601 (the next month, in an hour)", hdr.Get("Retry-After"))
	}
	if code, _, _ := get("quiet.example"); code != 200 {
		t.Errorf("the other site: %d", code)
	}

	// A larger plan: served again once the next report says so.
	big, _ := ps.Get("big")
	if _, err := st.UpdateSite(ctx, "hungry.example", func(s *site.Site) error { big.Apply(&s.Spec); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := meter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get("hungry.example"); code != 200 {
		t.Errorf("after moving to a larger plan: %d", code)
	}
	// A new month starts from nothing.
	if r, err := api.IngestUsage(ctx, st, ps, now.Add(2*time.Hour), map[string]int64{"quiet.example": 9000}); err != nil || r.Month != "2027-01" || len(r.Over) != 0 {
		t.Errorf("next month: %+v %v", r, err)
	}
}

func storeMonth(now time.Time, name string) store.BandwidthListOptions {
	return store.BandwidthListOptions{Month: plans.Month(now), Sites: []string{name}}
}
