-- +goose Up
-- The audit log becomes a hash chain (store.AuditEntry, package auditlog).
-- seq numbers the entries 1, 2, 3… in the order they were appended (the
-- existing rows in id order); the new columns of existing rows stay empty
-- (they predate organisations, channels and request IDs). Their hashes
-- cannot be computed in SQL: Open chains every row whose hash is empty, in
-- seq order, right after migrating (chainLegacyAudit), once.
ALTER TABLE audit ADD COLUMN seq bigint;
UPDATE audit SET seq = r.n FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit) AS r WHERE audit.id = r.id;
ALTER TABLE audit ALTER COLUMN seq SET NOT NULL;
ALTER TABLE audit ADD COLUMN actor_user text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN org        text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN channel    text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN request_id text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN source_ip  text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN prev_hash  text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash       text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX audit_seq ON audit (seq);
CREATE INDEX audit_org_seq ON audit (org, seq);

-- Signed checkpoints of the chain (store.AuditCheckpoint).
CREATE TABLE audit_checkpoints (
    seq       bigint PRIMARY KEY,
    hash      text NOT NULL,
    time      timestamptz NOT NULL,
    key_id    text NOT NULL,
    signature bytea NOT NULL
);

-- +goose Down
DROP TABLE audit_checkpoints;
DROP INDEX audit_org_seq;
DROP INDEX audit_seq;
ALTER TABLE audit DROP COLUMN hash;
ALTER TABLE audit DROP COLUMN prev_hash;
ALTER TABLE audit DROP COLUMN source_ip;
ALTER TABLE audit DROP COLUMN request_id;
ALTER TABLE audit DROP COLUMN channel;
ALTER TABLE audit DROP COLUMN org;
ALTER TABLE audit DROP COLUMN actor_user;
ALTER TABLE audit DROP COLUMN seq;
