package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The hostile-tenant attack suite (issue 9). Site A runs a hacked must-use plugin
// (testdata/hostile/aipress-hostile.php) that attacks site B, the shard and the platform from A's php-fpm worker
// and, through WP-Cron, from the PHP CLI; the test adds what only a visitor or a neighbour can do (fetching links
// through the edge, exhausting A's workers and database connections while B must keep answering). Every attack
// must fail, and each control — the same attempt against A's own resources, or the attack's tool run with the
// privilege it lacks — must succeed, so the suite cannot pass by being broken.
//
// The results are logged as a markdown table (and written to $AIPRESS_HOSTILE_REPORT if set).
func TestHostileTenant(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sites run as their own Unix users")
	}
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	so := buildPreload(t)
	// The platforms' data directories outside /tmp: the sites' PHP runs with
	// small tmpfs mounts over the machine's shared temporary directories,
	// except one that holds the shard's own directory (internal/procns).
	// Short: the sockets below it must fit in a socket address (107 bytes).
	base, err := os.MkdirTemp("/srv", "h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	t.Setenv("TMPDIR", base)
	rep := &hostileReport{}
	t.Run("m", func(t *testing.T) { // the modes (a short name: it is in the paths)
		for _, m := range []struct {
			name  string
			setup func(t *testing.T) *hostileEnv
		}{
			{"local", localMode},
			{"remote-edge", remoteEdgeMode},
		} {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				env := m.setup(t)
				env.mode = m.name
				runHostile(t, env, so, rep)
			})
		}
	})
	table := rep.markdown()
	t.Logf("hostile-tenant attack suite:\n%s", table)
	if path := os.Getenv("AIPRESS_HOSTILE_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
}

// hostileEnv is one platform under attack, as its mode set it up.
type hostileEnv struct {
	mode string
	p    *platform // the CLI, the edge (httpAddr) and the API (apiAddr)
	// shardDir is the directory of the shard that hosts A and B (sites/, php/, mariadb/, cores/, lib/).
	shardDir string
	// tcpPorts are pool ports the plugin tries besides those it finds in the shard's pool configuration.
	tcpPorts []int
	// staticURLs are the shard's static-file servers (remote edges), metrics unauthenticated metrics
	// endpoints, pprof the pprof server's base URL.
	staticURLs []string
	metrics    []string
	pprof      string
	// rootFiles are files only root may read (name → path); the first ones are also linked from A's uploads.
	rootFiles map[string]string
	// dataDir holds the admin token (linked as a directory from A's uploads).
	dataDir string
	// pids returns the platform's root processes (name → pid).
	pids func() map[string]int
}

// localMode is `aipress up`: control plane, one local shard and the edge in one process, with HTTPS (so that the
// internal CA's key exists) and pprof on loopback.
func localMode(t *testing.T) *hostileEnv {
	p := newPlatform(t)
	debug := freeAddr(t)
	p.extraArgs = []string{"--https", freeAddr(t), "--acme-ca", "off", "--debug-addr", debug}
	p.start()
	shard := filepath.Join(p.dataDir, "shards", "local")
	return &hostileEnv{
		p: p, shardDir: shard, pprof: "http://" + debug, dataDir: p.dataDir,
		rootFiles: existing(t, map[string]string{
			"admin_token": filepath.Join(p.dataDir, "admin-token"), "purge_secret": filepath.Join(p.dataDir, "purge-secret"),
			"ca_key": filepath.Join(p.dataDir, "tls", "ca.key"), "mariadb_root_password": filepath.Join(shard, "mariadb", "root-password"),
			"client_json": filepath.Join(p.dataDir, "client.json"), "backup_kek": filepath.Join(p.dataDir, "backup-kek"),
			"store": filepath.Join(p.dataDir, "aipress.db"),
		}, "admin_token", "purge_secret", "ca_key", "mariadb_root_password"),
		pids: func() map[string]int {
			return map[string]int{"aipress up": p.cmd.Process.Pid, "php-fpm master": intFile(t, filepath.Join(shard, "php", "supervised.pid")),
				"mariadbd": intFile(t, filepath.Join(shard, "mariadb", "supervised.pid"))}
		},
	}
}

