// Package shardmetrics exports a shard's Prometheus metrics on a registry
// of its own (never the global default one): its sites' php-fpm pools
// (from each pool's FastCGI status page), databases (size, connections,
// statements), files, its connection pooler, and the health of its MariaDB
// server and php-fpm master. Figures are read when Prometheus scrapes
// (a prometheus.Collector), except the slow ones (see below).
//
// # Which series are per site
//
// Series per site are exported only by the shard that hosts the site, so
// a shard's scrape holds at most its capacity (~50 sites) times the
// per-site series below (14), whatever the fleet's size: at 50,000 sites
// on 1,000 shards every shard still exposes ~700 per-site series, and no
// role exports a series per site of the whole fleet (the control plane's
// metrics, package cpmetrics, are per shard, route, job kind). Per site:
// pool workers by state, listen queue, accepted connections, max-children
// reached and slow requests; database bytes, connections and statements;
// file bytes; the pooler's clients, backends and refusals of the site's
// account. Everything else (MariaDB and php-fpm health, the pooler's
// totals) is per shard. The site label is the site's name.
//
// # Pool status and pm = ondemand
//
// A pool's status page is answered by one of its workers, and answering
// restarts that worker's idle timer; asked at every scrape it would keep a
// worker of every pool alive forever and undo pm = ondemand. So the
// collector counts each pool's workers from /proc at every scrape and asks
// the status page only of pools that have a worker, at most every
// Config.StatusInterval (default 60 s, longer than the pools' 30 s idle
// timeout); a pool without workers has no active or idle workers and an
// empty queue. Its counters (accepted connections, max children reached,
// slow requests) are php-fpm's and start again from zero when the master
// restarts or reloads. Slow requests are those longer than the pools'
// request_slowlog_timeout (phpfpm.DefaultSlowlogTimeout; see package
// phpfpm, "Slow requests").
//
// The file system holding the shard's data directory (Source.Dir) is
// measured with statfs(2) at every scrape: its size and the bytes still
// available to unprivileged writers (statfs's f_bavail, what
// node_exporter calls avail). The read replica, when the shard has one,
// is its replica watch's last observation (package replwatch, every
// 200 ms): no query at scrape time.
//
// Site file sizes come from the shard's background walk (shard.SiteDisk:
// every shard.DiskInterval, and soon after a site appears); database
// figures from MariaDB's information_schema (USER_STATISTICS needs
// userstat, which the shard's own server has; a remote server may give no
// per-site statements).
package shardmetrics

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/procfs"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/pooler"
	"github.com/aipress/aipress/internal/replwatch"
	"github.com/aipress/aipress/internal/shard"
)

// Source is the shard the collector reads: *shard.Shard. SiteRefs are its
// sites; SiteDisk their file bytes by site ID (may lag or be empty);
// Pooler is nil when the shard runs without one; DB and FPM are its
// MariaDB server and php-fpm master (nil before Prepare); Dir is its data
// directory; ReplicaStatus its read replica's last observation (ok false:
// no replica).
type Source interface {
	SiteRefs() []shard.SiteRef
	SiteDisk() map[string]int64
	Pooler() *pooler.Pooler
	DB() *mariadb.Server
	FPM() *phpfpm.Master
	Dir() string
	ReplicaStatus() (replwatch.Status, bool)
}

// Config configures a Collector.
type Config struct {
	// Shard is the shard's name (the shard label of every series).
	Shard string
	// StatusInterval is the least time between two status requests to one
	// pool (default 60 s; see the package documentation).
	StatusInterval time.Duration
	// Timeout bounds one scrape's database queries and status requests
	// (default 5 s).
	Timeout time.Duration
	// Clock is the time (default time.Now).
	Clock func() time.Time
	// ProcDir is /proc (tests may point elsewhere).
	ProcDir string
	// Runtime adds the Go runtime and process collectors: leave it off
	// when the registry is served together with another that has them
	// (`aipress up`).
	Runtime bool
}

// DefaultStatusInterval is Config.StatusInterval's default.
const DefaultStatusInterval = 60 * time.Second

// Metrics is a shard's registry with its collector.
type Metrics struct {
	reg *prometheus.Registry
	c   *collector
}

