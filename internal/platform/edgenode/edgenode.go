// Package edgenode builds AIPress's edge, once, for both roles that run
// one: `aipress edge` (Run: an edge of its own that follows a control
// plane's routing table over the API) and `aipress up` (package up: the
// edge in the control plane's process, following the store).
//
// An edge is the request handler of package edge with everything around
// it: the listeners (HTTP, HTTPS with HTTP/2, and optionally a metrics
// listener behind a bearer token), TLS certificates (the internal CA in
// <data-dir>/tls for internal names, ACME for site domains), rate limits,
// the HTTPS redirect, bandwidth metering against the plans, the page cache
// and its purge endpoint (the purge secret in <data-dir>/purge-secret), the
// WAF in front of PHP, Prometheus metrics and each site's traffic for the
// portal's charts. The middlewares run in this order: purge endpoint (so
// purges never reach the WAF, the cache or PHP), bandwidth (509 for sites
// over their plan), rate limit, HTTPS redirect, page cache; the WAF guards
// only what would run PHP (internal/edge/doc.go).
//
// The routing table comes from a RouteSource through one watch
// (agent.Routes): the API's GET /v1/routes for `aipress edge`, the store
// itself (api.RouteSource) inside `aipress up`. Every snapshot rebuilds the
// table (BuildRoutes, from where the operator says shards live: Locality)
// and purges the cached pages of sites deleted or re-created under the same
// name (a new UID), so a new site never shows its predecessor's pages. WAF
// events and bandwidth reports go where Reports sends them (the API, or the
// store in process).
//
// A start is two steps, because `aipress up` needs the edge's address,
// purge keys, page cache and metrics before it can open the control plane
// the edge then follows: Open binds the listeners and builds what needs no
// control plane; Start builds the rest and serves. On every error path of
// either, every listener opened so far is closed.
package edgenode

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/edge/lean"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/uptime"
)

// Config configures an edge.
type Config struct {
	// DataDir holds the edge's TLS state (tls/), its purge secret
	// (PurgeSecretFile), its metrics token (MetricsTokenFile) and its
	// certificate for shards' gateways (CredentialsDir); made (0700) if
	// missing.
	DataDir string
	// HTTPAddr is the plain-HTTP listener (required); HTTPSAddr the HTTPS
	// one (HTTP/2; empty: none).
	HTTPAddr, HTTPSAddr string
	// MetricsAddr, if set, serves the edge's Prometheus metrics at
	// /metrics there, to requests with the bearer token in
	// MetricsTokenFile (default <DataDir>/metrics-token, made on the first
	// start). `aipress up` serves them on its API instead (Node.Metrics).
	MetricsAddr, MetricsTokenFile string
	// ACMECA is the ACME directory URL (default Let's Encrypt production;
	// ACMEOff: the internal CA for every name); ACMEEmail the account's
	// contact address.
	ACMECA, ACMEEmail string
	// Rate limits in requests per second, per client IP and per site: 0
	// means the default (ratelimit.DefaultIPRate, DefaultSiteRate),
	// negative turns the limit off. Bursts: 0 means twice the rate (the
	// defaults' bursts for default rates).
	RateIP, RateSite           float64
	RateIPBurst, RateSiteBurst int
	// CacheBytes is the page cache's memory budget (default
	// pagecache.DefaultMaxBytes).
	CacheBytes int64
	// Locality says which shards run on this machine (their directories)
	// and which symlink roots the edge serves files from; sites of other
	// shards are reached through their gateways.
	Locality Locality
	// ProbeInterval is how often the edge probes each site's home page
	// for the uptime incidents and SLA (package uptime): 0 means
	// uptime.DefaultInterval, negative turns probes off (an operator with
	// several edges may leave them to a few).
	ProbeInterval time.Duration
	// AccessLogs bound the sites' access logs, kept in <DataDir>/logs/access
	// (package sitelog; zero: its defaults, 4 MiB per site and 2 GiB in
	// all).
	AccessLogs sitelog.Bounds
	// LogsAddr, if set, is the listener the control plane reads the
	// sites' access logs from (mutual TLS, a control-plane certificate
	// only: package logmesh), registered with the control plane as
	// LogsAdvertise (a host or host:port; default: LogsAddr when it names
	// a host). It needs Links.Mesh.
	LogsAddr, LogsAdvertise string
	// NetHTTPOnly turns the lean HTTP/1.1 path off: the plain-HTTP
	// listener is served by net/http alone. By default plain GET and HEAD
	// requests without a body (cache hits, static files) are read and
	// answered by package edge/lean, which hands every other request to
	// net/http; both run the same handler chain.
	NetHTTPOnly bool
	Logger      *slog.Logger
	// Ready, if set, is called once the edge has the whole routing table.
	Ready func()
}

