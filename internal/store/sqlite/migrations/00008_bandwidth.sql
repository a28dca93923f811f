-- +goose Up
-- bandwidth: the response bytes edges sent per site per calendar month
-- (UTC, "YYYY-MM"), against the site plan's bandwidth_gb (internal/plans).
CREATE TABLE bandwidth (
    site  TEXT NOT NULL,
    month TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (month, site)
) STRICT;

-- +goose Down
DROP TABLE bandwidth;
