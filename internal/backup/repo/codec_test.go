package repo

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
	"gocloud.dev/blob/memblob"
)

// oldEncoder is the encoder every earlier version of the package used: one
// zstd.Encoder per Repo with Workers encoders of the library's default
// window (8 MiB) and memory use, kept for the Repo's life. level is
// SpeedDefault for the first version, SpeedBetterCompression since.
func oldEncoder(t testing.TB, level zstd.EncoderLevel, workers int) *zstd.Encoder {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(workers), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// waitEncodersCollected runs garbage collections until no encoder of p is
// alive, or fails after 100 of them.
func waitEncodersCollected(t testing.TB, p *encoderPool) {
	t.Helper()
	for range 100 {
		runtime.GC()
		if p.live.Load() == 0 {
			return
		}
		time.Sleep(time.Millisecond) // let the cleanups run
	}
	t.Fatalf("%d zstd encoder(s) still alive after 100 garbage collections", p.live.Load())
}

// TestEncoderPoolBounded seals chunks from many goroutines at once: no
// more than Workers encoders are in use at any moment, every chunk opens
// again, and once the burst is over garbage collection frees every
// encoder.
func TestEncoderPoolBounded(t *testing.T) {
	bucket, _ := fileBucket(t)
	o := testOpts()
	o.Workers = 2
	r := initRepo(t, bucket, mustKey(t), o)
	const goroutines, each = 12, 3
	type sealed struct {
		id    ChunkID
		data  []byte
		bytes []byte
	}
	out := make([][]sealed, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				data := textData(uint64(g*each+i), 512<<10+i*300<<10)
				id := r.keys.chunkID(data)
				out[g] = append(out[g], sealed{id, data, r.sealChunk(id, data)})
			}
		})
	}
	wg.Wait()
	if peak := r.enc.peak.Load(); peak < 1 || peak > int64(o.Workers) {
		t.Errorf("%d encoders in use at once, want 1 to %d", peak, o.Workers)
	}
	if lent := r.enc.lent.Load(); lent != 0 {
		t.Errorf("%d encoders still lent out", lent)
	}
	for _, s := range out {
		for _, c := range s {
			got, err := r.openChunk(c.id, c.bytes, uint32(len(c.data)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("chunk %s: content differs after open", c.id)
			}
			if len(c.bytes) >= len(c.data) {
				t.Errorf("text chunk of %d bytes sealed to %d: not compressed", len(c.data), len(c.bytes))
			}
		}
	}
	waitEncodersCollected(t, r.enc)
	// The pool makes encoders again after they were collected.
	data := textData(99, 1<<20)
	id := r.keys.chunkID(data)
	if got, err := r.openChunk(id, r.sealChunk(id, data), uint32(len(data))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("seal after collection: %v", err)
	}
}

// TestCodecCompatible: the pooled encoders write the same bytes as the
// encoder of earlier versions for anything up to a chunk's largest size
// (a chunk's compression ratio is unchanged), and the decoder reads what
// the earlier encoders wrote, at both levels they used, including objects
// larger than the window (index files).
func TestCodecCompatible(t *testing.T) {
	bucket, _ := fileBucket(t)
	r := initRepo(t, bucket, mustKey(t), testOpts())
	inputs := map[string][]byte{
		"empty":        {},
		"1 KB text":    textData(1, 1000),
		"600 KiB text": textData(2, 600<<10),
		"3 MiB text":   textData(3, 3<<20),
		"1 MiB text":   textData(8, smallWindow),
		"1 MiB + 1":    textData(9, smallWindow+1),
		"max chunk":    textData(4, chunker.MaxSize),
		"1 MiB random": randomData(5, 1<<20),
		"12 MiB text":  textData(6, 12<<20),
		"mixed 9 MiB":  append(randomData(7, 4<<20), textData(7, 5<<20)...),
	}
	for _, level := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		old := oldEncoder(t, level, 2)
		for name, data := range inputs {
			t.Run(fmt.Sprintf("%s/%s", level, name), func(t *testing.T) {
				frame := old.EncodeAll(data, nil)
				got, err := r.dec.DecodeAll(frame, nil)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("decode an earlier frame: %v", err)
				}
				// A chunk sealed by an earlier version opens.
				if len(data) > 0 && len(data) <= chunker.MaxSize {
					id := r.keys.chunkID(data)
					s := seal(r.keys.aead, nil, append([]byte{flagZstd}, frame...), id[:])
					if got, err := r.openChunk(id, s, uint32(len(data))); err != nil || !bytes.Equal(got, data) {
						t.Fatalf("open an earlier chunk: %v", err)
					}
				}
				if level != zstd.SpeedBetterCompression || len(data) > chunker.MaxSize {
					return
				}
				if now := r.enc.encodeAll(data, nil); !bytes.Equal(now, frame) {
					t.Errorf("the pooled encoder wrote %d bytes, the earlier one %d: want the same frame", len(now), len(frame))
				}
			})
		}
		old.Close()
	}
}

