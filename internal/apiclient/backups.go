package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// Backup and job wire types.
type (
	BackupList         = api.BackupList
	SnapshotView       = api.SnapshotView
	RestoreRequest     = api.RestoreRequest
	RestoreResponse    = api.RestoreResponse
	SiteRestoreRequest = api.SiteRestoreRequest
	VerifyRequest      = api.VerifyRequest
	CoverageResponse   = api.CoverageResponse
	JobReport          = api.JobReport
	AgentJobsResponse  = api.AgentJobsResponse
	BackupAccess       = api.BackupAccess
)

// JobListOptions selects a page of GET /v1/jobs.
type JobListOptions struct {
	Site, Shard, Kind string
	Phases            []store.JobPhase
	Limit             int
	Continue          string
}

// BackupListOptions selects a page of GET /v1/backups.
type BackupListOptions struct {
	Site     string
	Limit    int
	Continue string
}

func pageQuery(q url.Values, limit int, cont string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cont != "" {
		q.Set("continue", cont)
	}
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// CreateBackup starts a backup of the named site now (or returns the one
// already pending or running).
func (c *Client) CreateBackup(ctx context.Context, name string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/backups", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListBackups returns one page of snapshots, newest first.
func (c *Client) ListBackups(ctx context.Context, opts BackupListOptions) (*BackupList, error) {
	q := url.Values{}
	if opts.Site != "" {
		q.Set("site", opts.Site)
	}
	pageQuery(q, opts.Limit, opts.Continue)
	var out BackupList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/backups", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func backupPath(ref string) string { return "/v1/backups/" + url.PathEscape(ref) }

// GetBackup returns a snapshot's manifest.
func (c *Client) GetBackup(ctx context.Context, ref string) (*SnapshotView, error) {
	var out SnapshotView
	if err := c.do(ctx, http.MethodGet, backupPath(ref), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RestoreBackup restores a snapshot in place (a job) or into a new site.
func (c *Client) RestoreBackup(ctx context.Context, ref string, req RestoreRequest) (*RestoreResponse, error) {
	var out RestoreResponse
	if err := c.do(ctx, http.MethodPost, backupPath(ref)+"/restore", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RestoreSite restores the named site to a point in time (req.At): its
// latest snapshot completed before then, and its database log replayed up
// to it; in place (a job) or into a new site.
func (c *Client) RestoreSite(ctx context.Context, name string, req SiteRestoreRequest) (*RestoreResponse, error) {
	var out RestoreResponse
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/restore", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyBackups starts a verify (or verify-restore) job.
func (c *Client) VerifyBackups(ctx context.Context, req VerifyRequest) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, "/v1/backups/verify", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PruneBackups starts a prune job (of one repository, or all when repo is
// empty), or returns the one already pending or running.
func (c *Client) PruneBackups(ctx context.Context, repo string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, "/v1/backups/prune", api.PruneRequest{Repo: repo}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BackupCoverage returns one page of sites with their backup coverage.
func (c *Client) BackupCoverage(ctx context.Context, opts ListOptions) (*CoverageResponse, error) {
	q := url.Values{}
	pageQuery(q, opts.Limit, opts.Continue)
	var out CoverageResponse
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/backups/coverage", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListJobs returns one page of jobs, newest first.
func (c *Client) ListJobs(ctx context.Context, opts JobListOptions) (*store.JobList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"site": opts.Site, "shard": opts.Shard, "kind": opts.Kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(opts.Phases) > 0 {
		ps := make([]string, len(opts.Phases))
		for i, p := range opts.Phases {
			ps[i] = string(p)
		}
		q.Set("phase", strings.Join(ps, ","))
	}
	pageQuery(q, opts.Limit, opts.Continue)
	var out store.JobList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/jobs", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetJob returns a job.
func (c *Client) GetJob(ctx context.Context, id string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecoverShard starts the disaster recovery of a lost shard onto to.
func (c *Client) RecoverShard(ctx context.Context, name, to string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, shardPath(name)+"/recover", api.RecoverRequest{To: to}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Agent calls for jobs and backups (a token of role shard).

// AgentJobs lists the shard's Pending and Running jobs, and the revision to
// watch from.
func (c *Client) AgentJobs(ctx context.Context) (*AgentJobsResponse, error) {
	var out AgentJobsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/agent/jobs", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WatchAgentJobs long-polls the shard's jobs: it returns when one was
// written after since, or after wait (0: the server's default).
func (c *Client) WatchAgentJobs(ctx context.Context, since int64, wait time.Duration) (*AgentJobsResponse, error) {
	var out AgentJobsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/agent/jobs?"+watchQuery(since, wait), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentJob returns one of the shard's jobs.
func (c *Client) AgentJob(ctx context.Context, id string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodGet, "/v1/agent/jobs/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportJob reports the shard's view of a job and returns the stored job.
func (c *Client) ReportJob(ctx context.Context, id string, r JobReport) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPut, "/v1/agent/jobs/"+url.PathEscape(id), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BackupAccess returns the URL and access key of a backup repository (the
// shard's own when repo is empty).
func (c *Client) BackupAccess(ctx context.Context, repo string) (*BackupAccess, error) {
	q := url.Values{}
	if repo != "" {
		q.Set("repo", repo)
	}
	var out BackupAccess
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/agent/backup-access", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateSiteSecret starts a rotation of one of the named site's secrets
// (store.SecretDBPassword or store.SecretSalts), or returns the one of that
// kind already pending or running.
func (c *Client) RotateSiteSecret(ctx context.Context, name, kind string) (*store.Job, error) {
	var out store.Job
	if err := c.do(ctx, http.MethodPost, sitePath(name)+"/secrets/rotate", map[string]string{"kind": kind}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