// Reports is where an edge sends what it observed: the requests its WAF
// refused, and each site's bytes and traffic (the answer names the sites
// over their plan's monthly bandwidth, refused with 509 from then on).
// Both are called in batches, never on the request path.
type Reports interface {
	WAFEvents(ctx context.Context, events []site.WAFEvent) error
	Usage(ctx context.Context, report *api.UsageReport) (over []string, err error)
	// Probes receives the uptime probes' results (uptime.Prober).
	Probes(ctx context.Context, results []uptime.Result) error
}

// Links are the edge's ties to its control plane, given to Start.
type Links struct {
	// Routes is the routing table's source (required).
	Routes agent.RouteSource
	// ServeAfter, if set, returns once the edge may answer: `aipress up`
	// waits for its local shards' MariaDB, php-fpm and pooler, so a
	// restart under load meets no pool that is not listening yet
	// (serveWhenReady).
	ServeAfter func(ctx context.Context) bool
	// Reports receives WAF events and usage (required).
	Reports Reports
	// Mesh, if set, is the control plane's API with the edge's token: the
	// edge learns its name and keeps a certificate for shards' gateways
	// (in <DataDir>/CredentialsDir). Nil: no gateways (every shard is
	// local, as in `aipress up`).
	Mesh *apiclient.Client
	// Peers, if set, tells the edge its name and the live edges: each
	// site is then probed by one of them (uptime.Assign). Nil: this edge
	// probes every site.
	Peers PeerSource
}

// ServeWaitLimit bounds how long an edge keeps its listeners from
// answering after Start (serveWhenReady).
const ServeWaitLimit = 60 * time.Second

// serveWhenReady returns once the edge has its first routing table (until
// then every host would be a 404) and after (if set) returns, or after
// ServeWaitLimit; it reports whether both were ready. The listeners are
// open meanwhile: connections wait in their backlog, they are not refused.
func serveWhenReady(ctx context.Context, ed *edge.Server, after func(context.Context) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, ServeWaitLimit)
	defer cancel()
	ok := after == nil || after(ctx)
	select {
	case <-ed.TableReady():
	case <-ctx.Done():
		ok = false
	}
	return ok
}

// Node is an opened edge: its listeners are bound; Start serves.
type Node struct {
	cfg     Config
	log     *slog.Logger
	dataDir string

	group            *serve.Group
	httpLn, httpsLn  net.Listener
	metricsLn        net.Listener // nil: none
	logsLn           net.Listener // nil: none
	logsAdvertise    string
	metricsH         http.Handler
	metricsTokenFile string
	extras           *extras
	purges           *purging
	cache            *pagecache.Cache
	accessLogs       *sitelog.Writer

	mu      sync.Mutex
	started bool
	closed  bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
	uids    map[string]string // site name → UID at the last snapshot
	// logUIDs is uids for the logs listener's goroutines.
	logUIDs atomic.Pointer[map[string]string]
	once    sync.Once
	ed      *edge.Server
}

