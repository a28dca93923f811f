-- +goose Up
-- bandwidth: the response bytes edges sent per site per calendar month
-- (UTC, "YYYY-MM"), against the site plan's bandwidth_gb (internal/plans).
CREATE TABLE bandwidth (
    site  text COLLATE "C" NOT NULL,
    month text NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (month, site)
);

-- +goose Down
DROP TABLE bandwidth;
