// Package up is `aipress up`: the control plane (package controlplane),
// the local shards ("local", "local-2" …, shard agents of package
// shardagent whose link to the control plane is the store in the same
// process: storeLink) and the edge (package edgenode) in one process, on an
// embedded SQLite store in one data directory or, with Config.Store, on
// PostgreSQL.
//
// Start-up order of Run: the edge's listeners first (the control plane
// needs its address for sites' URLs, its page cache for purges and its
// metrics), then the store and the API (a client can create sites at once),
// then the edge itself, following the store through the same route watch
// an `aipress edge` runs over the API (api.RouteSource), then the shards,
// whose MariaDB and php-fpm take a few seconds on a fresh data directory.
// The edge answers only once its routing table is loaded and the first
// shards' servers (MariaDB, php-fpm with the pools it had, pooler) are up,
// at most edgenode.ServeWaitLimit: a restart under load shows no 404, 502
// or 500 from a half-started platform; connections wait in the listeners'
// backlog meanwhile.
//
// The control plane's periodic work (internal/control: placement, shard
// health, drains, tombstone pruning) runs under the leader elector: on
// PostgreSQL only the replica holding the lease runs it; on SQLite the one
// process always leads. Shards' convergence, orphan collection and the
// route watch are per-process and never gated.
package up

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/memreturn"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/edgenode"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/uptime"
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
	// ProbeInterval is the edge's uptime probe interval
	// (edgenode.Config.ProbeInterval: 0 default, negative off).
	ProbeInterval time.Duration
	// EdgeNetHTTPOnly serves the edge's plain HTTP with net/http alone
	// (edgenode.Config.NetHTTPOnly: no lean HTTP/1.1 path).
	EdgeNetHTTPOnly bool
	// DebugAddr, if set, serves Go's pprof profiles (net/http/pprof) there
	// to requests with an admin API token (Authorization: Bearer).
	DebugAddr string
	// HealthAddr, if set, serves /livez and /readyz there, as `aipress
	// shard --health-addr` does (serve.Health): /readyz answers 200 once
	// the first Shards shards have converged for the first time (when
	// Ready is called), 503 before.
	HealthAddr string
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
	SiteFirewall shardagent.FirewallMode
	// Auth configures signing in (passwords, OIDC, sign-up).
	Auth controlplane.AuthOptions
	// Assistant configures /v1/assistant (provider, model, key, limit).
	Assistant controlplane.AssistantOptions
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
	// ExportExpiry is how long export archives stay in the transfer store
	// (controlplane.Options.ExportExpiry: 0 means 7 days, negative for ever).
	ExportExpiry time.Duration
	// DirectDB turns the local shards' connection poolers off (their
	// sites' PHP connects to MariaDB directly; shard.Config.DirectDB);
	// DBReplica is their read replica ("" none, "local": a second
	// mariadbd beside each shard's; shard.Config.Replica).
	DirectDB  bool
	DBReplica string
	// DBPoolerBackends is the shards' shard.Config.PoolerBackends.
	DBPoolerBackends int
	// DBPoolerLinger is the shards' shard.Config.PoolerLinger.
	DBPoolerLinger time.Duration
	// DBBufferPool is the InnoDB buffer pool of each local shard's
	// MariaDB in bytes (0: mariadb.DefaultBufferPool; --db-buffer-pool).
	DBBufferPool int64
}

