package e2e

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// One platform serves the lifecycle, isolation and bad-input tests.
func TestPlatform(t *testing.T) {
	p := newPlatform(t)
	p.start()
	t.Run("Lifecycle", func(t *testing.T) { p.t = t; testLifecycle(t, p) })
	t.Run("Isolation", func(t *testing.T) { p.t = t; testIsolation(t, p) })
	t.Run("SupervisedRestarts", func(t *testing.T) { p.t = t; testSupervisedRestarts(t, p) })
	t.Run("BadInput", func(t *testing.T) { p.t = t; testBadInput(t, p) })
	t.Run("PageCache", func(t *testing.T) { p.t = t; testPageCache(t, p) })
	t.Run("CacheColdAndStale", func(t *testing.T) { p.t = t; testCacheColdAndStale(t, p) })
	t.Run("Purge", func(t *testing.T) { p.t = t; testPurge(t, p) })
	t.Run("LoginLink", func(t *testing.T) { p.t = t; testLoginLink(t, p) })
	t.Run("WAF", func(t *testing.T) { p.t = t; testWAF(t, p) })
	t.Run("SiteMetrics", func(t *testing.T) { p.t = t; testSiteMetrics(t, p) })
	t.Run("Usage", func(t *testing.T) { p.t = t; testUsage(t, p) })
	t.Run("Logs", func(t *testing.T) { p.t = t; testLogs(t, p) })
	t.Run("WAFTuning", func(t *testing.T) { p.t = t; testWAFTuning(t, p) })
	t.Run("SiteFile", func(t *testing.T) { p.t = t; testSiteFile(t, p) })
	t.Run("StopAndRestart", func(t *testing.T) { p.t = t; testStopAndRestart(t, p) })
}

// Ctrl-C stops every child process; a second `aipress up` on the same data
// dir serves every site again.
func testStopAndRestart(t *testing.T, p *platform) {
	vis := p.client("taken.localhost")
	vis.waitStatus("/", 200, 30*time.Second)
	var pids []int
	for _, name := range []string{"php", "mariadb"} {
		b, err := os.ReadFile(filepath.Join(p.dataDir, "shards", "local", name, "supervised.pid"))
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		fmtSscan(strings.TrimSpace(string(b)), &pid)
		pids = append(pids, pid)
	}
	p.stop()
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("process %d still runs after the platform stopped", pid)
		}
	}
	if code, err := httpGet("http://" + p.httpAddr + "/"); err == nil {
		t.Errorf("edge still answers (%d) after stop", code)
	}
	p.start()
	if body := vis.waitStatus("/", 200, time.Minute); !strings.Contains(body, "<title>Taken") {
		t.Errorf("after restart: %.300s", body)
	}
}

