package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/mariadb"
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
	// SiteVolumes is shard.Config.Volumes: auto (default), on or off.
	SiteVolumes string
	// Remote edges (see shard.Config): PoolListen puts the pools on TCP
	// (PoolAdvertise, ports PoolPortFirst-PoolPortLast, AllowedClients);
	// StaticAddr serves the sites' static files and try_files decisions to
	// edges on other machines, at StaticAdvertise (see StaticURL). Empty:
	// Unix sockets and no static server — edges share this machine.
	PoolListen, PoolAdvertise   string
	PoolPortFirst, PoolPortLast int
	AllowedClients              shard.Clients
	StaticAddr, StaticAdvertise string
	// Database, if set, is the external MySQL/MariaDB server of the
	// sites' databases (see shard.Config.Database); nil: the shard runs
	// its own MariaDB.
	Database *mariadb.Remote
	Logger   *slog.Logger
	Version  string
	// Ready is called once the shard converged its sites for the first
	// time.
	Ready func()
	// HealthAddr, if set, serves /livez and /readyz there (ready once
	// registered and converged once): the pod's probes on Kubernetes.
	HealthAddr string
	// onShard, if set, is given the shard once it exists (up wakes it).
	onShard func(*shard.Shard)
}

// Registration is what a shard agent tells the control plane about itself.
type Registration struct {
	Capacity     int
	Labels       map[string]string
	Roots        []string
	Provider     string
	AgentVersion string
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
	var staticLn net.Listener
	staticURL := ""
	if cfg.StaticAddr != "" {
		if staticLn, err = net.Listen("tcp", cfg.StaticAddr); err != nil {
			return fmt.Errorf("static server: %w", err)
		}
		defer staticLn.Close()
		poolAdvertise := cfg.PoolAdvertise
		if poolAdvertise == "" {
			poolAdvertise = cfg.PoolListen
		}
		if staticURL, err = StaticURL(staticLn.Addr(), cfg.StaticAdvertise, cfg.StaticAddr, poolAdvertise); err != nil {
			return err
		}
	}
	scfg := shard.Config{
		Name: cfg.Name, Dir: dir, PublicURL: cfg.PublicURL, Logger: log,
		PurgeURL: cfg.PurgeURL, PurgeKey: cfg.PurgeKey, TransferURL: cfg.TransferURL,
		PoolListen: cfg.PoolListen, PoolAdvertise: cfg.PoolAdvertise, PoolPortFirst: cfg.PoolPortFirst, PoolPortLast: cfg.PoolPortLast,
		AllowedClients: cfg.AllowedClients, StaticURL: staticURL, Database: cfg.Database,
		Volumes: cfg.SiteVolumes,
	}
	setShardRepos(&scfg, link.Repos())
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
	var static *shardStatic
	if staticLn != nil {
		clients := cfg.AllowedClients
		if len(clients) == 0 {
			clients = shard.DefaultClients
		}
		static = newShardStatic(cfg.Name, sh, clients, log.With("component", "static"))
		go static.serve(ctx, staticLn)
		log.Info("static server for remote edges", "listen", staticLn.Addr().String(), "url", staticURL)
	}
	reg := Registration{Capacity: cfg.Capacity, Labels: cfg.Labels, Roots: sh.AllowedSymlinkRoots(), Provider: cfg.Provider, AgentVersion: cfg.Version}
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
		return nil
	}
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
	name  string
	now   func() time.Time
	after func() // wakes the route sync and the controller
}

func (l *storeLink) Register(ctx context.Context, reg Registration) error {
	_, err := l.st.UpdateShard(ctx, l.name, func(sh *store.Shard) error {
		sh.Capacity, sh.Labels, sh.Roots, sh.AgentVersion = reg.Capacity, reg.Labels, reg.Roots, reg.AgentVersion
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

func (l *storeLink) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
