-- +goose Up
-- Active jobs (Pending, Running) are looked up on every API write: the
-- leader's job runners by kind, the revision hub by what changed since its
-- last read (resource_version). Without these a lookup walked every job
-- ever kept, finished ones included (bench/scale: a seventh of the control
-- plane's CPU during a burst of creates at 10,000 sites).
CREATE INDEX jobs_phase_kind ON jobs (phase, kind);
CREATE INDEX jobs_phase_version ON jobs (phase, resource_version);

-- +goose Down
DROP INDEX jobs_phase_version;
DROP INDEX jobs_phase_kind;
