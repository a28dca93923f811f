package backupctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// sizes measures, once an hour (the usage records' hour, UTC), every
// repository's stored bytes (repo.StoredBytes: its packs as stored, one
// listing) and each site's share of them, and records the shares as the
// sites' backup bytes in their hourly usage records (store.AddUsage).
//
// A site's share of a repository is the repository's bytes times its
// latest kept snapshot's size there over the sum of every site's latest
// kept snapshot's size there (equal shares when none has a size): the
// shares of a repository add up to it, as deduplicated chunks cannot be
// told apart by site without reading every snapshot's manifest. A site
// with snapshots in several repositories (it moved) has a share of each;
// snapshots of deleted sites count in the repository's shares but are
// nobody's usage record.
func (c *Controller) sizes(ctx context.Context, sites []site.Site) error {
	now := c.cfg.Clock()
	hour := store.UsageHour(now)
	if c.cfg.Repos == nil || c.cfg.SizesEvery < 0 || hour == c.lastSizes {
		return nil
	}
	entries, err := catalog.All(ctx, c.cfg.Store, "", false)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	// The latest kept snapshot of each site (by name) in each repository.
	latest := map[string]map[string]catalog.Entry{}
	for _, e := range entries {
		if latest[e.Repo] == nil {
			latest[e.Repo] = map[string]catalog.Entry{}
		}
		if l, ok := latest[e.Repo][e.Site]; !ok || e.Time.After(l.Time) {
			latest[e.Repo][e.Site] = e
		}
	}
	names, err := c.repoNames(ctx, "", "")
	if err != nil {
		return err
	}
	for name := range latest {
		if !slices.Contains(names, name) {
			names = append(names, name) // a deleted shard's repository
		}
	}
	slices.Sort(names)
	var errs []error
	repoBytes := map[string]int64{}
	share := map[string]float64{} // by site
	for _, name := range names {
		r, err := c.cfg.Repos.Open(ctx, name, false)
		if errors.Is(err, repo.ErrNotInitialized) {
			continue // the shard never backed anything up
		}
		if err == nil {
			var n int64
			if n, err = r.StoredBytes(ctx); err == nil {
				repoBytes[name] = n
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("repository %s: %w", name, err))
			continue
		}
		var total float64
		for _, e := range latest[name] {
			total += float64(e.TotalBytes)
		}
		for s, e := range latest[name] {
			w := 1 / float64(len(latest[name]))
			if total > 0 {
				w = float64(e.TotalBytes) / total
			}
			share[s] += w * float64(repoBytes[name])
		}
	}
	deltas := map[string]store.UsageDelta{}
	for i := range sites {
		st := &sites[i]
		n, ok := share[st.Metadata.Name]
		if !ok || st.Status.Shard == "" {
			continue
		}
		b := int64(n)
		deltas[st.Metadata.Name] = store.UsageDelta{Shard: st.Status.Shard, BackupBytes: &b}
	}
	if len(deltas) > 0 {
		// A gauge: a pass repeated in the hour sets it again.
		if _, err := c.cfg.Store.AddUsage(ctx, store.UsageKey{Source: "backups"}, now, deltas); err != nil {
			errs = append(errs, fmt.Errorf("usage: %w", err))
		}
	}
	c.covMu.Lock()
	c.repoBytes = repoBytes
	c.covMu.Unlock()
	if len(errs) == 0 {
		c.lastSizes = hour
	}
	return errors.Join(errs...)
}

// RepositoryBytes returns each backup repository's stored bytes (by name:
// its shard's) as the last hourly measurement saw them; empty before the
// first (and on a replica that does not lead).
func (c *Controller) RepositoryBytes() map[string]int64 {
	c.covMu.Lock()
	defer c.covMu.Unlock()
	return maps.Clone(c.repoBytes)
}
