package store

import (
	"time"

	"github.com/aipress/aipress/internal/site"
)

// Code jobs: a site's plugins, themes, core, options and must-use settings
// (site/code.go) are applied by these.
const (
	// JobCode runs on the site's shard: it brings what the site runs to
	// its spec's code (fetching artefacts, linking them, activating and
	// deactivating through WordPress, setting options, switching or
	// upgrading the core), checks the site's health after the change and
	// rolls code and database back when the check fails. It applies the
	// spec as it is when the job runs (a newer generation than the one the
	// job was created for is fine). Params: CodeParams. Result: CodeResult.
	JobCode JobKind = "code"
	// JobUpdate runs in the control plane: a staged update of one site —
	// clone the site from its latest snapshot into a throw-away staging
	// site on the same shard, apply the change there, smoke-test it,
	// delete the staging site, and only then apply the change to the
	// site. Params: UpdateParams. Result: UpdateResult.
	JobUpdate JobKind = "update"
	// JobFleetUpdate runs in the control plane: the same change to many
	// sites, in waves (a canary first), each site a staged update;
	// stops when the failure rate of a wave exceeds a limit. Params:
	// FleetUpdateParams. Result: FleetUpdateResult.
	JobFleetUpdate JobKind = "fleet-update"
)

// CodeParams are a code job's parameters.
type CodeParams struct {
	// Generation is the site's generation when the job was created.
	Generation int64 `json:"generation"`
	// Reason is "spec" (a spec change), "enforce" (bringing a drifted
	// site back) or "update" (a staged update's step).
	Reason string `json:"reason,omitempty"`
	// Smoke is the health check after the change (zero: the default one:
	// the home page, the login page and the REST API answer 200,
	// wp-admin's bootstrap answers through admin-ajax.php, no new PHP
	// fatal in the site's error log; see SmokeTest).
	Smoke SmokeTest `json:"smoke,omitzero"`
}

// SmokeTest is what a code job checks after a change.
type SmokeTest struct {
	// Paths are fetched from the site (with its Host); default "/",
	// "/wp-login.php" and the REST API by its query form "/?rest_route=/"
	// (which works with every permalink setting) — each must answer
	// Status — and "/wp-admin/admin-ajax.php", which must answer 400 "0"
	// (anonymous visitors of /wp-admin/ are redirected to the login page;
	// admin-ajax.php runs wp-admin's bootstrap and admin_init). Every code
	// job also checks the site's PHP error log for new fatal errors.
	Paths []string `json:"paths,omitempty"`
	// Status is the status each path must answer (default 200).
	Status int `json:"status,omitempty"`
	// Contains, when set, must appear in the home page's body (a
	// visual-free content check).
	Contains string `json:"contains,omitempty"`
}