// remoteEdgeMode runs the control plane, an edge and one shard agent as separate processes, the agent serving an
// edge that reads none of its disk: the edge reaches the shard only through the agent's gateway (mutual TLS with
// certificates the control plane issues; --gateway-addr). The plugin tries the gateway as a FastCGI port and as
// an HTTP(S) server, without a client certificate.
func remoteEdgeMode(t *testing.T) *hostileEnv {
	f := newFederationServer(t)
	metrics := freeAddr(t)
	f.edgeArgs = []string{"--metrics", metrics, "--https", freeAddr(t), "--acme-ca", "off", "--rate-ip", "0", "--rate-site", "0"}
	f.edgeRemote = true
	f.startEdge(nil)
	gateway := freeAddr(t)
	health := freeAddr(t) // the shard's health endpoint, with its metrics behind a token
	base := filepath.Dir(f.dataDir)
	agentDir := filepath.Join(base, "agents", "h1")
	_, httpPort, _ := strings.Cut(f.httpAddr, ":")
	f.token("shard", "h1")
	f.shards["h1"] = f.run("shard h1", append(f.purgeArgs(), "shard", "--name", "h1", "--capacity", "2",
		"--server", "http://"+f.apiAddr, "--token-file", filepath.Join(base, "shard-h1.token"),
		"--data-dir", agentDir, "--public-port", httpPort, "--heartbeat-interval", "1s",
		"--gateway-addr", gateway, "--health-addr", health)...)
	f.waitShard("h1", "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })
	checkShardMetrics(t, "http://"+health+"/metrics", filepath.Join(agentDir, "metrics-token"))
	_, gwPort, _ := strings.Cut(gateway, ":")
	port, _ := strconv.Atoi(gwPort)
	edgeDir := filepath.Join(base, "edge")
	return &hostileEnv{
		p: f.platform, shardDir: agentDir, tcpPorts: []int{port}, staticURLs: []string{"https://" + gateway, "http://" + gateway},
		metrics: []string{"http://" + metrics + "/metrics", "http://" + health + "/metrics"}, dataDir: f.dataDir,
		rootFiles: existing(t, map[string]string{
			"admin_token": filepath.Join(f.dataDir, "admin-token"), "purge_secret": filepath.Join(edgeDir, "purge-secret"),
			"ca_key": filepath.Join(edgeDir, "tls", "ca.key"), "mariadb_root_password": filepath.Join(agentDir, "mariadb", "root-password"),
			"client_json": filepath.Join(f.dataDir, "client.json"), "store": filepath.Join(f.dataDir, "aipress.db"),
			"shard_token": filepath.Join(base, "shard-h1.token"), "edge_token": filepath.Join(base, "edge-e1.token"),
			"server_ca_key": filepath.Join(f.dataDir, "tls", "ca.key"), "backup_kek": filepath.Join(f.dataDir, "backup-kek"),
			"gateway_key": filepath.Join(agentDir, "gateway-tls", "key.pem"), "edge_mesh_key": filepath.Join(edgeDir, "mesh-tls", "key.pem"),
		}, "admin_token", "purge_secret", "ca_key", "mariadb_root_password", "gateway_key"),
		pids: func() map[string]int {
			return map[string]int{"aipress server": f.server.cmd.Process.Pid, "aipress edge": f.edge.cmd.Process.Pid,
				"aipress shard": f.shards["h1"].cmd.Process.Pid, "php-fpm master": intFile(t, filepath.Join(agentDir, "php", "supervised.pid")),
				"mariadbd": intFile(t, filepath.Join(agentDir, "mariadb", "supervised.pid"))}
		},
	}
}

// existing keeps the files of m that exist; the required ones must.
func existing(t *testing.T, m map[string]string, required ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // the edge writes its CA on its first TLS need
	for {
		missing := ""
		for _, name := range required {
			if _, err := os.Stat(m[name]); err != nil {
				missing = m[name]
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attack harness is broken: %s does not exist", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := map[string]string{}
	for name, path := range m {
		if _, err := os.Stat(path); err == nil {
			out[name] = path
		}
	}
	return out
}

// intFile reads a file holding one number (a pid file, MariaDB's port file).
func intFile(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// The targets the plugin gets (its JSON body; keys as the PHP reads them).
type hostileSite struct {
	Host          string `json:"host"`
	SiteDir       string `json:"site_dir"`
	Docroot       string `json:"docroot"`
	WPContent     string `json:"wp_content"`
	Uploads       string `json:"uploads"`
	Tmp           string `json:"tmp"`
	Logs          string `json:"logs"`
	WPConfig      string `json:"wp_config"`
	Secrets       string `json:"secrets"`
	TmpMarker     string `json:"tmp_marker"`
	TmpMarkerSHA  string `json:"tmp_marker_sha256"`
	Session       string `json:"session"`
	Log           string `json:"log"`
	Upload        string `json:"upload"`
	UploadPath    string `json:"upload_path"`
	UploadSHA     string `json:"upload_sha256"`
	PHPSecret     string `json:"php_secret"`
	PHPSecretSHA  string `json:"php_secret_sha256"`
	DBName        string `json:"db_name"`
	DBUser        string `json:"db_user"`
	UID           int    `json:"uid"`
	Pids          []int  `json:"pids"`
	uploadContent []byte
	// LinkedUpload is an upload of its own the plugin links to.
	LinkedUpload    string
	title, phpRoute string
}

type hostileShard struct {
	PHPRun         string            `json:"php_run"`
	PoolConfDir    string            `json:"pool_conf_dir"`
	MariaDBSocket  string            `json:"mariadb_socket"`
	MariaDBPort    int               `json:"mariadb_port"`
	MariaDBDatadir string            `json:"mariadb_datadir"`
	TCPPorts       []int             `json:"tcp_ports"`
	StaticURLs     []string          `json:"static_urls"`
	SharedCode     map[string]string `json:"shared_code"`
}

type hostilePlatform struct {
	API       string            `json:"api"`
	Edge      string            `json:"edge"`
	PurgeURL  string            `json:"purge_url"`
	Pprof     string            `json:"pprof"`
	Metrics   []string          `json:"metrics"`
	Pids      map[string]int    `json:"pids"`
	RootFiles map[string]string `json:"root_files"`
}

type hostileLink struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Dir    bool   `json:"dir"`
	target string // B, shard, platform or info
}

type hostileTargets struct {
	Self      hostileSite     `json:"self"`
	Victim    hostileSite     `json:"victim"`
	Shard     hostileShard    `json:"shard"`
	Platform  hostilePlatform `json:"platform"`
	LDPreload string          `json:"ld_preload"`
	Links     []hostileLink   `json:"links"`
}

// hostileResult is one attempt as the plugin (or the test) reports it.
type hostileResult struct {
	ID        string `json:"id"`
	Target    string `json:"target"` // B, shard, platform: an attack; self: a control; info: reported only
	Succeeded bool   `json:"succeeded"`
	Skipped   bool   `json:"skipped"`
	Detail    string `json:"detail"`
}

func (r hostileResult) attack() bool {
	return r.Target == "B" || r.Target == "shard" || r.Target == "platform"
}

// Attempts the plugin must report (under php-fpm and under the CLI), so that a plugin that stops half-way fails.
var (
	hostileFPMExpected = []string{
		"opcache_include_compiled/B", "opcache_include_own/self", "opcache_status_lists_others/shard",
		"opcache_invalidate_other/B", "opcache_reset/shard",
		"read_wp_config/B", "read_wp_config/self", "read_tmp_marker/B", "read_tmp_marker/self", "read_session/B",
		"read_session/self", "read_log/B", "read_log/self", "read_upload/B", "read_upload/self", "read_secrets_json/B",
		"list_site_dir/B", "list_site_dir/self", "list_uploads/B", "list_uploads/self", "list_tmp/B", "list_tmp/self",
		"list_logs/B", "list_logs/self", "write_uploads/B", "write_uploads/self", "write_tmp/B", "write_tmp/self",
		"write_wp_content/B", "write_wp_config/B", "write_shared_core_dir/shard", "write_shared_core_file/shard",
		"write_shared_cache_plugin/shard", "write_shared_cron_script/shard", "write_shared_install_script/shard", "read_root_admin_token/platform",
		"read_root_ca_key/platform", "read_root_purge_secret/platform", "read_root_mariadb_root_password/platform",
		"read_mariadb_datadir/shard", "fastcgi_socket/B", "fastcgi_tcp/B", "static_server/shard", "gateway_fastcgi_relay/shard",
		"db_root_socket/shard", "db_root_tcp/shard", "db_other_user/B", "db_connect/self", "db_select/self",
		"db_show_databases/B", "db_show_databases/self", "db_use_other/B", "db_select_other/B", "db_mysql_user/shard",
		"db_processlist/B", "db_load_file/shard", "db_into_outfile/shard", "purge_with_own_key/B",
		"purge_with_own_key/self", "api_no_token/platform", "api_purge_key_as_token/platform", "api_metrics/platform",
		"edge_reachable/self", "cloud_metadata/platform", "proc_environ/B", "proc_environ/platform", "proc_environ/info",
		"proc_cmdline/B", "proc_cmdline/platform", "proc_cmdline/self", "proc_maps/B", "proc_maps/platform",
		"proc_maps/self", "discover_pool_configs/shard", "signal_worker/B", "exec_family/shard", "ffi/shard", "ld_preload_mail/shard", "fork/shard", "fill_shared_tmp/shard",
	}
	hostileCLIExpected = []string{
		"cli_exec_family/shard", "cli_ffi/shard", "cli_ld_preload_mail/shard", "cli_fork/shard", "cli_read_wp_config/B",
		"cli_read_wp_config/self", "cli_signal_other/shard", "cli_write_uploads/self", "cli_ran/self",
	}
)

// hostileAttacks describes each attempt for the report.
var hostileAttacks = map[string]string{
	"opcache_include_compiled":    "include a PHP file of the other site that is in OPcache but unreadable",
	"opcache_include_own":         "include a PHP file (OPcache)",
	"opcache_status_lists_others": "opcache_get_status lists other sites' scripts",
	"opcache_invalidate_other":    "opcache_invalidate the other site's script",
	"opcache_reset":               "opcache_reset (every site's cache)",
	"read_wp_config":              "read wp-config.php (DB password, salts)",
	"read_tmp_marker":             "read a private file in tmp/",
	"read_session":                "read a PHP session file in tmp/",
	"read_log":                    "read a log in logs/",
	"read_upload":                 "read an upload from disk",
	"read_secrets_json":           "read secrets.json",
	"list_site_dir":               "list the site directory",
	"list_uploads":                "list uploads/",
	"list_tmp":                    "list tmp/",
	"list_logs":                   "list logs/",
	"write_uploads":               "create a file in uploads/",
	"write_tmp":                   "create a file in tmp/",
	"write_wp_content":            "create a file in wp-content/",
	"write_wp_config":             "open wp-config.php for writing",
	"write_shared_core_dir":       "create a file in the shared WordPress core",
	"write_shared_core_file":      "open a shared core file for writing",
	"write_shared_cache_plugin":   "open the shared aipress-cache mu-plugin for writing",
	"write_shared_cron_script":    "open the shared cron.php for writing",
	"write_shared_install_script": "open the shared install.php for writing",
	"read_mariadb_datadir":        "read the other site's table files in MariaDB's datadir",
	"fill_shared_tmp":             "find a world-writable directory of the machine (/tmp, /var/tmp, /dev/shm …) with room to fill its disk or memory",
	"discover_pool_configs":       "read the shard's pool configurations (other sites' paths, users, ports)",
	"fastcgi_socket":              "FastCGI to every php-fpm socket: run code as B (PHP_ADMIN_VALUE auto_prepend_file data://)",
	"fastcgi_tcp":                 "FastCGI to every pool TCP port: run code as B (PHP_ADMIN_VALUE auto_prepend_file data://)",
	"static_server":               "fetch B's files from the shard's static server (remote mode: its gateway, HTTPS and HTTP) without credentials",
	"gateway_fastcgi_relay":       "reach B's pool through the shard's gateway over TLS without an edge certificate",
	"db_root_socket":              "MariaDB root over the socket (no or guessed password)",
	"db_root_tcp":                 "MariaDB root over loopback TCP (no or guessed password)",
	"db_other_user":               "MariaDB as B's database user (no or guessed password)",
	"db_connect":                  "connect to its own database",
	"db_select":                   "SELECT from its own wp_options",
	"db_show_databases":           "SHOW DATABASES lists the database",
	"db_use_other":                "USE B's database with A's credentials",
	"db_select_other":             "SELECT from B's tables with A's credentials",
	"db_mysql_user":               "read mysql.user",
	"db_processlist":              "see other users' sessions in PROCESSLIST",
	"db_load_file":                "LOAD_FILE('/etc/passwd')",
	"db_into_outfile":             "SELECT … INTO OUTFILE",
	"purge_with_own_key":          "purge the edge cache with A's purge key",
	"api_no_token":                "control-plane API without a token",
	"api_purge_key_as_token":      "control-plane API with A's purge key as token",
	"api_metrics":                 "API /metrics without a token or with the purge key",
	"edge_metrics":                "the edge's metrics port and the shard's (remote edge: its health address)",
	"pprof":                       "pprof (--debug-addr)",
	"edge_reachable":              "its own front page through the edge (network control)",
	"cloud_metadata":              "cloud metadata address 169.254.169.254",
	"proc_environ":                "read /proc/<pid>/environ",
	"proc_cmdline":                "read /proc/<pid>/cmdline",
	"proc_maps":                   "read /proc/<pid>/maps",
	"signal_worker":               "signal B's pool worker (posix_kill 0)",
	"exec_family":                 "exec/shell_exec/system/passthru/proc_open/popen/pcntl_exec under php-fpm",
	"ffi":                         "FFI::cdef libc call under php-fpm",
	"ld_preload_mail":             "putenv(LD_PRELOAD)+mail() runs a native library under php-fpm",
	"fork":                        "pcntl_fork under php-fpm",
	"cli_exec_family":             "exec family under the PHP CLI (WP-Cron)",
	"cli_ffi":                     "FFI::cdef libc call under the PHP CLI (WP-Cron)",
	"cli_ld_preload_mail":         "putenv(LD_PRELOAD)+mail() under the PHP CLI (WP-Cron)",
	"cli_fork":                    "pcntl_fork under the PHP CLI (WP-Cron): processes the platform did not start",
	"cli_read_wp_config":          "read wp-config.php from the PHP CLI (WP-Cron)",
	"cli_signal_other":            "signal another user's process from the PHP CLI (posix_kill 0)",
	"cli_write_uploads":           "create a file in its uploads from the PHP CLI",
	"cli_ran":                     "the plugin ran under the PHP CLI (WP-Cron)",
	"edge_serves_own_upload":      "the edge serves its own upload (fetch control)",
	"edge_path_traversal":         "dot segments (raw, %2e, %2f, double-encoded, ..;) in A's URLs to B's private files",
	"harness_fastcgi_as_root":     "the plugin's FastCGI client run as root reaches B's pool (client control)",
	"harness_ld_preload":          "the preload library runs when preloaded by root (library control)",
	"exhaust_workers":             "slow POSTs exhaust A's workers: B must still answer 200",
	"exhaust_db_connections":      "A holds as many DB connections as it can: B must still answer 200",
}

func hostileDescribe(id string) string {
	if d, ok := hostileAttacks[id]; ok {
		return d
	}
	if name, ok := strings.CutPrefix(id, "read_root_"); ok {
		return "read " + name + " (root-only)"
	}
	if name, ok := strings.CutPrefix(id, "edge_symlink_"); ok {
		return "symlink in uploads → " + name + ", fetched through the edge"
	}
	if name, ok := strings.CutPrefix(id, "edge_hardlink_"); ok {
		return "hard link in uploads → " + name + ", fetched through the edge"
	}
	if name, ok := strings.CutPrefix(id, "write_shared_"); ok {
		return "write shared " + name
	}
	return id
}

// hostileReport collects every mode's results.
type hostileReport struct {
	mu   sync.Mutex
	rows []hostileRow
}

type hostileRow struct {
	mode string
	hostileResult
}

func (r *hostileReport) add(mode string, res ...hostileResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range res {
		r.rows = append(r.rows, hostileRow{mode, x})
	}
}

func (r *hostileReport) markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b hostileRow) int { return strings.Compare(a.mode, b.mode) })
	var b strings.Builder
	counts := map[string]map[string]int{}
	b.WriteString("| attack | target | mode | result | detail |\n|---|---|---|---|---|\n")
	for _, x := range rows {
		res := ""
		switch {
		case x.Skipped:
			res = "skipped"
		case x.attack() && x.Succeeded:
			res = "**SUCCEEDED**"
		case x.attack():
			res = "blocked"
		case x.Target == "self" && x.Succeeded:
			res = "control ok"
		case x.Target == "self":
			res = "**CONTROL FAILED**"
		case x.Succeeded:
			res = "yes"
		default:
			res = "no"
		}
		if counts[x.mode] == nil {
			counts[x.mode] = map[string]int{}
		}
		counts[x.mode][res]++
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mdCell(hostileDescribe(x.ID)+" `"+x.ID+"`"), x.Target, x.mode, res, mdCell(trunc(x.Detail, 160)))
	}
	b.WriteString("\n")
	for _, mode := range slices.Sorted(maps.Keys(counts)) {
		c := counts[mode]
		fmt.Fprintf(&b, "%s: %d attacks succeeded, %d blocked, %d controls ok, %d controls failed, %d skipped\n", mode,
			c["**SUCCEEDED**"], c["blocked"], c["control ok"], c["**CONTROL FAILED**"], c["skipped"])
	}
	return b.String()
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "\x00", " ").Replace(s)
}

