// Package volume gives a site a disk of its own whose size the kernel
// enforces, on hosts whose kernel has no filesystem quotas: a sparse ext4
// image file, attached to a loop device and mounted nosuid, nodev, noexec.
//
// The limit is ext4's root-reserved blocks (tune2fs -r): a process that is
// not root — a site's PHP — cannot allocate a block once the free blocks
// have fallen to the reserve and gets ENOSPC, while root (the shard
// restoring, importing or migrating a site) may use the reserve. SetLimit
// sets the reserve so that non-root writers can fill exactly the limit;
// the kernel re-reads it at once, so a limit changes online. ext4 caps the
// reserve at half the blocks, so an image is made twice its limit (Size):
// sparse, it costs the host only what is written, and it leaves root a
// limit's worth of room to stage a restore beside the live files.
//
// Mount is idempotent and crash-safe: a volume that is mounted already is
// left alone, one whose loop device is still attached (a lazily unmounted
// volume some process still uses) is mounted from that device, and any
// other is checked (e2fsck -p) and attached afresh, with the loop device's
// autoclear flag, so that unmounting it (even lazily) releases the device.
// Create makes the image under a temporary name and renames it into
// place, so a crash never leaves a half-made image behind under the real
// name.
//
// It needs root, loop devices (/dev/loop-control) and e2fsprogs (mkfs.ext4,
// e2fsck, resize2fs, tune2fs); Check tells whether this host has them.
package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aipress/aipress/internal/caps"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// MinSize is the smallest image Size makes.
const MinSize = 32 * MiB

// Size is the image size for a volume whose writers may fill limit bytes:
// twice the limit (the most ext4's reserve can hold back), at least
// MinSize, in whole 4 MiB.
func Size(limit int64) int64 {
	return roundUp(max(2*limit, MinSize), 4*MiB)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// MountFlags are the flags of every volume mount and bind mount: no
// set-user-ID programs, device files or executables on a site's disk.
const MountFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// Volume is one image file and the directory it is mounted on.
type Volume struct {
	Image string // the ext4 image file (root-only)
	Dir   string // its mount point
}

// Exists reports whether the image exists.
func (v Volume) Exists() bool {
	_, err := os.Stat(v.Image)
	return err == nil
}

// Create makes the image, size bytes (sparse) with an empty ext4
// filesystem, unless it exists. A half-made image (Image+".new", left by a
// crash) is discarded and made again.
func (v Volume) Create(ctx context.Context, size int64) error {
	if v.Exists() {
		return nil
	}
	tmp := v.Image + ".new"
	if err := makeImage(ctx, tmp, size); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, v.Image); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume: %w", err)
	}
	return syncDir(filepath.Dir(v.Image))
}

// makeImage writes a sparse file of size bytes at path with an ext4
// filesystem whose root directory is root's, mode 0700, and syncs it.
func makeImage(ctx context.Context, path string, size int64) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	// The file is new and sparse, so its blocks read as zeros: mke2fs need
	// not zero inode tables or the journal (and the kernel need not zero
	// them later), which keeps the image a megabyte or so until used.
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-E", "assume_storage_prezeroed=1,root_owner=0:0", path}
	if out, err := run(ctx, "mkfs.ext4", args...); err != nil {
		if !bytes.Contains(out, []byte("assume_storage_prezeroed")) {
			return err
		}
		// e2fsprogs before 1.47 lacks the option.
		args[8] = "root_owner=0:0"
		if _, err := run(ctx, "mkfs.ext4", args...); err != nil {
			return err
		}
	}
	f, err = os.Open(path)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	return nil
}

// Mounted returns the mount of the volume at Dir, nil when nothing is
// mounted there. Something else mounted there is an error. It looks at
// RecentMounts: a change made outside this package may take up to
// mountTableMaxAge to show.
func (v Volume) Mounted() (*Mount, error) {
	m, ours, err := v.mountedAt(false)
	if err != nil || m == nil {
		return nil, err
	}
	if !ours {
		return nil, fmt.Errorf("volume: %s is mounted on %s, not the volume %s", m.Source+m.Root, v.Dir, v.Image)
	}
	c := *m // m points into the shared mount table
	return &c, nil
}

// mountedAt returns the visible mount on Dir, if any, and whether it is
// this volume's, from RecentMounts unless fresh.
func (v Volume) mountedAt(fresh bool) (*Mount, bool, error) {
	ms, err := mounts.get(fresh)
	if err != nil {
		return nil, false, err
	}
	m := top(ms, v.Dir)
	if m == nil {
		return nil, false, nil
	}
	return m, m.Root == "/" && backs(v.Image, m.Source), nil
}