// CodeChange is one step of a code plan: what changes and why.
type CodeChange struct {
	// Action is install, update, remove, activate, deactivate, option,
	// constant or core; in a site file's plan (package sitefile) also
	// create (the site) and set (a site setting).
	Action string `json:"action"`
	// Kind is plugin, theme, option, constant or core; in a site file's
	// plan also site (Name is then the setting: title, plan, cache.ttl_seconds …).
	Kind string `json:"kind"`
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Reason says why, for humans ("not installed", "drift: deactivated
	// outside the spec", ...).
	Reason string `json:"reason,omitempty"`
	// Drift: the site runs something its spec does not say (changed
	// outside the platform); the change brings it back to the spec.
	Drift bool `json:"drift,omitempty"`
}

// CodeResult is what a finished code job reports.
type CodeResult struct {
	Generation int64        `json:"generation"`
	Changes    []CodeChange `json:"changes,omitempty"`
	// Checks are the health checks run after the change.
	Checks []HealthCheck `json:"checks,omitempty"`
	// RolledBack: the change failed (Error says why) and the site's code
	// and database were put back as they were.
	RolledBack bool   `json:"rolled_back,omitempty"`
	Error      string `json:"error,omitempty"`
	// Observed is what the site runs after the job.
	Observed *site.CodeStatus `json:"observed,omitempty"`
	Duration string           `json:"duration,omitempty"`
}

// HealthCheck is one check of a code job or a smoke test.
type HealthCheck struct {
	Name   string `json:"name"` // "GET /", "php errors", ...
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// UpdateParams are a staged update's parameters.
type UpdateParams struct {
	// Plugins, Themes and CoreVersion are the change: each listed
	// extension replaces the spec's entry of that name (or is added);
	// Remove names extensions to remove.
	Plugins     []site.Extension `json:"plugins,omitempty"`
	Themes      []site.Extension `json:"themes,omitempty"`
	Remove      []string         `json:"remove,omitempty"`
	CoreVersion string           `json:"core_version,omitempty"`
	// KeepActive: a listed extension the spec already has keeps its
	// active state, and its source when the listed one gives none (what
	// "update X to 2.1" means; the CLI sets it).
	KeepActive bool      `json:"keep_active,omitempty"`
	Smoke      SmokeTest `json:"smoke,omitzero"`
	// SkipStaging applies the change to the site directly (its own code
	// job still checks health and rolls back).
	SkipStaging bool `json:"skip_staging,omitempty"`
	// Fleet is the fleet update this update belongs to ("" alone).
	Fleet string `json:"fleet,omitempty"`
}

// UpdateResult is a staged update's report.
type UpdateResult struct {
	// Staging is the throw-away site the change was tried on, and
	// Snapshot the snapshot it was cloned from.
	Staging  string `json:"staging,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	// Step is where the update is or stopped: snapshot, staging,
	// staging-apply, smoke, cleanup, apply, done.
	Step string `json:"step,omitempty"`
	// StagingResult and Result are the code jobs' results on the staging
	// site and on the site.
	StagingResult *CodeResult `json:"staging_result,omitempty"`
	Result        *CodeResult `json:"result,omitempty"`
	// Applied: the change reached the site.
	Applied  bool   `json:"applied"`
	Error    string `json:"error,omitempty"`
	Duration string `json:"duration,omitempty"`
	// BackupJob is the backup the update made (and waited for) when the
	// site had no snapshot newer than its last code change.
	BackupJob string `json:"backup_job,omitempty"`
	// StagingJob and Job are the code jobs on the staging site and on the
	// site.
	StagingJob string `json:"staging_job,omitempty"`
	Job        string `json:"job,omitempty"`
	// Before and After are the site's code (spec) before and with the
	// change; Generation is the site's generation that carries the change
	// (0: the site's spec was not changed).
	Before     *site.CodeSpec `json:"before,omitempty"`
	After      *site.CodeSpec `json:"after,omitempty"`
	Generation int64          `json:"generation,omitempty"`
	// Reverted: the change failed on the site and its spec was put back
	// to Before (its code job had rolled the code back).
	Reverted bool `json:"reverted,omitempty"`
}

// Staged update steps (UpdateResult.Step).
const (
	UpdateStepSnapshot     = "snapshot"
	UpdateStepStaging      = "staging"
	UpdateStepStagingApply = "staging-apply"
	UpdateStepSmoke        = "smoke"
	UpdateStepCleanup      = "cleanup"
	UpdateStepApply        = "apply"
	UpdateStepDone         = "done"
)

// FleetUpdateParams are a fleet update's parameters.
type FleetUpdateParams struct {
	Change UpdateParams `json:"change"`
	// Sites are the sites to update, in order (the first Canary of them
	// form the first wave).
	Sites []string `json:"sites"`
	// Canary is the size of the first wave (default 1); WaveSize the
	// size of the later ones (default 10).
	Canary   int `json:"canary,omitempty"`
	WaveSize int `json:"wave_size,omitempty"`
	// MaxFailureRate stops the rollout after a wave whose share of failed
	// updates is above it (0–1; default 0: any failure stops it).
	MaxFailureRate float64 `json:"max_failure_rate,omitempty"`
	// Parallel is how many updates of a wave run at once (default 4).
	Parallel int `json:"parallel,omitempty"`
}

// FleetUpdateResult is a fleet update's report, updated as waves finish.
type FleetUpdateResult struct {
	Waves []FleetWave `json:"waves"`
	// Stopped says why the rollout stopped early ("" when it ran to the end).
	Stopped  string `json:"stopped,omitempty"`
	Updated  int    `json:"updated"`
	Failed   int    `json:"failed"`
	Skipped  int    `json:"skipped"`
	Duration string `json:"duration,omitempty"`
}

// FleetWave is one wave of a fleet update.
type FleetWave struct {
	Sites    []FleetSite `json:"sites"`
	Started  time.Time   `json:"started,omitzero"`
	Finished time.Time   `json:"finished,omitzero"`
}

// FleetSite is one site of a wave.
type FleetSite struct {
	Site  string `json:"site"`
	Job   string `json:"job,omitempty"` // its update job
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// State is pending, running, updated, failed or skipped.
	State string `json:"state,omitempty"`
}

// Fleet site states (FleetSite.State).
const (
	FleetPending = "pending"
	FleetRunning = "running"
	FleetUpdated = "updated"
	FleetFailed  = "failed"
	FleetSkipped = "skipped"
)
