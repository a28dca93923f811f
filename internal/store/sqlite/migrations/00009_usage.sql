-- +goose Up
-- usage_hourly: each site's usage per hour (UTC, "YYYY-MM-DDTHH") on a
-- shard: counters added by every report, gauges set by the last one that
-- measured them (NULL: none did). Daily and monthly rollups group by the
-- hour's prefix (internal/store/usage.go).
CREATE TABLE usage_hourly (
    site         TEXT NOT NULL,
    hour         TEXT NOT NULL,
    shard        TEXT NOT NULL DEFAULT '',
    requests     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    cache_hits   INTEGER NOT NULL DEFAULT 0,
    php_us       INTEGER NOT NULL DEFAULT 0,
    db_queries   INTEGER NOT NULL DEFAULT 0,
    db_bytes     INTEGER,
    files_bytes  INTEGER,
    backup_bytes INTEGER,
    PRIMARY KEY (hour, site)
) STRICT;

-- usage_reports: the reports already applied, so that a retried one adds
-- nothing (kept store.UsageReportRetention).
CREATE TABLE usage_reports (
    source TEXT NOT NULL,
    id     TEXT NOT NULL,
    hour   TEXT NOT NULL,
    PRIMARY KEY (source, id)
) STRICT;
CREATE INDEX usage_reports_hour ON usage_reports (hour);

-- +goose Down
DROP TABLE usage_reports;
DROP TABLE usage_hourly;