// Open binds the edge's listeners and builds what needs no control plane:
// TLS, rate limits, metrics, the purge keyring and the page cache. On error
// nothing stays bound.
func Open(cfg Config) (_ *Node, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = pagecache.DefaultMaxBytes
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("edge data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("edge data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log, dataDir: dataDir, group: serve.NewGroup(log)}
	defer func() {
		if err != nil {
			n.group.Close()
			if n.extras != nil {
				n.extras.stop()
			}
			if n.accessLogs != nil {
				n.accessLogs.Close()
			}
		}
	}()
	if n.httpLn, err = n.group.Listen("edge", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	if cfg.HTTPSAddr != "" {
		if n.httpsLn, err = n.group.Listen("edge https", cfg.HTTPSAddr); err != nil {
			return nil, err
		}
	}
	if cfg.LogsAddr != "" {
		if n.logsLn, err = n.group.Listen("logs", cfg.LogsAddr); err != nil {
			return nil, err
		}
		if n.logsAdvertise, err = logsAdvertise(n.logsLn.Addr(), cfg.LogsAdvertise, cfg.LogsAddr); err != nil {
			return nil, err
		}
	}
	// TLS, metrics and rate limiting (extras.go).
	if n.extras, err = newExtras(&cfg, dataDir, n.httpsLn, log); err != nil {
		return nil, err
	}
	// Cache purges (purge.go): WordPress posts them to the purge
	// endpoint; the API purges through the page cache (Purger).
	if n.purges, err = newPurging(dataDir, n.httpLn.Addr()); err != nil {
		return nil, err
	}
	// Metrics behind a bearer token (metricsauth.go): loopback is no
	// boundary where sites' PHP runs.
	if cfg.MetricsAddr != "" {
		if n.metricsH, n.metricsTokenFile, err = metricsHandler(n.extras.metrics.Handler(), dataDir, cfg.MetricsTokenFile, log); err != nil {
			return nil, err
		}
		if ln, lerr := n.group.Listen("metrics", cfg.MetricsAddr); lerr != nil {
			log.Error("metrics listener not started", "err", lerr)
		} else {
			n.metricsLn = ln
		}
	}
	// The uptime probes fill the cache but see PHP's failures (Peek).
	n.cache = pagecache.New(pagecache.Config{MaxBytes: cfg.CacheBytes, Peek: uptime.IsProbe, Logger: log.With("component", "pagecache")})
	// The sites' access logs: the request path only queues a line; a
	// background writer writes them, reporting its failures here at most
	// once a minute. Lines dropped when it falls behind are counted.
	alog, limit := log.With("component", "accesslog"), oncePer(time.Minute, time.Now)
	if n.accessLogs, err = sitelog.NewWriter(sitelog.WriterConfig{Dir: filepath.Join(dataDir, AccessLogDir), Bounds: cfg.AccessLogs,
		OnError: func(err error) {
			if limit() {
				alog.Error("access log lines not written", "err", err)
			}
		}}); err != nil {
		return nil, err
	}
	n.extras.metrics.AccessLogDropped(n.accessLogs.Dropped)
	return n, nil
}

// AccessLogDir is where, under its data directory, an edge keeps the sites'
// access logs (one directory per site).
const AccessLogDir = "logs/access"

// AccessLogs are the sites' access logs this edge writes.
func (n *Node) AccessLogs() *sitelog.Writer { return n.accessLogs }

// Addr is the HTTP listener's address.
func (n *Node) Addr() net.Addr { return n.httpLn.Addr() }

// HTTPSAddr is the HTTPS listener's address (nil: none).
func (n *Node) HTTPSAddr() net.Addr {
	if n.httpsLn == nil {
		return nil
	}
	return n.httpsLn.Addr()
}

// Ports are the edge's HTTP and HTTPS ports: the loopback ports site
// users may reach (package sitefw).
func (n *Node) Ports() []int {
	ports := []int{serve.PortOf(n.httpLn.Addr().String())}
	if n.httpsLn != nil {
		ports = append(ports, serve.PortOf(n.httpsLn.Addr().String()))
	}
	return ports
}

// PurgeURL is the purge endpoint as PHP on this machine reaches it.
func (n *Node) PurgeURL() string { return n.purges.url }

// PurgeKey is a site's purge key (under the current purge secret).
func (n *Node) PurgeKey(site string) string { return n.purges.key(site) }

// Purger is the page cache, for the API's purges (api.Purger).
func (n *Node) Purger() *pagecache.Cache { return n.cache }

// Metrics serves the edge's Prometheus metrics, unauthenticated: the
// caller puts them behind its own authentication.
func (n *Node) Metrics() http.Handler { return n.extras.metrics.Handler() }

// Registry is the registry of the edge's metrics (with the Go runtime and
// process collectors), for serving it with others.
func (n *Node) Registry() prometheus.Gatherer { return n.extras.metrics.Registry() }

// Start builds the edge (WAF, bandwidth meter, the handler and its
// middlewares), serves it on the listeners and follows the routing table,
// until ctx ends or Close. On error every listener is closed.
func (n *Node) Start(ctx context.Context, links Links) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return fmt.Errorf("edge: already started or closed")
	}
	defer func() {
		if err != nil {
			n.closed = true
			n.group.Close()
			n.extras.stop()
		}
	}()
	if links.Routes == nil || links.Reports == nil {
		return fmt.Errorf("edge: Links.Routes and Links.Reports are required")
	}
	log := n.log
	edgeLog := log.With("component", "edge")
	// WAF events go to Reports in batches (never on the request path).
	wafEvents := waf.NewReporter(waf.ReporterConfig{Logger: log.With("component", "waf"), Send: links.Reports.WAFEvents})
	fw, err := waf.New(waf.Config{Logger: log.With("component", "waf"), Events: wafEvents})
	if err != nil {
		return err
	}
	go func() { _ = fw.Prepare(1) }() // build the default rule set before the first request needs it
	// Bandwidth per site per month, against the plans; each site's
	// traffic for the portal's charts goes with it.
	traffic := sitemetrics.NewRecorder()
	sender := &usageSender{reports: links.Reports, traffic: traffic, log: log.With("component", "usage")}
	meter := bandwidth.New(bandwidth.Config{Logger: log.With("component", "bandwidth"), Send: sender.send})
	mws := []edge.Middleware{purge.KeyringMiddleware(n.purges.ring, n.cache, edgeLog)} // first: purges never reach the WAF, the cache or PHP
	mws = append(mws, meter.Middleware())                                              // 509 for sites over their monthly bandwidth
	mws = append(mws, n.extras.middlewares()...)                                       // rate limit, HTTPS redirect
	mws = append(mws, n.cache.Middleware())
	ecfg := edge.Config{Logger: edgeLog, Middlewares: mws, PHPMiddlewares: []edge.Middleware{fw.Middleware()},
		Observe: observeVisitors(n.extras.metrics.Observe, meter.Observe, siteObserver(traffic, time.Now),
			accessLogger(n.accessLogs, time.Now, log.With("component", "accesslog")))}
	var mesh *edgeMesh
	if links.Mesh != nil {
		mesh = newEdgeMesh()
		ecfg.Mesh = mesh
	} else if n.logsLn != nil {
		return fmt.Errorf("edge: a logs listener needs the control plane's API (Links.Mesh)")
	}
	ed := edge.New(ecfg)
	n.ed = ed
	n.extras.edge.Store(ed)
	watcher := agent.NewRoutes(agent.RoutesConfig{Source: links.Routes, Logger: log.With("component", "routes"), OnChange: n.apply})

	// Serve: the edge's listeners answer once it can (serveWhenReady).
	serveEdge := func() {
		plain := &http.Server{Handler: n.extras.httpHandler(ed), ReadHeaderTimeout: serve.ReadHeaderTimeout}
		if n.cfg.NetHTTPOnly {
			n.group.Serve("edge", plain, n.httpLn)
		} else {
			n.group.ServeServer("edge", &lean.Server{HTTP: plain, Logger: edgeLog}, n.httpLn)
		}
		if n.httpsLn != nil {
			n.group.Serve("edge-https", &http.Server{Handler: ed, ReadHeaderTimeout: serve.ReadHeaderTimeout, TLSConfig: n.extras.tlsConfig}, n.httpsLn)
			log.Info("edge HTTPS", "addr", n.httpsLn.Addr().String(), "ca", filepath.Join(n.dataDir, "tls", "ca.crt"))
		}
	}
	if n.metricsLn != nil {
		n.group.Serve("metrics", &http.Server{Handler: n.metricsH, ReadHeaderTimeout: serve.ReadHeaderTimeout}, n.metricsLn)
		log.Info("edge metrics", "addr", n.metricsLn.Addr().String(), "bearer_token_file", n.metricsTokenFile)
	}
	ctx, n.stop = context.WithCancel(ctx)
	n.started = true
	run := func(f func(context.Context)) {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) {
		if err := watcher.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("routing table watch stopped", "err", err)
		}
	})
	run(func(ctx context.Context) {
		if !serveWhenReady(ctx, ed, links.ServeAfter) && ctx.Err() == nil {
			log.Warn("edge answering before it has its routing table or its shards' pools", "waited", ServeWaitLimit.String())
		}
		serveEdge()
	})
	if mesh != nil {
		n.extras.certs.Add(mesh.certs)
		// The edge's certificate for shards' gateways (mesh.go).
		run(func(ctx context.Context) {
			mesh.keep(ctx, links.Mesh, filepath.Join(n.dataDir, CredentialsDir), log.With("component", "mesh"))
		})
		if n.logsLn != nil {
			// The sites' access logs, for the control plane (logs.go).
			run(func(ctx context.Context) {
				n.serveLogs(ctx, mesh, links.Mesh, n.logsAdvertise, log.With("component", "logmesh"))
			})
		}
	}
	run(func(ctx context.Context) { wafEvents.Run(ctx) })
	run(func(ctx context.Context) { meter.Run(ctx) })
	if n.cfg.ProbeInterval >= 0 {
		// Uptime probes: every placed site's home page, through the
		// whole edge (the HTTPS handler: no redirect to HTTPS).
		pcfg := uptime.Config{Handler: ed, Interval: n.cfg.ProbeInterval, Send: links.Reports.Probes,
			Targets: func() []uptime.Target { return probeTargets(ed.Table()) }, Logger: log.With("component", "uptime")}
		if links.Peers != nil {
			// One edge per site: the live edges, asked as often as a
			// round runs.
			peers := &probePeers{}
			pcfg.Peers = peers.Get
			every := cmp.Or(n.cfg.ProbeInterval, uptime.DefaultInterval)
			run(func(ctx context.Context) { peers.run(ctx, links.Peers, every, log.With("component", "uptime")) })
		}
		prober := uptime.New(pcfg)
		run(func(ctx context.Context) {
			// Not before the edge answers: a site is not down because
			// the edge has no routing table yet.
			if serveWhenReady(ctx, ed, links.ServeAfter); ctx.Err() == nil {
				prober.Run(ctx)
			}
		})
	}
	return nil
}

