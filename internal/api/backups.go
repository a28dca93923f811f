package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/backup/schedule"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteclone"
	"github.com/aipress/aipress/internal/store"
)

// Backups. A snapshot is named "<repository>:<id>" where the repository is
// the shard that took it (one repository per shard). The list of a site's
// snapshots comes from the catalog (package catalog: the succeeded backup
// jobs in the store, an indexed query, paginated); a snapshot's manifest
// is read from its repository (GET /v1/backups/{ref}).

// BackupList is the body of GET /v1/backups: one page of snapshots, newest
// first. A page may hold fewer than limit items (forgotten snapshots are
// skipped) and still have a continue token.
type BackupList = catalog.Page

// SnapshotView is the body of GET /v1/backups/{ref}: a snapshot's manifest
// without its chunk lists and secrets.
type SnapshotView struct {
	Ref         string             `json:"ref"`
	Repo        string             `json:"repo"`
	ID          string             `json:"id"`
	Time        time.Time          `json:"time"`
	Site        string             `json:"site"`
	SiteUID     string             `json:"site_uid,omitempty"`
	Domain      string             `json:"domain,omitempty"`
	URL         string             `json:"url,omitempty"`
	Host        string             `json:"host,omitempty"`
	CoreVersion string             `json:"core_version,omitempty"`
	Tags        []string           `json:"tags,omitempty"`
	Spec        *site.Spec         `json:"spec,omitempty"`
	Files       []SnapshotFile     `json:"files"`
	Stats       repo.SnapshotStats `json:"stats"`
	// Job is the backup job that made the snapshot, when the catalog
	// knows it.
	Job string `json:"job,omitempty"`
}

// SnapshotFile is one stream of a snapshot.
type SnapshotFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Chunks int    `json:"chunks"`
}

// snapshotMeta is what the control plane reads of a manifest's Meta (the
// shard writes it; shard.SnapshotMeta). Salts are never read.
type snapshotMeta struct {
	Site        string     `json:"site"`
	SiteUID     string     `json:"site_uid"`
	Domain      string     `json:"domain"`
	URL         string     `json:"url"`
	CoreVersion string     `json:"core_version"`
	Spec        *site.Spec `json:"spec"`
	// GTID is the database log position the dump is consistent with
	// (shard.SnapshotMeta.GTID): without it the snapshot cannot start a
	// point-in-time restore.
	GTID string `json:"gtid"`
}

// RestoreRequest is the body of POST /v1/backups/{ref}/restore: exactly
// one of InPlace and NewDomain.
type RestoreRequest struct {
	// InPlace restores over the site the snapshot was taken of, on its
	// current shard: maintenance, restore into staging, swap, back.
	InPlace bool `json:"in_place,omitempty"`
	// NewDomain creates a new site (a clone) from the snapshot, with its
	// URLs rewritten to the new domain.
	NewDomain string `json:"new_domain,omitempty"`
	// Shard places the new site on that shard (default: placement).
	Shard string `json:"shard,omitempty"`
}

// RestoreResponse is the body of a restore: the job (in place) or the new
// site (a clone; its progress is the site's status).
type RestoreResponse struct {
	Job  *store.Job `json:"job,omitempty"`
	Site *site.Site `json:"site,omitempty"`
	// Snapshot is the snapshot restored: the one named, or the one a
	// point-in-time restore chose (the site's latest before At).
	Snapshot string `json:"snapshot,omitempty"`
	// At is a point-in-time restore's time (UTC).
	At *time.Time `json:"at,omitempty"`
}

// SiteRestoreRequest is the body of POST /v1/sites/{name}/restore, a
// point-in-time restore: At and exactly one of InPlace and NewDomain.
type SiteRestoreRequest struct {
	// At is the point in time (RFC 3339, UTC or with an offset): the
	// site's latest snapshot taken before it is restored and the site's
	// database log replayed up to and including At (its resolution is a
	// second).
	At time.Time `json:"at"`
	// InPlace, NewDomain and Shard are as in RestoreRequest.
	InPlace   bool   `json:"in_place,omitempty"`
	NewDomain string `json:"new_domain,omitempty"`
	Shard     string `json:"shard,omitempty"`
}

