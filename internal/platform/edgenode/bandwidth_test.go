package edgenode

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/plans"
)

// An edge on another machine reports its bandwidth through the API with
// its edge token, as Run wires it (APIReports) (POST /v1/edge/usage), and refuses
// the site with 509 once the answer says it is over its plan's bandwidth.
func TestRemoteEdgeReportsBandwidth(t *testing.T) {
	ctx := context.Background()
	st, _ := tokenStore(t)
	ps, err := plans.Parse([]byte(`default: small
plans:
- {name: small, max_sites: 0, disk_mb: 64, db_connections: 3, php: {max_children: 1, memory_limit_mb: 64, upload_max_mb: 8, idle_timeout_seconds: 5, request_timeout_seconds: 30}, backup: {every_hours: -1}, bandwidth_gb: 0.000005}
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("s1"), Plans: ps}))
	defer srv.Close()
	if _, err := apiclient.New(srv.URL, "admin-secret").CreateSite(ctx, apiclient.CreateSiteRequest{Domain: "blog.example.com", Title: "Blog", AdminEmail: "me@example.com"}); err != nil {
		t.Fatal(err)
	}

	edgeClient := apiclient.New(srv.URL, "edge-secret")
	reports := APIReports{Client: edgeClient}
	meter := bandwidth.New(bandwidth.Config{Send: func(ctx context.Context, b map[string]int64) ([]string, error) {
		return reports.Usage(ctx, &api.UsageReport{Bytes: b})
	}})
	ed := edge.New(edge.Config{Middlewares: []edge.Middleware{meter.Middleware()}, Observe: meter.Observe})
	docroot := t.TempDir()
	if err := os.WriteFile(filepath.Join(docroot, "big.txt"), []byte(strings.Repeat("x", 6000)), 0o644); err != nil {
		t.Fatal(err)
	}
	ed.SetTable(edge.NewTable([]edge.Route{{Host: "blog.example.com", Site: "blog.example.com", State: edge.Serving, Docroot: docroot, Endpoint: "unix:/nonexistent.sock"}}))
	get := func() int {
		req := httptest.NewRequest("GET", "/big.txt", nil)
		req.Host = "blog.example.com"
		rec := httptest.NewRecorder()
		ed.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if err := meter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if code := get(); code != bandwidth.StatusBandwidthExceeded {
		t.Errorf("after 6000 of 5000 bytes: %d, want 509", code)
	}
}