// Mount mounts the volume on Dir (which must exist) unless it is mounted:
// from the loop device that still holds the image if there is one, else
// after e2fsck -p on a new loop device. A stale volume on Dir (an image
// since replaced under the same name) is unmounted first; anything else
// mounted there is an error.
func (v Volume) Mount(ctx context.Context) error {
	if _, ours, err := v.mountedAt(false); err == nil && ours {
		return nil // the common case, without rereading the mount table
	}
	m, ours, err := v.mountedAt(true)
	if err != nil || ours {
		return err
	}
	if m != nil {
		if m.Root != "/" || !strings.HasPrefix(m.Source, "/dev/loop") {
			return fmt.Errorf("volume: %s is mounted on %s, not the volume %s", m.Source+m.Root, v.Dir, v.Image)
		}
		if err := v.Unmount(); err != nil {
			return err
		}
	}
	if !v.Exists() {
		return fmt.Errorf("volume: %s does not exist", v.Image)
	}
	if dev := loopOf(v.Image); dev != "" {
		// Still attached: mounted elsewhere or lazily unmounted while in
		// use. Its filesystem is live, so no fsck; mounting the device
		// again shares the one superblock.
		if err := mount(dev, v.Dir, "ext4", MountFlags, ""); err != nil {
			return fmt.Errorf("volume: mount %s on %s: %w", dev, v.Dir, err)
		}
		return nil
	}
	if err := Fsck(ctx, v.Image); err != nil {
		return err
	}
	dev, f, err := attach(v.Image)
	if err != nil {
		return err
	}
	// The device goes away (autoclear) when f is closed unless the
	// mount holds it by then.
	defer f.Close()
	if err := mount(dev, v.Dir, "ext4", MountFlags, ""); err != nil {
		return fmt.Errorf("volume: mount %s (%s) on %s: %w", v.Image, dev, v.Dir, err)
	}
	return nil
}

// Fsck checks and repairs an unmounted image as e2fsck -p does at boot; an
// image with errors it may not repair unattended is an error.
func Fsck(ctx context.Context, image string) error {
	out, err := run(ctx, "e2fsck", "-p", image)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 && ee.ExitCode() < 4 {
		return nil // errors corrected
	}
	if err != nil {
		return fmt.Errorf("volume: %s needs a manual check (e2fsck -f %s): %w", image, image, errors.Join(err, errors.New(lastLine(out))))
	}
	return nil
}

// Unmount detaches the volume from Dir (lazily: processes that still use
// it keep it until they let go, and its loop device is released then). Not
// mounted is no error.
func (v Volume) Unmount() error {
	return unmount(v.Dir, unix.MNT_DETACH)
}

// UnmountNow unmounts the volume only if nothing uses it (EBUSY
// otherwise).
func (v Volume) UnmountNow() error {
	return unmount(v.Dir, 0)
}

func unmount(dir string, flags int) error {
	for {
		err := unix.Unmount(dir, flags)
		mounts.changed()
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("volume: unmount %s: %w", dir, err)
		}
		// Mounted twice on the same point: unmount the one below too.
	}
}

// Remove unmounts the volume (lazily) and deletes its image and any
// half-made one.
func (v Volume) Remove() error {
	if err := v.Unmount(); err != nil {
		return err
	}
	for _, p := range []string{v.Image, v.Image + ".new"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("volume: %w", err)
		}
	}
	return nil
}

// Usage is what a mounted volume holds.
type Usage struct {
	// Size is the bytes of its data blocks (without the filesystem's own
	// metadata).
	Size int64
	// Used is the bytes in use, by anybody.
	Used int64
	// Avail is the bytes a non-root writer may still write.
	Avail int64
}

// Stat measures the mounted volume at dir (any path in it).
func Stat(dir string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Usage{}, fmt.Errorf("volume: statfs %s: %w", dir, err)
	}
	bs := st.Bsize
	return Usage{Size: int64(st.Blocks) * bs, Used: int64(st.Blocks-st.Bfree) * bs, Avail: int64(st.Bavail) * bs}, nil
}