// RestoreAtSkew is how far in the future a point-in-time restore's At may
// be (clocks of the caller and the control plane differ a little); the
// shard's log must still reach it when the restore runs.
const RestoreAtSkew = 5 * time.Second

// VerifyRequest is the body of POST /v1/backups/verify.
type VerifyRequest struct {
	// Site limits the check to the repositories holding the site's
	// snapshots, and the report to its snapshots.
	Site string `json:"site,omitempty"`
	// Full reads every chunk back.
	Full bool `json:"full,omitempty"`
	// Restore runs a verify-restore instead: the site's latest snapshot
	// (or, without site, the newest snapshot of all) is restored into a
	// scratch site on a shard, which checks that WordPress answers and
	// that the tables match the manifest.
	Restore bool `json:"restore,omitempty"`
}

// PruneRequest is the body of POST /v1/backups/prune.
type PruneRequest struct {
	Repo string `json:"repo,omitempty"` // one repository; empty: all
}

// RecoverRequest is the body of POST /v1/shards/{name}/recover.
type RecoverRequest struct {
	To string `json:"to"`
}

// CoverageItem is one site of GET /v1/backups/coverage.
type CoverageItem struct {
	Site       string         `json:"site"`
	Plan       string         `json:"plan"`
	Shard      string         `json:"shard,omitempty"`
	EveryHours int            `json:"every_hours"`
	Window     string         `json:"window,omitempty"` // Go duration
	LastBackup *time.Time     `json:"last_backup,omitempty"`
	LastRef    string         `json:"last_ref,omitempty"`
	State      schedule.State `json:"state"`
	Alert      bool           `json:"alert"`
}

// CoverageResponse is the body of GET /v1/backups/coverage: a page of
// sites (ordered by name, paginated as GET /v1/sites) with their coverage,
// and counts of the page's states and alerts.
type CoverageResponse struct {
	Items    []CoverageItem         `json:"items"`
	Continue string                 `json:"continue,omitempty"`
	States   map[schedule.State]int `json:"states"`
	Alerts   int                    `json:"alerts"`
}

// BackupAccess is the body of GET /v1/agent/backup-access.
type BackupAccess = repos.Access

func noBackups() HTTPError {
	return errorf(http.StatusNotImplemented, CodeUnimplemented, "backups are not configured on this control plane")
}

// getPlacedSite reads a site for an operation that needs it placed and
// settled: not deleting, not moving, on a shard.
func (s *server) getPlacedSite(ctx context.Context, name, what string) (*site.Site, error) {
	st, err := s.cfg.Store.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, siteNotFound(name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	switch {
	case st.Metadata.DeletionRequested != nil:
		return nil, conflict("site %q is being deleted", name)
	case st.Status.Shard == "":
		return nil, conflict("site %q is not placed on a shard yet", name)
	case st.Move.Active():
		return nil, conflict("site %q is moving (%s to %s); %s it when the move is done", name, st.Move.Source, st.Move.Target, what)
	}
	return st, nil
}

// createBackup starts a backup of the site now (202 and the job), or
// answers the one already pending or running (200).
func (s *server) createBackup(c *call) (response, error) {
	ctx := c.r.Context()
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req struct{}
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	st, err := s.getPlacedSite(ctx, name, "back up")
	if err != nil {
		return response{}, err
	}
	if st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended {
		return response{}, conflict("site %q is %s; only a Ready or Suspended site is backed up", name, st.Status.Phase)
	}
	if j, err := s.activeJob(ctx, store.JobBackup, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{status: http.StatusOK, body: j, unchanged: true}, nil
	}
	j, err := s.createJob(ctx, store.JobBackup, name, st.Metadata.UID, st.Status.Shard, store.BackupParams{Reason: "manual"})
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

func (s *server) listBackups(c *call) (response, error) {
	q := c.r.URL.Query()
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	name := q.Get("site")
	if name != "" {
		n, err := site.NormalizeDomain(name)
		if err != nil {
			return response{}, badRequest("site %q is not a domain", name)
		}
		name = n
	}
	uid, err := s.siteFilter(c, name)
	if err != nil {
		return response{}, err
	}
	p, err := catalog.List(c.r.Context(), s.cfg.Store, name, limit, q.Get("continue"))
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("invalid continue token %q", q.Get("continue"))
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("list backups: %w", err))
	}
	if uid != "" {
		p.Items = slices.DeleteFunc(p.Items, func(e catalog.Entry) bool { return e.SiteUID != uid })
	}
	return response{status: http.StatusOK, body: p}, nil
}

