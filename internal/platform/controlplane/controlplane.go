// Package controlplane is AIPress's control plane: the store, the REST API
// (with the portal, MCP and the revision hub that wakes long polls) and the
// leader's periodic work (internal/control: placement, shard health,
// drains, pruning; backups, rollouts, secret rotations, git sync) under a
// leader elector (leader.go: on PostgreSQL only the replica holding the
// lease runs it; on SQLite the one process always leads).
//
// Run is `aipress server`: the control plane alone, with shard agents and
// edges elsewhere calling its API, and the local provider's shards started
// as child processes (childshards.go) or Kubernetes StatefulSets
// (kubeprovider.go). Open builds the same control plane for `aipress up`
// (package up), whose shards and edge use its store in process.
package controlplane

import (
	"context"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/backup/backupctl"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	_ "github.com/aipress/aipress/internal/blobdrivers" // s3:// and gs:// backup and transfer URLs
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/cpmetrics"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/loginlink"
	"github.com/aipress/aipress/internal/mcpserver"
	"github.com/aipress/aipress/internal/memreturn"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/portal"
	"github.com/aipress/aipress/internal/revhub"
	"github.com/aipress/aipress/internal/rollout"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
	"github.com/aipress/aipress/internal/store/tokencache"
	"github.com/aipress/aipress/internal/transfersweep"
)

// Config configures `aipress server`: the control plane alone (API,
// store, the leader's loops), with shard agents and edges running
// elsewhere and connecting to it.
type Config struct {
	DataDir string
	// Store: empty for SQLite in <DataDir>/aipress.db, or a postgres:// URL.
	Store   string
	APIAddr string
	// DebugAddr, if set, serves Go's pprof profiles there to admin tokens
	// (DebugHandler), as `aipress up --debug-addr` does.
	DebugAddr string
	Logger    *slog.Logger
	Version   string
	// PublicPort is the edges' HTTP port, for sites' URLs (default 80).
	PublicPort int
	// PublicHTTPSPort is the edges' HTTPS port (0: the edges serve no
	// HTTPS): sites that redirect to HTTPS get https:// sign-in links.
	PublicHTTPSPort int
	// ShardCapacity is the capacity of shards the local provider creates
	// (0: placement.DefaultCapacity).
	ShardCapacity int
	// MaxShardCapacity caps the capacity shard agents register (0:
	// api.DefaultMaxShardCapacity, raised to ShardCapacity if that is
	// larger): a shard's token does not decide how many sites it gets.
	MaxShardCapacity int
	// HeartbeatTimeout: a shard silent this long is Unhealthy (default 15s).
	HeartbeatTimeout time.Duration
	// Headroom is the placement headroom (placement.Placer).
	Headroom float64
	// SpawnShards: when every shard is full, the leader starts a new local
	// shard as a child process (`aipress shard`) of this server, in
	// <DataDir>/shards/<name>. Binary is the executable to run (default
	// this one).
	SpawnShards bool
	Binary      string
	// ExportExpiry is how long export archives stay in the transfer store
	// (transfersweep; 0: 7 days, negative: for ever).
	ExportExpiry time.Duration
	// TransferURL is the transfer store shard agents exchange moving
	// sites through (gocloud.dev/blob URL); default file://<DataDir>/transfers.
	TransferURL string
	// PurgeURL and PurgeSecretFile are passed on to the local shards the
	// server starts (see `aipress shard --purge-url`); empty: none.
	PurgeURL, PurgeSecretFile string
	// CatalogueURL is passed on to the local shards the server starts
	// (--catalogue-url; "": their default, https://api.wordpress.org).
	CatalogueURL string
	// AllowPrivateFetch lets fetches of URLs users name (zip and git
	// sources, git sync repositories) and catalogue downloads reach
	// loopback and private addresses, over plain http too
	// (--allow-private-fetch; git sync here, and passed on to the
	// local shards the server starts): for tests and private mirrors only; off,
	// they reach only public addresses over https (package egress).
	AllowPrivateFetch bool
	// BackupURL is the bucket (gocloud.dev/blob URL) of the backup
	// repositories, one per shard under it; default file://<DataDir>/backups.
	// The key-encryption key is <DataDir>/backup-kek (created on first
	// start; back it up apart from the data dir).
	BackupURL string
	// Plans are the platform's plans (nil: plans.Defaults()).
	Plans *plans.Set
	// Prices price GET /v1/cost (nil: cost.Default()).
	Prices *cost.Sheet
	// ShardProvider is ShardProviderLocal (default: SpawnShards decides) or
	// ShardProviderKubernetes (Kube configures it; TransferURL, if set
	// explicitly, is passed to the shards).
	ShardProvider string
	Kube          KubeConfig
	// Ready is called once the API listens.
	Ready func(apiURL string)
	// Auth configures signing in (passwords, OIDC, sign-up).
	Auth AuthOptions
	// Assistant configures /v1/assistant (provider, model, key, limit).
	Assistant AssistantOptions
}