// New returns the shard's metrics on a new registry.
func New(src Source, cfg Config) *Metrics {
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	c := &collector{src: src, cfg: cfg, status: map[string]*poolStatus{}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if cfg.Runtime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return &Metrics{reg: reg, c: c}
}

// Registry returns the registry, for more collectors and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// poolStatus is what a pool's status page said last.
type poolStatus struct {
	at                                   time.Time
	active, idle, queue                  float64
	accepted, maxChildrenReached, slowRq float64
}

type collector struct {
	src Source
	cfg Config

	mu     sync.Mutex             // one scrape at a time; guards status
	status map[string]*poolStatus // by pool name
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append([]string{"shard"}, labels...), nil)
}

var (
	dSites        = desc("aipress_shard_sites", "Sites the shard hosts (as of its last convergence pass).")
	dPoolProcs    = desc("aipress_php_pool_processes", "A site's php-fpm workers by state: total (counted in /proc at each scrape), active and idle (its status page, at most every status interval).", "site", "state")
	dPoolQueue    = desc("aipress_php_pool_listen_queue", "Requests waiting for a free worker of a site's pool (status page).", "site")
	dPoolAccepted = desc("aipress_php_pool_accepted_connections_total", "Requests a site's pool accepted since php-fpm started or reloaded (status page).", "site")
	dPoolMaxChild = desc("aipress_php_pool_max_children_reached_total", "Times a site's pool reached pm.max_children since php-fpm started or reloaded (status page).", "site")
	dPoolSlow     = desc("aipress_php_pool_slow_requests_total", "Requests of a site's pool that ran longer than its request_slowlog_timeout (5 s) since php-fpm started or reloaded (status page).", "site")
	dDBBytes      = desc("aipress_site_database_bytes", "Data and index bytes of a site's database.", "site")
	dDBConns      = desc("aipress_site_database_connections", "Connections of a site's database account open now.", "site")
	dDBStmts      = desc("aipress_site_database_statements_total", "Statements a site's database accounts (both of a password rotation) ran since MariaDB started.", "site")
	dDiskBytes    = desc("aipress_site_files_bytes", "Bytes of a site's own files (hard-linked core files excluded), measured at most every 5 minutes.", "site")
	dPlClients    = desc("aipress_pooler_site_clients", "Client sessions of a site's PHP open in the shard's pooler.", "site")
	dPlBackends   = desc("aipress_pooler_site_backends", "Backend connections the pooler holds for a site's account.", "site")
	dPlRefused    = desc("aipress_pooler_site_refused_total", "Clients or statements the pooler refused by a site's limits.", "site")

	dDBUp        = desc("aipress_mariadb_up", "1 if the shard's MariaDB server answered this scrape.")
	dDBStarts    = desc("aipress_mariadb_starts_total", "Times the shard started its MariaDB server (a restart adds one).")
	dDBUptime    = desc("aipress_mariadb_uptime_seconds", "MariaDB's Uptime.")
	dDBQuestions = desc("aipress_mariadb_questions_total", "MariaDB's Questions (statements from clients).")
	dDBSlow      = desc("aipress_mariadb_slow_queries_total", "MariaDB's Slow_queries.")
	dDBThreads   = desc("aipress_mariadb_threads", "MariaDB's client threads: connected and running.", "state")
	dDBMaxUsed   = desc("aipress_mariadb_max_used_connections", "MariaDB's Max_used_connections.")
	dFPMUp       = desc("aipress_phpfpm_up", "1 if the shard's php-fpm master runs.")
	dFPMStarts   = desc("aipress_phpfpm_starts_total", "Times the shard started its php-fpm master (a restart adds one).")
	dFPMWorkers  = desc("aipress_phpfpm_workers", "php-fpm workers of all the shard's site pools (from /proc).")
	dStatusErrs  = desc("aipress_shard_metrics_errors", "Figures this scrape could not read, by source (pool_status, database, filesystem).", "source")
	dFSSize      = desc("aipress_shard_filesystem_size_bytes", "Size of the file system holding the shard's data directory (statfs at each scrape).")
	dFSAvail     = desc("aipress_shard_filesystem_avail_bytes", "Bytes of the file system holding the shard's data directory that unprivileged writers may still use (statfs f_bavail, at each scrape).")

	dReplLag     = desc("aipress_replica_lag_seconds", "How far the shard's read replica is behind its primary: the larger of its Seconds_Behind_Master and how long it has lacked a transaction the primary had logged (replica watch; only with a replica that was observed).")
	dReplHealthy = desc("aipress_replica_healthy", "1 if reads may go to the shard's read replica (threads running, lag within bounds, observation fresh).")
	dReplThreads = desc("aipress_replica_thread_running", "1 if the replica's replication thread (io, sql) runs.", "thread")
	dReplAge     = desc("aipress_replica_observation_age_seconds", "Age of the replica watch's last observation (a hung replica stops answering).")

	dPlClientsAll = desc("aipress_pooler_clients", "Client sessions open in the shard's pooler.")
	dPlBackendsT  = desc("aipress_pooler_backends", "Backend connections the pooler holds, by target (primary, replica).", "target")
	dPlPeak       = desc("aipress_pooler_backends_peak", "Most backend connections the pooler held at once since it started.")
	dPlPinned     = desc("aipress_pooler_pinned_sessions", "Client sessions pinned to their backend now.")
	dPlQueries    = desc("aipress_pooler_queries_total", "Statements the pooler forwarded, by target (primary, replica).", "target")
	dPlDialed     = desc("aipress_pooler_dialed_total", "Backend connections the pooler opened.")
	dPlChanged    = desc("aipress_pooler_changed_user_total", "Idle backends one account took over from another (COM_CHANGE_USER).")
	dPlQueued     = desc("aipress_pooler_queued_total", "Statements that waited for a backend at the server's limit.")
	dPlOverflowed = desc("aipress_pooler_overflowed_total", "Backends opened beyond the server's limit after the queue wait.")
	dPlReclaimed  = desc("aipress_pooler_reclaimed_total", "Statements that found the backend their session's last statement left lingering.")
	dPlTurns      = desc("aipress_pooler_turns_ended_total", "Backends put back instead of lingering because their session's turn was over while statements waited.")
	dPlLingerCut  = desc("aipress_pooler_linger_cut_total", "Lingering backends another site's statement took over after the queue wait instead of opening one beyond the server's limit.")
	dPlQueueWait  = desc("aipress_pooler_queue_wait_seconds_total", "Time statements waited for a backend at the server's limit, summed.")
)

