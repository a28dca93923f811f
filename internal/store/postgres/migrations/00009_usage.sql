-- +goose Up
-- usage_hourly: each site's usage per hour (UTC, "YYYY-MM-DDTHH") on a
-- shard: counters added by every report, gauges set by the last one that
-- measured them (NULL: none did). Daily and monthly rollups group by the
-- hour's prefix (internal/store/usage.go).
CREATE TABLE usage_hourly (
    site         text COLLATE "C" NOT NULL,
    hour         text COLLATE "C" NOT NULL,
    shard        text COLLATE "C" NOT NULL DEFAULT '',
    requests     bigint NOT NULL DEFAULT 0,
    bytes_out    bigint NOT NULL DEFAULT 0,
    cache_hits   bigint NOT NULL DEFAULT 0,
    php_us       bigint NOT NULL DEFAULT 0,
    db_queries   bigint NOT NULL DEFAULT 0,
    db_bytes     bigint,
    files_bytes  bigint,
    backup_bytes bigint,
    PRIMARY KEY (hour, site)
);

-- usage_reports: the reports already applied, so that a retried one adds
-- nothing (kept store.UsageReportRetention).
CREATE TABLE usage_reports (
    source text COLLATE "C" NOT NULL,
    id     text COLLATE "C" NOT NULL,
    hour   text COLLATE "C" NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX usage_reports_hour ON usage_reports (hour);

-- +goose Down
DROP TABLE usage_reports;
DROP TABLE usage_hourly;
