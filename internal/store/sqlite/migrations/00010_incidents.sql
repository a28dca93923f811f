-- +goose Up
-- incidents: spans of time the uptime probes saw a site down (package
-- uptime; store.Incident). Times are nanoseconds since the epoch (UTC);
-- ended is NULL while the incident is open, and a site has at most one
-- open incident (incidents_open).
CREATE TABLE incidents (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    site    TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended   INTEGER,
    cause   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX incidents_open ON incidents (site) WHERE ended IS NULL;
CREATE INDEX incidents_site_started ON incidents (site, started);
CREATE INDEX incidents_started ON incidents (started);

-- +goose Down
DROP TABLE incidents;
