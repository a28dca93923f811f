-- +goose Up
-- waf_events: the WAF's matches on requests it refused, as edges report
-- them (store.Store, WAF events). body is the JSON of site.WAFEvent without
-- its ID; time is its Time in nanoseconds since the epoch (retention
-- deletes by it). Listing is by (site, id), newest first.
CREATE TABLE waf_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    site     TEXT NOT NULL,
    site_uid TEXT NOT NULL,
    time     INTEGER NOT NULL,
    body     TEXT NOT NULL
) STRICT;
CREATE INDEX waf_events_site_id ON waf_events (site, id);
CREATE INDEX waf_events_time ON waf_events (time);

-- What a mutation changed, when the action does not say (store.AuditEntry).
ALTER TABLE audit ADD COLUMN detail TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit DROP COLUMN detail;
DROP TABLE waf_events;