// ControlPlane is the store, the API and the leader's loops: what
// `aipress server` runs, and `aipress up` too (with its shards and edge in
// the same process, which use Store, Hub, Repos, LoginKey and Uploads
// directly).
type ControlPlane struct {
	// Store is the control plane's store.
	Store store.Store
	// Hub wakes the API's long polls, and the edge's route watch in
	// process (api.RouteSource), when the store's revision moves.
	Hub *revhub.Hub
	// Repos opens the backup repositories with the key-encryption key.
	Repos *repos.Manager
	// Handler serves the API (and the portal, MCP, metrics).
	Handler http.Handler
	// SiteMetrics holds the sites' traffic for the charts, in memory
	// (edges report it with their usage).
	SiteMetrics *sitemetrics.Store
	// Metrics are the control plane's Prometheus metrics (package
	// cpmetrics), served at the API's /metrics.
	Metrics *cpmetrics.Metrics
	// LoginKey is each site's login key (loginlink.Key of the platform
	// secret), for the API and the shards of this process.
	LoginKey func(uid string) []byte
	// Uploads keeps the artefacts organisations upload
	// (<data dir>/artefacts).
	Uploads *blob.Bucket
	// Transfer is the transfer store (exports' archives), nil without
	// Options.TransferURL.
	Transfer *blob.Bucket

	el         elector
	controller *control.Controller
	backups    *backupctl.Controller
	rollouts   *rollout.Controller
	rotations  *control.Rotations
	// gitSync polls the git repositories sites and organisations sync
	// from (package gitsync), while this replica leads.
	gitSync *gitsync.Poller
	apiURL  string
	// adminPasswordFile holds the bootstrap admin's password ("": it has
	// none there; see ensureAdminPassword).
	adminPasswordFile string
	exportExpiry      time.Duration // Options.ExportExpiry
}

// Options configure Open.
type Options struct {
	// DataDir holds the SQLite store (unless StoreSpec), the admin token,
	// the keys and the uploads.
	DataDir string
	// StoreSpec: empty for SQLite in <DataDir>/aipress.db, or a
	// postgres:// URL.
	StoreSpec string
	// APIURL is where clients reach the API (written to the client
	// configuration; the MCP endpoint calls it).
	APIURL  string
	Logger  *slog.Logger
	Version string
	// PublicURL is a site's URL; PublicHTTPSURL its URL over HTTPS (nil:
	// the edges serve no HTTPS; api.Config.PublicHTTPSURL).
	PublicURL, PublicHTTPSURL func(string) string
	// Purger purges edges' page caches for the API (nil: none); Metrics,
	// if set, is served at the API's /metrics with the control plane's
	// own metrics (package cpmetrics; `aipress up`: its edge's and
	// shards'), and has the Go runtime and process collectors; nil: the
	// control plane's registry has them.
	Purger  api.Purger
	Metrics prometheus.Gatherer
	// Logs finds sites' logs for the API (nil: the PHP logs of the child
	// shards under <DataDir>/shards, no access logs; api.LocalLogs).
	Logs api.SiteLogs
	// Provider makes the shard provider over the store (nil: none).
	Provider         func(st store.Store) placement.Provider
	HeartbeatTimeout time.Duration
	Headroom         float64
	// BackupURL is the bucket of the backup repositories (default
	// file://<DataDir>/backups).
	BackupURL string
	// Wake is called after every API mutation and leader write, besides
	// the hub (for in-process watchers: local shards).
	Wake func()
	// MaxShardCapacity caps shards' registered capacities (0: the API's
	// default).
	MaxShardCapacity int
	// Plans: nil for plans.Defaults().
	Plans *plans.Set
	// Prices: nil for cost.Default().
	Prices    *cost.Sheet
	Auth      AuthOptions
	Assistant AssistantOptions
	// AllowPrivateFetch: git sync may fetch from loopback and private
	// addresses.
	AllowPrivateFetch bool
	// TransferURL is the transfer store the shards write exports to
	// (api.Config.Transfer; "": exports cannot be downloaded).
	TransferURL string
	// ExportExpiry is how long the leader keeps export archives in the
	// transfer store (transfersweep.Sweeper: 0 means 7 days, negative for
	// ever).
	ExportExpiry time.Duration
}

