// Package phpfpm runs one php-fpm master per shard and manages its pools:
// one pool per site (pm = ondemand, the site's own Unix user, a root-owned
// 0600 socket, a request time limit), added with a graceful reload or made
// ahead of their sites as spares (below), and removed without a reload
// (RemovePool).
//
// Every site's PHP is treated as hostile. The master is started with
// internal/phpini's hardening on its command line (php-fpm -d: OPcache's
// validate_permission, validate_root and restrict_api are INI_SYSTEM and
// only take effect there), and every pool repeats each setting a site
// could change (not the PHP_INI_SYSTEM ones, phpini's System settings) as
// php_admin_value/php_admin_flag, which locks it against ini_set and
// .user.ini. The master runs in a mount namespace of its own whose /proc
// hides other users' processes (internal/procns), so a site's worker sees
// only its own site's processes.
//
// # Slow requests
//
// Every site pool sets request_slowlog_timeout (Pool.SlowlogTimeout,
// DefaultSlowlogTimeout): php-fpm's master then counts a request that runs
// longer (the status page's "slow requests", exported by package
// shardmetrics) and writes the worker's PHP stack into the pool's slow
// log. The master writes that log as root, opening it by path for every
// trace and following links, so it cannot live in the site's logs
// directory (the site's user could replace it with a link to any file of
// the machine): it lives in the master's own directory (Master.SlowLog,
// root's, 0700), and the shard bounds it like the PHP error log
// (sitelog.RotateFile at every pass; a trace is at most SlowlogTraceDepth
// frames, and a worker makes at most one per request). Counting needs the
// master to ptrace the worker (root, or CAP_SYS_PTRACE): where it cannot,
// php-fpm logs the failure and the request is not counted.
//
// # Reloads and OPcache
//
// A reload re-executes the master, which empties OPcache's shared memory
// for every pool. With Master.FileCache the pools find WordPress compiled
// in a root-filled, read-only file cache instead (filecache.go).
//
// The master always has one internal pool (_aipress) so that it can start
// with no sites at all; php-fpm refuses to run without a pool.
//
// # Spare pools
//
// A new pool is started with a reload, and a reload pauses every site of
// the shard (see RemovePool) and empties OPcache's shared memory. So a
// shard makes pools ahead of its sites: WriteSpares writes spare pools,
// which the next reload starts (one for all of them, and one the shard's
// pass may make anyway), each for a user of its own that no site has yet,
// and Claim gives one to a new site without a reload. php-fpm cannot
// rename a loaded pool, so the spare is made so that everything that
// names it can be pointed at the site later:
//
//   - its user and group are written as numeric IDs, which the caller's
//     rename of the spare's user and group into the site's (usermod -l,
//     groupmod -n) leaves valid: a pool file naming a user that no longer
//     exists would make php-fpm refuse the whole configuration;
//   - its working directory, temporary directory and PHP error log are
//     below a link, SpareDir/NAME, which points at SpareDir itself until
//     Claim points it at the site's directory;
//   - its slow log, written by the master as root, is made a link to the
//     site's slow log;
//   - the site's socket path (Socket(site), what the edge derives from the
//     site's UID) is made a link to the spare's socket, and the site's pool
//     file keeps listening there for as long as the pool lives: on a reload
//     php-fpm hands its listening sockets to the new master by path, and a
//     new master refuses a socket path another listener answers on.
//
// The spare's own pool file is replaced by the site's, which the next
// reload (for any reason) loads as it is; the links of the spare's
// directory and slow log go then (spare.go). Nothing routes visitors to a
// spare, and only root can connect to its socket. Until that reload the
// site's workers carry the spare's name in their process title and the
// pool's status page.
//
// # Priority
//
// A reload is on the path of a new site that finds no spare pool (its
// own pool), and it is work for the master alone: re-executing itself, loading PHP's extensions, reading
// every pool's file (one byte per read(2)). On a busy machine — a new
// site's files, database and installation are made beside it — it waits
// for a CPU: a reload of 50 pools took 360 ms with two busy loops on 2
// cores, 225 ms with the master 10 below their nice value (180 ms quiet).
// So, as root with CAP_SYS_NICE, the master runs MasterNiceBoost below the
// platform's own nice value (php-fpm's global process.priority) and every
// pool sets its workers back to the platform's (the pool's
// process.priority): sites' PHP competes with the rest as before, and the
// master, which does little besides starting workers and reloading,
// starts and reloads sooner. Without the capability php-fpm could not set
// the priority and would refuse to start, so nothing is set.
package phpfpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/aipress/aipress/internal/caps"
	"github.com/aipress/aipress/internal/phpini"
	"github.com/aipress/aipress/internal/procns"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/supervise"
)