// loadSnapshot opens the snapshot ref names (read with the KEK).
func (s *server) loadSnapshot(ctx context.Context, ref string) (*repo.Snapshot, *snapshotMeta, error) {
	if s.cfg.Backups == nil {
		return nil, nil, noBackups()
	}
	repoName, id, err := catalog.ParseRef(ref)
	if err != nil || !repos.ValidName(repoName) {
		return nil, nil, errorf(http.StatusNotFound, CodeNotFound, "snapshot %q not found (want <repository>:<snapshot id>)", ref)
	}
	notFound := errorf(http.StatusNotFound, CodeNotFound, "snapshot %q not found", ref)
	r, err := s.cfg.Backups.Open(ctx, repoName, false)
	if errors.Is(err, repo.ErrNotInitialized) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, internal(err)
	}
	snap, err := r.LoadSnapshot(ctx, id)
	if errors.Is(err, repo.ErrSnapshotNotFound) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, internal(fmt.Errorf("load snapshot %s: %w", ref, err))
	}
	if pitr.IsSegment(snap) { // a database log segment, not a site's snapshot
		return nil, nil, notFound
	}
	var meta snapshotMeta
	if len(snap.Meta) > 0 {
		if err := json.Unmarshal(snap.Meta, &meta); err != nil {
			return nil, nil, internal(fmt.Errorf("snapshot %s: meta: %w", ref, err))
		}
	}
	if meta.Site == "" {
		meta.Site = snap.Site
	}
	return snap, &meta, nil
}

func (s *server) getBackup(c *call) (response, error) {
	ctx := c.r.Context()
	ref := c.r.PathValue("ref")
	c.target = ref
	snap, meta, err := s.loadSnapshot(ctx, ref)
	if err != nil {
		return response{}, err
	}
	if err := s.allowSiteUID(c, meta.Site, meta.SiteUID, errorf(http.StatusNotFound, CodeNotFound, "snapshot %q not found", ref)); err != nil {
		return response{}, err
	}
	repoName, _, _ := catalog.ParseRef(ref)
	v := SnapshotView{
		Ref: repoName + ":" + snap.ID, Repo: repoName, ID: snap.ID, Time: snap.Time, Site: meta.Site, SiteUID: meta.SiteUID,
		Domain: meta.Domain, URL: meta.URL, Host: snap.Host, CoreVersion: meta.CoreVersion, Tags: snap.Tags,
		Stats: snap.Stats, Files: []SnapshotFile{},
	}
	if meta.Spec != nil {
		spec := *meta.Spec
		spec.Admin.PasswordHash = ""
		v.Spec = &spec
	}
	for _, f := range snap.Files {
		v.Files = append(v.Files, SnapshotFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Chunks: len(f.Chunks)})
	}
	if j, err := catalog.Find(ctx, s.cfg.Store, meta.Site, v.Ref); err == nil {
		v.Job = j.ID
	}
	return response{status: http.StatusOK, body: v}, nil
}

// checkTargetShard checks that a shard exists and takes new sites.
func (s *server) checkTargetShard(ctx context.Context, name string) (*store.Shard, error) {
	if !ValidShardName(name) {
		return nil, badRequest("%q is not a shard name", name)
	}
	sh, err := s.cfg.Store.GetShard(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("shard %q does not exist", name)
	}
	if err != nil {
		return nil, internal(fmt.Errorf("get shard %q: %w", name, err))
	}
	switch {
	case sh.Draining:
		return nil, badRequest("shard %q is draining", name)
	case sh.Cordoned:
		return nil, badRequest("shard %q is cordoned", name)
	case sh.Phase != store.ShardReady:
		return nil, badRequest("shard %q is %s, not Ready", name, sh.Phase)
	}
	return sh, nil
}

