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

// smallWindow is the window of the encoders for inputs up to its size
// (zstdWindow for larger ones): most chunks (about 1 MiB on average),
// point-in-time log segments and snapshot files. An input no larger than
// the window is one single-segment frame whose window is its own size,
// and is encoded byte for byte alike by both sizes.
const smallWindow = 1 << 20

// encoderOptions are the options of a Repo's encoders of the given window.
//
// SpeedBetterCompression (about zstd level 7): on text (database dumps)
// about 5% smaller than the default level for about three times its time,
// which new chunks only pay once; incompressible data (media) is
// recognised about as fast as at the default level. No frame CRC: every
// chunk and file is authenticated (AES-GCM) and chunks are also checked
// against their ids. One encoder per zstd.Encoder (the pool does the
// concurrency) and WithLowerEncoderMem: its history buffer is the window
// plus one block instead of twice the window. With the level's match
// tables (4.2 MiB) an encoder of zstdWindow holds about 12.5 MiB once
// used and one of smallWindow 5.5 MiB, against 21 MiB for the library's
// defaults. The output is the same.
func encoderOptions(window int) []zstd.EOption {
	return []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithWindowSize(window),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
	}
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
// caller waits while n encodings run (compression is CPU-bound, more than
// the Repo's workers at once gains nothing). Inputs up to smallWindow get
// an encoder of that window, larger ones one of zstdWindow. An encoder's
// memory (see encoderOptions) is only worth keeping while backups run, so
// encoders not lent out wait in a sync.Pool, which garbage collection
// empties: after a burst of backups the heap does not keep them. Within a
// backup, encoders are taken back continuously and survive.
type encoderPool struct {
	slots       chan struct{} // one per encoder lent out
	small, full sync.Pool     // of *zstd.Encoder: smallWindow, zstdWindow

	// Figures for tests and benchmarks: encoders created, alive (created
	// and not yet collected), lent out now, and the most lent out at once.
	created, live, lent, peak atomic.Int64
}

func newEncoderPool(n int) (*encoderPool, error) {
	p := &encoderPool{slots: make(chan struct{}, max(n, 1))}
	// The options are constant: a failure shows here, not at the first
	// chunk (which has no error to return).
	for _, w := range []int{smallWindow, zstdWindow} {
		enc, err := p.newEncoder(w)
		if err != nil {
			return nil, err
		}
		p.pool(w).Put(enc)
	}
	return p, nil
}

func (p *encoderPool) pool(window int) *sync.Pool {
	if window == smallWindow {
		return &p.small
	}
	return &p.full
}

func (p *encoderPool) newEncoder(window int) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil, encoderOptions(window)...)
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
	window := zstdWindow
	if len(src) <= smallWindow {
		window = smallWindow
	}
	enc, _ := p.pool(window).Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		if enc, err = p.newEncoder(window); err != nil {
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
	p.pool(window).Put(enc)
	return dst
}
