package api

import (
	"encoding/json"
	"io"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
)

// uptimeFixture is the matrix fixture plus a site in each organisation
// created before December 2024 (old.acme.test on basic, old.globex.test
// on pro), with an hour-long incident of old.acme.test on 10 December.
func uptimeFixture(t *testing.T) *matrixFixture {
	t.Helper()
	f := newMatrixFixture(t)
	ctx := t.Context()
	created := time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []struct{ name, org, plan string }{{"old.acme.test", "acme", "basic"}, {"old.globex.test", "globex", "pro"}} {
		if err := f.env.store.CreateSite(ctx, &site.Site{
			Metadata: site.Metadata{Name: s.name, UID: "uid-" + s.name, Org: s.org, CreatedAt: created},
			Spec:     site.Spec{Domain: s.name, Plan: s.plan},
		}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2024, 12, 10, 0, 0, 0, 0, time.UTC)
	if _, _, err := f.env.store.OpenIncident(ctx, "old.acme.test", start, "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.store.CloseIncident(ctx, "old.acme.test", start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *matrixFixture) raw(t *testing.T, method, path, caller string, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+f.secrets[caller])
	}
	rec := httptest.NewRecorder()
	f.env.handler.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// TestSLAReportScoped: the report of December 2024 (31 days) counts the
// hour of old.acme.test's incident exactly, and shows each caller only
// the sites it may read.
func TestSLAReportScoped(t *testing.T) {
	f := uptimeFixture(t)
	report := func(caller, query string) (int, *uptime.Report) {
		t.Helper()
		code, body := f.raw(t, "GET", "/v1/sla?"+query, caller, "")
		var rep uptime.Report
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatal(err)
			}
		}
		return code, &rep
	}
	names := func(rep *uptime.Report) []string {
		out := []string{}
		for _, s := range rep.Sites {
			out = append(out, s.Site)
		}
		return out
	}
	for _, tc := range []struct {
		caller, query string
		code          int
		sites         string
	}{
		// acme.test and globex.test were created after December.
		{"admin", "month=2024-12", 200, "old.acme.test old.globex.test"},
		{"viewer", "month=2024-12", 200, "old.acme.test old.globex.test"},
		{"owner", "month=2024-12", 200, "old.acme.test"},
		{"devtoken", "month=2024-12", 200, "old.acme.test"},
		{"billing", "month=2024-12", 200, ""},
		{"owner", "month=2024-12&site=old.acme.test", 200, "old.acme.test"},
		{"owner", "month=2024-12&site=old.globex.test", 404, ""},
		{"owner", "month=2024-12&org=globex", 404, ""},
		{"admin", "month=2024-12&org=globex", 200, "old.globex.test"},
		{"admin", "month=2025-02", 400, ""},
		{"admin", "month=2024-13", 400, ""},
		{"edge", "month=2024-12", 403, ""},
	} {
		code, rep := report(tc.caller, tc.query)
		if code != tc.code || (code == 200 && strings.Join(names(rep), " ") != tc.sites) {
			t.Errorf("%s: GET /v1/sla?%s = %d %v, want %d %q", tc.caller, tc.query, code, names(rep), tc.code, tc.sites)
		}
	}
	_, rep := report("owner", "month=2024-12")
	if len(rep.Sites) != 1 || !rep.Complete {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Sites[0]
	// 31 days = 2,678,400 s; an hour down: 99.865591…% < 99.9 (2,678.4 s allowed).
	want := 100 * (2678400.0 - 3600) / 2678400
	if s.MeasuredSeconds != 2678400 || s.DowntimeSeconds != 3600 || math.Abs(s.AvailabilityPercent-want) > 1e-9 ||
		s.TargetPercent != 99.9 || math.Abs(s.AllowedDowntimeSeconds-2678.4) > 1e-9 || s.Met || s.Incidents != 1 {
		t.Errorf("old.acme.test's December = %+v, want availability %v", s, want)
	}
	if len(rep.Plans) != 1 || rep.Plans[0].Plan != "basic" || rep.Plans[0].Sites != 1 || rep.Plans[0].SitesMet != 0 {
		t.Errorf("plans = %+v", rep.Plans)
	}
	// The site's incidents, to its readers only.
	code, m, _ := f.env.do(t, "GET", "/v1/sites/old.acme.test/incidents", f.secrets["orgviewer"], nil)
	if items, _ := m["items"].([]any); code != 200 || len(items) != 1 {
		t.Errorf("incidents = %d %v", code, m)
	}
	if code, _, _ := f.env.do(t, "GET", "/v1/sites/old.acme.test/incidents", f.secrets["billing"], nil); code != 403 {
		t.Errorf("incidents as billing = %d, want 403", code)
	}
}

// TestProbeReport: an edge's report opens an incident of a site seen
// down (once, however often it is sent), drops unknown names, and closes
// the incident when the site is seen up.
func TestProbeReport(t *testing.T) {
	f := uptimeFixture(t)
	at := testNow.Add(-2 * time.Minute)
	send := func(caller string, results ...uptime.Result) (int, uptime.Recorded) {
		t.Helper()
		b, _ := json.Marshal(ProbeReport{Results: results})
		code, body := f.raw(t, "POST", "/v1/edge/probes", caller, string(b))
		var out uptime.Recorded
		_ = json.Unmarshal([]byte(body), &out)
		return code, out
	}
	down := uptime.Result{Site: "acme.test", At: at, Cause: "HTTP 503"}
	for i := range 2 {
		code, out := send("edge", down, uptime.Result{Site: "nosuch.test", At: at, Cause: "timeout"}, uptime.Result{Site: "globex.test", Up: true, At: at})
		if code != 200 || out.Opened != 1-i || out.Closed != 0 {
			t.Errorf("down report %d = %d %+v", i, code, out)
		}
	}
	if code, _ := send("owner", down); code != 403 {
		t.Errorf("report by an owner = %d, want 403", code)
	}
	if code, _ := send("edge", uptime.Result{Site: "acme.test"}); code != 400 {
		t.Errorf("report without a time = %d, want 400", code)
	}
	// An edge clock ahead of the control plane's: closed at now.
	if code, out := send("edge", uptime.Result{Site: "acme.test", Up: true, At: testNow.Add(time.Hour)}); code != 200 || out.Closed != 1 {
		t.Errorf("up report = %d %+v", code, out)
	}
	ins, err := f.env.store.ListIncidents(t.Context(), store.IncidentListOptions{Sites: []string{"acme.test", "nosuch.test", "globex.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || !ins[0].Started.Equal(at) || ins[0].Ended == nil || !ins[0].Ended.Equal(testNow) || ins[0].Cause != "HTTP 503" {
		t.Errorf("incidents = %+v", ins)
	}
}

// TestStatusPageOptIn: a site's public status page is a 404 until its
// owner publishes it, shows only that site, is a 404 again once
// withdrawn and for a site re-created under the name; the platform's
// page names no site.
func TestStatusPageOptIn(t *testing.T) {
	f := uptimeFixture(t)
	const page = "/status/old.acme.test"
	if code, body := f.raw(t, "GET", page, "", ""); code != 404 {
		t.Fatalf("unpublished page = %d\n%s", code, body)
	}
	if code, body := f.raw(t, "GET", "/status/nosuch.test", "", ""); code != 404 {
		t.Fatalf("page of no site = %d\n%s", code, body)
	}
	if code, body := f.raw(t, "PUT", "/v1/sites/old.acme.test/status-page", "orgviewer", `{"public": true}`); code != 403 {
		t.Fatalf("publish as a viewer = %d %s", code, body)
	}
	code, body := f.raw(t, "PUT", "/v1/sites/old.acme.test/status-page", "owner", `{"public": true}`)
	if code != 200 || !strings.Contains(body, `"/status/old.acme.test"`) {
		t.Fatalf("publish = %d %s", code, body)
	}
	code, body = f.raw(t, "GET", page, "", "")
	if code != 200 || !strings.Contains(body, "old.acme.test") || !strings.Contains(body, "HTTP 503") || strings.Contains(body, "globex") {
		t.Fatalf("published page = %d\n%s", code, body)
	}
	if code, m, _ := f.env.do(t, "GET", "/v1/sites/old.acme.test/status-page", f.secrets["orgviewer"], nil); code != 200 || m["public"] != true {
		t.Errorf("setting = %d %v", code, m)
	}
	code, body = f.raw(t, "GET", "/status", "", "")
	if code != 200 || strings.Contains(body, ".test") || !strings.Contains(body, "Platform status") {
		t.Fatalf("platform page = %d\n%s", code, body)
	}
	if code, _ := f.raw(t, "PUT", "/v1/sites/old.acme.test/status-page", "developer", `{"public": false}`); code != 200 {
		t.Fatalf("withdraw = %d", code)
	}
	if code, _ := f.raw(t, "GET", page, "", ""); code != 404 {
		t.Fatalf("withdrawn page = %d", code)
	}
	// Published again, then the site is re-created under its name: the
	// new one starts private.
	if code, _ := f.raw(t, "PUT", "/v1/sites/old.acme.test/status-page", "owner", `{"public": true}`); code != 200 {
		t.Fatal(code)
	}
	ctx := t.Context()
	if err := f.env.store.DeleteSite(ctx, "old.acme.test"); err != nil {
		t.Fatal(err)
	}
	if err := f.env.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "old.acme.test", UID: "uid-new", Org: "acme", CreatedAt: testNow},
		Spec: site.Spec{Domain: "old.acme.test", Plan: "basic"}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := f.raw(t, "GET", page, "", ""); code != 404 {
		t.Fatalf("re-created site's page = %d, want 404", code)
	}
}

// TestEdgePeers: the live edges are the unexpired edge tokens used in the
// last EdgePeersWindow, the caller's own among them (its use is noted by
// this request); other roles' tokens and stale or expired edge tokens are
// not; only edges (and admins) may ask.
func TestEdgePeers(t *testing.T) {
	f := newMatrixFixture(t)
	st := f.env.store
	at := func(d time.Duration) *time.Time { v := testNow.Add(d); return &v }
	for _, tok := range []store.Token{
		{ID: "tok-edge-live", Role: store.RoleEdge, LastUsedAt: at(-2 * time.Minute)},
		{ID: "tok-edge-stale", Role: store.RoleEdge, LastUsedAt: at(-EdgePeersWindow - time.Second)},
		{ID: "tok-edge-never", Role: store.RoleEdge},
		{ID: "tok-edge-expired", Role: store.RoleEdge, LastUsedAt: at(-time.Minute), ExpiresAt: at(-time.Second)},
		{ID: "tok-shard-live", Role: store.RoleShard, Subject: "local", LastUsedAt: at(-time.Minute)},
	} {
		tok.Name, tok.Hash, tok.CreatedAt = tok.ID, hashSecret("secret-"+tok.ID), testNow.Add(-time.Hour)
		if err := st.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	code, body := f.raw(t, "GET", "/v1/edge/peers", "edge", "")
	var got EdgePeers
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("GET /v1/edge/peers = %d %s (%v)", code, body, err)
	}
	if want := []string{"tok-edge", "tok-edge-live"}; !slices.Equal(got.Edges, want) {
		t.Errorf("peers %v, want %v", got.Edges, want)
	}
	if code, _ := f.raw(t, "GET", "/v1/edge/peers", "shard", ""); code != 403 {
		t.Errorf("peers as a shard = %d, want 403", code)
	}
}
