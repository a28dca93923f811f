// Package shardagent is AIPress's shard agent: one local shard (package
// shard: its own MariaDB, php-fpm master and sites) that registers with the
// control plane, follows the sites and jobs placed on it, reports their
// status and heartbeats, and optionally serves a gateway for edges on other
// machines (gateway.go), a health endpoint (health.go) and the site
// firewall (sitefw.go).
//
// The agent talks to its control plane through a Link: Run (`aipress
// shard`) uses the API (apilink.go, package agent); `aipress up` (package
// up) runs its shards with RunLink over the store in its own process.
package shardagent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/backup/repo"
	_ "github.com/aipress/aipress/internal/blobdrivers" // s3:// and gs:// backup and transfer URLs
	"github.com/aipress/aipress/internal/certmetrics"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/shardmetrics"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Config configures a shard agent: one local shard (its own MariaDB,
// php-fpm master and sites) that registers with the control plane, follows
// the sites assigned to it, reports their status and heartbeats.
type Config struct {
	Name    string
	DataDir string
	// Capacity (0: the default, 50) and Labels (region, zone, tier …) are
	// registered with the control plane, which places sites by them.
	Capacity int
	Labels   map[string]string
	Provider string
	// PublicURL returns a site's URL (WP_HOME).
	PublicURL func(domain string) string
	// PurgeURL and PurgeKey wire the WordPress cache plugin's purges to an
	// edge (see shard.Config); empty: no purges.
	PurgeURL string
	PurgeKey func(site string) string
	// TransferURL is the bucket (gocloud.dev/blob URL) moves go through;
	// every shard that exchanges sites must use the same one.
	TransferURL       string
	HeartbeatInterval time.Duration // default 5s
	// UsageInterval is how often the agent reports its sites' database
	// and file sizes and database statements for their usage records
	// (default DefaultUsageInterval; see usage.go).
	UsageInterval time.Duration
	// GatewayAddr, if set, is where the shard's gateway for edges on other
	// machines listens (mutual TLS with certificates the control plane
	// issues; edge.Gateway): static files, try_files decisions and FastCGI
	// to the pools' sockets. Edges reach it at GatewayAdvertise (see
	// GatewayAdvertise). Empty: no gateway — only edges on this machine,
	// configured with this shard's directory, serve its sites.
	GatewayAddr, GatewayAdvertise string
	// SiteVolumes is shard.Config.Volumes: auto (default), on or off.
	SiteVolumes string
	// CatalogueURL is the wordpress.org-compatible catalogue plugins,
	// themes and cores come from (default artefact.DefaultCatalogueURL,
	// https://api.wordpress.org); the shard's artefact store is
	// <DataDir>/artefacts.
	CatalogueURL string
	// AllowPrivateFetch lets fetches of URLs users name (zip and git
	// sources, git sync repositories) and catalogue downloads reach
	// loopback and private addresses, over plain http too
	// (--allow-private-fetch): for tests and private mirrors only; off,
	// they reach only public addresses over https (package egress).
	AllowPrivateFetch bool
	// Database, if set, is the external MySQL/MariaDB server of the
	// sites' databases (see shard.Config.Database); nil: the shard runs
	// its own MariaDB.
	Database *mariadb.Remote
	// DirectDB turns the shard's connection pooler off (shard.Config.
	// DirectDB; --db-pooler=false); DBReplica is shard.Config.Replica
	// (--db-replica: "", "local" or HOST:PORT).
	DirectDB  bool
	DBReplica string
	// DBPoolerBackends is shard.Config.PoolerBackends
	// (--db-pooler-backends).
	DBPoolerBackends int
	// DBPoolerLinger is shard.Config.PoolerLinger (--db-pooler-linger).
	DBPoolerLinger time.Duration
	// DBReplicaManaged is shard.Config.ReplicaManaged
	// (--db-replica-managed): the shard seeds DBReplica and starts its
	// replication itself.
	DBReplicaManaged bool
	// DBBufferPool is shard.Config.DBBufferPool (--db-buffer-pool).
	DBBufferPool int64
	Logger       *slog.Logger
	Version      string
	// Ready is called once the shard converged its sites for the first
	// time.
	Ready func()
	// HealthAddr, if set, serves /livez and /readyz there (ready once
	// registered and converged once): the pod's probes on Kubernetes; and
	// the shard's Prometheus metrics (package shardmetrics) at /metrics,
	// to requests with the bearer token in MetricsTokenFile (default
	// <DataDir>/metrics-token, made on the first start: serve.
	// MetricsTokenFile).
	HealthAddr       string
	MetricsTokenFile string
	// SiteFirewall keeps the shard's site users off this machine's
	// services and the metadata address (package sitefw; default auto),
	// allowing them LoopbackPorts (the edges' HTTP and HTTPS ports) and
	// the DNS resolvers.
	SiteFirewall  FirewallMode
	LoopbackPorts []int
	// OnShard, if set, is given the shard once it exists (`aipress up`
	// wakes it).
	OnShard func(*shard.Shard)
}