var allDescs = []*prometheus.Desc{dSites, dPoolProcs, dPoolQueue, dPoolAccepted, dPoolMaxChild, dPoolSlow, dDBBytes, dDBConns, dDBStmts,
	dDiskBytes, dPlClients, dPlBackends, dPlRefused, dDBUp, dDBStarts, dDBUptime, dDBQuestions, dDBSlow, dDBThreads, dDBMaxUsed,
	dFPMUp, dFPMStarts, dFPMWorkers, dStatusErrs, dFSSize, dFSAvail, dReplLag, dReplHealthy, dReplThreads, dReplAge, dPlClientsAll, dPlBackendsT, dPlPeak, dPlPinned, dPlQueries, dPlDialed,
	dPlChanged, dPlQueued, dPlOverflowed, dPlReclaimed, dPlTurns, dPlLingerCut, dPlQueueWait}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	sh := c.cfg.Shard
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{sh}, l...)...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{sh}, l...)...)
	}
	refs := c.src.SiteRefs()
	gauge(dSites, float64(len(refs)))

	// php-fpm: the master and its workers by pool.
	workers := map[string]int{}
	if fpm := c.src.FPM(); fpm != nil && fpm.Process() != nil {
		pid := fpm.Process().PID()
		gauge(dFPMUp, b2f(pid > 0))
		counter(dFPMStarts, float64(fpm.Process().Starts()))
		if pid > 0 {
			workers = poolWorkers(c.cfg.ProcDir, pid)
		}
		total := 0
		for _, n := range workers {
			total += n
		}
		gauge(dFPMWorkers, float64(total))
	} else {
		gauge(dFPMUp, 0)
	}
	statusErrs := c.refreshStatus(ctx, refs, workers)
	gauge(dStatusErrs, float64(statusErrs), "pool_status")
	for _, r := range refs {
		st := c.status[r.Pool]
		n := workers[r.Pool]
		gauge(dPoolProcs, float64(n), r.Name, "total")
		var active, idle, queue float64
		if n > 0 && st != nil {
			active, idle, queue = st.active, st.idle, st.queue
		}
		gauge(dPoolProcs, active, r.Name, "active")
		gauge(dPoolProcs, idle, r.Name, "idle")
		gauge(dPoolQueue, queue, r.Name)
		if st == nil {
			st = &poolStatus{}
		}
		counter(dPoolAccepted, st.accepted, r.Name)
		counter(dPoolMaxChild, st.maxChildrenReached, r.Name)
		counter(dPoolSlow, st.slowRq, r.Name)
	}

	// MariaDB.
	dbErrs := 0
	if db := c.src.DB(); db != nil {
		if p := db.Process(); p != nil {
			counter(dDBStarts, float64(p.Starts()))
		}
		stats, err := db.Statistics(ctx, shard.NamePrefix(sh))
		if err != nil {
			dbErrs++
		}
		gauge(dDBUp, b2f(stats.Up))
		if stats.Up {
			gauge(dDBUptime, stats.Uptime)
			counter(dDBQuestions, stats.Questions)
			counter(dDBSlow, stats.SlowQueries)
			gauge(dDBThreads, stats.ThreadsConnected, "connected")
			gauge(dDBThreads, stats.ThreadsRunning, "running")
			gauge(dDBMaxUsed, stats.MaxUsedConnections)
		}
		if stats.SchemaBytes != nil {
			for _, r := range refs {
				gauge(dDBBytes, float64(stats.SchemaBytes[r.DB]), r.Name)
			}
		}
		if stats.Users != nil {
			for _, r := range refs {
				// Both accounts a password rotation alternates
				// between: the counter does not drop at a rotation.
				var conns, stmts float64
				for _, u := range r.DBUsers() {
					conns += float64(stats.Users[u].Connections)
					stmts += float64(stats.Users[u].Statements)
				}
				gauge(dDBConns, conns, r.Name)
				counter(dDBStmts, stmts, r.Name)
			}
		}
	} else {
		gauge(dDBUp, 0)
	}
	gauge(dStatusErrs, float64(dbErrs), "database")

	// The file system of the data directory.
	if size, avail, err := statfs(c.src.Dir()); err == nil {
		gauge(dFSSize, size)
		gauge(dFSAvail, avail)
		gauge(dStatusErrs, 0, "filesystem")
	} else {
		gauge(dStatusErrs, 1, "filesystem")
	}

	// The read replica.
	if st, ok := c.src.ReplicaStatus(); ok && !st.ObservedAt.IsZero() {
		lag := st.Lag.Seconds()
		if st.SecondsBehind != nil {
			lag = max(lag, float64(*st.SecondsBehind))
		}
		gauge(dReplLag, lag)
		gauge(dReplHealthy, b2f(st.Healthy))
		gauge(dReplThreads, b2f(st.IORunning), "io")
		gauge(dReplThreads, b2f(st.SQLRunning), "sql")
		gauge(dReplAge, max(c.cfg.Clock().Sub(st.ObservedAt).Seconds(), 0))
	}

	// Files.
	disk := c.src.SiteDisk()
	for _, r := range refs {
		if n, ok := disk[r.ID]; ok {
			gauge(dDiskBytes, float64(n), r.Name)
		}
	}

	// The pooler.
	if p := c.src.Pooler(); p != nil {
		s := p.Stats()
		gauge(dPlClientsAll, float64(s.Clients))
		gauge(dPlBackendsT, float64(s.BackendsPrimary), "primary")
		gauge(dPlBackendsT, float64(s.BackendsReplica), "replica")
		gauge(dPlPeak, float64(s.PeakBackends))
		gauge(dPlPinned, float64(s.PinnedSessions))
		counter(dPlQueries, float64(s.QueriesPrimary), "primary")
		counter(dPlQueries, float64(s.QueriesReplica), "replica")
		counter(dPlDialed, float64(s.Dialed))
		counter(dPlChanged, float64(s.ChangedUser))
		counter(dPlQueued, float64(s.Queued))
		counter(dPlOverflowed, float64(s.Overflowed))
		counter(dPlReclaimed, float64(s.Reclaimed))
		counter(dPlTurns, float64(s.TurnsEnded))
		counter(dPlLingerCut, float64(s.LingerCut))
		counter(dPlQueueWait, s.QueueWait.Seconds())
		for _, r := range refs {
			a := s.Accounts[r.DBUser]
			gauge(dPlClients, float64(a.Clients), r.Name)
			gauge(dPlBackends, float64(a.Backends), r.Name)
			counter(dPlRefused, float64(a.Refused), r.Name)
		}
	}
}

