package uptime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

const wpPage = `<html><head><link rel="stylesheet" href="/wp-content/themes/x/style.css"></head><body>Hi</body></html>`

// TestProberRounds: a site is reported up once, down after Failures
// failed probes (dated at the first), again while down, up when it
// passes again; a report that failed is sent with the next round;
// probes are marked; redirects are followed.
func TestProberRounds(t *testing.T) {
	status, body := http.StatusOK, wpPage
	var marked []bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		marked = append(marked, IsProbe(r))
		if r.Host == "old.example" {
			http.Redirect(w, r, "https://a.example/", http.StatusMovedPermanently)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var sent [][]Result
	failSend := false
	p := New(Config{Handler: h, Parallel: 1, Clock: func() time.Time { return now },
		Targets: func() []Target { return []Target{{Site: "a.example", Host: "old.example"}} },
		Send: func(_ context.Context, rs []Result) error {
			if failSend {
				return errors.New("control plane away")
			}
			sent = append(sent, slices.Clone(rs))
			return nil
		}})
	round := func(st int, b string) {
		t.Helper()
		status, body = st, b
		_ = p.Round(t.Context())
		now = now.Add(time.Minute)
	}
	t0 := now
	round(200, wpPage)                                                  // up: sent
	round(200, wpPage)                                                  // nothing new
	round(503, "down")                                                  // first failure: not yet
	round(200, "<html>Error establishing a database connection</html>") // second: down since t0+2m
	failSend = true
	round(500, "x") // still down; the report fails
	failSend = false
	round(200, wpPage) // up: sent (replaces the pending down)
	round(200, wpPage)

	want := [][]Result{
		{{Site: "a.example", Up: true, At: t0}},
		{{Site: "a.example", At: t0.Add(2 * time.Minute), Cause: "HTTP 503"}},
		{{Site: "a.example", Up: true, At: t0.Add(5 * time.Minute)}},
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %+v, want %+v", sent, want)
	}
	for i := range want {
		if len(sent[i]) != 1 || sent[i][0].Site != want[i][0].Site || sent[i][0].Up != want[i][0].Up ||
			!sent[i][0].At.Equal(want[i][0].At) || sent[i][0].Cause != want[i][0].Cause {
			t.Errorf("report %d = %+v, want %+v", i, sent[i], want[i])
		}
	}
	if len(marked) == 0 || slices.Contains(marked, false) {
		t.Errorf("probes marked: %v", marked)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, wpPage, ""},
		{200, `<meta name="generator" content="WordPress 6.1.1" />`, ""},
		{200, "<html>Error establishing a database connection</html>", "HTTP 200 without a WordPress page"},
		{503, wpPage, "HTTP 503"},
		{404, "", "HTTP 404"},
	} {
		if got := Check(tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("Check(%d, %q) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

// TestAssign: every site is probed by exactly one edge, whatever the
// order of the list; a new edge takes about 1/n of the sites, all from
// the others, and an edge that leaves gives away only its own; an edge
// missing from the list, or without one, probes everything.
func TestAssign(t *testing.T) {
	var targets []Target
	for i := range 1000 {
		s := fmt.Sprintf("site-%d.example", i)
		targets = append(targets, Target{Site: s, Host: s})
	}
	probedBy := func(edges []string) map[string]string {
		t.Helper()
		by := map[string]string{}
		for _, e := range edges {
			p := New(Config{Peers: func() (string, []string) { return e, edges }})
			for _, tg := range p.mine(targets) {
				if other, ok := by[tg.Site]; ok {
					t.Fatalf("%s probed by %s and %s", tg.Site, other, e)
				}
				by[tg.Site] = e
			}
		}
		if len(by) != len(targets) {
			t.Fatalf("%d of %d sites probed", len(by), len(targets))
		}
		return by
	}
	four := []string{"edge-a", "edge-b", "edge-c", "edge-d"}
	before := probedBy(four)
	counts := map[string]int{}
	for _, e := range before {
		counts[e]++
	}
	for _, e := range four {
		if counts[e] < 150 || counts[e] > 350 { // 250 each on average; the hash is fixed, so this cannot flake
			t.Errorf("%s probes %d of 1000 sites", e, counts[e])
		}
	}
	if got := probedBy([]string{"edge-d", "edge-b", "edge-a", "edge-c"}); !maps.Equal(got, before) {
		t.Error("the assignment depends on the order of the list")
	}

	five := append(slices.Clone(four), "edge-e")
	after := probedBy(five)
	moved := 0
	for s, e := range after {
		if e != before[s] {
			moved++
			if e != "edge-e" {
				t.Errorf("%s moved from %s to %s, not to the new edge", s, before[s], e)
			}
		}
	}
	if moved < 120 || moved > 280 { // ~1000/5
		t.Errorf("%d of 1000 sites moved when a fifth edge came, want about 200", moved)
	}

	three := []string{"edge-a", "edge-c", "edge-d"} // edge-b is gone
	for s, e := range probedBy(three) {
		if before[s] != "edge-b" && e != before[s] {
			t.Errorf("%s moved from %s to %s although its edge stayed", s, before[s], e)
		}
	}

	for name, cfg := range map[string]Config{
		"not in the list": {Peers: func() (string, []string) { return "edge-x", four }},
		"no name yet":     {Peers: func() (string, []string) { return "", four }},
		"no list":         {},
		"empty list":      {Peers: func() (string, []string) { return "edge-a", nil }},
	} {
		if got := len(New(cfg).mine(targets)); got != len(targets) {
			t.Errorf("%s: probes %d of %d sites, want all", name, got, len(targets))
		}
	}
}

// TestRoundSpread: a round starts its n probes Interval/n apart, by the
// injected clock, and reports every site.
func TestRoundSpread(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	probed := make(chan struct{}, 16)
	var at []time.Duration
	start := now
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at = append(at, clock().Sub(start))
		_, _ = w.Write([]byte(wpPage))
		probed <- struct{}{}
	})
	// Every wait follows the start of one probe: it lets that probe finish
	// (so that it read the clock) before moving the clock on.
	after := func(d time.Duration) <-chan time.Time {
		<-probed
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		c := make(chan time.Time, 1)
		c <- now
		return c
	}
	var targets []Target
	for _, s := range []string{"a", "b", "c", "d", "e", "f"} {
		targets = append(targets, Target{Site: s, Host: s + ".example"})
	}
	var sent []Result
	p := New(Config{Handler: h, Parallel: 1, Interval: time.Minute, Clock: clock, After: after,
		Targets: func() []Target { return targets },
		Send:    func(_ context.Context, rs []Result) error { sent = rs; return nil }})
	if err := p.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second, 40 * time.Second, 50 * time.Second}
	if !slices.Equal(at, want) {
		t.Errorf("probes started at %v, want %v", at, want)
	}
	if len(sent) != len(targets) {
		t.Errorf("sent %d results, want %d", len(sent), len(targets))
	}
}
