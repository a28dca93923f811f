-- +goose Up
-- A site's move (site.Site.Move, JSON; 'null' when it never moved) and, while
-- the move is active, its source and target as columns: a shard holds a site
-- when it is in shard, move_source or move_target (site.Site.Shards). The
-- store keeps the two in sync on every write.
ALTER TABLE sites ADD COLUMN move json NOT NULL DEFAULT 'null';
ALTER TABLE sites ADD COLUMN move_source text NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN move_target text NOT NULL DEFAULT '';
CREATE INDEX sites_move_source_name ON sites (move_source, name);
CREATE INDEX sites_move_target_name ON sites (move_target, name);
-- Changes reads sites in revision order.
CREATE INDEX sites_resource_version ON sites (resource_version);

-- shards: the registry of shards. body is the JSON of store.Shard without
-- what has columns; last_heartbeat and usage are written by Heartbeat alone,
-- which does not take a revision (and UpdateShard never writes them).
CREATE TABLE shards (
    name             text COLLATE "C" PRIMARY KEY,
    resource_version bigint NOT NULL,
    body             json NOT NULL,
    last_heartbeat   timestamptz,
    usage            json NOT NULL DEFAULT '{}'
);
CREATE INDEX shards_resource_version ON shards (resource_version);

-- tombstones: a site left a shard (or was deleted) at revision. shard is ''
-- for the deletion of a site that held no shard.
CREATE TABLE tombstones (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision bigint NOT NULL,
    name     text NOT NULL,
    uid      text NOT NULL,
    shard    text NOT NULL,
    deleted  boolean NOT NULL
);
CREATE INDEX tombstones_revision ON tombstones (revision);
CREATE INDEX tombstones_shard_revision ON tombstones (shard, revision);

-- The prune horizon: the largest before PruneTombstones was given. Changes
-- since an older revision gives store.ErrExpired.
INSERT INTO meta (key, value) VALUES ('tombstones_pruned_before', 0);

-- What a token is bound to (a shard token's shard).
ALTER TABLE tokens ADD COLUMN subject text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN subject;
DELETE FROM meta WHERE key = 'tombstones_pruned_before';
DROP TABLE tombstones;
DROP TABLE shards;
DROP INDEX sites_resource_version;
DROP INDEX sites_move_target_name;
DROP INDEX sites_move_source_name;
ALTER TABLE sites DROP COLUMN move_target;
ALTER TABLE sites DROP COLUMN move_source;
ALTER TABLE sites DROP COLUMN move;