// refreshStatus asks the status page of every pool that has a worker and
// was last asked StatusInterval ago, a few at a time; it forgets pools no
// site has and returns how many requests failed.
func (c *collector) refreshStatus(ctx context.Context, refs []shard.SiteRef, workers map[string]int) int {
	now := c.cfg.Clock()
	keep := map[string]bool{}
	var due []shard.SiteRef
	for _, r := range refs {
		keep[r.Pool] = true
		st := c.status[r.Pool]
		if workers[r.Pool] > 0 && (st == nil || now.Sub(st.at) >= c.cfg.StatusInterval) {
			due = append(due, r)
		}
	}
	for p := range c.status {
		if !keep[p] {
			delete(c.status, p)
		}
	}
	type answer struct {
		pool string
		st   *poolStatus
	}
	answers := make(chan answer, len(due))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, r := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := fetchStatus(ctx, r.Socket)
			if err != nil {
				answers <- answer{pool: r.Pool}
				return
			}
			st.at = now
			answers <- answer{pool: r.Pool, st: st}
		}()
	}
	wg.Wait()
	close(answers)
	errs := 0
	for a := range answers {
		if a.st == nil {
			errs++
			continue
		}
		c.status[a.pool] = a.st
	}
	return errs
}

// fetchStatus asks a pool's status page (phpfpm.StatusPath) over its
// socket and parses php-fpm's plain-text answer.
func fetchStatus(ctx context.Context, socket string) (*poolStatus, error) {
	body, err := edge.FastCGIGet(ctx, "unix", socket, map[string]string{
		"SCRIPT_NAME": phpfpm.StatusPath, "SCRIPT_FILENAME": phpfpm.StatusPath,
		"REQUEST_URI": phpfpm.StatusPath, "QUERY_STRING": "",
	}, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("pool status %s: %w", socket, err)
	}
	return parseStatus(body)
}