// GatewayCredentialsDir is the directory in a shard's data directory that
// holds its gateway's key and certificate (0700).
const GatewayCredentialsDir = "gateway-tls"

// Registration is what a shard agent tells the control plane about itself.
type Registration struct {
	Capacity     int
	Labels       map[string]string
	Roots        []string
	Provider     string
	AgentVersion string
	Dir          string // the shard's data directory (absolute)
	Gateway      string // where edges reach its gateway; empty: none
}

// Link is how a shard agent talks to its control plane: over the API
// (`aipress shard`, package agent; Run), or inside `aipress up` straight to
// the store (package up; RunLink).
type Link interface {
	Register(ctx context.Context, reg Registration) error
	Heartbeat(ctx context.Context, usage store.Usage) error
	// Usage sends a report of the shard's sites' usage (api.
	// ShardUsageReport); an error of store.ErrInvalid or a 400 answer
	// says the report itself is wrong.
	Usage(ctx context.Context, rep *api.ShardUsageReport) error
	// Sites is where the shard reads and reports; wake is called when the
	// shard's sites changed.
	Sites(wake func()) shard.Sites
	// Jobs is where the shard finds and reports its jobs; wake is called
	// when they changed.
	Jobs(wake func()) shard.Jobs
	// Repos opens backup repositories for the shard.
	Repos() RepoOpener
	// Certificate issues the shard's gateway certificate for csrPEM and
	// returns it with the platform's CA certificate.
	Certificate(ctx context.Context, csrPEM []byte) (certPEM, caPEM []byte, err error)
	// CABundle returns the CA bundle the control plane serves now (Keep
	// renews when it changed: a CA rotation).
	CABundle(ctx context.Context) (caPEM []byte, err error)
	// MoveKeys gives the keys of the shard's sites' moves (movekey.go).
	MoveKeys() shard.MoveKeyFunc
	// LoginKeys gives the login keys of the shard's sites (loginkey.go).
	LoginKeys() shard.LoginKeyFunc
	// Uploads opens the archives organisations uploaded (artefacts.go;
	// the shard's artefact store checks their SHA-256).
	Uploads() func(ctx context.Context, sha256 string) (io.ReadCloser, error)
	// Run follows the control plane until ctx ends (a no-op for the store).
	Run(ctx context.Context) error
}

// RepoOpener is how a shard opens backup repositories (shard.RepoAccess).
type RepoOpener = func(ctx context.Context, name string) (*repo.Repo, error)

