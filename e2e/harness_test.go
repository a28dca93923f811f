// Package e2e tests the real aipress binary end to end: `aipress up` with
// its own MariaDB, php-fpm and WordPress in a temporary data directory on
// random loopback ports, driven through the CLI and plain HTTP, as a user
// would.
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/volume"
)

var binPath string

// spareName matches the local shard's spare pools and their users, with
// or without the pool file's ".conf".
var spareName = regexp.MustCompile(`^wp_s[0-9a-f]{11}(\.conf)?$`)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/php-fpm8.2", "/usr/share/wordpress/wp-load.php"} {
		if _, err := os.Stat(p); err != nil {
			fmt.Printf("e2e: skipping, %s missing (make deps)\n", p)
			return 0
		}
	}
	dir, err := os.MkdirTemp("", "aipress-e2e-bin")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "aipress")
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/aipress/aipress/cmd/aipress").CombinedOutput()
	if err != nil {
		fmt.Printf("e2e: build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// platform is one running `aipress up`.
type platform struct {
	t        *testing.T
	dataDir  string
	httpAddr string
	apiAddr  string
	cmd      *exec.Cmd
	log      *logBuffer
	exited   chan struct{}
	// extraArgs are appended to `aipress up` (e.g. --https ADDR).
	extraArgs []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newPlatform prepares a data dir and ports; start() runs it.
func newPlatform(t *testing.T) *platform {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	// The site users the platform's shards made (homes below dir) go
	// with it: the data directory's removal would leave them behind
	// (this runs after the platform stopped and its volumes went).
	t.Cleanup(func() {
		if _, err := shard.RemoveUsersUnder(context.Background(), dir); err != nil {
			t.Errorf("removing the site users: %v", err)
		}
	})
	// Site volumes a killed platform left mounted would stop the
	// directory's removal (this runs after the platform stopped).
	t.Cleanup(func() { _ = volume.UnmountUnder(dir) })
	p := &platform{t: t, dataDir: filepath.Join(dir, "data"), httpAddr: freeAddr(t), apiAddr: freeAddr(t)}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() && p.log != nil {
			t.Logf("platform log:\n%s", p.log)
			// php-fpm's master says why it refused a configuration
			// (exit status 78) only in its own log.
			if b, err := os.ReadFile(filepath.Join(p.dataDir, "shards", "local", "php", "php-fpm.log")); err == nil {
				t.Logf("php-fpm.log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
			}
		}
	})
	return p
}

func (p *platform) start() {
	p.t.Helper()
	p.log = &logBuffer{}
	args := []string{"up", "--data-dir", p.dataDir, "--http", p.httpAddr, "--api", p.apiAddr}
	if !slices.Contains(p.extraArgs, "--rate-ip") {
		// Tests hammer sites from 127.0.0.1; the rate-limit test sets its own.
		args = append(args, "--rate-ip", "0", "--rate-site", "0")
	}
	p.cmd = exec.Command(binPath, append(args, p.extraArgs...)...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(p.dataDir, "client.json")); err == nil {
			if out, err := p.cli("site", "list"); err == nil {
				_ = out
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("aipress up exited:\n%s", p.log)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("aipress up did not answer in 60s:\n%s", p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logBuffer collects the platform's output; tests read it while the
// platform writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stop interrupts the platform (as Ctrl-C does) and waits for it.
func (p *platform) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// kill9 kills the platform with SIGKILL, as a crash would.
func (p *platform) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// cli runs the aipress client from the directory above the data dir, so it
// finds client.json by itself, as a user in that directory would.
func (p *platform) cli(args ...string) (string, error) {
	return p.cliEnv(nil, args...)
}

func (p *platform) cliEnv(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = filepath.Dir(p.dataDir)
	cmd.Env = append(os.Environ(), "AIPRESS_DATA_DIR="+p.dataDir, "AIPRESS_URL=", "AIPRESS_TOKEN=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("aipress %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

type created struct {
	Domain        string `json:"domain"`
	URL           string `json:"url"`
	Status        string `json:"status"`
	Shard         string `json:"shard"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
}

func (p *platform) createSite(domain, title string) created {
	p.t.Helper()
	out, err := p.cli("site", "create", domain, "--title", title, "--admin-email", "owner@example.com", "-o", "json")
	if err != nil {
		p.t.Fatal(err)
	}
	var c created
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		p.t.Fatalf("create output: %v\n%s", err, out)
	}
	return c
}

// siteJSON returns `site get -o json` decoded loosely.
func (p *platform) siteJSON(domain string) map[string]any {
	p.t.Helper()
	out, err := p.cli("site", "get", domain, "-o", "json")
	if err != nil {
		p.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		p.t.Fatal(err)
	}
	return m
}

func field(m map[string]any, path ...string) string {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// client is a browser-like HTTP client for one site: it sends the site's
// Host to the edge's loopback address and keeps cookies.
type client struct {
	t    *testing.T
	host string
	base string
	http *http.Client
}

func (p *platform) client(host string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: p.t, host: host, base: "http://" + p.httpAddr, http: &http.Client{
		Jar:     jar,
		Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (c *client) do(method, path string, form url.Values) (int, http.Header, string) {
	c.t.Helper()
	if form == nil {
		return c.doRaw(method, path, nil, nil)
	}
	return c.doRaw(method, path, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
}

// doRaw sends one request with the site's Host, the given headers and body
// and the client's cookies, and keeps the cookies it gets back.
func (c *client) doRaw(method, path string, hdr http.Header, body []byte) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = c.host
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	// The jar files cookies under the URL's host; WordPress sets them for
	// the site's domain, so ask the jar for that one.
	for _, ck := range c.http.Jar.Cookies(&url.URL{Scheme: "http", Host: c.host, Path: req.URL.Path}) {
		req.AddCookie(ck)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if cks := resp.Cookies(); len(cks) > 0 {
		c.http.Jar.SetCookies(&url.URL{Scheme: "http", Host: c.host, Path: "/"}, cks)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	code, _, body := c.do("GET", path, nil)
	return code, body
}

// waitStatus polls GET path until it answers want (or fails the test).
func (c *client) waitStatus(path string, want int, d time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var code int
	var body string
	for time.Now().Before(deadline) {
		code, body = c.get(path)
		if code == want {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("GET %s%s = %d, want %d; body: %.300s", c.host, path, code, want, body)
	return ""
}

// rootDB opens the shard's MariaDB as root.
func (p *platform) rootDB() *sql.DB {
	p.t.Helper()
	dir := filepath.Join(p.dataDir, "shards", "local", "mariadb")
	pw, err := os.ReadFile(filepath.Join(dir, "root-password"))
	if err != nil {
		p.t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "root", strings.TrimSpace(string(pw)), "unix", filepath.Join(dir, "run", "mysqld.sock")
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	db := sql.OpenDB(c)
	p.t.Cleanup(func() { db.Close() })
	return db
}

// docroot returns a site's docroot as reported in its status.
func (p *platform) docroot(domain string) string {
	d := field(p.siteJSON(domain), "status", "docroot")
	if d == "" {
		p.t.Fatalf("site %s has no docroot in status", domain)
	}
	return d
}

// plant writes a PHP probe into a site's docroot (as root, as an attacker
// with a plugin upload would) and returns its URL path.
func plant(t *testing.T, docroot, name, code string) string {
	t.Helper()
	path := filepath.Join(docroot, name)
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return "/" + name
}

// inventory lists what exists of per-site resources on the shard: databases,
// database users, pool files, site directories and Unix users.
func (p *platform) inventory() map[string][]string {
	p.t.Helper()
	db := p.rootDB()
	inv := map[string][]string{}
	q := func(kind, query string) {
		rows, err := db.Query(query)
		if err != nil {
			p.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			inv[kind] = append(inv[kind], s)
		}
	}
	// Site databases only: the shard's template database (wp_tpl_<key>,
	// cloned into new sites) is not per site.
	q("databases", `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME REGEXP '^wp_[0-9a-f]{12}$'`)
	// Site users only: the shard's internal accounts (wp_mon, wp_repl:
	// the replica monitor and the binary log shipper) are not per site.
	q("dbusers", `SELECT User FROM mysql.user WHERE User REGEXP '^wp_[0-9a-f]{12}'`)
	shard := filepath.Join(p.dataDir, "shards", "local")
	pools, _ := filepath.Glob(filepath.Join(shard, "php", "pool.d", "*.conf"))
	for _, f := range pools {
		inv["pools"] = append(inv["pools"], filepath.Base(f))
	}
	dirs, _ := os.ReadDir(filepath.Join(shard, "sites"))
	for _, d := range dirs {
		inv["dirs"] = append(inv["dirs"], d.Name())
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(passwd), "\n") {
		parts := strings.Split(line, ":")
		if len(parts) > 5 && strings.HasPrefix(parts[5], filepath.Join(shard, "sites")+"/") {
			inv["unixusers"] = append(inv["unixusers"], parts[0])
		}
	}
	// A verify-restore's scratch site ("v" and 8 hex digits) belongs to no
	// site: the leader's daily sample may be running at any moment. Nor
	// does a spare pool and its user ("wp_s" and 11 hex digits), made
	// ahead for the next new site.
	for kind, names := range inv {
		inv[kind] = slices.DeleteFunc(names, func(n string) bool {
			return strings.HasPrefix(n, "v") || strings.HasPrefix(n, "wp_v") || spareName.MatchString(n)
		})
	}
	return inv
}

// waitSpares waits (bounded) until the local shard has its spare PHP pools
// listening: a shard makes them with a php-fpm reload 2 s after a new
// site went Ready, and a reload restarts php-fpm's counters, which tests
// that count a site's requests must not meet.
func (p *platform) waitSpares() {
	p.t.Helper()
	run := filepath.Join(p.dataDir, "shards", "local", "php", "run")
	deadline := time.Now().Add(time.Minute)
	for {
		socks, _ := filepath.Glob(filepath.Join(run, "wp_s*.sock"))
		n := 0
		for _, s := range socks {
			if fi, err := os.Lstat(s); err == nil && fi.Mode().Type() == os.ModeSocket && spareName.MatchString(strings.TrimSuffix(filepath.Base(s), ".sock")) {
				n++
			}
		}
		if n >= shard.DefaultSpares {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the local shard has %d spare pools listening after a minute, want %d", n, shard.DefaultSpares)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitLog waits (bounded) until the platform's log from byte offset from on
// contains s. The platform writes its log before it answers the request that
// caused it, but the log reaches this process through a pipe that another
// goroutine copies, so a line can trail the response by a little.
func (p *platform) waitLog(from int, s string) bool {
	return p.waitLogFunc(from, func(line string) bool { return strings.Contains(line, s) })
}

// waitLogFunc is waitLog with a predicate over each line.
func (p *platform) waitLogFunc(from int, match func(line string) bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(p.log.String()[from:], "\n") {
			if match(line) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
