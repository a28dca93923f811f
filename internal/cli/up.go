package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/platform/up"
	"github.com/aipress/aipress/internal/ratelimit"
	"github.com/aipress/aipress/internal/shard"
	storeopen "github.com/aipress/aipress/internal/store/open"
	"github.com/aipress/aipress/internal/transfersweep"
	"github.com/aipress/aipress/internal/uptime"
)

// upFile is the YAML config file of `aipress up --config FILE`. Unknown keys
// are an error.
type upFile struct {
	DataDir string `json:"data_dir"`
	Store   string `json:"store"`
	HTTP    string `json:"http"`
	API     string `json:"api"`

	HTTPS     string   `json:"https"`
	ACMECA    string   `json:"acme_ca"`
	ACMEEmail string   `json:"acme_email"`
	RateIP    *float64 `json:"rate_ip"`
	RateSite  *float64 `json:"rate_site"`
	BackupURL string   `json:"backup_url"`
	Plans     string   `json:"plans"`
}

func loadUpFile(path string) (upFile, error) {
	var f upFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("config file: %w", err)
	}
	f, err = parseUpFile(b)
	if err != nil {
		return f, fmt.Errorf("config file %s: %w", path, err)
	}
	return f, nil
}

// parseUpFile decodes the YAML of an up config file (empty: all defaults).
// Keys are matched exactly: the JSON decoder underneath would also take
// "HTTP" or "Data_Dir" for a field, and with both "http" and "HTTP" in a
// file one would silently win.
func parseUpFile(b []byte) (upFile, error) {
	var f upFile
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err == nil {
		known := upFileKeys()
		for k := range keys {
			if !known[k] {
				return upFile{}, fmt.Errorf("unknown field %q (keys are lower case: %s)", k, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
			}
		}
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return upFile{}, err
	}
	return f, nil
}

// upFileKeys are the keys of an up config file: upFile's JSON names.
func upFileKeys() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[upFile]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys[name] = true
	}
	return keys
}

type upFlags struct {
	backupURL     string
	plansFile     string
	configFile    string
	dataDir       string
	store         string
	httpAddr      string
	apiAddr       string
	logLevel      string
	httpsAddr     string
	acmeCA        string
	acmeEmail     string
	rateIP        float64
	rateSite      float64
	probeInterval time.Duration
	netHTTPOnly   bool
	debugAddr     string
	healthAddr    string
	shards        int
	capacity      int
	firewall      string
	catalogue     string
	// allowPrivateFetch: --allow-private-fetch.
	allowPrivateFetch bool
	// exportExpiry: --export-expiry.
	exportExpiry time.Duration
	// dbPooler: --db-pooler; dbReplica: --db-replica.
	dbPooler bool
	// dbPoolerBackends: --db-pooler-backends.
	dbPoolerBackends int
	// dbPoolerLinger: --db-pooler-linger.
	dbPoolerLinger time.Duration
	dbReplica      string
	// dbBufferPool: --db-buffer-pool.
	dbBufferPool string
	auth         controlplane.AuthOptions
	assistant    controlplane.AssistantOptions
}

