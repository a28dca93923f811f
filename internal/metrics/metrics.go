// Package metrics collects the edge's per-site Prometheus metrics on its
// own registry (never the global default one) and serves them in the
// Prometheus text format.
//
// The site label is the site's name from the routing table; requests for
// unknown hosts are counted under site="_unknown", so an arbitrary Host
// header never creates a series. Cache, code class and scope labels take
// values from small fixed sets.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aipress/aipress/internal/edge"
)

// UnknownSite is the site label of requests for hosts no site serves.
const UnknownSite = "_unknown"

// Metrics holds the edge's collectors. It is safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	bytes       *prometheus.CounterVec
	upstream    *prometheus.HistogramVec
	wafBlocks   *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	phpRetries  *prometheus.CounterVec
	phpRetried  *prometheus.CounterVec
	// sites holds each site's series handles (site label → *siteSeries),
	// resolved once: a request then costs no label hashing or lookup.
	sites sync.Map
}

// Label values of aipress_edge_requests_total, by index.
var (
	codeClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	cacheLabels = [...]string{"none", "hit", "miss", "bypass", "stale", "other"}
)

// siteSeries are one site's series, resolved on first use.
type siteSeries struct {
	duration prometheus.Observer
	bytes    prometheus.Counter
	requests [len(codeClasses)][len(cacheLabels)]atomic.Pointer[prometheus.Counter]
}

// series returns site's handles (site is a label value: siteLabel's).
func (m *Metrics) series(site string) *siteSeries {
	if v, ok := m.sites.Load(site); ok {
		return v.(*siteSeries)
	}
	v, _ := m.sites.LoadOrStore(site, &siteSeries{duration: m.duration.WithLabelValues(site), bytes: m.bytes.WithLabelValues(site)})
	return v.(*siteSeries)
}

// requestsCounter returns the site's requests counter for a code class and
// a cache label (indexes into codeClasses and cacheLabels).
func (m *Metrics) requestsCounter(site string, ss *siteSeries, class, cache int) prometheus.Counter {
	slot := &ss.requests[class][cache]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(site, codeClasses[class], cacheLabels[cache])
	slot.Store(&c)
	return c
}

// New returns Metrics registered on a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_requests_total",
			Help: "Requests answered by the edge, by site, status code class (2xx…5xx) and page-cache result (hit, miss, bypass, stale, none).",
		}, []string{"site", "code_class", "cache"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aipress_edge_request_duration_seconds",
			Help:    "Time from the request's arrival to the end of its response, by site.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_response_bytes_total",
			Help: "Response body bytes sent to clients, by site.",
		}, []string{"site"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aipress_edge_upstream_duration_seconds",
			Help:    "Time spent waiting for PHP, by site (only requests that reached PHP).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site"}),
		wafBlocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_waf_blocks_total",
			Help: "Requests refused by the WAF, by site.",
		}, []string{"site"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_ratelimited_total",
			Help: "Requests refused with 429 by the rate limiter, by site and scope (ip or site).",
		}, []string{"site", "scope"}),
		phpRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_php_retries_total",
			Help: "Attempts to reach PHP again after a pool or database restart (pool_missing, pool_refused, pool_reset, database).",
		}, []string{"reason"}),
		phpRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_edge_php_retried_requests_total",
			Help: "Requests that met a restarting pool or database, by reason and outcome (recovered: a later attempt answered; gave_up: the visitor got the failure).",
		}, []string{"reason", "outcome"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.bytes, m.upstream, m.wafBlocks, m.rateLimited, m.phpRetries, m.phpRetried,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AccessLogDropped exports dropped (called at each scrape) as
// aipress_edge_access_log_dropped_total: the access-log lines the edge
// dropped because its writer was behind (sitelog.Writer.Dropped). Call it
// once.
func (m *Metrics) AccessLogDropped(dropped func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "aipress_edge_access_log_dropped_total",
		Help: "Access-log lines dropped, not written, because the edge's log writer was behind (its buffer full).",
	}, func() float64 { return float64(dropped()) }))
}

// Registry returns the registry, for more collectors and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Observe records one answered request; it is the edge's Config.Observe.
func (m *Metrics) Observe(r *http.Request, info *edge.RequestInfo) {
	site := siteLabel(info.Site)
	ss := m.series(site)
	m.requestsCounter(site, ss, codeClassIndex(info.Status), cacheIndex(info.Cache)).Inc()
	if !info.Start.IsZero() {
		ss.duration.Observe(timeSince(info.Start).Seconds())
	}
	if info.Bytes > 0 {
		ss.bytes.Add(float64(info.Bytes))
	}
	if info.Upstream > 0 {
		m.upstream.WithLabelValues(site).Observe(info.Upstream.Seconds())
	}
	if info.WAFBlocked {
		m.wafBlocks.WithLabelValues(site).Inc()
	}
	if rt := info.PHPRetry; rt.Reason != "" {
		reason := retryReason(rt.Reason)
		if rt.Retries > 0 {
			m.phpRetries.WithLabelValues(reason).Add(float64(rt.Retries))
		}
		outcome := "recovered"
		if rt.GaveUp {
			outcome = "gave_up"
		}
		m.phpRetried.WithLabelValues(reason, outcome).Inc()
	}
}

// retryReason keeps the reason label to the edge's fixed set.
func retryReason(r string) string {
	switch r {
	case edge.RetryPoolMissing, edge.RetryPoolRefused, edge.RetryPoolReset, edge.RetryDatabase:
		return r
	}
	return "other"
}

// RateLimited counts one request refused by the rate limiter; scope is
// "ip" or "site".
func (m *Metrics) RateLimited(site, scope string) {
	if scope != "ip" && scope != "site" {
		scope = "other"
	}
	m.rateLimited.WithLabelValues(siteLabel(site), scope).Inc()
}

// ForgetSite drops every series of a site (after it was deleted).
func (m *Metrics) ForgetSite(site string) {
	m.sites.Delete(site)
	l := prometheus.Labels{"site": site}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.upstream.DeletePartialMatch(l)
	m.wafBlocks.DeletePartialMatch(l)
	m.rateLimited.DeletePartialMatch(l)
}

func siteLabel(s string) string {
	if s == "" {
		return UnknownSite
	}
	return s
}

func codeClass(status int) string { return codeClasses[codeClassIndex(status)] }

func codeClassIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

func cacheLabel(c string) string { return cacheLabels[cacheIndex(c)] }

func cacheIndex(c string) int {
	if c == "" {
		return 0
	}
	for i, l := range cacheLabels[1:5] {
		if strings.EqualFold(c, l) {
			return i + 1
		}
	}
	return len(cacheLabels) - 1
}
