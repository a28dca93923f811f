package phpfpm_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/attacktest"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/phpini"
)

// testUser creates a system user and group of its own for the test (a
// site's Unix user) and removes them afterwards.
func testUser(t *testing.T) (name string, uid, gid int) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name = "aiptest" + hex.EncodeToString(b)
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		// The pools' workers are gone by then (cleanups run in reverse).
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return name, uid, gid
}

// testSite is one site's directories, laid out as the shard lays them out:
// the site directory and docroot are root:<site group> 0750 (no other site
// enters them), its scripts root-owned and group-readable, tmp/ and logs/
// the site user's.
type testSite struct {
	user     string
	uid, gid int
	dir      string
	docroot  string
	tmp      string
}

func newTestSite(t *testing.T, base, name string) *testSite {
	t.Helper()
	u, uid, gid := testUser(t)
	s := &testSite{user: u, uid: uid, gid: gid, dir: filepath.Join(base, name)}
	s.docroot, s.tmp = filepath.Join(s.dir, "htdocs"), filepath.Join(s.dir, "tmp")
	for _, d := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{s.dir, 0o750, 0, gid}, {s.docroot, 0o750, 0, gid},
		{s.tmp, 0o700, uid, gid}, {filepath.Join(s.dir, "logs"), 0o750, uid, gid},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d.path, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// write puts a root-owned file readable by the site's group into its docroot.
func (s *testSite) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(s.docroot, name)
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 0, s.gid); err != nil {
		t.Fatal(err)
	}
	// OPcache does not cache a file changed in the last 2 seconds
	// (opcache.file_update_protection).
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *testSite) pool(name string) phpfpm.Pool {
	return phpfpm.Pool{Name: name, User: s.user, Group: s.user, SiteDir: s.dir,
		MaxChildren: 2, IdleTimeout: time.Minute}
}

// probeScript is what a hostile site runs: it attacks the other site
// (whose script path, worker pid and pool socket it is given) through
// OPcache, /proc, disabled functions, mail()'s environment and the pools'
// sockets, and reports what worked as JSON. Each attack is also tried on
// the site's own resources, so a probe that is broken cannot pass for one
// that is refused.
const probeScript = `<?php
header('Content-Type: application/json');
$q = $_GET;
$r = ['pid' => getmypid()];
$r['include_own'] = @include __DIR__ . '/own.php';
$r['include_other'] = @include $q['bpath'];
$st = @opcache_get_status(true);
$r['status'] = is_array($st);
$r['status_lists_other'] = is_array($st) && isset($st['scripts'][$q['bpath']]);
$r['invalidate'] = @opcache_invalidate($q['bpath'], true);
$r['reset'] = @opcache_reset();
$r['compile'] = function_exists('opcache_compile_file') ? @opcache_compile_file(__DIR__ . '/own.php') : 'undefined';

$pids = array_values(array_filter(scandir('/proc'), 'ctype_digit'));
$r['proc_lists_self'] = in_array((string) getmypid(), $pids, true);
$r['proc_self_cmdline'] = @file_get_contents('/proc/self/cmdline') !== false;
$r['proc_loadavg'] = @file_get_contents('/proc/loadavg') !== false;
foreach (['other' => $q['bpid'], 'master' => $q['mpid']] as $who => $pid) {
	$r["proc_lists_$who"] = in_array($pid, $pids, true);
	$r["proc_{$who}_exists"] = file_exists("/proc/$pid");
	$r["proc_{$who}_cmdline"] = substr(trim(strtr((string) @file_get_contents("/proc/$pid/cmdline"), "\0", ' ')), 0, 120);
	$r["proc_{$who}_environ"] = @file_get_contents("/proc/$pid/environ") !== false;
	$r["proc_{$who}_maps"] = @file_get_contents("/proc/$pid/maps") !== false;
}

foreach (['putenv', 'proc_open', 'exec', 'shell_exec', 'system', 'passthru', 'popen', 'dl', 'mail'] as $f) {
	$r['fn'][$f] = function_exists($f);
}
try { FFI::cdef('int getpid(void);'); $r['ffi'] = 'enabled'; } catch (Throwable $e) { $r['ffi'] = get_class($e) . ': ' . $e->getMessage(); }
$r['preload'] = 'not tried';
if (($q['so'] ?? '') !== '') {
	try {
		putenv('LD_PRELOAD=' . $q['so']);
		$r['preload'] = 'mail returned ' . var_export(@mail('nobody@example.invalid', 'x', 'y', '', '-X/tmp/aiptest.log'), true);
	} catch (Throwable $e) {
		$r['preload'] = get_class($e) . ': ' . $e->getMessage();
	}
}
foreach (['sendmail_path', 'mail.force_extra_parameters', 'ffi.enable', 'allow_url_include', 'opcache.restrict_api',
	'opcache.validate_permission', 'opcache.validate_root', 'realpath_cache_ttl', 'expose_php', 'disable_functions',
	'opcache.validate_timestamps', 'opcache.revalidate_freq', 'opcache.revalidate_path'] as $k) {
	$r['ini'][$k] = ini_get($k);
}
$r['ini_set_sendmail'] = @ini_set('sendmail_path', '/bin/true');

foreach (['other' => $q['bsock'], 'own' => $q['asock']] as $who => $sock) {
	$errno = 0;
	$s = @stream_socket_client('unix://' . $sock, $errno, $errstr, 2);
	$r["sock_$who"] = $s ? 0 : $errno;
}
echo json_encode($r);
`

