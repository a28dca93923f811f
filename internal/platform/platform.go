// Package platform assembles AIPress's roles from the other packages:
//
//   - Run (`aipress up`): the control plane, the local shards ("local",
//     "local-2" …, in-process agents that read the store directly) and the
//     edge in one process, on an embedded SQLite store in one data directory
//     or, with Config.Store, on PostgreSQL;
//   - RunServer (`aipress server`): the control plane alone, starting the
//     local provider's shards as child processes;
//   - RunShard (`aipress shard`): one shard agent over the API (shardagent.go,
//     roles.go);
//   - RunEdge (`aipress edge`): an edge that follows the API's routing table.
//
// Start-up order of Run: the store and the API come first (a client can
// create sites at once), then the edge, then the shards, whose MariaDB and
// php-fpm take a few seconds on a fresh data directory. The edge's routing
// table is rebuilt whenever the store's revision moves.
//
// The control plane's periodic work (internal/control: placement, shard
// health, drains, tombstone pruning) runs under a leader elector
// (leader.go): on PostgreSQL only the replica holding the lease runs it; on
// SQLite the one process always leads. Shards' convergence, orphan
// collection and the route sync are per-process and never gated.
package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

// Config is the typed configuration of `aipress up`.
type Config struct {
	DataDir string // default ./aipress-data
	// Store selects the control-plane store: empty for SQLite in
	// <DataDir>/aipress.db, a postgres:// or postgresql:// URL for
	// PostgreSQL (package store/open).
	Store    string
	HTTPAddr string // edge, default :8080
	APIAddr  string // control-plane API, default 127.0.0.1:7070
	Logger   *slog.Logger
	Version  string
	// CacheBytes is the edge page cache's memory budget, default 256 MiB.
	CacheBytes int64
	// DebugAddr, if set, serves Go's pprof profiles (net/http/pprof) there
	// to requests with an admin API token (Authorization: Bearer).
	DebugAddr string
	// HTTPSAddr is the edge's HTTPS listener (HTTP/2); empty: none.
	// Certificates come from the internal CA in <data-dir>/tls for
	// internal names (*.localhost, *.test, IPs …) and from ACME for
	// other site domains.
	HTTPSAddr string
	// ACMECA is the ACME directory URL (default Let's Encrypt production);
	// ACMEOff uses the internal CA for every name. ACMEEmail is the
	// account's contact address.
	ACMECA, ACMEEmail string
	// Rate limits of the edge in requests per second, per client IP and
	// per site: 0 means the default (ratelimit.DefaultIPRate,
	// DefaultSiteRate), negative turns the limit off. Bursts: 0 means
	// twice the rate (the defaults' bursts for default rates).
	RateIP, RateSite           float64
	RateIPBurst, RateSiteBurst int
	// Shards is how many local shards run in this process from the start
	// ("local", "local-2" …; default 1). More are added, also in this
	// process, when all are full.
	Shards int
	// ShardCapacity is the capacity of the local shards this process
	// creates (0: placement.DefaultCapacity, 50).
	ShardCapacity int
	// HeartbeatTimeout: a shard silent this long is Unhealthy (default 15s).
	HeartbeatTimeout time.Duration
	// Headroom is the placement headroom (placement.Placer).
	Headroom float64
	// BackupURL is the bucket (gocloud.dev/blob URL) of the backup
	// repositories, one per shard; default file://<DataDir>/backups. The
	// key-encryption key is <DataDir>/backup-kek.
	BackupURL string
	// Plans are the platform's plans (nil: plans.Defaults()).
	Plans *plans.Set
	// Ready, if set, is called once the API and edge listen and the first
	// Shards shards have converged for the first time.
	Ready func()
	// SiteFirewall keeps the local shards' site users off this machine's
	// services (the API, pprof, MariaDB's TCP port …) and the metadata
	// address, except the edge's HTTP and HTTPS ports (package sitefw);
	// default FirewallAuto.
	SiteFirewall FirewallMode
	// Auth configures signing in (passwords, OIDC, sign-up).
	Auth AuthOptions
	// Assistant configures /v1/assistant (provider, model, key, limit).
	Assistant AssistantOptions
	// CatalogueURL is the wordpress.org-compatible catalogue the local
	// shards fetch plugins, themes and cores from (default
	// https://api.wordpress.org).
	CatalogueURL string
	// AllowPrivateFetch lets fetches of URLs users name (zip and git
	// sources, git sync repositories) and catalogue downloads reach
	// loopback and private addresses, over plain http too
	// (--allow-private-fetch): for tests and private mirrors only; off,
	// they reach only public addresses over https (package egress).
	AllowPrivateFetch bool
	// DirectDB turns the local shards' connection poolers off (their
	// sites' PHP connects to MariaDB directly; shard.Config.DirectDB);
	// DBReplica is their read replica ("" none, "local": a second
	// mariadbd beside each shard's; shard.Config.Replica).
	DirectDB  bool
	DBReplica string
}