func testLifecycle(t *testing.T, p *platform) {
	c := p.createSite("blog.localhost", "My Blog")
	if c.Domain != "blog.localhost" || c.Status != "Ready" || c.Shard != "local" || c.AdminUser != "admin" || len(c.AdminPassword) < 16 {
		t.Fatalf("create output = %+v", c)
	}
	if want := "http://blog.localhost:" + p.httpAddr[strings.LastIndex(p.httpAddr, ":")+1:]; c.URL != want {
		t.Errorf("url = %q, want %q", c.URL, want)
	}
	// The password is shown once and never stored in plain text.
	if out, _ := p.cli("site", "get", "blog.localhost", "-o", "json"); strings.Contains(out, c.AdminPassword) {
		t.Error("site get shows the admin password")
	}
	if st, err := os.Stat(filepath.Join(p.dataDir, "aipress.db")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("aipress.db mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	db, _ := os.ReadFile(filepath.Join(p.dataDir, "aipress.db"))
	if strings.Contains(string(db), c.AdminPassword) {
		t.Error("the admin password is stored in plain text")
	}

	// The home page, without and with the port in Host.
	for _, host := range []string{"blog.localhost", "blog.localhost:" + p.httpAddr[strings.LastIndex(p.httpAddr, ":")+1:]} {
		code, body := p.client(host).get("/")
		if code != 200 || !strings.Contains(body, "<title>My Blog") {
			t.Fatalf("GET http://%s/ = %d\n%.400s", host, code, body)
		}
	}
	vis := p.client("blog.localhost")
	// Pretty permalinks.
	if code, body := vis.get("/hello-world/"); code != 200 || !strings.Contains(body, "Hello world!") {
		t.Fatalf("GET /hello-world/ = %d\n%.400s", code, body)
	}
	// A static file of the shared core, served by the edge.
	if code, _ := vis.get("/wp-includes/css/dashicons.min.css"); code != 200 {
		t.Errorf("static core file = %d", code)
	}
	if code, body := vis.get("/wp-config.php"); code == 200 && strings.Contains(body, "DB_PASSWORD") {
		t.Fatal("wp-config.php source served")
	}

	// Log in as the admin and reach the dashboard.
	admin := p.client("blog.localhost")
	admin.get("/wp-login.php") // sets the test cookie
	code, hdr, body := admin.do("POST", "/wp-login.php", url.Values{
		"log": {c.AdminUser}, "pwd": {c.AdminPassword}, "wp-submit": {"Log In"},
		"redirect_to": {"/wp-admin/"}, "testcookie": {"1"},
	})
	if code != 302 || !hasCookie(hdr["Set-Cookie"], "wordpress_logged_in_") {
		t.Fatalf("login = %d, cookies %v\n%.400s", code, hdr["Set-Cookie"], body)
	}
	if code, body := admin.get("/wp-admin/"); code != 200 || !strings.Contains(body, "Dashboard") {
		t.Fatalf("GET /wp-admin/ = %d\n%.400s", code, body)
	}
	// A wrong password does not log in.
	bad := p.client("blog.localhost")
	bad.get("/wp-login.php")
	if _, hdr, _ := bad.do("POST", "/wp-login.php", url.Values{"log": {"admin"}, "pwd": {"wrong"}, "testcookie": {"1"}}); hasCookie(hdr["Set-Cookie"], "wordpress_logged_in_") {
		t.Fatal("wrong password logged in")
	}

	// Only uploads is writable by the site.
	docroot := p.docroot("blog.localhost")
	probe := plant(t, docroot, "aip-write-probe.php", `<?php
$targets = ['uploads' => __DIR__.'/wp-content/uploads', 'wp-content' => __DIR__.'/wp-content',
  'themes' => __DIR__.'/wp-content/themes', 'plugins' => __DIR__.'/wp-content/plugins', 'docroot' => __DIR__,
  'wp-includes' => __DIR__.'/wp-includes'];
$out = [];
foreach ($targets as $k => $d) { $f = $d.'/aip-probe-'.getmypid(); $out[$k] = @file_put_contents($f, 'x') !== false; @unlink($f); }
$out['wp-config'] = @fopen(__DIR__.'/wp-config.php', 'a') !== false;
$out['core-file'] = @fopen(__DIR__.'/wp-load.php', 'a') !== false;
echo json_encode($out);`)
	code, body = vis.get(probe)
	var w map[string]bool
	if err := json.Unmarshal([]byte(body), &w); code != 200 || err != nil {
		t.Fatalf("probe = %d %v\n%.300s", code, err, body)
	}
	for k, v := range w {
		if want := k == "uploads"; v != want {
			t.Errorf("site can write %s = %v, want %v", k, v, want)
		}
	}

	// Suspend: 503 maintenance, data kept; resume: serving again.
	if _, err := p.cli("site", "suspend", "blog.localhost"); err != nil {
		t.Fatal(err)
	}
	if code, body := vis.get("/"); code != 503 || !strings.Contains(strings.ToLower(body), "maintenance") {
		t.Fatalf("suspended GET / = %d\n%.300s", code, body)
	}
	if _, err := p.cli("site", "resume", "blog.localhost"); err != nil {
		t.Fatal(err)
	}
	vis.waitStatus("/hello-world/", 200, 30*time.Second)

	// Delete: everything the shard created for the site is gone.
	before := p.inventory()
	if _, err := p.cli("site", "delete", "blog.localhost"); err != nil {
		t.Fatal(err)
	}
	vis.waitStatus("/", 404, 30*time.Second)
	if _, err := p.cli("site", "get", "blog.localhost"); err == nil {
		t.Error("deleted site still listed")
	}
	after := p.inventory()
	for kind, names := range before {
		if len(after[kind]) != len(names)-1 {
			t.Errorf("%s: before delete %v, after %v (want exactly one fewer)", kind, names, after[kind])
		}
	}
}

func hasCookie(setCookies []string, prefix string) bool {
	return slices.ContainsFunc(setCookies, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func testIsolation(t *testing.T, p *platform) {
	p.createSite("a.localhost", "Site A")
	// Creating B reloads php-fpm; A's visitors must not notice.
	visA := p.client("a.localhost")
	stop := make(chan struct{})
	failures := make(chan string, 1)
	requests := 0
	go func() {
		defer close(failures)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", visA.base+"/", nil)
			req.Host = "a.localhost"
			resp, err := visA.http.Do(req)
			requests++
			if err != nil {
				failures <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failures <- resp.Status
				return
			}
		}
	}()
	p.createSite("b.localhost", "Site B")
	close(stop)
	if f, ok := <-failures; ok {
		t.Errorf("site A failed while B was created (after %d requests): %s", requests, f)
	}
	if requests < 2 {
		t.Errorf("only %d requests to A ran during B's creation", requests)
	}
	docA, docB := p.docroot("a.localhost"), p.docroot("b.localhost")
	// The other docroot travels hex-encoded: the WAF (rightly) blocks
	// filesystem paths in parameters.
	probe := plant(t, docA, "aip-isolation-probe.php", `<?php
$other = hex2bin($_GET['other']);
$res = [];
$res['own_config'] = @file_get_contents(__DIR__.'/wp-config.php') !== false;
$res['other_config'] = @file_get_contents($other.'/wp-config.php') !== false;
$res['other_dir'] = @scandir(dirname($other)) !== false;
preg_match("/'DB_USER', '([^']+)'/", file_get_contents(__DIR__.'/wp-config.php'), $u);
preg_match("/'DB_PASSWORD', '([^']+)'/", file_get_contents(__DIR__.'/wp-config.php'), $pw);
preg_match("/'DB_HOST', 'localhost:([^']+)'/", file_get_contents(__DIR__.'/wp-config.php'), $h);
mysqli_report(MYSQLI_REPORT_OFF);
$own = @mysqli_connect('localhost', $u[1], $pw[1], $u[1], 0, $h[1]);
$res['own_db'] = $own !== false;
$other = @mysqli_connect('localhost', $u[1], $pw[1], $_GET['otherdb'], 0, $h[1]);
$res['other_db'] = $other !== false;
$res['other_db_query'] = $own && @mysqli_query($own, 'SELECT COUNT(*) FROM '.preg_replace('/[^a-z0-9_]/', '', $_GET['otherdb']).'.wp_options') !== false;
foreach (['exec', 'shell_exec', 'system', 'passthru', 'proc_open', 'popen'] as $f) {
	try { $r = @$f('id'); $res[$f] = $r !== null && $r !== false; } catch (\Throwable $e) { $res[$f] = false; }
}
echo json_encode($res);`)
	otherDB := "wp_" + filepath.Base(filepath.Dir(docB))
	code, body := p.client("a.localhost").get(probe + "?other=" + hex.EncodeToString([]byte(docB)) + "&otherdb=" + otherDB)
	var r map[string]bool
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
		t.Fatalf("probe = %d %v\n%.500s", code, err, body)
	}
	want := map[string]bool{"own_config": true, "own_db": true}
	for k, v := range r {
		if v != want[k] {
			t.Errorf("site A %s = %v, want %v", k, v, want[k])
		}
	}
	if len(r) < 11 {
		t.Errorf("probe answered too little: %v", r)
	}
	// B's files belong to B's user and group, not readable by others.
	st, err := os.Stat(filepath.Dir(docB))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		t.Errorf("site dir mode %v is open to others", st.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		sa, _ := os.Stat(filepath.Join(docA, "wp-content", "uploads"))
		sb, _ := os.Stat(filepath.Join(docB, "wp-content", "uploads"))
		if sa.Sys().(*syscall.Stat_t).Uid == sb.Sys().(*syscall.Stat_t).Uid {
			t.Error("sites A and B share a Unix user")
		}
	}
	for _, d := range []string{"a.localhost", "b.localhost"} {
		if _, err := p.cli("site", "delete", d); err != nil {
			t.Fatal(err)
		}
	}
}

// Killed PHP and database servers come back by themselves.
func testSupervisedRestarts(t *testing.T, p *platform) {
	p.createSite("sup.localhost", "Supervised")
	vis := p.client("sup.localhost")
	vis.waitStatus("/", 200, 30*time.Second)
	for _, name := range []string{"php", "mariadb"} {
		pidFile := filepath.Join(p.dataDir, "shards", "local", name, "supervised.pid")
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if _, err := fmtSscan(strings.TrimSpace(string(b)), &pid); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		vis.waitStatus("/", 200, 60*time.Second)
	}
	if _, err := p.cli("site", "delete", "sup.localhost"); err != nil {
		t.Fatal(err)
	}
}

func testBadInput(t *testing.T, p *platform) {
	p.createSite("taken.localhost", "Taken")
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wildcard", nil, []string{"site", "create", "*.example.com", "--title", "x", "--admin-email", "a@example.com"}, "wildcard"},
		{"space", nil, []string{"site", "create", "exa mple.com", "--title", "x", "--admin-email", "a@example.com"}, "invalid domain"},
		{"empty label", nil, []string{"site", "create", "a..b", "--title", "x", "--admin-email", "a@example.com"}, "invalid domain"},
		{"single label", nil, []string{"site", "create", "localhost", "--title", "x", "--admin-email", "a@example.com"}, "invalid domain"},
		{"duplicate", nil, []string{"site", "create", "TAKEN.localhost", "--title", "x", "--admin-email", "a@example.com"}, "already"},
		{"bad email", nil, []string{"site", "create", "new.localhost", "--title", "x", "--admin-email", "nope"}, "email"},
		{"unknown site", nil, []string{"site", "get", "nosuch.localhost"}, `site "nosuch.localhost" not found`},
		{"unknown delete", nil, []string{"site", "delete", "nosuch.localhost"}, "not found"},
		{"wrong token", []string{"AIPRESS_URL=http://" + p.apiAddr, "AIPRESS_TOKEN=aip_wrong"}, []string{"site", "list"}, "invalid token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.cliEnv(tc.env, tc.args...)
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.Contains(strings.ToLower(out), strings.ToLower(tc.want)) {
				t.Errorf("output %q does not mention %q", out, tc.want)
			}
		})
	}
	// No token at all: a client with no config, no env.
	t.Run("missing token", func(t *testing.T) {
		resp, err := httpGet("http://" + p.apiAddr + "/v1/sites")
		if err != nil {
			t.Fatal(err)
		}
		if resp != 401 {
			t.Errorf("GET /v1/sites without token = %d, want 401", resp)
		}
	})
	// Nothing was created by the failed calls.
	out, err := p.cli("site", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Metadata.Name != "taken.localhost" {
		t.Errorf("failed creates left sites: %s", out)
	}
}

// The edge's page cache: an anonymous visitor's second request for the
// home page is a hit; a logged-in visitor's bypasses the cache.
func testPageCache(t *testing.T, p *platform) {
	p.createSite("cache.localhost", "Cached")
	vis := p.client("cache.localhost")
	vis.waitStatus("/?warm-up=1", 200, 30*time.Second) // routed; another key
	get := func(cookie string) (string, string) {
		req, err := http.NewRequest("GET", vis.base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "cache.localhost"
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := vis.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "<title>Cached") {
			t.Fatalf("GET / = %d\n%.300s", resp.StatusCode, b)
		}
		if v := resp.Header.Get("X-AIPress-Tags"); v != "" {
			t.Errorf("tags header reached the visitor: %q", v)
		}
		return resp.Header.Get("X-Cache"), resp.Header.Get("Age")
	}
	if x, _ := get(""); x != "MISS" {
		t.Errorf("first GET / X-Cache = %q, want MISS", x)
	}
	if x, age := get(""); x != "HIT" || age == "" {
		t.Errorf("second GET / X-Cache = %q (Age %q), want HIT with Age", x, age)
	}
	if x, _ := get("wordpress_logged_in_x=y"); x != "BYPASS" {
		t.Errorf("GET / with a login cookie: X-Cache = %q, want BYPASS", x)
	}
}