// Open opens the store and builds the control plane; Lead runs its
// periodic work, Close closes it.
func Open(ctx context.Context, cfg Options) (_ *ControlPlane, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rawStore, err := storeopen.Open(ctx, cfg.StoreSpec, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	// Everything but the metrics' own reads goes through the timed store.
	var backups *backupctl.Controller // set below, before the API serves
	metrics := cpmetrics.New(cpmetrics.Config{Store: rawStore, Runtime: cfg.Metrics == nil,
		Backups: func() map[string]cpmetrics.BackupCoverage { return backupCoverage(backups) },
		BackupRepos: func() map[string]int64 {
			if backups == nil {
				return nil
			}
			return backups.RepositoryBytes()
		}})
	// Verified tokens are kept a few seconds (revocations through st
	// take effect at once; see package tokencache).
	st := tokencache.Wrap(metrics.Store(rawStore), tokencache.Config{})
	// On every error below, what was opened is closed.
	var manager *repos.Manager
	var uploads, transfer *blob.Bucket
	defer func() {
		if err != nil {
			if uploads != nil {
				_ = uploads.Close()
			}
			if transfer != nil {
				_ = transfer.Close()
			}
			if manager != nil {
			}
		}
	}()
	el, err := newElector(cfg.StoreSpec, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if err := ensureAdminToken(ctx, st, cfg.DataDir, cfg.APIURL); err != nil {
		return nil, err
	}
	kek, err := repos.LoadKEK(filepath.Join(cfg.DataDir, repos.KEKFile))
	if err != nil {
		return nil, err
	}
	if cfg.BackupURL == "" {
		cfg.BackupURL = repos.DefaultBaseURL(cfg.DataDir)
	}
	// The CA of the edge ↔ gateway channel and the move keys derive from
	// the platform secret (the KEK's bytes when it was created), so that a
	// KEK rotation changes neither: replicas sharing it issue under one CA
	// (package mtls).
	secret, err := repos.LoadPlatformSecret(filepath.Join(cfg.DataDir, repos.PlatformSecretFile), kek)
	if err != nil {
		return nil, err
	}
	manager, err = repos.New(repos.Config{BaseURL: cfg.BackupURL, KEK: kek, KEKFile: filepath.Join(cfg.DataDir, repos.KEKFile),
		MoveSecret: secret, Options: &repo.Options{Owner: "control plane"}})
	if err != nil {
		return nil, err
	}
	ca, err := mtls.NewCA(secret, nil)
	if err != nil {
		return nil, err
	}
	logs, err := siteLogs(cfg, st, ca)
	if err != nil {
		return nil, err
	}
	// The audit log's checkpoints are signed with a key derived from the
	// platform secret too (package auditlog): editing the database cannot
	// forge one, and a KEK rotation leaves old checkpoints verifiable.
	// A checkpoint due at start (entries chained by an upgrade, or left
	// unsigned by a crash) is signed now.
	auditSigner, err := auditlog.NewSigner(secret)
	if err != nil {
		return nil, err
	}
	if _, err := auditlog.CheckpointIfDue(ctx, st, auditSigner, 0, time.Now()); err != nil {
		return nil, err
	}
	if cfg.Plans == nil {
		cfg.Plans = plans.Defaults()
	}
	auth, err := authConfig(ctx, cfg.Auth, cfg.DataDir, secret, cfg.Logger.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	// The bootstrap admin's first password (adminpassword.go).
	if auth.Passwords == nil {
		if auth.Passwords, err = password.New(password.DefaultParams); err != nil {
			return nil, err
		}
	}
	adminPassword, err := ensureAdminPassword(ctx, st, cfg.DataDir, auth.Passwords)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Store: st, Metrics: metrics, el: el, apiURL: cfg.APIURL, Repos: manager, adminPasswordFile: adminPassword,
		LoginKey: func(uid string) []byte { return loginlink.Key(secret, uid) }}
	hub := api.NewHub(st, cfg.Logger.With("component", "revhub"))
	cp.Hub = hub
	wake := cfg.Wake
	if wake == nil {
		wake = func() {}
	}
	notify := func() { hub.Notify(); wake() }
	var provider placement.Provider
	if cfg.Provider != nil {
		provider = cfg.Provider(st)
	}
	cp.controller = control.New(control.Config{
		Store: st, Provider: provider, Placer: placement.Placer{Headroom: cfg.Headroom},
		Logger: cfg.Logger.With("component", "control"), HeartbeatTimeout: cfg.HeartbeatTimeout,
		Notify: notify,
	})
	cp.backups = backupctl.New(backupctl.Config{
		Store: st, Repos: manager, Policy: cfg.Plans.BackupPolicy, Logger: cfg.Logger.With("component", "backups"),
		Notify: notify,
	})
	backups = cp.backups
	// Staged and fleet updates (package rollout): the leader runs them.
	cp.rollouts = rollout.New(rollout.Config{
		Store: st, Plans: cfg.Plans, PublicURL: cfg.PublicURL, Logger: cfg.Logger.With("component", "rollout"),
		Notify: notify,
	})
	cp.rotations = control.NewRotations(control.RotationConfig{
		Store: st, Every: cfg.Plans.RotationPolicy, Logger: cfg.Logger.With("component", "rotations"), Notify: notify,
	})
	web, err := portal.New()
	if err != nil {
		return nil, err
	}
	// The MCP endpoint's tools call this same API with the caller's
	// credential (internal/mcpserver).
	mcpSrv, err := mcpserver.New(mcpserver.Config{BaseURL: cfg.APIURL, Version: cfg.Version,
		Logger: cfg.Logger.With("component", "mcp")})
	if err != nil {
		return nil, err
	}
	cp.SiteMetrics = sitemetrics.New(sitemetrics.Config{})
	// The assistant calls the API in process, through the handler built
	// below (so each call is authenticated, authorized and audited).
	var apiHandler http.Handler
	asst, err := newAssistant(ctx, cfg.Assistant, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiHandler.ServeHTTP(w, r)
	}), cfg.Logger.With("component", "assistant"))
	if err != nil {
		return nil, err
	}
	if uploads, err = openUploads(cfg.DataDir); err != nil {
		return nil, err
	}
	cp.Uploads = uploads
	if cfg.TransferURL != "" {
		if transfer, err = openTransfer(ctx, cfg.TransferURL); err != nil {
			return nil, err
		}
		cp.Transfer = transfer
		cp.exportExpiry = cfg.ExportExpiry
	}
	// Git sync: records (sealed with a key derived from the platform
	// secret) served by the API; the poller applies commits through the
	// API's own apply path, run by the leader (lead).
	gitKey, err := gitsync.SealKey(secret)
	if err != nil {
		return nil, err
	}
	gitManager, err := gitsync.NewManager(gitsync.ManagerConfig{Store: st, Key: gitKey, AllowPrivateNetworks: cfg.AllowPrivateFetch})
	if err != nil {
		return nil, err
	}
	apiCfg := api.Config{
		GitSync:     gitManager,
		Uploads:     cp.Uploads,
		Transfer:    cp.Transfer,
		MCP:         mcpSrv,
		SiteMetrics: cp.SiteMetrics,
		Portal:      web,
		Store:       st, Hub: hub, Notify: func() { notify(); cp.controller.Wake(); cp.backups.Wake(); cp.rollouts.Wake() },
		Logger: cfg.Logger.With("component", "api"), Version: cfg.Version, PublicURL: cfg.PublicURL,
		PublicHTTPSURL: cfg.PublicHTTPSURL,
		Purger:         cfg.Purger, Metrics: metricsHandler(metrics, cfg.Metrics), Observe: metrics.ObserveAPI, Logs: logs, Backups: manager, MeshCA: ca, MaxShardCapacity: cfg.MaxShardCapacity,
		AuditSigner: auditSigner, LoginKey: cp.LoginKey,
		Plans:     cfg.Plans,
		Prices:    cfg.Prices,
		Auth:      auth,
		Assistant: asst,
	}
	cp.Handler = api.New(apiCfg)
	apiHandler = cp.Handler
	cp.gitSync, err = gitsync.NewPoller(gitsync.PollerConfig{Manager: gitManager, Applier: api.GitApplier(apiCfg),
		CacheDir: filepath.Join(cfg.DataDir, "gitsync"), Logger: cfg.Logger.With("component", "gitsync"),
		AllowPrivateNetworks: cfg.AllowPrivateFetch})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// Close closes the uploads, the repositories and the store.
func (cp *ControlPlane) Close() {
	if cp.Uploads != nil {
		_ = cp.Uploads.Close()
	}
	if cp.Transfer != nil {
		_ = cp.Transfer.Close()
	}
	_ = cp.Repos.Close()
	_ = cp.Store.Close()
}

// ShardWrote wakes what follows a shard's writes in this process: the
// long polls (and the edge's route watch), the controller and the backups.
func (cp *ControlPlane) ShardWrote() {
	cp.Hub.Notify()
	cp.controller.Wake()
	cp.backups.Wake()
}

// LogPortal says where the portal is and how to sign in to it.
func (cp *ControlPlane) LogPortal(log *slog.Logger) { logPortal(log, cp.apiURL, cp.adminPasswordFile) }

// Lead runs the controller (and extra, if set) while this replica leads,
// until ctx ends.
func (cp *ControlPlane) Lead(ctx context.Context, log *slog.Logger, extra func(ctx context.Context)) error {
	return cp.el.Run(ctx, func(ctx context.Context) {
		log.Info("leading the control plane's periodic work", "lease", LeaseName)
		cp.Metrics.SetLeading(true)
		defer cp.Metrics.SetLeading(false)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.backups.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.rotations.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.gitSync.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.rollouts.Run(ctx) }()
		if cp.Transfer != nil {
			// Export archives are downloaded, not kept.
			sw := &transfersweep.Sweeper{Bucket: cp.Transfer, Expiry: cp.exportExpiry, Log: log}
			wg.Add(1)
			go func() { defer wg.Done(); _ = sw.Run(ctx) }()
		}
		if extra != nil {
			wg.Add(1)
			go func() { defer wg.Done(); extra(ctx) }()
		}
		_ = cp.controller.Run(ctx)
		wg.Wait()
		log.Info("no longer leading the control plane's periodic work", "lease", LeaseName)
	})
}

