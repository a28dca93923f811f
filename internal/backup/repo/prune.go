package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"
)

// Prune deletes data no snapshot references, in two phases:
//
//  1. Under a shared lock (backups keep running): read all snapshots and
//     index files, find packs with unused chunks, copy the used chunks of
//     partially used packs into new packs (sealed chunks are moved as they
//     are, after checking them) and write an index file for those.
//  2. Under an exclusive lock (waits for running backups to finish; new
//     backups wait for it): read snapshots and index files again, so that
//     whatever backups committed since phase 1 counts; delete only packs
//     planned in phase 1 whose used chunks all have a copy in a kept pack,
//     and packs that no index lists (left by killed backups: with the
//     exclusive lock held, no live backup is still uploading); write one
//     index file for what is left, then delete the old index files, then
//     the packs. A crash at any point leaves a repository that is correct
//     (at worst with duplicate index entries or garbage for the next
//     prune).
//
// Prune fails if any snapshot or index file cannot be read: it cannot know
// what a damaged snapshot references. Do not prune through a Repo that has
// backups or streams open (its own shared lock would block phase 2 until
// ctx ends).
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	_, release, err := r.locks.acquireShared(ctx)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	candidates, err := r.prunePlan(ctx, opts, &rep)
	release()
	if err != nil || opts.DryRun {
		return rep, err
	}
	if r.hookBetweenPrunePhases != nil {
		r.hookBetweenPrunePhases()
	}

	excl, err := r.lock(ctx, true)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	defer excl.release()
	if err := r.pruneSweep(ctx, candidates, &rep); err != nil {
		return rep, err
	}
	if err := excl.valid(ctx); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	if err := r.refreshIndex(ctx); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	return rep, nil
}

// usedChunks reads all snapshots (strictly) and returns the referenced set.
func (r *Repo) usedChunks(ctx context.Context) (map[ChunkID]bool, int, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, 0, err
	}
	snaps, _, err := r.loadSnapshots(ctx, ids, false)
	if err != nil {
		return nil, 0, fmt.Errorf("prune: %w", err)
	}
	used := map[ChunkID]bool{}
	for _, s := range snaps {
		for _, f := range s.Files {
			for _, c := range f.Chunks {
				used[c] = true
			}
		}
	}
	return used, len(snaps), nil
}

