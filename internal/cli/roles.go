package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/edgenode"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/ratelimit"
	"github.com/aipress/aipress/internal/shard"
	storeopen "github.com/aipress/aipress/internal/store/open"
	"github.com/aipress/aipress/internal/transfersweep"
	"github.com/aipress/aipress/internal/uptime"
)

// Environment variables of the separate roles.
const (
	EnvServer     = "AIPRESS_SERVER"
	EnvShardToken = "AIPRESS_SHARD_TOKEN"
	EnvEdgeToken  = "AIPRESS_EDGE_TOKEN"
	// The external database server of a shard (--db-host, --db-user,
	// --db-password-file); the Kubernetes provider sets them in the pod.
	EnvDBHost     = "AIPRESS_DB_HOST"
	EnvDBUser     = "AIPRESS_DB_USER"
	EnvDBPassword = "AIPRESS_DB_PASSWORD"
)

// dbRemote returns the shard's external database server from the flags,
// else the environment; nil when no host is given (the shard runs its own
// MariaDB).
func dbRemote(d deps, host, user, passwordFile, userHost string) (*mariadb.Remote, error) {
	if host == "" {
		host = d.getenv(EnvDBHost)
	}
	if host == "" {
		if user != "" || passwordFile != "" || userHost != "" {
			return nil, fmt.Errorf("--db-user, --db-password-file and --db-user-host need --db-host (or %s)", EnvDBHost)
		}
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return nil, fmt.Errorf("--db-host %q: want HOST:PORT", host)
	}
	if user == "" {
		user = d.getenv(EnvDBUser)
	}
	if user == "" {
		return nil, fmt.Errorf("--db-user (or %s) is required with --db-host", EnvDBUser)
	}
	var password string
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--db-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		password = d.getenv(EnvDBPassword)
	}
	if password == "" {
		return nil, fmt.Errorf("--db-password-file (or %s) is required with --db-host", EnvDBPassword)
	}
	return &mariadb.Remote{Addr: host, User: user, Password: password, UserHost: userHost}, nil
}

// dbBufferPoolUsage is the help of --db-buffer-pool.
var dbBufferPoolUsage = "InnoDB buffer pool of the shard's MariaDB (innodb_buffer_pool_size; K, M or G; at least " +
	mariadb.FormatSize(mariadb.MinBufferPool) + "): it fills with the pages the sites read, about 1.5 MiB per idle WordPress site, up to this size (docs/database.md)"

// parseDBBufferPool reads --db-buffer-pool.
func parseDBBufferPool(v string) (int64, error) {
	n, err := mariadb.ParseSize(v)
	if err == nil {
		err = mariadb.CheckBufferPool(n)
	}
	if err != nil {
		return 0, fmt.Errorf("--db-buffer-pool: %w", err)
	}
	return n, nil
}

// lingerUsage is the help of --db-pooler-linger.
const lingerUsage = "how long a database connection stays with the PHP request that used it last, for its next statement, before another site may take it over; while other sites' statements wait, a request keeps it so only for a turn of 25ms from when it took it (0, the default: at once, which measured cheaper; docs/database.md)"

// poolerLinger reads --db-pooler-linger into shard.Config.PoolerLinger
// (negative: off).
func poolerLinger(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("--db-pooler-linger %v: want 0 (off) or more", d)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// checkDBReplica checks --db-replica: "local" beside a MariaDB of the
// shard's own, HOST:PORT beside an external server (--db-host), and either
// only with the pooler, which routes reads to it.
func checkDBReplica(replica string, external, pooler bool) error {
	if replica == "" {
		return nil
	}
	if err := shard.CheckReplica(replica); err != nil {
		return fmt.Errorf("--db-replica: %w", err)
	}
	if !pooler {
		return fmt.Errorf("--db-replica needs the pooler (--db-pooler): it routes the reads to the replica")
	}
	if replica == shard.ReplicaLocal && external {
		return fmt.Errorf("--db-replica local runs a replica of the shard's own MariaDB; with --db-host give the external server's replica as HOST:PORT")
	}
	if replica != shard.ReplicaLocal && !external {
		return fmt.Errorf("--db-replica HOST:PORT is a replica of the --db-host server; the shard's own MariaDB takes \"local\"")
	}
	return nil
}

func newLogger(cmd *cobra.Command, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l})), nil
}

