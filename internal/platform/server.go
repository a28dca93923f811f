package platform

import (
	"context"
	"errors"
	"fmt"
	"github.com/aipress/aipress/internal/portal"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/backup/backupctl"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/loginlink"
	"github.com/aipress/aipress/internal/mcpserver"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/password"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/rollout"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

// ServerConfig configures `aipress server`: the control plane alone (API,
// store, the leader's loops), with shard agents and edges running
// elsewhere and connecting to it.
type ServerConfig struct {
	DataDir string
	// Store: empty for SQLite in <DataDir>/aipress.db, or a postgres:// URL.
	Store   string
	APIAddr string
	Logger  *slog.Logger
	Version string
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

// controlPlane is the store, the API and the leader's loops: what
// `aipress server` runs, and `aipress up` too.
type controlPlane struct {
	st         store.Store
	el         elector
	hub        interface{ Notify() }
	controller *control.Controller
	backups    *backupctl.Controller
	rollouts   *rollout.Controller
	rotations  *control.Rotations
	// gitSync polls the git repositories sites and organisations sync
	// from (package gitsync), while this replica leads.
	gitSync *gitsync.Poller
	repos   *repos.Manager
	handler http.Handler
	apiURL  string
	// siteMetrics holds the sites' traffic for the charts, in memory
	// (edges report it with their usage).
	siteMetrics *sitemetrics.Store
	// loginKey is each site's login key (loginlink.Key of the platform
	// secret), for the API and the shards of this process.
	loginKey func(uid string) []byte
	// adminPasswordFile holds the bootstrap admin's password ("": it has
	// none there; see ensureAdminPassword).
	adminPasswordFile string
	// uploads keeps the artefacts organisations upload
	// (<data dir>/artefacts).
	uploads *blob.Bucket
	// transfer is the transfer store (exports' archives), nil without one.
	transfer *blob.Bucket
}

type controlPlaneConfig struct {
	dataDir, storeSpec string
	apiURL             string
	log                *slog.Logger
	version            string
	publicURL          func(string) string
	// publicHTTPSURL is a site's URL over HTTPS (nil: the edges serve no
	// HTTPS; api.Config.PublicHTTPSURL).
	publicHTTPSURL   func(string) string
	purger           api.Purger
	metrics          http.Handler
	provider         func(st store.Store) placement.Provider
	heartbeatTimeout time.Duration
	headroom         float64
	// backupURL is the bucket of the backup repositories (default
	// file://<dataDir>/backups).
	backupURL string
	// wake is called after every API mutation and leader write, besides
	// the hub (for in-process watchers: route sync, local shards).
	wake func()
	// maxShardCapacity caps shards' registered capacities (0: the API's
	// default).
	maxShardCapacity int
	// plans: nil for plans.Defaults().
	plans     *plans.Set
	auth      AuthOptions
	assistant AssistantOptions
	// allowPrivateFetch: git sync may fetch from loopback and private
	// addresses (Config.AllowPrivateFetch).
	allowPrivateFetch bool
	// transferURL is the transfer store the shards write exports to
	// (api.Config.Transfer; "": exports cannot be downloaded).
	transferURL string
}

func openControlPlane(ctx context.Context, cfg controlPlaneConfig) (*controlPlane, error) {
	st, err := storeopen.Open(ctx, cfg.storeSpec, cfg.dataDir)
	if err != nil {
		return nil, err
	}
	el, err := newElector(cfg.storeSpec, cfg.log)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := ensureAdminToken(ctx, st, cfg.dataDir, cfg.apiURL); err != nil {
		st.Close()
		return nil, err
	}
	kek, err := repos.LoadKEK(filepath.Join(cfg.dataDir, repos.KEKFile))
	if err != nil {
		st.Close()
		return nil, err
	}
	if cfg.backupURL == "" {
		cfg.backupURL = repos.DefaultBaseURL(cfg.dataDir)
	}
	// The CA of the edge ↔ gateway channel and the move keys derive from
	// the platform secret (the KEK's bytes when it was created), so that a
	// KEK rotation changes neither: replicas sharing it issue under one CA
	// (package mtls).
	secret, err := repos.LoadPlatformSecret(filepath.Join(cfg.dataDir, repos.PlatformSecretFile), kek)
	if err != nil {
		st.Close()
		return nil, err
	}
	manager, err := repos.New(repos.Config{BaseURL: cfg.backupURL, KEK: kek, KEKFile: filepath.Join(cfg.dataDir, repos.KEKFile),
		MoveSecret: secret, Options: &repo.Options{Owner: "control plane"}})
	if err != nil {
		st.Close()
		return nil, err
	}
	ca, err := mtls.NewCA(secret, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	// The audit log's checkpoints are signed with a key derived from the
	// platform secret too (package auditlog): editing the database cannot
	// forge one, and a KEK rotation leaves old checkpoints verifiable.
	// A checkpoint due at start (entries chained by an upgrade, or left
	// unsigned by a crash) is signed now.
	auditSigner, err := auditlog.NewSigner(secret)
	if err != nil {
		st.Close()
		return nil, err
	}
	if _, err := auditlog.CheckpointIfDue(ctx, st, auditSigner, 0, time.Now()); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.plans == nil {
		cfg.plans = plans.Defaults()
	}
	auth, err := authConfig(ctx, cfg.auth, cfg.dataDir, secret, cfg.log.With("component", "auth"))
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	// The bootstrap admin's first password (adminpassword.go).
	if auth.Passwords == nil {
		if auth.Passwords, err = password.New(password.DefaultParams); err != nil {
			_ = manager.Close()
			st.Close()
			return nil, err
		}
	}
	adminPassword, err := ensureAdminPassword(ctx, st, cfg.dataDir, auth.Passwords)
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	cp := &controlPlane{st: st, el: el, apiURL: cfg.apiURL, repos: manager, adminPasswordFile: adminPassword,
		loginKey: func(uid string) []byte { return loginlink.Key(secret, uid) }}
	hub := api.NewHub(st, cfg.log.With("component", "revhub"))
	cp.hub = hub
	wake := cfg.wake
	if wake == nil {
		wake = func() {}
	}
	notify := func() { hub.Notify(); wake() }
	var provider placement.Provider
	if cfg.provider != nil {
		provider = cfg.provider(st)
	}
	cp.controller = control.New(control.Config{
		Store: st, Provider: provider, Placer: placement.Placer{Headroom: cfg.headroom},
		Logger: cfg.log.With("component", "control"), HeartbeatTimeout: cfg.heartbeatTimeout,
		Notify: notify,
	})
	cp.backups = backupctl.New(backupctl.Config{
		Store: st, Repos: manager, Policy: cfg.plans.BackupPolicy, Logger: cfg.log.With("component", "backups"),
		Notify: notify,
	})
	// Staged and fleet updates (package rollout): the leader runs them.
	cp.rollouts = rollout.New(rollout.Config{
		Store: st, Plans: cfg.plans, PublicURL: cfg.publicURL, Logger: cfg.log.With("component", "rollout"),
		Notify: notify,
	})
	cp.rotations = control.NewRotations(control.RotationConfig{
		Store: st, Every: cfg.plans.RotationPolicy, Logger: cfg.log.With("component", "rotations"), Notify: notify,
	})
	web, err := portal.New()
	if err != nil {
		return nil, err
	}
	// The MCP endpoint's tools call this same API with the caller's
	// credential (internal/mcpserver).
	mcpSrv, err := mcpserver.New(mcpserver.Config{BaseURL: cfg.apiURL, Version: cfg.version,
		Logger: cfg.log.With("component", "mcp")})
	if err != nil {
		return nil, err
	}
	cp.siteMetrics = sitemetrics.New(sitemetrics.Config{})
	// The assistant calls the API in process, through the handler built
	// below (so each call is authenticated, authorized and audited).
	var apiHandler http.Handler
	asst, err := newAssistant(ctx, cfg.assistant, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiHandler.ServeHTTP(w, r)
	}), cfg.log.With("component", "assistant"))
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	if cp.uploads, err = openUploads(cfg.dataDir); err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	// Git sync: records (sealed with a key derived from the platform
	// secret) served by the API; the poller applies commits through the
	// API's own apply path, run by the leader (lead).
	gitKey, err := gitsync.SealKey(secret)
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	gitManager, err := gitsync.NewManager(gitsync.ManagerConfig{Store: st, Key: gitKey, AllowPrivateNetworks: cfg.allowPrivateFetch})
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	if cfg.transferURL != "" {
		if cp.transfer, err = openTransfer(ctx, cfg.transferURL); err != nil {
			_ = manager.Close()
			st.Close()
			return nil, err
		}
	}
	apiCfg := api.Config{
		Transfer:    cp.transfer,
		GitSync:     gitManager,
		Uploads:     cp.uploads,
		MCP:         mcpSrv,
		SiteMetrics: cp.siteMetrics,
		Portal:      web,
		Store:       st, Hub: hub, Notify: func() { notify(); cp.controller.Wake(); cp.backups.Wake(); cp.rollouts.Wake() },
		Logger: cfg.log.With("component", "api"), Version: cfg.version, PublicURL: cfg.publicURL,
		PublicHTTPSURL: cfg.publicHTTPSURL,
		Purger:         cfg.purger, Metrics: cfg.metrics, Backups: manager, MeshCA: ca, MaxShardCapacity: cfg.maxShardCapacity,
		AuditSigner: auditSigner, LoginKey: cp.loginKey,
		Plans:     cfg.plans,
		Auth:      auth,
		Assistant: asst,
	}
	cp.handler = api.New(apiCfg)
	apiHandler = cp.handler
	cp.gitSync, err = gitsync.NewPoller(gitsync.PollerConfig{Manager: gitManager, Applier: api.GitApplier(apiCfg),
		CacheDir: filepath.Join(cfg.dataDir, "gitsync"), Logger: cfg.log.With("component", "gitsync"),
		AllowPrivateNetworks: cfg.allowPrivateFetch})
	if err != nil {
		_ = manager.Close()
		st.Close()
		return nil, err
	}
	return cp, nil
}

// close closes the repositories and the store.
func (cp *controlPlane) close() {
	if cp.transfer != nil {
		_ = cp.transfer.Close()
	}
	if cp.uploads != nil {
		_ = cp.uploads.Close()
	}
	_ = cp.repos.Close()
	_ = cp.st.Close()
}

// lead runs the controller (and extra, if set) while this replica leads,
// until ctx ends.
func (cp *controlPlane) lead(ctx context.Context, log *slog.Logger, extra func(ctx context.Context)) error {
	return cp.el.Run(ctx, func(ctx context.Context) {
		log.Info("leading the control plane's periodic work", "lease", LeaseName)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.backups.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.rotations.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.gitSync.Run(ctx) }()
		wg.Add(1)
		go func() { defer wg.Done(); _ = cp.rollouts.Run(ctx) }()
		if extra != nil {
			wg.Add(1)
			go func() { defer wg.Done(); extra(ctx) }()
		}
		_ = cp.controller.Run(ctx)
		wg.Wait()
		log.Info("no longer leading the control plane's periodic work", "lease", LeaseName)
	})
}

