-- +goose Up
-- Accounts (store.Accounts): organisations own sites, users are members of
-- organisations with roles, tokens act for users within a scope.

-- orgs: body is the JSON of store.Org; name, kind, partner and
-- resource_version are columns (authoritative) for lookups and filters.
-- partner is '' for none (the store checks it names a partner org).
CREATE TABLE orgs (
    name             TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    partner          TEXT NOT NULL DEFAULT '',
    resource_version INTEGER NOT NULL,
    body             TEXT NOT NULL
) STRICT;
CREATE INDEX orgs_partner_name ON orgs (partner, name);

-- users: body is the JSON of store.User without the columns; the password
-- hash is a column only (never in the JSON). An OIDC identity is unique
-- when set.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL DEFAULT '',
    oidc_issuer   TEXT NOT NULL DEFAULT '',
    oidc_subject  TEXT NOT NULL DEFAULT '',
    body          TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_oidc ON users (oidc_issuer, oidc_subject) WHERE oidc_issuer <> '';

CREATE TABLE memberships (
    org        TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org, user_id)
) STRICT;
CREATE INDEX memberships_user ON memberships (user_id, org);

-- invites and reset_tokens keep the SHA-256 hex of their secrets, never the
-- secrets. Times are RFC 3339 (UTC, nanoseconds) as the tokens'.
CREATE TABLE invites (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    accepted_at TEXT
) STRICT;
CREATE INDEX invites_org_id ON invites (org, id);

CREATE TABLE reset_tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;
CREATE INDEX reset_tokens_user ON reset_tokens (user_id);

-- Token scope (store.Token). SQLite cannot add a column with a foreign key
-- and a non-NULL default, so the store keeps user_id and org consistent
-- itself (DeleteUser and DeleteOrg delete the tokens).
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE tokens ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN org TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN replaced_by TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_user_id ON tokens (user_id);
CREATE INDEX tokens_org ON tokens (org);

-- The organisation that owns a site (site.Metadata.Org; the column is
-- authoritative). Existing sites go to the default organisation.
ALTER TABLE sites ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
CREATE INDEX sites_org_name ON sites (org, name);

-- The default organisation, and the bootstrap admin who owns it and owns
-- the admin tokens made before users existed (store.BootstrapUserID). The
-- org's resource version is the current revision: the migration is no
-- site write and takes none (watchers would see a revision without a
-- change).
INSERT INTO orgs (name, kind, partner, resource_version, body)
SELECT 'default', 'customer', '', value,
       json_object('name', 'default', 'display_name', 'Default', 'kind', 'customer', 'plan', '',
                   'branding', json_object(), 'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                   'resource_version', 0)
FROM meta WHERE key = 'revision';
INSERT INTO users (id, email, body)
VALUES ('usr-admin', 'admin@localhost',
        json_object('platform_role', 'admin', 'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
INSERT INTO memberships (org, user_id, role, created_at)
VALUES ('default', 'usr-admin', 'owner', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
UPDATE tokens SET user_id = 'usr-admin' WHERE role = 'admin';

-- +goose Down
DROP INDEX sites_org_name;
ALTER TABLE sites DROP COLUMN org;
DROP INDEX tokens_org;
DROP INDEX tokens_user_id;
ALTER TABLE tokens DROP COLUMN replaced_by;
ALTER TABLE tokens DROP COLUMN last_used_ip;
ALTER TABLE tokens DROP COLUMN last_used_at;
ALTER TABLE tokens DROP COLUMN expires_at;
ALTER TABLE tokens DROP COLUMN org;
ALTER TABLE tokens DROP COLUMN user_id;
ALTER TABLE tokens DROP COLUMN prefix;
ALTER TABLE tokens DROP COLUMN kind;
DROP TABLE reset_tokens;
DROP TABLE invites;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE orgs;
