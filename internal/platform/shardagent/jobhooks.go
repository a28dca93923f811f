package shardagent

import (
	"context"

	"github.com/aipress/aipress/internal/shard"
)

// The three hooks between a shard agent and its shard's job runner
// (shard.Config.Repos, (*shard.Shard).RunJobs and WakeJobs).

// setShardRepos gives the shard the opener of backup repositories.
func setShardRepos(cfg *shard.Config, open RepoOpener) { cfg.Repos = open }

// runShardJobs runs the shard's jobs until ctx ends.
func runShardJobs(ctx context.Context, sh *shard.Shard, sites shard.Sites, jobs shard.Jobs) error {
	return sh.RunJobs(ctx, sites, jobs)
}

// wakeShardJobs makes the shard look at its jobs now.
func wakeShardJobs(sh *shard.Shard) { sh.WakeJobs() }
