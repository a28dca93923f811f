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
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
)

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func randomData(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// textData is compressible, repetitive but not periodic data.
func textData(seed uint64, n int) []byte {
	words := []string{"wordpress ", "post ", "the ", "content ", "<p>", "</p>\n", "INSERT INTO wp_posts ", "VALUES ", "(1,'a'),", "plugin "}
	rnd := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rnd.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func fileBucket(t testing.TB) (*blob.Bucket, string) {
	return fileBucketOpts(t, nil)
}

func fileBucketOpts(t testing.TB, o *fileblob.Options) (*blob.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, dir
}

func testOpts() *Options {
	return &Options{LockPoll: 5 * time.Millisecond, Owner: "test"}
}

func initRepo(t testing.TB, b *blob.Bucket, kek []byte, o *Options) *Repo {
	t.Helper()
	if o == nil {
		o = testOpts()
	}
	r, err := Init(context.Background(), b, kek, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustKey(t testing.TB) []byte {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func backup(t testing.TB, r *Repo, site string, streams map[string][]byte) *Snapshot {
	t.Helper()
	ctx := context.Background()
	bk, err := r.NewBackup(ctx, BackupOptions{Site: site, Meta: json.RawMessage(`{"core":"6.8"}`)})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(streams))
	for n := range streams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		e, err := bk.AddStream(ctx, n, bytes.NewReader(streams[n]))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(streams[n])
		if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(streams[n])) {
			t.Fatalf("%s: entry %d %s", n, e.Size, e.SHA256)
		}
	}
	s, err := bk.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func restore(r *Repo, s *Snapshot, name string) ([]byte, error) {
	rc, err := r.OpenStream(context.Background(), s, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func checkRestore(t testing.TB, r *Repo, s *Snapshot, streams map[string][]byte) {
	t.Helper()
	for n, want := range streams {
		got, err := restore(r, s, n)
		if err != nil {
			t.Fatalf("restore %s: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("restore %s: %d bytes differ from %d", n, len(got), len(want))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	b, _ := fileBucket(t)
	kek := mustKey(t)
	o := testOpts()
	o.PackSize = 2 << 20
	r := initRepo(t, b, kek, o)
	streams := map[string][]byte{
		"random.bin":   randomData(1, 9<<20+123),
		"database.sql": textData(2, 7<<20),
		"empty":        {},
		"small":        []byte("hello"),
	}
	s := backup(t, r, "site-a", streams)
	if s.Stats.Files != 4 || s.Stats.TotalBytes != int64(9<<20+123+7<<20+5) {
		t.Fatalf("stats %+v", s.Stats)
	}
	if s.Stats.StoredBytes >= s.Stats.TotalBytes {
		t.Errorf("text did not compress: stored %d of %d", s.Stats.StoredBytes, s.Stats.TotalBytes)
	}
	checkRestore(t, r, s, streams)

	// Through a fresh Open: snapshot, meta and data come back.
	r2, err := Open(context.Background(), b, kek, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.ID() != r.ID() {
		t.Fatal("repository id changed")
	}
	snaps, err := r2.ListSnapshots(context.Background(), SnapshotFilter{Site: "site-a"})
	if err != nil || len(snaps) != 1 || snaps[0].ID != s.ID {
		t.Fatalf("list: %v %v", snaps, err)
	}
	if string(snaps[0].Meta) != `{"core":"6.8"}` {
		t.Fatalf("meta %s", snaps[0].Meta)
	}
	got, err := r2.LoadSnapshot(context.Background(), s.ID[:8])
	if err != nil || got.ID != s.ID {
		t.Fatalf("load by prefix: %v", err)
	}
	checkRestore(t, r2, got, streams)
	if _, err := r2.OpenStream(context.Background(), got, "nope"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
	rep, err := r2.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if locks, _ := listAll(context.Background(), b, prefixLocks); len(locks) != 0 {
		t.Fatalf("locks left: %v", locks)
	}
}

func TestDedup(t *testing.T) {
	b, _ := fileBucket(t)
	r := initRepo(t, b, mustKey(t), nil)
	data := randomData(3, 16<<20)
	s1 := backup(t, r, "site-a", map[string][]byte{"files.tar": data})
	if s1.Stats.NewBytes != int64(len(data)) {
		t.Fatalf("first backup new bytes %d", s1.Stats.NewBytes)
	}
	s2 := backup(t, r, "site-a", map[string][]byte{"files.tar": data})
	if s2.Stats.NewBytes != 0 || s2.Stats.StoredBytes != 0 || s2.Stats.NewChunks != 0 {
		t.Fatalf("identical backup stored data: %+v", s2.Stats)
	}
	// Shifted: bytes inserted at the front and in the middle.
	shifted := append(append(append([]byte("prefix-"), data[:8<<20]...), []byte("inserted in the middle")...), data[8<<20:]...)
	s3 := backup(t, r, "site-a", map[string][]byte{"files.tar": shifted})
	// Only the chunks around the two edits are new: for each, the chunk
	// holding it and, at worst, the next one (chunks are 512 KiB to 8 MiB,
	// so a fixed fraction would depend on the random polynomial).
	var bound, off int64
	e1, _ := s1.File("files.tar")
	sizes := make([]int64, len(e1.Chunks))
	for i, id := range e1.Chunks {
		_, loc, _ := r.idx.lookup(id)
		sizes[i] = int64(loc.rawLen)
	}
	for i, n := range sizes {
		for _, edit := range []int64{0, 8 << 20} {
			if off <= edit && edit < off+n {
				bound += n
				if i+1 < len(sizes) {
					bound += sizes[i+1]
				}
			}
		}
		off += n
	}
	bound += int64(len("prefix-") + len("inserted in the middle"))
	if s3.Stats.NewBytes > bound || s3.Stats.NewBytes >= int64(len(shifted)) {
		t.Fatalf("shifted data: %d bytes new, want at most %d (%+v)", s3.Stats.NewBytes, bound, s3.Stats)
	}
	checkRestore(t, r, s3, map[string][]byte{"files.tar": shifted})
	t.Logf("shifted: %d of %d bytes new", s3.Stats.NewBytes, len(shifted))
}

func TestTwoSitesShareChunks(t *testing.T) {
	b, _ := fileBucket(t)
	r := initRepo(t, b, mustKey(t), nil)
	core := randomData(4, 12<<20) // e.g. the same plugin on two sites
	a := map[string][]byte{"files.tar": core, "db.sql": textData(5, 2<<20)}
	bb := map[string][]byte{"files.tar": core, "db.sql": textData(6, 2<<20)}
	sa := backup(t, r, "site-a", a)
	sb := backup(t, r, "site-b", bb)
	if sb.Stats.NewBytes > 3<<20 {
		t.Fatalf("site-b stored %d new bytes, want only its own db", sb.Stats.NewBytes)
	}
	checkRestore(t, r, sa, a)
	checkRestore(t, r, sb, bb)
	got, err := r.ListSnapshots(context.Background(), SnapshotFilter{Site: "site-b"})
	if err != nil || len(got) != 1 || got[0].ID != sb.ID {
		t.Fatalf("filter: %v %v", got, err)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	kek := mustKey(t)
	if _, err := Open(ctx, b, kek, nil); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("open empty: %v", err)
	}
	r := initRepo(t, b, kek, nil)
	if _, err := Init(ctx, b, kek, nil); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("init twice: %v", err)
	}
	if _, err := Open(ctx, b, mustKey(t), nil); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := Open(ctx, b, []byte("short"), nil); err == nil {
		t.Fatal("short key accepted")
	}
	s := backup(t, r, "site-a", map[string][]byte{"x": []byte("data")})
	// Rotation: add the new KEK, drop the old one.
	newKEK := mustKey(t)
	id, err := r.AddKey(ctx, newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveKey(ctx, r.KeyID()); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveKey(ctx, id); err == nil {
		t.Fatal("removed the last key")
	}
	if _, err := Open(ctx, b, kek, nil); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("old key after rotation: %v", err)
	}
	r2, err := Open(ctx, b, newKEK, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	s2, err := r2.LoadSnapshot(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkRestore(t, r2, s2, map[string][]byte{"x": []byte("data")})
}

// flipByte changes one byte of a stored object in place.
func flipByte(t *testing.T, dir, key string, off int64) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(data))
	}
	data[off] ^= 0x40
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func onlyKey(t *testing.T, b *blob.Bucket, prefix string) string {
	t.Helper()
	objs, err := listAll(context.Background(), b, prefix)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: %v %v", prefix, objs, err)
	}
	return objs[0].Key
}

func TestTamperDetected(t *testing.T) {
	ctx := context.Background()
	for _, what := range []string{"pack", "index", "snapshot", "config"} {
		t.Run(what, func(t *testing.T) {
			b, dir := fileBucket(t)
			kek := mustKey(t)
			r := initRepo(t, b, kek, nil)
			data := randomData(7, 3<<20)
			s := backup(t, r, "site-a", map[string][]byte{"f": data})
			r.Close()
			switch what {
			case "pack":
				flipByte(t, dir, onlyKey(t, b, prefixData), 100)
			case "index":
				flipByte(t, dir, onlyKey(t, b, prefixIndex), 50)
			case "snapshot":
				flipByte(t, dir, onlyKey(t, b, prefixSnapshot), 50)
			case "config":
				flipByte(t, dir, keyConfig, 20)
			}
			r2, err := Open(ctx, b, kek, testOpts())
			if what == "config" {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open with tampered config: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			snap, err := r2.LoadSnapshot(ctx, s.ID)
			if what == "snapshot" {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("load tampered snapshot: %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := restore(r2, snap, "f"); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("restore: %v", err)
				}
			}
			rep, err := r2.Verify(ctx, VerifyOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !slices.Equal(rep.AffectedSnapshots, []string{s.ID}) {
				t.Fatalf("verify: %+v", rep)
			}
		})
	}
}

// chunkLocation finds where a chunk is stored.
func chunkLocation(t *testing.T, r *Repo, id ChunkID) (string, location) {
	t.Helper()
	if err := r.refreshIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, loc, ok := r.idx.lookup(id)
	if !ok {
		t.Fatal("chunk not indexed")
	}
	return packKey(p), loc
}

func TestVerifyNamesAffectedSnapshots(t *testing.T) {
	ctx := context.Background()
	b, dir := fileBucket(t)
	o := testOpts()
	o.PackSize = 1 << 20
	r := initRepo(t, b, mustKey(t), o)
	shared := randomData(8, 6<<20)
	own := randomData(9, 6<<20)
	sa := backup(t, r, "site-a", map[string][]byte{"f": shared})
	sb := backup(t, r, "site-b", map[string][]byte{"f": own})
	sc := backup(t, r, "site-c", map[string][]byte{"g": textData(1, 1<<20), "f": shared})

	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify clean: %+v %v", rep, err)
	}
	f, _ := sa.File("f")
	victim := f.Chunks[len(f.Chunks)-1]
	key, loc := chunkLocation(t, r, victim)
	flipByte(t, dir, key, int64(loc.offset)+int64(loc.length)/2)

	rep, err = r.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{sa.ID, sc.ID}
	slices.Sort(want)
	if !slices.Equal(rep.AffectedSnapshots, want) {
		t.Fatalf("affected %v, want %v", rep.AffectedSnapshots, want)
	}
	if len(rep.DamagedChunks) != 1 || rep.DamagedChunks[0] != victim {
		t.Fatalf("damaged %v, want %v", rep.DamagedChunks, victim)
	}
	checkRestore(t, r, sb, map[string][]byte{"f": own})
	if _, err := restore(r, sa, "f"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of damaged: %v", err)
	}
	// Without reading data the damage is invisible; a missing pack is not.
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	rep, err = r.Verify(ctx, VerifyOptions{})
	if err != nil || rep.OK() || !slices.Contains(rep.AffectedSnapshots, sa.ID) || slices.Contains(rep.AffectedSnapshots, sb.ID) {
		t.Fatalf("missing pack: %+v %v", rep, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	r := initRepo(t, b, mustKey(t), nil)
	x, y := randomData(10, 8<<20), randomData(11, 8<<20)
	s1 := backup(t, r, "site-a", map[string][]byte{"x": x, "y": y}) // one pack with x and y
	s2 := backup(t, r, "site-a", map[string][]byte{"y": y})         // references part of it
	s3 := backup(t, r, "site-b", map[string][]byte{"z": randomData(12, 4<<20)})
	before, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing unused yet.
	rep, err := r.Prune(ctx, PruneOptions{})
	if err != nil || rep.PacksDeleted+rep.PacksRepacked+rep.UnindexedPacks != 0 {
		t.Fatalf("prune of a clean repo: %+v %v", rep, err)
	}
	if err := r.DeleteSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSnapshot(ctx, s3.ID[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadSnapshot(ctx, s1.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("deleted snapshot: %v", err)
	}
	rep, err = r.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v\nbefore %+v\nafter %+v", rep, before, after)
	if rep.PacksDeleted != 1 || rep.PacksRepacked != 1 {
		t.Fatalf("prune report %+v", rep)
	}
	if after.RawBytes != int64(len(y)) || after.StoredBytes > int64(len(y))+(1<<20) {
		t.Fatalf("after prune %+v, want only y", after)
	}
	checkRestore(t, r, s2, map[string][]byte{"y": y})
	vr, err := r.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil || !vr.OK() {
		t.Fatalf("verify after prune: %+v %v", vr, err)
	}
	// A second Repo (another process) with a stale in-memory index still
	// works after prune replaced the index files.
	s4 := backup(t, r, "site-a", map[string][]byte{"x": x})
	checkRestore(t, r, s4, map[string][]byte{"x": x})
}

func TestPruneKeepsDataOfConcurrentBackup(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	kek := mustKey(t)
	pruner := initRepo(t, b, kek, nil)
	other, err := Open(ctx, b, kek, testOpts()) // another process
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	x := randomData(13, 6<<20)
	s1 := backup(t, pruner, "site-a", map[string][]byte{"x": x})
	if err := pruner.DeleteSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	// Between the phases, the other process backs up x again: it finds
	// x's chunks in the index (planned for deletion) and stores nothing.
	var s2 *Snapshot
	pruner.hookBetweenPrunePhases = func() {
		s2 = backup(t, other, "site-b", map[string][]byte{"x": x})
	}
	rep, err := pruner.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Stats.NewBytes != 0 {
		t.Fatalf("concurrent backup stored %d bytes, expected to dedup", s2.Stats.NewBytes)
	}
	t.Logf("prune: %+v", rep)
	checkRestore(t, other, s2, map[string][]byte{"x": x})
	if vr, err := pruner.Verify(ctx, VerifyOptions{ReadData: true}); err != nil || !vr.OK() {
		t.Fatalf("verify: %+v %v", vr, err)
	}
}

func TestPruneWhileBackupsRun(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	kek := mustKey(t)
	o := testOpts()
	o.PackSize = 1 << 20
	pruner := initRepo(t, b, kek, o)
	data := make([][]byte, 4)
	for i := range data {
		data[i] = randomData(uint64(20+i), 3<<20)
	}
	// Old snapshots to delete, sharing data with the new backups.
	for i := range data {
		s := backup(t, pruner, "old", map[string][]byte{"d": data[i]})
		if err := pruner.DeleteSnapshot(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var snaps []*Snapshot
	for w := range 3 {
		wg.Go(func() {
			r, err := Open(ctx, b, kek, o)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			for i := range 4 {
				s := backup(t, r, "site", map[string][]byte{"d": data[(w+i)%len(data)], "u": randomData(uint64(100+10*w+i), 1<<20)})
				mu.Lock()
				snaps = append(snaps, s)
				mu.Unlock()
			}
		})
	}
	var pruneErr error
	for range 3 {
		if _, err := pruner.Prune(ctx, PruneOptions{}); err != nil && pruneErr == nil {
			pruneErr = err
		}
	}
	wg.Wait()
	if pruneErr != nil {
		t.Fatal(pruneErr)
	}
	if _, err := pruner.Prune(ctx, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	vr, err := pruner.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil || !vr.OK() {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	for _, s := range snaps {
		f, _ := s.File("d")
		rc, err := pruner.OpenFile(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("snapshot %s: %v", s.ID, err)
		}
		rc.Close()
	}
}

// cancelAfter cancels a context once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestKilledBackup(t *testing.T) {
	b, _ := fileBucket(t)
	o := testOpts()
	o.PackSize = 1 << 20
	r := initRepo(t, b, mustKey(t), o)
	data := randomData(14, 16<<20)
	ctx, cancel := context.WithCancel(context.Background())
	bk, err := r.NewBackup(ctx, BackupOptions{Site: "site-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bk.AddStream(ctx, "f", &cancelAfter{r: bytes.NewReader(data), n: 10 << 20, cancel: cancel}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stream: %v", err)
	}
	if _, err := bk.Commit(ctx); err == nil {
		t.Fatal("commit after cancel succeeded")
	}
	bg := context.Background()
	if snaps, err := r.ListSnapshots(bg, SnapshotFilter{}); err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots after kill: %v %v", snaps, err)
	}
	packs, _ := listAll(bg, b, prefixData)
	t.Logf("%d packs left by the killed backup", len(packs))
	if vr, err := r.Verify(bg, VerifyOptions{ReadData: true}); err != nil || !vr.OK() {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	s := backup(t, r, "site-a", map[string][]byte{"f": data})
	checkRestore(t, r, s, map[string][]byte{"f": data})
	rep, err := r.Prune(bg, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) > 0 && rep.UnindexedPacks != len(packs) {
		t.Fatalf("prune: %+v, want %d unindexed packs", rep, len(packs))
	}
	checkRestore(t, r, s, map[string][]byte{"f": data})
	if vr, err := r.Verify(bg, VerifyOptions{ReadData: true}); err != nil || !vr.OK() {
		t.Fatalf("verify after prune: %+v %v", vr, err)
	}
}

func TestStaleLockExpires(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	kek := mustKey(t)
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	o := testOpts()
	o.Now = clock.Now
	o.LockTTL = time.Hour
	r := initRepo(t, b, kek, o)
	// A "dead" process: its backup holds a shared lock it never refreshes.
	dead, err := r.NewBackup(ctx, BackupOptions{Site: "site-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Abort()

	other, err := Open(ctx, b, kek, o)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := other.Prune(short, PruneOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune beside a live lock: %v", err)
	}
	clock.Add(61 * time.Minute)
	if _, err := other.Prune(ctx, PruneOptions{}); err != nil {
		t.Fatalf("prune beside a stale lock: %v", err)
	}
	// The dead process's session has lost its lock and cannot commit.
	if _, err := dead.Commit(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("commit with a lost lock: %v", err)
	}
}

func TestProgress(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	r := initRepo(t, b, mustKey(t), nil)
	var mu sync.Mutex
	var last Progress
	ctx := context.Background()
	bk, err := r.NewBackup(ctx, BackupOptions{Site: "s", Progress: func(p Progress) {
		mu.Lock()
		if p.BytesRead > last.BytesRead {
			last = p
		}
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(15, 5<<20)
	if _, err := bk.AddStream(ctx, "f", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := bk.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if last.BytesRead != int64(len(data)) {
		t.Fatalf("progress %+v", last)
	}
}

// benchBucket is a file store without sidecar files (metadata=skip), as a
// file:// repository should be opened.
func benchBucket(b *testing.B) *blob.Bucket {
	bucket, _ := fileBucketOpts(b, &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	return bucket
}

func BenchmarkBackup(b *testing.B) {
	bucket := benchBucket(b)
	r := initRepo(b, bucket, mustKey(b), nil)
	// Half random (media), half text (database dump); new every round.
	const size = 64 << 20
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		data := append(randomData(uint64(1000+i), size/2), textData(uint64(1000+i), size/2)...)
		b.StartTimer()
		bk, err := r.NewBackup(ctx, BackupOptions{Site: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bk.AddStream(ctx, "f", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if _, err := bk.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	bucket := benchBucket(b)
	r := initRepo(b, bucket, mustKey(b), nil)
	const size = 64 << 20
	data := append(randomData(1, size/2), textData(1, size/2)...)
	s := backup(b, r, "bench", map[string][]byte{"f": data})
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		rc, err := r.OpenStream(context.Background(), s, "f")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkBackupMem(b *testing.B) {
	bucket := memblob.OpenBucket(nil)
	r := initRepo(b, bucket, mustKey(b), nil)
	const size = 64 << 20
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		data := append(randomData(uint64(1000+i), size/2), textData(uint64(1000+i), size/2)...)
		b.StartTimer()
		bk, err := r.NewBackup(ctx, BackupOptions{Site: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bk.AddStream(ctx, "f", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if _, err := bk.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAddUnchanged(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	r := initRepo(t, b, mustKey(t), nil)
	x, y := randomData(20, 3<<20), textData(21, 1<<20)
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	bk, err := r.NewBackup(ctx, BackupOptions{Site: "site-a"})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := bk.AddStreamEntry(ctx, FileEntry{Name: "x", Mode: 0o640, ModTime: mtime, Inode: 7, CTime: mtime}, bytes.NewReader(x))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bk.AddStream(ctx, "y", bytes.NewReader(y)); err != nil {
		t.Fatal(err)
	}
	// An empty stream can be re-referenced too.
	if _, err := bk.AddStream(ctx, "empty", bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	parent, err := bk.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Progress comes from several goroutines; the totals only grow.
	var mu sync.Mutex
	var last Progress
	bk, err = r.NewBackup(ctx, BackupOptions{Site: "site-a", Progress: func(p Progress) {
		mu.Lock()
		last.BytesRead, last.BytesReused = max(last.BytesRead, p.BytesRead), max(last.BytesReused, p.BytesReused)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Abort()
	for _, name := range []string{"x", "empty"} {
		pe, _ := parent.File(name)
		ok, err := bk.AddUnchanged(ctx, *pe)
		if err != nil || !ok {
			t.Fatalf("AddUnchanged %s: %v %v", name, ok, err)
		}
	}
	// The same name twice is refused, as with AddStream.
	if _, err := bk.AddUnchanged(ctx, ex); err == nil {
		t.Fatal("AddUnchanged accepted a name twice")
	}
	// An entry whose chunks do not add up to its size is not reused.
	bad, _ := parent.File("y")
	badCopy := *bad
	badCopy.Name, badCopy.Size = "y2", bad.Size+1
	if ok, err := bk.AddUnchanged(ctx, badCopy); ok || err != nil {
		t.Fatalf("inconsistent entry reused: %v %v", ok, err)
	}
	if _, err := bk.AddStreamEntry(ctx, FileEntry{Name: "y"}, bytes.NewReader(y)); err != nil {
		t.Fatal(err)
	}
	s, err := bk.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats.ReusedFiles != 2 || s.Stats.ReusedBytes != int64(len(x)) || s.Stats.NewBytes != 0 || s.Stats.TotalBytes != int64(len(x)+len(y)) {
		t.Fatalf("stats %+v", s.Stats)
	}
	if last.BytesReused != int64(len(x)) || last.BytesRead != int64(len(y)) {
		t.Fatalf("progress %+v", last)
	}
	got, _ := s.File("x")
	if got.Mode != 0o640 || !got.ModTime.Equal(mtime) || got.Inode != 7 || !got.CTime.Equal(mtime) || !slices.Equal(got.Chunks, ex.Chunks) {
		t.Fatalf("re-referenced entry %+v, want %+v", got, ex)
	}
	checkRestore(t, r, s, map[string][]byte{"x": x, "y": y, "empty": nil})
	// Files are sorted by name.
	if names := []string{s.Files[0].Name, s.Files[1].Name, s.Files[2].Name}; !slices.IsSorted(names) {
		t.Fatalf("files not sorted: %v", names)
	}
	vr, err := r.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil || !vr.OK() {
		t.Fatalf("verify: %+v %v", vr, err)
	}
}

// TestAddUnchangedPruned: a parent entry whose chunks were pruned since is
// not re-referenced; the caller reads the stream again.
func TestAddUnchangedPruned(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	kek := mustKey(t)
	r := initRepo(t, b, kek, nil)
	x := randomData(22, 2<<20)
	s1 := backup(t, r, "site-a", map[string][]byte{"x": x})
	ex, _ := s1.File("x")
	// Another process's Repo, whose index was loaded before the prune.
	r2, err := Open(ctx, b, kek, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.refreshIndex(ctx); err != nil || !r2.idx.has(ex.Chunks[0]) {
		t.Fatalf("second repo's index: %v", err)
	}
	if err := r.DeleteSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Prune(ctx, PruneOptions{}); err != nil || rep.PacksDeleted != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	// Both sessions are open before either stores x again.
	var bks []*Backup
	for _, rr := range []*Repo{r, r2} {
		bk, err := rr.NewBackup(ctx, BackupOptions{Site: "site-a"})
		if err != nil {
			t.Fatal(err)
		}
		defer bk.Abort()
		ok, err := bk.AddUnchanged(ctx, *ex)
		if ok || err != nil {
			t.Fatalf("pruned entry reused: %v %v", ok, err)
		}
		bks = append(bks, bk)
	}
	for i, bk := range bks {
		if _, err := bk.AddStreamEntry(ctx, FileEntry{Name: "x"}, bytes.NewReader(x)); err != nil {
			t.Fatal(err)
		}
		s, err := bk.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Stats.ReusedFiles != 0 {
			t.Fatalf("stats %+v", s.Stats)
		}
		checkRestore(t, []*Repo{r, r2}[i], s, map[string][]byte{"x": x})
	}
}

// TestConcurrentStreams: streams added from several goroutines at once.
func TestConcurrentStreams(t *testing.T) {
	ctx := context.Background()
	b, _ := fileBucket(t)
	r := initRepo(t, b, mustKey(t), &Options{Owner: "test", LockPoll: 5 * time.Millisecond, Workers: 2, PackSize: 1 << 20})
	streams := map[string][]byte{}
	for i := range 12 {
		n := 100<<10 + i*300<<10
		if i%2 == 0 {
			streams[fmt.Sprintf("s%02d", i)] = randomData(uint64(30+i), n)
		} else {
			streams[fmt.Sprintf("s%02d", i)] = textData(uint64(30+i), n)
		}
	}
	streams["dup"] = streams["s04"]
	bk, err := r.NewBackup(ctx, BackupOptions{Site: "site-a"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for name, data := range streams {
		wg.Go(func() {
			if _, err := bk.AddStream(ctx, name, bytes.NewReader(data)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, err := bk.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkRestore(t, r, s, streams)
	if len(bk.tokens) != 0 {
		t.Fatalf("%d buffer tokens still held", len(bk.tokens))
	}
}

// TestOpenURLSkipsSidecars: a file:// repository is opened with
// metadata=skip unless the URL says otherwise.
func TestOpenURLSkipsSidecars(t *testing.T) {
	ctx := context.Background()
	kek := mustKey(t)
	for _, tc := range []struct {
		query    string
		sidecars bool
	}{{"", false}, {"?metadata=skip", false}, {"?metadata=", true}} {
		dir := t.TempDir()
		r, err := OpenURL(ctx, "file://"+dir+tc.query, kek, true, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		backup(t, r, "site-a", map[string][]byte{"x": randomData(40, 1<<20)})
		r.Close()
		attrs, _ := filepath.Glob(filepath.Join(dir, "data", "*", "*.attrs"))
		if (len(attrs) > 0) != tc.sidecars {
			t.Fatalf("%q: %d sidecar files", tc.query, len(attrs))
		}
	}
	if got := fileURLSkipMetadata("s3://bucket?region=x"); got != "s3://bucket?region=x" {
		t.Fatalf("s3 URL changed: %s", got)
	}
}
