package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// ShardConfig configures a shard agent: one local shard (its own MariaDB,
// php-fpm master and sites) that registers with the control plane, follows
// the sites assigned to it, reports their status and heartbeats.
type ShardConfig struct {
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
	// registered and converged once): the pod's probes on Kubernetes.
	HealthAddr string
	// SiteFirewall keeps the shard's site users off this machine's
	// services and the metadata address (package sitefw; default auto),
	// allowing them LoopbackPorts (the edges' HTTP and HTTPS ports) and
	// the DNS resolvers.
	SiteFirewall  FirewallMode
	LoopbackPorts []int
	// onShard, if set, is given the shard once it exists (up wakes it).
	onShard func(*shard.Shard)
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

// shardLink is how a shard agent talks to its control plane: over the API
// (`aipress shard`, package agent), or inside `aipress up` straight to the
// store.
type shardLink interface {
	Register(ctx context.Context, reg Registration) error
	Heartbeat(ctx context.Context, usage store.Usage) error
	// Sites is where the shard reads and reports; wake is called when the
	// shard's sites changed.
	Sites(wake func()) shard.Sites
	// Jobs is where the shard finds and reports its jobs; wake is called
	// when they changed.
	Jobs(wake func()) shard.Jobs
	// Repos opens backup repositories for the shard.
	Repos() repoOpener
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

// runShardAgent runs a shard agent over link until ctx ends.
func runShardAgent(ctx context.Context, cfg ShardConfig, link shardLink) error {
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
		PurgeURL: cfg.PurgeURL, PurgeKey: cfg.PurgeKey, TransferURL: cfg.TransferURL,
		Database: cfg.Database, Volumes: cfg.SiteVolumes,
		DirectDB: cfg.DirectDB, Replica: cfg.DBReplica, ReplicaManaged: cfg.DBReplicaManaged,
		DBBufferPool: cfg.DBBufferPool,
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
	if cfg.onShard != nil {
		cfg.onShard(sh)
	}
	health := &agentHealth{}
	if cfg.HealthAddr != "" {
		if err := health.serve(ctx, cfg.HealthAddr, log); err != nil {
			return fmt.Errorf("health endpoint: %w", err)
		}
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
	go func() {
		select {
		case <-sh.Ready():
			health.ready.Store(true) // registered above, converged now
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
func heartbeat(ctx context.Context, link shardLink, sites shard.Sites, name string, every time.Duration, log *slog.Logger, measure func() shard.Usage) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		m := measure()
		u := store.Usage{MemoryBytes: m.MemoryBytes, DiskBytes: m.DiskBytes}
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

// storeLink is the shardLink of a shard inside `aipress up`: the store is
// in the same process.
type storeLink struct {
	st    store.Store
	repos *repos.Manager
	// loginKey derives sites' login keys (nil: no sign-in links).
	loginKey func(uid string) []byte
	// uploads is the control plane's bucket of uploaded artefacts (nil:
	// none).
	uploads *blob.Bucket
	name    string
	now     func() time.Time
	after   func() // wakes the route sync and the controller
}

func (l *storeLink) Register(ctx context.Context, reg Registration) error {
	_, err := l.st.UpdateShard(ctx, l.name, func(sh *store.Shard) error {
		sh.Capacity, sh.Labels, sh.Roots, sh.AgentVersion = reg.Capacity, reg.Labels, reg.Roots, reg.AgentVersion
		sh.Dir, sh.Gateway = reg.Dir, reg.Gateway
		if reg.Provider != "" {
			sh.Provider = reg.Provider
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("register shard %s: %w", l.name, err)
	}
	l.after()
	return nil
}

func (l *storeLink) Heartbeat(ctx context.Context, u store.Usage) error {
	return l.st.Heartbeat(ctx, l.name, l.now(), u)
}

func (l *storeLink) Sites(wake func()) shard.Sites {
	return notifyingSites{Sites: shard.FromStore(l.st), after: l.after}
}

func (l *storeLink) Jobs(func()) shard.Jobs {
	return storeJobs{st: l.st, name: l.name, after: l.after}
}

func (l *storeLink) Repos() repoOpener { return managerRepos(l.repos, l.name) }

func (l *storeLink) Uploads() func(context.Context, string) (io.ReadCloser, error) {
	return uploadsFunc(l.uploads)
}

func (l *storeLink) Certificate(context.Context, []byte) ([]byte, []byte, error) {
	return nil, nil, errors.New("shards inside `aipress up` serve only its own edge: they have no gateway")
}

func (l *storeLink) CABundle(context.Context) ([]byte, error) {
	return nil, errors.New("shards inside `aipress up` serve only its own edge: they have no gateway")
}

func (l *storeLink) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
