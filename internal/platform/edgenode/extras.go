package edgenode

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/certmetrics"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/redirect"
	"github.com/aipress/aipress/internal/metrics"
	"github.com/aipress/aipress/internal/ratelimit"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/tlsacme"
	"github.com/aipress/aipress/internal/tlsca"
	"github.com/aipress/aipress/internal/uptime"
)

// ACMEOff as Config.ACMECA turns ACME off: every name gets a certificate
// from the internal CA.
const ACMEOff = "off"

// extras are the edge's TLS, metrics and rate limiting, built before the
// edge itself: the rate limiter and HTTPS redirect middlewares, the metrics
// observer and handler, and the HTTPS listener's TLS config.
type extras struct {
	metrics   *metrics.Metrics
	limiter   *ratelimit.Limiter
	httpsPort int // 0: no HTTPS listener
	tlsConfig *tls.Config
	acme      *tlsacme.Manager
	edge      atomic.Pointer[edge.Server] // for the names the platform serves
	// certs exports the validity of the certificates the edge serves
	// (its internal CA's root, the sites' ACME certificates) and uses (its
	// mesh certificate, added by Start).
	certs *certmetrics.Collector
}

func newExtras(cfg *Config, dataDir string, httpsLn net.Listener, log *slog.Logger) (*extras, error) {
	x := &extras{metrics: metrics.New(), certs: certmetrics.New()}
	x.metrics.Registry().MustRegister(x.certs)
	rl := ratelimit.Config{OnLimited: x.metrics.RateLimited, Exempt: uptime.IsProbe}
	rl.IPRate, rl.IPBurst = rateOrDefault(cfg.RateIP, ratelimit.DefaultIPRate), cfg.RateIPBurst
	rl.SiteRate, rl.SiteBurst = rateOrDefault(cfg.RateSite, ratelimit.DefaultSiteRate), cfg.RateSiteBurst
	if cfg.RateIP == 0 && cfg.RateIPBurst == 0 {
		rl.IPBurst = ratelimit.DefaultIPBurst
	}
	if cfg.RateSite == 0 && cfg.RateSiteBurst == 0 {
		rl.SiteBurst = ratelimit.DefaultSiteBurst
	}
	x.limiter = ratelimit.New(rl)
	log.Info("edge rate limits", "ip_rps", rl.IPRate, "site_rps", rl.SiteRate)

	if httpsLn == nil {
		return x, nil
	}
	if tcp, ok := httpsLn.Addr().(*net.TCPAddr); ok {
		x.httpsPort = tcp.Port
	}
	tlsDir := filepath.Join(dataDir, "tls")
	ca, err := tlsca.New(tlsca.Config{Dir: tlsDir, Allow: func(name string) bool {
		return tlsca.IsLocalhost(name) || x.known(name)
	}, Logger: log.With("component", "tlsca")})
	if err != nil {
		return nil, err
	}
	sel := &tlsca.Selector{Internal: ca}
	if cfg.ACMECA != ACMEOff {
		x.acme, err = tlsacme.New(tlsacme.Config{
			Dir: filepath.Join(tlsDir, "acme"), CA: cfg.ACMECA, Email: cfg.ACMEEmail,
			Allow: func(_ context.Context, name string) error {
				if !x.known(name) {
					return fmt.Errorf("%q is not the domain of a site", name)
				}
				return nil
			},
			Logger: log,
		})
		if err != nil {
			return nil, err
		}
		sel.Public = x.acme
	}
	x.tlsConfig = tlsca.ServerConfig(sel, x.acme != nil)
	root := ca.Certificate()
	x.certs.Add(func() []certmetrics.Cert {
		return []certmetrics.Cert{certmetrics.Of(certmetrics.KindInternalCA, root.Subject.CommonName, root)}
	})
	if x.acme != nil {
		x.certs.Add(x.acmeCerts)
	}
	return x, nil
}

func rateOrDefault(v, def float64) float64 {
	switch {
	case v < 0:
		return 0 // off
	case v == 0:
		return def
	}
	return v
}

// acmeCerts lists the ACME certificates in the manager's cache of the
// sites' domains.
func (x *extras) acmeCerts() []certmetrics.Cert {
	ed := x.edge.Load()
	if ed == nil {
		return nil
	}
	var names []string
	for _, rt := range ed.Table().Routes() {
		if rt.Host != "" && !tlsca.IsInternalName(rt.Host) {
			names = append(names, rt.Host)
		}
	}
	var out []certmetrics.Cert
	for name, leaf := range x.acme.Leaves(names) {
		out = append(out, certmetrics.Of(certmetrics.KindACME, name, leaf))
	}
	return out
}

