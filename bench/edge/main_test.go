package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestParseWrk(t *testing.T) {
	for _, c := range []struct {
		file string
		want wrkResult
	}{
		{"wrk_ok.txt", wrkResult{ReqPerSec: 34459.41, P50: 612 * time.Microsecond, P99: 7630 * time.Microsecond, Requests: 344640}},
		{"wrk_errors.txt", wrkResult{ReqPerSec: 1111.58, P50: 4850 * time.Microsecond, P99: 44160 * time.Microsecond, Requests: 1113, Non2xx3xx: 1113, Errors: 15}},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseWrk(string(b))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		// Durations come from floats: allow a nanosecond of rounding.
		near := func(a, b time.Duration) bool { return a-b <= time.Nanosecond && b-a <= time.Nanosecond }
		if got.ReqPerSec != c.want.ReqPerSec || !near(got.P50, c.want.P50) || !near(got.P99, c.want.P99) ||
			got.Requests != c.want.Requests || got.Non2xx3xx != c.want.Non2xx3xx || got.Errors != c.want.Errors {
			t.Errorf("%s: got %+v, want %+v", c.file, got, c.want)
		}
	}
}

func TestParseWrkIncomplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "wrk_ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Without --latency there is no distribution.
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "%  ") && !strings.Contains(l, "Distribution") {
			kept = append(kept, l)
		}
	}
	if _, err := parseWrk(strings.Join(kept, "\n")); err == nil {
		t.Error("parseWrk accepted output without a latency distribution")
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk accepted an error message")
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"812.00us": 812 * time.Microsecond,
		"1.10ms":   1100 * time.Microsecond,
		"2.03s":    2030 * time.Millisecond,
		"1.50m":    90 * time.Second,
		"0.00us":   0,
	} {
		got, err := parseWrkDuration(in)
		if err != nil || got-want > time.Nanosecond || want-got > time.Nanosecond {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ms", "12", "1.0xs", "-1ms"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) accepted", bad)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	got := strings.Join(wrkArgs(2, 32, 10*time.Second, []string{"Host: a.localhost:8080", "Cookie: wordpress_no_cache=1"}, "http://127.0.0.1:1/"), " ")
	want := "-t2 -c32 -d10s --latency --timeout 30s -H Host: a.localhost:8080 -H Cookie: wordpress_no_cache=1 http://127.0.0.1:1/"
	if got != want {
		t.Errorf("wrkArgs = %q, want %q", got, want)
	}
}

func testConfig(dir string) nginxConfig {
	return nginxConfig{
		Dir:        dir,
		Listen:     "127.0.0.1:18080",
		ServerName: "edge-bench.localhost",
		Root:       "/tmp/bench-edge/data/shards/local/sites/0123456789ab/htdocs",
		Socket:     "/tmp/bench-edge/data/shards/local/php/run/wp_0123456789ab.sock",
		Include:    "/etc/nginx",
	}
}

func TestNginxConfigGolden(t *testing.T) {
	got, err := renderNginx(testConfig("/tmp/bench-edge/nginx"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "nginx.conf.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./bench/edge -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("nginx.conf differs from %s (run go test ./bench/edge -update and review the diff):\n%s", golden, got)
	}
	// What the benchmark relies on.
	for _, s := range []string{
		"sendfile on;", "tcp_nopush on;", "keepalive_timeout", "worker_processes auto;",
		`fastcgi_cache_key "$scheme$request_method$host$request_uri";`, "fastcgi_cache_valid 200 301 5m;",
		"fastcgi_cache_use_stale error timeout updating;", "fastcgi_cache_lock on;",
		"add_header X-Cache $upstream_cache_status;", "fastcgi_param HTTP_HOST $http_host;",
		"try_files $uri $uri/ /index.php?$args;", "wordpress_no_cache", "wordpress_logged_in",
		"fastcgi_pass unix:/tmp/bench-edge/data/shards/local/php/run/wp_0123456789ab.sock;",
		"listen 127.0.0.1:18080;", "server_name edge-bench.localhost;",
	} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("nginx.conf lacks %q", s)
		}
	}
}

// TestNginxConfigValid checks the rendered config with `nginx -t` when nginx
// is installed (make bench-edge installs it).
func TestNginxConfigValid(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	c := testConfig(dir)
	c.Root, c.Socket = dir, filepath.Join(dir, "php.sock")
	path, err := writeNginx(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkNginx(bin, dir, path); err != nil {
		t.Fatal(err)
	}
}

func TestWAFFlag(t *testing.T) {
	for help, want := range map[string]string{
		"      --waf-mode string   off, detect or block\n":  "--waf-mode",
		"      --waf string        off, detect or block\n":  "--waf",
		"      --cache-ttl int\n      --waf-paranoia int\n": "",
	} {
		if got := strings.TrimRight(wafFlagRE.FindString(help), " ="); got != want {
			t.Errorf("WAF flag in %q = %q, want %q", help, got, want)
		}
	}
}
