-- +goose Up
-- Accounts (store.Accounts): organisations own sites, users are members of
-- organisations with roles, tokens act for users within a scope. Names and
-- IDs are COLLATE "C" so lists order by bytes, as SQLite's do; bodies are
-- json, not jsonb (see sites).

-- orgs: body is the JSON of store.Org; name, kind, partner and
-- resource_version are columns (authoritative) for lookups and filters.
-- partner is '' for none (the store checks it names a partner org).
CREATE TABLE orgs (
    name             text COLLATE "C" PRIMARY KEY,
    kind             text NOT NULL,
    partner          text COLLATE "C" NOT NULL DEFAULT '',
    resource_version bigint NOT NULL,
    body             json NOT NULL
);
CREATE INDEX orgs_partner_name ON orgs (partner, name);

-- users: body is the JSON of store.User without the columns; the password
-- hash is a column only (never in the JSON). An OIDC identity is unique
-- when set.
CREATE TABLE users (
    id            text COLLATE "C" PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL DEFAULT '',
    oidc_issuer   text NOT NULL DEFAULT '',
    oidc_subject  text NOT NULL DEFAULT '',
    body          json NOT NULL
);
CREATE UNIQUE INDEX users_oidc ON users (oidc_issuer, oidc_subject) WHERE oidc_issuer <> '';

CREATE TABLE memberships (
    org        text COLLATE "C" NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, org);

-- invites and reset_tokens keep the SHA-256 hex of their secrets, never the
-- secrets.
CREATE TABLE invites (
    id          text COLLATE "C" PRIMARY KEY,
    org         text COLLATE "C" NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL,
    hash        text NOT NULL UNIQUE,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);
CREATE INDEX invites_org_id ON invites (org, id);

CREATE TABLE reset_tokens (
    hash       text PRIMARY KEY,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX reset_tokens_user ON reset_tokens (user_id);

-- Token scope (store.Token). user_id and org are '' for none, so they
-- carry no foreign keys: the store keeps them consistent itself (DeleteUser
-- and DeleteOrg delete the tokens), as the sqlite store does.
ALTER TABLE tokens ADD COLUMN kind text NOT NULL DEFAULT 'api';
ALTER TABLE tokens ADD COLUMN prefix text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN user_id text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN org text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE tokens ADD COLUMN last_used_at timestamptz;
ALTER TABLE tokens ADD COLUMN last_used_ip text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN replaced_by text NOT NULL DEFAULT '';
CREATE INDEX tokens_user_id ON tokens (user_id);
CREATE INDEX tokens_org ON tokens (org);

-- The default organisation, and the bootstrap admin who owns it and owns
-- the admin tokens made before users existed (store.BootstrapUserID). The
-- org's resource version is the current revision: the migration is no
-- site write and takes none (watchers would see a revision without a
-- change).
INSERT INTO orgs (name, kind, partner, resource_version, body)
SELECT 'default', 'customer', '', value,
       json_build_object('name', 'default', 'display_name', 'Default', 'kind', 'customer', 'plan', '',
                         'branding', json_build_object(), 'created_at', now(), 'resource_version', 0)
FROM meta WHERE key = 'revision';
INSERT INTO users (id, email, body)
VALUES ('usr-admin', 'admin@localhost', json_build_object('platform_role', 'admin', 'created_at', now()));
INSERT INTO memberships (org, user_id, role, created_at) VALUES ('default', 'usr-admin', 'owner', now());
UPDATE tokens SET user_id = 'usr-admin' WHERE role = 'admin';

-- The organisation that owns a site (site.Metadata.Org; the column is
-- authoritative). Existing sites go to the default organisation; the
-- foreign key keeps a site's organisation from vanishing under it.
ALTER TABLE sites ADD COLUMN org text COLLATE "C" NOT NULL DEFAULT 'default' REFERENCES orgs (name);
CREATE INDEX sites_org_name ON sites (org, name);

-- +goose Down
ALTER TABLE sites DROP COLUMN org;
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
