-- +goose Up
-- waf_events: the WAF's matches on requests it refused, as edges report
-- them (store.Store, WAF events). body is the JSON of site.WAFEvent without
-- its ID (json, not jsonb: see sites); time is its Time (retention deletes
-- by it). Listing is by (site, id), newest first.
CREATE TABLE waf_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site     text COLLATE "C" NOT NULL,
    site_uid text NOT NULL,
    time     timestamptz NOT NULL,
    body     json NOT NULL
);
CREATE INDEX waf_events_site_id ON waf_events (site, id);
CREATE INDEX waf_events_time ON waf_events (time);

-- What a mutation changed, when the action does not say (store.AuditEntry).
ALTER TABLE audit ADD COLUMN detail text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit DROP COLUMN detail;
DROP TABLE waf_events;
