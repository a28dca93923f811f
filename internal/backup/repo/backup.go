package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"
)

// Backup is one backup session: add streams, then Commit writes the
// snapshot. Until Commit nothing references the uploaded packs (a killed
// backup leaves only garbage for Prune). A Backup holds a shared lock on
// the repository from NewBackup to Commit or Abort. Streams are added one
// at a time (AddStream is not for concurrent use); each stream is chunked,
// hashed, compressed and encrypted in parallel internally, and packs are
// uploaded in parallel (Options.Uploads). The context given to NewBackup
// governs the session's background uploads.
type Backup struct {
	r       *Repo
	ctx     context.Context
	opts    BackupOptions
	start   time.Time
	lock    *heldLock
	release func()

	mu      sync.Mutex
	pending map[ChunkID]struct{} // chunks this session stores
	pack    *packBuilder
	packs   []packEntries // uploaded
	err     error         // first background failure
	uploads sync.WaitGroup
	files   []FileEntry
	names   map[string]bool
	stats   SnapshotStats
	ended   bool

	bytesRead, bytesNew, bytesStored atomic.Int64
}

// NewBackup starts a backup session, waiting (until ctx ends) for an
// exclusive lock, held by a prune's final phase, to go away.
func (r *Repo) NewBackup(ctx context.Context, opts BackupOptions) (*Backup, error) {
	if opts.Site == "" {
		return nil, errors.New("backup: site is required")
	}
	lock, release, err := r.locks.acquireShared(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := r.refreshIndex(ctx); err != nil {
		release()
		return nil, fmt.Errorf("backup: %w", err)
	}
	return &Backup{
		r: r, ctx: ctx, opts: opts, start: r.opts.Now(), lock: lock, release: release,
		pending: map[ChunkID]struct{}{}, names: map[string]bool{},
	}, nil
}

// AddStream reads r to EOF and stores it as the named stream of the
// snapshot. The returned entry carries size, SHA-256 and chunk list.
// Names must be unique within a snapshot.
func (b *Backup) AddStream(ctx context.Context, name string, r io.Reader) (FileEntry, error) {
	return b.AddStreamEntry(ctx, FileEntry{Name: name}, r)
}

// chunkJob is one chunk travelling through the pipeline.
type chunkJob struct {
	data []byte
	buf  *[]byte
	refs atomic.Int32 // hasher and worker; the last returns buf
	id   ChunkID
}

// AddStreamEntry is AddStream with the caller's Mode and ModTime recorded
// (taken from e; its other fields are filled in).
func (b *Backup) AddStreamEntry(ctx context.Context, e FileEntry, rd io.Reader) (FileEntry, error) {
	b.mu.Lock()
	switch {
	case b.ended:
		b.mu.Unlock()
		return FileEntry{}, errors.New("backup: session already ended")
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return FileEntry{}, err
	case e.Name == "":
		b.mu.Unlock()
		return FileEntry{}, errors.New("backup: stream name is empty")
	case b.names[e.Name]:
		b.mu.Unlock()
		return FileEntry{}, fmt.Errorf("backup: stream %q added twice", e.Name)
	}
	b.names[e.Name] = true
	b.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := b.r.opts.Workers
	// Buffers bound the memory of a stream in flight.
	nbuf := workers + 3
	free := make(chan *[]byte, nbuf)
	for range nbuf {
		buf := make([]byte, 0, chunker.MaxSize)
		free <- &buf
	}
	put := func(j *chunkJob) {
		if j.refs.Add(-1) == 0 {
			free <- j.buf
		}
	}
	work := make(chan *chunkJob, workers)
	toHash := make(chan *chunkJob, nbuf)

	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}

	sum := sha256.New()
	hashDone := make(chan struct{})
	go func() {
		defer close(hashDone)
		for j := range toHash {
			sum.Write(j.data)
			put(j)
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range work {
				if ctx.Err() == nil {
					if err := b.storeChunk(j); err != nil {
						fail(err)
					}
				}
				put(j)
			}
		})
	}

	var jobs []*chunkJob
	var size int64
	c := chunker.New(rd, b.r.cfg.Polynomial)
	for ctx.Err() == nil {
		var buf *[]byte
		select {
		case buf = <-free:
		case <-ctx.Done():
		}
		if buf == nil {
			break
		}
		ch, err := c.Next((*buf)[:0])
		if err == io.EOF {
			free <- buf
			break
		}
		if err != nil {
			free <- buf
			fail(fmt.Errorf("backup: read %s: %w", e.Name, err))
			break
		}
		j := &chunkJob{data: ch.Data, buf: buf}
		j.refs.Store(2)
		jobs = append(jobs, j)
		size += int64(len(ch.Data))
		b.bytesRead.Add(int64(len(ch.Data)))
		toHash <- j
		work <- j
	}
	close(work)
	close(toHash)
	wg.Wait()
	<-hashDone
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("backup: %w", ctx.Err())
	}
	if firstErr == nil {
		firstErr = b.failure()
	}
	if firstErr != nil {
		return FileEntry{}, firstErr
	}
	e.Size = size
	e.SHA256 = hex.EncodeToString(sum.Sum(nil))
	e.Chunks = make([]ChunkID, len(jobs))
	for i, j := range jobs {
		e.Chunks[i] = j.id
	}
	b.mu.Lock()
	b.files = append(b.files, e)
	b.stats.Files++
	b.stats.TotalBytes += size
	b.stats.TotalChunks += len(jobs)
	b.mu.Unlock()
	b.progress()
	return e, nil
}