// HeartbeatInterval is how often the shards a control plane starts beat: a
// third of its heartbeat timeout (so one lost beat never makes a shard
// Unhealthy), at most 5s.
func HeartbeatInterval(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	return min(max(timeout/3, 500*time.Millisecond), 5*time.Second)
}

// Run runs `aipress server` until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	go memreturn.Run(ctx, memreturn.Config{}) // idle heap back to the OS after bursts
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	kubeTransferURL := cfg.TransferURL // the server's own directory means nothing to shard pods
	if cfg.TransferURL == "" {
		cfg.TransferURL = "file://" + filepath.Join(dataDir, "transfers")
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	apiURL := "http://" + serve.ClientAddr(ln.Addr())
	spawner := &childShards{
		dataDir: dataDir, binary: cfg.Binary, apiURL: apiURL, publicPort: cfg.PublicPort,
		log: log, transferURL: cfg.TransferURL, heartbeat: HeartbeatInterval(cfg.HeartbeatTimeout),
		purgeURL: cfg.PurgeURL, purgeSecretFile: cfg.PurgeSecretFile, catalogueURL: cfg.CatalogueURL,
		allowPrivateFetch: cfg.AllowPrivateFetch,
	}
	ccfg := Options{
		DataDir: dataDir, StoreSpec: cfg.Store, APIURL: apiURL, Logger: log, Version: cfg.Version, BackupURL: cfg.BackupURL,
		PublicURL:        serve.HTTPURL(cfg.PublicPort),
		PublicHTTPSURL:   serve.HTTPSURL(cfg.PublicHTTPSPort),
		HeartbeatTimeout: cfg.HeartbeatTimeout, Headroom: cfg.Headroom,
		MaxShardCapacity: cfg.MaxShardCapacity, Plans: cfg.Plans, Prices: cfg.Prices, Auth: cfg.Auth, Assistant: cfg.Assistant,
		AllowPrivateFetch: cfg.AllowPrivateFetch, TransferURL: cfg.TransferURL, ExportExpiry: cfg.ExportExpiry,
	}
	if ccfg.MaxShardCapacity == 0 {
		ccfg.MaxShardCapacity = max(api.DefaultMaxShardCapacity, cfg.ShardCapacity)
	}
	var kubeErr error
	switch {
	case cfg.ShardProvider == ShardProviderKubernetes:
		cfg.SpawnShards = false
		ccfg.Provider = func(st store.Store) placement.Provider {
			p, err := newKubeProvider(cfg, kubeTransferURL, st, log)
			if err != nil {
				kubeErr = err
				return nil
			}
			return p
		}
	case cfg.ShardProvider != "" && cfg.ShardProvider != ShardProviderLocal:
		ln.Close()
		return fmt.Errorf("unknown shard provider %q (want %s or %s)", cfg.ShardProvider, ShardProviderLocal, ShardProviderKubernetes)
	case cfg.SpawnShards:
		ccfg.Provider = func(st store.Store) placement.Provider {
			return &control.LocalProvider{Store: st, Capacity: cfg.ShardCapacity, Start: spawner.start}
		}
	}
	cp, err := Open(ctx, ccfg)
	if err == nil && kubeErr != nil {
		cp.Close()
		err = kubeErr
	}
	if err != nil {
		ln.Close()
		return err
	}
	defer cp.Close()
	var debugSrv *http.Server // closed at once on stop, not drained (a CPU profile takes 30s)
	if cfg.DebugAddr != "" {
		debugLn, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("debug listen: %w", err)
		}
		debugSrv = &http.Server{Handler: DebugHandler(cp.Store, log), ReadHeaderTimeout: serve.ReadHeaderTimeout}
		go func() { _ = debugSrv.Serve(debugLn) }()
		log.Info("serving pprof to admin tokens", "addr", debugLn.Addr().String())
	}
	srv := &http.Server{Handler: cp.Handler, ReadHeaderTimeout: serve.ReadHeaderTimeout}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		err := cp.Lead(ctx, log, func(ctx context.Context) {
			if cfg.SpawnShards {
				spawner.restartAll(ctx, cp.Store)
			}
		})
		if err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()
	log.Info("AIPress control plane is up", "api", apiURL, "data_dir", dataDir, "transfer_url", cfg.TransferURL,
		"backup_url", cp.Repos.BaseURL(), "backup_kek", filepath.Join(dataDir, repos.KEKFile))
	cp.LogPortal(log)
	if cfg.Ready != nil {
		cfg.Ready(apiURL)
	}
	<-ctx.Done()
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if debugSrv != nil {
		_ = debugSrv.Close()
	}
	_ = srv.Shutdown(shutdownCtx)
	spawner.wait()
	wg.Wait()
	log.Info("stopped")
	return nil
}

