package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// apiGet reads a JSON answer of the API with the platform's admin token.
func (p *platform) apiGet(path string) (int, map[string]any) {
	p.t.Helper()
	var cfg struct{ URL, Token string }
	b, err := os.ReadFile(filepath.Join(p.dataDir, "client.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		p.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", cfg.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// Real traffic through the real edge reaches the portal's charts: the
// edge counts waf.localhost's requests (the WAF test's blocked attacks
// among them), sends them with its usage report, and GET
// /v1/sites/{name}/metrics and the sites list's summary show them.
func testSiteMetrics(t *testing.T, p *platform) {
	const domain = "waf.localhost" // made by testWAF, with its blocked attacks
	vis := p.client(domain)
	// A page (cached the second time) and one that PHP answers with a
	// redirect to its permalink.
	for _, path := range []string{"/", "/", "/?p=1"} {
		if code, _ := vis.get(path); code != 200 && code != 301 {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	var totals map[string]any
	deadline := time.Now().Add(45 * time.Second) // edges report every 10 s
	for {
		code, m := p.apiGet("/v1/sites/" + domain + "/metrics?range=1h")
		if code != 200 {
			t.Fatalf("metrics: %d %v", code, m)
		}
		totals, _ = m["totals"].(map[string]any)
		num := func(k string) float64 { f, _ := totals[k].(float64); return f }
		if num("requests") >= 9 && num("waf_blocks") >= 6 && num("cache_hits") >= 1 && num("p99_ms") > 0 && num("php_ms") > 0 && num("bytes") > 0 {
			if pts, _ := m["points"].([]any); len(pts) != 60 || m["step_seconds"] != 60.0 {
				t.Errorf("%d points of %v s, want 60 of 60", len(pts), m["step_seconds"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site's traffic did not reach its metrics: totals %v", totals)
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, m := p.apiGet("/v1/sites?q=WAF.LOCAL")
	items, _ := m["items"].([]any)
	if code != 200 || len(items) != 1 {
		t.Fatalf("list ?q=: %d %v", code, m)
	}
	sum, _ := items[0].(map[string]any)["summary"].(map[string]any)
	if n, _ := sum["requests_24h"].(float64); n < 9 || sum["cache_hit_ratio"] == nil {
		t.Errorf("summary %v, want the site's requests and hit ratio", sum)
	}
	if code, _ := p.apiGet("/v1/sites/nobody.localhost/metrics"); code != 404 {
		t.Errorf("metrics of no site: %d, want 404", code)
	}
}
