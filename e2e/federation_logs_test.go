package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// apiLogs reads GET /v1/sites/{domain}/logs with query q as the admin;
// it returns the status and the entries (or the error body).
func (p *platform) apiLogs(domain string, q url.Values) (int, []logEntryCursor, string) {
	p.t.Helper()
	var cfg struct{ URL, Token string }
	b, err := os.ReadFile(filepath.Join(p.dataDir, "client.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	json.Unmarshal(b, &cfg)
	req, _ := http.NewRequest("GET", cfg.URL+"/v1/sites/"+domain+"/logs?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []logEntryCursor
	if resp.StatusCode == 200 {
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			if line == "" {
				continue
			}
			var e logEntryCursor
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				p.t.Fatalf("logs line %q: %v", line, err)
			}
			out = append(out, e)
		}
	}
	return resp.StatusCode, out, string(body)
}

// logEntryCursor is a log entry with its site and cursor.
type logEntryCursor struct {
	logEntry
	Site   string `json:"site"`
	Cursor string `json:"cursor"`
}

func cpaths(list []logEntryCursor) string {
	var out []string
	for _, e := range list {
		out = append(out, e.Path)
	}
	return strings.Join(out, " ")
}

// TestFederationLogs: `aipress server`, a shard agent with a gateway and an
// edge that reaches it through that gateway, as separate processes, the
// edge serving its access logs (--logs-addr). The API and the CLI read a
// site's access log from the edge and its PHP log from the shard, through
// mutual TLS with the control plane's own certificate: filters, --since,
// --php, a follow that shows a new request, carries on across a restart of
// the edge (the CLI reconnects with the last cursor: nothing lost or
// repeated), and after= resumption on the merged cursors.
func TestFederationLogs(t *testing.T) {
	f := newFederationServer(t)
	f.edgeRemote = true
	logsAddr := freeAddr(t)
	f.edgeArgs = []string{"--logs-addr", logsAddr}
	f.startEdge(nil)

	gatewayAddr := freeAddr(t)
	_, httpPort, _ := strings.Cut(f.httpAddr, ":")
	f.token("shard", "r1")
	f.shards["r1"] = f.run("shard r1", append(f.purgeArgs(), "shard", "--name", "r1", "--capacity", "2",
		"--server", "http://"+f.apiAddr, "--token-file", filepath.Join(filepath.Dir(f.dataDir), "shard-r1.token"),
		"--data-dir", filepath.Join(filepath.Dir(f.dataDir), "agents", "r1"), "--public-port", httpPort,
		"--heartbeat-interval", "1s", "--transfer-url", "file://"+filepath.Join(f.dataDir, "transfers"),
		"--gateway-addr", gatewayAddr)...)
	f.waitShard("r1", "Ready", func(s shardJSON) bool { return s.Phase == "Ready" })

	const domain = "flogs.localhost"
	made := f.createSite(domain, "Federated Logs")
	if made.Shard != "r1" {
		t.Fatalf("site on %q, want r1", made.Shard)
	}
	vis := f.client(domain)
	vis.waitStatus("/", 200, 60*time.Second)
	docroot := f.docroot(domain)
	warn := plant(t, docroot, "warn.php", `<?php
$x = $aipress_undefined_variable;
error_log("aipress-federated-probe");
http_response_code(500);
echo "failed";
`)
	if code, _ := vis.get("/no-such-page-404/"); code != 404 {
		t.Fatalf("404 page: %d", code)
	}
	since := time.Now().UTC()
	if code, _ := vis.get(warn); code != 500 {
		t.Fatalf("warn.php: %d", code)
	}

	// The edge registers its logs address once it holds its certificate.
	var all []logEntryCursor
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, list, body := f.apiLogs(domain, url.Values{"limit": {"1000"}})
		if code == 200 && strings.Contains(cpaths(list), warn) {
			all = list
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log through the API: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, e := range all {
		// One edge: its name and its own cursor.
		if e.Site != domain || e.Kind != "access" || strings.Count(e.Cursor, "@") != 1 || strings.Contains(e.Cursor, ",") {
			t.Errorf("entry %+v", e)
		}
	}
	if got := paths(f.siteLogs(domain, "--status", "5xx")); strings.Join(got, " ") != warn {
		t.Errorf("--status 5xx: %v, want only %s", got, warn)
	}
	if got := paths(f.siteLogs(domain, "--status", "404")); strings.Join(got, " ") != "/no-such-page-404/" {
		t.Errorf("--status 404: %v", got)
	}
	if got := paths(f.siteLogs(domain, "--since", since.Format(time.RFC3339Nano))); strings.Join(got, " ") != warn {
		t.Errorf("--since: %v, want only %s", got, warn)
	}
	var warned, logged bool
	for _, e := range f.siteLogs(domain, "--php") {
		warned = warned || (e.Level == "warning" && strings.Contains(e.Message, "aipress_undefined_variable"))
		logged = logged || (e.Level == "log" && e.Message == "aipress-federated-probe")
	}
	if !warned || !logged {
		t.Errorf("PHP log through the shard's gateway lacks the probe's warning or error_log line")
	}
	// after= on the merged cursor: right after the 404's entry.
	var nf logEntryCursor
	for _, e := range all {
		if e.Path == "/no-such-page-404/" {
			nf = e
		}
	}
	if code, list, body := f.apiLogs(domain, url.Values{"after": {nf.Cursor}}); code != 200 || !strings.HasSuffix(cpaths(list), warn) ||
		strings.Contains(cpaths(list), "/no-such-page-404/") {
		t.Errorf("after the 404's cursor %s: %d %s %s", nf.Cursor, code, cpaths(list), body)
	}
	for _, bad := range []string{"e1@x", "123:456", "nobody@1:2,nobody@1:3"} {
		if code, _, body := f.apiLogs(domain, url.Values{"after": {bad}}); code != 400 {
			t.Errorf("after=%s: %d %s", bad, code, body)
		}
	}
	// PHP cursors are the shard's own: after= the warning's shows the
	// error_log line only.
	code, php, body := f.apiLogs(domain, url.Values{"kind": {"php"}})
	if code != 200 || len(php) < 2 {
		t.Fatalf("PHP log: %d %s", code, body)
	}
	if code, list, body := f.apiLogs(domain, url.Values{"kind": {"php"}, "after": {php[len(php)-2].Cursor}}); code != 200 || len(list) != 1 ||
		list[0].Message != php[len(php)-1].Message {
		t.Errorf("PHP after=: %d %+v %s", code, list, body)
	}

	// Follow: a new request arrives; the edge restarts (the stream breaks,
	// the CLI reconnects after its last entry); a request after it arrives
	// once, and nothing is repeated.
	fl := followLogs(t, f.dataDir, domain)
	seen, waitFor := fl.seen, fl.waitFor
	waitFor("/no-such-page-404/")
	if code, _ := vis.get("/follow-one/"); code != 404 {
		t.Fatalf("follow-one: %d", code)
	}
	vis.get(warn) // a 500: not followed
	waitFor("/follow-one/")
	f.edge.stop()
	f.edge.start()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", f.httpAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge did not come back:\n%s", f.edge.log)
		}
	}
	vis.waitStatus("/", 200, time.Minute)
	if code, _ := vis.get("/follow-two/"); code != 404 {
		t.Fatalf("follow-two: %d", code)
	}
	waitFor("/follow-two/")
	for _, pth := range []string{"/no-such-page-404/", "/follow-one/", "/follow-two/"} {
		if seen[pth] != 1 {
			t.Errorf("%s followed %d times, want once (seen %v)", pth, seen[pth], seen)
		}
	}
	if e := fl.stderr(); !strings.Contains(e, "reconnecting") {
		t.Errorf("the follow did not say it reconnected: %q", e)
	}
}
