// Package shard is a local shard (a cell): it owns one MariaDB server and one
// php-fpm master, and converges the sites assigned to it by level, so that
// running it again — after a crash, a restart or a change — finishes or
// undoes whatever was in flight.
//
// For each site it ensures, in order: a Unix user (when running as root), a
// database and a least-privilege database user, the files (a docroot sharing
// the registered WordPress core, the site's own wp-content and a generated
// wp-config.php), WordPress's installation, and a php-fpm pool. A site whose
// deletion was requested is torn down in the reverse order and only then
// removed from the control plane. Resources of this shard that belong to no
// known site are garbage-collected.
//
// Several shards may run on one host, each with its own directory, MariaDB
// server and php-fpm master. Unix users are the one host-global name space,
// so each shard names its sites' resources with its own prefix
// (NamePrefix), and orphan collection only considers names with that prefix
// whose home lies in its own directory.
//
// A site moves between shards in steps that the control plane drives and
// both shards carry out in their passes (move.go): the source freezes writes
// and exports the site to a transfer store (gocloud.dev/blob), the target
// imports it, the control plane switches the site to the target, and the
// source removes its copy.
package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/pooler"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefw"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// Sites is where a shard reads its desired sites and reports what it
// observed. The control plane's store implements it in process (FromStore);
// a shard agent implements it over the control plane's API.
//
// ListSites returns every site shard holds (site.Site.Shards: the sites
// assigned to it and those moving to or from it), including those whose
// deletion was requested. UpdateStatus applies fn to the status of the site
// with that name and UID (a site re-created under the same name has another
// UID and is left alone) and must be a no-op write when fn changes nothing;
// only the shard in Status.Shard calls it. UpdateMove applies fn to the
// site's Move (a no-op when the site has no move or another UID), then lets
// the control plane advance the move (site.AdvanceMove) in the same write.
// Finalize removes the record of a site whose deletion is complete.
type Sites interface {
	ListSites(ctx context.Context, shard string) ([]site.Site, error)
	UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error
	UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error
	Finalize(ctx context.Context, name, uid string) error
}

// MoveKeyFunc returns the key of move moveID of the site called name with
// uid (see Config.MoveKey).
type MoveKeyFunc func(ctx context.Context, name, uid, moveID string) ([]byte, error)

// Jobs is where a shard finds the jobs it runs (store.Job with its Shard)
// and reports on them: the control plane's store in process, the agent
// protocol otherwise. ListJobs returns the shard's Pending and Running jobs
// (a Running one was claimed by this shard before a restart and must be run
// again); UpdateJob applies fn to the job and writes it (the control plane
// refuses another shard's job).
type Jobs interface {
	ListJobs(ctx context.Context, shard string) ([]store.Job, error)
	UpdateJob(ctx context.Context, id string, fn func(*store.Job)) error
}

// LoginKeyFunc returns the login key (hex) of the site called name with uid,
// which its wp-config.php defines for the aipress-login mu-plugin
// (internal/loginlink): the control plane derives it, in process or over
// the agent API. "" and no error: sign-in links are not configured.
type LoginKeyFunc func(ctx context.Context, name, uid string) (string, error)

// DefaultMoveGrace is how long a move's source keeps its copy after the
// switch by default (Config.MoveGrace).
const DefaultMoveGrace = 5 * time.Second