// ControlTimeout is how long the master lets its workers finish the
// requests they answer when it stops or reloads (php-fpm's
// process_control_timeout) before it kills them; RemovePool gives a
// removed pool's workers as long.
const ControlTimeout = 20 * time.Second

// removedPool is what the running master loaded of a pool RemovePool
// removed: its configuration (nil: not known) and the user and group IDs
// it resolved the pool's user and group to.
type removedPool struct {
	conf     []byte
	uid, gid string
}

// MasterNiceBoost is how far below the platform's nice value the master
// runs when it may ("Priority" in the package documentation).
const MasterNiceBoost = 10

// Binary is the php-fpm executable from Debian's php8.2-fpm.
const Binary = "/usr/sbin/php-fpm8.2"

// StatusPath is every site pool's pm.status_path: a FastCGI request with
// this SCRIPT_NAME on the pool's socket answers the pool's state (workers,
// listen queue, max children reached) instead of running PHP. Only root
// reaches the sockets (see RenderPool), and the edge never sends a
// SCRIPT_NAME that does not name a .php file of the docroot, so visitors
// cannot ask for it. The page is answered by one of the pool's workers.
const StatusPath = "/_aipress/fpm-status"

// DefaultSlowlogTimeout is Pool.SlowlogTimeout's default: a request
// running longer counts as slow.
const DefaultSlowlogTimeout = 5 * time.Second

// SlowlogTraceDepth is how many stack frames a slow log trace holds.
const SlowlogTraceDepth = 20

// Pool is one site's pool.
type Pool struct {
	Name        string // pool name, [a-z0-9_]
	User, Group string // empty when not running as root
	// SiteDir is the site's directory: tmp/ and logs/ live there, and it
	// is the workers' working directory (php-fpm's chdir). Not the
	// docroot: restores and imports rename and rebuild that, and php-fpm
	// refuses the whole master's configuration — every site of the shard
	// — while any pool's chdir is missing. The site's directory is made
	// before its pool and removed after it. (A request's PHP works in its
	// script's directory anyway: php-fpm changes to it.)
	SiteDir     string
	MaxChildren int
	IdleTimeout time.Duration
	MemoryMB    int
	UploadMaxMB int
	// RequestTimeout ends a request that runs longer (php-fpm's
	// request_terminate_timeout: the worker is killed, the edge answers
	// 502); zero means site.DefaultRequestTimeoutSeconds.
	RequestTimeout time.Duration
	// SlowlogTimeout makes a request that runs longer a slow one (php-fpm's
	// request_slowlog_timeout, whole seconds): counted and traced into
	// SlowLog. Zero means DefaultSlowlogTimeout.
	SlowlogTimeout time.Duration
	// Nice, if set, is the workers' nice value (php-fpm's
	// process.priority); nil: the master's. EnsurePool sets it when the
	// master runs with a lower one.
	Nice *int
	// SlowLog is the file of the traces; empty: no slow log and no
	// counting (EnsurePool sets Master.SlowLog). It must be a path the
	// site cannot change (see the package documentation).
	SlowLog string
}

var poolName = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// Master is the shard's php-fpm master.
type Master struct {
	Dir    string // config, sockets, logs
	Logger *slog.Logger
	// FileCache, when set, is OPcache's file cache (filecache.go): a
	// directory of root's that FillFileCache fills and the pools only
	// read. It must not be under Dir (which no site user may enter).
	FileCache string
	// SpareDir, when set, holds the links that spare pools' directories
	// are below (spare.go): a directory of root's that every site user
	// may traverse (0711), not under Dir.
	SpareDir string

	fillMu sync.Mutex // serialises FillFileCache

	mu   sync.Mutex // serialises pool writes and reloads
	proc *supervise.Process
	// pending is set when a pool file changed but the reload that applies
	// it failed; the next EnsurePool (or ApplyPending) reloads whatever it finds.
	pending bool
	// owed is set when UpdatePool changed a serving pool's file and left
	// its reload to ApplyPending; any reload applies it.
	owed bool
	// removed are the pools whose files RemovePool removed while the
	// running master still has them loaded: the next reload drops them,
	// and their sockets and slow logs go then (dropRemoved); made again
	// as they were, they serve without a reload (ensurePool).
	removed map[string]removedPool
	// claimed are the spare pools Claim gave to sites since the last
	// reload (spare → site pool): their links go at the next one.
	claimed map[string]string
	// unloaded are the spares WriteSpares wrote since the last reload.
	unloaded map[string]bool
	// reloads counts the master's successful reloads (Reloads).
	reloads int
	// ready is closed once the master started for the first time.
	ready chan struct{}
	// nice is the workers' nice value when the master runs with a
	// lower one (Prepare, "Priority" in the package documentation);
	// nil: the master and its workers run at the platform's own.
	nice *int
}

