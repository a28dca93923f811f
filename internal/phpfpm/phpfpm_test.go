package phpfpm_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aipress/aipress/internal/caps"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/phpfpm"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderPoolGolden(t *testing.T) {
	got, err := phpfpm.RenderPool(phpfpm.Pool{
		Name: "wp_0123456789ab", User: "wp_0123456789ab", Group: "wp_0123456789ab",
		SiteDir:     "/data/sites/0123456789ab",
		MaxChildren: 4, IdleTimeout: 20 * time.Second, MemoryMB: 128, UploadMaxMB: 32, RequestTimeout: 45 * time.Second,
		SlowLog: "/data/php/slow/wp_0123456789ab.log", Nice: new(0),
	}, "/data/php/run/wp_0123456789ab.sock")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "pool.golden.conf")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, _ := os.ReadFile(golden)
	if string(got) != string(want) {
		t.Errorf("pool config differs from %s (go test -update):\n%s", golden, got)
	}
	for _, bad := range []string{"", "_internal", "a-b", "a/b", "A"} {
		if _, err := phpfpm.RenderPool(phpfpm.Pool{Name: bad}, "/x.sock"); err == nil {
			t.Errorf("pool name %q accepted", bad)
		}
	}
	// Paths go between double quotes (';', '#', '$' and spaces are
	// plain characters there; TestPoolsReloadGracefully runs a master in
	// such a directory); what has a meaning inside them is refused, and
	// '=', which php-fpm's reload misreads in a socket's path.
	for _, bad := range []string{"/srv/a=b", `/srv/a"b`, `/srv/a\b`, "/srv/${HOME}", "/srv/a\nb", "/srv/a\rb", "/srv/a\x00b"} {
		for _, p := range []phpfpm.Pool{{Name: "site_x", SiteDir: bad}, {Name: "site_x", SiteDir: "/srv/x", SlowLog: bad + "/x.log"}} {
			if _, err := phpfpm.RenderPool(p, "/x.sock"); err == nil || !strings.Contains(err.Error(), "choose a data directory") {
				t.Errorf("pool %+v: err = %v, want a refusal", p, err)
			}
		}
		if _, err := phpfpm.RenderPool(phpfpm.Pool{Name: "site_x", SiteDir: "/srv/x"}, bad+".sock"); err == nil {
			t.Errorf("socket %q accepted", bad)
		}
		m := &phpfpm.Master{Dir: filepath.Join(t.TempDir(), "php"+bad)}
		if err := m.Prepare(); err == nil || !strings.Contains(err.Error(), "choose a data directory") {
			t.Errorf("master in %q: err = %v, want a refusal", m.Dir, err)
		}
	}
}

