package edgenode

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/uptime"
)

// TestProbesThroughTheEdge: the probes check the placed sites of the
// routing table (not one still unavailable) through the edge's handler,
// see the suspended one down and the serving one up, and count for none
// of the observers (metrics, bandwidth, traffic) that visitors count for.
func TestProbesThroughTheEdge(t *testing.T) {
	observed := 0
	php := func(edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, _ *http.Request, _ *edge.Route) error {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<link rel="stylesheet" href="/wp-includes/css/x.css">`)
			return nil
		}
	}
	ed := edge.New(edge.Config{Middlewares: []edge.Middleware{php},
		Observe: observeVisitors(func(*http.Request, *edge.RequestInfo) { observed++ })})
	ed.SetTable(edge.NewTable([]edge.Route{
		{Host: "up.test", Site: "up.test", State: edge.Serving, Docroot: "/nonexistent", Endpoint: "unix:/nonexistent.sock"},
		{Host: "off.test", Site: "off.test", State: edge.Suspended},
		{Host: "new.test", Site: "new.test", State: edge.Unavailable},
	}))
	if got, want := probeTargets(ed.Table()), []uptime.Target{{Site: "up.test", Host: "up.test"}, {Site: "off.test", Host: "off.test"}}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	var sent []uptime.Result
	// A round spreads its probes over the interval: a short one.
	p := uptime.New(uptime.Config{Handler: ed, Interval: 10 * time.Millisecond, Targets: func() []uptime.Target { return probeTargets(ed.Table()) },
		Send: func(_ context.Context, rs []uptime.Result) error { sent = append(sent, rs...); return nil }})
	for range uptime.DefaultFailures {
		if err := p.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	state := map[string]string{}
	for _, r := range sent {
		state[r.Site] = map[bool]string{true: "up", false: "down: " + r.Cause}[r.Up]
	}
	if state["up.test"] != "up" || state["off.test"] != "down: HTTP 503" || len(state) != 2 {
		t.Errorf("reported %v", state)
	}
	if observed != 0 {
		t.Errorf("probes observed %d times, want none", observed)
	}
	req := httptest.NewRequest("GET", "http://up.test/", nil)
	ed.ServeHTTP(httptest.NewRecorder(), req)
	if observed != 1 {
		t.Errorf("a visitor observed %d times, want 1", observed)
	}
}

// TestRemoteEdgeReportsProbes: an `aipress edge` sends its probes'
// results to the control plane's API with its edge token
// (APIReports.Probes): a down site gets an incident, closed when the
// site is reported up; the site's readers list it.
func TestRemoteEdgeReportsProbes(t *testing.T) {
	ctx := t.Context()
	st, now := tokenStore(t)
	clock := now
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("s1"), Clock: func() time.Time { return clock }}))
	defer srv.Close()
	admin := apiclient.New(srv.URL, "admin-secret")
	if _, err := admin.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: "blog.example.com", Title: "Blog", AdminEmail: "me@example.com"}); err != nil {
		t.Fatal(err)
	}
	reports := APIReports{Client: apiclient.New(srv.URL, "edge-secret")}
	down := now.Add(time.Minute)
	clock = now.Add(3 * time.Minute)
	if err := reports.Probes(ctx, []uptime.Result{{Site: "blog.example.com", At: down, Cause: "HTTP 502"}}); err != nil {
		t.Fatal(err)
	}
	if err := reports.Probes(ctx, []uptime.Result{{Site: "blog.example.com", Up: true, At: clock}}); err != nil {
		t.Fatal(err)
	}
	list, err := admin.Incidents(ctx, "blog.example.com", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || !list.Items[0].Started.Equal(down) || list.Items[0].Ended == nil || !list.Items[0].Ended.Equal(clock) || list.Items[0].Cause != "HTTP 502" {
		t.Errorf("incidents = %+v", list.Items)
	}
}
