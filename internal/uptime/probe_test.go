package uptime

import (
	"context"
	"errors"
	"net/http"
	"slices"
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
