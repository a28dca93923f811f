-- +goose Up
-- jobs: long operations (backups, restores, verifications) with progress.
-- body is the JSON of store.Job; the columns are copies of what is filtered
-- or ordered on (resource_version is authoritative). created is CreatedAt in
-- nanoseconds since the epoch, so jobs list newest first by (created, id)
-- with the nanoseconds the JSON keeps.
CREATE TABLE jobs (
    id               text COLLATE "C" PRIMARY KEY,
    kind             text NOT NULL,
    site             text NOT NULL DEFAULT '',
    shard            text NOT NULL DEFAULT '',
    phase            text NOT NULL,
    created          bigint NOT NULL,
    resource_version bigint NOT NULL,
    body             json NOT NULL
);
CREATE INDEX jobs_created ON jobs (created, id);
CREATE INDEX jobs_site_created ON jobs (site, created, id);
CREATE INDEX jobs_shard_phase ON jobs (shard, phase);

-- +goose Down
DROP TABLE jobs;
