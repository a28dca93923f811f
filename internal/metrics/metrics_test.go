package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aipress/aipress/internal/edge"
)

func TestObserve(t *testing.T) {
	timeSince = func(time.Time) time.Duration { return 30 * time.Millisecond }
	t.Cleanup(func() { timeSince = time.Since })
	m := New()
	r := httptest.NewRequest("GET", "/", nil)
	start := time.Now()
	m.Observe(r, &edge.RequestInfo{Site: "blog.localhost", Status: 200, Bytes: 1000, Cache: "MISS", Upstream: 20 * time.Millisecond, Start: start})
	m.Observe(r, &edge.RequestInfo{Site: "blog.localhost", Status: 200, Bytes: 500, Cache: "HIT", Start: start})
	m.Observe(r, &edge.RequestInfo{Site: "blog.localhost", Status: 403, Bytes: 10, WAFBlocked: true, Start: start})
	// Unknown hosts share one label whatever the Host header said.
	for _, host := range []string{"a.example", "b.example", "c.example"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		m.Observe(r, &edge.RequestInfo{Status: 404, Bytes: 1, Start: start})
	}
	m.RateLimited("blog.localhost", "ip")
	m.RateLimited("blog.localhost", "site")
	m.RateLimited("blog.localhost", "ip")

	check := func(name string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("miss", testutil.ToFloat64(m.requests.WithLabelValues("blog.localhost", "2xx", "miss")), 1)
	check("hit", testutil.ToFloat64(m.requests.WithLabelValues("blog.localhost", "2xx", "hit")), 1)
	check("4xx", testutil.ToFloat64(m.requests.WithLabelValues("blog.localhost", "4xx", "none")), 1)
	check("unknown", testutil.ToFloat64(m.requests.WithLabelValues(UnknownSite, "4xx", "none")), 3)
	check("bytes", testutil.ToFloat64(m.bytes.WithLabelValues("blog.localhost")), 1510)
	check("waf", testutil.ToFloat64(m.wafBlocks.WithLabelValues("blog.localhost")), 1)
	check("rl ip", testutil.ToFloat64(m.rateLimited.WithLabelValues("blog.localhost", "ip")), 2)
	check("rl site", testutil.ToFloat64(m.rateLimited.WithLabelValues("blog.localhost", "site")), 1)
	if n := testutil.CollectAndCount(m.requests); n != 4 {
		t.Errorf("request series = %d, want 4 (no per-Host series)", n)
	}
	// Upstream only when PHP was asked: one observation.
	if n := testutil.CollectAndCount(m.upstream); n != 1 {
		t.Errorf("upstream series = %d", n)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`aipress_edge_requests_total{cache="miss",code_class="2xx",site="blog.localhost"} 1`,
		`aipress_edge_upstream_duration_seconds_count{site="blog.localhost"} 1`,
		`aipress_edge_request_duration_seconds_bucket{site="blog.localhost",le="0.05"} 3`,
		`aipress_edge_request_duration_seconds_bucket{site="blog.localhost",le="0.025"} 0`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(string(body), "a.example") {
		t.Error("a Host header became a label")
	}

	m.ForgetSite("blog.localhost")
	if n := testutil.CollectAndCount(m.requests); n != 1 {
		t.Errorf("after ForgetSite: %d series", n)
	}
	// A site re-created under the same name counts again from zero (its
	// series handles were forgotten with it).
	m.Observe(r, &edge.RequestInfo{Site: "blog.localhost", Status: 200, Bytes: 7, Cache: "HIT", Start: start})
	check("hit after forget", testutil.ToFloat64(m.requests.WithLabelValues("blog.localhost", "2xx", "hit")), 1)
	check("bytes after forget", testutil.ToFloat64(m.bytes.WithLabelValues("blog.localhost")), 7)
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("duration series after forget and observe = %d, want 2", n)
	}
}

func TestLabels(t *testing.T) {
	for in, want := range map[int]string{200: "2xx", 308: "3xx", 429: "4xx", 503: "5xx", 0: "other", 999: "other"} {
		if got := codeClass(in); got != want {
			t.Errorf("codeClass(%d) = %s", in, got)
		}
	}
	for in, want := range map[string]string{"": "none", "HIT": "hit", "STALE": "stale", "weird": "other"} {
		if got := cacheLabel(in); got != want {
			t.Errorf("cacheLabel(%q) = %s", in, got)
		}
	}
}

// TestPHPRetries: retries are counted by reason (a fixed set) and outcome,
// never by site.
func TestPHPRetries(t *testing.T) {
	m := New()
	r := httptest.NewRequest("GET", "/", nil)
	m.Observe(r, &edge.RequestInfo{Site: "a", Status: 200, PHPRetry: edge.RetryInfo{Retries: 3, Reason: edge.RetryPoolMissing}})
	m.Observe(r, &edge.RequestInfo{Site: "b", Status: 502, PHPRetry: edge.RetryInfo{Retries: 5, Reason: edge.RetryPoolMissing, GaveUp: true}})
	m.Observe(r, &edge.RequestInfo{Site: "c", Status: 502, PHPRetry: edge.RetryInfo{Reason: edge.RetryPoolReset, GaveUp: true}}) // a POST: not retried
	m.Observe(r, &edge.RequestInfo{Site: "d", Status: 200, PHPRetry: edge.RetryInfo{Retries: 1, Reason: "made-up"}})
	m.Observe(r, &edge.RequestInfo{Site: "e", Status: 200})
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"retries pool_missing", testutil.ToFloat64(m.phpRetries.WithLabelValues(edge.RetryPoolMissing)), 8},
		{"retries other", testutil.ToFloat64(m.phpRetries.WithLabelValues("other")), 1},
		{"recovered", testutil.ToFloat64(m.phpRetried.WithLabelValues(edge.RetryPoolMissing, "recovered")), 1},
		{"gave up", testutil.ToFloat64(m.phpRetried.WithLabelValues(edge.RetryPoolMissing, "gave_up")), 1},
		{"reset gave up", testutil.ToFloat64(m.phpRetried.WithLabelValues(edge.RetryPoolReset, "gave_up")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.phpRetried); n != 4 {
		t.Errorf("retried-request series = %d, want 4", n)
	}
}

func TestAccessLogDropped(t *testing.T) {
	m := New()
	var n int64 = 7
	m.AccessLogDropped(func() int64 { return n })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\naipress_edge_access_log_dropped_total 7\n") {
		t.Fatalf("no drop count in\n%s", rec.Body.String())
	}
}