// trunc shortens s to n runes.
func trunc(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// buildPreload compiles testdata/hostile/preload.c; "" when gcc is missing (the LD_PRELOAD attacks skip).
func buildPreload(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Log("gcc missing: the LD_PRELOAD attacks are skipped")
		return ""
	}
	src, err := filepath.Abs("testdata/hostile/preload.c")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "aipress-hostile.so")
	if b, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// runHostile attacks one platform: sites A (hostile) and B (victim) on one shard.
func runHostile(t *testing.T, env *hostileEnv, so string, rep *hostileReport) {
	p := env.p
	var all []hostileResult
	add := func(res ...hostileResult) { all = append(all, res...); rep.add(env.mode, res...) }

	madeA := p.createSite("a.localhost", "Hostile A")
	madeB := p.createSite("b.localhost", "Victim B")
	createdAt := time.Now()
	// Delete both at the end so that their Unix users go too (before the platform stops: cleanups run last first).
	t.Cleanup(func() {
		for _, d := range []string{"a.localhost", "b.localhost"} {
			if out, err := p.cli("site", "delete", d, "--wait"); err != nil {
				t.Logf("deleting %s: %v\n%s", d, err, out)
			}
		}
	})
	if madeA.Status != "Ready" || madeB.Status != "Ready" || madeA.Shard != madeB.Shard {
		t.Fatalf("sites: %+v %+v, want both Ready on one shard", madeA, madeB)
	}
	// A's owner turns its WAF off (the plugin's targets are full of paths).
	if out, err := p.cli("site", "set", "a.localhost", "--waf-mode", "off"); err != nil {
		t.Fatalf("site set: %v\n%s", err, out)
	}
	visA, visB := p.client("a.localhost"), p.client("b.localhost")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _ := visA.get("/?aipress_waf=..%2F..%2Fetc%2Fpasswd"); code != 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A's WAF is still on 30s after `site set --waf-mode off`")
		}
		time.Sleep(100 * time.Millisecond)
	}
	visB.waitStatus("/", 200, 30*time.Second)

	a := hostileSiteOf(t, p, "a.localhost", "Hostile A")
	b := hostileSiteOf(t, p, "b.localhost", "Victim B")
	plantHostile(t, &a)
	plantHostile(t, &b)

	// The hacked plugin, as root (mu-plugins is root's), and the preload library as if A had uploaded it.
	plugin, err := os.ReadFile("testdata/hostile/aipress-hostile.php")
	if err != nil {
		t.Fatal(err)
	}
	pluginPath := filepath.Join(a.WPContent, "mu-plugins", "aipress-hostile.php")
	if err := os.WriteFile(pluginPath, plugin, 0o644); err != nil {
		t.Fatal(err)
	}
	ldPreload := ""
	if so != "" {
		ldPreload = filepath.Join(a.Uploads, "aipress-hostile.so")
		lib, err := os.ReadFile(so)
		if err != nil {
			t.Fatal(err)
		}
		writeOwned(t, ldPreload, lib, 0o644, a.UID)
	}

	// Keep B's secret script warm in OPcache (and B's workers alive for /proc) while the plugin runs.
	stopHammer := hammer(visB.base, "b.localhost", b.phpRoute)
	defer stopHammer()
	for deadline := time.Now().Add(30 * time.Second); len(b.Pids) == 0; b.Pids = poolWorkers(b.UID) {
		if time.Now().After(deadline) {
			t.Fatal("the attack harness is broken: B has no pool worker while it is being requested")
		}
		time.Sleep(100 * time.Millisecond)
	}

	tg := hostileTargets{
		Self: a, Victim: b, LDPreload: ldPreload,
		Shard: hostileShard{
			PHPRun: filepath.Join(env.shardDir, "php", "run"), PoolConfDir: filepath.Join(env.shardDir, "php", "pool.d"),
			MariaDBSocket:  filepath.Join(env.shardDir, "mariadb", "run", "mysqld.sock"),
			MariaDBPort:    intFile(t, filepath.Join(env.shardDir, "mariadb", "port")),
			MariaDBDatadir: filepath.Join(env.shardDir, "mariadb", "data"),
			TCPPorts:       env.tcpPorts, StaticURLs: env.staticURLs,
			SharedCode: map[string]string{
				"cache_plugin":   filepath.Join(env.shardDir, "lib", "aipress-cache.php"),
				"cron_script":    filepath.Join(env.shardDir, "lib", "cron.php"),
				"install_script": filepath.Join(env.shardDir, "lib", "install.php"),
			},
		},
		Platform: hostilePlatform{
			API: "http://" + p.apiAddr, Edge: "http://" + p.httpAddr, PurgeURL: "http://" + p.httpAddr + "/.aipress/purge",
			Pprof: env.pprof, Metrics: env.metrics, Pids: env.pids(), RootFiles: env.rootFiles,
		},
	}
	cores, _ := filepath.Glob(filepath.Join(env.shardDir, "cores", "*", "tree"))
	if len(cores) == 0 {
		t.Fatalf("the attack harness is broken: no core under %s/cores", env.shardDir)
	}
	tg.Shard.SharedCode["core_dir"] = cores[0]
	tg.Shard.SharedCode["core_file"] = filepath.Join(cores[0], "wp-load.php")
	for _, name := range []string{"admin_token", "purge_secret", "ca_key", "mariadb_root_password"} {
		target := "platform"
		if name == "mariadb_root_password" {
			target = "shard"
		}
		tg.Links = append(tg.Links, hostileLink{Name: name, Path: env.rootFiles[name], target: target})
	}
	tg.Links = append(tg.Links,
		hostileLink{Name: "b_wp_config", Path: b.WPConfig, target: "B"},
		hostileLink{Name: "etc_shadow", Path: "/etc/shadow", target: "platform"},
		hostileLink{Name: "data_dir", Path: env.dataDir, Dir: true, target: "platform"},
		hostileLink{Name: "own_upload", Path: a.LinkedUpload, target: "info"},
	)
	body := mustJSON(t, tg)
	// WP-Cron (the PHP CLI) reads the same targets from A's tmp/.
	writeOwned(t, filepath.Join(a.Tmp, "aipress-hostile-targets.json"), body, 0o600, a.UID)

	// The php-fpm run.
	code, _, resp := visA.doRaw("POST", "/?aipress_hostile=run", http.Header{"Content-Type": {"application/json"}}, body)
	var fpm struct {
		Results []hostileResult `json:"results"`
		Links   []madeLink      `json:"links"`
	}
	if err := json.Unmarshal([]byte(resp), &fpm); code != 200 || err != nil {
		t.Fatalf("the attack harness is broken: the plugin answered %d %v\n%.1000s", code, err, resp)
	}
	add(fpm.Results...)
	stopHammer()
	expected := slices.Clone(hostileFPMExpected)
	if env.pprof != "" {
		expected = append(expected, "pprof/platform")
	}
	if len(env.metrics) > 0 {
		expected = append(expected, "edge_metrics/platform")
	}
	checkExpected(t, "php-fpm", fpm.Results, expected)

	// Links in A's uploads, fetched through the edge as any visitor would.
	add(fetchLinks(t, visA, tg.Links, fpm.Links)...)
	code, _, got := visA.do("GET", a.UploadPath, nil)
	add(hostileResult{ID: "edge_serves_own_upload", Target: "self", Succeeded: code == 200 && got == string(a.uploadContent),
		Detail: fmt.Sprintf("GET %s: %d", a.UploadPath, code)})

	add(edgeTraversal(t, env, a, b))

	// The tools' own controls, run with the privilege the attacks lack.
	add(harnessFastCGI(t, pluginPath, body))
	if so != "" {
		add(harnessPreload(t, so))
	}

	// Availability: B must answer while A exhausts its workers, then its database connections.
	add(exhaustWorkers(t, env, b))
	add(exhaustDB(t, env, visA, a, b))

	// The CLI run: WP-Cron starts the clock for a new site on its first pass and runs it a minute later.
	cliReport := filepath.Join(a.Tmp, "aipress-hostile-cli.json")
	var cli struct {
		Results []hostileResult `json:"results"`
	}
	for deadline := createdAt.Add(4 * time.Minute); ; {
		if b, err := os.ReadFile(cliReport); err == nil {
			if err := json.Unmarshal(b, &cli); err != nil {
				t.Fatalf("the attack harness is broken: the CLI report: %v\n%s", err, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attack harness is broken: WP-Cron did not run the plugin under the PHP CLI in 4 minutes")
		}
		time.Sleep(time.Second)
	}
	add(cli.Results...)
	checkExpected(t, "PHP CLI", cli.Results, hostileCLIExpected)

	for _, r := range all {
		switch {
		case r.Skipped:
		case r.attack() && r.Succeeded:
			t.Errorf("ATTACK SUCCEEDED (%s) against %s: %s: %s", r.ID, r.Target, hostileDescribe(r.ID), r.Detail)
		case r.Target == "self" && !r.Succeeded:
			t.Errorf("control failed, the attack harness is broken (%s): %s: %s", r.ID, hostileDescribe(r.ID), r.Detail)
		}
	}
}

// edgeTraversal asks the edge, with A's host, for B's private tmp file by dot segments in several encodings (sent
// raw: Go's client would clean nothing, but a proxy might): succeeded = the file's content came back.
func edgeTraversal(t *testing.T, env *hostileEnv, a, b hostileSite) hostileResult {
	t.Helper()
	rel, err := filepath.Rel(a.Docroot, b.TmpMarker)
	if err != nil || !strings.HasPrefix(rel, "../") {
		t.Fatalf("the attack harness is broken: %s relative to %s: %q %v", b.TmpMarker, a.Docroot, rel, err)
	}
	want, err := os.ReadFile(b.TmpMarker)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, path := range []string{
		"/" + rel,
		"/wp-content/uploads/../../" + rel,
		"/" + strings.ReplaceAll(rel, "..", "%2e%2e"),
		"/" + strings.ReplaceAll(rel, "/", "%2f"),
		"/" + strings.ReplaceAll(strings.ReplaceAll(rel, "..", "%252e%252e"), "/", "%252f"),
		"/wp-content/uploads/..;/..;/" + strings.ReplaceAll(rel, "../", "..;/"),
	} {
		code, body, err := rawGet(env.p.httpAddr, a.Host, path)
		if err != nil {
			codes = append(codes, err.Error())
			continue
		}
		if strings.Contains(body, string(want)) {
			return hostileResult{ID: "edge_path_traversal", Target: "B", Succeeded: true, Detail: "GET " + path + " served B's tmp file"}
		}
		codes = append(codes, strconv.Itoa(code))
	}
	return hostileResult{ID: "edge_path_traversal", Target: "B", Detail: "answers " + strings.Join(codes, ",")}
}

// rawGet sends one GET with the path exactly as given.
func rawGet(addr, host, path string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// madeLink is what the plugin reports of a link it made in A's uploads.
type madeLink struct {
	Name          string `json:"name"`
	Symlink       bool   `json:"symlink"`
	SymlinkError  string `json:"symlink_error"`
	Hardlink      bool   `json:"hardlink"`
	HardlinkError string `json:"hardlink_error"`
}

// fetchLinks asks the edge, as a visitor of A, for each link the plugin made: succeeded = the edge served the
// linked file's content.
func fetchLinks(t *testing.T, visA *client, asked []hostileLink, made []madeLink) []hostileResult {
	t.Helper()
	if len(made) != len(asked) {
		t.Fatalf("the attack harness is broken: the plugin made %d links, asked for %d", len(made), len(asked))
	}
	var out []hostileResult
	for i, l := range made {
		link := asked[i]
		if l.Name != link.Name {
			t.Fatalf("the attack harness is broken: link %d is %q, want %q", i, l.Name, link.Name)
		}
		want := link.Path
		urlPath := "/wp-content/uploads/aipress-hostile-links/" + link.Name + ".txt"
		if link.Dir {
			want = filepath.Join(link.Path, "admin-token")
			urlPath += "/admin-token"
		}
		content, err := os.ReadFile(want)
		if err != nil || len(content) == 0 {
			t.Fatalf("the attack harness is broken: %s: %v", want, err)
		}
		fetch := func(created bool, createErr, path string) (bool, string) {
			if !created {
				return false, "link refused: " + createErr
			}
			code, _, got := visA.do("GET", path, nil)
			return code == 200 && got == string(content), fmt.Sprintf("link made; GET %s: %d", path, code)
		}
		ok, detail := fetch(l.Symlink, l.SymlinkError, urlPath)
		out = append(out, hostileResult{ID: "edge_symlink_" + link.Name, Target: link.target, Succeeded: ok, Detail: detail})
		if !link.Dir && link.target != "info" {
			ok, detail = fetch(l.Hardlink, l.HardlinkError, strings.TrimSuffix(urlPath, ".txt")+"-hard.txt")
			out = append(out, hostileResult{ID: "edge_hardlink_" + link.Name, Target: link.target, Succeeded: ok, Detail: detail})
		}
	}
	return out
}

func checkExpected(t *testing.T, where string, got []hostileResult, want []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID+"/"+r.Target] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("the attack harness is broken: the plugin did not report %s under %s", w, where)
		}
	}
}