func (m *Master) poolDir() string { return filepath.Join(m.Dir, "pool.d") }
func (m *Master) runDir() string  { return filepath.Join(m.Dir, "run") }
func (m *Master) conf() string    { return filepath.Join(m.Dir, "php-fpm.conf") }

// SlowLogDir holds the pools' slow logs (root's, 0700).
func (m *Master) SlowLogDir() string { return filepath.Join(m.Dir, "slow") }

// SlowLog is the slow log of pool name: SlowLogDir()/NAME.log.
func (m *Master) SlowLog(name string) string { return filepath.Join(m.SlowLogDir(), name+".log") }

// Socket is the unix socket of pool name.
func (m *Master) Socket(name string) string { return filepath.Join(m.runDir(), name+".sock") }

// PoolFile is the configuration file of pool name.
func (m *Master) PoolFile(name string) string { return filepath.Join(m.poolDir(), name+".conf") }

// Prepare writes the master configuration. Pools already in pool.d are kept.
// It fails if site code could not be run with a /proc that hides other
// users' processes (internal/procns: as root without CAP_SYS_ADMIN).
func (m *Master) Prepare() error {
	m.ready = make(chan struct{})
	q, err := iniStrings(filepath.Join(m.runDir(), "php-fpm.pid"), filepath.Join(m.Dir, "php-fpm.log"), m.Socket("_aipress"), filepath.Join(m.poolDir(), "*.conf"))
	if err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := procns.Check(ctx); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	// Root's alone: the pools' configurations name every site's user and
	// docroot, and no site has anything to do with the sockets.
	for _, d := range []string{m.Dir, m.poolDir(), m.runDir(), m.SlowLogDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
	}
	if err := m.prepareFileCache(); err != nil {
		return err
	}
	if m.SpareDir != "" {
		if err := os.MkdirAll(m.SpareDir, 0o711); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
		if err := os.Chmod(m.SpareDir, 0o711); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
	}
	// No master runs: what claimed spares left is no longer loaded.
	m.pruneSpareLinks()
	// The master below the platform's nice value, its workers at it
	// ("Priority" in the package documentation).
	m.nice = nil
	globalNice, poolNice := "", ""
	if master, workers, ok := boostedNice(); ok {
		m.nice = &workers
		globalNice = fmt.Sprintf("process.priority = %d\n", master)
		poolNice = fmt.Sprintf("process.priority = %d\n", workers)
	}
	conf := fmt.Sprintf(`; Written by aipress; changes are overwritten.
[global]
pid = %s
error_log = %s
daemonize = no
process_control_timeout = %ds
emergency_restart_threshold = 0
%s
[_aipress]
%s%slisten = %s
listen.mode = 0600
pm = ondemand
pm.max_children = 1
pm.process_idle_timeout = 10s

include = %s
`, q[0], q[1], int(ControlTimeout/time.Second), globalNice, internalUser(), poolNice, q[2], q[3])
	if err := os.WriteFile(m.conf(), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("php-fpm: write config: %w", err)
	}
	return nil
}

// boostedNice returns the master's and the workers' nice values when the
// master may run below the platform's own ("Priority" in the package
// documentation): as root with CAP_SYS_NICE, which php-fpm needs to set
// it (without, it refuses to start), and not at -20 already.
func boostedNice() (master, workers int, ok bool) {
	if os.Geteuid() != 0 || !caps.Has(unix.CAP_SYS_NICE) {
		return 0, 0, false
	}
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, 0, false
	}
	workers = 20 - prio // the raw system call's value is 20 - nice
	master = max(workers-MasterNiceBoost, -20)
	return master, workers, master < workers
}

func internalUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	return "user = nobody\ngroup = nogroup\n"
}

