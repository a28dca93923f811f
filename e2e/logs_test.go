package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logEntry is a line of `aipress site logs -o json`.
type logEntry struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
	Cache      string    `json:"cache"`
	ClientIP   string    `json:"client_ip"`
	RequestID  string    `json:"request_id"`
	Level      string    `json:"level"`
	Message    string    `json:"message"`
}

func (p *platform) siteLogs(args ...string) []logEntry {
	p.t.Helper()
	out, err := p.cli(append([]string{"site", "logs"}, append(args, "-o", "json")...)...)
	if err != nil {
		p.t.Fatal(err)
	}
	var list []logEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e logEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			p.t.Fatalf("site logs line %q: %v", line, err)
		}
		list = append(list, e)
	}
	return list
}

func paths(list []logEntry) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Path)
	}
	return out
}

// A real WordPress site's access log (from the edge) and PHP error log
// (from its pool), filtered by status, time and kind, followed across a
// restart of the platform (the CLI reconnects and repeats nothing), the PHP
// log rotated when a site floods it, and no site's PHP reading another's.
func testLogs(t *testing.T, p *platform) {
	const domain = "logs.localhost"
	p.createSite(domain, "Logs")
	docroot := p.docroot(domain)
	vis := p.client(domain)
	vis.waitStatus("/", 200, 30*time.Second)
	warn := plant(t, docroot, "warn.php", `<?php
$x = $aipress_undefined_variable;
error_log("aipress-log-probe");
http_response_code(500);
echo "failed";
`)
	code, hdr, _ := vis.do("GET", "/no-such-page-404/", nil)
	if code != 404 {
		t.Fatalf("404 page: %d", code)
	}
	notFoundID := hdr.Get("X-Request-Id")
	since := time.Now().UTC()
	if code, _ := vis.get(warn); code != 500 {
		t.Fatalf("warn.php: %d", code)
	}

	all := p.siteLogs(domain, "--limit", "1000")
	if len(all) < 3 {
		t.Fatalf("access log: %+v", all)
	}
	var nf logEntry
	for _, e := range all {
		if e.RequestID == notFoundID {
			nf = e
		}
	}
	if nf.Path != "/no-such-page-404/" || nf.Status != 404 || nf.Method != "GET" || nf.ClientIP != "127.0.0.1" ||
		nf.Bytes == 0 || nf.DurationMS <= 0 || nf.Kind != "access" {
		t.Errorf("the 404's entry (request id %s): %+v", notFoundID, nf)
	}
	if got := paths(p.siteLogs(domain, "--status", "5xx")); strings.Join(got, " ") != warn {
		t.Errorf("--status 5xx: %v, want only %s", got, warn)
	}
	if got := paths(p.siteLogs(domain, "--status", "404")); strings.Join(got, " ") != "/no-such-page-404/" {
		t.Errorf("--status 404: %v", got)
	}
	if got := paths(p.siteLogs(domain, "--since", since.Format(time.RFC3339Nano))); strings.Join(got, " ") != warn {
		t.Errorf("--since %s: %v, want only %s", since.Format(time.RFC3339Nano), got, warn)
	}
	phpLog := p.siteLogs(domain, "--php")
	var warned, logged bool
	for _, e := range phpLog {
		warned = warned || (e.Level == "warning" && strings.Contains(e.Message, "aipress_undefined_variable"))
		logged = logged || (e.Level == "log" && e.Message == "aipress-log-probe")
	}
	if !warned || !logged {
		t.Errorf("PHP log lacks the probe's warning or error_log line: %+v", phpLog)
	}
	if out, err := p.cli("site", "logs", domain, "--php", "--status", "5xx"); err == nil {
		t.Errorf("--php --status accepted: %s", out)
	}
	if out, err := p.cli("site", "logs", "nobody.localhost"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("logs of no site: %v %s", err, out)
	}

	// No site's PHP reads another site's logs, nor the edge's.
	const otherDomain = "logs-other.localhost"
	p.createSite(otherDomain, "Other")
	other := p.docroot(otherDomain)
	otherVis := p.client(otherDomain)
	otherVis.waitStatus("/", 200, 30*time.Second)
	if code, _ := otherVis.get(plant(t, other, "warn.php", "<?php error_log('other-site-secret'); echo 'ok';")); code != 200 {
		t.Fatalf("other site's probe: %d", code)
	}
	// Reading a log through the API writes what the edge buffers: the
	// probe is there at once, and so is the file.
	if got := paths(p.siteLogs(otherDomain)); len(got) == 0 || got[len(got)-1] != "/warn.php" {
		t.Fatalf("the other site's access log right after its probe: %v", got)
	}
	otherPHP := filepath.Join(filepath.Dir(other), "logs", "php-error.log")
	otherAccess := filepath.Join(p.dataDir, "logs", "access", otherDomain, "access.log")
	for _, f := range []string{otherPHP, otherAccess} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the other site's log: %v", err)
		}
	}
	peek := plant(t, docroot, "peek.php", `<?php
foreach (['`+otherAccess+`', '`+otherPHP+`', '`+filepath.Join(p.dataDir, "logs", "access")+`'] as $f) {
	if (@file_get_contents($f) !== false || @scandir($f) !== false) { echo "READ $f\n"; }
}
echo "done";
`)
	if code, body := vis.get(peek); code != 200 || strings.Contains(body, "READ") || !strings.Contains(body, "done") {
		t.Errorf("a site's PHP read another site's logs: %d %s", code, body)
	}
	for _, e := range p.siteLogs(domain, "--php", "--limit", "10000") {
		if strings.Contains(e.Message, "other-site-secret") {
			t.Errorf("one site's PHP log shows another's: %+v", e)
		}
	}

	// Follow: new entries as they come; a broken stream (the platform
	// restarts) is resumed right after the last entry shown.
	fl := followLogs(t, p.dataDir, domain)
	seen, waitFor := fl.seen, fl.waitFor
	waitFor("/no-such-page-404/") // the initial read
	if code, _ := vis.get("/follow-one/"); code != 404 {
		t.Fatalf("follow-one: %d", code)
	}
	vis.get(warn) // a 500: not followed
	waitFor("/follow-one/")
	p.stop()
	p.start()
	vis.waitStatus("/", 200, time.Minute)
	if code, _ := vis.get("/follow-two/"); code != 404 {
		t.Fatalf("follow-two: %d", code)
	}
	waitFor("/follow-two/")
	// Anything repeated after the reconnection would arrive with or
	// before follow-two.
	for _, pth := range []string{"/no-such-page-404/", "/follow-one/", "/follow-two/"} {
		if seen[pth] != 1 {
			t.Errorf("%s followed %d times, want once (seen %v)", pth, seen[pth], seen)
		}
	}
	if e := fl.stderr(); !strings.Contains(e, "reconnecting") {
		t.Errorf("the follow did not say it reconnected: %q", e)
	}

	// A site flooding its PHP log: the shard rotates it on its next pass,
	// and the log reads on across the rotated files.
	flood := plant(t, docroot, "flood.php", `<?php
$line = str_repeat("x", 1000);
for ($i = 0; $i < 1500; $i++) { error_log("flood $i $line"); }
error_log("flood-done");
echo "ok";
`)
	if code, body := vis.get(flood); code != 200 {
		t.Fatalf("flood.php: %d %s", code, body)
	}
	logs := filepath.Join(filepath.Dir(docroot), "logs")
	deadline := time.Now().Add(45 * time.Second) // a pass every 10 s
	for {
		if fi, err := os.Stat(filepath.Join(logs, "php-error.log.1")); err == nil && fi.Size() > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flooded PHP log was not rotated")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fi, err := os.Stat(filepath.Join(logs, "php-error.log")); err == nil && fi.Size() > 1<<20 {
		t.Errorf("the current PHP log is %d bytes after rotation", fi.Size())
	}
	if last := p.siteLogs(domain, "--php", "--limit", "1"); len(last) != 1 || last[0].Message != "flood-done" {
		t.Errorf("last PHP entry after rotation: %+v", last)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// logFollower is `aipress site logs DOMAIN --follow --status 404 -o json`
// running against a platform: seen counts the paths it printed, waitFor
// reads its output until path was printed (failing the test if it ends,
// shows a status other than 404, or takes over 90 s), stderr is what it
// said on standard error.
type logFollower struct {
	seen    map[string]int
	waitFor func(path string)
	stderr  func() string
}

// followLogs starts the follow of domain's access log (the platform's data
// directory dataDir, its client.json) until the test ends.
func followLogs(t *testing.T, dataDir, domain string) logFollower {
	t.Helper()
	cmd := exec.Command(binPath, "site", "logs", domain, "--follow", "--status", "404", "-o", "json")
	cmd.Dir = filepath.Dir(dataDir)
	cmd.Env = append(os.Environ(), "AIPRESS_DATA_DIR="+dataDir, "AIPRESS_URL=", "AIPRESS_TOKEN=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	var stderrMu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { stderrMu.Lock(); defer stderrMu.Unlock(); return stderr.Write(b) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan logEntry, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e logEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	fl := logFollower{seen: map[string]int{}}
	fl.stderr = func() string { stderrMu.Lock(); defer stderrMu.Unlock(); return stderr.String() }
	fl.waitFor = func(path string) {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for fl.seen[path] == 0 {
			select {
			case e, ok := <-lines:
				if !ok {
					t.Fatalf("site logs --follow ended: %s", fl.stderr())
				}
				if e.Status != 404 {
					t.Errorf("--status 404 followed %+v", e)
				}
				fl.seen[e.Path]++
			case <-deadline:
				t.Fatalf("%s not followed; seen %v", path, fl.seen)
			}
		}
	}
	return fl
}
