package repo

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// zstdWindow is the encoders' window and the largest window the decoder
// accepts: chunker.MaxSize (8 MiB), which is also the window every earlier
// version of this package encoded with (the library's default at
// SpeedDefault and SpeedBetterCompression). A chunk is never larger, so a
// chunk is one single-segment frame whose window is its own size, byte for
// byte what the earlier encoders wrote; objects larger than 8 MiB (a big
// index file) are framed with an 8 MiB window, as before. A larger window
// would cost memory and find no match a chunk can use.
const zstdWindow = chunker.MaxSize

// encoderOptions are the options of every encoder of a Repo.
//
// SpeedBetterCompression (about zstd level 7): on text (database dumps)
// about 5% smaller than the default level for about three times its time,
// which new chunks only pay once; incompressible data (media) is
// recognised about as fast as at the default level. No frame CRC: every
// chunk and file is authenticated (AES-GCM) and chunks are also checked
// against their ids. One encoder per zstd.Encoder (the pool does the
// concurrency) and WithLowerEncoderMem: its history buffer is the window
// plus one block (8.1 MiB) instead of twice the window; with the level's
// match tables (4.2 MiB) an encoder holds about 13 MiB once used, against
// 21 MiB with the library's defaults. The output is the same.
var encoderOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
	zstd.WithWindowSize(zstdWindow),
	zstd.WithLowerEncoderMem(true),
	zstd.WithEncoderConcurrency(1),
	zstd.WithZeroFrames(true),
	zstd.WithEncoderCRC(false),
}

// newDecoder returns the Repo's decoder: at most workers DecodeAll calls
// at once, low-memory buffers, and no frame whose window exceeds
// zstdWindow (none was ever written with a larger one).
func newDecoder(workers int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdWindow),
		zstd.WithDecoderMaxMemory(1<<30))
}

// encoderPool lends zstd encoders for EncodeAll, at most n at once: a
// caller waits while n encodings run (compression is CPU-bound, more
// than the Repo's workers at once gains nothing). An encoder's memory
// (about 13 MiB, see encoderOptions) is only worth keeping while backups
// run, so encoders not lent out wait in a sync.Pool, which a garbage
// collection empties: after a burst of backups the heap does not keep
// them. Within a backup, encoders are taken back continuously and survive.
type encoderPool struct {
	slots chan struct{} // one per encoder lent out
	idle  sync.Pool     // of *zstd.Encoder

	// Figures for tests and benchmarks: encoders created, alive (created
	// and not yet collected), lent out now, and the most lent out at once.
	created, live, lent, peak atomic.Int64
}

func newEncoderPool(n int) (*encoderPool, error) {
	p := &encoderPool{slots: make(chan struct{}, max(n, 1))}
	// The options are constant: a failure shows here, not at the first
	// chunk (which has no error to return).
	enc, err := p.newEncoder()
	if err != nil {
		return nil, err
	}
	p.idle.Put(enc)
	return p, nil
}

func (p *encoderPool) newEncoder() (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil, encoderOptions...)
	if err != nil {
		return nil, err
	}
	p.created.Add(1)
	p.live.Add(1)
	runtime.AddCleanup(enc, func(live *atomic.Int64) { live.Add(-1) }, &p.live)
	return enc, nil
}

// encodeAll appends the zstd frame of src to dst.
func (p *encoderPool) encodeAll(src, dst []byte) []byte {
	p.slots <- struct{}{}
	defer func() { <-p.slots }()
	enc, _ := p.idle.Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		if enc, err = p.newEncoder(); err != nil {
			panic(err) // the options were checked by newEncoderPool
		}
	}
	n := p.lent.Add(1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	dst = enc.EncodeAll(src, dst)
	p.lent.Add(-1)
	p.idle.Put(enc)
	return dst
}