// heartbeatInterval is how often the shards a server starts beat: a third of
// the timeout (so one lost beat never makes a shard Unhealthy), at most 5s.
func heartbeatInterval(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	return min(max(timeout/3, 500*time.Millisecond), 5*time.Second)
}

// RunServer runs `aipress server` until ctx ends.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
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
	apiURL := "http://" + clientAddr(ln.Addr())
	port := ""
	if cfg.PublicPort != 0 && cfg.PublicPort != 80 {
		port = fmt.Sprintf(":%d", cfg.PublicPort)
	}
	spawner := &childShards{
		dataDir: dataDir, binary: cfg.Binary, apiURL: apiURL, publicPort: cfg.PublicPort,
		log: log, transferURL: cfg.TransferURL, heartbeat: heartbeatInterval(cfg.HeartbeatTimeout),
		purgeURL: cfg.PurgeURL, purgeSecretFile: cfg.PurgeSecretFile, catalogueURL: cfg.CatalogueURL,
		allowPrivateFetch: cfg.AllowPrivateFetch,
	}
	ccfg := controlPlaneConfig{
		dataDir: dataDir, storeSpec: cfg.Store, apiURL: apiURL, log: log, version: cfg.Version, backupURL: cfg.BackupURL,
		publicURL:        func(d string) string { return "http://" + d + port },
		publicHTTPSURL:   httpsURLFunc(cfg.PublicHTTPSPort),
		heartbeatTimeout: cfg.HeartbeatTimeout, headroom: cfg.Headroom,
		maxShardCapacity: cfg.MaxShardCapacity, plans: cfg.Plans, auth: cfg.Auth, assistant: cfg.Assistant,
		transferURL:       cfg.TransferURL,
		allowPrivateFetch: cfg.AllowPrivateFetch,
	}
	if ccfg.maxShardCapacity == 0 {
		ccfg.maxShardCapacity = max(api.DefaultMaxShardCapacity, cfg.ShardCapacity)
	}
	var kubeErr error
	switch {
	case cfg.ShardProvider == ShardProviderKubernetes:
		cfg.SpawnShards = false
		ccfg.provider = func(st store.Store) placement.Provider {
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
		ccfg.provider = func(st store.Store) placement.Provider {
			return &control.LocalProvider{Store: st, Capacity: cfg.ShardCapacity, Start: spawner.start}
		}
	}
	cp, err := openControlPlane(ctx, ccfg)
	if err == nil && kubeErr != nil {
		cp.st.Close()
		err = kubeErr
	}
	if err != nil {
		ln.Close()
		return err
	}
	defer cp.close()
	srv := &http.Server{Handler: cp.handler, ReadHeaderTimeout: 10 * time.Second}
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
		err := cp.lead(ctx, log, func(ctx context.Context) {
			if cfg.SpawnShards {
				spawner.restartAll(ctx, cp.st)
			}
		})
		if err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()
	log.Info("AIPress control plane is up", "api", apiURL, "data_dir", dataDir, "transfer_url", cfg.TransferURL,
		"backup_url", cp.repos.BaseURL(), "backup_kek", filepath.Join(dataDir, repos.KEKFile))
	logPortal(log, apiURL, cp.adminPasswordFile)
	if cfg.Ready != nil {
		cfg.Ready(apiURL)
	}
	<-ctx.Done()
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	spawner.wait()
	wg.Wait()
	log.Info("stopped")
	return nil
}