// apply installs a snapshot of the routing table and purges the cached
// pages of sites that disappeared or were re-created (a new UID). It runs
// on the watch's goroutine.
func (n *Node) apply(snap agent.Snapshot) {
	routes, roots := BuildRoutes(snap.Sites, snap.Shards, n.cfg.Locality)
	n.ed.AddAllowedSymlinkRoots(roots...)
	n.ed.SetTable(edge.NewTable(routes))
	uids := make(map[string]string, len(snap.Sites))
	for i := range snap.Sites {
		uids[snap.Sites[i].Metadata.Name] = snap.Sites[i].Metadata.UID
	}
	for name, uid := range n.uids {
		if _, ok := uids[name]; !ok && n.extras != nil && n.extras.metrics != nil {
			// A deleted site's series go with it (a re-created one keeps
			// counting under its name).
			n.extras.metrics.ForgetSite(name)
		}
		if uids[name] != uid {
			pages := n.cache.PurgeSite(name)
			n.log.Info("purged the page cache of a deleted or re-created site", "site", name, "pages", pages)
			// Nor its predecessor's access log.
			if n.accessLogs == nil {
				continue
			}
			if err := n.accessLogs.Remove(name); err != nil {
				n.log.Error("access log of a deleted site not removed", "site", name, "err", err)
			}
		}
	}
	n.uids = uids
	n.logUIDs.Store(&uids)
	n.once.Do(func() {
		n.log.Info("edge has the routing table", "sites", len(snap.Sites), "shards", len(snap.Shards), "revision", snap.Revision)
		if n.cfg.Ready != nil {
			n.cfg.Ready()
		}
	})
}

// Close stops the edge: the servers finish their requests until ctx ends,
// the watch and the reporters stop, and every listener is closed. It is
// the way out of an opened edge whether or not it started.
func (n *Node) Close(ctx context.Context) {
	n.mu.Lock()
	started, closed := n.started, n.closed
	n.closed = true
	n.mu.Unlock()
	if closed {
		return // closed already, or Start failed and cleaned up
	}
	n.group.Shutdown(ctx)
	if started {
		n.stop()
		n.wg.Wait()
	}
	n.extras.stop()
	// The servers are done: the last buffered lines are written now.
	if err := n.accessLogs.Close(); err != nil {
		n.log.Error("access log lines not written", "err", err)
	}
}

// probeTargets are the sites of the routing table the uptime probes
// check: those placed on a shard (serving, suspended or with their shard
// down); sites not provisioned yet are not down.
func probeTargets(t *edge.Table) []uptime.Target {
	routes := t.Routes()
	out := make([]uptime.Target, 0, len(routes))
	for _, rt := range routes {
		if rt.State != edge.Unavailable && rt.Host != "" {
			out = append(out, uptime.Target{Site: rt.Site, Host: rt.Host})
		}
	}
	return out
}
