package shard_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/aipress/aipress/internal/shardmetrics"
)

// scrape gathers the registry: series by name and label values, written
// name{v1,v2,…} with the shard label left out.
func scrape(t *testing.T, m *shardmetrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var lv []string
			for _, l := range mt.GetLabel() {
				if l.GetName() != "shard" {
					lv = append(lv, l.GetValue())
				}
			}
			out[f.GetName()+"{"+strings.Join(lv, ",")+"}"] = value(mt)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// TestShardMetrics scrapes a real shard with a WordPress site before and
// after requests through the edge: the site's pool, database, files and
// pooler series exist and move with the traffic, and the servers are up.
func TestShardMetrics(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	const host = "metrics.localhost"
	c.create(host, "uid-metrics", "alpha", "Metrics", adminFor(t))
	t.Cleanup(c.deleteAll)
	m := shardmetrics.New(sh, shardmetrics.Config{Shard: "alpha", StatusInterval: time.Nanosecond})

	before := scrape(t, m)
	for name, want := range map[string]float64{
		"aipress_shard_sites{}": 1, "aipress_mariadb_up{}": 1, "aipress_phpfpm_up{}": 1,
		"aipress_shard_metrics_errors{pool_status}": 0, "aipress_shard_metrics_errors{database}": 0,
	} {
		if got, ok := before[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if before["aipress_site_database_bytes{"+host+"}"] <= 0 {
		t.Errorf("database bytes %v, want > 0", before["aipress_site_database_bytes{"+host+"}"])
	}

	const requests = 3
	for range requests {
		c.check(host, "/", 200, "Metrics")
	}
	after := scrape(t, m)
	grew := func(name string, by float64) {
		t.Helper()
		if _, ok := after[name]; !ok {
			t.Errorf("%s missing", name)
			return
		}
		if after[name] < before[name]+by {
			t.Errorf("%s went from %v to %v, want at least +%v", name, before[name], after[name], by)
		}
	}
	grew("aipress_php_pool_accepted_connections_total{"+host+"}", requests)
	grew("aipress_site_database_statements_total{"+host+"}", requests)
	grew("aipress_pooler_queries_total{primary}", requests)
	// The requests may dial a backend or reuse one the site's creation
	// left idle (timing decides): the pooler dialed at least one by now.
	if after["aipress_pooler_dialed_total{}"] < 1 {
		t.Errorf("aipress_pooler_dialed_total{} = %v after traffic, want ≥ 1", after["aipress_pooler_dialed_total{}"])
	}
	grew("aipress_mariadb_questions_total{}", requests)
	if after["aipress_php_pool_processes{"+host+",total}"] < 1 {
		t.Errorf("pool workers after traffic: %v, want ≥ 1", after["aipress_php_pool_processes{"+host+",total}"])
	}
	for _, name := range []string{"aipress_php_pool_processes{" + host + ",active}", "aipress_php_pool_processes{" + host + ",idle}",
		"aipress_php_pool_listen_queue{" + host + "}", "aipress_php_pool_max_children_reached_total{" + host + "}",
		"aipress_php_pool_slow_requests_total{" + host + "}", "aipress_site_database_connections{" + host + "}",
		"aipress_pooler_site_clients{" + host + "}", "aipress_pooler_site_backends{" + host + "}",
		"aipress_pooler_site_refused_total{" + host + "}", "aipress_mariadb_starts_total{}", "aipress_phpfpm_starts_total{}"} {
		if _, ok := after[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}

	// A request longer than the pools' slow log timeout (5 s) counts as
	// slow, and its stack is in the pool's slow log. php-fpm looks at its
	// requests every heartbeat, a third of the shortest timeout (≈ 1.7 s
	// here): the request runs 2.5 s past the threshold so that a
	// heartbeat always sees it there.
	n := sh.NamesFor("uid-metrics")
	if err := os.WriteFile(filepath.Join(n.Docroot, "slow.php"), []byte("<?php usleep(7500000); echo 'slow-ok';"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.check(host, "/slow.php", 200, "slow-ok")
	if got := scrape(t, m)["aipress_php_pool_slow_requests_total{"+host+"}"]; got != after["aipress_php_pool_slow_requests_total{"+host+"}"]+1 {
		t.Errorf("slow requests went from %v to %v after a 7.5 s request, want +1", after["aipress_php_pool_slow_requests_total{"+host+"}"], got)
	}
	if trace, err := os.ReadFile(sh.FPM().SlowLog(n.Pool)); err != nil || !strings.Contains(string(trace), "usleep()") {
		t.Errorf("slow log: %v\n%s", err, trace)
	}
	for _, name := range []string{"aipress_shard_filesystem_size_bytes{}", "aipress_shard_filesystem_avail_bytes{}"} {
		if after[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, after[name])
		}
	}

	// Files are measured in the background: the first scrape started the
	// walk.
	deadline := time.Now().Add(time.Minute)
	for {
		if n := scrape(t, m)["aipress_site_files_bytes{"+host+"}"]; n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no aipress_site_files_bytes for the site")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
