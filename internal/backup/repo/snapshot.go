package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
)

// loadSnapshotFile reads one snapshot by full id.
func (r *Repo) loadSnapshotFile(ctx context.Context, id string) (*Snapshot, error) {
	plain, err := r.readFile(ctx, prefixSnapshot, id, aadSnapshot)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("%s%s: %w: %v", prefixSnapshot, id, ErrCorrupt, err)
	}
	s.ID = id
	return &s, nil
}

// snapshotIDs lists the ids of all snapshots.
func (r *Repo) snapshotIDs(ctx context.Context) ([]string, error) {
	objs, err := listAll(ctx, r.bucket, prefixSnapshot)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	ids := make([]string, 0, len(objs))
	for _, o := range objs {
		if id, ok := objectName(o.Key, prefixSnapshot, 64); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// loadSnapshots loads the given snapshots in parallel; with tolerant,
// unreadable ones are returned in bad instead of failing.
func (r *Repo) loadSnapshots(ctx context.Context, ids []string, tolerant bool) (snaps []*Snapshot, bad map[string]error, err error) {
	out := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			s, err := r.loadSnapshotFile(gctx, id)
			if err != nil && !tolerant {
				return err
			}
			out[i], errs[i] = s, err
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	bad = map[string]error{}
	for i, s := range out {
		if errs[i] != nil {
			bad[ids[i]] = errs[i]
			continue
		}
		snaps = append(snaps, s)
	}
	return snaps, bad, nil
}

// ListSnapshots loads all snapshots matching f, oldest first. A damaged
// snapshot manifest fails the listing (Verify names it).
func (r *Repo) ListSnapshots(ctx context.Context, f SnapshotFilter) ([]*Snapshot, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	all, _, err := r.loadSnapshots(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, s := range all {
		if f.Match(s) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// resolveSnapshot expands a unique id prefix.
func (r *Repo) resolveSnapshot(ctx context.Context, prefix string) (string, error) {
	if len(prefix) == 64 {
		return prefix, nil
	}
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return "", err
	}
	match := ""
	for _, id := range ids {
		if prefix != "" && strings.HasPrefix(id, prefix) {
			if match != "" {
				return "", fmt.Errorf("snapshot id prefix %q is ambiguous", prefix)
			}
			match = id
		}
	}
	if match == "" {
		return "", fmt.Errorf("%w: %q", ErrSnapshotNotFound, prefix)
	}
	return match, nil
}

// LoadSnapshot loads the snapshot with the id, or a unique prefix of it.
func (r *Repo) LoadSnapshot(ctx context.Context, id string) (*Snapshot, error) {
	full, err := r.resolveSnapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, err := r.bucket.Exists(ctx, prefixSnapshot+full); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", full, err)
	} else if !ok {
		return nil, fmt.Errorf("%w: %q", ErrSnapshotNotFound, id)
	}
	return r.loadSnapshotFile(ctx, full)
}

// DeleteSnapshot removes a snapshot manifest (retention is the caller's
// policy); its data goes at the next Prune.
func (r *Repo) DeleteSnapshot(ctx context.Context, id string) error {
	full, err := r.resolveSnapshot(ctx, id)
	if err != nil {
		return err
	}
	if ok, err := r.bucket.Exists(ctx, prefixSnapshot+full); err != nil {
		return fmt.Errorf("snapshot %s: %w", full, err)
	} else if !ok {
		return fmt.Errorf("%w: %q", ErrSnapshotNotFound, id)
	}
	if err := r.bucket.Delete(ctx, prefixSnapshot+full); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", full, err)
	}
	return nil
}
