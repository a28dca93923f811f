package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// `aipress up --https`: the edge serves sites over TLS with HTTP/2 and a
// certificate from the internal CA, redirects to HTTPS when the site's spec
// says so, counts requests in /metrics and rate-limits a client IP.
func TestHTTPSMetricsRateLimit(t *testing.T) {
	p := newPlatform(t)
	httpsAddr := freeAddr(t)
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	_, httpPort, _ := net.SplitHostPort(p.httpAddr)
	p.extraArgs = []string{"--https", httpsAddr, "--rate-ip", "50", "--rate-site", "500"} // the default limits, set explicitly
	p.start()
	p.createSite("blog.localhost", "TLS Blog")
	plain := p.client("blog.localhost")
	plain.waitStatus("/", 200, 30*time.Second)

	token, err := os.ReadFile(filepath.Join(p.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.apiAddr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("parse metrics: %v", err)
		}
		return fams
	}
	// value returns the sum of the family's samples whose labels include want.
	value := func(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
		var sum float64
		f := fams[name]
		if f == nil {
			return 0
		}
	metric:
		for _, m := range f.Metric {
			for k, v := range want {
				found := false
				for _, l := range m.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	blog := map[string]string{"site": "blog.localhost"}
	ok2xx := map[string]string{"site": "blog.localhost", "code_class": "2xx"}

	t.Run("MetricsNeedToken", func(t *testing.T) {
		code, err := httpGet("http://" + p.apiAddr + "/metrics")
		if err != nil || code != 401 {
			t.Fatalf("GET /metrics without token: %d %v", code, err)
		}
	})

	before := scrape()

	caPEM, err := os.ReadFile(filepath.Join(p.dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(p.dataDir, "tls", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v %v, want mode 0600", fi, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		// blog.localhost:PORT is the edge's HTTPS listener on loopback.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, httpsAddr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	httpsClient := &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	httpsBase := "https://blog.localhost:" + httpsPort
	getHTTPS := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := httpsClient.Get(httpsBase + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", httpsBase, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	t.Run("HTTPS", func(t *testing.T) {
		resp, body := getHTTPS("/")
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("GET %s/: %d %s", httpsBase, resp.StatusCode, resp.Proto)
		}
		if !strings.Contains(body, "<title>TLS Blog") {
			t.Errorf("not the WordPress page: %.300s", body)
		}
		// WordPress saw HTTPS=on and builds https links to the same origin.
		if !strings.Contains(body, httpsBase+"/") {
			t.Errorf("page has no %s/ links: %.500s", httpsBase, body)
		}
		if cs := resp.TLS; cs == nil || len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].DNSNames[0] != "blog.localhost" {
			t.Errorf("peer certificate: %+v", cs)
		}
		// A name that is no site gets no certificate.
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: pool, ServerName: "nosuchsite.example.com"})
		if err == nil {
			conn.Close()
			t.Error("handshake for an unknown public name succeeded")
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		// No redirect until the spec asks for it.
		if code, _, _ := plain.do("GET", "/?p=1", nil); code == http.StatusPermanentRedirect {
			t.Fatal("redirected before https_redirect was set")
		}
		if _, err := p.cli("site", "set", "blog.localhost", "--https-redirect=true"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		var code int
		var hdr http.Header
		for time.Now().Before(deadline) {
			if code, hdr, _ = plain.do("GET", "/some/path?x=1", nil); code == http.StatusPermanentRedirect {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := "https://blog.localhost:" + httpsPort + "/some/path?x=1"
		if code != http.StatusPermanentRedirect || hdr.Get("Location") != want {
			t.Fatalf("plain GET = %d Location %q, want 308 %q", code, hdr.Get("Location"), want)
		}
		_ = httpPort
		// HTTPS itself is served, not redirected again.
		if resp, _ := getHTTPS("/"); resp.StatusCode != 200 {
			t.Errorf("HTTPS after redirect on: %d", resp.StatusCode)
		}
		if out, err := p.cli("site", "set", "blog.localhost", "--https-redirect=false"); err != nil {
			t.Fatal(out, err)
		}
		plain.waitStatus("/", 200, 30*time.Second)
	})

	t.Run("MetricsMove", func(t *testing.T) {
		// The edge counts a request once it has answered it, so a client can
		// see the answer a moment before the count: wait (bounded) for it.
		after := scrape()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); after = scrape() {
			if value(after, "aipress_edge_requests_total", ok2xx) >= value(before, "aipress_edge_requests_total", ok2xx)+3 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		b, a := value(before, "aipress_edge_requests_total", ok2xx), value(after, "aipress_edge_requests_total", ok2xx)
		if a < b+3 { // at least the three HTTPS page loads
			t.Errorf("aipress_edge_requests_total{site=blog.localhost,code_class=2xx}: %v → %v", b, a)
		}
		if v := value(after, "aipress_edge_requests_total", map[string]string{"site": "blog.localhost", "code_class": "3xx"}); v < 1 {
			t.Errorf("no 3xx counted (the 308s): %v", v)
		}
		if b, a := value(before, "aipress_edge_response_bytes_total", blog), value(after, "aipress_edge_response_bytes_total", blog); a <= b {
			t.Errorf("response bytes did not grow: %v → %v", b, a)
		}
		if b, a := value(before, "aipress_edge_upstream_duration_seconds", blog), value(after, "aipress_edge_upstream_duration_seconds", blog); a <= b {
			t.Errorf("upstream histogram did not grow: %v → %v", b, a)
		}
		if b, a := value(before, "aipress_edge_request_duration_seconds", blog), value(after, "aipress_edge_request_duration_seconds", blog); a < b+3 {
			t.Errorf("duration histogram: %v → %v", b, a)
		}
		// An unknown host is counted under _unknown, not under its name.
		p.client("nosuchsite.localhost").get("/")
		last := scrape()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); last = scrape() {
			if value(last, "aipress_edge_requests_total", map[string]string{"site": "_unknown", "code_class": "4xx"}) >= 1 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if v := value(last, "aipress_edge_requests_total", map[string]string{"site": "_unknown", "code_class": "4xx"}); v < 1 {
			t.Errorf("_unknown 4xx = %v", v)
		}
		if v := value(last, "aipress_edge_requests_total", map[string]string{"site": "nosuchsite.localhost"}); v != 0 {
			t.Error("an unknown Host became a label")
		}
		if last["go_goroutines"] == nil || last["process_resident_memory_bytes"] == nil {
			t.Error("Go or process collector missing")
		}
	})

	// Last: it leaves 127.0.0.1 without tokens for a moment. The default
	// limit is 50 requests/s per IP with a burst of 100; a static file is
	// served far faster than that, so a 429 must come long before 3000
	// requests.
	t.Run("RateLimit", func(t *testing.T) {
		var (
			sent, limited atomic.Int64
			retryAfter    atomic.Value
			wg            sync.WaitGroup
		)
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		defer client.CloseIdleConnections()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for limited.Load() == 0 && sent.Add(1) <= 3000 {
					req, _ := http.NewRequest("GET", "http://"+p.httpAddr+"/wp-includes/images/blank.gif", nil)
					req.Host = "blog.localhost"
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case 200:
					case http.StatusTooManyRequests:
						retryAfter.Store(resp.Header.Get("Retry-After"))
						limited.Add(1)
					default:
						t.Errorf("static file: %d", resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		if limited.Load() == 0 {
			t.Fatalf("no 429 after %d requests from one IP", sent.Load())
		}
		if n := sent.Load(); n < 100 {
			t.Errorf("429 after only %d requests; the burst is 100", n)
		}
		ra, _ := retryAfter.Load().(string)
		if secs, err := strconv.Atoi(ra); err != nil || secs < 1 {
			t.Errorf("Retry-After = %q", ra)
		}
		if v := value(scrape(), "aipress_edge_ratelimited_total", map[string]string{"site": "blog.localhost", "scope": "ip"}); v < 1 {
			t.Errorf("aipress_edge_ratelimited_total{scope=ip} = %v", v)
		}
	})
}