// LocalShard is the name of the first shard `aipress up` runs; the others
// are "local-2", "local-3" ….
const LocalShard = "local"

// AdminTokenFile is the file in the data directory that holds the admin
// API token (mode 0600).
const AdminTokenFile = "admin-token"

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "./aipress-data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.APIAddr == "" {
		c.APIAddr = "127.0.0.1:7070"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = pagecache.DefaultMaxBytes
	}
}

// Run starts the platform and blocks until ctx is cancelled, then stops
// everything (child processes included) and returns.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if os.Geteuid() == 0 {
		// Site users and mysql must reach their files below the data dir.
		changed, err := fsperm.EnsureTraversable(dataDir)
		if err != nil {
			return err
		}
		for _, d := range changed {
			log.Warn("made directory searchable (o+x) so site users can reach the data dir", "dir", d)
		}
	}

	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	edgeLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("edge listen: %w", err)
	}
	var httpsLn net.Listener
	if cfg.HTTPSAddr != "" {
		if httpsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			apiLn.Close()
			edgeLn.Close()
			return fmt.Errorf("edge https listen: %w", err)
		}
	}
	closeLns := func() {
		apiLn.Close()
		edgeLn.Close()
		if httpsLn != nil {
			httpsLn.Close()
		}
	}
	// TLS, metrics and rate limiting of the edge (edgeextras.go).
	extras, err := newEdgeExtras(&cfg, dataDir, httpsLn, log)
	if err != nil {
		closeLns()
		return err
	}
	defer extras.stop()
	apiURL := "http://" + clientAddr(apiLn.Addr())
	publicURL := publicURLFunc(edgeLn.Addr())
	var publicHTTPSURL func(string) string
	if httpsLn != nil {
		publicHTTPSURL = httpsURLFunc(portOf(httpsLn.Addr().String()))
	}
	// Cache purges (purge.go): WordPress posts them to the edge's purge
	// endpoint; the API purges through the same Purger, the page cache.
	purges, err := newPurging(dataDir, edgeLn.Addr())
	if err != nil {
		closeLns()
		return err
	}
	// The site firewall: checked once here, so a process that cannot
	// apply it warns once, not once per shard.
	fwMode, err := checkFirewall(cfg.SiteFirewall, log)
	if err != nil {
		closeLns()
		return err
	}
	loopbackPorts := []int{portOf(edgeLn.Addr().String())}
	if httpsLn != nil {
		loopbackPorts = append(loopbackPorts, portOf(httpsLn.Addr().String()))
	}
	// The edge's page cache; it is also the edge.Purger for purges.
	pageCache := pagecache.New(pagecache.Config{MaxBytes: cfg.CacheBytes, Logger: log.With("component", "pagecache")})

	// The shards of this process (inproc.go): "local", "local-2" … and
	// whatever the local provider adds when they are full.
	shards := &inprocShards{
		dataDir: dataDir, log: log, publicURL: publicURL, purges: purges,
		transferURL: "file://" + filepath.Join(dataDir, "transfers"), version: cfg.Version,
		heartbeatTimeout: cfg.HeartbeatTimeout, firewall: fwMode, loopbackPorts: loopbackPorts,
		directDB: cfg.DirectDB, dbReplica: cfg.DBReplica,
	}
	var routes *routeSync
	cp, err := openControlPlane(ctx, controlPlaneConfig{
		dataDir: dataDir, storeSpec: cfg.Store, apiURL: apiURL, log: log, version: cfg.Version,
		publicURL: publicURL, publicHTTPSURL: publicHTTPSURL, purger: pageCache, metrics: extras.metrics.Handler(),
		heartbeatTimeout: cfg.HeartbeatTimeout, headroom: cfg.Headroom, backupURL: cfg.BackupURL, plans: cfg.Plans, auth: cfg.Auth,
		assistant: cfg.Assistant, allowPrivateFetch: cfg.AllowPrivateFetch, transferURL: shards.transferURL,
		provider: func(st store.Store) placement.Provider {
			return &control.LocalProvider{Store: st, Capacity: cfg.ShardCapacity, Start: shards.start}
		},
		wake: func() { shards.wakeAll(); routes.wake() },
	})
	if err != nil {
		closeLns()
		return err
	}
	st := cp.st
	defer cp.close()
	shards.st, shards.repos, shards.loginKey, shards.uploads = st, cp.repos, cp.loginKey, cp.uploads
	shards.catalogueURL, shards.allowPrivateFetch = cfg.CatalogueURL, cfg.AllowPrivateFetch
	shards.after = func() { cp.hub.Notify(); routes.wake(); cp.controller.Wake(); cp.backups.Wake() }
	routes = newRouteSync(st, log)
	routes.purger = pageCache
	// Every shard of this process is local to its edge.
	routes.loc = Locality{ShardDirs: []string{filepath.Join(dataDir, "shards")}}

	// The edge: the WAF guards PHP — it inspects what would run code; pages
	// from the cache and static files never reach PHP (internal/edge/doc.go).
	edgeLog := log.With("component", "edge")
	// WAF events go straight into the store (an `aipress edge` sends them
	// to the API instead).
	wafEvents := waf.NewReporter(waf.ReporterConfig{Logger: log.With("component", "waf"),
		Send: func(ctx context.Context, evs []site.WAFEvent) error {
			_, err := api.IngestWAFEvents(ctx, st, time.Now(), evs)
			return err
		}})
	fw, err := waf.New(waf.Config{Logger: log.With("component", "waf"), Events: wafEvents})
	if err != nil {
		closeLns()
		return err
	}
	go func() { _ = fw.Prepare(1) }() // build the default rule set before the first request needs it
	// Bandwidth per site per month, against the plans: the counts go
	// straight into the store (an `aipress edge` reports them to the API).
	sitePlans := cfg.Plans
	if sitePlans == nil {
		sitePlans = plans.Defaults()
	}
	// Each site's traffic for the portal's charts goes with them.
	traffic := sitemetrics.NewRecorder()
	meter := bandwidth.New(bandwidth.Config{Logger: log.With("component", "bandwidth"),
		Send: func(ctx context.Context, b map[string]int64) ([]string, error) {
			sites := traffic.Take()
			r, err := api.IngestReport(ctx, st, sitePlans, cp.siteMetrics, time.Now(), &api.UsageReport{Bytes: b, Sites: sites})
			if err != nil {
				traffic.Return(sites)
				return nil, err
			}
			return r.Over, nil
		}})
	mws := []edge.Middleware{purge.KeyringMiddleware(purges.ring, pageCache, edgeLog)} // first: purges never reach the WAF, the cache or PHP
	mws = append(mws, meter.Middleware())                                              // 509 for sites over their monthly bandwidth
	mws = append(mws, extras.middlewares()...)                                         // rate limit, HTTPS redirect
	mws = append(mws, pageCache.Middleware())
	ed := edge.New(edge.Config{Logger: edgeLog, Middlewares: mws,
		PHPMiddlewares: []edge.Middleware{fw.Middleware()}, Observe: observeAll(extras.metrics.Observe, meter.Observe, siteObserver(traffic, time.Now))})
	extras.edge.Store(ed)
	routes.target = ed

	apiSrv := &http.Server{Handler: cp.handler, ReadHeaderTimeout: 10 * time.Second}
	edgeSrv := &http.Server{Handler: extras.httpHandler(ed), ReadHeaderTimeout: 10 * time.Second}
	var httpsSrv *http.Server
	if httpsLn != nil {
		httpsSrv = &http.Server{Handler: ed, ReadHeaderTimeout: 10 * time.Second, TLSConfig: extras.tlsConfig}
	}
	var wg sync.WaitGroup
	// Periodic control-plane work, on the elected replica only (leader.go).
	leadCtx, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := cp.lead(leadCtx, log, nil); err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()
	serve := func(name string, srv *http.Server, ln net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("server stopped", "server", name, "err", err)
			}
		}()
	}
	serve("api", apiSrv, apiLn)
	serve("edge", edgeSrv, edgeLn)
	debugSrv := &http.Server{Handler: debugHandler(st, log), ReadHeaderTimeout: 10 * time.Second}
	if cfg.DebugAddr != "" {
		if debugLn, err := net.Listen("tcp", cfg.DebugAddr); err != nil {
			log.Error("debug listener not started", "err", err)
		} else {
			serve("debug", debugSrv, debugLn)
			log.Info("serving pprof to admin tokens", "addr", debugLn.Addr().String())
		}
	}
	if httpsSrv != nil {
		serve("edge-https", httpsSrv, tls.NewListener(httpsLn, extras.tlsConfig))
		log.Info("edge HTTPS", "addr", httpsLn.Addr().String(), "ca", filepath.Join(dataDir, "tls", "ca.crt"))
	}
	log.Info("AIPress is up", "api", apiURL, "edge", edgeLn.Addr().String(), "data_dir", dataDir)
	logPortal(log, apiURL, cp.adminPasswordFile)
	wg.Add(1)
	go func() { defer wg.Done(); routes.run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); wafEvents.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); meter.Run(ctx) }()

	// The shards: the first cfg.Shards exist from the start; every local
	// shard of the store runs in this process.
	runErr := make(chan error, 1)
	initial, err := shards.ensure(ctx, max(cfg.Shards, 1), cfg.ShardCapacity)
	if err != nil {
		runErr <- err
	} else {
		shards.ctx, shards.runErr = ctx, runErr
		if err := shards.startAll(ctx); err != nil {
			runErr <- err
		}
		go func() {
			if shards.waitReady(ctx, initial) {
				routes.wake()
				log.Info("local shards ready", "shards", len(initial))
				if cfg.Ready != nil {
					cfg.Ready()
				}
			}
		}()
	}

	var result error
	select {
	case <-ctx.Done():
	case err := <-runErr:
		result = err
	}
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = apiSrv.Shutdown(shutdownCtx)
	_ = debugSrv.Close()
	_ = edgeSrv.Shutdown(shutdownCtx)
	if httpsSrv != nil {
		_ = httpsSrv.Shutdown(shutdownCtx)
	}
	stopLeading()
	if result != nil {
		// A shard did not start: stop the others too.
		shards.stopAll()
	}
	shards.wait()
	wg.Wait()
	if result != nil {
		return result
	}
	log.Info("stopped")
	return nil
}