// hostileSiteOf describes a site's paths, database and Unix user as the shard made them.
func hostileSiteOf(t *testing.T, p *platform, domain, title string) hostileSite {
	t.Helper()
	docroot := p.docroot(domain)
	dir := filepath.Dir(docroot)
	wc := filepath.Join(docroot, "wp-content")
	st, err := os.Stat(filepath.Join(wc, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(docroot, "wp-config.php"))
	if err != nil {
		t.Fatal(err)
	}
	constant := func(name string) string {
		m := regexp.MustCompile(`define\('` + name + `', '([^']*)'\)`).FindSubmatch(conf)
		if m == nil {
			t.Fatalf("wp-config.php of %s has no %s", domain, name)
		}
		return string(m[1])
	}
	return hostileSite{
		Host: domain, SiteDir: dir, Docroot: docroot, WPContent: wc, Uploads: filepath.Join(wc, "uploads"),
		Tmp: filepath.Join(dir, "tmp"), Logs: filepath.Join(dir, "logs"), WPConfig: filepath.Join(docroot, "wp-config.php"),
		Secrets: filepath.Join(dir, "secrets.json"), DBName: constant("DB_NAME"), DBUser: constant("DB_USER"),
		UID: int(st.Sys().(*syscall.Stat_t).Uid), title: title,
	}
}

// plantHostile writes a site's private markers (as the site's user would have: tmp, sessions, logs, uploads) and
// a PHP file that returns a marker (root-owned, readable by the site's group only, like wp-config.php).
func plantHostile(t *testing.T, s *hostileSite) {
	t.Helper()
	marker := func() []byte { b := make([]byte, 16); rand.Read(b); return []byte(hex.EncodeToString(b)) }
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	tmp := marker()
	s.TmpMarker, s.TmpMarkerSHA = filepath.Join(s.Tmp, "aipress-marker.txt"), sum(tmp)
	writeOwned(t, s.TmpMarker, tmp, 0o600, s.UID)
	s.Session = filepath.Join(s.Tmp, "sess_"+string(marker()[:26]))
	writeOwned(t, s.Session, []byte("aipress|s:6:\"secret\";"), 0o600, s.UID)
	s.Log = filepath.Join(s.Logs, "aipress-marker.log")
	writeOwned(t, s.Log, marker(), 0o640, s.UID)
	s.uploadContent = marker()
	s.Upload, s.UploadPath, s.UploadSHA = filepath.Join(s.Uploads, "aipress-marker.txt"), "/wp-content/uploads/aipress-marker.txt", sum(s.uploadContent)
	writeOwned(t, s.Upload, s.uploadContent, 0o644, s.UID)
	// Another upload of its own for the plugin to link to: a file with a
	// second name (a hard link) is served by no edge, so the fetch control
	// above must stay unlinked.
	s.LinkedUpload = filepath.Join(s.Uploads, "aipress-marker-linked.txt")
	writeOwned(t, s.LinkedUpload, marker(), 0o644, s.UID)

	php := marker()
	s.PHPSecret, s.PHPSecretSHA, s.phpRoute = filepath.Join(s.Docroot, "aipress-hostile-secret.php"), sum(php), "/aipress-hostile-secret.php"
	if err := os.WriteFile(s.PHPSecret, []byte("<?php return '"+string(php)+"';\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	gid := s.UID
	if st, err := os.Stat(s.WPConfig); err == nil {
		gid = int(st.Sys().(*syscall.Stat_t).Gid)
	}
	if err := os.Chown(s.PHPSecret, 0, gid); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, path string, b []byte, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// poolWorkers lists the php-fpm workers running as uid.
func poolWorkers(uid int) []int {
	var out []int
	for _, pid := range pidsOfUID(uid) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.HasPrefix(string(b), "php-fpm: pool ") {
			out = append(out, pid)
		}
	}
	return out
}

// pidsOfUID lists the processes running as uid.
func pidsOfUID(uid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", uid)) {
			out = append(out, pid)
		}
	}
	return out
}

// hammer requests path on host until stopped (idempotent stop).
func hammer(base, host, path string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 10 * time.Second}
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
			req.Host = host
			if resp, err := c.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// harnessFastCGI runs the plugin's FastCGI attack as root with the PHP CLI: the client must reach B's pool and
// run code as B, or a refused attack would prove nothing.
func harnessFastCGI(t *testing.T, plugin string, targets []byte) hostileResult {
	t.Helper()
	f := filepath.Join(t.TempDir(), "targets.json")
	if err := os.WriteFile(f, targets, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/php8.2", plugin)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "AIPRESS_HOSTILE_SELFTEST=" + f}
	out, err := cmd.Output()
	var rep struct {
		Results []hostileResult `json:"results"`
	}
	if jerr := json.Unmarshal(out, &rep); err != nil || jerr != nil {
		return hostileResult{ID: "harness_fastcgi_as_root", Target: "self", Detail: fmt.Sprintf("%v %v: %.300s", err, jerr, out)}
	}
	var details []string
	for _, r := range rep.Results {
		if r.Succeeded {
			return hostileResult{ID: "harness_fastcgi_as_root", Target: "self", Succeeded: true, Detail: r.ID + ": " + r.Detail}
		}
		details = append(details, r.ID+": "+r.Detail)
	}
	return hostileResult{ID: "harness_fastcgi_as_root", Target: "self", Detail: strings.Join(details, "; ")}
}

// harnessPreload checks that the library writes its marker when preloaded.
func harnessPreload(t *testing.T, so string) hostileResult {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "mark")
	cmd := exec.Command("/bin/true")
	cmd.Env = []string{"LD_PRELOAD=" + so, "AIPRESS_HOSTILE_MARK=" + mark}
	err := cmd.Run()
	b, rerr := os.ReadFile(mark)
	return hostileResult{ID: "harness_ld_preload", Target: "self", Succeeded: err == nil && rerr == nil,
		Detail: fmt.Sprintf("%v %v %s", err, rerr, strings.TrimSpace(string(b)))}
}

// probe GETs an uncached page of host with its own timeout: the status, or 0 and the error.
func probe(base, host string, timeout time.Duration) (int, string, error) {
	c := &http.Client{Timeout: timeout}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/?aipress_probe=%d", base, time.Now().UnixNano()), nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// exhaustWorkers trickles request bodies to A, byte by byte, on more connections than A has workers, then checks
// that B answers. Whether A itself is starved is reported, not asserted: A may exhaust its own pool.
func exhaustWorkers(t *testing.T, env *hostileEnv, b hostileSite) hostileResult {
	t.Helper()
	maxChildren := 5
	if f, ok := mapPath(env.p.siteJSON("a.localhost"), "spec", "php", "max_children").(float64); ok && f > 0 {
		maxChildren = int(f)
	}
	aUID := uidOfDir(t, filepath.Join(filepath.Dir(env.p.docroot("a.localhost")), "tmp"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []net.Conn
	for i := 0; i < maxChildren+3; i++ {
		c, err := net.Dial("tcp", env.p.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /?aipress_slow=%d HTTP/1.1\r\nHost: a.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	defer func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	// ondemand spawns a worker per waiting connection up to max_children: wait (bounded) until A's pool is full
	// or stops growing (an edge that spools bodies gives PHP nothing to wait for).
	busy, last, since := 0, -1, time.Now()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if busy = len(poolWorkers(aUID)); busy >= maxChildren {
			break
		}
		if busy != last {
			last, since = busy, time.Now()
		} else if time.Since(since) > 3*time.Second {
			break
		}
	}
	codeA, _, errA := probe("http://"+env.p.httpAddr, "a.localhost", 3*time.Second)
	start := time.Now()
	codeB, bodyB, errB := probe("http://"+env.p.httpAddr, b.Host, 60*time.Second)
	okB := codeB == 200 && strings.Contains(bodyB, b.title)
	starved := "no"
	if codeA != 200 {
		starved = fmt.Sprintf("yes (%d %v)", codeA, errA)
	}
	return hostileResult{ID: "exhaust_workers", Target: "B", Succeeded: !okB, Detail: fmt.Sprintf(
		"%d slow POSTs, A's workers %d/%d; B: %d %s in %v; A starved: %s", maxChildren+3, busy, maxChildren, codeB,
		errOrHint(errB, bodyB), time.Since(start).Round(time.Millisecond), starved)}
}

// exhaustDB has the plugin open as many connections to A's database as it can and hold them while B is asked for a
// page (which needs a connection of its own).
func exhaustDB(t *testing.T, env *hostileEnv, visA *client, a, b hostileSite) hostileResult {
	t.Helper()
	progress, release := filepath.Join(a.Tmp, "aipress-hostile-progress"), filepath.Join(a.Tmp, "aipress-hostile-release")
	os.Remove(progress)
	os.Remove(release)
	type held struct {
		Opened int    `json:"opened"`
		Error  string `json:"error"`
	}
	done := make(chan held, 1)
	go func() {
		body, _ := json.Marshal(map[string]any{"n": 400, "progress": progress, "release": release, "max_seconds": 60})
		req, _ := http.NewRequest("POST", visA.base+"/?aipress_hostile=hold_db", bytes.NewReader(body))
		req.Host = "a.localhost"
		req.Header.Set("Content-Type", "application/json")
		var h held
		resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
		if err != nil {
			h.Error = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(b, &h); err != nil {
				h.Error = fmt.Sprintf("HTTP %d %.200s", resp.StatusCode, b)
			}
		}
		done <- h
	}()
	opened := ""
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(progress); err == nil {
			opened = string(b)
			break
		}
		select {
		case h := <-done:
			t.Fatalf("the attack harness is broken: hold_db ended before holding anything: %+v", h)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the attack harness is broken: hold_db wrote no progress in 60s")
		}
	}
	// The platform's own connections come and go, and the plugin takes what they free: ask B a few times.
	var answers []string
	failed := 0
	for i := 0; i < 5; i++ {
		code, body, err := probe("http://"+env.p.httpAddr, b.Host, 60*time.Second)
		if code != 200 || !strings.Contains(body, b.title) {
			failed++
		}
		answers = append(answers, strings.TrimSpace(fmt.Sprintf("%d %s", code, errOrHint(err, body))))
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := <-done
	if h.Opened == 0 {
		t.Errorf("the attack harness is broken: the plugin opened no database connection: %+v", h)
	}
	return hostileResult{ID: "exhaust_db_connections", Target: "B", Succeeded: failed > 0, Detail: fmt.Sprintf(
		"A held %s connections at first (stopped by: %s), %d at the end; B answered %s", opened, trunc(h.Error, 60), h.Opened,
		strings.Join(answers, ", "))}
}

func errOrHint(err error, body string) string {
	if err != nil {
		return err.Error()
	}
	if strings.Contains(body, "Error establishing a database connection") {
		return "(Error establishing a database connection)"
	}
	return ""
}

func mapPath(m map[string]any, path ...string) any {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func uidOfDir(t *testing.T, dir string) int {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Sys().(*syscall.Stat_t).Uid)
}

// checkShardMetrics: a shard agent's metrics answer its token (and only
// it; the attack plugin tries without) with the shard's series.
func checkShardMetrics(t *testing.T, url, tokenFile string) {
	t.Helper()
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong-token-of-some-length", 401}, {"Bearer " + strings.TrimSpace(string(token)), 200}} {
		req, _ := http.NewRequest("GET", url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.code == 200 && !strings.Contains(string(body), `aipress_mariadb_up{shard="h1"} 1`)) {
			t.Errorf("GET %s with %q: %d, want %d\n%.300s", url, tc.auth, resp.StatusCode, tc.code, body)
		}
	}
}
