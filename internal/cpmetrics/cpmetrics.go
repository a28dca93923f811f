// Package cpmetrics exports the control plane's Prometheus metrics on a
// registry of its own (never the global default one): API latency by
// route, the store's latency by operation, jobs by kind and result, the
// shards' placement and health as the control plane sees them, their
// sites' backup coverage (the leader's scheduler's view) and backup
// repositories' sizes, and whether this replica leads.
//
// No series is per site: at 50,000 sites the control plane's scrape is
// per shard (7 series per shard), per API route (the route pattern, e.g.
// "GET /v1/sites/{name}", never the raw path), per store operation and per
// job kind, so its size follows the number of shards, not of sites.
// Per-site figures come from the shard hosting the site (package
// shardmetrics) and from the edges (package metrics).
//
// Jobs are counted where they end: UpdateJob of the store Store returns
// (every job update, from a shard agent over the API or from a shard in
// `aipress up`, goes through it), when it writes a job's move from Pending
// or Running to Succeeded or Failed. Each replica counts what it wrote;
// sum over replicas.
package cpmetrics

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/store"
)

// Metrics holds the control plane's collectors. It is safe for concurrent
// use.
type Metrics struct {
	reg      *prometheus.Registry
	api      *prometheus.HistogramVec
	storeOps *prometheus.HistogramVec
	jobs     *prometheus.CounterVec
	leading  atomic.Bool
	st       store.Store
	clock    func() time.Time
	backups  func() map[string]BackupCoverage
	repos    func() map[string]int64
}

// BackupCoverage is one shard's backup coverage: its scheduled sites by
// state (OK, LATE, NONE, OFF), how many are alerts (late, or never backed
// up a window after creation), and the oldest last good backup among them
// (zero: none).
type BackupCoverage struct {
	States     map[string]int
	Alerts     int
	OldestGood time.Time
}

// Config configures Metrics.
type Config struct {
	// Store is read at each scrape (its shards and active jobs: a few
	// queries, none per site).
	Store store.Store
	// Clock is the time (default time.Now).
	Clock func() time.Time
	// Backups, if set, returns the backup coverage by shard as the
	// leader's backup scheduler saw it last (backupctl.Controller.
	// Coverage, adapted); it is exported only while this replica leads.
	Backups func() map[string]BackupCoverage
	// BackupRepos, if set, returns each backup repository's stored bytes
	// (by name: its shard's) as the leader measured them last
	// (backupctl.Controller.RepositoryBytes); exported only while this
	// replica leads.
	BackupRepos func() map[string]int64
	// Runtime adds the Go runtime and process collectors: leave it off
	// when the registry is served together with another that has them
	// (`aipress up`: the edge's).
	Runtime bool
}

// New returns Metrics on a new registry.
func New(cfg Config) *Metrics {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		api: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aipress_api_request_duration_seconds",
			Help:    "Time the API took to answer, by route (method and pattern) and status code class; long polls and followed logs are left out.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code_class"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aipress_store_operation_duration_seconds",
			Help:    "Time the control plane's store took, by operation (the frequent ones), errors included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aipress_jobs_finished_total",
			Help: "Jobs this replica saw end, by kind and result (succeeded, failed).",
		}, []string{"kind", "result"}),
		st:      cfg.Store,
		clock:   cfg.Clock,
		backups: cfg.Backups,
		repos:   cfg.BackupRepos,
	}
	m.reg.MustRegister(m.api, m.storeOps, m.jobs, &collector{m: m})
	if cfg.Runtime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the registry, for more collectors and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveAPI records one API answer; route is the route's method and
// pattern ("GET /v1/sites/{name}"), never the request's path.
func (m *Metrics) ObserveAPI(route string, status int, d time.Duration) {
	m.api.WithLabelValues(route, codeClass(status)).Observe(d.Seconds())
}

// SetLeading records whether this replica leads the periodic work.
func (m *Metrics) SetLeading(v bool) { m.leading.Store(v) }

func codeClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