// Run runs the master until ctx is done, restarting it if it dies.
func (m *Master) Run(ctx context.Context) error {
	m.proc = &supervise.Process{
		Name: "php-fpm",
		Command: func() *exec.Cmd {
			// Stale sockets would pass for readiness; the new master
			// creates its own. A link (a site's socket path leading to
			// the spare's socket its pool listens on) stays.
			socks, _ := filepath.Glob(filepath.Join(m.runDir(), "*.sock"))
			for _, f := range socks {
				if fi, err := os.Lstat(f); err == nil && fi.Mode().Type() != os.ModeSymlink {
					_ = os.Remove(f)
				}
			}
			cmd := exec.Command(Binary, m.args()...)
			// In a mount namespace whose /proc hides other users'
			// processes and whose shared temporary directories are
			// small tmpfs mounts (the shard's directory, which holds
			// the docroots, stays visible); a USR2 reload re-executes
			// php-fpm in place, inside it.
			if err := procns.WrapWith(cmd, procns.Options{Keep: []string{filepath.Dir(m.Dir)}}); err != nil {
				cmd.Err = err
			}
			return cmd
		},
		PIDFile:     filepath.Join(m.Dir, "supervised.pid"),
		Match:       "php-fpm",
		StopSignal:  syscall.SIGQUIT, // graceful
		StopTimeout: 25 * time.Second,
		// A killed master's workers finish the requests they are
		// answering (SIGQUIT) while the new master starts on new
		// sockets, rather than cutting them off.
		OrphanGrace: 10 * time.Second,
		Logger:      m.Logger,
	}
	var once sync.Once
	return m.proc.Run(ctx, func(ctx context.Context, pid int) error {
		if err := waitFile(ctx, m.Socket("_aipress"), 30*time.Second); err != nil {
			return err
		}
		once.Do(func() { close(m.ready) })
		return nil
	})
}

// args is the master's command line: the hardening (phpini.Args) and
// expose_php off (PHP_INI_SYSTEM, as phpini's System settings: no pool
// repeats them), and the OPcache file cache.
func (m *Master) args() []string {
	args := append([]string{"--nodaemonize", "--fpm-config", m.conf()}, phpini.Args()...)
	args = append(args, "-d", "expose_php=off")
	return append(args, m.fileCacheArgs()...)
}

// Ready is closed once the master has started. Call it after Prepare.
func (m *Master) Ready() <-chan struct{} { return m.ready }

// Process gives access to the supervised master (tests kill it).
func (m *Master) Process() *supervise.Process { return m.proc }

// RenderPool returns the configuration of p.
func RenderPool(p Pool, socket string) ([]byte, error) {
	if !poolName.MatchString(p.Name) || strings.HasPrefix(p.Name, "_") {
		return nil, fmt.Errorf("php-fpm: invalid pool name %q", p.Name)
	}
	if p.MaxChildren <= 0 {
		p.MaxChildren = 5
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = 30 * time.Second
	}
	if p.MemoryMB <= 0 {
		p.MemoryMB = 256
	}
	if p.UploadMaxMB <= 0 {
		p.UploadMaxMB = 64
	}
	if p.RequestTimeout <= 0 {
		p.RequestTimeout = site.DefaultRequestTimeoutSeconds * time.Second
	}
	if p.SlowlogTimeout <= 0 {
		p.SlowlogTimeout = DefaultSlowlogTimeout
	}
	tmp := filepath.Join(p.SiteDir, "tmp")
	q, err := iniStrings(socket, p.SlowLog, p.SiteDir, tmp, filepath.Join(p.SiteDir, "logs", "php-error.log"))
	if err != nil {
		return nil, fmt.Errorf("php-fpm: pool %s: %w", p.Name, err)
	}
	qSocket, qSlow, qDir, qTmp, qErrLog := q[0], q[1], q[2], q[3], q[4]
	// Short: php-fpm reads every pool file one byte per read(2) on each
	// start and reload (package phpini), so a comment or a setting the
	// master's command line already fixes costs every site's creation.
	var b bytes.Buffer
	fmt.Fprintf(&b, "[%s]\n", p.Name)
	if p.User != "" {
		fmt.Fprintf(&b, "user = %s\ngroup = %s\n", p.User, p.Group)
	}
	if p.Nice != nil {
		fmt.Fprintf(&b, "process.priority = %d\n", *p.Nice)
	}
	// The socket is the master's (root's) with mode 0600: only root —
	// the edge on this machine, or the shard agent's gateway for edges on
	// others — can connect. FastCGI runs any PHP file of the pool's user
	// with any PHP settings the client sends, so nothing a site user can
	// reach may be a pool.
	fmt.Fprintf(&b, "listen = %s\nlisten.mode = 0600\n", qSocket)
	fmt.Fprintf(&b, "pm = ondemand\npm.max_children = %d\npm.process_idle_timeout = %ds\npm.max_requests = 500\n", p.MaxChildren, int(p.IdleTimeout.Seconds()))
	fmt.Fprintf(&b, "pm.status_path = %s\n", StatusPath)
	terminate := max(p.RequestTimeout.Round(time.Second), time.Second)
	fmt.Fprintf(&b, "request_terminate_timeout = %ds\n", int(terminate.Seconds()))
	if p.SlowLog != "" {
		// php-fpm refuses the whole configuration — every pool of the
		// master — when a pool's request_slowlog_timeout is greater than
		// its request_terminate_timeout: a pool whose requests may run
		// less than SlowlogTimeout counts as slow those that reach its
		// limit.
		slow := min(max(p.SlowlogTimeout.Round(time.Second), time.Second), terminate)
		fmt.Fprintf(&b, "slowlog = %s\nrequest_slowlog_timeout = %ds\nrequest_slowlog_trace_depth = %d\n",
			qSlow, int(slow.Seconds()), SlowlogTraceDepth)
	}
	fmt.Fprintf(&b, "chdir = %s\n", qDir)
	b.WriteString("security.limit_extensions = .php\nclear_env = yes\ncatch_workers_output = no\n")
	for _, st := range phpini.Settings() {
		if st.System {
			continue // the master's command line (phpini.Args) fixes it
		}
		if st.Flag {
			fmt.Fprintf(&b, "php_admin_flag[%s] = %s\n", st.Name, st.Value)
		} else {
			fmt.Fprintf(&b, "php_admin_value[%s] = %s\n", st.Name, st.Value)
		}
	}
	fmt.Fprintf(&b, "php_admin_value[memory_limit] = %dM\n", p.MemoryMB)
	fmt.Fprintf(&b, "php_admin_value[upload_max_filesize] = %dM\n", p.UploadMaxMB)
	fmt.Fprintf(&b, "php_admin_value[post_max_size] = %dM\n", p.UploadMaxMB+1)
	fmt.Fprintf(&b, "php_admin_value[upload_tmp_dir] = %s\nphp_admin_value[sys_temp_dir] = %s\nphp_admin_value[session.save_path] = %s\n", qTmp, qTmp, qTmp)
	fmt.Fprintf(&b, "php_admin_value[error_log] = %s\nphp_admin_flag[log_errors] = on\nphp_admin_flag[display_errors] = off\n", qErrLog)
	return b.Bytes(), nil
}

