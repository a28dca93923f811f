package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promQuery runs an instant query against Prometheus at addr and returns
// the number of series in its result; a query Prometheus refuses is an
// error.
func promQuery(addr, q string) (int, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("query %q: %w", q, err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %q: %s", q, r.Error)
	}
	var series []json.RawMessage
	if err := json.Unmarshal(r.Data.Result, &series); err != nil {
		return 1, nil // a scalar
	}
	return len(series), nil
}

// dashboardQueries returns the PromQL of every panel of the committed
// dashboards with the variables set, and the metric of every variable.
func dashboardQueries(t *testing.T, vars map[string]string) []string {
	t.Helper()
	files, err := filepath.Glob("../deploy/monitoring/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), *\w+\)$`)
	var qs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d.Panels, d.Templating.List = nil, nil
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range d.Templating.List {
			if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
				qs = append(qs, m[1])
			}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				q := tg.Expr
				for k, v := range vars {
					q = strings.ReplaceAll(q, "$"+k, v)
				}
				qs = append(qs, q)
			}
		}
	}
	return qs
}

// ruleMetrics returns every aipress_ metric the alert rules name, and
// the expressions of the recording rules.
func ruleMetrics(t *testing.T) (metrics, records []string) {
	t.Helper()
	b, err := os.ReadFile("../deploy/monitoring/rules/aipress.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var inExpr bool
	for _, line := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "#") {
			continue
		}
		if strings.HasPrefix(s, "- record:") {
			inExpr = true
			continue
		}
		if inExpr && strings.HasPrefix(s, "expr:") {
			records = append(records, strings.TrimSpace(strings.TrimPrefix(s, "expr:")))
		}
		inExpr = false
		if strings.HasPrefix(s, "expr:") {
			for _, m := range regexp.MustCompile(`\baipress_[a-z_]+\b`).FindAllString(s, -1) {
				if !slices.Contains(metrics, m) {
					metrics = append(metrics, m)
				}
			}
		}
	}
	if len(metrics) == 0 || len(records) == 0 {
		t.Fatal("found no metrics or recording rules in the rules file")
	}
	return metrics, records
}

// TestPrometheusScrape runs Debian's real Prometheus against a running
// `aipress up` with the alert rules loaded, and checks that every query of
// the dashboards, every metric of the rules and every recording rule
// returns data — or is in expectEmpty or mayBeEmpty with the reason — and that
// Prometheus evaluates every rule without error.
func TestPrometheusScrape(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("MAKELEVEL") == "" {
			t.Skip("prometheus is not installed (Debian package prometheus; make deps installs it)")
		}
		t.Fatalf("prometheus is not installed although make deps ran: %v", err)
	}
	p := newPlatform(t)
	// HTTPS (the internal CA's root is a certificate metric) and a read
	// replica (its lag), so that those queries have data too.
	p.extraArgs = []string{"--https", freeAddr(t), "--acme-ca", "off", "--db-replica", "local"}
	p.start()
	const domain = "prom.localhost"
	p.createSite(domain, "Prometheus")
	vis := p.client(domain)
	for i := range 3 {
		if code, _ := vis.get("/?n=" + strconv.Itoa(i)); code != 200 {
			t.Fatalf("GET /: %d", code)
		}
	}
	// A failing page and an attack, so that the 5xx and WAF queries count something.
	boom := plant(t, p.docroot(domain), "boom.php", "<?php http_response_code(500); echo 'boom';")
	if code, _ := vis.get(boom); code != 500 {
		t.Fatalf("GET %s: %d, want 500", boom, code)
	}
	if code, _ := vis.get("/?s=" + url.QueryEscape("<script>alert(1)</script>")); code != 403 {
		t.Fatalf("an XSS attempt got %d, want the WAF's 403", code)
	}
	if _, err := p.cli("backup", "create", "--site", domain, "--wait", "-o", "json"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	rules, err := filepath.Abs("../deploy/monitoring/rules/aipress.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: aipress
    authorization:
      credentials_file: %q
    static_configs:
      - targets: [%q]
`, rules, filepath.Join(p.dataDir, "admin-token"), p.apiAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "tsdb"), "--web.listen-address", addr)
	log := &logBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log)
		}
	})

	// Wait for three good scrapes (rate() needs two samples) and for the
	// backup scheduler's coverage, which the leader exports after a pass
	// that saw the site (a pass every 30 s).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := promQuery(addr, `(count_over_time(up{job="aipress"}[5m]) >= 3 and up{job="aipress"} == 1) and on() count(aipress_backup_sites) > 0`)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape aipress three times with backup coverage (last error %v)", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Queries that are empty on this platform, and why.
	expectEmpty := map[string]string{
		`sum by (scope) (rate(aipress_edge_ratelimited_total[5m]))`:                        "the test platform runs without rate limits (--rate-ip 0 --rate-site 0)",
		`sum by (scope) (rate(aipress_edge_ratelimited_total{site="` + domain + `"}[5m]))`: "the test platform runs without rate limits (--rate-ip 0 --rate-site 0)",
	}
	// Queries that may be empty or not, and why.
	mayBeEmpty := map[string]string{
		`max by (kind, phase) (aipress_jobs_active)`: "only while a job is pending or running (the scheduler may start the site's first scheduled backup)",
	}
	var missing []string
	check := func(what, q string) {
		n, err := promQuery(addr, q)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		if _, ok := mayBeEmpty[q]; ok {
			return
		}
		reason, expected := expectEmpty[q]
		switch {
		case n == 0 && !expected:
			missing = append(missing, q)
		case n > 0 && expected:
			t.Errorf("%s %s returns data although listed as empty (%s): update the list", what, q, reason)
		}
	}
	for _, q := range dashboardQueries(t, map[string]string{"shard": "local", "site": domain}) {
		check("dashboard query", q)
	}
	metrics, records := ruleMetrics(t)
	for _, m := range metrics {
		check("rule metric", m)
	}
	for _, q := range records {
		check("recording rule", q)
	}
	if len(missing) > 0 {
		t.Errorf("%d queries return no data:\n%s", len(missing), strings.Join(missing, "\n"))
	}

	// Every rule loaded and evaluates without error.
	resp, err := http.Get("http://" + addr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &rr); err != nil {
		t.Fatalf("rules: %v: %.300s", err, body)
	}
	var n int
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("prometheus loaded no rules")
	}
}
