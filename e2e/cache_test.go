package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// metric returns the value of the sample of name whose labels include
// site="site" (summed over the other labels), from the API's /metrics.
func (p *platform) metric(name, site string) float64 {
	p.t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(p.metricsText(), -1) {
		if strings.Contains(m[1], `site="`+site+`"`) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

// On a real site: 100 concurrent visitors of a cold page cost one PHP
// request, and an expired page is served STALE while PHP is down.
func testCacheColdAndStale(t *testing.T, p *platform) {
	const domain = "cold.localhost"
	p.createSite(domain, "Cold Cache")
	vis := p.client(domain)
	vis.waitStatus("/?warm-up=1", 200, 30*time.Second)

	before := p.metric("aipress_edge_upstream_duration_seconds_count", domain)
	var wg sync.WaitGroup
	codes := make(chan string, 100)
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", vis.base+"/?cold=1", nil)
			req.Host = domain
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.Status + " " + resp.Header.Get("X-Cache")
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if !strings.HasPrefix(c, "200 ") {
			t.Errorf("a concurrent cold request got %s", c)
		}
	}
	// Requests are counted just after they are answered: let the count settle.
	after := p.metric("aipress_edge_upstream_duration_seconds_count", domain)
	for deadline := time.Now().Add(5 * time.Second); after-before < 1 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = p.metric("aipress_edge_upstream_duration_seconds_count", domain)
	}
	if after-before != 1 {
		t.Errorf("100 concurrent cold requests reached PHP %v times, want once", after-before)
	}

	// Stale if error: a page that expired is still served while PHP is down.
	if out, err := p.cli("site", "set", domain, "--cache-ttl", "1"); err != nil {
		t.Fatalf("site set: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the route sync picks the TTL up
	if _, hdr, _ := vis.do("GET", "/?stale=1", nil); hdr.Get("X-Cache") != "MISS" {
		t.Fatalf("first GET /?stale=1: X-Cache %q", hdr.Get("X-Cache"))
	}
	time.Sleep(1500 * time.Millisecond) // expired
	b, err := os.ReadFile(filepath.Join(p.dataDir, "shards", "local", "php", "supervised.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until the supervisor restarts php-fpm, the pool refuses connections.
	code, hdr, body := vis.do("GET", "/?stale=1", nil)
	if code != 200 || hdr.Get("X-Cache") != "STALE" || !strings.Contains(body, "Cold Cache") {
		t.Errorf("GET while php-fpm is down = %d, X-Cache %q\n%.200s", code, hdr.Get("X-Cache"), body)
	}
	vis.waitStatus("/?after=1", 200, time.Minute)
}
