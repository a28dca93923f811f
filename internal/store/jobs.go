package store

import (
	"encoding/json"
	"time"
)

// JobKind names what a job does. Jobs run on a shard (the shard agent claims
// them) or in the control plane (Shard empty).
type JobKind string

// Job kinds.
const (
	// JobBackup snapshots a site (database + wp-content + spec) into the
	// backup repository. Params: BackupParams. Result: BackupResult.
	JobBackup JobKind = "backup"
	// JobRestore restores a snapshot into a site: in place (the site is
	// put into maintenance, restored into staging, swapped in, brought
	// back) or into the site the job names when that site was created from
	// a snapshot (a clone, a restore onto another shard, a disaster
	// recovery). Params: RestoreParams.
	JobRestore JobKind = "restore"
	// JobVerifyRestore restores a sample snapshot into a scratch database
	// and site on a shard, checks that WordPress answers 200 and that the
	// table checksums match the snapshot's manifest, then removes the
	// scratch copy. Params: RestoreParams (Snapshot).
	JobVerifyRestore JobKind = "verify-restore"
	// JobExport writes a site's portable archive (package siteport: a
	// tar.gz of wp-content, database.sql and manifest.json) into the
	// transfer store, where GET /v1/jobs/{id}/archive reads it. No
	// params. Result: ExportResult.
	JobExport JobKind = "export"
	// JobWXRImport imports a WXR file (Tools → Export of any WordPress)
	// from the transfer store into an installed site: WordPress inserts
	// its authors, terms, posts, comments, menus and attachments.
	// Params: WXRImportParams. Result: the shard's WXRImportReport.
	JobWXRImport JobKind = "wxr-import"
	// JobResync applies a delta archive pulled from the live site a site
	// was imported from (package liveimport: changed files, the whole
	// database again, files deleted on the source) to the site in place.
	// Params: ResyncParams. Result: the shard's ResyncReport.
	JobResync JobKind = "live-resync"
)

// ResyncParams are a JobResync's.
type ResyncParams struct {
	// Key is the delta archive's object in the transfer store (removed
	// once applied).
	Key string `json:"key"`
}

// ResyncKey is the transfer store's key of delta archive id for the
// site with uid; ResyncPrefix where a job's key must lie.
func ResyncKey(uid, id string) string { return ResyncPrefix(uid) + id + ".tar.gz" }

// ResyncPrefix is where the delta archives for the site with uid are.
func ResyncPrefix(uid string) string { return "imports/resync/" + uid + "/" }

// ExportParams are an export job's; absent: a portable archive.
type ExportParams struct {
	// Format is ExportArchive (the default) or ExportWXR.
	Format string `json:"format,omitempty"`
}

// Export formats.
const (
	ExportArchive = "archive"
	ExportWXR     = "wxr"
)

// WXRImportParams are a JobWXRImport's.
type WXRImportParams struct {
	// Key is the WXR file's object in the transfer store (removed once
	// imported).
	Key string `json:"key"`
	// SkipAttachments imports no attachments.
	SkipAttachments bool `json:"skip_attachments,omitempty"`
}

// WXRImportKey is the transfer store's key of WXR file id to import
// into the site with uid.
func WXRImportKey(uid, id string) string { return WXRImportPrefix(uid) + id + ".xml" }

// WXRImportPrefix is where the WXR files to import into the site with
// uid are: a job's key must lie there.
func WXRImportPrefix(uid string) string { return "imports/wxr/" + uid + "/" }

// WXRExportKey is the transfer store's key of the WXR file of export job
// id of the site with uid.
func WXRExportKey(uid, id string) string { return "exports/" + uid + "/" + id + ".xml" }

