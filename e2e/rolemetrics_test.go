package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// metricsText reads the API's /metrics with the admin token.
func (p *platform) metricsText() string {
	p.t.Helper()
	token, err := os.ReadFile(filepath.Join(p.dataDir, "admin-token"))
	if err != nil {
		p.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+p.apiAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		p.t.Fatalf("GET /metrics: %d %.300s", resp.StatusCode, b)
	}
	return string(b)
}

// scrapeAll reads the API's /metrics: every sample as name{labels} →
// value.
func (p *platform) scrapeAll() map[string]float64 {
	p.t.Helper()
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^([a-z_:]+(?:\{[^}]*\})?) (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(p.metricsText(), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// TestRoleMetrics: `aipress up` serves the metrics of all its roles at the
// API's /metrics — the control plane's (API latency by route pattern,
// jobs by kind and result, shards, leader), the local shard's (its site's
// pool, database, files, pooler) and the edge's — and they move with real
// traffic and a real backup job.
func TestRoleMetrics(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const domain = "metrics.localhost"
	p.createSite(domain, "Metrics")
	// The reload that starts the shard's spare pools, before counting.
	p.waitSpares()
	before := p.scrapeAll()
	vis := p.client(domain)
	for i := range 3 { // distinct pages: none is a page-cache hit
		if code, _ := vis.get("/?n=" + strconv.Itoa(i)); code != 200 {
			t.Fatalf("GET /: %d", code)
		}
	}
	if _, err := p.cli("backup", "create", "--site", domain, "--wait", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	after := p.scrapeAll()
	site := `site="` + domain + `"`
	for _, tc := range []struct {
		name string
		min  float64 // at least this much more than before
	}{
		{`aipress_api_request_duration_seconds_count{code_class="2xx",route="POST /v1/sites"}`, 0},
		{`aipress_jobs_finished_total{kind="backup",result="succeeded"}`, 1},
		{`aipress_store_operation_duration_seconds_count{op="update_job"}`, 1},
		{`aipress_php_pool_accepted_connections_total{shard="local",` + site + `}`, 3},
		{`aipress_site_database_statements_total{shard="local",` + site + `}`, 3},
		{`aipress_pooler_queries_total{shard="local",target="primary"}`, 3},
	} {
		v, ok := after[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if v < before[tc.name]+tc.min || v == 0 {
			t.Errorf("%s went from %v to %v, want at least +%v", tc.name, before[tc.name], v, tc.min)
		}
	}
	for name, want := range map[string]float64{
		`aipress_controlplane_leader`:               1,
		`aipress_shard_ready{shard="local"}`:        1,
		`aipress_mariadb_up{shard="local"}`:         1,
		`aipress_phpfpm_up{shard="local"}`:          1,
		`aipress_shard_sites{shard="local"}`:        1,
		`aipress_shard_placed_sites{shard="local"}`: 1,
	} {
		if got, ok := after[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	// The edge's series are there too, and no route label is a raw path.
	var edgeSeen bool
	for k := range after {
		if strings.HasPrefix(k, "aipress_edge_requests_total{") && strings.Contains(k, site) {
			edgeSeen = true
		}
		if strings.HasPrefix(k, "aipress_api_request_duration_seconds") && strings.Contains(k, domain) {
			t.Errorf("a route label holds a site's name: %s", k)
		}
	}
	if !edgeSeen {
		t.Error("no aipress_edge_requests_total for the site")
	}
}
