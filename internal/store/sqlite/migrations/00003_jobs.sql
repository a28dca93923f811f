-- +goose Up
-- jobs: long operations (backups, restores, verifications) with progress.
-- body is the JSON of store.Job; the columns are copies of what is filtered
-- or ordered on (resource_version is authoritative). created is CreatedAt in
-- nanoseconds since the epoch, so jobs list newest first by (created, id).
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    site             TEXT NOT NULL DEFAULT '',
    shard            TEXT NOT NULL DEFAULT '',
    phase            TEXT NOT NULL,
    created          INTEGER NOT NULL,
    resource_version INTEGER NOT NULL,
    body             TEXT NOT NULL
) STRICT;
CREATE INDEX jobs_created ON jobs (created, id);
CREATE INDEX jobs_site_created ON jobs (site, created, id);
CREATE INDEX jobs_shard_phase ON jobs (shard, phase);

-- +goose Down
DROP TABLE jobs;