// SetLimit makes the kernel refuse non-root writers a block once limit
// bytes are in use (by anybody) in the mounted volume, and returns the
// limit in force: more than limit when the image is too big for ext4's
// reserve to hold back the rest (see Size; Grow or rebuild it). It writes
// the superblock only when the reserve changes.
func (v Volume) SetLimit(ctx context.Context, limit int64) (int64, error) {
	m, err := v.Mounted()
	if err != nil {
		return 0, err
	}
	if m == nil {
		return 0, fmt.Errorf("volume: %s is not mounted", v.Image)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(v.Dir, &st); err != nil {
		return 0, fmt.Errorf("volume: statfs: %w", err)
	}
	bs := st.Bsize
	sb, err := readSuperblock(m.Source)
	if err != nil {
		return 0, err
	}
	// ext4 also holds back reserved_clusters from everybody (root too);
	// the reserve is what remains above the limit.
	resv, err := readSysInt("/sys/fs/ext4/" + filepath.Base(m.Source) + "/reserved_clusters")
	if err != nil {
		return 0, err
	}
	blocks := int64(st.Blocks)
	want := blocks - (limit+bs-1)/bs - resv
	want = max(0, min(want, sb.blocks/2))
	if want != sb.reserved {
		if _, err := run(ctx, "tune2fs", "-r", strconv.FormatInt(want, 10), m.Source); err != nil {
			return 0, err
		}
	}
	return (blocks - resv - want) * bs, nil
}

// ImageSize is the size of the image file.
func (v Volume) ImageSize() (int64, error) {
	fi, err := os.Stat(v.Image)
	if err != nil {
		return 0, fmt.Errorf("volume: %w", err)
	}
	return fi.Size(), nil
}

// ErrNoOnlineResize is Grow's error where the kernel will not resize a
// mounted ext4 (the process lacks CAP_SYS_RESOURCE, as in some
// containers): the volume must be rebuilt into a bigger image instead.
var ErrNoOnlineResize = errors.New("volume: no online resize here (CAP_SYS_RESOURCE missing)")

// Grow enlarges the mounted volume's image to size bytes and its
// filesystem to fill it, online. A smaller size than the image's is a
// no-op; shrinking takes a new image (the caller copies the files).
func (v Volume) Grow(ctx context.Context, size int64) error {
	if !caps.Has(unix.CAP_SYS_RESOURCE) {
		return ErrNoOnlineResize
	}
	m, err := v.Mounted()
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("volume: %s is not mounted", v.Image)
	}
	cur, err := v.ImageSize()
	if err != nil {
		return err
	}
	if size > cur {
		if err := os.Truncate(v.Image, size); err != nil {
			return fmt.Errorf("volume: grow: %w", err)
		}
	}
	f, err := os.OpenFile(m.Source, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("volume: grow: %w", err)
	}
	_, err = unix.IoctlRetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY)
	f.Close()
	if err != nil {
		return fmt.Errorf("volume: grow: loop capacity: %w", err)
	}
	// Idempotent: a filesystem that fills its device already is left as
	// it is (an interrupted grow is finished).
	if _, err := run(ctx, "resize2fs", m.Source); err != nil {
		return err
	}
	return nil
}

// superblock holds the fields of an ext4 superblock SetLimit needs, in
// blocks.
type superblock struct {
	blocks, reserved int64
}

// readSuperblock reads the superblock of the filesystem on dev through
// the block device, which the kernel's own copy lives in.
func readSuperblock(dev string) (superblock, error) {
	f, err := os.Open(dev)
	if err != nil {
		return superblock{}, fmt.Errorf("volume: superblock: %w", err)
	}
	defer f.Close()
	b := make([]byte, 1024)
	if _, err := f.ReadAt(b, 1024); err != nil {
		return superblock{}, fmt.Errorf("volume: superblock: %w", err)
	}
	return parseSuperblock(b)
}

func parseSuperblock(b []byte) (superblock, error) {
	le := binary.LittleEndian
	if len(b) < 0x160 || le.Uint16(b[0x38:]) != 0xEF53 {
		return superblock{}, errors.New("volume: not an ext4 superblock")
	}
	sb := superblock{blocks: int64(le.Uint32(b[0x4:])), reserved: int64(le.Uint32(b[0x8:]))}
	if le.Uint32(b[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		sb.blocks |= int64(le.Uint32(b[0x150:])) << 32
		sb.reserved |= int64(le.Uint32(b[0x154:])) << 32
	}
	return sb, nil
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("volume: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("volume: %s: %w", path, err)
	}
	return n, nil
}

// tools are the e2fsprogs programs a volume needs.
var tools = []string{"mkfs.ext4", "e2fsck", "resize2fs", "tune2fs"}

// lookTool finds an e2fsprogs program in PATH or the sbin directories
// (which a non-login root shell's PATH may lack).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install e2fsprogs)", name)
}

// run runs an e2fsprogs program and returns its combined output; a failure
// names the program and its last line of output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, err := lookTool(name)
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("volume: %s: %w: %s", name, err, lastLine(out))
	}
	return out, nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}
