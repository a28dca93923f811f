package platform

import (
	"context"

	"github.com/aipress/aipress/internal/shard"
)

// The three hooks between a shard agent and its shard's job runner (the
// shard side lives on branch wt5-backupshard: shard.Config.Repos,
// (*shard.Shard).RunJobs and WakeJobs). Until it is merged, jobs stay
// Pending; each hook becomes one line then.

// setShardRepos gives the shard the opener of backup repositories:
// cfg.Repos = open.
func setShardRepos(cfg *shard.Config, open repoOpener) { _, _ = cfg, open }

// runShardJobs runs the shard's jobs until ctx ends:
// return sh.RunJobs(ctx, sites, jobs).
func runShardJobs(ctx context.Context, sh *shard.Shard, sites shard.Sites, jobs shard.Jobs) error {
	_, _, _ = sh, sites, jobs
	<-ctx.Done()
	return nil
}

// wakeShardJobs makes the shard look at its jobs now: sh.WakeJobs().
func wakeShardJobs(sh *shard.Shard) { _ = sh }
