-- +goose Up
-- meta holds store-wide counters; "revision" is the value of the last site
-- write (see store.Store).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('revision', 0);

-- sites keeps the fields we query or constrain on as columns and the rest as
-- the JSON of site.Site's parts.
CREATE TABLE sites (
    name             TEXT PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE,
    shard            TEXT NOT NULL DEFAULT '',
    resource_version INTEGER NOT NULL,
    metadata         TEXT NOT NULL,
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL
) STRICT;
CREATE INDEX sites_shard_name ON sites (shard, name);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE audit;
DROP TABLE tokens;
DROP TABLE sites;
DROP TABLE meta;