// ExportResult is what a JobExport made.
type ExportResult struct {
	// Format is ExportWXR for a WXR file; empty: an archive.
	Format string `json:"format,omitempty"`
	// WXR is what a WXR file holds (wxr.Summary).
	WXR json.RawMessage `json:"wxr,omitempty"`
	// Key is the archive's object in the transfer store; Bytes and
	// SHA256 are the archive's.
	Key    string `json:"key"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// From the archive's manifest.
	Files            int    `json:"files"`
	DatabaseBytes    int64  `json:"database_bytes"`
	WordPressVersion string `json:"wordpress_version,omitempty"`
	URL              string `json:"url"`
}

// ExportKey is the transfer store's key of the archive of export job id
// of the site with uid.
func ExportKey(uid, id string) string { return "exports/" + uid + "/" + id + ".tar.gz" }

// JobPhase is where a job is.
type JobPhase string

// Job phases. A job moves Pending → Running → Succeeded | Failed; a Running
// job whose runner died is run again by the next claim (Attempts counts).
const (
	JobPending   JobPhase = "Pending"
	JobRunning   JobPhase = "Running"
	JobSucceeded JobPhase = "Succeeded"
	JobFailed    JobPhase = "Failed"
)

// Job is one long operation with visible progress.
type Job struct {
	ID      string  `json:"id"`
	Kind    JobKind `json:"kind"`
	Site    string  `json:"site,omitempty"`
	SiteUID string  `json:"site_uid,omitempty"`
	// Shard runs the job; empty: the control plane does.
	Shard  string          `json:"shard,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Phase  JobPhase        `json:"phase"`
	// Attempts counts claims (a crash mid-way makes the next claim run it
	// again from the start).
	Attempts   int             `json:"attempts"`
	Progress   JobProgress     `json:"progress"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	// ResourceVersion is the revision of the job's last write (jobs take
	// revisions from the store-wide counter, so watchers wake).
	ResourceVersion int64 `json:"resource_version"`
}

// JobProgress is a job's progress for humans and progress bars.
type JobProgress struct {
	Done    int64  `json:"done"`  // bytes (or steps) done
	Total   int64  `json:"total"` // 0: unknown
	Message string `json:"message,omitempty"`
}

// JobListOptions selects jobs; empty fields match everything. Jobs come
// newest first (CreatedAt, then ID), at most Limit (default 100, max 1000)
// per page, Continue as for sites.
type JobListOptions struct {
	Site string
	// Sites, when not nil, keeps only the jobs of these sites (an empty,
	// non-nil slice selects none): one query for a page of sites.
	Sites  []string
	Shard  string
	Kind   JobKind
	Phases []JobPhase
	// ChangedAfter, when positive, keeps only the jobs written after that
	// revision (ResourceVersion > ChangedAfter): what a watcher of the
	// store's revision needs of the jobs, without reading the others.
	ChangedAfter int64
	Limit        int
	Continue     string
}

// JobList is one page of jobs.
type JobList struct {
	Items    []Job  `json:"items"`
	Continue string `json:"continue,omitempty"`
}

// BackupParams are a backup job's parameters.
type BackupParams struct {
	// Reason is "manual", "schedule" or "pre-restore".
	Reason string `json:"reason,omitempty"`
}

// BackupResult is what a finished backup job reports.
type BackupResult struct {
	// Snapshot is the snapshot's reference, "<repository>:<id>" (the
	// repository is the shard's name).
	Snapshot    string `json:"snapshot"`
	TotalBytes  int64  `json:"total_bytes"`
	NewBytes    int64  `json:"new_bytes"`    // bytes of chunks the repository did not have
	StoredBytes int64  `json:"stored_bytes"` // what those took after compression and encryption
	// Time is the snapshot's time (when its consistent view began); zero:
	// the job's StartedAt stands for it.
	Time time.Time `json:"time,omitzero"`
	// ForgottenAt is set by the control plane when retention (or an
	// operator) removed the snapshot from its repository.
	ForgottenAt *time.Time `json:"forgotten_at,omitempty"`
}

// RestoreParams are a restore job's parameters.
type RestoreParams struct {
	Snapshot string `json:"snapshot"`
	// FromDomain is the domain the snapshot was taken of; when it differs
	// from the site's, URLs are rewritten (serialisation-safe).
	FromDomain string `json:"from_domain,omitempty"`
	FromURL    string `json:"from_url,omitempty"`
	// InPlace: restore over the existing site (maintenance, staging, swap).
	InPlace bool `json:"in_place,omitempty"`
	// At, if set, is a point in time after Snapshot (which the control
	// plane chose as the site's latest snapshot before it): after
	// restoring the snapshot the shard replays the site's shipped
	// database log (package pitr) up to and including At.
	At *time.Time `json:"at,omitempty"`
}

// Jobs the control plane runs itself (Shard empty).
const (
	// JobVerify checks the integrity of backup repositories (chunks,
	// indexes, manifests). Params: VerifyParams.
	JobVerify JobKind = "verify"
	// JobPrune forgets nothing but deletes the data no snapshot
	// references any more, per repository. Params: PruneParams.
	JobPrune JobKind = "prune"
	// JobRecover rebuilds every site of a lost shard on another shard from
	// its latest snapshot. Params: RecoverParams. Result: RecoverResult.
	JobRecover JobKind = "recover"
)

// VerifyParams are a verify job's parameters.
type VerifyParams struct {
	// Site limits the check to the repositories holding the site's
	// snapshots, and the report to its snapshots; empty: every repository.
	Site string `json:"site,omitempty"`
	// Full reads and checks every chunk (downloads everything); without
	// it, manifests, indexes and pack presence are checked.
	Full bool `json:"full,omitempty"`
}

// PruneParams are a prune job's parameters.
type PruneParams struct {
	// Repo limits the prune to one repository; empty: all of them.
	Repo string `json:"repo,omitempty"`
}

// RecoverParams are a recover job's parameters.
type RecoverParams struct {
	From string `json:"from"` // the lost shard
	To   string `json:"to"`   // the shard that rebuilds its sites
}

// RecoverResult is a recover job's report, updated as sites come back.
type RecoverResult struct {
	Sites []RecoveredSite `json:"sites"`
	// Duration is from the job's creation until every recovered site was
	// Ready (set when the job succeeds).
	Duration string `json:"duration,omitempty"`
}

// RecoveredSite is one site of a recover job.
type RecoveredSite struct {
	Site string `json:"site"`
	UID  string `json:"uid"`
	// Snapshot is the reference the site is rebuilt from; empty when it
	// had none (the site stays on the lost shard: see Error).
	Snapshot     string    `json:"snapshot,omitempty"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`
	// Generation is the site's generation after the switch; the site is
	// recovered once it is Ready at that generation on the new shard.
	Generation int64      `json:"generation,omitempty"`
	ReadyAt    *time.Time `json:"ready_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// VerifyResult is a verify job's report.
type VerifyResult struct {
	Repos []RepoVerify `json:"repos"`
	// Damaged are the snapshots that cannot be restored intact.
	Damaged []DamagedSnapshot `json:"damaged,omitempty"`
}

// RepoVerify is one repository's verification.
type RepoVerify struct {
	Repo      string `json:"repo"`
	OK        bool   `json:"ok"`
	Snapshots int    `json:"snapshots"`
	Packs     int    `json:"packs"`
	Chunks    int    `json:"chunks"`
	BytesRead int64  `json:"bytes_read"`
	Problems  int    `json:"problems"`
	// Error: the repository could not be verified at all.
	Error string `json:"error,omitempty"`
}

// DamagedSnapshot names a snapshot that references damaged data (or whose
// manifest is damaged).
type DamagedSnapshot struct {
	Ref  string `json:"ref"`
	Site string `json:"site,omitempty"`
}

// PruneResult is a prune job's report, per repository.
type PruneResult struct {
	Repos []RepoPrune `json:"repos"`
}

// RepoPrune is one repository's prune.
type RepoPrune struct {
	Repo          string `json:"repo"`
	PacksDeleted  int    `json:"packs_deleted"`
	PacksRepacked int    `json:"packs_repacked"`
	BytesFreed    int64  `json:"bytes_freed"`
	Error         string `json:"error,omitempty"`
}

// JobRotateSecret rotates one of a site's secrets on the shard that serves
// it without a failed request (a DB password) or logs its users out (the
// WordPress salts). Params: RotateParams. Result: RotateResult.
const JobRotateSecret JobKind = "secret.rotate"

// Kinds of site secrets a JobRotateSecret rotates.
const (
	SecretDBPassword = "db-password"
	SecretSalts      = "salts"
)

// RotateParams are a secret.rotate job's parameters.
type RotateParams struct {
	// Kind is SecretDBPassword or SecretSalts.
	Kind string `json:"kind"`
	// Reason is "manual" or "schedule".
	Reason string `json:"reason,omitempty"`
}

// RotateResult is what a finished secret.rotate job reports.
type RotateResult struct {
	Kind string `json:"kind"`
	// DBUser is the database account the site uses after a DB password
	// rotation (it alternates between two).
	DBUser string `json:"db_user,omitempty"`
	// Seconds is how long the rotation took (for a DB password, most of it
	// is waiting for requests that may hold the old one).
	Seconds float64 `json:"seconds"`
}