func (b *Backup) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *Backup) progress() {
	if b.opts.Progress != nil {
		b.opts.Progress(Progress{BytesRead: b.bytesRead.Load(), BytesNew: b.bytesNew.Load(), BytesStored: b.bytesStored.Load()})
	}
}

// storeChunk names a chunk and, unless the repository or this session has
// it already, seals it into the current pack.
func (b *Backup) storeChunk(j *chunkJob) error {
	j.id = b.r.keys.chunkID(j.data)
	if b.r.idx.has(j.id) {
		b.progress()
		return nil
	}
	b.mu.Lock()
	if _, ok := b.pending[j.id]; ok {
		b.mu.Unlock()
		b.progress()
		return nil
	}
	b.pending[j.id] = struct{}{}
	b.mu.Unlock()

	sealed := b.r.sealChunk(j.id, j.data)
	b.bytesNew.Add(int64(len(j.data)))

	b.mu.Lock()
	b.stats.NewChunks++
	b.stats.NewBytes += int64(len(j.data))
	if b.pack == nil {
		b.pack = &packBuilder{buf: make([]byte, 0, b.r.opts.PackSize+chunker.MaxSize+4096)}
	}
	b.pack.add(j.id, sealed, len(j.data))
	var full *packBuilder
	if len(b.pack.buf) >= b.r.opts.PackSize {
		full, b.pack = b.pack, nil
	}
	err := b.err
	b.mu.Unlock()
	if full != nil {
		err = b.upload(full)
	}
	b.progress()
	return err
}

// upload seals a pack and uploads it in the background, waiting for an
// upload slot first (back pressure on the pipeline).
func (b *Backup) upload(p *packBuilder) error {
	select {
	case b.r.uploadSlots <- struct{}{}:
	case <-b.ctx.Done():
		return fmt.Errorf("backup: %w", b.ctx.Err())
	}
	b.uploads.Go(func() {
		defer func() { <-b.r.uploadSlots }()
		data, entries := p.finish(b.r.keys.aead)
		err := b.r.put(b.ctx, packKey(entries.id), data, false)
		b.mu.Lock()
		defer b.mu.Unlock()
		if err != nil {
			if b.err == nil {
				b.err = fmt.Errorf("backup: upload pack: %w", err)
			}
			return
		}
		b.packs = append(b.packs, entries)
		b.stats.StoredBytes += int64(len(data))
		b.bytesStored.Add(int64(len(data)))
	})
	return nil
}

// Commit uploads what is left, writes the index and then the snapshot
// manifest, releases the lock and returns the snapshot.
func (b *Backup) Commit(ctx context.Context) (*Snapshot, error) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return nil, errors.New("backup: session already ended")
	}
	b.ended = true
	last := b.pack
	b.pack = nil
	b.mu.Unlock()
	defer b.release()

	if last != nil {
		if err := b.upload(last); err != nil {
			b.uploads.Wait()
			return nil, err
		}
	}
	b.uploads.Wait()
	if err := b.failure(); err != nil {
		return nil, err
	}
	// Our data is safe from prune only while our lock held.
	if err := b.lock.valid(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if len(b.packs) > 0 {
		id, n, err := b.r.writeIndex(ctx, b.packs)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		b.stats.StoredBytes += n
		b.r.idx.addPacks(b.packs)
		b.r.idx.mu.Lock()
		b.r.idx.files[id] = true
		b.r.idx.mu.Unlock()
	}
	snap := &Snapshot{
		Time: b.start.UTC(), Site: b.opts.Site, Host: b.opts.Host, Tags: b.opts.Tags,
		Meta: b.opts.Meta, Files: b.files, Stats: b.stats,
	}
	if snap.Files == nil {
		snap.Files = []FileEntry{}
	}
	snap.Stats.Duration = b.r.opts.Now().Sub(b.start)
	plain, err := json.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	snap.ID, _, err = b.r.writeFile(ctx, prefixSnapshot, plain, aadSnapshot)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return snap, nil
}

// Abort ends the session without a snapshot; packs already uploaded stay
// unreferenced until Prune deletes them. Safe to call after Commit (no-op).
func (b *Backup) Abort() error {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return nil
	}
	b.ended = true
	b.pack = nil
	b.mu.Unlock()
	b.uploads.Wait()
	b.release()
	return nil
}