// Config configures a shard.
type Config struct {
	// MoveGrace is how long the source of a move keeps serving its copy
	// after the switch, for edges that route by a table older than the
	// switch (default DefaultMoveGrace; negative: none).
	MoveGrace time.Duration
	Name      string // the shard's name in the control plane
	Dir       string // the shard's data directory
	// PublicURL returns the URL a site is served at (WP_HOME).
	PublicURL func(domain string) string
	// CoreSource is the WordPress tree to register (default Debian's).
	CoreSource string
	Logger     *slog.Logger
	Clock      func() time.Time
	// Resync is how often the shard re-converges every site even when
	// nothing woke it (default 10s).
	Resync time.Duration
	// CronInterval is how often WP-Cron runs for each serving site
	// (default 1 minute; 0 keeps the default, negative disables cron).
	CronInterval time.Duration
	// PurgeURL is the edge's purge endpoint on loopback (e.g.
	// http://127.0.0.1:8080/.aipress/purge) and PurgeKey returns a site's key
	// for it; both go into wp-config.php for the aipress-cache mu-plugin.
	// Empty PurgeURL or nil PurgeKey: sites get the plugin (it still tags
	// pages) but no purge constants.
	PurgeURL string
	PurgeKey func(site string) string
	// FullResync is how often a site that converged and has not changed is
	// checked in full (database, files, installation, pool) rather than by
	// the cheap checks every pass makes; orphans are collected as often.
	// Default 5 minutes.
	FullResync time.Duration
	// PHPLogs bound each site's PHP error log (php-error.log in its logs
	// directory), rotated on every pass (zero: package sitelog's
	// defaults, 1 MiB + 3 rotated files).
	PHPLogs sitelog.Bounds
	// TransferURL is the gocloud.dev/blob bucket that site moves pass
	// through, e.g. "file:///var/lib/aipress/transfer" (a local directory
	// the shards of one host share) or an object store's URL. Source and
	// target of a move must use the same bucket. Empty: this shard cannot
	// take part in moves (a move reports that as its error).
	TransferURL string
	// AllowPrivateFetch lets the downloads a WXR import makes (its
	// attachments' URLs) reach loopback and private addresses: tests and
	// private mirrors only (the agent's --allow-private-fetch).
	AllowPrivateFetch bool
	// MoveKey returns the key that authenticates the export of move moveID
	// of site name (uid) in the transfer store (an HMAC-SHA256 over its
	// manifest): the control plane derives it from a platform secret and
	// gives it only to the move's source and target, so whoever else can
	// write to the store cannot substitute an export. Nil: this shard
	// cannot take part in moves (a move reports that as its error).
	MoveKey MoveKeyFunc
	// LoginKey returns each site's login key for one-time wp-admin
	// sign-in links. Nil: sites get the aipress-login plugin but no key,
	// so it refuses every link.
	LoginKey LoginKeyFunc

	// Artefacts is the shard's artefact store (plugins, themes, cores;
	// package artefact). Nil: only the default core and bundled
	// extensions are available; a code job that needs another fails with
	// that reason.
	Artefacts *artefact.Store

	// Database, if set, is an external MySQL/MariaDB server the shard keeps
	// its sites' databases and users on (over TCP, as Database.User)
	// instead of running its own MariaDB server; the sites' DB_HOST is its
	// address. Nil: a supervised MariaDB under Dir (the local mode).
	Database *mariadb.Remote
	// DBBufferPool is the InnoDB buffer pool of the MariaDB server the
	// shard runs (and of its local replica) in bytes; 0:
	// mariadb.DefaultBufferPool. Unused with Database.
	DBBufferPool int64

	// Repos opens backup repositories by name (see RepoAccess): backups go
	// to the one named after this shard; restores read the one their
	// snapshot reference names. Nil: backup and restore jobs fail, and a
	// site created from a snapshot (Spec.Source) waits.
	Repos RepoAccess
	// JobConcurrency bounds the jobs (backups, restores, verifications)
	// RunJobs runs at once (default 2).
	JobConcurrency int
	// JobPoll is how often RunJobs lists the shard's jobs when nothing
	// woke it (default 2s).
	JobPoll time.Duration
	// SiteIDs is the range new site users' user and group IDs come from
	// (default sitefw.DefaultSiteIDs); users that exist keep theirs.
	SiteIDs sitefw.IDRange
	// SiteUsers, if set, is told the UIDs of the shard's site users: all
	// of them when Run starts, before php-fpm does; each new one before
	// anything runs as it; each deleted one after its deletion. A
	// *sitefw.Firewall keeps them off loopback services and the metadata
	// address. Nil: nothing is told.
	SiteUsers SiteUserFilter
	// Spares is how many PHP pools the shard keeps ready for new sites
	// (spares.go; as root only): default DefaultSpares, negative none.
	Spares int
	// SpareDelay is how long after a new site went Ready spares are made
	// again, unless a pass reloads php-fpm anyway (default
	// DefaultSpareDelay).
	SpareDelay time.Duration
	// Volumes says whether sites get a volume of their own whose size the
	// kernel enforces (volumes.go): VolumesAuto (default, ""), VolumesOn
	// or VolumesOff.
	Volumes string
	// RotationDrain is how long a DB password rotation keeps the old
	// database account after wp-config.php names the new one, beyond
	// OPcache's revalidation period: requests that read the old file make
	// their connection within it (rotate.go). Default DefaultRotationDrain.
	RotationDrain time.Duration

	// DirectDB turns the shard's connection pooler off: the sites' PHP
	// connects to the database server directly (DB_HOST is MariaDB's
	// socket or Database's address). Zero value: the pooler (package
	// pooler) runs beside MariaDB and php-fpm, its socket is
	// Layout.PoolerSocket and every site's wp-config.php names it.
	DirectDB bool
	// NoTemplate: new sites are installed by WordPress's installer, never
	// cloned from the shard's template database (template.go).
	NoTemplate bool
	// PoolerBackends bounds the pooler's backend connections to each
	// database server, all sites together (pooler.Config.
	// MaxServerBackends; 0: its default, twice the cores).
	PoolerBackends int
	// PoolerLinger is how long a backend stays with the site session
	// that used it last (pooler.Config.Linger; 0 or negative, the
	// default: put back at once).
	PoolerLinger time.Duration
	// Replica is the sites' read replica: "" none; "local" a second
	// mariadbd under Dir replicating from the shard's own MariaDB;
	// "HOST:PORT" a replica of the external primary (Database) reached
	// over TCP with Database's credentials. The pooler sends reads outside
	// transactions to it while it keeps up (package replwatch); it needs
	// the pooler (DirectDB false).
	Replica string
	// ReplicaManaged: Replica (HOST:PORT) is an empty or existing server
	// the shard makes and keeps a replica of Database, administered with
	// Database's account (Kubernetes: the provider's replica StatefulSet;
	// managedreplica.go). Without it a replica by address replicates by
	// itself (a Cloud SQL read replica).
	ReplicaManaged bool
	// PITRFlush is how often the binary log shipper (point-in-time
	// recovery, pitr.go) writes each site's new transactions to the
	// shard's backup repository: it bounds what a lost shard loses
	// (default DefaultPITRFlush; negative: no shipping, so no
	// point-in-time restores). Shipping needs Repos.
	PITRFlush time.Duration
}

