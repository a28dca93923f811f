package monitoring

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// query is one PromQL expression of a panel and its legend.
type query struct{ expr, legend string }

// panel describes a panel: a stat (one number) or a time series.
type panel struct {
	title, unit string
	isStat      bool
	queries     []query
}

// Dashboard is one generated dashboard: its file name under dashboards/
// and its JSON.
type Dashboard struct {
	File string
	JSON []byte
}

// Dashboards builds the fleet, shard and site dashboards.
func Dashboards() ([]Dashboard, error) {
	specs := []struct {
		file, uid, title, desc string
		vars                   []cog.Builder[dashboard.VariableModel]
		panels                 []panel
	}{
		{"fleet.json", "aipress-fleet", "AIPress / Fleet", "The whole platform: traffic, errors, shards, jobs, backups and the control plane.", nil, fleetPanels()},
		{"shard.json", "aipress-shard", "AIPress / Shard", "One shard: its MariaDB, php-fpm, pooler and busiest sites.",
			[]cog.Builder[dashboard.VariableModel]{labelVariable("shard", "Shard", "aipress_shard_ready", "shard")}, shardPanels()},
		{"site.json", "aipress-site", "AIPress / Site", "One site: its traffic at the edge, PHP pool, database and files.",
			[]cog.Builder[dashboard.VariableModel]{labelVariable("site", "Site", `aipress_edge_requests_total{site!="_unknown"}`, "site")}, sitePanels()},
	}
	out := make([]Dashboard, 0, len(specs))
	for _, s := range specs {
		b := dashboard.NewDashboardBuilder(s.title).
			Uid(s.uid).
			Description(s.desc).
			Tags([]string{"aipress"}).
			Editable().
			Refresh("1m").
			Time("now-6h", "now").
			Timezone(common.TimeZoneUtc).
			Tooltip(dashboard.DashboardCursorSyncCrosshair).
			WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
		for _, v := range s.vars {
			b.WithVariable(v)
		}
		for _, p := range s.panels {
			b.WithPanel(p.build())
		}
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", s.file, err)
		}
		j, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", s.file, err)
		}
		out = append(out, Dashboard{File: s.file, JSON: append(j, '\n')})
	}
	return out, nil
}