func (s *server) restoreBackup(c *call) (response, error) {
	ctx := c.r.Context()
	ref := c.r.PathValue("ref")
	c.target = ref
	var req RestoreRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.InPlace == (req.NewDomain != "") {
		return response{}, badRequest("give exactly one of in_place and new_domain")
	}
	snap, meta, err := s.loadSnapshot(ctx, ref)
	if err != nil {
		return response{}, err
	}
	if err := s.allowSiteUID(c, meta.Site, meta.SiteUID, errorf(http.StatusNotFound, CodeNotFound, "snapshot %q not found", ref)); err != nil {
		return response{}, err
	}
	repoName, _, _ := catalog.ParseRef(ref)
	ref = repoName + ":" + snap.ID // a prefix given: the full id
	if req.InPlace {
		return s.restoreInPlace(c, ref, meta, req, nil)
	}
	return s.restoreClone(c, ref, meta, req, nil)
}

// restoreSite is a point-in-time restore: the site's latest snapshot
// (of its current incarnation, not forgotten) that was complete before At
// is restored, in place or into a new domain, with RestoreParams.At (or
// Source.At) making the shard replay the site's database log up to At.
func (s *server) restoreSite(c *call) (response, error) {
	ctx := c.r.Context()
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req SiteRestoreRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.At.IsZero() {
		return response{}, badRequest("give at: the point in time to restore to (RFC 3339, e.g. 2026-12-05T10:42:00Z)")
	}
	if req.InPlace == (req.NewDomain != "") {
		return response{}, badRequest("give exactly one of in_place and new_domain")
	}
	at := req.At.UTC()
	now := s.cfg.Clock().UTC()
	if at.After(now.Add(RestoreAtSkew)) {
		return response{}, badRequest("at %s is in the future (it is %s now)", at.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if s.cfg.Backups == nil {
		return response{}, noBackups()
	}
	st, err := s.cfg.Store.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	e, err := s.snapshotBefore(ctx, st, at)
	if err != nil {
		return response{}, err
	}
	snap, meta, err := s.loadSnapshot(ctx, e.Ref)
	if err != nil {
		return response{}, err
	}
	if meta.GTID == "" {
		return response{}, conflict("snapshot %s of site %q (taken at %s), the latest before %s, records no database log position: it was taken before point-in-time recovery was on; restore it as a whole (POST /v1/backups/%s/restore), or choose a time after a newer snapshot",
			e.Ref, name, e.Time.UTC().Format(time.RFC3339), at.Format(time.RFC3339), e.Ref)
	}
	repoName, _, _ := catalog.ParseRef(e.Ref)
	ref := repoName + ":" + snap.ID
	if req.InPlace && st.Status.Shard != "" && repoName != st.Status.Shard {
		// The shard replays its own log into the site in place; the log
		// before a move is the old shard's.
		return response{}, conflict("the latest snapshot of site %q before %s (%s) was taken on shard %q, before the site moved to %q: restore that time into a new domain instead (new_domain)",
			name, at.Format(time.RFC3339), e.Ref, repoName, st.Status.Shard)
	}
	var resp response
	if req.InPlace {
		resp, err = s.restoreInPlace(c, ref, meta, RestoreRequest{InPlace: true, Shard: req.Shard}, &at)
	} else {
		resp, err = s.restoreClone(c, ref, meta, RestoreRequest{NewDomain: req.NewDomain, Shard: req.Shard}, &at)
	}
	if err != nil {
		return response{}, err
	}
	if body, ok := resp.body.(RestoreResponse); ok {
		body.Snapshot, body.At = ref, &at
		resp.body = body
	}
	return resp, nil
}

// snapshotBefore returns the latest snapshot of st (its current
// incarnation, not forgotten) that was complete at or before at: its
// backup job finished by then, so the dump's consistent view (somewhere
// between the snapshot's time and the job's end) is not after at and
// replaying the log from it can reach at. None: 409 naming the oldest
// snapshot, or saying that retention forgot the older ones.
func (s *server) snapshotBefore(ctx context.Context, st *site.Site, at time.Time) (*catalog.Entry, error) {
	name := st.Metadata.Name
	entries, err := catalog.All(ctx, s.cfg.Store, name, true)
	if err != nil {
		return nil, internal(fmt.Errorf("snapshots of %q: %w", name, err))
	}
	entries = slices.DeleteFunc(entries, func(e catalog.Entry) bool { return e.SiteUID != st.Metadata.UID })
	var oldest, forgotten *catalog.Entry
	for i := range entries { // newest first
		e := &entries[i]
		if e.Forgotten != nil {
			if !e.Time.After(at) {
				forgotten = e
			}
			continue
		}
		oldest = e
		if e.Time.After(at) {
			continue
		}
		j, err := s.cfg.Store.GetJob(ctx, e.Job)
		if err != nil {
			return nil, internal(fmt.Errorf("backup job %s: %w", e.Job, err))
		}
		if done := j.FinishedAt; done != nil && !done.After(at) {
			return e, nil
		}
	}
	when := at.Format(time.RFC3339)
	switch {
	case oldest == nil && forgotten != nil:
		return nil, conflict("site %q has no snapshot to restore to %s: its plan's retention forgot the snapshots before then, and it has none since", name, when)
	case oldest == nil:
		return nil, conflict("site %q has no snapshot to restore from; back it up first", name)
	case forgotten != nil:
		return nil, conflict("%s is older than site %q's retention keeps: its oldest snapshot was taken at %s (a point-in-time restore starts from a snapshot completed before the time)", when, name, oldest.Time.UTC().Format(time.RFC3339))
	}
	return nil, conflict("site %q has no snapshot completed before %s: its oldest was taken at %s (a point-in-time restore starts from a snapshot completed before the time)", name, when, oldest.Time.UTC().Format(time.RFC3339))
}

func (s *server) restoreInPlace(c *call, ref string, meta *snapshotMeta, req RestoreRequest, at *time.Time) (response, error) {
	ctx := c.r.Context()
	c.target = meta.Site
	st, err := s.getPlacedSite(ctx, meta.Site, "restore")
	if err != nil {
		return response{}, err
	}
	if req.Shard != "" && req.Shard != st.Status.Shard {
		return response{}, badRequest("an in-place restore runs on the site's shard %q; move the site first, or restore into a new domain on shard %q", st.Status.Shard, req.Shard)
	}
	if j, err := s.activeJob(ctx, store.JobRestore, st.Metadata.Name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{}, conflict("site %q is being restored already (job %s)", st.Metadata.Name, j.ID)
	}
	params := store.RestoreParams{Snapshot: ref, FromDomain: meta.Domain, FromURL: meta.URL, InPlace: true, At: at}
	j, err := s.createJob(ctx, store.JobRestore, st.Metadata.Name, st.Metadata.UID, st.Status.Shard, params)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: RestoreResponse{Job: j}}, nil
}

func (s *server) restoreClone(c *call, ref string, meta *snapshotMeta, req RestoreRequest, at *time.Time) (response, error) {
	ctx := c.r.Context()
	domain, err := site.NormalizeDomain(req.NewDomain)
	if err != nil {
		return response{}, HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidDomain, Msg: err.Error()}
	}
	if err := notStaging(domain); err != nil {
		return response{}, err
	}
	c.target = domain
	if meta.Spec == nil {
		return response{}, conflict("snapshot %s records no site spec; it cannot be cloned", ref)
	}
	shard := ""
	if req.Shard != "" && !c.who.platformCan(permPlatformOps) {
		return response{}, errorf(http.StatusForbidden, CodeForbidden, "token %q may not choose a shard", c.who.actor())
	}
	if req.Shard != "" {
		sh, err := s.checkTargetShard(ctx, req.Shard)
		if err != nil {
			return response{}, err
		}
		shard = sh.Name
	}
	uid, err := newUID()
	if err != nil {
		return response{}, internal(err)
	}
	st := siteclone.New(siteclone.Request{
		Spec: *meta.Spec, Snapshot: ref, FromSite: meta.Site, FromURL: meta.URL, At: at,
		Domain: domain, UID: uid, Org: cmp.Or(c.org, store.DefaultOrg), Now: s.cfg.Clock(),
		Shard: shard, URL: s.cfg.PublicURL(domain),
	}, s.plans())
	if shard == "" && s.cfg.Placer != nil {
		if st.Status.Shard, err = s.cfg.Placer.Place(ctx, st); err != nil {
			return response{}, internal(fmt.Errorf("place site %q: %w", domain, err))
		}
	}
	// A clone is a new site: the organisation's quota applies.
	if err := s.checkQuota(ctx, st, st.Spec.Plan, true); err != nil {
		return response{}, err
	}
	if err := s.cfg.Store.CreateSite(ctx, st); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return response{}, errorf(http.StatusConflict, CodeAlreadyExists, "site %q already exists", domain)
		}
		return response{}, internal(fmt.Errorf("create site %q: %w", domain, err))
	}
	s.cfg.SiteMetrics.Forget(domain)
	if got, err := s.cfg.Store.GetSite(ctx, domain); err == nil {
		st = got
	}
	return response{status: http.StatusCreated, body: RestoreResponse{Site: redact(st)}}, nil
}