// iniStrings quotes paths for php-fpm's configuration files, whose values
// PHP's ini parser reads: unquoted, a ';' starts a comment (the path is cut
// short) and a '=' is a syntax error, and php-fpm then refuses the whole
// configuration — every pool of the master. Between double quotes only
// '"', '\\', "${" (an environment variable) and line breaks mean
// something. A '=' cannot be carried at all: on a reload php-fpm hands its
// listening sockets to the new master in FPM_SOCKETS as "path=fd,…" and
// misreads a socket path holding one (the new master then refuses to
// start: "another FPM instance seems to already listen"). A path holding
// any of those is refused with an error that names it.
func iniStrings(paths ...string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		if strings.ContainsAny(p, "\"\\=\r\n\x00") || strings.Contains(p, "${") {
			return nil, fmt.Errorf("path %q holds a character php-fpm cannot take in a path ('=', '\"', '\\', \"${\" or a line break): choose a data directory without one", p)
		}
		out[i] = `"` + p + `"`
	}
	return out, nil
}

// EnsurePool writes p's configuration and reloads the master if it changed,
// then waits for the pool's socket. It is idempotent. It refuses a pool
// whose directory or user does not exist: php-fpm would refuse the whole
// configuration on its reload, and the master, every site's pool with it,
// would stay down until the pool went.
func (m *Master) EnsurePool(ctx context.Context, p Pool) error {
	return m.ensurePool(ctx, p, false)
}

// UpdatePool is EnsurePool for a pool that may be serving already. When
// its socket is there and only its configuration changed (a plan change,
// or every pool after an upgrade that writes them differently), it writes
// the file and leaves the reload to ApplyPending, so that a shard's pass
// over its sites reloads the master once rather than once per site — each
// reload re-executes the master and empties OPcache for every site. The
// pool serves with its former settings until then. A pool that does not
// serve yet is started at once, as EnsurePool does.
func (m *Master) UpdatePool(ctx context.Context, p Pool) error {
	return m.ensurePool(ctx, p, true)
}

