package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
)

// TestUptimeProbeSuspendResume: on a real platform with a real
// WordPress site, the edge's probes see the suspended site down (an open
// incident, HTTP 503), and close the incident after the site is resumed;
// the month's SLA report counts exactly that incident's duration; the
// site's status page is served only while its owner made it public, and
// the platform's page names no site.
func TestUptimeProbeSuspendResume(t *testing.T) {
	p := newPlatform(t)
	p.extraArgs = []string{"--probe-interval", "1s"}
	p.start()
	const domain = "uptime.localhost"
	p.createSite(domain, "Uptime")
	vis := p.client(domain)
	vis.waitStatus("/", 200, 60*time.Second)

	incidents := func() []store.Incident {
		t.Helper()
		out, err := p.cli("site", "incidents", domain, "--all", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var ins []store.Incident
		if err := json.Unmarshal([]byte(out), &ins); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return ins
	}
	waitIncidents := func(what string, ok func([]store.Incident) bool) []store.Incident {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ins := incidents()
			if ok(ins) {
				return ins
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in 60s: incidents %+v", what, ins)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	api := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + p.apiAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Up all along: no incident (the probes passed: the site answers 200
	// with WordPress's page).
	if ins := incidents(); len(ins) != 0 {
		t.Fatalf("incidents of a serving site: %+v", ins)
	}
	// The status page is private until the owner publishes it.
	if code, body := api("/status/" + domain); code != 404 {
		t.Fatalf("private status page = %d\n%.300s", code, body)
	}

	if _, err := p.cli("site", "suspend", domain); err != nil {
		t.Fatal(err)
	}
	ins := waitIncidents("open incident", func(ins []store.Incident) bool { return len(ins) == 1 })
	if ins[0].Ended != nil || ins[0].Cause != "HTTP 503" || ins[0].Site != domain {
		t.Fatalf("incident of the suspended site = %+v, want open, HTTP 503", ins[0])
	}

	if out, err := p.cli("site", "status-page", domain, "--public"); err != nil || !strings.Contains(out, "/status/"+domain) {
		t.Fatalf("status-page --public: %v\n%s", err, out)
	}
	code, body := api("/status/" + domain)
	if code != 200 || !strings.Contains(body, "Down since") || !strings.Contains(body, "HTTP 503") {
		t.Fatalf("public status page of the down site = %d\n%.600s", code, body)
	}
	code, body = api("/status")
	if code != 200 || !strings.Contains(body, "Sites down now</td><td>1 of 1") || strings.Contains(body, domain) {
		t.Fatalf("platform status page = %d\n%.800s", code, body)
	}

	if _, err := p.cli("site", "resume", domain); err != nil {
		t.Fatal(err)
	}
	ins = waitIncidents("closed incident", func(ins []store.Incident) bool { return len(ins) == 1 && ins[0].Ended != nil })
	in := ins[0]
	if !in.Ended.After(in.Started) {
		t.Fatalf("incident %+v: ended not after it started", in)
	}
	if code, body := api("/status/" + domain); code != 200 || !strings.Contains(body, `id="state">Up.`) {
		t.Fatalf("status page after resume = %d\n%.600s", code, body)
	}

	// The month's report counts exactly the incident.
	out, err := p.cli("sla", "--site", domain, "--month", in.Started.UTC().Format("2006-01"), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep uptime.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Sites) != 1 || len(rep.Plans) != 1 {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Sites[0]
	if s.Site != domain || s.Plan != "basic" || s.TargetPercent != 99.9 || s.Incidents != 1 ||
		s.DowntimeSeconds != in.Ended.Sub(in.Started).Seconds() || s.AvailabilityPercent >= 100 {
		t.Errorf("site row %+v, incident %+v (%v)", s, in, in.Ended.Sub(in.Started))
	}

	// Withdrawn: 404 again, as for a site that does not exist.
	if _, err := p.cli("site", "status-page", domain, "--private"); err != nil {
		t.Fatal(err)
	}
	if code, body := api("/status/" + domain); code != 404 {
		t.Fatalf("withdrawn status page = %d\n%.300s", code, body)
	}
	if code, _ := api("/status/nosuch.localhost"); code != 404 {
		t.Fatalf("status page of no site = %d", code)
	}
}