func (s *server) verifyBackups(c *call) (response, error) {
	ctx := c.r.Context()
	var req VerifyRequest
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.Site != "" {
		n, err := site.NormalizeDomain(req.Site)
		if err != nil {
			return response{}, badRequest("site %q is not a domain", req.Site)
		}
		req.Site = n
		c.target = n
	}
	if !req.Restore {
		j, err := s.createJob(ctx, store.JobVerify, req.Site, "", "", store.VerifyParams{Site: req.Site, Full: req.Full})
		if err != nil {
			return response{}, err
		}
		return response{status: http.StatusAccepted, body: j}, nil
	}
	latest, err := catalog.Latest(ctx, s.cfg.Store, req.Site, "")
	if err != nil {
		return response{}, internal(fmt.Errorf("latest snapshot: %w", err))
	}
	if latest == nil && req.Site != "" {
		return response{}, conflict("site %q has no snapshot to verify", req.Site)
	}
	if latest == nil {
		return response{}, conflict("there is no snapshot to verify")
	}
	j, err := s.createVerifyRestore(ctx, latest)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

// createVerifyRestore creates a verify-restore job of a snapshot on the
// shard that hosts its site now (a Ready one), else on its repository's
// shard.
func (s *server) createVerifyRestore(ctx context.Context, e *catalog.Entry) (*store.Job, error) {
	shard := e.Repo
	if st, err := s.cfg.Store.GetSite(ctx, e.Site); err == nil && st.Status.Shard != "" {
		shard = st.Status.Shard
	}
	if sh, err := s.cfg.Store.GetShard(ctx, shard); err != nil || sh.Phase != store.ShardReady {
		return nil, conflict("shard %q is not Ready to verify snapshot %s", shard, e.Ref)
	}
	return s.createJob(ctx, store.JobVerifyRestore, e.Site, e.SiteUID, shard, store.RestoreParams{Snapshot: e.Ref})
}

func (s *server) pruneBackups(c *call) (response, error) {
	ctx := c.r.Context()
	var req PruneRequest
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.Repo != "" && !repos.ValidName(req.Repo) {
		return response{}, badRequest("%q is not a repository (shard) name", req.Repo)
	}
	if j, err := s.activeJob(ctx, store.JobPrune, "", ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{status: http.StatusOK, body: j, unchanged: true}, nil
	}
	j, err := s.createJob(ctx, store.JobPrune, "", "", "", store.PruneParams{Repo: req.Repo})
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

func (s *server) backupCoverage(c *call) (response, error) {
	ctx := c.r.Context()
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	cont := c.r.URL.Query().Get("continue")
	page, err := s.cfg.Store.ListSites(ctx, store.ListOptions{Limit: limit, Continue: cont})
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("invalid continue token %q", cont)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("list sites: %w", err))
	}
	now := s.cfg.Clock()
	out := CoverageResponse{Items: []CoverageItem{}, Continue: page.Continue, States: map[schedule.State]int{}}
	for i := range page.Items {
		st := &page.Items[i]
		pol := s.plans().BackupPolicy(&st.Spec)
		interval := schedule.Interval(pol)
		item := CoverageItem{Site: st.Metadata.Name, Plan: st.Spec.Plan, Shard: st.Status.Shard, EveryHours: pol.EveryHours}
		if w := schedule.Window(interval); w > 0 {
			item.Window = w.String()
		}
		last, err := catalog.Latest(ctx, s.cfg.Store, st.Metadata.Name, st.Metadata.UID)
		if err != nil {
			return response{}, internal(fmt.Errorf("latest snapshot of %q: %w", st.Metadata.Name, err))
		}
		var lastTime time.Time
		if last != nil {
			lastTime = last.Time
			item.LastBackup, item.LastRef = &last.Time, last.Ref
		}
		item.State, item.Alert = schedule.Coverage(lastTime, st.Metadata.CreatedAt, interval, now)
		out.States[item.State]++
		if item.Alert {
			out.Alerts++
		}
		out.Items = append(out.Items, item)
	}
	return response{status: http.StatusOK, body: out}, nil
}