// QuitWorkers asks every worker of the running master to finish the
// request it answers, if any, and exit (SIGQUIT, what a reload does to
// them first), and returns how many it asked. php-fpm re-executes itself
// on a reload only once all its workers have exited, and an idle
// WordPress worker takes tens of milliseconds to (PHP's shutdown, its
// address space torn down): one kept alive by the previous site's first
// request added 40–140 ms to the next site's pool start. A caller that
// knows a reload is coming (a new pool) calls QuitWorkers while it makes
// what the pool needs (its user), so that the reload finds them gone.
// php-fpm starts a fresh worker in place of one that exits other than by
// its idle timeout; a fresh worker, which has run no PHP, exits at the
// reload at once (in `make bench-provision` the reload before the next
// site's first request went from 190–240 to 145–215 ms). Workers serve
// as usual until the reload, which would have replaced them all anyway;
// called without a reload following, it only costs each pool that had a
// worker one cold one. A worker is signalled through a pidfd opened
// before its parent is checked, so a recycled process ID is never
// signalled.
func (m *Master) QuitWorkers() int {
	fds := m.quitWorkers(func(int) bool { return true })
	for _, fd := range fds {
		unix.Close(fd)
	}
	return len(fds)
}

// quitWorkers sends SIGQUIT to the running master's workers for which
// match is true and returns their pidfds (the caller closes them). Each
// is signalled through a pidfd opened before its parent is checked, so a
// recycled process ID is never signalled.
func (m *Master) quitWorkers(match func(pid int) bool) []int {
	if m.proc == nil {
		return nil
	}
	pid := m.proc.PID()
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var fds []int
	for _, f := range strings.Fields(string(b)) {
		c, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		fd, err := unix.PidfdOpen(c, 0)
		if err != nil {
			continue // gone already
		}
		if parentPID(c) == pid && match(c) && unix.PidfdSendSignal(fd, unix.SIGQUIT, nil, 0) == nil {
			fds = append(fds, fd)
			continue
		}
		unix.Close(fd)
	}
	return fds
}

// parentPID is process pid's parent (/proc/PID/stat), or -1.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// ApplyPending reloads the master if a pool file changed since its last
// reload (UpdatePool) or the last reload failed; it does nothing otherwise.
func (m *Master) ApplyPending(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.owed && !m.pending {
		return nil
	}
	return m.reloadTracked(ctx)
}

// Owed reports whether ApplyPending would reload.
func (m *Master) Owed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owed || m.pending
}

// Reloads is how many times the running master was reloaded successfully.
func (m *Master) Reloads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloads
}

