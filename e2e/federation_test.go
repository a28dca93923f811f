package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// proc is one background aipress process of a federation (server, shard
// agent or edge).
type proc struct {
	t      *testing.T
	name   string
	args   []string
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
	// dir and cred, if set, are the working directory and the user the
	// process runs with; bin, if set, replaces binPath.
	dir  string
	cred *syscall.Credential
	bin  string
}

func (p *proc) start() {
	p.t.Helper()
	p.log = &logBuffer{}
	bin := binPath
	if p.bin != "" {
		bin = p.bin
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Dir = p.dir
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
}

func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// federation is `aipress server`, shard agents and an edge as separate
// processes. Its platform value drives the CLI (client.json in the server's
// data dir) and the edge (httpAddr).
type federation struct {
	*platform
	server *proc
	edge   *proc
	shards map[string]*proc
	procs  []*proc
	// edgeArgs are appended to `aipress edge` (e.g. --metrics ADDR).
	edgeArgs []string
	// edgeRemote: the edge reads no shard's files, even as root; it reaches
	// every shard through its gateway.
	edgeRemote bool
}

func (f *federation) run(name string, args ...string) *proc {
	p := &proc{t: f.t, name: name, args: args}
	p.start()
	f.procs = append(f.procs, p)
	return p
}

// token issues a token with the CLI (`aipress shard|edge token create`) and
// writes it to a file for the process that uses it.
func (f *federation) token(kind, name string) string {
	f.t.Helper()
	out, err := f.cli(kind, "token", "create", name, "-o", "json")
	if err != nil {
		f.t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "aip_") {
		f.t.Fatalf("%s token create: %v\n%s", kind, err, out)
	}
	path := filepath.Join(filepath.Dir(f.dataDir), kind+"-"+name+".token")
	if err := os.WriteFile(path, []byte(tok.Token+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// purgeArgs wire a shard's WordPress purges to the federation's edge.
func (f *federation) purgeArgs() []string {
	return []string{"--purge-url", "http://" + f.httpAddr + "/.aipress/purge",
		"--purge-secret-file", filepath.Join(filepath.Dir(f.dataDir), "edge", "purge-secret")}
}

func (f *federation) startShard(name string) {
	f.t.Helper()
	_, port, _ := strings.Cut(f.httpAddr, ":")
	f.shards[name] = f.run("shard "+name, append(f.purgeArgs(), "shard", "--name", name, "--capacity", "2",
		"--server", "http://"+f.apiAddr, "--token-file", filepath.Join(filepath.Dir(f.dataDir), "shard-"+name+".token"),
		"--data-dir", filepath.Join(filepath.Dir(f.dataDir), "agents", name), "--public-port", port,
		"--heartbeat-interval", "1s", "--usage-interval", "2s", "--transfer-url", "file://"+filepath.Join(f.dataDir, "transfers"))...)
}

type shardJSON struct {
	Name     string `json:"name"`
	Phase    string `json:"phase"`
	Capacity int    `json:"capacity"`
	Draining bool   `json:"draining"`
	Cordoned bool   `json:"cordoned"`
}

func (f *federation) shardList() map[string]shardJSON {
	f.t.Helper()
	out, err := f.cli("shard", "list", "-o", "json")
	if err != nil {
		f.t.Fatal(err)
	}
	var list struct {
		Items []shardJSON `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		f.t.Fatalf("shard list: %v\n%s", err, out)
	}
	m := map[string]shardJSON{}
	for _, s := range list.Items {
		m[s.Name] = s
	}
	return m
}

// waitShard polls `shard list` until cond holds for the named shard.
func (f *federation) waitShard(name, what string, cond func(shardJSON) bool) {
	f.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last shardJSON
	for time.Now().Before(deadline) {
		if s, ok := f.shardList()[name]; ok {
			if last = s; cond(s) {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.t.Fatalf("shard %s: not %s in 90s: %+v", name, what, last)
}

func (f *federation) logs() string {
	var b strings.Builder
	for _, p := range f.procs {
		fmt.Fprintf(&b, "---- %s\n%s\n", p.name, p.log)
	}
	return b.String()
}

func newFederation(t *testing.T) *federation {
	t.Helper()
	f := newFederationServer(t)
	f.startEdge(nil)
	for _, n := range []string{"s1", "s2", "s3"} {
		f.token("shard", n)
		f.startShard(n)
	}
	for _, n := range []string{"s1", "s2", "s3"} {
		f.waitShard(n, "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })
	}
	return f
}

// newFederationServer starts `aipress server` alone (shards of capacity 2).
func newFederationServer(t *testing.T) *federation {
	t.Helper()
	p := newPlatform(t)
	f := &federation{platform: p, shards: map[string]*proc{}}
	_, port, _ := strings.Cut(p.httpAddr, ":")
	t.Cleanup(func() {
		for i := len(f.procs) - 1; i >= 0; i-- {
			f.procs[i].stop()
		}
		if t.Failed() {
			t.Logf("federation logs:\n%s", f.logs())
		}
	})
	f.server = f.run("server", append([]string{"server", "--data-dir", p.dataDir, "--api", p.apiAddr,
		"--public-port", port, "--shard-capacity", "2", "--heartbeat-timeout", "3s"}, f.purgeArgs()...)...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(p.dataDir, "client.json")); err == nil {
			if _, err := p.cli("shard", "list"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("aipress server did not come up:\n%s", f.server.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f
}

// startEdge starts `aipress edge` (before the shards: it creates the purge
// secret they read) and waits for it; as is nil or the user (and working
// directory) it runs as. A local edge (as == nil) serves the server's local
// shards and the test's shard agents from their directories on this
// machine; another one reaches every shard through its gateway.
func (f *federation) startEdge(as *edgeUser) {
	f.t.Helper()
	edgeDir := filepath.Join(filepath.Dir(f.dataDir), "edge")
	edgeToken := f.token("edge", "e1")
	p := &proc{t: f.t, name: "edge", args: []string{"edge", "--server", "http://" + f.apiAddr, "--token-file", edgeToken,
		"--http", f.httpAddr, "--data-dir", edgeDir}}
	p.args = append(p.args, f.edgeArgs...)
	if as == nil && !f.edgeRemote {
		p.args = append(p.args, "--local-shards-dir", filepath.Join(f.dataDir, "shards"),
			"--local-shards-dir", filepath.Join(filepath.Dir(f.dataDir), "agents"))
	}
	if as != nil {
		p.dir, p.cred = as.dir, &syscall.Credential{Uid: as.uid, Gid: as.gid}
		for _, path := range []string{edgeToken, as.dir} {
			if err := os.Chown(path, int(as.uid), int(as.gid)); err != nil {
				f.t.Fatal(err)
			}
		}
		if err := os.MkdirAll(edgeDir, 0o700); err != nil {
			f.t.Fatal(err)
		}
		if err := os.Chown(edgeDir, int(as.uid), int(as.gid)); err != nil {
			f.t.Fatal(err)
		}
		// The test binary's directory is root's alone.
		b, err := os.ReadFile(binPath)
		if err != nil {
			f.t.Fatal(err)
		}
		p.bin = filepath.Join(as.dir, "aipress")
		if err := os.WriteFile(p.bin, b, 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	p.start()
	f.procs = append(f.procs, p)
	f.edge = p
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(edgeDir, "purge-secret")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the edge did not start:\n%s", f.edge.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// edgeUser is an unprivileged user and working directory for the edge.
type edgeUser struct {
	uid, gid uint32
	dir      string
}

// TestFederation runs the control plane, three shard agents (capacity 2)
// and an edge as separate processes: six sites fill the shards and a
// seventh makes the server start a new local shard; a shard agent killed
// with SIGKILL turns its sites into 503s (and only its sites) until it
// returns; a site moves to another shard with its content and admin login,
// answering reads throughout; a drained shard is emptied.
func TestFederation(t *testing.T) {
	f := newFederation(t)

	// Six sites fill three shards of two.
	domains := []string{"f1.localhost", "f2.localhost", "f3.localhost", "f4.localhost", "f5.localhost", "f6.localhost"}
	made := map[string]created{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := f.createSite(d, "Fed "+d)
			mu.Lock()
			made[d] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	perShard := map[string][]string{}
	for _, d := range domains {
		c := made[d]
		if c.Status != "Ready" || c.Shard == "" {
			t.Fatalf("%s: status %q shard %q", d, c.Status, c.Shard)
		}
		perShard[c.Shard] = append(perShard[c.Shard], d)
		f.client(d).waitStatus("/", 200, 30*time.Second)
	}
	for _, n := range []string{"s1", "s2", "s3"} {
		if len(perShard[n]) != 2 {
			t.Fatalf("sites per shard = %v, want 2 on each of s1, s2, s3", perShard)
		}
	}

	// Agents report usage with their heartbeats: memory of their servers.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := f.cli("shard", "get", "s1", "-o", "json")
		var got struct {
			Usage struct {
				Sites       int   `json:"sites"`
				MemoryBytes int64 `json:"memory_bytes"`
			} `json:"usage"`
		}
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("shard get s1: %v\n%s", err, out)
		}
		if got.Usage.Sites == 2 && got.Usage.MemoryBytes > 10<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s1's reported usage: %s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Agents report their sites' usage (over POST /v1/agent/usage): the
	// hourly records of s1's sites get database and file bytes from s1.
	for _, d := range perShard["s1"] {
		// (Files measured as the site was created read 0 and are walked
		// again a minute later.)
		for deadline := time.Now().Add(150 * time.Second); ; {
			code, m := f.apiGet("/v1/usage?period=hour&site=" + d)
			if code != 200 {
				t.Fatalf("usage of %s: %d %v", d, code, m)
			}
			var dbBytes, filesBytes float64
			for _, it := range m["items"].([]any) {
				if r := it.(map[string]any); r["shard"] == "s1" {
					dbBytes, filesBytes = r["db_bytes"].(float64), r["files_bytes"].(float64)
				}
			}
			if dbBytes > 0 && filesBytes > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("usage of %s from its shard s1: %v", d, m["items"])
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// The seventh needs a new shard: the server's local provider starts one.
	seventh := f.createSite("f7.localhost", "Fed seven")
	if seventh.Shard == "" || strings.HasPrefix(seventh.Shard, "s") {
		t.Fatalf("7th site on %q, want a new local shard", seventh.Shard)
	}
	if body := f.client("f7.localhost").waitStatus("/", 200, 30*time.Second); !strings.Contains(body, "Fed seven") {
		t.Fatalf("7th site's front page: %.300s", body)
	}
	newShard := seventh.Shard
	// (The shard turns Ready at the control plane's first heartbeat from
	// its agent, which may come after the agent served the site.)
	f.waitShard(newShard, "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })
	if s := f.shardList()[newShard]; s.Capacity != 2 {
		t.Fatalf("new shard %s = %+v, want capacity 2", newShard, s)
	}

	// kill -9 one agent: its sites answer 503 with Retry-After, the others
	// keep serving; the shard and its sites say so; a restart heals it.
	victim := f.shards["s1"]
	victim.kill9()
	f.waitShard("s1", "Unhealthy", func(s shardJSON) bool { return s.Phase == "Unhealthy" })
	for _, d := range perShard["s1"] {
		code, hdr, body := f.client(d).do("GET", "/", nil)
		if code != 503 || hdr.Get("Retry-After") == "" || strings.Contains(body, "Fed ") {
			t.Fatalf("%s with its shard down: %d Retry-After %q\n%.300s", d, code, hdr.Get("Retry-After"), body)
		}
		if !strings.Contains(string(mustJSON(t, f.siteJSON(d))), "ShardUnhealthy") {
			t.Errorf("%s's status does not show its shard is unhealthy: %v", d, f.siteJSON(d))
		}
	}
	for _, d := range append(perShard["s2"], perShard["s3"]...) {
		if code, _ := f.client(d).get("/"); code != 200 {
			t.Fatalf("%s on a healthy shard = %d while s1 is down", d, code)
		}
	}
	f.startShard("s1")
	f.waitShard("s1", "Ready again", func(s shardJSON) bool { return s.Phase == "Ready" })
	for _, d := range perShard["s1"] {
		f.client(d).waitStatus("/", 200, 60*time.Second)
	}

	// Move a site with content to the new shard (it has room for one).
	mover := perShard["s2"][0]
	admin := login(t, f.platform, mover, made[mover])
	code, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code != 200 {
		t.Fatalf("rest-nonce = %d", code)
	}
	title := fmt.Sprintf("Moved with care %d", time.Now().UnixNano())
	if code, body := admin.doJSON("POST", "/wp-json/wp/v2/posts", nonce, map[string]any{"title": title, "content": "Still here.", "status": "publish"}); code != 201 {
		t.Fatalf("publish before the move = %d %.300s", code, body)
	}
	// Readers poll the site during the move: every answer must be what
	// WordPress answers (200, or 301 to a post's permalink, 404 for an ID
	// that is no post), never an error.
	var reads, bad atomic.Int64
	var badCodes sync.Map
	ctx, stopReading := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/?p=%d", f.httpAddr, i%50), nil)
			req.Host = mover
			resp, err := c.Do(req)
			reads.Add(1)
			if err != nil {
				bad.Add(1)
				badCodes.Store(err.Error(), true)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 && resp.StatusCode != 301 && resp.StatusCode != 404 {
				bad.Add(1)
				badCodes.Store(resp.StatusCode, true)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, err := f.cli("site", "move", mover, "--to", newShard, "--wait-cleanup", "-o", "json")
	stopReading()
	<-readerDone
	if err != nil {
		t.Fatalf("site move: %v\n%s", err, out)
	}
	var mv struct {
		Phase         string `json:"phase"`
		Source        string `json:"source"`
		Target        string `json:"target"`
		FreezeStarted string `json:"freeze_started"`
		Switched      string `json:"switched"`
	}
	if err := json.Unmarshal([]byte(out), &mv); err != nil || mv.Phase != "Done" || mv.Source != "s2" || mv.Target != newShard {
		t.Fatalf("move result: %v\n%s", err, out)
	}
	fs, _ := time.Parse(time.RFC3339Nano, mv.FreezeStarted)
	sw, _ := time.Parse(time.RFC3339Nano, mv.Switched)
	t.Logf("move %s s2→%s: write freeze %v; %d reads during the move, %d not 200", mover, newShard, sw.Sub(fs), reads.Load(), bad.Load())
	if bad.Load() > 0 {
		var codes []string
		badCodes.Range(func(k, _ any) bool { codes = append(codes, fmt.Sprint(k)); return true })
		t.Errorf("%d of %d reads during the move failed: %v", bad.Load(), reads.Load(), codes)
	}
	if got := field(f.siteJSON(mover), "status", "shard"); got != newShard {
		t.Fatalf("after the move the site is on %q", got)
	}
	if body := f.client(mover).waitStatus("/", 200, 30*time.Second); !strings.Contains(body, title) {
		t.Fatalf("front page after the move lacks the post %q", title)
	}
	login(t, f.platform, mover, made[mover]) // the admin can still log in, on the target
	if code, body := admin.get("/wp-admin/"); code != 200 || !strings.Contains(body, "Dashboard") {
		t.Errorf("the session from before the move: /wp-admin/ = %d", code)
	}

	// Drain s3: delete a site on s1 first so its two sites have somewhere
	// to go (s2 has one free slot after the move, s1 one after the delete).
	if out, err := f.cli("site", "delete", perShard["s1"][0], "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, err := f.cli("shard", "drain", "s3"); err != nil {
		t.Fatalf("shard drain: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(120 * time.Second); ; {
		out, err := f.cli("shard", "get", "s3", "-o", "json")
		var got struct {
			Sites *int `json:"sites"`
		}
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Sites == nil {
			t.Fatalf("shard get s3: %v\n%s", err, out)
		}
		if *got.Sites == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3 still holds %d sites 120s after the drain", *got.Sites)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, d := range perShard["s3"] {
		if got := field(f.siteJSON(d), "status", "shard"); got == "s3" || got == "" {
			t.Errorf("%s still on %q after the drain", d, got)
		}
		if body := f.client(d).waitStatus("/", 200, 30*time.Second); !strings.Contains(body, "Fed "+d) {
			t.Errorf("%s after the drain: %.200s", d, body)
		}
	}
	if s := f.shardList()["s3"]; !s.Draining || !s.Cordoned {
		t.Errorf("drained shard = %+v", s)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