// resolveUp computes the platform configuration with precedence
// flag > environment > config file > default.
func resolveUp(cmd *cobra.Command, d deps, f upFlags) (up.Config, error) {
	var file upFile
	if f.configFile != "" {
		var err error
		if file, err = loadUpFile(f.configFile); err != nil {
			return up.Config{}, err
		}
	}
	pick := func(flag, flagVal, env, fileVal, def string) string {
		if cmd.Flags().Changed(flag) {
			return flagVal
		}
		if v := d.getenv(env); v != "" {
			return v
		}
		if fileVal != "" {
			return fileVal
		}
		return def
	}
	cfg := up.Config{
		DataDir:  pick("data-dir", f.dataDir, EnvDataDir, file.DataDir, DefaultDataDir),
		HTTPAddr: pick("http", f.httpAddr, EnvHTTP, file.HTTP, DefaultHTTPAddr),
		APIAddr:  pick("api", f.apiAddr, EnvAPI, file.API, DefaultAPIAddr),
	}
	if cfg.DataDir == "" || cfg.HTTPAddr == "" || cfg.APIAddr == "" {
		return cfg, fmt.Errorf("--data-dir, --http and --api must not be empty")
	}
	cfg.Store = pick("store", f.store, EnvStore, file.Store, "")
	if _, err := storeopen.Parse(cfg.Store); err != nil {
		return cfg, fmt.Errorf("--store: %w", err)
	}
	cfg.HTTPSAddr = pick("https", f.httpsAddr, EnvHTTPS, file.HTTPS, "")
	cfg.BackupURL = pick("backup-url", f.backupURL, EnvBackupURL, file.BackupURL, "")
	cfg.CatalogueURL = pick("catalogue-url", f.catalogue, EnvCatalogueURL, "", artefact.DefaultCatalogueURL)
	if err := checkCatalogueURL(cfg.CatalogueURL); err != nil {
		return cfg, err
	}
	cfg.AllowPrivateFetch = f.allowPrivateFetch
	cfg.ExportExpiry = exportExpiry(f.exportExpiry)
	if path := pick("plans", f.plansFile, EnvPlans, file.Plans, ""); path != "" {
		ps, err := plans.Load(path)
		if err != nil {
			return cfg, fmt.Errorf("--plans: %w", err)
		}
		cfg.Plans = ps
	}
	cfg.EdgeNetHTTPOnly = f.netHTTPOnly
	switch p := f.probeInterval; {
	case p == 0:
		cfg.ProbeInterval = -1 // edgenode.Config: negative = off
	case p < time.Second:
		return cfg, fmt.Errorf("--probe-interval must be 0 (off) or at least 1s")
	default:
		cfg.ProbeInterval = p
	}
	cfg.ACMECA = pick("acme-ca", f.acmeCA, EnvACMECA, file.ACMECA, "")
	cfg.ACMEEmail = pick("acme-email", f.acmeEmail, EnvACMEEmail, file.ACMEEmail, "")
	pickRate := func(flag string, flagVal float64, env string, fileVal *float64, def float64) (float64, error) {
		v := def
		switch {
		case cmd.Flags().Changed(flag):
			v = flagVal
		case d.getenv(env) != "":
			var err error
			if v, err = strconv.ParseFloat(d.getenv(env), 64); err != nil {
				return 0, fmt.Errorf("%s: %w", env, err)
			}
		case fileVal != nil:
			v = *fileVal
		}
		if v < 0 {
			return 0, fmt.Errorf("--%s must not be negative (0 turns the limit off)", flag)
		}
		if v == 0 {
			return -1, nil // edgenode.Config: negative = off
		}
		return v, nil
	}
	var err error
	if cfg.RateIP, err = pickRate("rate-ip", f.rateIP, EnvRateIP, file.RateIP, ratelimit.DefaultIPRate); err != nil {
		return cfg, err
	}
	if cfg.RateSite, err = pickRate("rate-site", f.rateSite, EnvRateSite, file.RateSite, ratelimit.DefaultSiteRate); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newUpCmd(d deps) *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the all-in-one platform (API, shards and edge) in the foreground",
		Long: `Run the control-plane API, local shards and the edge in this process
until interrupted (Ctrl-C or SIGTERM), then stop everything it started.

Each local shard has its own MariaDB server and php-fpm master under
<data-dir>/shards/<name>. --shards N starts N of them (local, local-2 …);
when every shard is full (--shard-capacity sites each), a new one is started.
To run the roles on separate machines use 'aipress server', 'aipress shard'
and 'aipress edge' instead.

On first start it writes <data-dir>/client.json with the API URL and an admin
token, which 'aipress site ...' commands run from the same directory pick up.

Settings are taken, in order of precedence, from flags, environment variables
(AIPRESS_DATA_DIR, AIPRESS_STORE, AIPRESS_HTTP, AIPRESS_API, AIPRESS_HTTPS, AIPRESS_ACME_CA,
AIPRESS_ACME_EMAIL, AIPRESS_RATE_IP, AIPRESS_RATE_SITE, AIPRESS_BACKUP_URL,
AIPRESS_PLANS), a YAML config file (--config) with the keys data_dir, store,
http, api, https, acme_ca, acme_email, rate_ip, rate_site, backup_url and plans
(unknown keys are an error), and the defaults.

With --https the edge also serves HTTPS with HTTP/2. Names under .localhost,
.test and .internal, IPs and single-label names get certificates from an
internal CA created in <data-dir>/tls (trust <data-dir>/tls/ca.crt); other
site domains get Let's Encrypt certificates on demand (the edge must be
reachable on ports 80 and 443 for that).

As root with CAP_NET_ADMIN, the shards keep their sites' PHP off this
machine's other services (the API, --debug-addr, MariaDB's TCP port …) and the
cloud metadata address 169.254.169.254 with owner-match nftables rules
(--site-firewall; see 'aipress sitefw --help'): site users reach only the
edge's HTTP and HTTPS ports and the DNS resolvers here, and the internet.

The control-plane store is SQLite in <data-dir>/aipress.db unless --store
gives a postgres:// (or postgresql://) URL. Replicas on one PostgreSQL
database elect a leader (an advisory lock) for periodic control-plane work.`,
		Example: `  aipress up
  aipress up --http :80 --data-dir /var/lib/aipress
  aipress up --https :8443
  aipress up --shards 3 --shard-capacity 50
  aipress up --store 'postgres://aipress:secret@db.example.com/aipress?sslmode=verify-full'
  aipress up --http :80 --https :443 --acme-email ops@example.com
  aipress up --rate-ip 0 --rate-site 0     # no rate limits (benchmarks)
  AIPRESS_API=0.0.0.0:7070 aipress up
  aipress up --config aipress.yaml
  GEMINI_API_KEY=... aipress up --assistant-provider gemini
  aipress up --assistant-provider openai --assistant-base-url http://127.0.0.1:11434/v1 --assistant-model llama3.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveUp(cmd, d, f)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg.Version = cmd.Root().Version
			cfg.DebugAddr, cfg.HealthAddr = f.debugAddr, f.healthAddr
			if f.shards < 1 || f.capacity < 1 {
				return fmt.Errorf("--shards and --shard-capacity must be at least 1")
			}
			cfg.Shards, cfg.ShardCapacity = f.shards, f.capacity
			cfg.Auth = f.auth
			resolveAssistantKey(d, &f.assistant)
			cfg.Assistant = f.assistant
			if cfg.SiteFirewall, err = shardagent.ParseFirewallMode(f.firewall); err != nil {
				return fmt.Errorf("--site-firewall: %w", err)
			}
			if f.dbReplica != "" && f.dbReplica != shard.ReplicaLocal {
				return fmt.Errorf("--db-replica %q: 'aipress up' runs its shards' MariaDB itself, so only \"local\" (a replica beside it) or \"\" (none)", f.dbReplica)
			}
			if f.dbReplica != "" && !f.dbPooler {
				return fmt.Errorf("--db-replica needs the pooler (--db-pooler): it routes the reads to the replica")
			}
			if f.dbPoolerBackends < 0 {
				return fmt.Errorf("--db-pooler-backends %d: want 0 (twice the cores) or more", f.dbPoolerBackends)
			}
			cfg.DirectDB, cfg.DBReplica, cfg.DBPoolerBackends = !f.dbPooler, f.dbReplica, f.dbPoolerBackends
			if cfg.DBPoolerLinger, err = poolerLinger(f.dbPoolerLinger); err != nil {
				return err
			}
			if cfg.DBBufferPool, err = parseDBBufferPool(f.dbBufferPool); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.run(ctx, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "YAML config file (keys: data_dir, store, http, api, https, acme_ca, acme_email, rate_ip, rate_site, backup_url, plans)")
	fl.StringVar(&f.catalogue, "catalogue-url", artefact.DefaultCatalogueURL, "the wordpress.org-compatible catalogue (plugin and theme information API, core version check) sites' plugins, themes and cores come from (env "+EnvCatalogueURL+")")
	fl.DurationVar(&f.exportExpiry, "export-expiry", transfersweep.DefaultExpiry, exportExpiryHelp)
	fl.BoolVar(&f.allowPrivateFetch, "allow-private-fetch", false, "let zip, git and catalogue fetches and git sync reach loopback and private addresses, over plain http too: for tests and private mirrors only (off: only public addresses over https)")
	fl.StringVar(&f.backupURL, "backup-url", "", "bucket of the backup repositories, one per shard (file://, s3://, gs://; default file://<data-dir>/backups; key in <data-dir>/backup-kek) (env "+EnvBackupURL+")")
	fl.StringVar(&f.plansFile, "plans", "", "YAML file of the platform's plans (quotas, site resources; replaces the built-in dev, basic, pro, business; see docs/accounts.md) (env "+EnvPlans+")")
	fl.StringVar(&f.dataDir, "data-dir", DefaultDataDir, "directory for all state (env "+EnvDataDir+")")
	fl.StringVar(&f.store, "store", "", "control-plane store: empty for SQLite in the data dir, or a postgres:// URL (env "+EnvStore+")")
	fl.StringVar(&f.httpAddr, "http", DefaultHTTPAddr, "edge listen address for site traffic (env "+EnvHTTP+")")
	fl.StringVar(&f.apiAddr, "api", DefaultAPIAddr, "control-plane API listen address (env "+EnvAPI+")")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.httpsAddr, "https", "", "edge HTTPS listen address, e.g. :8443 (HTTP/2; empty: no HTTPS) (env "+EnvHTTPS+")")
	fl.StringVar(&f.acmeCA, "acme-ca", "", "ACME directory URL for public site domains (default Let's Encrypt production; 'off': internal CA only) (env "+EnvACMECA+")")
	fl.StringVar(&f.acmeEmail, "acme-email", "", "contact e-mail of the ACME account (env "+EnvACMEEmail+")")
	fl.Float64Var(&f.rateIP, "rate-ip", ratelimit.DefaultIPRate, "edge rate limit per client IP in requests/s, burst twice that; 0 = off (env "+EnvRateIP+")")
	addAuthFlags(cmd, &f.auth)
	addAssistantFlags(cmd, &f.assistant)
	fl.StringVar(&f.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060) to requests with an admin token (Authorization: Bearer)")
	fl.StringVar(&f.healthAddr, "health-addr", "", "serve /livez and /readyz (ready once the local shards converged for the first time) on this address, e.g. 127.0.0.1:8081")
	fl.DurationVar(&f.dbPoolerLinger, "db-pooler-linger", 0, lingerUsage)
	fl.IntVar(&f.dbPoolerBackends, "db-pooler-backends", 0, "bound on each shard pooler's connections to MariaDB, all sites together (a statement finding none free waits up to 250ms, then one more opens); 0: twice the cores, at least 4")
	fl.BoolVar(&f.dbPooler, "db-pooler", true, "run a MySQL connection pooler in each shard between the sites' PHP and MariaDB (per-site client and backend connection limits from the plan); false: PHP connects to MariaDB directly")
	fl.StringVar(&f.dbBufferPool, "db-buffer-pool", mariadb.FormatSize(mariadb.DefaultBufferPool), strings.Replace(dbBufferPoolUsage, "the shard's MariaDB", "each shard's MariaDB", 1))
	fl.StringVar(&f.dbReplica, "db-replica", "", "read replica of each shard's MariaDB: \"local\" runs a second mariadbd beside it, replicating with GTIDs, that the pooler sends reads to while it keeps up; \"\": none")
	fl.IntVar(&f.shards, "shards", 1, "local shards to run from the start (local, local-2 …); more are added when all are full")
	fl.IntVar(&f.capacity, "shard-capacity", placement.DefaultCapacity, "sites per local shard this process creates")
	fl.StringVar(&f.firewall, "site-firewall", string(shardagent.FirewallAuto), "keep the sites' PHP off this machine's services (API, pprof, MariaDB's TCP port …) and the metadata address, except the edge's ports (nftables): auto (when root with CAP_NET_ADMIN, else warn), on (or fail), off")
	fl.BoolVar(&f.netHTTPOnly, "edge-net-http-only", false, "serve the edge's plain HTTP with Go's net/http alone, without the lean HTTP/1.1 path for cache hits and static files")
	fl.DurationVar(&f.probeInterval, "probe-interval", uptime.DefaultInterval, "how often the edge probes each site's home page for the uptime incidents and SLA reports ('aipress sla'); 0 = no probes")
	fl.Float64Var(&f.rateSite, "rate-site", ratelimit.DefaultSiteRate, "edge rate limit per site in requests/s, burst twice that; 0 = off (env "+EnvRateSite+")")
	return cmd
}

// checkCatalogueURL refuses a --catalogue-url that is no http(s) URL.
func checkCatalogueURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return fmt.Errorf("--catalogue-url %q: want an http(s) URL such as %s", u, artefact.DefaultCatalogueURL)
	}
	return nil
}

// exportExpiryHelp is the help of --export-expiry (up and server).
const exportExpiryHelp = "how long export archives (site export) stay in the transfer store to be downloaded; the leader removes older ones every hour (0: kept for ever)"

// exportExpiry maps --export-expiry to controlplane.Options.ExportExpiry
// (where 0 means the default): 0 keeps archives for ever.
func exportExpiry(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
