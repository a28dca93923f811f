package up

import (
	"context"
	"fmt"
	"slices"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/store"
)

// storeJobs is shard.Jobs for a shard inside `aipress up`: the store is in
// the same process. It refuses another shard's jobs, as the API does.
type storeJobs struct {
	st    store.Store
	name  string
	after func() // wakes watchers after a write
}

var _ shard.Jobs = storeJobs{}

// ListJobs returns the shard's Pending and Running jobs, oldest first.
func (j storeJobs) ListJobs(ctx context.Context, name string) ([]store.Job, error) {
	if name != j.name {
		return nil, fmt.Errorf("list jobs: this link serves shard %q, not %q", j.name, name)
	}
	opts := store.JobListOptions{Shard: name, Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit}
	var out []store.Job
	for {
		l, err := j.st.ListJobs(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list jobs of shard %s: %w", name, err)
		}
		out = append(out, l.Items...)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	slices.Reverse(out)
	return out, nil
}

// UpdateJob applies fn to the job in one store transaction.
func (j storeJobs) UpdateJob(ctx context.Context, id string, fn func(*store.Job)) error {
	var before int64
	got, err := j.st.UpdateJob(ctx, id, func(cur *store.Job) error {
		if cur.Shard != j.name {
			return fmt.Errorf("job %s belongs to shard %q, not %q: %w", id, cur.Shard, j.name, store.ErrNotFound)
		}
		before = cur.ResourceVersion
		fn(cur)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update job %s: %w", id, err)
	}
	if got.ResourceVersion != before {
		j.after()
	}
	return nil
}

// managerRepos opens repositories for an in-process shard with the control
// plane's key: its own repository is created when missing, others must
// exist.
func managerRepos(m *repos.Manager, own string) shardagent.RepoOpener {
	return func(ctx context.Context, name string) (*repo.Repo, error) {
		if m == nil {
			return nil, fmt.Errorf("backups are not configured")
		}
		return m.Open(ctx, name, name == own)
	}
}
