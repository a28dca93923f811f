package edgenode

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

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
	p := uptime.New(uptime.Config{Handler: ed, Targets: func() []uptime.Target { return probeTargets(ed.Table()) },
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