type probeResult struct {
	PID              int             `json:"pid"`
	IncludeOwn       any             `json:"include_own"`
	IncludeOther     any             `json:"include_other"`
	Status           bool            `json:"status"`
	StatusListsOther bool            `json:"status_lists_other"`
	Invalidate       bool            `json:"invalidate"`
	Reset            bool            `json:"reset"`
	Compile          any             `json:"compile"`
	ProcListsSelf    bool            `json:"proc_lists_self"`
	ProcSelfCmdline  bool            `json:"proc_self_cmdline"`
	ProcLoadavg      bool            `json:"proc_loadavg"`
	ProcListsOther   bool            `json:"proc_lists_other"`
	ProcOtherExists  bool            `json:"proc_other_exists"`
	ProcOtherCmdline string          `json:"proc_other_cmdline"`
	ProcOtherEnviron bool            `json:"proc_other_environ"`
	ProcOtherMaps    bool            `json:"proc_other_maps"`
	ProcListsMaster  bool            `json:"proc_lists_master"`
	ProcMasterExists bool            `json:"proc_master_exists"`
	ProcMasterCmd    string          `json:"proc_master_cmdline"`
	Fn               map[string]bool `json:"fn"`
	FFI              string          `json:"ffi"`
	Preload          string          `json:"preload"`
	INI              map[string]any  `json:"ini"`
	INISetSendmail   any             `json:"ini_set_sendmail"`
	SockOther        int             `json:"sock_other"`
	SockOwn          int             `json:"sock_own"`
}

// isolationRig is two sites, A (the attacker) and B, each with its own
// Unix user and pool, behind an edge.
type isolationRig struct {
	a, b   *testSite
	bPath  string // B's script that B's pool compiles
	srv    *httptest.Server
	so     string // LD_PRELOAD library, "" without gcc
	marker string // what the library creates when it runs
}

func newIsolationRig(t *testing.T) *isolationRig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: two sites' Unix users")
	}
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	base := t.TempDir()
	if _, err := fsperm.EnsureTraversable(base); err != nil {
		t.Fatal(err)
	}
	r := &isolationRig{a: newTestSite(t, base, "a"), b: newTestSite(t, base, "b")}
	r.a.write(t, "probe.php", probeScript)
	r.a.write(t, "own.php", "<?php return 'a-own';")
	r.a.write(t, "slow.php", "<?php sleep(60); echo 'finished';")
	r.bPath = r.b.write(t, "secret.php", "<?php return 'b-secret';")
	r.b.write(t, "warm.php", "<?php $v = include __DIR__ . '/secret.php'; echo getmypid(), ' ', $v;")
	r.marker = filepath.Join(r.a.tmp, "preload-ran")
	if r.so = attacktest.PreloadLibrary(t, r.a.tmp, r.marker); r.so == "" {
		t.Log("gcc missing: the LD_PRELOAD case is skipped")
	}
	return r
}

// serve routes a.test and b.test to the given pool sockets.
func (r *isolationRig) serve(t *testing.T, aSock, bSock string) {
	t.Helper()
	ed := edge.New(edge.Config{})
	ed.SetTable(edge.NewTable([]edge.Route{
		{Host: "a.test", Site: "a", Docroot: r.a.docroot, Endpoint: "unix:" + aSock, State: edge.Serving},
		{Host: "b.test", Site: "b", Docroot: r.b.docroot, Endpoint: "unix:" + bSock, State: edge.Serving},
	}))
	if r.srv != nil {
		r.srv.Close()
	}
	r.srv = httptest.NewServer(ed)
	t.Cleanup(r.srv.Close)
}

func (r *isolationRig) get(t *testing.T, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// attack has B's pool compile B's script (and keep a worker), then runs A's
// probe against B.
func (r *isolationRig) attack(t *testing.T, aSock, bSock string, masterPID int) probeResult {
	t.Helper()
	os.Remove(r.marker)
	code, body := r.get(t, "b.test", "/warm.php")
	pidStr, secret, _ := strings.Cut(body, " ")
	if code != 200 || secret != "b-secret" {
		t.Fatalf("B's own page: %d %q", code, body)
	}
	q := url.Values{"bpath": {r.bPath}, "bpid": {pidStr}, "mpid": {strconv.Itoa(masterPID)},
		"bsock": {bSock}, "asock": {aSock}, "so": {r.so}}
	code, body = r.get(t, "a.test", "/probe.php?"+q.Encode())
	if code != 200 {
		t.Fatalf("probe: %d %s", code, body)
	}
	var res probeResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("probe output: %v\n%s", err, body)
	}
	return res
}