// recoverShard starts the disaster recovery of a lost shard: a recover job
// that the leader runs (it points every site of the lost shard with a
// snapshot at the target shard, which rebuilds it from its latest snapshot,
// and follows them until they are Ready). The lost shard is cordoned.
func (s *server) recoverShard(c *call) (response, error) {
	ctx := c.r.Context()
	from, err := shardName(c)
	if err != nil {
		return response{}, err
	}
	var req RecoverRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	lost, err := s.cfg.Store.GetShard(ctx, from)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, shardNotFound(from)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get shard %q: %w", from, err))
	}
	if lost.Phase == store.ShardReady {
		return response{}, conflict("shard %q is Ready (heartbeating); recover only a lost shard, or drain it", from)
	}
	if req.To == from {
		return response{}, badRequest("recover shard %q onto another shard", from)
	}
	if _, err := s.checkTargetShard(ctx, req.To); err != nil {
		return response{}, err
	}
	if j, err := s.activeJob(ctx, store.JobRecover, "", ""); err != nil {
		return response{}, err
	} else if j != nil {
		var p store.RecoverParams
		if json.Unmarshal(j.Params, &p) == nil && p.From == from {
			return response{}, conflict("shard %q is being recovered already (job %s)", from, j.ID)
		}
	}
	if _, err := s.cfg.Store.UpdateShard(ctx, from, func(sh *store.Shard) error { sh.Cordoned = true; return nil }); err != nil {
		return response{}, internal(fmt.Errorf("cordon shard %q: %w", from, err))
	}
	j, err := s.createJob(ctx, store.JobRecover, "", "", "", store.RecoverParams{From: from, To: req.To})
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

