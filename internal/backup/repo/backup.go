package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"
)

// Backup is one backup session: add streams, then Commit writes the
// snapshot. Until Commit nothing references the uploaded packs (a killed
// backup leaves only garbage for Prune). A Backup holds a shared lock on
// the repository from NewBackup to Commit or Abort. AddStream,
// AddStreamEntry and AddUnchanged may be called concurrently (several
// streams read at once keep the pipeline busy while one of them waits for
// its reader); each stream is chunked, hashed, compressed and encrypted in
// parallel internally, and packs are uploaded in parallel
// (Options.Uploads). The context given to NewBackup governs the session's
// background uploads.
type Backup struct {
	r       *Repo
	ctx     context.Context
	opts    BackupOptions
	start   time.Time
	lock    *heldLock
	release func()
	// tokens bound the chunk buffers in flight over all streams of the
	// session (memory: cap(tokens) × chunker.MaxSize at most).
	tokens chan struct{}

	mu      sync.Mutex
	pending map[ChunkID]uint32 // chunks this session stores -> plaintext length
	pack    *packBuilder
	packs   []packEntries // uploaded
	err     error         // first background failure
	uploads sync.WaitGroup
	files   []FileEntry
	names   map[string]bool
	stats   SnapshotStats
	ended   bool

	bytesRead, bytesNew, bytesStored, bytesReused atomic.Int64
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
		tokens:  make(chan struct{}, 2*r.opts.Workers+4),
		pending: map[ChunkID]uint32{}, names: map[string]bool{},
	}, nil
}

// SetMeta replaces the snapshot's Meta (BackupOptions.Meta) before Commit:
// for a record only known once the streams are read (a dump's position).
func (b *Backup) SetMeta(meta json.RawMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts.Meta = meta
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

// reserve claims a stream name for the session.
func (b *Backup) reserve(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.ended:
		return errors.New("backup: session already ended")
	case b.err != nil:
		return b.err
	case name == "":
		return errors.New("backup: stream name is empty")
	case b.names[name]:
		return fmt.Errorf("backup: stream %q added twice", name)
	}
	b.names[name] = true
	return nil
}

// record adds a finished entry to the snapshot.
func (b *Backup) record(e FileEntry, reused bool) {
	b.mu.Lock()
	b.files = append(b.files, e)
	b.stats.Files++
	b.stats.TotalBytes += e.Size
	b.stats.TotalChunks += len(e.Chunks)
	if reused {
		b.stats.ReusedFiles++
		b.stats.ReusedBytes += e.Size
	}
	b.mu.Unlock()
	b.progress()
}

func (r *Repo) getChunkBuf() *[]byte {
	if bp, ok := r.chunkBufs.Get().(*[]byte); ok {
		return bp
	}
	buf := make([]byte, 0, chunker.MaxSize)
	return &buf
}

// smallStream is the length under which a stream is one chunk read
// without the chunker (see AddStreamEntry).
const smallStream = chunker.MinSize

func (r *Repo) getPeekBuf() *[smallStream]byte {
	if p, ok := r.peekBufs.Get().(*[smallStream]byte); ok {
		return p
	}
	return new([smallStream]byte)
}

func (r *Repo) getChunker(rd io.Reader) *chunker.Chunker {
	if c, ok := r.chunkers.Get().(*chunker.Chunker); ok {
		c.Reset(rd, r.cfg.Polynomial)
		return c
	}
	return chunker.New(rd, r.cfg.Polynomial)
}

