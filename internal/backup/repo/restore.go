package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
)

// OpenStream returns a reader of the named stream of the snapshot. It
// streams chunk by chunk (Options.ReadAhead chunks fetched in parallel),
// checks each chunk and, at EOF, the stream's size and SHA-256; a mismatch
// is an error wrapping ErrCorrupt. It holds a shared lock until closed.
func (r *Repo) OpenStream(ctx context.Context, snap *Snapshot, name string) (io.ReadCloser, error) {
	f, ok := snap.File(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q in snapshot %s", ErrFileNotFound, name, snap.ID)
	}
	return r.OpenFile(ctx, f)
}

// OpenFile is OpenStream for an entry the caller already has.
func (r *Repo) OpenFile(ctx context.Context, f *FileEntry) (io.ReadCloser, error) {
	_, release, err := r.locks.acquireShared(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := r.refreshIndex(ctx); err != nil {
		release()
		return nil, fmt.Errorf("restore: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &streamReader{f: f, cancel: cancel, release: release, sum: sha256.New(),
		futures: make(chan chan chunkResult, r.opts.ReadAhead)}
	go func() {
		defer close(s.futures)
		for _, id := range f.Chunks {
			fut := make(chan chunkResult, 1)
			select {
			case s.futures <- fut:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := r.readChunk(ctx, id)
				fut <- chunkResult{data, err}
			}()
		}
	}()
	return s, nil
}

type chunkResult struct {
	data []byte
	err  error
}

// streamReader reassembles a stream from its chunks.
type streamReader struct {
	f       *FileEntry
	cancel  context.CancelFunc
	release func()
	futures chan chan chunkResult
	cur     []byte
	sum     hash.Hash
	n       int64
	err     error
	once    sync.Once
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		fut, ok := <-s.futures
		if !ok {
			s.err = s.finish()
			return 0, s.err
		}
		res := <-fut
		if res.err != nil {
			s.err = fmt.Errorf("restore %s: %w", s.f.Name, res.err)
			return 0, s.err
		}
		s.cur = res.data
		s.sum.Write(res.data)
		s.n += int64(len(res.data))
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// finish checks the whole stream once all chunks were read.
func (s *streamReader) finish() error {
	if s.n != s.f.Size {
		return fmt.Errorf("restore %s: %w: %d bytes, want %d", s.f.Name, ErrCorrupt, s.n, s.f.Size)
	}
	if got := hex.EncodeToString(s.sum.Sum(nil)); got != s.f.SHA256 {
		return fmt.Errorf("restore %s: %w: sha256 %s, want %s", s.f.Name, ErrCorrupt, got, s.f.SHA256)
	}
	return io.EOF
}

func (s *streamReader) Close() error {
	s.once.Do(func() {
		s.cancel()
		// Drain so no fetch goroutine is left blocked.
		for fut := range s.futures {
			<-fut
		}
		s.release()
	})
	return nil
}