// LocalShard is the name of the first shard `aipress up` runs; the others
// are "local-2", "local-3" ….
const LocalShard = "local"

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
	go memreturn.Run(ctx, memreturn.Config{}) // idle heap back to the OS after bursts
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

	// Every listener is closed on every error path below: the group's
	// (API, health, debug) by group.Shutdown, the edge's by edge.Close.
	group := serve.NewGroup(log)
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	}
	apiLn, err := group.Listen("api", cfg.APIAddr)
	if err != nil {
		return err
	}
	health := &serve.Health{}
	var healthLn net.Listener
	if cfg.HealthAddr != "" {
		if healthLn, err = group.Listen("health", cfg.HealthAddr); err != nil {
			group.Close()
			return err
		}
	}
	// The edge (package edgenode, the same as `aipress edge`): its
	// listeners, TLS, metrics, purge keys and page cache first.
	edge, err := edgenode.Open(edgenode.Config{
		DataDir: dataDir, HTTPAddr: cfg.HTTPAddr, HTTPSAddr: cfg.HTTPSAddr,
		ACMECA: cfg.ACMECA, ACMEEmail: cfg.ACMEEmail,
		RateIP: cfg.RateIP, RateSite: cfg.RateSite, RateIPBurst: cfg.RateIPBurst, RateSiteBurst: cfg.RateSiteBurst,
		CacheBytes: cfg.CacheBytes, ProbeInterval: cfg.ProbeInterval, NetHTTPOnly: cfg.EdgeNetHTTPOnly, Logger: log,
		// Every shard of this process is local to its edge.
		Locality: edgenode.Locality{ShardDirs: []string{filepath.Join(dataDir, "shards")}},
	})
	if err != nil {
		group.Close()
		return err
	}
	closeEdge := func() {
		sctx, cancel := shutdownCtx()
		defer cancel()
		edge.Close(sctx)
	}
	apiURL := "http://" + serve.ClientAddr(apiLn.Addr())
	publicURL := serve.HTTPURL(serve.PortOf(edge.Addr().String()))
	var publicHTTPSURL func(string) string
	if a := edge.HTTPSAddr(); a != nil {
		publicHTTPSURL = serve.HTTPSURL(serve.PortOf(a.String()))
	}
	// The site firewall: checked once here, so a process that cannot
	// apply it warns once, not once per shard.
	fwMode, err := shardagent.CheckFirewall(cfg.SiteFirewall, log)
	if err != nil {
		closeEdge()
		group.Close()
		return err
	}

	// The shards of this process (inproc.go): "local", "local-2" … and
	// whatever the local provider adds when they are full.
	shards := &inprocShards{
		dataDir: dataDir, log: log, publicURL: publicURL, purgeURL: edge.PurgeURL(), purgeKey: edge.PurgeKey,
		transferURL: "file://" + filepath.Join(dataDir, "transfers"), version: cfg.Version,
		heartbeatTimeout: cfg.HeartbeatTimeout, firewall: fwMode, loopbackPorts: edge.Ports(),
		directDB: cfg.DirectDB, dbReplica: cfg.DBReplica, poolerBackends: cfg.DBPoolerBackends, poolerLinger: cfg.DBPoolerLinger, dbBufferPool: cfg.DBBufferPool,
		metrics: &gatherers{edge: edge.Registry()},
	}
	cp, err := controlplane.Open(ctx, controlplane.Options{
		DataDir: dataDir, StoreSpec: cfg.Store, APIURL: apiURL, Logger: log, Version: cfg.Version,
		PublicURL: publicURL, PublicHTTPSURL: publicHTTPSURL, Purger: edge.Purger(), Metrics: shards.metrics,
		Logs: api.LocalLogs{AccessDir: edge.AccessLogs().Dir(), ShardsDir: filepath.Join(dataDir, "shards"),
			FlushAccess: func() {
				if err := edge.AccessLogs().Flush(); err != nil {
					log.Error("access log lines not written", "err", err)
				}
			}},
		HeartbeatTimeout: cfg.HeartbeatTimeout, Headroom: cfg.Headroom, BackupURL: cfg.BackupURL, Plans: cfg.Plans, Auth: cfg.Auth,
		Assistant: cfg.Assistant, AllowPrivateFetch: cfg.AllowPrivateFetch, TransferURL: shards.transferURL,
		ExportExpiry: cfg.ExportExpiry,
		Provider: func(st store.Store) placement.Provider {
			return &control.LocalProvider{Store: st, Capacity: cfg.ShardCapacity, Start: shards.start}
		},
		Wake: shards.wakeAll,
	})
	if err != nil {
		closeEdge()
		group.Close()
		return err
	}
	st := cp.Store
	defer cp.Close()
	shards.st, shards.repos, shards.loginKey, shards.uploads = st, cp.Repos, cp.LoginKey, cp.Uploads
	shards.catalogueURL, shards.allowPrivateFetch = cfg.CatalogueURL, cfg.AllowPrivateFetch
	shards.after = cp.ShardWrote

	// The edge follows the store with the watch an `aipress edge` runs
	// over the API, and reports into the store.
	sitePlans := cfg.Plans
	if sitePlans == nil {
		sitePlans = plans.Defaults()
	}
	// The edge answers once the first shards' servers are up (below).
	var initial []string
	shardsStarted := make(chan struct{})
	err = edge.Start(ctx, edgenode.Links{
		Routes:  api.RouteSource{Store: st, Hub: cp.Hub},
		Reports: storeReports{st: st, plans: sitePlans, siteMetrics: cp.SiteMetrics},
		ServeAfter: func(ctx context.Context) bool {
			select {
			case <-shardsStarted:
				return shards.waitServers(ctx, initial)
			case <-ctx.Done():
				return false
			}
		},
	})
	if err != nil {
		group.Close()
		return err
	}

	var wg sync.WaitGroup
	// Periodic control-plane work, on the elected replica only.
	leadCtx, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := cp.Lead(leadCtx, log, nil); err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()
	group.Serve("api", &http.Server{Handler: cp.Handler, ReadHeaderTimeout: serve.ReadHeaderTimeout}, apiLn)
	if healthLn != nil {
		group.Serve("health", &http.Server{Handler: health.Handler(), ReadHeaderTimeout: serve.ReadHeaderTimeout}, healthLn)
		log.Info("health endpoint", "addr", healthLn.Addr().String())
	}
	var debugSrv *http.Server // closed at once on stop, not drained (a CPU profile takes 30s)
	if cfg.DebugAddr != "" {
		if debugLn, err := group.Listen("debug", cfg.DebugAddr); err != nil {
			log.Error("debug listener not started", "err", err)
		} else {
			debugSrv = &http.Server{Handler: controlplane.DebugHandler(st, log), ReadHeaderTimeout: serve.ReadHeaderTimeout}
			group.Serve("debug", debugSrv, debugLn)
			log.Info("serving pprof to admin tokens", "addr", debugLn.Addr().String())
		}
	}
	log.Info("AIPress is up", "api", apiURL, "edge", edge.Addr().String(), "data_dir", dataDir)
	cp.LogPortal(log)

	// The shards: the first cfg.Shards exist from the start; every local
	// shard of the store runs in this process.
	runErr := make(chan error, 1)
	initial, err = shards.ensure(ctx, max(cfg.Shards, 1), cfg.ShardCapacity)
	if err != nil {
		close(shardsStarted)
		runErr <- err
	} else {
		shards.ctx, shards.runErr = ctx, runErr
		if err := shards.startAll(ctx); err != nil {
			runErr <- err
		}
		close(shardsStarted)
		go func() {
			if shards.waitReady(ctx, initial) {
				cp.Hub.Notify()
				health.SetReady()
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
	sctx, cancel := shutdownCtx()
	defer cancel()
	if debugSrv != nil {
		_ = debugSrv.Close()
	}
	group.Shutdown(sctx)
	edge.Close(sctx)
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

// storeReports is where the edge of `aipress up` sends WAF events and
// usage: straight into the store (an `aipress edge` sends them to the API,
// edgenode.APIReports), through the API's own ingestion.
type storeReports struct {
	st          store.Store
	plans       *plans.Set
	siteMetrics *sitemetrics.Store
}

func (r storeReports) WAFEvents(ctx context.Context, evs []site.WAFEvent) error {
	_, err := api.IngestWAFEvents(ctx, r.st, time.Now(), evs)
	return err
}

func (r storeReports) Probes(ctx context.Context, results []uptime.Result) error {
	_, err := api.IngestProbes(ctx, r.st, time.Now(), results)
	return err
}

func (r storeReports) Usage(ctx context.Context, rep *api.UsageReport) ([]string, error) {
	resp, err := api.IngestReport(ctx, r.st, r.plans, r.siteMetrics, "edge:local", time.Now(), rep)
	if err != nil {
		return nil, err
	}
	return resp.Over, nil
}
