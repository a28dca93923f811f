package shardagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/platform/edgenode"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

const rotPHPFPM = "/usr/sbin/php-fpm8.2"

// startRotationFPM runs php-fpm with one pool on a socket in dir (world
// readable: the pool runs as nobody when the test runs as root).
func startRotationFPM(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(rotPHPFPM); err != nil {
		t.Skipf("php-fpm not available: %v", err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
	}
	sock := filepath.Join(dir, "pool.sock")
	conf := fmt.Sprintf("[global]\npid = %[1]s/php-fpm.pid\nerror_log = %[1]s/php-fpm.log\ndaemonize = no\n\n[rot]\n%[2]slisten = %[3]s\nlisten.mode = 0666\npm = static\npm.max_children = 4\n",
		dir, user, sock)
	confPath := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rotPHPFPM, "--nodaemonize", "--fpm-config", confPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php-fpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-done
	})
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "php-fpm.log"))
			t.Fatalf("php-fpm exited: %s", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The issue's requirement for the internal CA: a rotation (start →
// switch → finish) under concurrent requests with no failed request. A
// real control-plane API (SQLite store) issues the certificates; a shard's
// gateway (static files and the FastCGI relay to a real php-fpm) and an
// edge hold credentials kept by Credentials.Keep through the API, as shard
// agents and edges do; requests flow edge → gateway over mTLS all along,
// on kept-alive connections (static) and a new TLS connection per PHP
// request. After finish, a leaf of the old CA is refused.
func TestCARotationUnderLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base, err := os.MkdirTemp("", "aipress-carot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(base, "docroot")
	if err := os.MkdirAll(docroot, 0o755); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB: above the edge's memory cache, always fetched
	for name, body := range map[string]string{
		"index.php": `<?php echo "php ok";`,
		"big.bin":   big,
	} {
		if err := os.WriteFile(filepath.Join(docroot, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := startRotationFPM(t, base)

	// The control plane.
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secrets := map[string]store.Token{
		"admin-secret": {ID: "tok-admin", Name: "admin", Role: store.RoleAdmin},
		"shard-secret": {ID: "tok-s1", Name: "s1", Role: store.RoleShard, Subject: "s1"},
		"edge-secret":  {ID: "tok-e1", Name: "e1", Role: store.RoleEdge},
	}
	for secret, tok := range secrets {
		tok.Hash, tok.CreatedAt = store.TokenHash(secret), time.Now()
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := mtls.NewCA(bytes.Repeat([]byte{3}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := httptest.NewServer(api.New(api.Config{Store: st, MeshCA: ca, Placer: api.StaticPlacer("s1")}))
	t.Cleanup(cp.Close)
	admin := apiclient.New(cp.URL, "admin-secret")
	var logs syncLog
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})

	// Holders, kept as in production (apiLink for the shard,
	// edgenode.CertSources for the edge), checking every few milliseconds
	// instead of ten minutes.
	const check = 5 * time.Millisecond
	keep := func(id mtls.Identity, issue mtls.Issuer, bundle mtls.BundleSource) *mtls.Credentials {
		c, err := mtls.LoadCredentials(t.TempDir(), id)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Renew(ctx, issue); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Keep(ctx, issue, bundle, check, nil, log.With("holder", id.String())) }()
		t.Cleanup(func() { cancel(); <-done })
		return c
	}
	link := &apiLink{c: apiclient.New(cp.URL, "shard-secret")}
	shardCreds := keep(mtls.Identity{Role: mtls.RoleShard, Name: "s1"}, link.Certificate, link.CABundle)
	edgeIssue, edgeBundle := edgenode.CertSources(apiclient.New(cp.URL, "edge-secret"))
	edgeID := mtls.Identity{Role: mtls.RoleEdge, Name: "tok-e1"}
	edgeCreds := keep(edgeID, edgeIssue, edgeBundle)
	// An edge that renewed before the rotation and never again: its
	// leaf is of the old CA.
	stale, err := mtls.LoadCredentials(t.TempDir(), edgeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Renew(ctx, edgeIssue); err != nil {
		t.Fatal(err)
	}

	// The shard's gateway and the edge.
	static := edge.New(edge.Config{StaticServer: true, Logger: log.With("side", "shard")})
	static.SetTable(edge.NewTable([]edge.Route{{Host: "site.test", Site: "site", Docroot: docroot, Endpoint: "unix:" + sock, State: edge.Serving}}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := edge.NewGateway(edge.GatewayConfig{Static: static, TLS: shardCreds.ServerTLS(mtls.RoleEdge), Logger: log.With("side", "gateway")})
	go gw.Serve(ln)
	t.Cleanup(func() { gw.Shutdown(context.Background()) })
	ed := edge.New(edge.Config{Mesh: edgeCreds, DialTimeout: 5 * time.Second, Logger: log.With("side", "edge")})
	ed.SetTable(edge.NewTable([]edge.Route{{Host: "site.test", Site: "site", Docroot: docroot, Gateway: ln.Addr().String(), Shard: "s1", State: edge.Serving}}))
	front := httptest.NewServer(ed)
	t.Cleanup(front.Close)

	// Load: two clients, PHP and the large static file, until stopped.
	var ok atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tc := range []struct{ path, want string }{{"/", "php ok"}, {"/big.bin", big}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL+tc.path, nil)
				req.Host = "site.test"
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				switch {
				case err != nil:
					failMu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v", tc.path, err))
					failMu.Unlock()
				case resp.StatusCode != 200 || string(body) != tc.want:
					failMu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %d %.100q", tc.path, resp.StatusCode, body))
					failMu.Unlock()
				default:
					ok.Add(1)
				}
			}
		}()
	}
	// waitRequests lets at least n more requests succeed.
	waitRequests := func(n int64) {
		from := ok.Load()
		for ok.Load() < from+n {
			failMu.Lock()
			failed := len(failures)
			failMu.Unlock()
			if failed > 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	// waitHolders waits until both holders hold the bundle of state and a
	// leaf of its issuing generation.
	waitHolders := func(state *apiclient.MeshCAResponse) {
		for shardCreds.Bundle() != state.BundleID || edgeCreds.Bundle() != state.BundleID {
			time.Sleep(time.Millisecond)
		}
	}
	waitRequests(50)
	for _, step := range []struct {
		phase string
		force bool
	}{
		{mtls.PhaseStart, false},
		// Forced: the test has seen both holders renew (waitHolders),
		// which is what the grace waits for in production.
		{mtls.PhaseSwitch, true},
		{mtls.PhaseFinish, true},
	} {
		state, err := admin.RotateMeshCA(ctx, apiclient.RotateMeshCARequest{Phase: step.phase, Force: step.force})
		if err != nil {
			t.Fatalf("%s: %v", step.phase, err)
		}
		waitHolders(state)
		waitRequests(50)
		t.Logf("%s: generation %d issues, trusted %v; %d requests so far", step.phase, state.Issuing, state.Trusted, ok.Load())
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failed requests (of %d), first: %s", len(failures), int64(len(failures))+ok.Load(), failures[0])
	}
	if ok.Load() < 80 {
		t.Fatalf("only %d requests", ok.Load())
	}
	t.Logf("%d requests, none failed", ok.Load())

	// The holders now hold leaves of generation 2 alone.
	for _, c := range []*mtls.Credentials{shardCreds, edgeCreds} {
		b, _ := ca.Bundle(mtls.CAState{Issuing: 2, Trusted: []int{2}, Phase: mtls.PhaseFinish})
		if id, _ := mtls.BundleID(b); c.Bundle() != id {
			t.Fatalf("%s does not trust generation 2 alone", c.Self())
		}
	}
	// A leaf of the old CA is refused by the gateway now, while the edge
	// that renewed still gets through.
	dial := func(c *mtls.Credentials) error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), c.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: "s1"}, edge.ProtoHTTP))
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /big.bin HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		line := make([]byte, 12)
		if _, err := io.ReadFull(conn, line); err != nil {
			return err
		}
		if !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
			return errors.New("no HTTP answer")
		}
		return nil
	}
	if err := dial(stale); err == nil {
		t.Fatal("the gateway accepted a leaf of the old CA after finish")
	}
	if err := dial(edgeCreds); err != nil {
		t.Fatalf("the renewed edge: %v", err)
	}
}

// syncLog is a log destination safe for concurrent writers.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
