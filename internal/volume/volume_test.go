package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
	"golang.org/x/sys/unix"
)

// nobody is the unprivileged writer of these tests (a site's PHP).
const nobody = 65534

// needVolumes skips the test where this host cannot make volumes.
func needVolumes(t *testing.T) {
	t.Helper()
	if err := Check(context.Background(), t.TempDir()); err != nil {
		t.Skipf("volumes unavailable here: %v", err)
	}
}

// newVolume makes, mounts and limits a volume in a temporary directory,
// with a directory u that nobody owns; it is removed (unmounted, its loop
// device released) when the test ends, even on failure.
func newVolume(t *testing.T, limit int64) Volume {
	t.Helper()
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	v := Volume{Image: filepath.Join(dir, "disk.img"), Dir: filepath.Join(dir, "mnt")}
	if err := os.Mkdir(v.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Remove(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	if err := v.Create(ctx, Size(limit)); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := v.SetLimit(ctx, limit); err != nil || got != roundUp(limit, 4096) {
		t.Fatalf("SetLimit(%d) = %d, %v", limit, got, err)
	}
	if err := os.Chmod(v.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := filepath.Join(v.Dir, "u")
	if err := os.Mkdir(u, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(u, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return v
}

// writeAs appends mib MiB of zeros to path as uid (dd stops at the first
// error) and returns the file's size and dd's error output.
func writeAs(t *testing.T, uid int, path string, mib int) (int64, string) {
	t.Helper()
	cmd := exec.Command("dd", "if=/dev/zero", "of="+path, "bs=1M", "count="+strconv.Itoa(mib), "conv=fsync,notrunc", "oflag=append")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	_ = cmd.Run()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("dd wrote nothing: %v: %s", err, stderr.String())
	}
	return fi.Size(), stderr.String()
}

const enospc = "No space left on device"

func TestLimitStopsNonRootWritersNotRoot(t *testing.T) {
	needVolumes(t)
	const limit = 24 * MiB
	v := newVolume(t, limit)
	u0, err := Stat(v.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := limit - u0.Used; u0.Avail < want-MiB || u0.Avail > want {
		t.Fatalf("a fresh volume lets non-root write %d bytes; want about %d (limit − used)", u0.Avail, want)
	}
	got, stderr := writeAs(t, nobody, filepath.Join(v.Dir, "u", "big"), 40)
	if !strings.Contains(stderr, enospc) {
		t.Errorf("writing 40 MiB into a 24 MiB volume as uid %d: no ENOSPC (wrote %d): %s", nobody, got, stderr)
	}
	u, err := Stat(v.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.Used > limit || u.Used < limit-MiB {
		t.Errorf("after filling: %d bytes in use, want the limit %d (within 1 MiB)", u.Used, int64(limit))
	}
	if u.Avail >= MiB {
		t.Errorf("after filling: non-root may still write %d bytes", u.Avail)
	}
	// Root (the shard staging a restore) may use the reserve.
	if err := os.WriteFile(filepath.Join(v.Dir, "root"), make([]byte, 8*MiB), 0o600); err != nil {
		t.Errorf("root cannot write past the limit: %v", err)
	}
}

func TestLimitChangesOnline(t *testing.T) {
	needVolumes(t)
	ctx := context.Background()
	v := newVolume(t, 16*MiB)
	f := filepath.Join(v.Dir, "u", "f")
	if _, stderr := writeAs(t, nobody, f, 30); !strings.Contains(stderr, enospc) {
		t.Fatalf("no ENOSPC at 16 MiB: %s", stderr)
	}
	// Raised within the image: takes effect at once, no remount.
	if got, err := v.SetLimit(ctx, 24*MiB); err != nil || got != 24*MiB {
		t.Fatalf("SetLimit(24 MiB) = %d, %v", got, err)
	}
	before, _ := writeAs(t, nobody, f, 4)
	if u, _ := Stat(v.Dir); before < 18*MiB || u.Avail == 0 {
		t.Errorf("after raising the limit to 24 MiB the file is %d bytes, %d more may be written", before, u.Avail)
	}
	// Lowered below what is used: nothing is lost, non-root writes fail.
	if got, err := v.SetLimit(ctx, 16*MiB); err != nil || got != 16*MiB {
		t.Fatalf("SetLimit(16 MiB) = %d, %v", got, err)
	}
	size, stderr := writeAs(t, nobody, f, 1)
	if !strings.Contains(stderr, enospc) || size < before {
		t.Errorf("over the lowered limit: file %d bytes (was %d), dd: %s", size, before, stderr)
	}
	// A limit the image cannot hold: SetLimit says what is in force.
	got, err := v.SetLimit(ctx, 40*MiB)
	if err != nil {
		t.Fatal(err)
	}
	if got >= 40*MiB {
		t.Fatalf("SetLimit(40 MiB) on a %d-byte image = %d", Size(16*MiB), got)
	}
	// Far below half the image the reserve (at most half the blocks)
	// cannot hold the rest back: more than the limit is in force.
	if got, err := v.SetLimit(ctx, 8*MiB); err != nil || got <= 8*MiB {
		t.Errorf("SetLimit(8 MiB) on a 32 MiB image = %d, %v; want more than 8 MiB", got, err)
	}
	size, _ = writeAs(t, nobody, f, 0)
	err = v.Grow(ctx, Size(40*MiB))
	if errors.Is(err, ErrNoOnlineResize) {
		t.Skip("the rest needs online resize, which this process may not do (no CAP_SYS_RESOURCE)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.SetLimit(ctx, 40*MiB); err != nil || got != 40*MiB {
		t.Fatalf("after Grow, SetLimit(40 MiB) = %d, %v", got, err)
	}
	if n, _ := v.ImageSize(); n != Size(40*MiB) {
		t.Errorf("image is %d bytes, want %d", n, Size(40*MiB))
	}
	if err := v.Grow(ctx, Size(40*MiB)); err != nil {
		t.Errorf("a second Grow to the same size: %v", err)
	}
	if after, _ := writeAs(t, nobody, f, 4); after != size+4*MiB {
		t.Errorf("after growing to 40 MiB, 4 MiB more made the file %d bytes, want %d", after, size+4*MiB)
	}
}

func TestMountIsIdempotentAndSurvivesUnmount(t *testing.T) {
	needVolumes(t)
	ctx := context.Background()
	v := newVolume(t, 16*MiB)
	if err := os.WriteFile(filepath.Join(v.Dir, "kept"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	m1, err := v.Mounted()
	if err != nil || m1 == nil {
		t.Fatalf("Mounted = %v, %v", m1, err)
	}
	if err := v.Mount(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countMounts(t, v.Dir); n != 1 {
		t.Fatalf("after a second Mount, %d mounts on %s", n, v.Dir)
	}
	// A reboot or an operator unmounted it: Mount checks and remounts.
	if err := v.UnmountNow(); err != nil {
		t.Fatal(err)
	}
	if m, err := v.Mounted(); err != nil || m != nil {
		t.Fatalf("after unmount: Mounted = %v, %v", m, err)
	}
	if dev := loopOf(v.Image); dev != "" {
		t.Errorf("after unmount the image is still attached to %s (autoclear)", dev)
	}
	if err := v.Mount(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(v.Dir, "kept")); err != nil || string(b) != "kept" {
		t.Errorf("after remounting: %q, %v", b, err)
	}
	// Something else on the mount point is refused.
	other := Volume{Image: filepath.Join(t.TempDir(), "other.img"), Dir: v.Dir}
	if err := other.Create(ctx, MinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Mounted(); err == nil {
		t.Error("Mounted of another image on the same directory: no error")
	}
}

func countMounts(t *testing.T, dir string) int {
	t.Helper()
	ms, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Point == dir {
			n++
		}
	}
	return n
}

func TestCreateRedoesAHalfMadeImage(t *testing.T) {
	needVolumes(t)
	ctx := context.Background()
	dir := t.TempDir()
	v := Volume{Image: filepath.Join(dir, "disk.img"), Dir: filepath.Join(dir, "mnt")}
	if err := os.Mkdir(v.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Remove() })
	// A crash during mkfs left a truncated file under the temporary name.
	if err := os.WriteFile(v.Image+".new", []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Create(ctx, MinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Image + ".new"); !os.IsNotExist(err) {
		t.Errorf("the half-made image is still there: %v", err)
	}
	if err := v.Mount(ctx); err != nil {
		t.Fatalf("the redone image does not mount: %v", err)
	}
	fi, err := os.Stat(v.Image)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o600 || st.Blocks*512 > 4*MiB {
		t.Errorf("image mode %v, %d bytes allocated: want 0600 and sparse (a few hundred KiB)", fi.Mode().Perm(), st.Blocks*512)
	}
}

func TestRemoveWhileAFileIsOpen(t *testing.T) {
	needVolumes(t)
	v := newVolume(t, 16*MiB)
	f, err := os.Create(filepath.Join(v.Dir, "u", "open"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Mounted()
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	if err := v.Remove(); err != nil {
		t.Fatalf("Remove with a file open: %v", err)
	}
	if n := countMounts(t, v.Dir); n != 0 {
		t.Errorf("after Remove %d mounts remain on %s", n, v.Dir)
	}
	if _, err := os.Stat(v.Image); !os.IsNotExist(err) {
		t.Errorf("the image is still there: %v", err)
	}
	// The writer keeps its (detached) volume until it lets go; then the
	// loop device is released.
	if _, err := f.Write([]byte("still writing")); err != nil {
		t.Errorf("the open file broke: %v", err)
	}
	f.Close()
	// The kernel lets the detached file system and then the loop device
	// go after the last close, asynchronously (under load it took longer
	// than the test's next line).
	dev := m.Source
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
		if err != nil || !strings.Contains(string(b), v.Image) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still holds %s 10 s after the last user closed it", dev, strings.TrimSpace(string(b)))
			break
		}
	}
}

func TestBind(t *testing.T) {
	needVolumes(t)
	v := newVolume(t, 16*MiB)
	dst := filepath.Join(t.TempDir(), "uploads")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = UnmountUnder(dst) })
	src := filepath.Join(v.Dir, "u")
	for range 2 {
		if err := Bind(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	if n := countMounts(t, dst); n != 1 {
		t.Fatalf("after two Binds, %d mounts on %s", n, dst)
	}
	ms, _ := Mounts()
	if !Bound(ms, src, dst) || Bound(ms, v.Dir, dst) {
		t.Errorf("Bound(u) = %v, Bound(volume root) = %v; want true, false", Bound(ms, src, dst), Bound(ms, v.Dir, dst))
	}
	if err := os.WriteFile(filepath.Join(dst, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "x")); err != nil {
		t.Errorf("a file written through the bind is not in the volume: %v", err)
	}
	// A rename inside the volume shows in the bind's root.
	if err := os.Rename(src, src+".old"); err != nil {
		t.Fatal(err)
	}
	ms, _ = Mounts()
	if Bound(ms, src, dst) || !Bound(ms, src+".old", dst) {
		t.Error("after renaming the source, Bound does not follow it")
	}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Bind(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "x")); !os.IsNotExist(err) {
		t.Errorf("Bind did not replace the stale bind: %v", err)
	}
	// The bind carries nosuid, nodev, noexec.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dst, &st); err != nil {
		t.Fatal(err)
	}
	const stNosuid, stNodev, stNoexec = 2, 4, 8
	if st.Flags&(stNosuid|stNodev|stNoexec) != stNosuid|stNodev|stNoexec {
		t.Errorf("bind flags %#x lack nosuid, nodev or noexec", st.Flags)
	}
	if err := UnmountUnder(filepath.Dir(dst)); err != nil {
		t.Fatal(err)
	}
	if n := countMounts(t, dst); n != 0 {
		t.Errorf("after UnmountUnder, %d mounts on %s", n, dst)
	}
}

func TestCopy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	w := func(p string, data string, uid int) {
		t.Helper()
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(full, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	w("2024/05/a.jpg", "aaaa", nobody)
	w("2024/05/b.jpg", "bb", 0)
	w("foreign", "x", 1234)
	if err := os.Link(filepath.Join(src, "2024/05/a.jpg"), filepath.Join(src, "a-link.jpg")); err != nil {
		t.Fatal(err)
	}
	// A hard link to a root-only file elsewhere on the filesystem.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(src, "stolen")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(src, "shadow")); err != nil {
		t.Fatal(err)
	}
	res, err := Copy(ctx, src, dst, CopyOptions{UID: nobody, GID: nobody})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || res.Links != 1 || strings.Join(res.Skipped, ",") != "foreign,stolen" {
		t.Errorf("Copy = %+v; want 2 files (and one hard link), 1 symlink, skipped foreign and stolen", res)
	}
	for p, want := range map[string]string{"2024/05/a.jpg": "aaaa", "2024/05/b.jpg": "bb", "a-link.jpg": "aaaa"} {
		b, err := os.ReadFile(filepath.Join(dst, p))
		fi, _ := os.Lstat(filepath.Join(dst, p))
		if err != nil || string(b) != want || fi.Sys().(*syscall.Stat_t).Uid != nobody || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %q %v %v; want %q owned by %d, 0640", p, b, err, fi, want, nobody)
		}
	}
	a, _ := os.Stat(filepath.Join(dst, "2024/05/a.jpg"))
	l, _ := os.Stat(filepath.Join(dst, "a-link.jpg"))
	if !os.SameFile(a, l) {
		t.Error("the hard link became a copy")
	}
	if l, err := os.Readlink(filepath.Join(dst, "shadow")); err != nil || l != "/etc/shadow" {
		t.Errorf("symlink: %q %v", l, err)
	}
	for _, p := range []string{"foreign", "stolen"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); !os.IsNotExist(err) {
			t.Errorf("%s was copied", p)
		}
	}
	// Again: nothing new is copied; a changed file is.
	w("2024/05/b.jpg", "bbbb", 0)
	res, err = Copy(ctx, src, dst, CopyOptions{UID: nobody, GID: nobody})
	if err != nil || res.Files != 1 {
		t.Errorf("second Copy = %+v, %v; want only the changed file", res, err)
	}
	// KeepNewer leaves what was written in dst since.
	w("2024/05/b.jpg", "old", 0)
	newer := filepath.Join(dst, "2024/05/b.jpg")
	if err := os.WriteFile(newer, []byte("written since"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(newer, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, src, dst, CopyOptions{UID: nobody, GID: nobody, KeepNewer: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(newer); string(b) != "written since" {
		t.Errorf("KeepNewer overwrote a newer file: %q", b)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"90 27 7:3 / /srv/sites/a\\040b/volume rw,nosuid shared:5 - ext4 /dev/loop3 rw\n" +
		"91 27 7:3 /uploads /srv/sites/a\\040b/htdocs/wp-content/uploads rw - ext4 /dev/loop3 rw\n"
	ms, err := parseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[1].Point != "/srv/sites/a b/volume" || ms[1].Source != "/dev/loop3" || ms[2].Root != "/uploads" || ms[2].Dev != "7:3" {
		t.Fatalf("parsed %+v", ms)
	}
	if !Bound(ms, "/srv/sites/a b/volume/uploads", "/srv/sites/a b/htdocs/wp-content/uploads") {
		t.Error("Bound: the uploads bind not recognised")
	}
	if Bound(ms, "/srv/sites/a b/volume/tmp", "/srv/sites/a b/htdocs/wp-content/uploads") {
		t.Error("Bound: another directory taken for the bind's source")
	}
	if _, err := parseMountinfo([]byte("1 2 3\n")); err == nil {
		t.Error("a malformed line parsed")
	}
}

func TestParseSuperblock(t *testing.T) {
	sb := func(blocksLo, resLo, blocksHi, resHi uint32, bit64 bool) []byte {
		b := make([]byte, 1024)
		le := binary.LittleEndian
		le.PutUint16(b[0x38:], 0xEF53)
		le.PutUint32(b[0x4:], blocksLo)
		le.PutUint32(b[0x8:], resLo)
		le.PutUint32(b[0x150:], blocksHi)
		le.PutUint32(b[0x154:], resHi)
		if bit64 {
			le.PutUint32(b[0x60:], 0x80)
		}
		return b
	}
	for _, tc := range []struct {
		name         string
		b            []byte
		blocks, resv int64
		wantErr      bool
	}{
		{"32-bit", sb(1000, 400, 7, 7, false), 1000, 400, false},
		{"64-bit", sb(1000, 400, 1, 2, true), 1<<32 | 1000, 2<<32 | 400, false},
		{"no magic", make([]byte, 1024), 0, 0, true},
		{"short", []byte{1, 2}, 0, 0, true},
	} {
		got, err := parseSuperblock(tc.b)
		if (err != nil) != tc.wantErr || got.blocks != tc.blocks || got.reserved != tc.resv {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct{ limit, want int64 }{
		{MiB, MinSize},
		{1024 * MiB, 2048 * MiB},
		{513 * MiB, 1028 * MiB},
	} {
		if got := Size(tc.limit); got != tc.want {
			t.Errorf("Size(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// BenchmarkNewSiteVolume measures what a volume adds to a site's creation:
// make a 1 GB-limit image, check and mount it, bind three trees, set the
// reserve (and, untimed, remove it all).
func BenchmarkNewSiteVolume(b *testing.B) {
	if err := Check(context.Background(), b.TempDir()); err != nil {
		b.Skipf("volumes unavailable here: %v", err)
	}
	ctx := context.Background()
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		d := filepath.Join(dir, strconv.Itoa(i))
		v := Volume{Image: filepath.Join(d, "disk.img"), Dir: filepath.Join(d, "volume")}
		for _, p := range []string{v.Dir, filepath.Join(d, "uploads"), filepath.Join(d, "tmp"), filepath.Join(d, "logs")} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := v.Create(ctx, Size(1024*MiB)); err != nil {
			b.Fatal(err)
		}
		if err := v.Mount(ctx); err != nil {
			b.Fatal(err)
		}
		for _, t := range []string{"uploads", "tmp", "logs"} {
			if err := os.Mkdir(filepath.Join(v.Dir, t), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := Bind(filepath.Join(v.Dir, t), filepath.Join(d, t)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := v.SetLimit(ctx, 1024*MiB); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := UnmountUnder(d); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestRecentMountsRereadsOnlyOnChange checks the cached mount table
// behind RecentMounts: calls with no mount in between share one read; a
// mount or unmount made through this package is seen at the next call; one
// made behind its back is seen by Mounts at once, and by RecentMounts once
// the copy is mountTableMaxAge old; a reread that finds the table as it
// was does not parse it again.
func TestRecentMountsRereadsOnlyOnChange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	clock := time.Unix(1e9, 0)
	mt := &mountTable{path: "/proc/self/mountinfo", now: func() time.Time { return clock }}
	saved := mounts
	mounts = mt // mount and unmount mark mt stale
	t.Cleanup(func() { mounts = saved })
	dir := t.TempDir()
	has := func(fresh bool) bool {
		t.Helper()
		ms, err := mt.get(fresh)
		if err != nil {
			t.Fatal(err)
		}
		return top(ms, dir) != nil
	}
	if has(false) {
		t.Fatal("a fresh temporary directory is a mount point")
	}
	for range 5 {
		has(false)
	}
	if mt.reads != 1 {
		t.Fatalf("6 calls without a change read the table %d times, want 1", mt.reads)
	}
	// A reread of an unchanged table keeps the parse.
	has(true)
	if mt.reads != 2 || mt.parses != 1 {
		t.Fatalf("a fresh read of an unchanged table: %d reads, %d parses, want 2 and 1", mt.reads, mt.parses)
	}
	if err := mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if !has(false) {
		t.Fatal("the tmpfs mounted is not seen")
	}
	if err := unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if has(false) {
		t.Fatalf("the tmpfs unmounted is still seen (reads %d)", mt.reads)
	}
	// Behind the package's back.
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if has(false) {
		t.Error("RecentMounts reread without a change by this package and before its copy aged")
	}
	clock = clock.Add(mountTableMaxAge)
	if !has(false) {
		t.Error("a mount made outside the package is not seen by RecentMounts after mountTableMaxAge")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if has(true) {
		t.Error("Mounts does not see an unmount made outside the package")
	}
}

// BenchmarkMounts compares reading the mount table (Mounts) with the copy
// RecentMounts keeps, on this host's table as it is.
func BenchmarkMounts(b *testing.B) {
	ms, err := Mounts()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d mounts", len(ms))
	b.Run("Mounts", func(b *testing.B) {
		for b.Loop() {
			if _, err := Mounts(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RecentMounts", func(b *testing.B) {
		for b.Loop() {
			if _, err := RecentMounts(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