// agentBackupAccess gives a shard the URL and access key of a repository:
// its own, or one its restores need (a Pending or Running restore or
// verify-restore job of the shard, or a site on the shard created from a
// snapshot, names a snapshot in it).
func (s *server) agentBackupAccess(c *call) (response, error) {
	ctx := c.r.Context()
	if s.cfg.Backups == nil {
		return response{}, noBackups()
	}
	shard := c.token.Subject
	name := c.r.URL.Query().Get("repo")
	if name == "" {
		name = shard
	}
	c.target = name
	if !repos.ValidName(name) {
		return response{}, badRequest("%q is not a repository (shard) name", name)
	}
	if name != shard {
		ok, err := s.needsRepo(ctx, shard, name)
		if err != nil {
			return response{}, internal(err)
		}
		if !ok {
			return response{}, errorf(http.StatusForbidden, CodeForbidden, "shard %q has no restore from repository %q", shard, name)
		}
	}
	a, err := s.cfg.Backups.Access(ctx, name)
	if err != nil {
		return response{}, internal(err)
	}
	return response{status: http.StatusOK, body: a}, nil
}

// needsRepo reports whether shard restores from the repository name now.
func (s *server) needsRepo(ctx context.Context, shard, name string) (bool, error) {
	in := func(ref string) bool {
		r, _, err := catalog.ParseRef(ref)
		return err == nil && r == name
	}
	jobs, err := s.shardJobs(ctx, shard)
	if err != nil {
		return false, fmt.Errorf("list jobs of shard %q: %w", shard, err)
	}
	for _, j := range jobs {
		if j.Kind != store.JobRestore && j.Kind != store.JobVerifyRestore {
			continue
		}
		var p store.RestoreParams
		if json.Unmarshal(j.Params, &p) == nil && in(p.Snapshot) {
			return true, nil
		}
	}
	sites, _, err := s.listAllSites(ctx, shard)
	if err != nil {
		return false, err
	}
	for _, st := range sites {
		if st.Spec.Source != nil && st.Status.Shard == shard && in(st.Spec.Source.Snapshot) {
			return true, nil
		}
	}
	return false, nil
}