// startBaseline runs php-fpm with Debian's settings and the same two sites
// (what a pool got before this hardening), with OPcache's timestamps off so
// that a cached script stays served without a stat (with Debian's default
// the window is revalidate_freq, 2 s after each compile) and sockets every
// user may connect to.
func (r *isolationRig) startBaseline(t *testing.T) (aSock, bSock string, masterPID int) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(r.a.dir), "baseline")
	os.MkdirAll(dir, 0o755)
	aSock, bSock = filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	conf := fmt.Sprintf("[global]\npid = %[1]s/fpm.pid\nerror_log = %[1]s/fpm.log\ndaemonize = no\n", dir)
	for _, p := range []struct {
		name, sock string
		s          *testSite
	}{{"a", aSock, r.a}, {"b", bSock, r.b}} {
		conf += fmt.Sprintf("[%s]\nuser = %s\ngroup = %s\nlisten = %s\nlisten.mode = 0666\npm = ondemand\npm.max_children = 2\npm.process_idle_timeout = 60s\nchdir = %s\n",
			p.name, p.s.user, p.s.user, p.sock, p.s.docroot)
	}
	confPath := filepath.Join(dir, "fpm.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(phpfpm.Binary, "--nodaemonize", "--fpm-config", confPath, "-d", "opcache.validate_timestamps=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // workers left
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := os.Stat(bSock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "fpm.log"))
			t.Fatalf("baseline php-fpm did not start: %s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return aSock, bSock, cmd.Process.Pid
}