// prunePlan is phase 1: it returns the packs to delete (fully unused, or
// repacked).
func (r *Repo) prunePlan(ctx context.Context, opts PruneOptions, rep *PruneReport) (map[packID]bool, error) {
	used, n, err := r.usedChunks(ctx)
	if err != nil {
		return nil, err
	}
	rep.Snapshots = n
	st, err := r.readState(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	candidates := map[packID]bool{}
	var repack []packID
	for pid, chunks := range st.packs {
		var usedBytes, total int64
		for _, c := range chunks {
			total += int64(c.length)
			if used[c.id] {
				usedBytes += int64(c.length)
			}
		}
		switch {
		case usedBytes == 0:
			candidates[pid] = true
			rep.PacksDeleted++
			rep.ChunksRemoved += len(chunks)
			rep.BytesFreed += st.stored[pid]
		case usedBytes < total && float64(total-usedBytes) > opts.MaxUnused*float64(total):
			repack = append(repack, pid)
		}
	}
	for pid, size := range st.stored {
		if _, indexed := st.packs[pid]; !indexed {
			rep.UnindexedPacks++
			rep.BytesFreed += size
		}
	}
	sort.Slice(repack, func(i, j int) bool { return bytes.Compare(repack[i][:], repack[j][:]) < 0 })
	if opts.DryRun {
		rep.PacksRepacked = len(repack)
		return candidates, nil
	}

	// Copy the used chunks of the packs to repack, each chunk once.
	copied := map[ChunkID]bool{}
	var written []packEntries
	var cur *packBuilder
	flush := func() error {
		if cur == nil || len(cur.chunks) == 0 {
			return nil
		}
		parts, _, e := cur.finish(r.keys.aead)
		if err := r.putParts(ctx, packKey(e.id), parts, false); err != nil {
			return fmt.Errorf("prune: write pack: %w", err)
		}
		written = append(written, e)
		rep.PacksWritten++
		cur = nil
		return nil
	}
	for _, pid := range repack {
		data, err := r.bucket.ReadAll(ctx, packKey(pid))
		if err != nil {
			return nil, fmt.Errorf("prune: read %s: %w", packKey(pid), err)
		}
		if sum := sha256.Sum256(data); sum != pid {
			// Damaged: leave it for verify; do not spread or drop it.
			continue
		}
		var freed int64
		for _, c := range st.packs[pid] {
			if int64(c.offset)+int64(c.length) > int64(len(data)) {
				return nil, fmt.Errorf("prune: %s: %w: chunk beyond pack end", packKey(pid), ErrCorrupt)
			}
			if !used[c.id] {
				freed += int64(c.length)
				rep.ChunksRemoved++
				continue
			}
			if copied[c.id] {
				continue
			}
			sealed := data[c.offset : c.offset+c.length]
			if _, err := r.openChunk(c.id, sealed, c.rawLen); err != nil {
				return nil, fmt.Errorf("prune: %s: %w", packKey(pid), err)
			}
			if cur == nil {
				cur = &packBuilder{}
			}
			// A copy: the pack being built must not pin the whole pack read.
			cur.add(c.id, bytes.Clone(sealed), int(c.rawLen))
			copied[c.id] = true
			rep.BytesRepacked += int64(len(sealed))
			if cur.size >= r.opts.PackSize {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		candidates[pid] = true
		rep.PacksRepacked++
		rep.BytesFreed += freed
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(written) > 0 {
		if _, _, err := r.writeIndex(ctx, written); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
	}
	return candidates, nil
}

// pruneSweep is phase 2, under the exclusive lock.
func (r *Repo) pruneSweep(ctx context.Context, candidates map[packID]bool, rep *PruneReport) error {
	used, _, err := r.usedChunks(ctx)
	if err != nil {
		return err
	}
	st, err := r.readState(ctx, false)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	drop := map[packID]bool{}
	for pid := range candidates {
		if _, ok := st.packs[pid]; !ok {
			continue // gone meanwhile (another prune)
		}
		safe := true
		for _, c := range st.packs[pid] {
			if !used[c.id] {
				continue
			}
			elsewhere := false
			for _, q := range st.locs[c.id] {
				if _, exists := st.stored[q]; exists && !candidates[q] {
					elsewhere = true
				}
			}
			if !elsewhere {
				safe = false // a backup since phase 1 uses it
				break
			}
		}
		if safe {
			drop[pid] = true
		}
	}
	for pid := range st.stored {
		if _, indexed := st.packs[pid]; !indexed {
			drop[pid] = true // left by a killed backup
		}
	}
	if len(drop) == 0 {
		return nil
	}
	// New index: every pack that stays, once.
	var keep []packEntries
	for pid, chunks := range st.packs {
		if !drop[pid] {
			keep = append(keep, packEntries{id: pid, chunks: chunks})
		}
	}
	sort.Slice(keep, func(i, j int) bool { return bytes.Compare(keep[i].id[:], keep[j].id[:]) < 0 })
	newID := ""
	if len(keep) > 0 {
		if newID, _, err = r.writeIndex(ctx, keep); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	for id := range st.indexFiles {
		if id == newID {
			continue
		}
		if err := r.bucket.Delete(ctx, prefixIndex+id); err != nil {
			return fmt.Errorf("prune: delete index %s: %w", id, err)
		}
		rep.IndexFiles++
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Uploads * 2)
	for pid := range drop {
		g.Go(func() error {
			if err := r.bucket.Delete(gctx, packKey(pid)); err != nil {
				return fmt.Errorf("prune: delete %s: %w", packKey(pid), err)
			}
			return nil
		})
	}
	return g.Wait()
}
