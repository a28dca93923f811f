-- +goose Up
-- meta holds store-wide counters; "revision" is the value of the last site
-- write (see store.Store). Every site write bumps it with
-- UPDATE ... RETURNING in its own transaction, so the row lock serialises the
-- revision across connections and processes, and a rolled-back write leaves
-- no gap.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);

-- sites keeps the fields we query or constrain on as columns and the rest as
-- the JSON of site.Site's parts. name is COLLATE "C" so that ListSites orders
-- and pages by bytes, as SQLite does, whatever the database's locale. The
-- JSON columns are json, not jsonb: json keeps the text exactly as written and
-- accepts every string encoding/json produces, while jsonb refuses \u0000 (a
-- NUL in, say, a condition message would make the site unwritable). Nothing
-- queries inside them.
CREATE TABLE sites (
    name             text COLLATE "C" PRIMARY KEY,
    uid              text NOT NULL UNIQUE,
    shard            text NOT NULL DEFAULT '',
    resource_version bigint NOT NULL,
    metadata         json NOT NULL,
    spec             json NOT NULL,
    status           json NOT NULL
);
CREATE INDEX sites_shard_name ON sites (shard, name);

CREATE TABLE tokens (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL,
    hash       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE audit (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time    timestamptz NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    outcome text NOT NULL
);

-- +goose Down
DROP TABLE audit;
DROP TABLE tokens;
DROP TABLE sites;
DROP TABLE meta;