// metricsHandler serves the control plane's registry and extra (nil: none)
// as one.
func metricsHandler(m *cpmetrics.Metrics, extra prometheus.Gatherer) http.Handler {
	if extra == nil {
		return m.Handler()
	}
	g := prometheus.Gatherers{m.Registry(), extra}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// backupCoverage adapts the backup scheduler's coverage for the metrics.
func backupCoverage(c *backupctl.Controller) map[string]cpmetrics.BackupCoverage {
	if c == nil {
		return nil
	}
	out := map[string]cpmetrics.BackupCoverage{}
	for shard, sc := range c.Coverage() {
		bc := cpmetrics.BackupCoverage{States: map[string]int{}, Alerts: sc.Alerts, OldestGood: sc.OldestGood}
		for state, n := range sc.States {
			bc.States[string(state)] = n
		}
		out[shard] = bc
	}
	return out
}

// siteLogs is the API's reader of sites' logs: cfg.Logs, else the PHP
// logs of the child shards on this machine and, through the mesh with the
// control plane's own certificate (in <data dir>/ControlCredentialsDir),
// the other shards' PHP logs and the edges' access logs.
func siteLogs(cfg Options, st store.Store, ca *mtls.CA) (api.SiteLogs, error) {
	if cfg.Logs != nil {
		return cfg.Logs, nil
	}
	creds, err := api.ControlCredentials(filepath.Join(cfg.DataDir, ControlCredentialsDir), controlIdentity(), ca, st, nil)
	if err != nil {
		return nil, err
	}
	return api.MeshLogs{Local: api.LocalLogs{ShardsDir: filepath.Join(cfg.DataDir, "shards")}, Store: st, Credentials: creds}, nil
}

// ControlCredentialsDir holds, in the control plane's data directory, its
// key and certificate for reading logs from shards and edges (0700).
const ControlCredentialsDir = "mesh-control"

// controlIdentity names this replica in its certificate: its host name,
// as far as an identity allows ("control" when nothing is left of it).
func controlIdentity() mtls.Identity {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		}
	}
	name := strings.Trim(b.String(), ".-")
	if len(name) > 63 {
		name = strings.Trim(name[:63], ".-")
	}
	id := mtls.Identity{Role: mtls.RoleControl, Name: name}
	if id.Valid() != nil {
		id.Name = "control"
	}
	return id
}