func (m *Master) ensurePool(ctx context.Context, p Pool, later bool) error {
	if p.SlowLog == "" {
		p.SlowLog = m.SlowLog(p.Name)
	}
	if p.Nice == nil {
		p.Nice = m.nice
	}
	if err := poolPrerequisites(p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := RenderPool(p, m.listenPath(p.Name))
	if err != nil {
		return err
	}
	path := m.PoolFile(p.Name)
	old, err := os.ReadFile(path)
	same := err == nil && bytes.Equal(old, conf)
	if same && !m.pending && m.Listening(p) {
		return nil
	}
	if r, ok := m.removed[p.Name]; ok {
		// Removed, and the master still has it loaded as it was then.
		if uid, gid := poolIDs(conf); r.conf != nil && bytes.Equal(r.conf, conf) && uid == r.uid && gid == r.gid && !m.pending && m.Listening(p) {
			// Made again as it was (a resume after a suspension), with
			// the same user and group IDs: it serves as it is.
			if err := writeAtomic(path, conf, 0o644); err != nil {
				return fmt.Errorf("php-fpm: %w", err)
			}
			delete(m.removed, p.Name)
			return nil
		}
		// Otherwise the loaded pool must not serve it, not even until
		// the end of a pass (its user may have been made again with
		// other IDs): reloaded now.
		later = false
	}
	if later && m.Listening(p) {
		// Serving: the reload that applies the new file is ApplyPending's
		// (or any earlier one's).
		if !same {
			if err := writeAtomic(path, conf, 0o644); err != nil {
				return fmt.Errorf("php-fpm: %w", err)
			}
			m.owed = true
		}
		return nil
	}
	if err := writeAtomic(path, conf, 0o644); err != nil {
		return fmt.Errorf("php-fpm: %w", err)
	}
	if err := m.reloadTracked(ctx); err != nil {
		return err
	}
	return waitFile(ctx, m.Socket(p.Name), 30*time.Second)
}

// poolPrerequisites checks what php-fpm checks of a pool at start: its
// working directory and its user.
func poolPrerequisites(p Pool) error {
	fi, err := os.Stat(p.SiteDir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return fmt.Errorf("php-fpm: pool %s: its directory %q: %w", p.Name, p.SiteDir, err)
	}
	if p.User != "" {
		if _, err := user.Lookup(p.User); err != nil {
			return fmt.Errorf("php-fpm: pool %s: its user: %w", p.Name, err)
		}
		if _, err := user.LookupGroup(p.Group); err != nil {
			return fmt.Errorf("php-fpm: pool %s: its group: %w", p.Name, err)
		}
	}
	return nil
}

// Listening reports whether p's socket exists.
func (m *Master) Listening(p Pool) bool {
	_, err := os.Stat(m.Socket(p.Name))
	return err == nil
}

// RemovePool removes pool name (idempotent). It does not reload the
// master: a reload waits for the longest request in flight on every pool,
// and meanwhile no site of the shard gets a worker, so a site's deletion
// or suspension would pause all the others. The pool's file goes at once;
// its workers are asked to finish their requests and exit (SIGQUIT, as a
// reload would) and are killed after ControlTimeout; the running master
// keeps the pool loaded, without workers, until its next reload (a new
// pool, ApplyPending, a restart), which drops it, and its socket and slow
// log go then. Only root can connect to the socket meanwhile, and nothing
// routes visitors to a removed site.
func (m *Master) RemovePool(ctx context.Context, name string) error {
	if !poolName.MatchString(name) || strings.HasPrefix(name, "_") {
		return fmt.Errorf("php-fpm: invalid pool name %q", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, _ := os.ReadFile(m.PoolFile(name))
	err := os.Remove(m.PoolFile(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("php-fpm: %w", err)
	}
	if m.proc == nil || m.proc.PID() <= 0 {
		// No master runs: the next start reads pool.d without it.
		delete(m.removed, name)
		m.removeSockets(name, conf)
		m.removeSlowLogs(name)
		return nil
	}
	uid, gid := poolIDs(conf)
	if err == nil || m.pending {
		if m.removed == nil {
			m.removed = map[string]removedPool{}
		}
		r := removedPool{conf: conf, uid: uid, gid: gid}
		if m.pending || m.owed || uid == "" && poolSetting(conf, "user") != "" {
			r = removedPool{} // what the master loaded is not known
		}
		m.removed[name] = r
	}
	if _, loaded := m.removed[name]; !loaded {
		// Dropped by a reload already.
		m.removeSockets(name, conf)
		m.removeSlowLogs(name)
		return nil
	}
	if uid != "" {
		m.stopWorkersOf(uid)
	}
	return nil
}

// poolIDs looks up the user and group IDs of a pool configuration's user
// and group ("" for those it does not set or that do not exist).
func poolIDs(conf []byte) (uid, gid string) {
	if v := poolSetting(conf, "user"); numeric(v) {
		uid = v // a spare's (spare.go)
	} else if u, err := user.Lookup(v); err == nil {
		uid = u.Uid
	}
	if v := poolSetting(conf, "group"); numeric(v) {
		gid = v
	} else if g, err := user.LookupGroup(v); err == nil {
		gid = g.Gid
	}
	return uid, gid
}

// removeSockets removes pool name's socket path and, when it links to
// the socket of a spare the pool was made from or conf (the pool's last
// configuration) listens elsewhere, that socket too.
func (m *Master) removeSockets(name string, conf []byte) {
	if l := m.listenPath(name); l != m.Socket(name) {
		_ = os.Remove(l)
	}
	_ = os.Remove(m.Socket(name))
	if l := strings.Trim(poolSetting(conf, "listen"), `"`); l != "" && l != m.Socket("_aipress") &&
		filepath.Dir(l) == m.runDir() && socketLink.MatchString(filepath.Base(l)) {
		_ = os.Remove(l)
	}
}

// dropRemoved removes what the pools RemovePool removed leave behind once a
// reload dropped them: their sockets and slow logs, unless the pool was
// made again meanwhile. m.mu is held.
func (m *Master) dropRemoved() {
	for name := range m.removed {
		if _, err := os.Stat(m.PoolFile(name)); err == nil {
			continue
		}
		m.removeSockets(name, m.removed[name].conf)
		m.removeSlowLogs(name)
	}
	clear(m.removed)
}

// poolSetting is a global setting of a pool's configuration (user,
// group), "" if it is not set.
func poolSetting(conf []byte, key string) string {
	for _, line := range strings.Split(string(conf), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// stopWorkersOf asks the running master's workers that run as user ID uid
// to finish their requests and exit (SIGQUIT) and kills those still there
// after ControlTimeout, as a reload would. Each is signalled through a
// pidfd opened before its parent and user are checked, so a recycled
// process ID is never signalled; returns how many it asked.
func (m *Master) stopWorkersOf(uid string) int {
	fds := m.quitWorkers(func(pid int) bool { return processUID(pid) == uid })
	if len(fds) > 0 {
		time.AfterFunc(ControlTimeout, func() {
			for _, fd := range fds {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) // ESRCH once it exited
				unix.Close(fd)
			}
		})
	}
	return len(fds)
}

// processUID is process pid's real user ID (/proc/PID/status), or "".
func processUID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// removeSlowLogs removes pool name's slow log and its rotated files.
func (m *Master) removeSlowLogs(name string) {
	old, _ := filepath.Glob(m.SlowLog(name) + "*")
	for _, f := range old {
		_ = os.Remove(f)
	}
}

// Pools lists the pool names configured in pool.d.
func (m *Master) Pools() ([]string, error) {
	ents, err := os.ReadDir(m.poolDir())
	if err != nil {
		return nil, fmt.Errorf("php-fpm: %w", err)
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".conf"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Reload reloads the master gracefully (requests in flight finish) and
// waits until it serves again. php-fpm re-executes itself, so every
// worker starts afresh — with empty realpath caches — and OPcache's shared
// memory is new: what a changed symlink in a docroot leads to is compiled
// again. Without Reload, OPcache (opcache.revalidate_path off) keeps
// answering a docroot path with the script its link resolved to when it
// was first compiled, however the link changed since (the real file is
// unchanged, so timestamp validation never notices).
func (m *Master) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadTracked(ctx)
}

// reloadTracked reloads and remembers a failure in m.pending. m.mu is held.
func (m *Master) reloadTracked(ctx context.Context) error {
	if err := m.reload(ctx); err != nil {
		m.pending = true
		return err
	}
	m.pending, m.owed = false, false
	m.dropRemoved()
	m.dropClaimed()
	if m.proc != nil {
		m.reloads++
	}
	return nil
}

// reload asks the master for a graceful reload (SIGUSR2) and waits until it
// serves again. With the master not running, the next start reads the new
// configuration anyway.
func (m *Master) reload(ctx context.Context) error {
	if m.proc == nil {
		return nil
	}
	logPath := filepath.Join(m.Dir, "php-fpm.log")
	var offset int64
	if st, err := os.Stat(logPath); err == nil {
		offset = st.Size()
	}
	// After USR2 php-fpm re-executes itself and logs "ready to handle
	// connections" again once the new configuration serves. A reload is
	// on the path of every site's creation, so the log is read as soon as
	// php-fpm writes to it (inotify, through fsnotify) rather than at the
	// next tick of a poll; the tick stays, slower, for a watch that could
	// not be set or an event missed.
	tick := 20 * time.Millisecond
	w, err := fsnotify.NewWatcher()
	var written <-chan fsnotify.Event
	if err == nil {
		defer w.Close()
		if w.Add(logPath) == nil {
			written, tick = w.Events, 100*time.Millisecond
		}
	}
	t0 := time.Now()
	if err := m.proc.Signal(syscall.SIGUSR2); err != nil {
		if errors.Is(err, supervise.ErrNotRunning) {
			return nil
		}
		return fmt.Errorf("php-fpm: reload: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-written:
		case <-ticker.C:
		}
		since := logSince(logPath, offset)
		if bytes.Contains(since, []byte("ready to handle connections")) {
			if m.Logger != nil {
				m.Logger.Debug("php-fpm reloaded", "took", time.Since(t0))
			}
			return nil
		}
		if bytes.Contains(since, []byte("FPM initialization failed")) {
			// The new configuration was refused and the master exited:
			// say why, at once.
			return fmt.Errorf("php-fpm: reload: the configuration was refused: %s", logErrors(since))
		}
	}
	return errors.New("php-fpm: reload did not finish in 30s")
}

// logSince returns what the log at path holds after offset.
func logSince(path string, offset int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	if st.Size() < offset { // rotated or truncated
		offset = 0
	}
	b := make([]byte, st.Size()-offset)
	if _, err := f.ReadAt(b, offset); err != nil {
		return nil
	}
	return b
}

// logErrors joins the ALERT and ERROR lines of a php-fpm log excerpt,
// without their timestamps.
func logErrors(log []byte) string {
	var out []string
	for _, line := range strings.Split(string(log), "\n") {
		for _, level := range []string{"ALERT: ", "ERROR: "} {
			if _, msg, ok := strings.Cut(line, level); ok {
				out = append(out, msg)
			}
		}
	}
	return strings.Join(out, "; ")
}

func waitFile(ctx context.Context, path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("php-fpm: %s did not appear within %s", path, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