// datasource is the dashboards' Prometheus: the datasource variable.
func datasource() common.DataSourceRef {
	typ, uid := "prometheus", "${datasource}"
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// labelVariable is a variable holding the values of label of metric.
func labelVariable(name, label, metric, of string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", metric, of)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: &q}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

func (p panel) targets() []cog.Builder[variants.Dataquery] {
	ts := make([]cog.Builder[variants.Dataquery], 0, len(p.queries))
	for i, q := range p.queries {
		t := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(rune('A' + i))).
			Expr(q.expr).
			LegendFormat(q.legend)
		if p.isStat {
			t.Instant()
		} else {
			t.Range()
		}
		ts = append(ts, t)
	}
	return ts
}

func (p panel) build() cog.Builder[dashboard.Panel] {
	if p.isStat {
		return stat.NewPanelBuilder().
			Title(p.title).
			Datasource(datasource()).
			Unit(p.unit).
			Span(4).Height(4).
			GraphMode(common.BigValueGraphModeNone).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			Targets(p.targets())
	}
	return timeseries.NewPanelBuilder().
		Title(p.title).
		Datasource(datasource()).
		Unit(p.unit).
		Span(12).Height(8).
		FillOpacity(10).
		Targets(p.targets())
}

func st(title, unit, expr string) panel {
	return panel{title: title, unit: unit, isStat: true, queries: []query{{expr: expr}}}
}

func ts(title, unit string, qs ...query) panel {
	return panel{title: title, unit: unit, queries: qs}
}

// The aipress_shard_* gauges and aipress_jobs_active come from the control
// plane, and every replica exports them: the panels take max (or min) by
// shard rather than summing over replicas.
func fleetPanels() []panel {
	return []panel{
		st("Sites served", "short", `sum(max by (shard) (aipress_shard_serving_sites))`),
		st("Shards ready", "short", `sum(aipress_shard_ready) / count(aipress_shard_ready)`),
		st("Requests / s", "reqps", `sum(rate(aipress_edge_requests_total[5m]))`),
		st("5xx ratio", "percentunit", `sum(rate(aipress_edge_requests_total{code_class="5xx"}[5m])) / sum(rate(aipress_edge_requests_total[5m]))`),
		st("Sites with late backups", "short", `sum(aipress_backup_sites_alerting)`),
		st("Leaders", "short", `sum(aipress_controlplane_leader)`),
		ts("Requests by status class", "reqps", query{`sum by (code_class) (rate(aipress_edge_requests_total[5m]))`, "{{code_class}}"}),
		ts("Requests by page cache result", "reqps", query{`sum by (cache) (rate(aipress_edge_requests_total[5m]))`, "{{cache}}"}),
		ts("Edge latency", "s",
			query{`histogram_quantile(0.5, sum by (le) (rate(aipress_edge_request_duration_seconds_bucket[5m])))`, "p50"},
			query{`histogram_quantile(0.95, sum by (le) (rate(aipress_edge_request_duration_seconds_bucket[5m])))`, "p95"}),
		ts("Sites with most 5xx", "reqps", query{`topk(10, sum by (site) (rate(aipress_edge_requests_total{code_class="5xx"}[5m])))`, "{{site}}"}),
		ts("WAF blocks and rate limiting", "reqps",
			query{`sum(rate(aipress_edge_waf_blocks_total[5m]))`, "WAF"},
			query{`sum by (scope) (rate(aipress_edge_ratelimited_total[5m]))`, "rate limit {{scope}}"}),
		ts("Shard fill", "percentunit", query{`max by (shard) (aipress_shard_placed_sites) / max by (shard) (aipress_shard_capacity_sites)`, "{{shard}}"}),
		ts("Shard disk", "bytes", query{`max by (shard) (aipress_shard_disk_bytes)`, "{{shard}}"}),
		ts("Shard free disk", "percentunit", query{`min by (shard) (aipress_shard_filesystem_avail_bytes / aipress_shard_filesystem_size_bytes)`, "{{shard}}"}),
		ts("Certificates expiring soonest", "s", query{`bottomk(10, aipress_certificate_not_after_timestamp_seconds - time())`, "{{kind}} {{name}}"}),
		ts("Shard memory", "bytes", query{`max by (shard) (aipress_shard_memory_bytes)`, "{{shard}}"}),
		ts("Shard heartbeat age", "s", query{`min by (shard) (aipress_shard_heartbeat_age_seconds)`, "{{shard}}"}),
		ts("Jobs finished", "ops", query{`sum by (kind, result) (rate(aipress_jobs_finished_total[15m]))`, "{{kind}} {{result}}"}),
		ts("Jobs active", "short", query{`max by (kind, phase) (aipress_jobs_active)`, "{{kind}} {{phase}}"}),
		ts("Backup coverage", "short", query{`sum by (state) (aipress_backup_sites)`, "{{state}}"}),
		ts("API latency p95 by route", "s", query{`histogram_quantile(0.95, sum by (le, route) (rate(aipress_api_request_duration_seconds_bucket[5m])))`, "{{route}}"}),
		ts("Store latency p95 by operation", "s", query{`histogram_quantile(0.95, sum by (le, op) (rate(aipress_store_operation_duration_seconds_bucket[5m])))`, "{{op}}"}),
	}
}

func shardPanels() []panel {
	return []panel{
		st("Ready", "short", `max(aipress_shard_ready{shard="$shard"})`),
		st("Heartbeat age", "s", `min(aipress_shard_heartbeat_age_seconds{shard="$shard"})`),
		st("MariaDB up", "short", `aipress_mariadb_up{shard="$shard"}`),
		st("php-fpm up", "short", `aipress_phpfpm_up{shard="$shard"}`),
		st("Sites", "short", `aipress_shard_sites{shard="$shard"}`),
		st("PHP workers", "short", `aipress_phpfpm_workers{shard="$shard"}`),
		st("Free disk", "percentunit", `min(aipress_shard_filesystem_avail_bytes{shard="$shard"} / aipress_shard_filesystem_size_bytes{shard="$shard"})`),
		ts("Sites with most PHP workers", "short", query{`topk(10, aipress_php_pool_processes{shard="$shard",state="total"})`, "{{site}}"}),
		ts("PHP requests accepted", "reqps", query{`topk(10, rate(aipress_php_pool_accepted_connections_total{shard="$shard"}[5m]))`, "{{site}}"}),
		ts("PHP saturation", "short",
			query{`sum(aipress_php_pool_listen_queue{shard="$shard"})`, "queued"},
			query{`sum(increase(aipress_php_pool_max_children_reached_total{shard="$shard"}[5m]))`, "max children reached"}),
		ts("Sites with most slow PHP requests", "short", query{`topk(10, increase(aipress_php_pool_slow_requests_total{shard="$shard"}[15m]))`, "{{site}}"}),
		ts("MariaDB queries", "ops",
			query{`rate(aipress_mariadb_questions_total{shard="$shard"}[5m])`, "questions"},
			query{`rate(aipress_mariadb_slow_queries_total{shard="$shard"}[5m])`, "slow"}),
		ts("MariaDB threads", "short",
			query{`aipress_mariadb_threads{shard="$shard"}`, "{{state}}"},
			query{`aipress_mariadb_max_used_connections{shard="$shard"}`, "max used"}),
		ts("Restarts", "short",
			query{`increase(aipress_mariadb_starts_total{shard="$shard"}[1h])`, "MariaDB"},
			query{`increase(aipress_phpfpm_starts_total{shard="$shard"}[1h])`, "php-fpm"}),
		ts("Disk", "bytes",
			query{`aipress_shard_filesystem_avail_bytes{shard="$shard"}`, "available"},
			query{`aipress_shard_filesystem_size_bytes{shard="$shard"}`, "size"}),
		ts("Read replica lag", "s", query{`aipress_replica_lag_seconds{shard="$shard"}`, "lag"}),
		ts("Largest databases", "bytes", query{`topk(10, aipress_site_database_bytes{shard="$shard"})`, "{{site}}"}),
		ts("Largest sites' files", "bytes", query{`topk(10, aipress_site_files_bytes{shard="$shard"})`, "{{site}}"}),
		ts("Pooler connections", "short",
			query{`aipress_pooler_clients{shard="$shard"}`, "clients"},
			query{`aipress_pooler_backends{shard="$shard"}`, "backends {{target}}"},
			query{`aipress_pooler_pinned_sessions{shard="$shard"}`, "pinned"}),
		ts("Pooler queries and waits", "ops",
			query{`sum(rate(aipress_pooler_queries_total{shard="$shard"}[5m]))`, "queries"},
			query{`rate(aipress_pooler_queued_total{shard="$shard"}[5m])`, "queued"},
			query{`rate(aipress_pooler_overflowed_total{shard="$shard"}[5m])`, "overflowed"}),
		ts("Figures the scrape could not read", "short", query{`aipress_shard_metrics_errors{shard="$shard"}`, "{{source}}"}),
	}
}

func sitePanels() []panel {
	return []panel{
		st("Requests / s", "reqps", `sum(rate(aipress_edge_requests_total{site="$site"}[5m]))`),
		st("5xx ratio", "percentunit", `sum(rate(aipress_edge_requests_total{site="$site",code_class="5xx"}[5m])) / sum(rate(aipress_edge_requests_total{site="$site"}[5m]))`),
		st("PHP workers", "short", `sum(aipress_php_pool_processes{site="$site",state="total"})`),
		st("Database", "bytes", `sum(aipress_site_database_bytes{site="$site"})`),
		st("Files", "bytes", `sum(aipress_site_files_bytes{site="$site"})`),
		st("Bytes out / s", "Bps", `sum(rate(aipress_edge_response_bytes_total{site="$site"}[5m]))`),
		ts("Requests by status class", "reqps", query{`sum by (code_class) (rate(aipress_edge_requests_total{site="$site"}[5m]))`, "{{code_class}}"}),
		ts("Requests by page cache result", "reqps", query{`sum by (cache) (rate(aipress_edge_requests_total{site="$site"}[5m]))`, "{{cache}}"}),
		ts("Latency", "s",
			query{`histogram_quantile(0.5, sum by (le) (rate(aipress_edge_request_duration_seconds_bucket{site="$site"}[5m])))`, "p50"},
			query{`histogram_quantile(0.95, sum by (le) (rate(aipress_edge_request_duration_seconds_bucket{site="$site"}[5m])))`, "p95"},
			query{`histogram_quantile(0.95, sum by (le) (rate(aipress_edge_upstream_duration_seconds_bucket{site="$site"}[5m])))`, "PHP p95"}),
		ts("Refused", "reqps",
			query{`sum(rate(aipress_edge_waf_blocks_total{site="$site"}[5m]))`, "WAF"},
			query{`sum by (scope) (rate(aipress_edge_ratelimited_total{site="$site"}[5m]))`, "rate limit {{scope}}"}),
		ts("PHP workers", "short",
			query{`aipress_php_pool_processes{site="$site"}`, "{{state}}"},
			query{`aipress_php_pool_listen_queue{site="$site"}`, "queued"}),
		ts("PHP requests and saturation", "ops",
			query{`rate(aipress_php_pool_accepted_connections_total{site="$site"}[5m])`, "accepted"},
			query{`increase(aipress_php_pool_max_children_reached_total{site="$site"}[5m])`, "max children reached"},
			query{`increase(aipress_php_pool_slow_requests_total{site="$site"}[5m])`, "slow"}),
		ts("Database activity", "short",
			query{`rate(aipress_site_database_statements_total{site="$site"}[5m])`, "statements / s"},
			query{`aipress_site_database_connections{site="$site"}`, "connections"}),
		ts("Database connections through the pooler", "short",
			query{`aipress_pooler_site_clients{site="$site"}`, "clients"},
			query{`aipress_pooler_site_backends{site="$site"}`, "backends"},
			query{`rate(aipress_pooler_site_refused_total{site="$site"}[5m])`, "refused / s"}),
		ts("Size", "bytes",
			query{`aipress_site_database_bytes{site="$site"}`, "database"},
			query{`aipress_site_files_bytes{site="$site"}`, "files"}),
	}
}