// ReplicaLocal is Config.Replica for a replica beside the local MariaDB.
const ReplicaLocal = "local"

// CheckReplica checks a Config.Replica value: "", "local" or HOST:PORT.
func CheckReplica(v string) error {
	if v == "" || v == ReplicaLocal {
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("database replica %q: want \"local\" or HOST:PORT", v)
	}
	return nil
}

// Shard is a running local shard.
type Shard struct {
	cfg   Config
	log   *slog.Logger
	db    *mariadb.Server
	fpm   *phpfpm.Master
	core  *wordpress.Core
	wake  chan struct{}
	ready chan struct{}
	// serversUp is closed once MariaDB, php-fpm and the pooler are up
	// (ServersReady).
	serversUp chan struct{}

	layout Layout
	// tier is the pooler, replica and replica watch (dbtier.go).
	tier dbTier

	// core is the default core (Config.CoreSource); coreMu guards cores
	// (the other registered cores, by version) and coreFetching (a
	// version being fetched and registered: closed when done). See
	// cores.go.
	coreMu       sync.Mutex
	cores        map[string]*wordpress.Core
	coreFetching map[string]chan struct{}

	// vols: new sites get volumes (Prepare decides); volsOff says why
	// not.
	vols    bool
	volsOff string

	installScript, cronScript string
	codeScript                string // observes and applies plugins, themes, options (code.go)
	wxrScript                 string // imports and exports WXR content (wxr.go)
	upgradeScript             string // wp_upgrade (cores.go)
	cachePlugin               string // the one real copy of the aipress-cache mu-plugin
	storagePlugin             string // and of the aipress-storage one
	loginPlugin               string // and of the aipress-login one
	dbErrorDropIn             string // and of the db-error.php drop-in

	// prefix starts the name of every per-site resource of this shard
	// (NamePrefix); orphanName matches those names and captures the id.
	prefix     string
	orphanName *regexp.Regexp

	// The template databases (template.go): tplCtx is the shard's Run
	// context (nil: none built), tplBuilding and tplFailed by key.
	tpl         sync.Mutex
	tplCtx      context.Context
	tplBuilding map[string]bool
	tplFailed   map[string]bool
	tplWG       sync.WaitGroup
	tplAccount  *pooler.Account // the pooler's account of a template build
	// opcacheFilled holds the core directories compiled (or being
	// compiled) into OPcache's file cache (opcache.go); under tpl.
	opcacheFilled map[string]bool

	// spareMu guards the spare pools' state (spares.go): the pool
	// settings of the last new site (nil: none yet), when the last new
	// site went Ready, and the timer that asks for a pass to make spares.
	spareMu      sync.Mutex
	spareTpl     *phpfpm.Pool
	spareLoaded  bool // spareTpl was read from its file (or it has none)
	spareLastNew time.Time
	spareTimer   *time.Timer

	// passMu makes convergence passes one at a time (Converge): a pass
	// collects as orphans the resources of sites missing from the list
	// it took at its start, so a pass beside it that made a newer site's
	// resources would lose them.
	passMu sync.Mutex

	mu        sync.Mutex
	lastCron  map[string]time.Time   // last cron check, by site ID
	cronRan   map[string]time.Time   // last cron run, by site ID
	converged map[string]convergedAt // by site ID
	lastGC    time.Time
	diskAt    time.Time // when Usage last walked the directory
	diskBytes int64

	// busy holds the sites (by ID) a restore is rewriting: convergence and
	// cron leave them alone until it ends (busyLock).
	busy map[string]chan struct{}
	// populateErr is the last failure of creating a site from its
	// snapshot (by ID), reported by the next pass; a permanent one
	// (importGiveUp) stays until the site's generation changes or the
	// site goes.
	populateErr map[string]populateFailure
	jobWake     chan struct{}
	// secMu: per-site locks of secrets.json and what is written from it
	// (secretsLock).
	secMu map[string]*sync.Mutex
	// crashAt, set by tests only (export_test.go), is called at the named
	// points of an in-place restore; an error it returns ends the restore
	// there without any cleanup, as a kill -9 would.
	crashAt func(point string) error

	// refs are the sites of the last Converge pass; siteDisk their
	// files' bytes by site ID, walked every DiskInterval and when a site
	// has no figure yet (metrics.go).
	refs       []SiteRef
	counts     siteCounts
	siteDisk   map[string]int64
	siteDiskAt time.Time
	// siteDiskBusy: a walk of the sites' files runs.
	siteDiskBusy bool
	// shipper ships the binary log (pitr.go); nil when off.
	shipper *pitr.Shipper
}