// readToken returns the token from the file, or from env when no file is
// given.
func readToken(d deps, file, env, what string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s token: %w", what, err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%s token file %s is empty", what, file)
	}
	if t := d.getenv(env); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("no %s token: give --token-file (from 'aipress %s token create') or set %s", what, what, env)
}

func newServerCmd(d deps) *cobra.Command {
	var (
		cfg        controlplane.Config
		logLevel   string
		plansFile  string
		pricesFile string
		// exportExpiryFlag: --export-expiry (0: for ever).
		exportExpiryFlag time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane alone (API, store, placement) for separate shards and edges",
		Long: `Run the control plane: the REST API, the store and the leader's loops
(placement, shard health from heartbeats, drains, moves), without a shard or an
edge. Shard agents ('aipress shard') and edges ('aipress edge') connect to its
API with their own tokens ('aipress shard token create', 'aipress edge token
create').

When every shard is full, the leader starts a new local shard as a child
process ('aipress shard') in <data-dir>/shards/<name> (turn off with
--spawn-shards=false). Several servers may share one PostgreSQL store (--store
postgres://...): one of them leads, the others serve the API.

On first start it writes <data-dir>/client.json with the API URL and an admin
token, which the client commands pick up from that directory.`,
		Example: `  aipress server --data-dir /var/lib/aipress --api 0.0.0.0:7070 --public-port 80
  aipress server --store 'postgres://aipress@db/aipress' --shard-capacity 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd, logLevel)
			if err != nil {
				return err
			}
			if _, err := storeopen.Parse(cfg.Store); err != nil {
				return fmt.Errorf("--store: %w", err)
			}
			if cfg.ShardCapacity < 1 {
				return fmt.Errorf("--shard-capacity must be at least 1")
			}
			if plansFile != "" {
				if cfg.Plans, err = plans.Load(plansFile); err != nil {
					return fmt.Errorf("--plans: %w", err)
				}
			}
			if pricesFile != "" {
				if cfg.Prices, err = cost.Load(pricesFile); err != nil {
					return fmt.Errorf("--prices: %w", err)
				}
			}
			cfg.Logger, cfg.Version = log, cmd.Root().Version
			cfg.ExportExpiry = exportExpiry(exportExpiryFlag)
			resolveAssistantKey(d, &cfg.Assistant)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.runServer(ctx, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir, "directory for the store, tokens and local shards")
	fl.StringVar(&cfg.Store, "store", "", "control-plane store: empty for SQLite in the data dir, or a postgres:// URL")
	fl.StringVar(&cfg.APIAddr, "api", DefaultAPIAddr, "API listen address")
	fl.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060) to requests with an admin token (Authorization: Bearer)")
	fl.IntVar(&cfg.PublicPort, "public-port", 80, "the edges' HTTP port, for the sites' URLs")
	fl.IntVar(&cfg.PublicHTTPSPort, "public-https-port", 0, "the edges' HTTPS port (0: they serve no HTTPS); sites that redirect to HTTPS get https:// sign-in links")
	fl.IntVar(&cfg.ShardCapacity, "shard-capacity", placement.DefaultCapacity, "sites per local shard the server starts")
	fl.IntVar(&cfg.MaxShardCapacity, "max-shard-capacity", 0, fmt.Sprintf("cap on the capacity a shard agent registers (default %d, or --shard-capacity if larger)", api.DefaultMaxShardCapacity))
	fl.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 15*time.Second, "a shard silent this long is Unhealthy")
	fl.Float64Var(&cfg.Headroom, "headroom", 0, "fraction of each shard kept free while others have room (0–1)")
	fl.BoolVar(&cfg.SpawnShards, "spawn-shards", true, "start a new local shard when all are full")
	fl.StringVar(&cfg.TransferURL, "transfer-url", "", "bucket for site moves (gocloud.dev/blob URL; default file://<data-dir>/transfers)")
	fl.DurationVar(&exportExpiryFlag, "export-expiry", transfersweep.DefaultExpiry, exportExpiryHelp)
	fl.StringVar(&cfg.BackupURL, "backup-url", "", "bucket of the backup repositories, one per shard under it (file://, s3://, gs://; default file://<data-dir>/backups); the key is <data-dir>/backup-kek: back it up separately")
	fl.StringVar(&plansFile, "plans", "", "YAML file of the platform's plans (quotas, site resources; replaces the built-in dev, basic, pro, business; see docs/accounts.md)")
	fl.StringVar(&pricesFile, "prices", "", "YAML price sheet of aipress cost (replaces the built-in GCP list prices; see docs/operations.md, \"Usage and cost\")")
	fl.StringVar(&cfg.PurgeURL, "purge-url", "", "passed to the local shards the server starts: an edge's purge endpoint")
	fl.StringVar(&cfg.CatalogueURL, "catalogue-url", "", "passed to the local shards the server starts: the wordpress.org-compatible catalogue (default "+artefact.DefaultCatalogueURL+")")
	fl.StringVar(&cfg.PurgeSecretFile, "purge-secret-file", "", "passed to the local shards the server starts: that edge's purge secret")
	fl.BoolVar(&cfg.AllowPrivateFetch, "allow-private-fetch", false, "let zip, git and catalogue fetches and git sync (also passed to the local shards the server starts) reach loopback and private addresses, over plain http too: for tests and private mirrors only (off: only public addresses over https)")
	addKubeFlags(cmd, &cfg)
	addAuthFlags(cmd, &cfg.Auth)
	addAssistantFlags(cmd, &cfg.Assistant)
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// attachShardAgent makes `aipress shard` (the group of shard management
// commands) also run a shard agent when called without a subcommand.
func attachShardAgent(cmd *cobra.Command, d deps) *cobra.Command {
	var (
		cfg                 shardagent.Config
		ac                  shardagent.AgentConfig
		tokenFile, logLevel string
		publicPort          int
		purgeSecretFile     string
		dbHost, dbUser      string
		dbPasswordFile      string
		dbUserHost          string
		firewall            string
		loopbackPorts       []int
		dbPooler            bool
		dbBufferPool        string
	)
	cmd.Long = `Without a subcommand, run a shard agent: one shard with its own MariaDB
server, php-fpm master and sites under --data-dir. It registers with the
control plane at --server (capacity, labels), follows the sites placed on it
(a long poll that resumes from the last revision seen, so a restart or a
network cut loses nothing), reports their status and heartbeats.

Its token comes from 'aipress shard token create NAME' (--token-file, or
` + EnvShardToken + `). With subcommands, manage the shards of a control plane.

The sites' PHP pools are always root-owned Unix sockets (no site's code can
connect to another site's pool). Edges on this machine read the sites' files
and connect to the sockets themselves when their operator lists this shard's
directory (aipress edge --local-shards-dir). For edges on other machines,
--gateway-addr runs the shard's gateway: one TLS port that admits only edges
holding a certificate of the platform's CA (mutual TLS; the control plane
issues this shard's certificate and the edges') and serves static files,
try_files decisions and FastCGI to the sockets. Edges reach it at
--gateway-advertise (default: --gateway-addr's host).

With --db-host (or ` + EnvDBHost + `) the shard runs no MariaDB of its own: it
keeps its sites' databases and users on that MySQL/MariaDB server, logging
in over TCP as --db-user (` + EnvDBUser + `) with the password in
--db-password-file (` + EnvDBPassword + `), an account that may create
databases and users and grant. Site users are created for --db-user-host
(default '%', any host: the sites' pods have no fixed address); their
passwords are 32 random characters, and the server's port must be reachable
only from the shards (a private network or NetworkPolicy).

As root with CAP_NET_ADMIN the agent keeps its site users off this machine's
services and the cloud metadata address with owner-match nftables rules
(--site-firewall auto, the default; 'aipress sitefw --help'): they may reach
--site-loopback-port here (default --public-port and --purge-url's port: the
edge, which WordPress requests), the DNS resolvers, --db-host, and the
internet. Without the privilege it warns once; then apply 'aipress sitefw
apply' from a privileged step (a Kubernetes init container) or your own
firewall.`
	cmd.Example = `  aipress shard token create shard-eu-1 -o json > token.json
  aipress shard --name shard-eu-1 --server http://cp.example.com:7070 \
      --token-file /etc/aipress/shard-eu-1.token --data-dir /var/lib/aipress-shard \
      --capacity 50 --label region=eu --label tier=standard
  aipress shard --name shard-eu-2 ... --gateway-addr 10.0.0.12:8443
  aipress shard list`
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.Name == "" {
			return cmd.Help()
		}
		if ac.Server == "" {
			ac.Server = d.getenv(EnvServer)
		}
		if ac.Server == "" {
			return fmt.Errorf("--server (or %s) is required: the control plane's API URL", EnvServer)
		}
		var err error
		if ac.Token, err = readToken(d, tokenFile, EnvShardToken, "shard"); err != nil {
			return err
		}
		if cfg.Capacity < 1 {
			return fmt.Errorf("--capacity must be at least 1")
		}
		log, err := newLogger(cmd, logLevel)
		if err != nil {
			return err
		}
		port := ""
		if publicPort != 80 {
			port = fmt.Sprintf(":%d", publicPort)
		}
		cfg.PublicURL = func(domain string) string { return "http://" + domain + port }
		if purgeSecretFile != "" {
			if _, err := os.Stat(purgeSecretFile); err != nil {
				return fmt.Errorf("--purge-secret-file: %w", err)
			}
			// A keyring: a rotation of the edge's secret reaches the
			// sites' wp-config.php without a restart.
			ring, err := purge.OpenKeyring(purgeSecretFile)
			if err != nil {
				return fmt.Errorf("--purge-secret-file: %w", err)
			}
			cfg.PurgeKey = ring.Key
		}
		if cfg.TransferURL == "" {
			abs, _ := filepath.Abs(filepath.Join(cfg.DataDir, "transfers"))
			cfg.TransferURL = "file://" + abs
		}
		for _, old := range []string{"pool-listen", "pool-advertise", "pool-ports", "allowed-clients", "static-addr", "static-advertise"} {
			if cmd.Flags().Changed(old) {
				return fmt.Errorf("--%s was removed: pools are Unix sockets only, and edges on other machines reach a shard through its gateway (--gateway-addr, mutual TLS)", old)
			}
		}
		if cfg.GatewayAddr == "" && cmd.Flags().Changed("gateway-advertise") {
			return fmt.Errorf("--gateway-advertise needs --gateway-addr")
		}
		if cfg.Database, err = dbRemote(d, dbHost, dbUser, dbPasswordFile, dbUserHost); err != nil {
			return err
		}
		cfg.DirectDB = !dbPooler
		if cfg.DBPoolerBackends < 0 {
			return fmt.Errorf("--db-pooler-backends %d: want 0 (twice the cores) or more", cfg.DBPoolerBackends)
		}
		if cfg.DBPoolerLinger, err = poolerLinger(cfg.DBPoolerLinger); err != nil {
			return err
		}
		if cfg.Database != nil && cmd.Flags().Changed("db-buffer-pool") {
			return fmt.Errorf("--db-buffer-pool sizes the shard's own MariaDB; with --db-host the shard runs none")
		}
		if cfg.DBBufferPool, err = parseDBBufferPool(dbBufferPool); err != nil {
			return err
		}
		if err := checkDBReplica(cfg.DBReplica, cfg.Database != nil, dbPooler); err != nil {
			return err
		}
		if cfg.DBReplicaManaged && (cfg.DBReplica == "" || cfg.DBReplica == shard.ReplicaLocal) {
			return fmt.Errorf("--db-replica-managed goes with --db-replica HOST:PORT (a replica of --db-host the agent sets up)")
		}
		if cfg.SiteFirewall, err = shardagent.ParseFirewallMode(firewall); err != nil {
			return fmt.Errorf("--site-firewall: %w", err)
		}
		if !cmd.Flags().Changed("site-loopback-port") {
			loopbackPorts = []int{publicPort}
			if u, err := url.Parse(cfg.PurgeURL); err == nil && u.Port() != "" {
				p, _ := strconv.Atoi(u.Port())
				loopbackPorts = append(loopbackPorts, p)
			}
		}
		for _, p := range loopbackPorts {
			if p < 1 || p > 65535 {
				return fmt.Errorf("--site-loopback-port %d: not a port", p)
			}
		}
		cfg.LoopbackPorts = loopbackPorts
		if !cmd.Flags().Changed("catalogue-url") {
			if v := d.getenv(EnvCatalogueURL); v != "" {
				cfg.CatalogueURL = v
			}
		}
		if err := checkCatalogueURL(cfg.CatalogueURL); err != nil {
			return err
		}
		cfg.Logger, cfg.Version = log, cmd.Root().Version
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return d.runShard(ctx, cfg, ac)
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Name, "name", "", "the shard's name (the subject of its token)")
	fl.StringVar(&ac.Server, "server", "", "the control plane's API URL (env "+EnvServer+")")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the shard's agent token (env "+EnvShardToken+")")
	fl.StringVar(&cfg.DataDir, "data-dir", "./aipress-shard", "the shard's directory (MariaDB, php-fpm, sites)")
	fl.IntVar(&cfg.Capacity, "capacity", placement.DefaultCapacity, "sites this shard takes")
	fl.StringToStringVar(&cfg.Labels, "label", nil, "shard label key=value, e.g. region=eu (repeatable)")
	fl.StringVar(&cfg.Provider, "provider", "", "what started this shard (set by the server for its local shards)")
	fl.IntVar(&publicPort, "public-port", 80, "the edges' HTTP port, for the sites' URLs")
	fl.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 5*time.Second, "how often to heartbeat")
	fl.DurationVar(&cfg.UsageInterval, "usage-interval", shardagent.DefaultUsageInterval, "how often to report the sites' database and file sizes and database statements for their usage records")
	fl.StringVar(&cfg.CatalogueURL, "catalogue-url", artefact.DefaultCatalogueURL, "the wordpress.org-compatible catalogue (plugin and theme information API, core version check) sites' plugins, themes and cores come from (env "+EnvCatalogueURL+")")
	fl.BoolVar(&cfg.AllowPrivateFetch, "allow-private-fetch", false, "let zip, git and catalogue fetches reach loopback and private addresses, over plain http too: for tests and private mirrors only (off: only public addresses over https)")
	fl.StringVar(&cfg.TransferURL, "transfer-url", "", "bucket shared with the other shards for site moves (gocloud.dev/blob URL; default file://<data-dir>/transfers)")
	fl.StringVar(&cfg.PurgeURL, "purge-url", "", "an edge's purge endpoint, e.g. http://127.0.0.1:8080/.aipress/purge")
	fl.StringVar(&purgeSecretFile, "purge-secret-file", "", "that edge's purge secret (<edge data dir>/"+edgenode.PurgeSecretFile+")")
	fl.StringVar(&cfg.GatewayAddr, "gateway-addr", "", "run the gateway for edges on other machines on this address, e.g. :8443 (mutual TLS; empty: none)")
	fl.StringVar(&cfg.GatewayAdvertise, "gateway-advertise", "", "host[:port] edges reach the gateway at (default: --gateway-addr's host)")
	for _, old := range []string{"pool-listen", "pool-advertise", "pool-ports", "allowed-clients", "static-addr", "static-advertise"} {
		fl.String(old, "", "removed: see --gateway-addr")
		_ = fl.MarkHidden(old)
	}
	fl.StringVar(&dbHost, "db-host", "", "HOST:PORT of an external MySQL/MariaDB server for the sites' databases, instead of running one (env "+EnvDBHost+")")
	fl.StringVar(&dbUser, "db-user", "", "the external server's admin account, which creates databases and users (env "+EnvDBUser+")")
	fl.StringVar(&dbPasswordFile, "db-password-file", "", "file holding that account's password (env "+EnvDBPassword+")")
	fl.StringVar(&dbUserHost, "db-user-host", "", "host part of the site users' accounts on the external server (default '%': any host)")
	fl.DurationVar(&cfg.DBPoolerLinger, "db-pooler-linger", 0, lingerUsage)
	fl.IntVar(&cfg.DBPoolerBackends, "db-pooler-backends", 0, "bound on the pooler's connections to each database server, all sites together (a statement finding none free waits up to 250ms, then one more opens); 0: twice the cores, at least 4")
	fl.BoolVar(&dbPooler, "db-pooler", true, "run a MySQL connection pooler between the sites' PHP and the database server (per-site client and backend connection limits from the plan; socket <data-dir>/run/pooler/mysql.sock); false: PHP connects to the database server directly")
	fl.StringVar(&dbBufferPool, "db-buffer-pool", mariadb.FormatSize(mariadb.DefaultBufferPool), dbBufferPoolUsage)
	fl.StringVar(&cfg.DBReplica, "db-replica", "", "read replica the pooler sends reads to while it keeps up: \"local\" runs a second mariadbd beside the shard's own (not with --db-host); HOST:PORT is a replica of the --db-host server, reached with the --db-user account; \"\": none")
	fl.BoolVar(&cfg.DBReplicaManaged, "db-replica-managed", false, "with --db-replica HOST:PORT: that server is the shard's to make a replica of --db-host (an empty server run with read_only, e.g. the Kubernetes provider's replica StatefulSet): the agent seeds it, starts its replication and re-seeds it when needed, as the --db-user account")
	fl.StringVar(&cfg.HealthAddr, "health-addr", "", "serve /livez and /readyz (ready once registered and converged) on this address, e.g. :8081, and the shard's Prometheus metrics at /metrics to requests with the bearer token of --metrics-token-file")
	fl.StringVar(&cfg.MetricsTokenFile, "metrics-token-file", "", "file holding the shard's metrics bearer token (Prometheus: authorization.credentials_file); created (0600) if missing (default <data-dir>/metrics-token)")
	fl.StringVar(&firewall, "site-firewall", string(shardagent.FirewallAuto), "keep the site users off this machine's services and the metadata address (nftables): auto (when root with CAP_NET_ADMIN, else warn), on (or fail), off (an init step or your firewall does it)")
	fl.IntSliceVar(&loopbackPorts, "site-loopback-port", nil, "TCP port site users may reach on this machine: the edge's HTTP/HTTPS ports (repeatable; default --public-port and --purge-url's port)")
	fl.StringVar(&cfg.SiteVolumes, "site-volumes", shard.VolumesAuto, "give each site a loop-mounted volume that enforces its disk limit: auto (when running as root with loop devices and e2fsprogs), on (required) or off")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// attachEdge makes `aipress edge` also run an edge when called without a
// subcommand.
func attachEdge(cmd *cobra.Command, d deps) *cobra.Command {
	var (
		cfg                 edgenode.RunConfig
		tokenFile, logLevel string
		probeEvery          time.Duration
	)
	cmd.Long = `Without a subcommand, run an edge: it follows the routing table of the
control plane at --server (host → shard → pool, a long poll that resumes
where it left off) and serves the sites: page cache, WAF, TLS, rate limits and
static files, with PHP requests sent to the shards' pools. What its WAF
refuses it reports to the control plane every few seconds ('aipress site waf
events').

Its token comes from 'aipress edge token create NAME' (--token-file, or
` + EnvEdgeToken + `).

Sites of shards that run on this machine are served from their files and
pool sockets here, but only for shards whose directories the operator lists
with --local-shards-dir (a directory holding shard directories, each named
after its shard, e.g. the server's <data-dir>/shards); files their docroots
link to outside them are served only from --symlink-root directories. Sites
of other shards are reached through their gateways, with a certificate the
control plane issues to this edge (kept in <data-dir>/` + edgenode.CredentialsDir + `).

With --logs-addr, the edge serves the access logs it writes (in
<data-dir>/logs/access) to the control plane, which reads them when someone
runs 'aipress site logs' (mutual TLS with the same certificate; only the
control plane's certificate is admitted). The edge registers the address
(--logs-advertise) every minute; without it, the API cannot show access logs
in separate roles.`
	cmd.Example = `  aipress edge token create edge-1 -o json
  aipress edge --server http://cp.example.com:7070 --token-file /etc/aipress/edge-1.token \
      --http :80 --https :443 --data-dir /var/lib/aipress-edge
  aipress edge ... --local-shards-dir /var/lib/aipress/shards   # the server's local shards
  aipress edge ... --logs-addr :7444 --logs-advertise edge-1.internal   # access logs for the API`
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.Server == "" {
			cfg.Server = d.getenv(EnvServer)
		}
		if cfg.Server == "" {
			if !cmd.Flags().Changed("token-file") {
				return cmd.Help()
			}
			return fmt.Errorf("--server (or %s) is required: the control plane's API URL", EnvServer)
		}
		var err error
		if cfg.Token, err = readToken(d, tokenFile, EnvEdgeToken, "edge"); err != nil {
			return err
		}
		if cfg.RateIP < 0 || cfg.RateSite < 0 {
			return fmt.Errorf("rate limits must not be negative (0 turns a limit off)")
		}
		if cfg.ProbeInterval = probeEvery; probeEvery == 0 {
			cfg.ProbeInterval = -1 // edgenode.Config: negative = off
		} else if probeEvery < time.Second {
			return fmt.Errorf("--probe-interval must be 0 (off) or at least 1s")
		}
		for _, r := range []*float64{&cfg.RateIP, &cfg.RateSite} {
			if *r == 0 {
				*r = -1 // edgenode.Config: negative = off
			}
		}
		log, err := newLogger(cmd, logLevel)
		if err != nil {
			return err
		}
		cfg.Logger = log
		for i, dir := range cfg.Locality.ShardDirs {
			if cfg.Locality.ShardDirs[i], err = filepath.Abs(dir); err != nil {
				return fmt.Errorf("--local-shards-dir: %w", err)
			}
		}
		for _, dir := range cfg.Locality.SymlinkRoots {
			if !filepath.IsAbs(dir) {
				return fmt.Errorf("--symlink-root %q: must be an absolute path", dir)
			}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return d.runEdge(ctx, cfg)
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Server, "server", "", "the control plane's API URL (env "+EnvServer+")")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the edge token (env "+EnvEdgeToken+")")
	fl.StringVar(&cfg.DataDir, "data-dir", "./aipress-edge", "the edge's directory (TLS state, purge secret)")
	fl.StringVar(&cfg.HTTPAddr, "http", DefaultHTTPAddr, "listen address for site traffic")
	fl.StringVar(&cfg.HTTPSAddr, "https", "", "HTTPS listen address (HTTP/2; empty: none)")
	fl.StringVar(&cfg.MetricsAddr, "metrics", "", "serve Prometheus metrics at /metrics on this address, to requests with the bearer token of --metrics-token-file")
	fl.StringVar(&cfg.MetricsTokenFile, "metrics-token-file", "", "file holding the metrics bearer token (Prometheus: authorization.credentials_file); created (0600) if missing (default <data-dir>/metrics-token)")
	fl.StringVar(&cfg.ACMECA, "acme-ca", "", "ACME directory URL for public site domains ('off': internal CA only)")
	fl.StringVar(&cfg.ACMEEmail, "acme-email", "", "contact e-mail of the ACME account")
	fl.Float64Var(&cfg.RateIP, "rate-ip", ratelimit.DefaultIPRate, "rate limit per client IP in requests/s; 0 = off")
	fl.Float64Var(&cfg.RateSite, "rate-site", ratelimit.DefaultSiteRate, "rate limit per site in requests/s; 0 = off")
	fl.StringSliceVar(&cfg.Locality.ShardDirs, "local-shards-dir", nil, "directory holding the directories of shards on this machine, each named after its shard (repeatable); only their sites are served from this machine's disk")
	fl.StringSliceVar(&cfg.Locality.SymlinkRoots, "symlink-root", nil, "directory outside a local shard's that its docroots may link into and the edge serves from (repeatable; default "+strings.Join(edgenode.DefaultSymlinkRoots, ", ")+")")
	fl.StringVar(&cfg.LogsAddr, "logs-addr", "", "serve the sites' access logs to the control plane on this address (mutual TLS, control-plane certificate only; empty: the API cannot read this edge's access logs)")
	fl.StringVar(&cfg.LogsAdvertise, "logs-advertise", "", "the host or host:port the control plane reaches --logs-addr at (default: --logs-addr when it names a host)")
	fl.BoolVar(&cfg.NetHTTPOnly, "net-http-only", false, "serve plain HTTP with Go's net/http alone, without the lean HTTP/1.1 path for cache hits and static files")
	fl.DurationVar(&probeEvery, "probe-interval", uptime.DefaultInterval, "how often to probe each site's home page for the uptime incidents and SLA reports; 0 = no probes (leave them to other edges)")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