// known reports whether name is the domain of a site (in any state).
func (x *extras) known(name string) bool {
	ed := x.edge.Load()
	if ed == nil {
		return false
	}
	_, ok := ed.Table().Lookup(name)
	return ok
}

// middlewares come first in the edge's chain: rate limit, then the HTTPS
// redirect.
func (x *extras) middlewares() []edge.Middleware {
	var m []edge.Middleware
	if x.limiter.Enabled() {
		m = append(m, x.limiter.Middleware)
	}
	return append(m, redirect.HTTPS(x.httpsPort))
}

// httpHandler wraps the plain-HTTP edge handler (ACME HTTP-01 challenges).
func (x *extras) httpHandler(h http.Handler) http.Handler {
	if x.acme == nil {
		return h
	}
	return x.acme.HTTPChallengeHandler(h)
}

func (x *extras) stop() {
	if x.acme != nil {
		x.acme.Stop()
	}
}

// observeAll is an edge's Observe calling each of fs in order (metrics,
// bandwidth, the sites' traffic).
func observeAll(fs ...func(*http.Request, *edge.RequestInfo)) func(*http.Request, *edge.RequestInfo) {
	return func(r *http.Request, info *edge.RequestInfo) {
		for _, f := range fs {
			f(r, info)
		}
	}
}

// observeVisitors is observeAll for visitors' requests only: the uptime
// probes count for neither metrics, bandwidth nor traffic.
func observeVisitors(fs ...func(*http.Request, *edge.RequestInfo)) func(*http.Request, *edge.RequestInfo) {
	all := observeAll(fs...)
	return func(r *http.Request, info *edge.RequestInfo) {
		if !uptime.IsProbe(r) {
			all(r, info)
		}
	}
}

// siteObserver counts each answered request in rec, for the sites'
// charts (reported with the usage).
func siteObserver(rec *sitemetrics.Recorder, now func() time.Time) func(*http.Request, *edge.RequestInfo) {
	return func(_ *http.Request, info *edge.RequestInfo) {
		o := sitemetrics.Observation{Status: info.Status, Cache: info.Cache, PHP: info.Upstream, WAFBlocked: info.WAFBlocked}
		if !info.Start.IsZero() {
			o.Duration = now().Sub(info.Start)
		}
		rec.Observe(info.Site, o)
	}
}

// accessLogger queues each answered request of a known site for its
// access log (sitelog.Writer.Write: an append in memory). A failure
// (mostly a line dropped, the writer being behind) is logged at most once
// a minute (it would otherwise be logged once per request); the drops are
// counted in the metrics.
func accessLogger(w *sitelog.Writer, now func() time.Time, log *slog.Logger) func(*http.Request, *edge.RequestInfo) {
	limit := oncePer(time.Minute, now)
	return func(r *http.Request, info *edge.RequestInfo) {
		if info.Site == "" {
			return
		}
		t := now()
		e := sitelog.Entry{Time: info.Start.UTC(), Site: info.Site, Method: r.Method, Path: shortPath(r.URL.RequestURI()),
			Status: info.Status, Bytes: info.Bytes, Cache: info.Cache, ClientIP: clientIP(r.RemoteAddr), RequestID: info.ID}
		if info.Start.IsZero() {
			e.Time = t.UTC()
		} else {
			e.DurationMS = float64(t.Sub(info.Start).Microseconds()) / 1000
		}
		if err := w.Write(e); err != nil && limit() {
			log.Error("access log not written", "site", info.Site, "dropped_total", w.Dropped(), "err", err)
		}
	}
}

// oncePer returns a function that answers true at most once per d (the
// first time, then once d has passed since the last true), for logging a
// repeated failure without flooding the log. It is safe for concurrent use.
func oncePer(d time.Duration, now func() time.Time) func() bool {
	var last atomic.Int64 // ns of the last true; 0: none yet
	return func() bool {
		t, l := now().UnixNano(), last.Load()
		return (l == 0 || t-l >= int64(d)) && last.CompareAndSwap(l, t)
	}
}

// shortPath bounds a logged request URI.
func shortPath(s string) string {
	const max = 2048
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "")
	}
	return s
}

func clientIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
