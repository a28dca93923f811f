package e2e

import (
	"bytes"
	"context"
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
)

// freePortRange finds n consecutive loopback ports nothing listens on.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for base := 30000 + os.Getpid()%10000; base < 60000; base += n {
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestRemoteEdge runs a shard whose pools listen on TCP and which serves
// static files over HTTP, and an edge as another user (nobody) in another
// working directory, which cannot read the shard's docroots: PHP pages,
// try_files' fallbacks and static files (core CSS and a fresh upload) all
// reach visitors through the edge, so they came over the network.
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

	ports := freePortRange(t, 10)
	staticAddr := freeAddr(t)
	agentDir := filepath.Join(filepath.Dir(f.dataDir), "agents", "r1")
	_, httpPort, _ := strings.Cut(f.httpAddr, ":")
	f.token("shard", "r1")
	f.shards["r1"] = f.run("shard r1", append(f.purgeArgs(), "shard", "--name", "r1", "--capacity", "2",
		"--server", "http://"+f.apiAddr, "--token-file", filepath.Join(filepath.Dir(f.dataDir), "shard-r1.token"),
		"--data-dir", agentDir, "--public-port", httpPort, "--heartbeat-interval", "1s",
		"--transfer-url", "file://"+filepath.Join(f.dataDir, "transfers"),
		"--pool-listen", "127.0.0.1", "--pool-ports", fmt.Sprintf("%d-%d", ports, ports+9),
		"--static-addr", staticAddr)...)
	f.waitShard("r1", "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })

	const domain = "remote.localhost"
	made := f.createSite(domain, "Remote Edge Site")
	if made.Status != "Ready" || made.Shard != "r1" {
		t.Fatalf("site: %+v", made)
	}
	sj := f.siteJSON(domain)
	endpoint, staticURL, docroot := field(sj, "status", "endpoint"), field(sj, "status", "static_url"), field(sj, "status", "docroot")
	port, err := strconv.Atoi(strings.TrimPrefix(endpoint, "tcp:127.0.0.1:"))
	if err != nil || port < ports || port > ports+9 {
		t.Fatalf("endpoint %q, want tcp:127.0.0.1:%d-%d", endpoint, ports, ports+9)
	}
	if staticURL != "http://"+staticAddr {
		t.Fatalf("static_url %q, want http://%s", staticURL, staticAddr)
	}
	// The edge's user cannot even enter the site's directory.
	if fi, err := os.Stat(filepath.Dir(docroot)); err != nil || fi.Mode().Perm()&0o005 != 0 ||
		fi.Sys().(*syscall.Stat_t).Uid == uint32(uid) || fi.Sys().(*syscall.Stat_t).Gid == uint32(gid) {
		t.Fatalf("site dir %s: %v %v: readable by nobody", filepath.Dir(docroot), fi.Mode(), err)
	}
	poolFiles, _ := filepath.Glob(filepath.Join(agentDir, "php", "pool.d", "*.conf"))
	if len(poolFiles) != 1 {
		t.Fatalf("pool files %v", poolFiles)
	}
	if conf, _ := os.ReadFile(poolFiles[0]); !strings.Contains(string(conf), fmt.Sprintf("listen = 127.0.0.1:%d\n", port)) ||
		!strings.Contains(string(conf), "listen.allowed_clients = 127.0.0.1,::1\n") {
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

	// Only allowed clients reach the static server: 127.0.0.2 is not one.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) }}}
	req, _ := http.NewRequest("GET", staticURL+"/wp-includes/css/dashicons.min.css", nil)
	req.Host = domain
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || bytes.Contains(b, coreCSS[:20]) {
			t.Errorf("static server from 127.0.0.2: %d", resp.StatusCode)
		}
	}

	// Deleting the site frees its port.
	if out, err := f.cli("site", "delete", domain, "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(agentDir, "pool-ports.json")); err != nil || strings.Contains(string(b), strconv.Itoa(port)) {
		t.Errorf("pool-ports.json after delete: %v %s", err, b)
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