// convergedAt remembers that a site's generation converged at a time.
type convergedAt struct {
	generation int64
	at         time.Time
}

// New returns a shard; Run starts it.
func New(cfg Config) *Shard {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.CoreSource == "" {
		cfg.CoreSource = wordpress.DebianCore
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.CronInterval == 0 {
		cfg.CronInterval = time.Minute
	}
	if cfg.MoveGrace == 0 {
		cfg.MoveGrace = DefaultMoveGrace
	}
	if cfg.FullResync <= 0 {
		cfg.FullResync = 5 * time.Minute
	}
	if cfg.JobConcurrency <= 0 {
		cfg.JobConcurrency = 2
	}
	if cfg.JobPoll <= 0 {
		cfg.JobPoll = 2 * time.Second
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = func(d string) string { return "http://" + d }
	}
	if cfg.SiteIDs == (sitefw.IDRange{}) {
		cfg.SiteIDs = sitefw.DefaultSiteIDs
	}
	if cfg.RotationDrain <= 0 {
		cfg.RotationDrain = DefaultRotationDrain
	}
	if cfg.Volumes == "" {
		cfg.Volumes = VolumesAuto
	}
	if cfg.Spares == 0 {
		cfg.Spares = DefaultSpares
	}
	if cfg.SpareDelay <= 0 {
		cfg.SpareDelay = DefaultSpareDelay
	}
	if cfg.PITRFlush == 0 {
		cfg.PITRFlush = DefaultPITRFlush
	}
	log := cfg.Logger.With("shard", cfg.Name)
	prefix := NamePrefix(cfg.Name)
	lay := Layout{Name: cfg.Name, Dir: cfg.Dir}
	sh := &Shard{
		layout:      lay,
		cfg:         cfg,
		log:         log,
		prefix:      prefix,
		orphanName:  regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `([0-9a-f]{12})(?:_b|_rs|_ro|_cs|_co)?$`),
		db:          &mariadb.Server{Dir: filepath.Join(cfg.Dir, "mariadb"), Logger: log, Remote: cfg.Database, LoadUserPrefix: prefix + "ld_", BufferPool: cfg.DBBufferPool},
		fpm:         &phpfpm.Master{Dir: lay.PHPDir(), Logger: log, FileCache: lay.OPcacheDir(), SpareDir: filepath.Join(cfg.Dir, "spares")},
		wake:        make(chan struct{}, 1),
		ready:       make(chan struct{}),
		serversUp:   make(chan struct{}),
		lastCron:    map[string]time.Time{},
		cronRan:     map[string]time.Time{},
		converged:   map[string]convergedAt{},
		busy:        map[string]chan struct{}{},
		populateErr: map[string]populateFailure{},
		jobWake:     make(chan struct{}, 1),
	}
	if cfg.Replica == ReplicaLocal && cfg.Database == nil {
		sh.tier.replica = &mariadb.Server{Dir: filepath.Join(cfg.Dir, "mariadb-replica"), Logger: log.With("server", "replica"),
			ReplicaOf: sh.db, LoadUserPrefix: prefix + "ld_", BufferPool: cfg.DBBufferPool}
	}
	return sh
}

