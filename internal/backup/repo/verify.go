package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// repoState is a fresh read of the repository's metadata (not the cached
// in-memory index).
type repoState struct {
	indexFiles map[string][]packEntries // index file id -> packs
	badIndex   map[string]error
	packs      map[packID][]packChunk // merged over index files
	stored     map[packID]int64       // packs present in data/, with sizes
	locs       map[ChunkID][]packID   // where each chunk is indexed
}

// readState loads all index files and lists the packs. With tolerant,
// unreadable index files are collected instead of failing.
func (r *Repo) readState(ctx context.Context, tolerant bool) (*repoState, error) {
	st := &repoState{indexFiles: map[string][]packEntries{}, badIndex: map[string]error{},
		packs: map[packID][]packChunk{}, stored: map[packID]int64{}, locs: map[ChunkID][]packID{}}
	objs, err := listAll(ctx, r.bucket, prefixIndex)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, o := range objs {
		id, ok := objectName(o.Key, prefixIndex, 64)
		if !ok {
			continue
		}
		g.Go(func() error {
			packs, err := r.loadIndexFile(gctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !tolerant {
					return err
				}
				st.badIndex[id] = err
				return nil
			}
			st.indexFiles[id] = packs
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, packs := range st.indexFiles {
		for _, p := range packs {
			if _, seen := st.packs[p.id]; seen {
				continue // the same pack listed by two index files
			}
			st.packs[p.id] = p.chunks
			for _, c := range p.chunks {
				st.locs[c.id] = append(st.locs[c.id], p.id)
			}
		}
	}
	data, err := listAll(ctx, r.bucket, prefixData)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	for _, o := range data {
		if id, ok := parsePackKey(o.Key); ok {
			st.stored[id] = o.Size
		}
	}
	return st, nil
}

// Verify checks the repository; see VerifyOptions. A returned error means
// Verify could not run (e.g. storage unreachable); damage is in the report.
func (r *Repo) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	_, release, err := r.locks.acquireShared(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer release()
	rep := &VerifyReport{}
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	snaps, badSnaps, err := r.loadSnapshots(ctx, ids, true)
	if err != nil {
		return nil, err
	}
	rep.Snapshots = len(ids)
	affected := map[string]bool{}
	for id, err := range badSnaps {
		rep.Problems = append(rep.Problems, Problem{Kind: "snapshot", Object: prefixSnapshot + id, Err: err.Error()})
		affected[id] = true
	}
	st, err := r.readState(ctx, true)
	if err != nil {
		return nil, err
	}
	rep.Indexes = len(st.indexFiles) + len(st.badIndex)
	for id, err := range st.badIndex {
		rep.Problems = append(rep.Problems, Problem{Kind: "index", Object: prefixIndex + id, Err: err.Error()})
	}
	rep.Packs = len(st.packs)
	rep.Chunks = len(st.locs)

	// bad[chunk][pack]: the chunk cannot be read from that pack.
	var mu sync.Mutex
	bad := map[ChunkID]map[packID]bool{}
	markBad := func(c ChunkID, p packID) {
		if bad[c] == nil {
			bad[c] = map[packID]bool{}
		}
		bad[c][p] = true
	}
	var read atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Uploads)
	for pid, chunks := range st.packs {
		size, ok := st.stored[pid]
		var end int64
		for _, c := range chunks {
			end = max(end, int64(c.offset)+int64(c.length))
		}
		if !ok || size < end+overhead+4 {
			msg := "pack missing"
			if ok {
				msg = fmt.Sprintf("pack truncated: %d bytes", size)
			}
			rep.Problems = append(rep.Problems, Problem{Kind: "pack", Object: packKey(pid), Err: msg})
			for _, c := range chunks {
				markBad(c.id, pid)
			}
			continue
		}
		if !opts.ReadData {
			continue
		}
		g.Go(func() error {
			data, err := r.bucket.ReadAll(gctx, packKey(pid))
			if err != nil {
				return fmt.Errorf("verify: read %s: %w", packKey(pid), err)
			}
			n := read.Add(int64(len(data)))
			if opts.Progress != nil {
				opts.Progress(n)
			}
			var probs []Problem
			if sum := sha256.Sum256(data); !bytes.Equal(sum[:], pid[:]) {
				probs = append(probs, Problem{Kind: "pack", Object: packKey(pid), Err: "content does not match its id"})
			}
			var badHere []ChunkID
			for _, c := range chunks {
				sealed := data[c.offset : c.offset+c.length]
				if _, err := r.openChunk(c.id, sealed, c.rawLen); err != nil {
					id := c.id
					badHere = append(badHere, id)
					probs = append(probs, Problem{Kind: "chunk", Object: packKey(pid), Chunk: &id, Err: err.Error()})
				}
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Problems = append(rep.Problems, probs...)
			for _, c := range badHere {
				markBad(c, pid)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep.BytesRead = read.Load()

	// A referenced chunk is damaged when no indexed copy of it is good.
	damaged := map[ChunkID]bool{}
	for _, s := range snaps {
		for _, f := range s.Files {
			for _, c := range f.Chunks {
				if _, seen := damaged[c]; seen {
					if damaged[c] {
						affected[s.ID] = true
					}
					continue
				}
				good := false
				for _, p := range st.locs[c] {
					good = good || !bad[c][p]
				}
				damaged[c] = !good
				if !good {
					affected[s.ID] = true
					if len(st.locs[c]) == 0 {
						id := c
						rep.Problems = append(rep.Problems, Problem{Kind: "missing", Chunk: &id, Err: "referenced chunk is in no index"})
					}
				}
			}
		}
	}
	for c, d := range damaged {
		if d {
			rep.DamagedChunks = append(rep.DamagedChunks, c)
		}
	}
	sort.Slice(rep.DamagedChunks, func(i, j int) bool {
		return bytes.Compare(rep.DamagedChunks[i][:], rep.DamagedChunks[j][:]) < 0
	})
	for id := range affected {
		rep.AffectedSnapshots = append(rep.AffectedSnapshots, id)
	}
	sort.Strings(rep.AffectedSnapshots)
	sort.SliceStable(rep.Problems, func(i, j int) bool {
		if rep.Problems[i].Object != rep.Problems[j].Object {
			return rep.Problems[i].Object < rep.Problems[j].Object
		}
		return rep.Problems[i].Kind < rep.Problems[j].Kind
	})
	return rep, nil
}

// StoredBytes is the size of the repository's packs as stored (what
// Stats reports as StoredBytes), from one listing of its pack objects: no
// index is read. Packs a killed backup left unindexed count too (they
// take space until a prune); it takes no lock, so a prune or backup under
// way may be seen half done.
func (r *Repo) StoredBytes(ctx context.Context) (int64, error) {
	data, err := listAll(ctx, r.bucket, prefixData)
	if err != nil {
		return 0, fmt.Errorf("list packs: %w", err)
	}
	var n int64
	for _, o := range data {
		if _, ok := parsePackKey(o.Key); ok {
			n += o.Size
		}
	}
	return n, nil
}

// Stats summarises the repository from its index files, pack list and
// snapshot list.
func (r *Repo) Stats(ctx context.Context) (RepoStats, error) {
	st, err := r.readState(ctx, false)
	if err != nil {
		return RepoStats{}, err
	}
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return RepoStats{}, err
	}
	s := RepoStats{Snapshots: len(ids), Packs: len(st.stored), IndexFiles: len(st.indexFiles), Chunks: len(st.locs)}
	seen := map[ChunkID]bool{}
	for _, chunks := range st.packs {
		for _, c := range chunks {
			if !seen[c.id] {
				seen[c.id] = true
				s.RawBytes += int64(c.rawLen)
			}
		}
	}
	for _, n := range st.stored {
		s.StoredBytes += n
	}
	return s, nil
}