// ensureAdminToken creates the admin token on first start and (re)writes
// the client configuration next to it.
func ensureAdminToken(ctx context.Context, st store.Store, dataDir, apiURL string) error {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	hash := store.TokenHash(token)
	if err != nil || token == "" {
		if token, hash, err = store.NewTokenSecret(); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	if _, err := st.LookupToken(ctx, hash); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateToken(ctx, store.Token{ID: "admin-" + hash[:8], Name: "admin", Role: store.RoleAdmin, Hash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // WriteFile keeps an existing file's mode
		return fmt.Errorf("admin token: %w", err)
	}
	if err := apiclient.WriteConfig(dataDir, apiURL, token); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}

// publicURLFunc returns the function that gives a site's URL: http, the
// domain, and the edge's port unless it is 80.
func publicURLFunc(addr net.Addr) func(string) string {
	port := ""
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.Port != 80 {
		port = fmt.Sprintf(":%d", tcp.Port)
	}
	return func(domain string) string { return "http://" + domain + port }
}

// httpsURLFunc returns the function that gives a site's URL over HTTPS:
// https, the domain, and port unless it is 443; nil when port is 0 or
// less (no HTTPS listener).
func httpsURLFunc(port int) func(string) string {
	if port <= 0 {
		return nil
	}
	suffix := ""
	if port != 443 {
		suffix = fmt.Sprintf(":%d", port)
	}
	return func(domain string) string { return "https://" + domain + suffix }
}

// clientAddr turns a listener address into one a client can dial.
func clientAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}
