package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// JobsConfig configures Jobs.
type JobsConfig struct {
	// Client calls the control plane with the shard's token (role shard).
	Client *apiclient.Client
	// Shard is the shard's name, the token's subject.
	Shard string
	// Wake is called (it must not block) whenever the shard's jobs
	// changed, so the shard looks at them at once. May be nil.
	Wake func()
	// Wait is the long poll's wait (default DefaultWait).
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after an error.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Jobs is shard.Jobs over the agent protocol. Run keeps a local copy of the
// shard's Pending and Running jobs current (GET /v1/agent/jobs, long
// polls); ListJobs answers from it once the first list arrived. UpdateJob
// reads the job, applies fn and writes it back with the job's resource
// version, retrying when the job changed in between.
type Jobs struct {
	cfg JobsConfig
	log *slog.Logger

	synced     chan struct{}
	syncedOnce sync.Once

	mu   sync.Mutex
	jobs []store.Job
	rev  int64
}

var _ shard.Jobs = (*Jobs)(nil)

// NewJobs returns a Jobs; call Run to fill and follow it.
func NewJobs(cfg JobsConfig) *Jobs {
	defaults(&cfg.Wait, &cfg.MinBackoff, &cfg.MaxBackoff, &cfg.Logger)
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	return &Jobs{cfg: cfg, log: cfg.Logger, synced: make(chan struct{})}
}

// Run lists the shard's jobs and follows them until ctx is done.
func (j *Jobs) Run(ctx context.Context) error {
	return follower{list: j.list, watch: j.watch, minBackoff: j.cfg.MinBackoff, maxBackoff: j.cfg.MaxBackoff, log: j.log}.run(ctx)
}

// Synced is closed once the first list arrived.
func (j *Jobs) Synced() <-chan struct{} { return j.synced }

func (j *Jobs) set(resp *apiclient.AgentJobsResponse) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	changed := len(resp.Items) != len(j.jobs)
	for i := range resp.Items {
		changed = changed || resp.Items[i].ID != j.jobs[i].ID || resp.Items[i].ResourceVersion != j.jobs[i].ResourceVersion
	}
	j.jobs, j.rev = resp.Items, resp.Revision
	return changed
}

func (j *Jobs) list(ctx context.Context) error {
	resp, err := j.cfg.Client.AgentJobs(ctx)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	j.set(resp)
	j.syncedOnce.Do(func() { close(j.synced) })
	j.cfg.Wake()
	return nil
}

func (j *Jobs) watch(ctx context.Context) error {
	j.mu.Lock()
	since := j.rev
	j.mu.Unlock()
	resp, err := j.cfg.Client.WatchAgentJobs(ctx, since, j.cfg.Wait)
	if err != nil {
		return fmt.Errorf("watch jobs since %d: %w", since, err)
	}
	if j.set(resp) {
		j.cfg.Wake()
	}
	return nil
}

// ListJobs returns the shard's Pending and Running jobs from the local
// copy, oldest first, waiting for the first list.
func (j *Jobs) ListJobs(ctx context.Context, shardName string) ([]store.Job, error) {
	if shardName != j.cfg.Shard {
		return nil, fmt.Errorf("list jobs: this agent serves shard %q, not %q", j.cfg.Shard, shardName)
	}
	select {
	case <-j.synced:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]store.Job(nil), j.jobs...), nil
}

// maxUpdateTries bounds UpdateJob's read-modify-write retries.
const maxUpdateTries = 5

// UpdateJob applies fn to the current job and reports the result; nothing
// is sent when fn changes nothing.
func (j *Jobs) UpdateJob(ctx context.Context, id string, fn func(*store.Job)) error {
	for try := 1; ; try++ {
		cur, err := j.cfg.Client.AgentJob(ctx, id)
		if err != nil {
			return fmt.Errorf("update job %s: %w", id, err)
		}
		before, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		next := *cur
		fn(&next)
		after, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if string(before) == string(after) {
			return nil
		}
		got, err := j.cfg.Client.ReportJob(ctx, id, apiclient.JobReport{
			ResourceVersion: cur.ResourceVersion, Phase: next.Phase, Attempts: next.Attempts,
			Progress: next.Progress, Result: next.Result, Error: next.Error,
		})
		if apiclient.IsConflict(err) && try < maxUpdateTries {
			j.log.Debug("job changed meanwhile; reading it again", "job", id, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("update job %s: %w", id, err)
		}
		j.remember(got)
		return nil
	}
}

// remember puts a reported job into the local copy (or drops it when it
// finished), so a listing before the next watch answer sees the report.
func (j *Jobs) remember(job *store.Job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range j.jobs {
		if j.jobs[i].ID != job.ID {
			continue
		}
		if job.ResourceVersion < j.jobs[i].ResourceVersion {
			return
		}
		if job.Phase == store.JobSucceeded || job.Phase == store.JobFailed {
			j.jobs = append(j.jobs[:i], j.jobs[i+1:]...)
			return
		}
		j.jobs[i] = *job
		return
	}
}

// Repos opens backup repositories for a shard agent with the access the
// control plane hands out (GET /v1/agent/backup-access); it implements
// shard.RepoAccess through Open. Opened repositories are kept open (and
// shared) until Close.
type Repos struct {
	Client  *apiclient.Client
	Options *repo.Options

	mu    sync.Mutex
	repos map[string]*repo.Repo
}

// Open returns the repository called name (a shard's name).
func (r *Repos) Open(ctx context.Context, name string) (*repo.Repo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rp := r.repos[name]; rp != nil {
		return rp, nil
	}
	rp, err := repos.FetchAndOpen(ctx, func(ctx context.Context) (repos.Access, error) {
		a, err := r.Client.BackupAccess(ctx, name)
		if err != nil {
			return repos.Access{}, fmt.Errorf("backup access to %s: %w", name, err)
		}
		return *a, nil
	}, r.Options)
	if err != nil {
		return nil, err
	}
	if r.repos == nil {
		r.repos = map[string]*repo.Repo{}
	}
	r.repos[name] = rp
	return rp, nil
}

// Close closes the repositories opened so far.
func (r *Repos) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for name, rp := range r.repos {
		if err := rp.Close(); err != nil && first == nil {
			first = err
		}
		delete(r.repos, name)
	}
	return first
}
