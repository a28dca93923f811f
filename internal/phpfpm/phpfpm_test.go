package phpfpm_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/phpfpm"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderPoolGolden(t *testing.T) {
	got, err := phpfpm.RenderPool(phpfpm.Pool{
		Name: "wp_0123456789ab", User: "wp_0123456789ab", Group: "wp_0123456789ab",
		Docroot: "/data/sites/0123456789ab/htdocs", SiteDir: "/data/sites/0123456789ab",
		MaxChildren: 4, IdleTimeout: 20 * time.Second, MemoryMB: 128, UploadMaxMB: 32, RequestTimeout: 45 * time.Second,
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
}

// Adding and removing pools reloads the master gracefully: a request in
// flight on another pool completes.
func TestPoolsReloadGracefully(t *testing.T) {
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(dir, "htdocs")
	os.MkdirAll(docroot, 0o755)
	os.WriteFile(filepath.Join(docroot, "slow.php"), []byte("<?php usleep(1500000); echo 'slow-ok';"), 0o644)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'pool:', $_SERVER['POOL'] ?? getenv('POOL') ?: 'x';"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := m.Prepare(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-m.Ready()

	user := ""
	if os.Geteuid() == 0 {
		user = "nobody"
	}
	pool := func(name string) phpfpm.Pool {
		p := phpfpm.Pool{Name: name, Docroot: docroot, SiteDir: dir}
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
	if code, _ := get("b.test", "/"); code != http.StatusBadGateway {
		t.Errorf("removed pool b answers %d, want 502", code)
	}
	if pools, _ := m.Pools(); len(pools) != 1 || pools[0] != "site_a" {
		t.Errorf("pools = %v", pools)
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

func TestRenderPoolTCP(t *testing.T) {
	base := phpfpm.Pool{Name: "wp_0123456789ab", Docroot: "/d/htdocs", SiteDir: "/d"}
	p := base
	p.Listen = "0.0.0.0:9100"
	got, err := phpfpm.RenderPool(p, "/unused.sock")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(got)
	for _, want := range []string{"listen = 0.0.0.0:9100\n", "listen.allowed_clients = 127.0.0.1\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("TCP pool without clients lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "unused.sock") || strings.Contains(conf, "listen.mode") {
		t.Errorf("TCP pool mentions the socket:\n%s", conf)
	}
	p.AllowedClients = []string{"10.0.0.5", "fd00::7"}
	got, err = phpfpm.RenderPool(p, "/unused.sock")
	if err != nil || !strings.Contains(string(got), "listen.allowed_clients = 10.0.0.5,fd00::7\n") {
		t.Errorf("allowed clients: %v\n%s", err, got)
	}
	p.AnyClient = true
	got, err = phpfpm.RenderPool(p, "/unused.sock")
	if err != nil || strings.Contains(string(got), "allowed_clients") || !strings.Contains(string(got), "listen = 0.0.0.0:9100\n") {
		t.Errorf("any client: %v\n%s", err, got)
	}
	for _, bad := range []phpfpm.Pool{
		{Listen: "9100"}, {Listen: "example.com:9100"}, {Listen: "127.0.0.1:9100", AllowedClients: []string{"10.0.0.0/8"}},
		{Listen: "127.0.0.1:9100", AllowedClients: []string{"any"}},
	} {
		q := base
		q.Listen, q.AllowedClients = bad.Listen, bad.AllowedClients
		if _, err := phpfpm.RenderPool(q, "/x.sock"); err == nil {
			t.Errorf("listen %q clients %q accepted", bad.Listen, bad.AllowedClients)
		}
	}
}

// A TCP pool serves the clients it allows and drops any other: the edge
// (from 127.0.0.1) reaches a pool that allows 127.0.0.1 and gets 502 from
// one that only allows 127.0.0.2.
func TestTCPPoolAllowedClients(t *testing.T) {
	if _, err := os.Stat(phpfpm.Binary); err != nil {
		t.Skip("php-fpm not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(dir, "htdocs")
	os.MkdirAll(docroot, 0o755)
	os.WriteFile(filepath.Join(docroot, "index.php"), []byte("<?php echo 'tcp-ok';"), 0o644)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o777)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o777)
	ctx, cancel := context.WithCancel(context.Background())
	m := &phpfpm.Master{Dir: filepath.Join(dir, "php")}
	if err := m.Prepare(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-m.Ready()

	freePort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	pool := func(name, listen string, clients ...string) phpfpm.Pool {
		p := phpfpm.Pool{Name: name, Docroot: docroot, SiteDir: dir, Listen: listen, AllowedClients: clients}
		if os.Geteuid() == 0 {
			p.User, p.Group = "nobody", "nogroup"
		}
		return p
	}
	okAddr, deniedAddr := freePort(), freePort()
	for _, p := range []phpfpm.Pool{pool("site_ok", okAddr), pool("site_denied", deniedAddr, "127.0.0.2")} {
		if err := m.EnsurePool(ctx, p); err != nil {
			t.Fatal(err)
		}
		if !m.Listening(p) {
			t.Fatalf("%s not listening after EnsurePool", p.Name)
		}
		if _, err := os.Stat(m.Socket(p.Name)); err == nil {
			t.Errorf("TCP pool %s also made a socket", p.Name)
		}
	}
	ed := edge.New(edge.Config{})
	ed.SetTable(edge.NewTable([]edge.Route{
		{Host: "ok.test", Site: "ok", Docroot: docroot, Endpoint: "tcp:" + okAddr, State: edge.Serving},
		{Host: "denied.test", Site: "denied", Docroot: docroot, Endpoint: "tcp:" + deniedAddr, State: edge.Serving},
	}))
	srv := httptest.NewServer(ed)
	defer srv.Close()
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("ok.test"); code != 200 || body != "tcp-ok" {
		t.Errorf("allowed client: %d %q", code, body)
	}
	if code, body := get("denied.test"); code != http.StatusBadGateway || strings.Contains(body, "tcp-ok") {
		t.Errorf("client not in allowed_clients: %d %.200q", code, body)
	}
	if err := m.RemovePool(ctx, "site_ok"); err != nil {
		t.Fatal(err)
	}
	if m.Listening(pool("site_ok", okAddr)) {
		t.Error("removed TCP pool still listening")
	}
}
