package edgenode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// An edge on another machine (`aipress edge`) reports what its WAF refused
// through the API with its edge token, as Run wires it (APIReports): the request is
// refused at once, the event reaches the control plane's store, and an
// admin lists it with its suggested exclusion.
func TestRemoteEdgeReportsWAFEvents(t *testing.T) {
	ctx := context.Background()
	st, _ := tokenStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("s1")}))
	defer srv.Close()
	admin := apiclient.New(srv.URL, "admin-secret")
	if _, err := admin.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: "blog.example.com", Title: "Blog", AdminEmail: "me@example.com"}); err != nil {
		t.Fatal(err)
	}

	edgeClient := apiclient.New(srv.URL, "edge-secret")
	reporter := waf.NewReporter(waf.ReporterConfig{Send: APIReports{Client: edgeClient}.WAFEvents})
	fw, err := waf.New(waf.Config{Events: reporter})
	if err != nil {
		t.Fatal(err)
	}
	ed := edge.New(edge.Config{PHPMiddlewares: []edge.Middleware{fw.Middleware()}})
	docroot := t.TempDir()
	if err := os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := edge.Route{Host: "blog.example.com", Site: "blog.example.com", State: edge.Serving, Docroot: docroot,
		Endpoint: "unix:/nonexistent.sock", Options: edge.RouteOptions{WAFMode: site.WAFBlock, WAFParanoia: 1}}
	ed.SetTable(edge.NewTable([]edge.Route{rt}))
	req := httptest.NewRequest("GET", "/?s="+url.QueryEscape("union select tutorial"), nil)
	req.Host = "blog.example.com"
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	ed.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
	if err := reporter.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := admin.ListWAFEvents(ctx, "blog.example.com", apiclient.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("events = %+v, %v", list, err)
	}
	ev := list.Items[0]
	if ev.RuleID != 942190 || ev.RequestID != rec.Header().Get("X-Request-Id") || ev.Suggestion == nil ||
		ev.Suggestion.Command != "aipress site set blog.example.com --waf-exclude 942190:/:s" {
		t.Errorf("event = %+v, suggestion %+v", ev, ev.Suggestion)
	}
	// Admins may report too; a wrong token may not.
	if _, err := apiclient.New(srv.URL, "admin-secret").ReportWAFEvents(ctx, nil); err != nil {
		t.Errorf("admin report: %v", err)
	}
	if _, err := apiclient.New(srv.URL, "wrong").ReportWAFEvents(ctx, nil); err == nil {
		t.Error("a report with a wrong token was accepted")
	}
}

// tokenStore is a control-plane store with the tokens admin-secret
// (admin) and edge-secret (edge), made at now.
func tokenStore(t *testing.T) (store.Store, time.Time) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: sum("admin-secret"), CreatedAt: now},
		{ID: "tok-edge", Name: "edge", Role: store.RoleEdge, Hash: sum("edge-secret"), CreatedAt: now},
	} {
		if err := st.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	return st, now
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
