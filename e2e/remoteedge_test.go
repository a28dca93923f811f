package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/mtls"
)

// TestRemoteEdge runs a shard with a gateway (mutual TLS) and an edge as
// another user (nobody) in another working directory, which cannot read the
// shard's docroots nor connect to its pools' sockets: PHP pages, try_files'
// fallbacks and static files (core CSS and a fresh upload) all reach
// visitors through the edge, so they came through the gateway. Without the
// platform's edge certificate, nothing passes the gateway.
func TestRemoteEdge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the edge runs as nobody")
	}
	nob, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nob.Uid)
	gid, _ := strconv.Atoi(nob.Gid)
	f := newFederationServer(t)
	cwd := filepath.Join(filepath.Dir(f.dataDir), "edge-cwd")
	if err := os.Mkdir(cwd, 0o700); err != nil {
		t.Fatal(err)
	}
	f.startEdge(&edgeUser{uid: uint32(uid), gid: uint32(gid), dir: cwd})
	if st := procStatus(t, f.edge.cmd.Process.Pid); !strings.Contains(st, "\nUid:\t"+nob.Uid+"\t") {
		t.Fatalf("the edge does not run as nobody:\n%s", st)
	}

	gatewayAddr := freeAddr(t)
	agentDir := filepath.Join(filepath.Dir(f.dataDir), "agents", "r1")
	_, httpPort, _ := strings.Cut(f.httpAddr, ":")
	f.token("shard", "r1")
	f.shards["r1"] = f.run("shard r1", append(f.purgeArgs(), "shard", "--name", "r1", "--capacity", "2",
		"--server", "http://"+f.apiAddr, "--token-file", filepath.Join(filepath.Dir(f.dataDir), "shard-r1.token"),
		"--data-dir", agentDir, "--public-port", httpPort, "--heartbeat-interval", "1s",
		"--transfer-url", "file://"+filepath.Join(f.dataDir, "transfers"),
		"--gateway-addr", gatewayAddr)...)
	f.waitShard("r1", "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })
	out, err := f.cli("shard", "get", "r1", "-o", "json")
	if err != nil || !strings.Contains(out, `"gateway": "`+gatewayAddr+`"`) || !strings.Contains(out, `"dir": "`+agentDir+`"`) {
		t.Fatalf("shard r1's registration: %v\n%s", err, out)
	}

	const domain = "remote.localhost"
	made := f.createSite(domain, "Remote Edge Site")
	if made.Status != "Ready" || made.Shard != "r1" {
		t.Fatalf("site: %+v", made)
	}
	sj := f.siteJSON(domain)
	endpoint, docroot := field(sj, "status", "endpoint"), field(sj, "status", "docroot")
	// The edge's user cannot even enter the site's directory.
	if fi, err := os.Stat(filepath.Dir(docroot)); err != nil || fi.Mode().Perm()&0o005 != 0 ||
		fi.Sys().(*syscall.Stat_t).Uid == uint32(uid) || fi.Sys().(*syscall.Stat_t).Gid == uint32(gid) {
		t.Fatalf("site dir %s: %v %v: readable by nobody", filepath.Dir(docroot), fi.Mode(), err)
	}
	// The pool is a root-owned 0600 Unix socket, nothing on TCP.
	sock, ok := strings.CutPrefix(endpoint, "unix:")
	if !ok || !strings.HasPrefix(sock, agentDir+"/php/run/") {
		t.Fatalf("endpoint %q", endpoint)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("pool socket %s: %v %v", sock, fi.Mode(), err)
	}
	poolFiles, _ := filepath.Glob(filepath.Join(agentDir, "php", "pool.d", "*.conf"))
	if len(poolFiles) != 1 {
		t.Fatalf("pool files %v", poolFiles)
	}
	if conf, _ := os.ReadFile(poolFiles[0]); !strings.Contains(string(conf), "listen = \""+sock+"\"\nlisten.mode = 0600\n") {
		t.Fatalf("pool config:\n%s", conf)
	}

	// PHP over TCP.
	vis := f.client(domain)
	if body := vis.waitStatus("/", 200, 30*time.Second); !strings.Contains(body, "Remote Edge Site") {
		t.Fatalf("front page: %.300s", body)
	}
	// A core stylesheet from the shard's static server, whole and in part.
	coreCSS, err := os.ReadFile("/usr/share/wordpress/wp-includes/css/dashicons.min.css")
	if err != nil {
		t.Fatal(err)
	}
	code, hdr, body := vis.do("GET", "/wp-includes/css/dashicons.min.css", nil)
	if code != 200 || body != string(coreCSS) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/css") {
		t.Fatalf("dashicons.min.css: %d %q, %d bytes (want %d)", code, hdr.Get("Content-Type"), len(body), len(coreCSS))
	}
	code, _, body = vis.doRaw("GET", "/wp-includes/css/dashicons.min.css", http.Header{"Range": {"bytes=0-9"}}, nil)
	if code != 206 || body != string(coreCSS[:10]) {
		t.Fatalf("range: %d %q", code, body)
	}
	code, _, _ = vis.doRaw("GET", "/wp-includes/css/dashicons.min.css", http.Header{"If-Modified-Since": {hdr.Get("Last-Modified")}}, nil)
	if code != 304 {
		t.Fatalf("If-Modified-Since: %d", code)
	}
	// try_files: a directory without its slash, a directory's index.php, a
	// missing page and a missing upload (WordPress's 404 page, from PHP).
	if code, hdr, _ := vis.do("GET", "/wp-admin", nil); code != 301 || hdr.Get("Location") != "/wp-admin/" {
		t.Errorf("/wp-admin: %d %q", code, hdr.Get("Location"))
	}
	if code, hdr, _ := vis.do("GET", "/wp-admin/", nil); code != 302 || !strings.Contains(hdr.Get("Location"), "wp-login.php") {
		t.Errorf("/wp-admin/: %d %q", code, hdr.Get("Location"))
	}
	for _, p := range []string{"/no-such-page/", "/wp-content/uploads/nope.jpg"} {
		if code, body := vis.get(p); code != 404 || !strings.Contains(body, "Remote Edge Site") {
			t.Errorf("%s: %d, want WordPress's 404 page: %.200s", p, code, body)
		}
	}
	// Never served: PHP source, dot-files.
	if code, body := vis.get("/wp-config.php"); strings.Contains(body, "DB_PASSWORD") || strings.Contains(body, "<?php") {
		t.Errorf("/wp-config.php: %d leaks source", code)
	}
	if code, _ := vis.get("/.htaccess"); code != 404 {
		t.Errorf("/.htaccess: %d", code)
	}

	// An upload made through PHP on the shard is served by the edge.
	admin := login(t, f.platform, domain, made)
	code, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code != 200 {
		t.Fatalf("rest-nonce = %d", code)
	}
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(int(time.Now().UnixNano()%8), 3, color.RGBA{10, 200, 30, 255})
	var png1 bytes.Buffer
	png.Encode(&png1, img)
	content := png1.Bytes()
	code, _, body = admin.doRaw("POST", "/wp-json/wp/v2/media", http.Header{
		"X-Wp-Nonce": {nonce}, "Content-Type": {"image/png"},
		"Content-Disposition": {"attachment; filename=remote-edge.png"},
	}, content)
	if code != 201 {
		t.Fatalf("upload = %d %.300s", code, body)
	}
	var media struct {
		SourceURL string `json:"source_url"`
	}
	if err := json.Unmarshal([]byte(body), &media); err != nil || !strings.Contains(media.SourceURL, "/wp-content/uploads/") {
		t.Fatalf("upload answer: %v %.300s", err, body)
	}
	upath := media.SourceURL[strings.Index(media.SourceURL, "/wp-content/uploads/"):]
	if code, hdr, got := vis.do("GET", upath, nil); code != 200 || got != string(content) || hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("upload %s through the edge: %d %q, %d bytes (want %d)", upath, code, hdr.Get("Content-Type"), len(got), len(content))
	}

	// Nothing passes the gateway without the platform's edge certificate:
	// not a TLS client without one (static files or FastCGI), not one with
	// a certificate of another CA, not plain TCP.
	for _, proto := range []string{"http/1.1", "aipress-fcgi/1"} {
		c, err := tls.Dial("tcp", gatewayAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET /wp-includes/css/dashicons.min.css HTTP/1.1\r\nHost: "+domain+"\r\n\r\n")
			b, _ := io.ReadAll(c)
			c.Close()
			if bytes.Contains(b, coreCSS[:20]) || bytes.HasPrefix(b, []byte("ok")) || bytes.Contains(b, []byte("200 OK")) {
				t.Errorf("%s without a client certificate: %q", proto, b)
			}
		}
	}
	strangerCA, err := mtls.NewAuthority(bytes.Repeat([]byte{42}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := mtls.LoadCredentials(t.TempDir(), mtls.Identity{Role: mtls.RoleEdge, Name: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.Renew(context.Background(), func(_ context.Context, csr []byte) ([]byte, []byte, error) {
		cert, _, err := strangerCA.Issue(csr, stranger.Self(), 0)
		return cert, strangerCA.CertPEM(), err
	}); err != nil {
		t.Fatal(err)
	}
	// It does not accept r1's certificate either (another CA): skip that
	// check and offer its certificate to the gateway.
	cfg := stranger.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: "r1"}, "http/1.1")
	cfg.VerifyConnection = nil
	if c, err := tls.Dial("tcp", gatewayAddr, cfg); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /wp-includes/css/dashicons.min.css HTTP/1.1\r\nHost: "+domain+"\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if bytes.Contains(b, coreCSS[:20]) {
			t.Error("a certificate of another CA read a static file through the gateway")
		}
	}
	if c, err := net.Dial("tcp", gatewayAddr); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, domain+"\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if bytes.HasPrefix(b, []byte("ok")) {
			t.Error("plain TCP reached the FastCGI relay")
		}
	}
	// The gateway's and the edge's certificates were issued by the control
	// plane and are root's (the edge's: its user's) alone.
	for _, p := range []string{filepath.Join(agentDir, "gateway-tls", "key.pem"), filepath.Join(filepath.Dir(f.dataDir), "edge", "mesh-tls", "cert.pem")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}

	if out, err := f.cli("site", "delete", domain, "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
}

func procStatus(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