// mountNS is the mount namespace of pid.
func mountNS(t *testing.T, pid int) string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// One hostile site against another on one php-fpm master. Against Debian's
// defaults (the baseline) the attacks work, which shows the probe can see
// them; against the master and pools as AIPress runs them each is refused,
// while the same operations on the site's own resources keep working.
func TestSiteIsolation(t *testing.T) {
	r := newIsolationRig(t)

	t.Run("baseline", func(t *testing.T) {
		aSock, bSock, mpid := r.startBaseline(t)
		r.serve(t, aSock, bSock)
		res := r.attack(t, aSock, bSock, mpid)
		if res.IncludeOwn != "a-own" || res.IncludeOther != "b-secret" {
			t.Errorf("include own %v, other %v; want a-own, b-secret", res.IncludeOwn, res.IncludeOther)
		}
		if !res.Status || !res.StatusListsOther || !res.Invalidate || !res.Reset || res.Compile != true {
			t.Errorf("OPcache API: status %v (lists B %v), invalidate %v, reset %v, compile %v; want all to work",
				res.Status, res.StatusListsOther, res.Invalidate, res.Reset, res.Compile)
		}
		if !res.ProcListsOther || !strings.Contains(res.ProcOtherCmdline, "pool b") || !res.ProcListsMaster {
			t.Errorf("/proc: lists B %v (cmdline %q), lists master %v; want B's worker and its pool name visible",
				res.ProcListsOther, res.ProcOtherCmdline, res.ProcListsMaster)
		}
		// environ and maps of another user's process are refused by the
		// kernel's ptrace rules even without hidepid.
		if res.ProcOtherEnviron || res.ProcOtherMaps {
			t.Errorf("/proc: B's environ %v, maps %v readable", res.ProcOtherEnviron, res.ProcOtherMaps)
		}
		if !res.Fn["putenv"] || !res.Fn["mail"] {
			t.Errorf("functions: %v", res.Fn)
		}
		if res.SockOther != 0 {
			t.Errorf("connect to B's 0666 socket: errno %d", res.SockOther)
		}
		if r.so != "" {
			if _, err := os.Stat(r.marker); err != nil {
				t.Errorf("putenv(LD_PRELOAD) + mail() did not run the library (%s): %v", res.Preload, err)
			}
		}
	})

	t.Run("hardened", func(t *testing.T) {
		m := &phpfpm.Master{Dir: filepath.Join(filepath.Dir(r.a.dir), "php")}
		ctx := runMaster(t, m)
		pa, pb := r.a.pool("site_a"), r.b.pool("site_b")
		pa.RequestTimeout = 2 * time.Second
		for _, p := range []phpfpm.Pool{pa, pb} {
			if err := m.EnsurePool(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		aSock, bSock := m.Socket("site_a"), m.Socket("site_b")
		r.serve(t, aSock, bSock)
		mpid := m.Process().PID()
		if mountNS(t, mpid) == mountNS(t, os.Getpid()) {
			t.Error("php-fpm runs in the platform's mount namespace")
		}

		check := func(t *testing.T, res probeResult) {
			t.Helper()
			if res.IncludeOwn != "a-own" {
				t.Errorf("A cannot include its own script: %v", res.IncludeOwn)
			}
			if res.IncludeOther != false {
				t.Errorf("A included B's compiled script: %v", res.IncludeOther)
			}
			if res.Status || res.StatusListsOther || res.Invalidate || res.Reset || res.Compile != "undefined" {
				t.Errorf("OPcache API: status %v (lists B %v), invalidate %v, reset %v, compile %v; want all refused",
					res.Status, res.StatusListsOther, res.Invalidate, res.Reset, res.Compile)
			}
			if !res.ProcListsSelf || !res.ProcSelfCmdline || !res.ProcLoadavg {
				t.Errorf("/proc: own process listed %v, own cmdline %v, loadavg %v; want all", res.ProcListsSelf, res.ProcSelfCmdline, res.ProcLoadavg)
			}
			if res.ProcListsOther || res.ProcOtherExists || res.ProcOtherCmdline != "" || res.ProcOtherEnviron || res.ProcOtherMaps {
				t.Errorf("/proc: B's worker listed %v, exists %v, cmdline %q, environ %v, maps %v",
					res.ProcListsOther, res.ProcOtherExists, res.ProcOtherCmdline, res.ProcOtherEnviron, res.ProcOtherMaps)
			}
			if res.ProcListsMaster || res.ProcMasterExists || res.ProcMasterCmd != "" {
				t.Errorf("/proc: the master is listed %v, exists %v, cmdline %q", res.ProcListsMaster, res.ProcMasterExists, res.ProcMasterCmd)
			}
			for f, ok := range res.Fn {
				if ok != (f == "mail") {
					t.Errorf("function_exists(%s) = %v", f, ok)
				}
			}
			if !strings.Contains(res.FFI, "restricted") {
				t.Errorf("FFI::cdef: %s", res.FFI)
			}
			// Every hardening setting, whether the pool repeats it or
			// only the master's command line has it (phpini's System
			// settings), and expose_php; an off flag reads back as ""
			// from the command line, "0" from a pool.
			want := map[string]any{"expose_php": "0"}
			for _, st := range phpini.Settings() {
				want[st.Name] = st.Value
				if st.Flag {
					want[st.Name] = map[string]string{"on": "1", "off": "0"}[st.Value]
				}
			}
			for k, v := range want {
				got := res.INI[k]
				if got == "" && v == "0" {
					got = "0"
				}
				if got != v {
					t.Errorf("ini_get(%s) = %v, want %v", k, res.INI[k], v)
				}
			}
			if res.INISetSendmail != false {
				t.Errorf("ini_set(sendmail_path) = %v", res.INISetSendmail)
			}
			if res.SockOther != int(syscall.EACCES) || res.SockOwn != int(syscall.EACCES) {
				t.Errorf("connect to B's socket: errno %d, own: %d; want EACCES", res.SockOther, res.SockOwn)
			}
			if r.so != "" {
				if !strings.Contains(res.Preload, "putenv") {
					t.Errorf("putenv + mail(): %s", res.Preload)
				}
				if _, err := os.Stat(r.marker); err == nil {
					t.Error("the LD_PRELOAD library ran")
				}
			}
		}
		check(t, r.attack(t, aSock, bSock, mpid))

		// Sockets are root's, 0600: only root (the edge) connects.
		for _, sock := range []string{aSock, bSock, m.Socket("_aipress")} {
			st, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 0 || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: owner %d mode %v", sock, uid, st.Mode().Perm())
			}
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Errorf("root cannot connect to %s: %v", sock, err)
			} else {
				c.Close()
			}
		}

		// A request past the pool's time limit is ended (502); the pool
		// serves the next one.
		if code, body := r.get(t, "a.test", "/slow.php"); code != http.StatusBadGateway || strings.Contains(body, "finished") {
			t.Errorf("request past request_terminate_timeout: %d %.100q", code, body)
		}
		if code, _ := r.get(t, "a.test", "/own.php"); code != 200 {
			t.Errorf("pool after a terminated request: %d", code)
		}

		// After a graceful reload (USR2 re-executes the master) everything
		// still holds.
		pc := r.a.pool("site_c")
		if err := m.EnsurePool(ctx, pc); err != nil {
			t.Fatal(err)
		}
		if m.Process().PID() != mpid || mountNS(t, mpid) == mountNS(t, os.Getpid()) {
			t.Error("after a reload php-fpm left its mount namespace")
		}
		check(t, r.attack(t, aSock, bSock, mpid))
	})
}