// parseStatus reads php-fpm's plain-text status. The worker that answers
// counts itself active: it is subtracted.
func parseStatus(body []byte) (*poolStatus, error) {
	st := &poolStatus{}
	fields := map[string]*float64{"accepted conn": &st.accepted, "listen queue": &st.queue, "idle processes": &st.idle,
		"active processes": &st.active, "max children reached": &st.maxChildrenReached, "slow requests": &st.slowRq}
	seen := 0
	for _, line := range strings.Split(string(body), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		p := fields[strings.TrimSpace(k)]
		if p == nil {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("pool status: %s: %w", k, err)
		}
		*p = f
		seen++
	}
	if seen != len(fields) {
		return nil, fmt.Errorf("pool status: %d of %d fields in %q", seen, len(fields), truncate(body, 200))
	}
	st.active = max(st.active-1, 0)
	return st, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// poolWorkers counts the php-fpm workers by pool: processes titled
// "php-fpm: pool NAME" whose parent is a "php-fpm: master process" that
// is root or descends from it, read from procDir with prometheus/procfs
// (what the process collector uses). A site's PHP may title its own
// processes as it likes, but they are its worker's children, not the
// master's.
func poolWorkers(procDir string, root int) map[string]int {
	fs, err := procfs.NewFS(procDir)
	if err != nil {
		return nil
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	byPID := map[int]procfs.Proc{}
	for _, p := range procs {
		if st, err := p.Stat(); err == nil {
			parent[p.PID] = st.PPID
			byPID[p.PID] = p
		}
	}
	title := func(pid int) string {
		cmd, err := byPID[pid].CmdLine()
		if err != nil || len(cmd) == 0 {
			return ""
		}
		return strings.TrimRight(cmd[0], " ")
	}
	masters := map[int]bool{}
	out := map[string]int{}
	for pid, pp := range parent {
		name, ok := strings.CutPrefix(title(pid), "php-fpm: pool ")
		if !ok {
			continue
		}
		isMaster, seen := masters[pp]
		if !seen {
			isMaster = (pp == root || descends(parent, pp, root)) && strings.HasPrefix(title(pp), "php-fpm: master process")
			masters[pp] = isMaster
		}
		if !isMaster {
			continue
		}
		if i := strings.IndexByte(name, ' '); i >= 0 {
			name = name[:i]
		}
		out[name]++
	}
	return out
}

// descends reports whether pid is a strict descendant of root.
func descends(parent map[int]int, pid, root int) bool {
	for range 64 {
		pp, ok := parent[pid]
		if !ok || pp <= 1 {
			return false
		}
		if pp == root {
			return true
		}
		pid = pp
	}
	return false
}

// statfs returns the size and the bytes available to unprivileged
// writers of the file system holding dir.
func statfs(dir string) (size, avail float64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return float64(st.Blocks) * float64(st.Bsize), float64(st.Bavail) * float64(st.Bsize), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
