package cpmetrics

import (
	"context"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Store returns st with its frequent operations timed
// (aipress_store_operation_duration_seconds) and the jobs it sees end
// counted (aipress_jobs_finished_total). The other operations pass
// through untimed.
func (m *Metrics) Store(st store.Store) store.Store { return &timedStore{Store: st, m: m} }

type timedStore struct {
	store.Store
	m *Metrics
}

func (t *timedStore) time(op string, start time.Time) {
	t.m.storeOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t *timedStore) GetSite(ctx context.Context, name string) (*site.Site, error) {
	defer t.time("get_site", time.Now())
	return t.Store.GetSite(ctx, name)
}

func (t *timedStore) ListSites(ctx context.Context, opts store.ListOptions) (*store.SiteList, error) {
	defer t.time("list_sites", time.Now())
	return t.Store.ListSites(ctx, opts)
}

func (t *timedStore) CreateSite(ctx context.Context, s *site.Site) error {
	defer t.time("create_site", time.Now())
	return t.Store.CreateSite(ctx, s)
}

func (t *timedStore) CreateSiteAudited(ctx context.Context, s *site.Site, e store.AuditEntry) error {
	defer t.time("create_site", time.Now())
	return t.Store.CreateSiteAudited(ctx, s, e)
}

func (t *timedStore) UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error) {
	defer t.time("update_site", time.Now())
	return t.Store.UpdateSite(ctx, name, mutate)
}

func (t *timedStore) Changes(ctx context.Context, since int64, opts store.ChangeOptions) (*store.ChangeList, error) {
	defer t.time("changes", time.Now())
	return t.Store.Changes(ctx, since, opts)
}

func (t *timedStore) ListShards(ctx context.Context) ([]store.Shard, error) {
	defer t.time("list_shards", time.Now())
	return t.Store.ListShards(ctx)
}

func (t *timedStore) Heartbeat(ctx context.Context, name string, at time.Time, usage store.Usage) error {
	defer t.time("heartbeat", time.Now())
	return t.Store.Heartbeat(ctx, name, at, usage)
}

func (t *timedStore) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	defer t.time("lookup_token", time.Now())
	return t.Store.LookupToken(ctx, hash)
}

func (t *timedStore) CreateJob(ctx context.Context, j *store.Job) error {
	defer t.time("create_job", time.Now())
	return t.Store.CreateJob(ctx, j)
}

func (t *timedStore) ListJobs(ctx context.Context, opts store.JobListOptions) (*store.JobList, error) {
	defer t.time("list_jobs", time.Now())
	return t.Store.ListJobs(ctx, opts)
}

// UpdateJob counts the job when this write ended it: mutate saw it
// Pending or Running and left it Succeeded or Failed (of a retried
// transaction, the last call counts).
func (t *timedStore) UpdateJob(ctx context.Context, id string, mutate func(*store.Job) error) (*store.Job, error) {
	defer t.time("update_job", time.Now())
	var before store.JobPhase
	j, err := t.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		before = j.Phase
		return mutate(j)
	})
	if err == nil && j != nil && !final(before) && final(j.Phase) {
		result := "succeeded"
		if j.Phase == store.JobFailed {
			result = "failed"
		}
		t.m.jobs.WithLabelValues(string(j.Kind), result).Inc()
	}
	return j, err
}

func final(p store.JobPhase) bool { return p == store.JobSucceeded || p == store.JobFailed }