// RunLink runs a shard agent over link until ctx ends.
func RunLink(ctx context.Context, cfg Config, link Link) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("shard", cfg.Name)
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("shard dir: %w", err)
	}
	var gatewayLn net.Listener
	gateway := ""
	var creds *mtls.Credentials
	if cfg.GatewayAddr != "" {
		if gatewayLn, err = net.Listen("tcp", cfg.GatewayAddr); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		defer gatewayLn.Close()
		if gateway, err = GatewayAdvertise(gatewayLn.Addr(), cfg.GatewayAdvertise, cfg.GatewayAddr); err != nil {
			return err
		}
		if creds, err = mtls.LoadCredentials(filepath.Join(dir, GatewayCredentialsDir), mtls.Identity{Role: mtls.RoleShard, Name: cfg.Name}); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	scfg := shard.Config{
		Name: cfg.Name, Dir: dir, PublicURL: cfg.PublicURL, Logger: log,
		PurgeURL: cfg.PurgeURL, PurgeKey: cfg.PurgeKey, TransferURL: cfg.TransferURL, AllowPrivateFetch: cfg.AllowPrivateFetch,
		Database: cfg.Database, Volumes: cfg.SiteVolumes,
		DirectDB: cfg.DirectDB, Replica: cfg.DBReplica, ReplicaManaged: cfg.DBReplicaManaged,
		PoolerBackends: cfg.DBPoolerBackends, PoolerLinger: cfg.DBPoolerLinger, DBBufferPool: cfg.DBBufferPool,
	}
	setShardRepos(&scfg, link.Repos())
	scfg.MoveKey = link.MoveKeys()
	scfg.LoginKey = link.LoginKeys()
	if scfg.Artefacts, err = openShardArtefacts(dir, cfg.CatalogueURL, link.Uploads(), cfg); err != nil {
		return err
	}
	var fwAllow []string
	if cfg.Database != nil && cfg.DirectDB {
		// The sites' DB_HOST. With the pooler, only the agent connects to
		// the database server: site users may not, so its limits hold.
		fwAllow = append(fwAllow, cfg.Database.Addr)
	}
	fw, err := openSiteFirewall(ctx, cfg.SiteFirewall, dir, cfg.LoopbackPorts, fwAllow, log)
	if err != nil {
		return err
	}
	// The rules go when the agent returns, unless site processes may
	// still run (an error while the shard runs): then they stay for this
	// process's life.
	keepRules := false
	if fw != nil {
		scfg.SiteUsers = fw
		defer func() {
			if !keepRules {
				if err := fw.Delete(); err != nil {
					log.Warn("removing the site firewall", "err", err)
				}
			}
			fw.Close()
		}()
	}
	sh := shard.New(scfg)
	if cfg.OnShard != nil {
		cfg.OnShard(sh)
	}
	health := &serve.Health{}
	if cfg.HealthAddr != "" {
		// The endpoint stops when the agent returns, on an error too.
		hctx, stopHealth := context.WithCancel(ctx)
		defer stopHealth()
		tokenFile := cfg.MetricsTokenFile
		if tokenFile == "" {
			tokenFile = filepath.Join(dir, serve.MetricsTokenFile)
		}
		sm := shardmetrics.New(sh, shardmetrics.Config{Shard: cfg.Name, Runtime: true})
		if creds != nil {
			// The gateway's mesh certificate, for the expiry alert.
			sm.Registry().MustRegister(certmetrics.New(func() []certmetrics.Cert { return certmetrics.Mesh(creds) }))
		}
		metrics, err := serve.MetricsHandler(sm.Handler(), tokenFile, "the shard's metrics token file", log)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := serveHealth(hctx, health, metrics, cfg.HealthAddr, log); err != nil {
			return fmt.Errorf("health endpoint: %w", err)
		}
		log.Info("shard metrics", "url", "http://"+cfg.HealthAddr+"/metrics", "bearer_token_file", tokenFile)
	}
	if err := sh.Prepare(ctx); err != nil {
		return err
	}
	reg := Registration{Capacity: cfg.Capacity, Labels: cfg.Labels, Roots: sh.AllowedSymlinkRoots(), Provider: cfg.Provider,
		AgentVersion: cfg.Version, Dir: dir, Gateway: gateway}
	for {
		err = link.Register(ctx, reg)
		if err == nil {
			break
		}
		log.Warn("registering with the control plane", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	log.Info("shard registered", "capacity", cfg.Capacity, "labels", cfg.Labels)
	var static *shardStatic
	if gatewayLn != nil {
		// The gateway needs its certificate before it can serve anyone.
		for !creds.Ready(time.Now()) {
			err := creds.Renew(ctx, link.Certificate)
			if err == nil {
				break
			}
			log.Warn("getting the gateway's certificate from the control plane", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		go func() {
			_ = creds.Keep(ctx, link.Certificate, link.CABundle, mtls.CheckInterval, nil, log.With("component", "gateway"))
		}()
		static = newShardStatic(cfg.Name, sh, log.With("component", "gateway"))
		go static.serve(ctx, gatewayLn, creds)
		log.Info("gateway for edges on other machines", "listen", gatewayLn.Addr().String(), "advertise", gateway,
			"identity", creds.Self().String(), "not_after", creds.NotAfter())
	}
	sites := link.Sites(sh.Wake)
	if static != nil {
		sites = static.wrap(sites)
	}
	jobs := link.Jobs(func() { wakeShardJobs(sh) })
	runErr := make(chan error, 3)
	go func() { runErr <- link.Run(ctx) }()
	go heartbeat(ctx, link, sites, cfg.Name, cfg.HeartbeatInterval, log, sh.Usage)
	if cfg.UsageInterval <= 0 {
		cfg.UsageInterval = DefaultUsageInterval
	}
	usage := &usageReporter{send: link.Usage, measure: sh.Measure, log: log}
	go usage.run(ctx, cfg.UsageInterval)
	go func() {
		select {
		case <-sh.Ready():
			health.SetReady() // registered above, converged now
			if cfg.Ready != nil {
				cfg.Ready()
			}
		case <-ctx.Done():
		}
	}()
	go func() { runErr <- sh.Run(ctx, sites) }()
	go func() { runErr <- runShardJobs(ctx, sh, sites, jobs) }()
	err = <-runErr
	if ctx.Err() != nil {
		<-runErr
		<-runErr
		return nil // php-fpm and every site process have stopped
	}
	keepRules = true
	return err
}

// heartbeat beats every interval with the shard's usage until ctx ends. The
// first beat is immediate, so a (re)started shard turns Ready at once.
func heartbeat(ctx context.Context, link Link, sites shard.Sites, name string, every time.Duration, log *slog.Logger, measure func() shard.Usage) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		m := measure()
		u := store.Usage{MemoryBytes: m.MemoryBytes, DiskBytes: m.DiskBytes, Sites: m.Sites, Serving: m.Serving}
		// The counts are the shard's from its last pass (the first beats,
		// before one, list the sites): listing them on every beat decoded
		// all of the shard's sites from the store twice as often as its
		// passes do, only to count them.
		if !m.SitesKnown {
			if list, err := sites.ListSites(ctx, name); err == nil {
				for _, s := range list {
					if s.Status.Shard == name {
						u.Sites++
						if s.Status.Phase == site.PhaseReady {
							u.Serving++
						}
					}
				}
			}
		}
		if err := link.Heartbeat(ctx, u); err != nil && ctx.Err() == nil {
			if !failing {
				log.Warn("heartbeat failed", "err", err)
			}
			failing = true
		} else if failing {
			log.Info("heartbeat restored")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