var (
	dLeader       = prometheus.NewDesc("aipress_controlplane_leader", "1 if this control-plane replica runs the periodic work (controller, backups schedule).", nil, nil)
	dShardUp      = prometheus.NewDesc("aipress_shard_ready", "1 if the control plane judges the shard Ready (heartbeating and, for a provider's shard, its infrastructure ready).", []string{"shard"}, nil)
	dShardBeat    = prometheus.NewDesc("aipress_shard_heartbeat_age_seconds", "Time since the shard's last heartbeat (absent before its first).", []string{"shard"}, nil)
	dCapacity     = prometheus.NewDesc("aipress_shard_capacity_sites", "How many sites the shard takes (placement).", []string{"shard"}, nil)
	dPlaced       = prometheus.NewDesc("aipress_shard_placed_sites", "Sites placed on the shard, as its heartbeat reports them.", []string{"shard"}, nil)
	dServing      = prometheus.NewDesc("aipress_shard_serving_sites", "Sites the shard serves, as its heartbeat reports them.", []string{"shard"}, nil)
	dOpen         = prometheus.NewDesc("aipress_shard_open", "1 if placement may put new sites on the shard (neither cordoned nor draining).", []string{"shard"}, nil)
	dDisk         = prometheus.NewDesc("aipress_shard_disk_bytes", "Size of the shard's data directory, as its heartbeat reports it.", []string{"shard"}, nil)
	dMemory       = prometheus.NewDesc("aipress_shard_memory_bytes", "Resident memory of the shard's MariaDB and php-fpm, as its heartbeat reports it.", []string{"shard"}, nil)
	dActive       = prometheus.NewDesc("aipress_jobs_active", "Jobs pending or running, by kind and phase.", []string{"kind", "phase"}, nil)
	dBackupSites  = prometheus.NewDesc("aipress_backup_sites", "Sites with scheduled backups by coverage state (OK, LATE, NONE, OFF), per shard, as the leader's scheduler saw them last.", []string{"shard", "state"}, nil)
	dBackupAlerts = prometheus.NewDesc("aipress_backup_sites_alerting", "Sites whose last good backup is older than their plan's window, or that have none a window after creation, per shard.", []string{"shard"}, nil)
	dBackupOldest = prometheus.NewDesc("aipress_backup_oldest_good_age_seconds", "Age of the oldest last good backup among a shard's sites (absent when none has one).", []string{"shard"}, nil)
	dBackupRepo   = prometheus.NewDesc("aipress_backup_repository_bytes", "Bytes a shard's backup repository stores (its packs, compressed and encrypted), as the leader measured them last (hourly).", []string{"repository"}, nil)
	dScrapeErr    = prometheus.NewDesc("aipress_controlplane_scrape_errors", "Store reads this scrape could not make (shards, jobs).", []string{"source"}, nil)
)

// collector reads the store at each scrape.
type collector struct{ m *Metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dBackupSites, dBackupAlerts, dBackupOldest, dBackupRepo, dLeader, dShardUp, dShardBeat, dCapacity, dPlaced, dServing, dOpen, dDisk, dMemory, dActive, dScrapeErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	gauge(dLeader, b2f(m.leading.Load()))
	if m.backups != nil && m.leading.Load() { // only the leader schedules backups
		now := m.clock()
		for shard, cov := range m.backups() {
			for state, n := range cov.States {
				gauge(dBackupSites, float64(n), shard, state)
			}
			gauge(dBackupAlerts, float64(cov.Alerts), shard)
			if !cov.OldestGood.IsZero() {
				gauge(dBackupOldest, max(now.Sub(cov.OldestGood).Seconds(), 0), shard)
			}
		}
	}
	if m.repos != nil && m.leading.Load() {
		for name, n := range m.repos() {
			gauge(dBackupRepo, float64(n), name)
		}
	}
	if m.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := m.clock()
	shardErr := 0
	shards, err := m.st.ListShards(ctx)
	if err != nil {
		shardErr = 1
	}
	for _, sh := range shards {
		gauge(dShardUp, b2f(sh.Phase == store.ShardReady), sh.Name)
		if sh.LastHeartbeat != nil {
			gauge(dShardBeat, max(now.Sub(*sh.LastHeartbeat).Seconds(), 0), sh.Name)
		}
		capacity := sh.Capacity
		if capacity <= 0 {
			capacity = placement.DefaultCapacity
		}
		gauge(dCapacity, float64(capacity), sh.Name)
		gauge(dPlaced, float64(sh.Usage.Sites), sh.Name)
		gauge(dServing, float64(sh.Usage.Serving), sh.Name)
		gauge(dOpen, b2f(!sh.Cordoned && !sh.Draining), sh.Name)
		gauge(dDisk, float64(sh.Usage.DiskBytes), sh.Name)
		gauge(dMemory, float64(sh.Usage.MemoryBytes), sh.Name)
	}
	gauge(dScrapeErr, float64(shardErr), "shards")

	// Active jobs are few (each site has at most a handful at once); at
	// most ten pages are read.
	type kp struct {
		kind  store.JobKind
		phase store.JobPhase
	}
	active := map[kp]int{}
	jobErr := 0
	opts := store.JobListOptions{Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit}
	for range 10 {
		page, err := m.st.ListJobs(ctx, opts)
		if err != nil {
			jobErr = 1
			break
		}
		for _, j := range page.Items {
			active[kp{j.Kind, j.Phase}]++
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	for k, n := range active {
		gauge(dActive, float64(n), string(k.kind), string(k.phase))
	}
	gauge(dScrapeErr, float64(jobErr), "jobs")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