// BenchmarkSealBurst compresses a burst of chunks (4×Workers goroutines,
// 4 chunks each, of 1 MiB and 2.5 MiB in turn) and reports the heap kept after it and two
// garbage collections, for the pooled encoders and, as the anchor in the
// same run, the Repo's earlier encoder (one zstd.Encoder with Workers
// encoders at the library's default memory use, kept with the Repo).
// Figures: MiB-held and MiB-kept (HeapInuse after the burst and one, then
// two garbage collections, minus before: sync.Pool keeps its objects
// through one), encoders (created), B/op with -benchmem.
func BenchmarkSealBurst(b *testing.B) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	chunks := make([][]byte, 4*workers*4)
	for i := range chunks {
		chunks[i] = textData(uint64(i), 1<<20+(i%2)*(3<<19))
	}
	burst := func(encode func(src, dst []byte) []byte) {
		var wg sync.WaitGroup
		for g := range 4 * workers {
			wg.Go(func() {
				for _, c := range chunks[g*4 : g*4+4] {
					encode(c, make([]byte, 0, len(c)))
				}
			})
		}
		wg.Wait()
	}
	heapInuse := func(gcs int) uint64 {
		for range gcs {
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	report := func(b *testing.B, before uint64, encoders int64) {
		held := float64(int64(heapInuse(1))-int64(before)) / (1 << 20)
		kept := float64(int64(heapInuse(1))-int64(before)) / (1 << 20)
		b.ReportMetric(held, "MiB-held")
		b.ReportMetric(kept, "MiB-kept")
		b.ReportMetric(float64(encoders), "encoders")
		b.Logf("%s: %d workers, heap after the burst and one GC (held until the next): %.1f MiB, after two: %.1f MiB; %d encoders made",
			b.Name(), workers, held, kept, encoders)
	}
	b.Run("anchor=earlier-encoder", func(b *testing.B) {
		b.ReportAllocs()
		before := heapInuse(2)
		enc := oldEncoder(b, zstd.SpeedBetterCompression, workers)
		for range b.N {
			burst(enc.EncodeAll)
		}
		b.StopTimer()
		report(b, before, int64(workers))
		runtime.KeepAlive(enc) // as the Repo kept it
	})
	b.Run("pool", func(b *testing.B) {
		b.ReportAllocs()
		before := heapInuse(2)
		p, err := newEncoderPool(workers)
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			burst(p.encodeAll)
		}
		b.StopTimer()
		report(b, before, p.created.Load())
		if peak := p.peak.Load(); peak > int64(workers) {
			b.Fatalf("%d encoders in use at once, at most %d allowed", peak, workers)
		}
		runtime.KeepAlive(p) // as the Repo keeps it
	})
}

// BenchmarkBackupSmallStreams backs up 20 streams of 4 KiB (the size of a
// point-in-time log segment of a quiet site) per op. The anchor is the
// data itself: alloc-B/stream-B is the bytes allocated per byte backed up
// (with -benchmem, B/op is the total). With chunk and scratch buffers
// always of the largest chunk's size (8 MiB) it was 61 (5.0 MB/op); sized
// by need, 22 (1.8 MB/op).
func BenchmarkBackupSmallStreams(b *testing.B) {
	bucket := memblob.OpenBucket(nil)
	r := initRepo(b, bucket, mustKey(b), nil)
	ctx := context.Background()
	const streams, size = 20, 4 << 10
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range b.N {
		bk, err := r.NewBackup(ctx, BackupOptions{Site: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		for s := range streams {
			if _, err := bk.AddStream(ctx, fmt.Sprint(s), bytes.NewReader(textData(uint64(i*streams+s), size))); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bk.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N*streams*size), "alloc-B/stream-B")
}

// TestSmallStreamsChunkedAsBefore: a stream shorter than smallStream is
// read without the chunker; every stream still has the chunks the chunker
// cuts (so dedup with earlier snapshots holds) and restores.
func TestSmallStreamsChunkedAsBefore(t *testing.T) {
	bucket, _ := fileBucket(t)
	r := initRepo(t, bucket, mustKey(t), testOpts())
	streams := map[string][]byte{}
	for _, n := range []int{0, 1, 1000, smallStream - 1, smallStream, smallStream + 1, chunker.MinSize + 300<<10, 3 << 20} {
		streams[fmt.Sprint(n)] = textData(uint64(n), n)
	}
	snap := backup(t, r, "s", streams)
	checkRestore(t, r, snap, streams)
	for _, f := range snap.Files {
		var want []ChunkID
		c := chunker.New(bytes.NewReader(streams[f.Name]), r.cfg.Polynomial)
		for {
			ch, err := c.Next(nil)
			if err != nil {
				break
			}
			want = append(want, r.keys.chunkID(ch.Data))
		}
		if !slices.Equal(f.Chunks, want) {
			t.Errorf("stream of %s bytes: chunks %v, the chunker cuts %v", f.Name, f.Chunks, want)
		}
	}
}