// AddStreamEntry is AddStream with the caller's Mode, ModTime, Inode and
// CTime recorded (taken from e; its other fields are filled in).
func (b *Backup) AddStreamEntry(ctx context.Context, e FileEntry, rd io.Reader) (FileEntry, error) {
	if err := b.reserve(e.Name); err != nil {
		return FileEntry{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := b.r.opts.Workers
	// Chunk buffers come from the Repo's pool, one per chunk in flight,
	// each taken with one of the session's tokens (bounding memory).
	put := func(j *chunkJob) {
		if j.refs.Add(-1) == 0 {
			if j.buf != nil {
				*j.buf = (*j.buf)[:0]
				b.r.chunkBufs.Put(j.buf)
			}
			<-b.tokens
		}
	}
	work := make(chan *chunkJob, workers)
	toHash := make(chan *chunkJob, workers+3)

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

	// A stream shorter than smallStream = chunker.MinSize (a point-in-time
	// log segment, a small file) is one chunk, as the chunker would cut it
	// (never before MinSize): it is read into a buffer of its own size
	// instead of a pooled one of chunker.MaxSize, and needs no chunker. A longer
	// stream goes to the chunker, its first bytes first.
	peek := b.r.getPeekBuf()
	defer b.r.peekBufs.Put(peek)
	n, err := io.ReadFull(rd, peek[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return FileEntry{}, fmt.Errorf("backup: read %s: %w", e.Name, err)
	}
	var c *chunker.Chunker
	if n == len(peek) {
		c = b.r.getChunker(io.MultiReader(bytes.NewReader(peek[:n]), rd))
	}
	next := func() (chunker.Chunk, *[]byte, error) {
		if c == nil {
			if n == 0 {
				return chunker.Chunk{}, nil, io.EOF
			}
			data := bytes.Clone(peek[:n])
			n = 0
			return chunker.Chunk{Length: uint(len(data)), Data: data}, nil, nil
		}
		buf := b.r.getChunkBuf()
		ch, err := c.Next((*buf)[:0])
		return ch, buf, err
	}

	var jobs []*chunkJob
	var size int64
	for ctx.Err() == nil {
		select {
		case b.tokens <- struct{}{}:
		case <-ctx.Done():
			continue // ends the loop
		}
		ch, buf, err := next()
		if err != nil {
			if buf != nil {
				b.r.chunkBufs.Put(buf)
			}
			<-b.tokens
			if err != io.EOF {
				fail(fmt.Errorf("backup: read %s: %w", e.Name, err))
			}
			break
		}
		if buf != nil && cap(ch.Data) > cap(*buf) {
			*buf = ch.Data // the chunker grew it: pool the bigger one
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
	if c != nil {
		c.Reset(nil, b.r.cfg.Polynomial) // drops the reader; Reset starts afresh
		b.r.chunkers.Put(c)
	}
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
	b.record(e, false)
	return e, nil
}

// AddUnchanged records e, an entry of an earlier snapshot of this
// repository (typically the parent snapshot's entry of a file whose size,
// modification time and so on have not changed since), as a stream of
// this snapshot without reading anything: its chunks are referenced again.
// It returns false, and records nothing, when any chunk of e is no longer
// in the repository (pruned since) or the chunks do not add up to e.Size;
// the caller then reads the stream with AddStreamEntry. Whether the
// content is really unchanged is the caller's judgement; e's SHA-256 is
// kept as it is.
func (b *Backup) AddUnchanged(ctx context.Context, e FileEntry) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("backup: %w", err)
	}
	if len(e.SHA256) != 2*sha256.Size {
		return false, nil
	}
	var total int64
	for _, id := range e.Chunks {
		if _, loc, ok := b.r.idx.lookup(id); ok {
			total += int64(loc.rawLen)
			continue
		}
		b.mu.Lock()
		n, ok := b.pending[id]
		b.mu.Unlock()
		if !ok {
			return false, nil
		}
		total += int64(n)
	}
	if total != e.Size {
		return false, nil
	}
	if err := b.reserve(e.Name); err != nil {
		return false, err
	}
	e.Chunks = slices.Clone(e.Chunks)
	if e.Chunks == nil {
		e.Chunks = []ChunkID{}
	}
	b.bytesReused.Add(e.Size)
	b.record(e, true)
	return true, nil
}

func (b *Backup) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *Backup) progress() {
	if b.opts.Progress != nil {
		b.opts.Progress(Progress{BytesRead: b.bytesRead.Load(), BytesNew: b.bytesNew.Load(),
			BytesStored: b.bytesStored.Load(), BytesReused: b.bytesReused.Load()})
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
	b.pending[j.id] = uint32(len(j.data))
	b.mu.Unlock()

	sealed := b.r.sealChunk(j.id, j.data)
	b.bytesNew.Add(int64(len(j.data)))

	b.mu.Lock()
	b.stats.NewChunks++
	b.stats.NewBytes += int64(len(j.data))
	if b.pack == nil {
		b.pack = &packBuilder{}
	}
	b.pack.add(j.id, sealed, len(j.data))
	var full *packBuilder
	if b.pack.size >= b.r.opts.PackSize {
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
		parts, size, entries := p.finish(b.r.keys.aead)
		err := b.r.putParts(b.ctx, packKey(entries.id), parts, false)
		b.mu.Lock()
		defer b.mu.Unlock()
		if err != nil {
			if b.err == nil {
				b.err = fmt.Errorf("backup: upload pack: %w", err)
			}
			return
		}
		b.packs = append(b.packs, entries)
		b.stats.StoredBytes += size
		b.bytesStored.Add(size)
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
	// Streams may have been added concurrently: a stable order.
	slices.SortFunc(b.files, func(x, y FileEntry) int { return strings.Compare(x.Name, y.Name) })
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