// Adding and removing pools reloads the master gracefully: a request in
// flight on another pool completes.
func TestPoolsReloadGracefully(t *testing.T) {
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	// A directory whose name PHP's ini parser would misread unquoted
	// (';' starts a comment): every path of the master's and the pools'
	// configuration lives below it.
	dir := filepath.Join(t.TempDir(), "a;b #c $d e")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(dir, "htdocs")
	os.MkdirAll(docroot, 0o755)
	os.WriteFile(filepath.Join(docroot, "slow.php"), []byte("<?php usleep(1500000); echo 'slow-ok';"), 0o644)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'pool:', $_SERVER['POOL'] ?? getenv('POOL') ?: 'x';"), 0o644)

	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)

	user := ""
	if os.Geteuid() == 0 {
		user = "nobody"
	}
	pool := func(name string) phpfpm.Pool {
		p := phpfpm.Pool{Name: name, SiteDir: dir}
		if user != "" {
			p.User, p.Group = "nobody", "nogroup"
		}
		return p
	}
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o777)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o777)
	if err := m.EnsurePool(ctx, pool("site_a")); err != nil {
		t.Fatal(err)
	}
	ed := edge.New(edge.Config{})
	ed.SetTable(edge.NewTable([]edge.Route{
		{Host: "a.test", Site: "a", Docroot: docroot, Endpoint: "unix:" + m.Socket("site_a"), State: edge.Serving},
		{Host: "b.test", Site: "b", Docroot: docroot, Endpoint: "unix:" + m.Socket("site_b"), State: edge.Serving},
	}))
	srv := httptest.NewServer(ed)
	defer srv.Close()
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("a.test", "/"); code != 200 {
		t.Fatalf("pool a: %d %s", code, body)
	}

	type result struct {
		code int
		body string
	}
	slow := make(chan result)
	go func() { c, b := get("a.test", "/slow.php"); slow <- result{c, b} }()
	time.Sleep(300 * time.Millisecond) // the slow request is in a worker now
	if err := m.EnsurePool(ctx, pool("site_b")); err != nil {
		t.Fatal(err)
	}
	if r := <-slow; r.code != 200 || r.body != "slow-ok" {
		t.Fatalf("request in flight during reload: %d %q", r.code, r.body)
	}
	if code, _ := get("b.test", "/"); code != 200 {
		t.Fatalf("new pool b: %d", code)
	}
	// Writing the same pool again changes nothing and does not reload.
	st, _ := os.Stat(m.PoolFile("site_b"))
	if err := m.EnsurePool(ctx, pool("site_b")); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(m.PoolFile("site_b")); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("unchanged pool was rewritten")
	}

	if err := m.RemovePool(ctx, "site_b"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemovePool(ctx, "site_b"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if pools, _ := m.Pools(); len(pools) != 1 || pools[0] != "site_a" {
		t.Errorf("pools = %v", pools)
	}
	// The running master drops a removed pool at its next reload (here a
	// new pool's), and its socket goes then (TestRemovePoolNoPause).
	if err := m.EnsurePool(ctx, pool("site_c")); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("b.test", "/"); code != http.StatusBadGateway {
		t.Errorf("removed pool b answers %d, want 502", code)
	}
	if _, err := os.Stat(m.Socket("site_b")); !os.IsNotExist(err) {
		t.Errorf("socket of removed pool b after a reload: %v", err)
	}

	// A killed master is restarted with its pools.
	if err := m.Process().Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("a.test", "/"); code == 200 && m.Process().Starts() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("php-fpm did not come back after kill")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSlowRequests: a request longer than the pool's slow log timeout is
// counted on the pool's status page and its PHP stack traced into the
// pool's slow log, in the master's directory; a quick one is not.
func TestSlowRequests(t *testing.T) {
	dir, docroot := siteDir(t)
	os.WriteFile(filepath.Join(docroot, "slow.php"), []byte("<?php function nap() { usleep(2500000); } nap(); echo 'slow-ok';"), 0o644)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'quick';"), 0o644)

	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	p := phpfpm.Pool{Name: "site_s", SiteDir: dir, SlowlogTimeout: time.Second}
	if os.Geteuid() == 0 {
		p.User, p.Group = "nobody", "nogroup"
	}
	if err := m.EnsurePool(ctx, p); err != nil {
		t.Fatal(err)
	}
	fetch := serveSite(t, "s.test", docroot, m.Socket("site_s"))
	get := func(path, want string) {
		t.Helper()
		if code, body := fetch(path); code != 200 || body != want {
			t.Fatalf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
	slowRequests := func() string {
		t.Helper()
		body, err := edge.FastCGIGet(ctx, "unix", m.Socket("site_s"), map[string]string{
			"SCRIPT_NAME": phpfpm.StatusPath, "SCRIPT_FILENAME": phpfpm.StatusPath, "REQUEST_URI": phpfpm.StatusPath, "QUERY_STRING": "",
		}, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "slow requests" {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no slow requests in the status page:\n%s", body)
		return ""
	}

	get("/", "quick")
	if n := slowRequests(); n != "0" {
		t.Fatalf("slow requests after a quick one: %s", n)
	}
	get("/slow.php", "slow-ok")
	if n := slowRequests(); n != "1" {
		t.Errorf("slow requests after one slow request: %s, want 1", n)
	}
	trace, err := os.ReadFile(m.SlowLog("site_s"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usleep()", "nap()", filepath.Join(docroot, "slow.php")} {
		if !strings.Contains(string(trace), want) {
			t.Errorf("slow log lacks %q:\n%s", want, trace)
		}
	}
	if !strings.HasPrefix(m.SlowLog("site_s"), m.Dir+string(filepath.Separator)) {
		t.Errorf("slow log %s outside the master's directory", m.SlowLog("site_s"))
	}

	// Removing the pool removes its slow log, once the master dropped the
	// pool (its next reload: a new pool's here).
	if err := m.RemovePool(ctx, "site_s"); err != nil {
		t.Fatal(err)
	}
	q := p
	q.Name = "site_t"
	if err := m.EnsurePool(ctx, q); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.SlowLog("site_s")); !os.IsNotExist(err) {
		t.Errorf("slow log of a removed pool: %v", err)
	}
}

// TestSlowlogNotAboveTerminate: php-fpm refuses every pool of the master
// when one pool's request_slowlog_timeout exceeds its
// request_terminate_timeout, so a pool with a short request limit gets its
// slow-request threshold lowered to that limit (TestSiteIsolation/hardened
// reloads such a pool through the real php-fpm).
func TestSlowlogNotAboveTerminate(t *testing.T) {
	for _, tc := range []struct {
		request, slow time.Duration
		want          string
	}{
		{2 * time.Second, 0, "request_slowlog_timeout = 2s"},
		{30 * time.Second, 0, "request_slowlog_timeout = 5s"},
		{30 * time.Second, 45 * time.Second, "request_slowlog_timeout = 30s"},
		{300 * time.Millisecond, 0, "request_slowlog_timeout = 1s"},
	} {
		conf, err := phpfpm.RenderPool(phpfpm.Pool{Name: "site_x", SiteDir: "/srv/x", SlowLog: "/srv/php/slow/site_x.log",
			RequestTimeout: tc.request, SlowlogTimeout: tc.slow}, "/srv/php/run/site_x.sock")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), tc.want+"\n") {
			t.Errorf("request %v, slow %v: want %q in\n%s", tc.request, tc.slow, tc.want, conf)
		}
	}
}

// serveSite puts an edge before the pool listening on socket for host and
// docroot, and returns a GET of a path through it: status and body.
// runMaster prepares and runs m until the test ends, and returns once it
// serves; the context is the master's.
func runMaster(t testing.TB, m *phpfpm.Master) context.Context {
	t.Helper()
	if err := m.Prepare(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-m.Ready()
	return ctx
}

func serveSite(t *testing.T, host, docroot, socket string) func(path string) (int, string) {
	t.Helper()
	ed := edge.New(edge.Config{})
	ed.SetTable(edge.NewTable([]edge.Route{{Host: host, Site: host, Docroot: docroot, Endpoint: "unix:" + socket, State: edge.Serving}}))
	srv := httptest.NewServer(ed)
	t.Cleanup(srv.Close)
	return func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// TestReloadWhileDocrootRebuilt: a restore or an import renames a site's
// docroot away and builds it again; a reload in that window (another
// site's pool added) must not take the master down, for every site of
// the shard. A pool whose directory or user is missing is refused before
// its configuration is written.
func TestReloadWhileDocrootRebuilt(t *testing.T) {
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	site := func(name string) (phpfpm.Pool, string) {
		sd := filepath.Join(dir, name)
		docroot := filepath.Join(sd, "htdocs")
		for _, d := range []string{docroot, filepath.Join(sd, "tmp"), filepath.Join(sd, "logs")} {
			if err := os.MkdirAll(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo '"+name+"';"), 0o644)
		p := phpfpm.Pool{Name: name, SiteDir: sd}
		if os.Geteuid() == 0 {
			p.User, p.Group = "nobody", "nogroup"
		}
		return p, docroot
	}
	pa, docA := site("site_a")
	if err := m.EnsurePool(ctx, pa); err != nil {
		t.Fatal(err)
	}
	fetchA := serveSite(t, "a.test", docA, m.Socket("site_a"))
	if code, body := fetchA("/"); code != 200 || body != "site_a" {
		t.Fatalf("site a: %d %q", code, body)
	}
	starts := m.Process().Starts()

	// a's docroot is away (a restore between its two renames) while b's
	// pool is added: the reload must work.
	if err := os.Rename(docA, docA+".old"); err != nil {
		t.Fatal(err)
	}
	pb, docB := site("site_b")
	if err := m.EnsurePool(ctx, pb); err != nil {
		t.Fatalf("adding a pool while another site's docroot is rebuilt: %v", err)
	}
	if err := os.Rename(docA+".old", docA); err != nil {
		t.Fatal(err)
	}
	if code, body := fetchA("/"); code != 200 || body != "site_a" {
		t.Errorf("site a after the reload: %d %q", code, body)
	}
	if code, body := serveSite(t, "b.test", docB, m.Socket("site_b"))("/"); code != 200 || body != "site_b" {
		t.Errorf("site b: %d %q", code, body)
	}

	// Pools php-fpm would refuse, and the master with them, are refused
	// before anything is written.
	gone := phpfpm.Pool{Name: "site_gone", SiteDir: filepath.Join(dir, "site_gone")}
	nouser := pa
	nouser.Name, nouser.User, nouser.Group = "site_nouser", "aipress-no-such-user", "aipress-no-such-user"
	for _, p := range []phpfpm.Pool{gone, nouser} {
		if err := m.EnsurePool(ctx, p); err == nil {
			t.Errorf("pool %s accepted", p.Name)
		}
		if _, err := os.Stat(m.PoolFile(p.Name)); err == nil {
			t.Errorf("pool %s written", p.Name)
		}
	}
	if code, body := fetchA("/"); code != 200 || body != "site_a" {
		t.Errorf("site a after the refused pools: %d %q", code, body)
	}
	if got := m.Process().Starts(); got != starts {
		t.Errorf("the master was started %d times more (it failed)", got-starts)
	}

	// A configuration php-fpm refuses all the same (written behind the
	// Master's back) fails the reload with php-fpm's reason, not after a
	// 30 s wait; once it is gone the master serves again.
	bad := "[site_bad]\nlisten = " + m.Socket("site_bad") + "\npm = ondemand\npm.max_children = 1\nchdir = " + filepath.Join(dir, "nowhere") + "\n"
	if pa.User != "" {
		bad += "user = " + pa.User + "\ngroup = " + pa.Group + "\n"
	}
	if err := os.WriteFile(m.PoolFile("site_bad"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err == nil || !strings.Contains(err.Error(), "chdir") {
		t.Errorf("reload with a refused configuration: %v, want php-fpm's reason (chdir)", err)
	}
	if err := os.Remove(m.PoolFile("site_bad")); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Errorf("reload once the refused pool is gone: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := fetchA("/")
		if code == 200 && body == "site_a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site a once the refused pool is gone: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// UpdatePool leaves a serving pool's changed settings to ApplyPending: a
// pass over many sites reloads the master once. A pool not serving yet
// starts at once, and that reload applies what was owed.
func TestUpdatePoolDefersReload(t *testing.T) {
	dir, docroot := siteDir(t)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo ini_get('memory_limit');"), 0o644)
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	pool := func(name string, mb int) phpfpm.Pool {
		p := phpfpm.Pool{Name: name, SiteDir: dir, MemoryMB: mb}
		if os.Geteuid() == 0 {
			p.User, p.Group = "nobody", "nogroup"
		}
		return p
	}
	names := []string{"site_a", "site_b", "site_c"}
	get := map[string]func(string) (int, string){}
	for _, name := range names {
		if err := m.UpdatePool(ctx, pool(name, 64)); err != nil { // not serving yet: started now
			t.Fatal(err)
		}
		get[name] = serveSite(t, name+".test", docroot, m.Socket(name))
		if code, body := get[name]("/"); code != 200 || body != "64M" {
			t.Fatalf("%s: %d %q, want 64M", name, code, body)
		}
	}
	base := m.Reloads()
	if base != len(names) {
		t.Errorf("%d reloads for %d new pools", base, len(names))
	}

	// Every serving pool changes: files written, no reload yet.
	for _, name := range names {
		if err := m.UpdatePool(ctx, pool(name, 96)); err != nil {
			t.Fatal(err)
		}
		if conf, _ := os.ReadFile(m.PoolFile(name)); !strings.Contains(string(conf), "memory_limit] = 96M") {
			t.Errorf("%s's file not rewritten:\n%s", name, conf)
		}
	}
	if n := m.Reloads(); n != base {
		t.Errorf("UpdatePool of serving pools reloaded %d times", n-base)
	}
	if _, body := get["site_b"]("/"); body != "64M" {
		t.Errorf("site_b before ApplyPending: %q, want the former 64M", body)
	}
	if err := m.ApplyPending(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads(); n != base+1 {
		t.Errorf("ApplyPending: %d reloads, want 1", n-base)
	}
	for _, name := range names {
		if code, body := get[name]("/"); code != 200 || body != "96M" {
			t.Errorf("%s after ApplyPending: %d %q, want 96M", name, code, body)
		}
	}
	if err := m.ApplyPending(ctx); err != nil || m.Reloads() != base+1 {
		t.Errorf("ApplyPending with nothing owed: %v, %d reloads", err, m.Reloads()-base)
	}
	// Unchanged: nothing written, nothing owed.
	if err := m.UpdatePool(ctx, pool("site_a", 96)); err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyPending(ctx); err != nil || m.Reloads() != base+1 {
		t.Errorf("unchanged pool: %v, %d reloads", err, m.Reloads()-base)
	}

	// A change owed, then a new pool: its reload applies both.
	if err := m.UpdatePool(ctx, pool("site_a", 128)); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdatePool(ctx, pool("site_d", 64)); err != nil {
		t.Fatal(err)
	}
	if _, body := get["site_a"]("/"); body != "128M" {
		t.Errorf("site_a after the new pool's reload: %q, want 128M", body)
	}
	if err := m.ApplyPending(ctx); err != nil || m.Reloads() != base+2 {
		t.Errorf("after the new pool: %v, %d reloads, want 2", err, m.Reloads()-base)
	}
}

// siteDir skips the test without php-fpm, else makes a site directory
// every user can traverse, with htdocs/, tmp/ and logs/.
func siteDir(t *testing.T) (dir, docroot string) {
	t.Helper()
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	dir = t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	docroot = filepath.Join(dir, "htdocs")
	for _, d := range []string{docroot, filepath.Join(dir, "tmp"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	return dir, docroot
}

// TestMasterPriority: as root with CAP_SYS_NICE the master runs
// MasterNiceBoost below the platform's nice value, through reloads, and
// the workers at the platform's (they would inherit the master's without
// their pool's process.priority).
func TestMasterPriority(t *testing.T) {
	dir, docroot := siteDir(t)
	if os.Geteuid() != 0 || !caps.Has(unix.CAP_SYS_NICE) {
		t.Skip("the master's priority is set only as root with CAP_SYS_NICE")
	}
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte(`<?php $s = file_get_contents('/proc/self/stat');
echo explode(' ', substr($s, strrpos($s, ')') + 2))[16];`), 0o644)
	own := niceOf(t, os.Getpid())
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	if err := m.EnsurePool(ctx, phpfpm.Pool{Name: "site_a", SiteDir: dir, User: "nobody", Group: "nogroup"}); err != nil {
		t.Fatal(err)
	}
	get := serveSite(t, "a.test", docroot, m.Socket("site_a"))
	want := max(own-phpfpm.MasterNiceBoost, -20)
	for i := range 2 {
		if got := niceOf(t, m.Process().PID()); got != want {
			t.Errorf("pass %d: master's nice %d, want %d (the test's own %d)", i, got, want, own)
		}
		if code, body := get("/"); code != 200 || body != strconv.Itoa(own) {
			t.Errorf("pass %d: a worker's nice: %d %q, want %d", i, code, body, own)
		}
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// niceOf is process pid's nice value (/proc/PID/stat's 19th field).
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQuitWorkers: the master's workers exit when asked, an idle one at
// once, a busy one after the request it answers (which completes), and
// the pool serves on (php-fpm starts a fresh worker in place of one that
// exited other than by its idle timeout).
func TestQuitWorkers(t *testing.T) {
	dir, docroot := siteDir(t)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte(`<?php usleep((int)($_GET['ms'] ?? 0) * 1000); echo getmypid();`), 0o644)
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if n := m.QuitWorkers(); n != 0 {
		t.Errorf("QuitWorkers before the master runs: %d", n)
	}
	ctx := runMaster(t, m)
	p := phpfpm.Pool{Name: "site_a", SiteDir: dir, IdleTimeout: time.Minute}
	if os.Geteuid() == 0 {
		p.User, p.Group = "nobody", "nogroup"
	}
	if err := m.EnsurePool(ctx, p); err != nil {
		t.Fatal(err)
	}
	get := serveSite(t, "a.test", docroot, m.Socket("site_a"))
	pidOf := func(path string) string {
		t.Helper()
		code, body := get(path)
		if code != 200 || body == "" {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
		return body
	}
	waitGone := func(pid, what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat("/proc/" + pid); err != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: worker %s still alive", what, pid)
			}
		}
	}

	// Idle: kept for the pool's idle timeout (a minute) unless asked.
	idle := pidOf("/")
	if n := m.QuitWorkers(); n < 1 {
		t.Errorf("QuitWorkers signalled %d workers", n)
	}
	waitGone(idle, "idle")

	// Busy: the request it answers completes.
	done := make(chan string, 1)
	go func() { done <- pidOf("/?ms=700") }()
	time.Sleep(300 * time.Millisecond) // inside usleep
	if n := m.QuitWorkers(); n < 1 {
		t.Errorf("QuitWorkers signalled %d workers", n)
	}
	busy := <-done
	waitGone(busy, "busy")

	// The pool serves on, and reloads as before.
	if pid := pidOf("/"); pid == busy || pid == idle {
		t.Errorf("served by worker %s, which was asked to quit", pid)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	pidOf("/")
}

// TestRemovePoolNoPause: removing a pool does not reload the master, so a
// request computing on one site does not hold the others' requests (a
// reload starts no worker until every request in flight has ended). The
// removed pool's own request in flight finishes (its worker asked to quit,
// as a reload would) and its worker exits; the master drops the pool at
// its next reload, and its socket goes then.
func TestRemovePoolNoPause(t *testing.T) {
	dir, docroot := siteDir(t)
	if os.Geteuid() != 0 {
		t.Skip("pools of different users need root")
	}
	other, err := user.Lookup("www-data")
	if err != nil {
		t.Skip("no www-data user: ", err)
	}
	os.WriteFile(filepath.Join(docroot, "busy.php"), []byte("<?php $t = microtime(true); while (microtime(true) - $t < 3.0) {} echo 'busy-ok';"), 0o644)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'ok';"), 0o644)
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	pool := func(name, user string) phpfpm.Pool {
		groups := map[string]string{"nobody": "nogroup", "www-data": "www-data"}
		return phpfpm.Pool{Name: name, SiteDir: dir, User: user, Group: groups[user]}
	}
	for _, p := range []phpfpm.Pool{pool("site_a", "nobody"), pool("site_b", "nobody"), pool("site_c", "www-data")} {
		if err := m.EnsurePool(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	ed := edge.New(edge.Config{})
	var routes []edge.Route
	for _, s := range []string{"a", "b", "c"} {
		routes = append(routes, edge.Route{Host: s + ".test", Site: s, Docroot: docroot, Endpoint: "unix:" + m.Socket("site_"+s), State: edge.Serving})
	}
	ed.SetTable(edge.NewTable(routes))
	srv := httptest.NewServer(ed)
	defer srv.Close()
	get := func(host, path string) string {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprint(resp.StatusCode, " ", string(b))
	}
	if got := get("b.test", "/"); got != "200 ok" {
		t.Fatalf("site b: %s", got)
	}
	busyA, busyC := make(chan string, 1), make(chan string, 1)
	go func() { busyA <- get("a.test", "/busy.php") }()
	go func() { busyC <- get("c.test", "/busy.php") }()
	workersOf := func(uid string) []string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", m.Process().PID(), m.Process().PID()))
		var pids []string
		for _, f := range strings.Fields(string(b)) {
			st, _ := os.ReadFile("/proc/" + f + "/status")
			for _, line := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(line, "Uid:"); ok && strings.Fields(v)[0] == uid {
					pids = append(pids, f)
				}
			}
		}
		return pids
	}
	for len(workersOf(other.Uid)) == 0 {
		time.Sleep(10 * time.Millisecond) // c's request reached its worker
	}
	cWorkers := workersOf(other.Uid)
	time.Sleep(100 * time.Millisecond) // and a's, most likely
	reloads := m.Reloads()
	if err := m.RemovePool(ctx, "site_c"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	got := get("b.test", "/")
	t.Logf("site b answered in %v while a and the removed c computed", time.Since(t0).Round(time.Millisecond))
	// A reload would have waited for c's request, which was in a worker
	// (and for a's): neither may have ended before b was answered.
	select {
	case a := <-busyA:
		t.Fatalf("site b (%s) was answered only after site a's busy request (%s): held by a reload", got, a)
	case c := <-busyC:
		t.Fatalf("site b (%s) was answered only after the removed pool's busy request (%s): held by a reload", got, c)
	default:
	}
	if got != "200 ok" {
		t.Errorf("site b after c's removal: %s", got)
	}
	if n := m.Reloads() - reloads; n != 0 {
		t.Errorf("RemovePool reloaded the master %d times", n)
	}
	if a := <-busyA; a != "200 busy-ok" {
		t.Errorf("site a's busy request: %s", a)
	}
	if c := <-busyC; c != "200 busy-ok" {
		t.Errorf("the removed pool's request in flight: %s", c)
	}
	// (php-fpm may start a fresh worker in its place, which has run no
	// PHP and leaves at the pool's idle timeout.)
	gone := func() bool {
		for _, pid := range cWorkers {
			if _, err := os.Stat("/proc/" + pid); err == nil {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !gone(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the removed pool's worker did not exit after its request")
		}
	}
	if pools, _ := m.Pools(); strings.Join(pools, ",") != "site_a,site_b" {
		t.Errorf("pools = %v", pools)
	}
	if err := m.RemovePool(ctx, "site_c"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	// The next reload (a new pool) drops it: its socket goes.
	if _, err := os.Stat(m.Socket("site_c")); err != nil {
		t.Errorf("removed pool's socket before the next reload: %v", err)
	}
	if err := m.EnsurePool(ctx, pool("site_d", "nobody")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.Socket("site_c")); !os.IsNotExist(err) {
		t.Errorf("removed pool's socket after a reload: %v", err)
	}
	if got := get("c.test", "/"); !strings.HasPrefix(got, "502") {
		t.Errorf("removed pool after a reload answers %s, want 502", got)
	}
	// Made again as it was before a reload (a suspension, then a resume),
	// a removed pool serves as it is: no reload, its socket kept.
	if err := m.RemovePool(ctx, "site_b"); err != nil {
		t.Fatal(err)
	}
	reloads = m.Reloads()
	if err := m.EnsurePool(ctx, pool("site_b", "nobody")); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 0 {
		t.Errorf("pool b made again as it was: %d reloads, want 0", n)
	}
	if got := get("b.test", "/"); got != "200 ok" {
		t.Errorf("pool b made again: %s", got)
	}
	if err := m.EnsurePool(ctx, pool("site_e", "nobody")); err != nil {
		t.Fatal(err)
	}
	if got := get("b.test", "/"); got != "200 ok" {
		t.Errorf("pool b made again, after a reload: %s", got)
	}
	// Made again otherwise, it is reloaded with its new configuration.
	if err := m.RemovePool(ctx, "site_b"); err != nil {
		t.Fatal(err)
	}
	reloads = m.Reloads()
	b := pool("site_b", "nobody")
	b.MemoryMB = 77
	if err := m.EnsurePool(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 1 {
		t.Errorf("pool b made again with a new memory limit: %d reloads, want 1", n)
	}
	os.WriteFile(filepath.Join(docroot, "mem.php"), []byte("<?php echo ini_get('memory_limit');"), 0o644)
	if got := get("b.test", "/mem.php"); got != "200 77M" {
		t.Errorf("pool b's memory limit: %s, want 77M", got)
	}
}

// TestReloadHoldsEveryPool pins down the php-fpm behaviour behind
// RemovePool's design and docs/operations.md ("Time to a serving site"):
// while the master reloads (a new pool) it starts no worker, so a request
// on any pool waits until the longest request in flight has ended. If a
// php-fpm version stops doing this, the docs (and perhaps RemovePool) need
// another look.
func TestReloadHoldsEveryPool(t *testing.T) {
	dir, docroot := siteDir(t)
	if os.Geteuid() != 0 {
		t.Skip("pools of a site user need root")
	}
	started := filepath.Join(dir, "tmp", "started")
	if err := os.Chmod(filepath.Dir(started), 0o777); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(docroot, "busy.php"), []byte("<?php touch('"+started+"'); $t = microtime(true); while (microtime(true) - $t < 2.0) {} echo 'busy-ok';"), 0o644)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'ok';"), 0o644)
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	pool := func(name string) phpfpm.Pool {
		return phpfpm.Pool{Name: name, SiteDir: dir, User: "nobody", Group: "nogroup"}
	}
	for _, n := range []string{"site_a", "site_b"} {
		if err := m.EnsurePool(ctx, pool(n)); err != nil {
			t.Fatal(err)
		}
	}
	getA := serveSite(t, "a.test", docroot, m.Socket("site_a"))
	getB := serveSite(t, "b.test", docroot, m.Socket("site_b"))
	if code, body := getB("/"); code != 200 || body != "ok" {
		t.Fatalf("site b: %d %q", code, body)
	}
	busy := make(chan time.Time, 1)
	go func() { getA("/busy.php"); busy <- time.Now() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break // a's request runs in its worker
		}
		if time.Now().After(deadline) {
			t.Fatal("site a's busy request did not start")
		}
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- m.EnsurePool(ctx, pool("site_c")) }()
	time.Sleep(200 * time.Millisecond) // the reload has begun
	t0 := time.Now()
	code, body := getB("/")
	answered := time.Now()
	t.Logf("site b answered in %v during a new pool's reload, behind site a's busy request", answered.Sub(t0).Round(time.Millisecond))
	if code != 200 || body != "ok" {
		t.Errorf("site b: %d %q", code, body)
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if end := <-busy; answered.Before(end) {
		t.Errorf("site b was answered before site a's request in flight ended: php-fpm's reload no longer holds every pool")
	}
}

// TestRemovedPoolNewUser: a removed pool whose user is made again with
// other IDs (a site deleted, then made again on the shard: a move that was
// aborted and retried) is reloaded when made again, never served by the
// loaded pool, whose workers would run as the old user ID — by then
// perhaps another site's.
func TestRemovedPoolNewUser(t *testing.T) {
	dir, docroot := siteDir(t)
	if os.Geteuid() != 0 {
		t.Skip("making users needs root")
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	name, filler := "aipt_u"+suffix, "aipt_f"+suffix
	add := func(n string) *user.User {
		t.Helper()
		if out, err := exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", n).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v %s", n, err, out)
		}
		u, err := user.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	del := func(n string) { exec.Command("userdel", "-f", n).Run() } // (-f: a worker may still run as it)
	t.Cleanup(func() { del(name); del(filler) })

	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := runMaster(t, m)
	old := add(name)
	secret := filepath.Join(docroot, "secret.txt")
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo file_get_contents('"+secret+"');"), 0o644)
	own := func(u *user.User) {
		t.Helper()
		os.WriteFile(secret, []byte("for "+u.Uid), 0o600)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(secret, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	own(old)
	p := phpfpm.Pool{Name: "site_u", SiteDir: dir, User: name, Group: name}
	if err := m.EnsurePool(ctx, p); err != nil {
		t.Fatal(err)
	}
	get := serveSite(t, "u.test", docroot, m.Socket("site_u"))
	if code, body := get("/"); code != 200 || body != "for "+old.Uid {
		t.Fatalf("pool as %s: %d %q", old.Uid, code, body)
	}
	if err := m.RemovePool(ctx, "site_u"); err != nil {
		t.Fatal(err)
	}
	// The user goes and is made again with another ID (the filler takes
	// the old one, as useradd would give it to the next site).
	del(name)
	add(filler)
	made := add(name)
	if made.Uid == old.Uid {
		t.Skipf("useradd gave %s its old ID %s again", name, old.Uid)
	}
	own(made)
	reloads := m.Reloads()
	if err := m.UpdatePool(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := m.Reloads() - reloads; n != 1 {
		t.Errorf("pool made again for a user with new IDs: %d reloads, want 1", n)
	}
	if code, body := get("/"); code != 200 || body != "for "+made.Uid {
		t.Errorf("pool made again: %d %q, want it to run as %s", code, body, made.Uid)
	}
}