func (s *Shard) sitesDir() string { return s.layout.SitesDir() }

// Prepare readies the shard's directories, MariaDB data directory, php-fpm
// configuration and WordPress core. It does not start anything.
func (s *Shard) Prepare(ctx context.Context) error {
	if err := s.checkDBConfig(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := checkDirChars(s.cfg.Dir); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := s.checkSocketPaths(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	for _, d := range []string{s.cfg.Dir, s.sitesDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("shard: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return fmt.Errorf("shard: %w", err)
		}
	}
	// Verified copies of transfer objects live here during an import; what
	// an interrupted one left goes.
	if err := os.RemoveAll(s.transferScratch()); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := os.Mkdir(s.transferScratch(), 0o700); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	core, err := wordpress.RegisterCore(s.cfg.CoreSource, s.coresDir())
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.core = core
	s.installScript, s.cronScript, err = wordpress.WriteScripts(filepath.Join(s.cfg.Dir, "lib"))
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.codeScript, err = wordpress.WriteCodeScript(filepath.Join(s.cfg.Dir, "lib"))
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.wxrScript, err = wordpress.WriteWXRScript(filepath.Join(s.cfg.Dir, "lib"))
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.upgradeScript, err = wordpress.WriteUpgradeScript(filepath.Join(s.cfg.Dir, "lib"))
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.cachePlugin, err = wordpress.WriteMUPlugins(filepath.Join(s.cfg.Dir, "lib"))
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	s.storagePlugin = filepath.Join(filepath.Dir(s.cachePlugin), wordpress.StoragePluginName)
	s.loginPlugin = filepath.Join(filepath.Dir(s.cachePlugin), wordpress.LoginPluginName)
	s.dbErrorDropIn = filepath.Join(filepath.Dir(s.cachePlugin), wordpress.DBErrorDropInName)
	if err := s.prepareVolumes(ctx); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := s.db.Prepare(ctx); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := s.prepareDBTier(ctx); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if err := s.fpm.Prepare(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	return nil
}

// maxSocketPath is the longest path a Unix socket may have (sun_path holds
// 108 bytes with the terminating NUL).
const maxSocketPath = 107

// checkSocketPaths refuses a data directory so deep that the pools',
// MariaDB's or the pooler's sockets would not fit in a socket address:
// php-fpm, mariadbd and the pooler would otherwise fail far from the cause
// (a socket that never appears).
func (s *Shard) checkSocketPaths() error {
	longest := s.layout.SiteByID("000000000000").Socket
	socks := []string{s.layout.PoolerSocket()}
	if s.cfg.Database == nil {
		socks = append(socks, s.db.Socket())
	}
	if s.tier.replica != nil {
		socks = append(socks, s.tier.replica.Socket())
	}
	for _, p := range socks {
		if len(p) > len(longest) {
			longest = p
		}
	}
	if len(longest) > maxSocketPath {
		return fmt.Errorf("data directory %s is too deep: its sockets' paths would be %d bytes, more than the %d a Unix socket takes (e.g. %s); choose a shorter --data-dir",
			s.cfg.Dir, len(longest), maxSocketPath, longest)
	}
	return nil
}

// checkDirChars refuses a data directory whose path holds a character one
// of the tools the shard drives cannot take in a path: php-fpm misreads a
// socket path holding '=' when a reload hands its sockets on (package
// phpfpm); MariaDB's option files end a value at '#' or a quote; Debian's
// mariadb-install-db, a shell script, splits paths at spaces and globs
// them, and gives up silently, leaving a data directory without its system
// tables. Refused at once, with the reason, instead of a server that never
// comes up.
func checkDirChars(dir string) error {
	const refused = "=\"'\\#;*?[]$`|<>"
	for _, r := range dir {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(refused, r) {
			return fmt.Errorf("data directory %q holds %q, which php-fpm or MariaDB's tools cannot take in a path; choose a --data-dir without spaces, control characters or any of %s", dir, r, refused)
		}
	}
	return nil
}

// endpoint is where edges on this machine reach the pool of n: its Unix
// socket (root's, 0600: no site user can connect to it).
func (s *Shard) endpoint(n Names) string { return "unix:" + n.Socket }

// Ready is closed once MariaDB and php-fpm are up and the first convergence
// pass is done. Valid after New.
func (s *Shard) Ready() <-chan struct{} { return s.ready }

// ServersReady is closed once the shard's MariaDB, php-fpm master (with
// every pool it had: their sockets listen) and connection pooler are up,
// before the first convergence pass: from then on the pools of its
// existing sites answer. An edge waits for it before it answers after a
// restart (platform), so that visitors do not meet pools that are not
// listening yet. Valid after New.
func (s *Shard) ServersReady() <-chan struct{} { return s.serversUp }

// DB and FPM expose the shard's servers (tests inject faults through them).
func (s *Shard) DB() *mariadb.Server { return s.db }
func (s *Shard) FPM() *phpfpm.Master { return s.fpm }

// Wake asks for a convergence pass soon.
func (s *Shard) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run starts MariaDB and php-fpm and converges the shard's sites until ctx
// is done; then it stops both servers and returns. Call Prepare first.
func (s *Shard) Run(ctx context.Context, src Sites) error {
	// The firewall covers every existing site user before any of their
	// pools or cron jobs runs.
	if err := s.syncSiteUsers(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	var wg sync.WaitGroup
	procCtx, stopProcs := context.WithCancel(context.WithoutCancel(ctx))
	waitTemplates := s.startTemplates(ctx)
	defer func() {
		waitTemplates()
		stopProcs()
		wg.Wait()
		s.db.Close()
		if s.tier.replica != nil {
			s.tier.replica.Close()
		}
		s.unmountAll()
	}()
	// Volumes first: php-fpm's pools must not start on the bare
	// directories beneath them (after a reboot).
	s.mountAll(ctx)
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.db.Run(procCtx) }()
	go func() { defer wg.Done(); _ = s.fpm.Run(procCtx) }()
	// The pooler (and replica) beside them (dbtier.go).
	s.startDBTier(procCtx, &wg)
	for _, ch := range []<-chan struct{}{s.db.Ready(), s.fpm.Ready(), s.dbTierReady()} {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
	close(s.serversUp)
	if s.cfg.Database != nil {
		s.log.Info("shard servers up", "mariadb_server", s.cfg.Database.Addr, "pooler", s.poolerOn(), "replica", s.cfg.Replica)
	} else {
		s.log.Info("shard servers up", "mariadb_socket", s.db.Socket(), "pooler", s.poolerOn(), "replica", s.cfg.Replica)
	}
	// The binary log shipper, beside convergence; it ends (shipping what
	// it holds) before MariaDB stops.
	shipCtx, stopShip := context.WithCancel(ctx)
	shipDone := s.startShipper(shipCtx)
	defer func() { stopShip(); <-shipDone }()
	first := true
	tick := time.NewTicker(s.cfg.Resync)
	defer tick.Stop()
	for {
		if err := s.Converge(ctx, src); err != nil && ctx.Err() == nil {
			s.log.Error("converge", "err", err)
		}
		if first {
			first = false
			close(s.ready)
			// WP-Cron runs beside convergence: a slow site's cron must not
			// hold up creating, suspending or deleting others.
			wg.Add(1)
			go func() { defer wg.Done(); s.cronLoop(ctx, src) }()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// Converge runs one pass over every site of the shard, then collects
// orphaned resources. Passes run one at a time: a call waits for the pass
// in progress (Run's, say) to end.
func (s *Shard) Converge(ctx context.Context, src Sites) error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	sites, err := src.ListSites(ctx, s.cfg.Name)
	if err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	s.setShipperSites(sites)
	s.setSiteRefs(sites)
	known := map[string]bool{}
	var errs []error
	for i := range sites {
		st := &sites[i]
		known[SiteID(st.Metadata.UID)] = true
		if err := s.reconcile(ctx, src, st); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("site %s: %w", st.Metadata.Name, err))
		}
	}
	// Spares for the next new sites (spares.go), then pools whose
	// settings changed this pass (a plan, or every pool after an upgrade
	// that writes them differently): one reload for all.
	if err := s.keepSpares(ctx, s.fpm.Owed(), len(sites) > 0); err != nil {
		errs = append(errs, fmt.Errorf("spare pools: %w", err))
	}
	if err := s.fpm.ApplyPending(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(sites) == 0 {
		// A shard without sites keeps no template database (template.go):
		// nothing of it stays on an external database server once its
		// last site is gone. The next site's creation builds it again.
		s.dropIdleTemplates(ctx)
	}
	if now := s.cfg.Clock(); now.Sub(s.lastGC) >= s.cfg.FullResync {
		if err := s.collectOrphans(ctx, known); err != nil {
			errs = append(errs, err)
		} else {
			s.lastGC = now
		}
	}
	return errors.Join(errs...)
}

// Names are the per-site resource names (see shardlayout).
type Names = shardlayout.Names

// Layout is where a shard keeps each site's resources (see shardlayout).
type Layout = shardlayout.Layout

// SiteID is shardlayout.SiteID.
func SiteID(uid string) string { return shardlayout.SiteID(uid) }

// LocalName is the name of the original single shard (shardlayout.LocalName).
const LocalName = shardlayout.LocalName

// NamePrefix is shardlayout.NamePrefix.
func NamePrefix(shard string) string { return shardlayout.NamePrefix(shard) }

// NamesFor returns the resource names of the site with uid on this shard.
func (s *Shard) NamesFor(uid string) Names { return s.layout.Site(uid) }

func (s *Shard) namesForID(id string) Names { return s.layout.SiteByID(id) }

// secrets are generated once per site and kept in its directory (root only).
//
// A site has two database accounts that a password rotation alternates
// between (rotate.go): n.DBUser (DBSlot "") and n.DBUser+"_b" (DBSlot
// "b"); DBPassword is the password of the one in use (sec.dbUser).
// DBRotation records a rotation in flight, so that a crash at any step is
// finished by the retry.
type secrets struct {
	DBPassword string          `json:"db_password"`
	Salts      wordpress.Salts `json:"salts"`
	DBSlot     string          `json:"db_slot,omitempty"`
	DBRotation *dbRotation     `json:"db_rotation,omitempty"`
}

// dbUser is the database account the site's wp-config.php uses.
func (sec *secrets) dbUser(n Names) string { return dbUserFor(n, sec.DBSlot) }

func loadOrCreateSecrets(dir string) (*secrets, error) {
	path := filepath.Join(dir, "secrets.json")
	if b, err := os.ReadFile(path); err == nil {
		var sec secrets
		if err := json.Unmarshal(b, &sec); err == nil && sec.DBPassword != "" {
			return &sec, nil
		}
	}
	sec := &secrets{DBPassword: newDBPassword(), Salts: wordpress.NewSalts()}
	if err := writeSecrets(dir, sec); err != nil {
		return nil, err
	}
	return sec, nil
}

func newDBPassword() string {
	return wordpress.RandomString(32, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
}

// writeSecrets replaces the site's secrets.json (root only, atomically).
func writeSecrets(dir string, sec *secrets) error {
	path := filepath.Join(dir, "secrets.json")
	b, _ := json.Marshal(sec)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("site secrets: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("site secrets: %w", err)
	}
	return nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	return u.Host
}
