package shard

// Site volumes: what a site's PHP can write — wp-content/uploads, its tmp/
// (uploads in flight, sessions) and its logs/ — lives on a volume of its
// own (internal/volume): <site dir>/disk.img, a sparse ext4 image mounted
// on <site dir>/volume (root only), whose directories uploads/, tmp/ and
// logs/ are bind-mounted at their usual paths. So uploads keep their real
// path inside the docroot (the edge serves nothing whose real path leaves
// it), and a site that fills its volume gets ENOSPC while the shard's disk
// and every other site go on. The limit is Spec.Limits.DiskMB; the kernel
// enforces it with ext4's root reserve, so root — the shard restoring,
// importing or migrating a site — may go beyond it and never fails half-way
// because the site is full.
//
// The host directories beneath the bind mounts are root's, so while a
// volume is not mounted (a reboot, before the first pass) the site can
// write none of them. Every pass makes it so again (idempotently): the image
// exists (made under a temporary name, so a crash never leaves half of
// one), it is mounted (e2fsck -p first when it is not attached), the binds
// are in place, the image fits the limit (grown online, or rebuilt into a
// new image by copying the files when the kernel will not resize it or
// when it is too big for the reserve to hold the limit: after a plan
// downgrade or a migration of a site that was over its limit), and the
// reserve is set. A site over its limit is held at what it uses: it can
// write nothing new until it is below the limit again.
//
// A site from before volumes is migrated on its first pass: each tree is
// renamed aside (premigrate/<tree>/<n> in the site directory; from then on
// its PHP cannot add to it), copied into the volume, bind-mounted, copied
// once more for what was still being written through files opened before
// the rename (files written in the volume since are kept), and only then
// removed. A crash at any point leaves the files either in place or
// aside, from where the next pass carries on.
//
// Removing a site (teardown, orphan collection) unmounts everything below
// its directory lazily before removing it, so a request still writing
// keeps its (now detached) volume until it ends, and the loop device is
// released then. A stopped shard unmounts its volumes; Run mounts them
// again before php-fpm starts.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/volume"
)

// Volume modes (Config.Volumes).
const (
	// VolumesAuto gives sites volumes when the host can (root, loop
	// devices, e2fsprogs), else runs without them and says so once.
	VolumesAuto = "auto"
	// VolumesOn requires volumes: Prepare fails when the host cannot.
	VolumesOn = "on"
	// VolumesOff gives new sites no volume (sites that have one keep
	// it: their files are on it).
	VolumesOff = "off"
)

// CondDiskQuota is the condition that reports a site's disk use against
// its limit: True within it, False when full or over it, Unknown when the
// shard does not enforce it.
const CondDiskQuota = "DiskQuota"

// volTree is a tree of a site's that its PHP may write and that lives on
// its volume, under name.
type volTree struct {
	name string
	mode os.FileMode
}

var volTrees = []volTree{{"uploads", 0o755}, {"tmp", 0o700}, {"logs", 0o750}}

// treePath is where tree name of site n appears.
func treePath(n Names, name string) string {
	if name == "uploads" {
		return filepath.Join(n.Docroot, "wp-content", "uploads")
	}
	return filepath.Join(n.Dir, name)
}

// siteVolume is site n's volume.
func siteVolume(n Names) volume.Volume {
	return volume.Volume{Image: filepath.Join(n.Dir, "disk.img"), Dir: filepath.Join(n.Dir, "volume")}
}

func premigrateDir(n Names) string { return filepath.Join(n.Dir, "premigrate") }

// prepareVolumes decides whether new sites get volumes (Prepare).
func (s *Shard) prepareVolumes(ctx context.Context) error {
	switch s.cfg.Volumes {
	case VolumesAuto, VolumesOn:
		err := volume.Check(ctx, s.cfg.Dir)
		if err == nil {
			// php-fpm runs in a mount namespace of its own (package
			// procns), made before most volumes are mounted: they reach
			// it through the sites directory's shared propagation.
			err = volume.Share(s.sitesDir())
		}
		if err == nil {
			s.vols = true
			return nil
		}
		if s.cfg.Volumes == VolumesOn {
			return fmt.Errorf("site volumes: %w", err)
		}
		s.volsOff = err.Error()
	case VolumesOff:
		s.volsOff = "site volumes are turned off"
	default:
		return fmt.Errorf("site volumes %q: want %s, %s or %s", s.cfg.Volumes, VolumesAuto, VolumesOn, VolumesOff)
	}
	s.log.Warn("site disk limits are NOT enforced: a site's PHP can fill this shard's disk (see docs/operations.md, Site volumes)", "reason", s.volsOff)
	return nil
}

// imageSize is the size of a new image for a site limited to limit bytes
// whose files (root may write them beyond the limit) take need bytes now.
func imageSize(limit, need int64) int64 {
	return volume.Size(max(limit, need+need/8))
}

// ensureVolume makes, mounts, binds and limits site n's volume (migrating
// what the site has from before volumes), unless the shard gives sites no
// volumes and n has none. need is what the volume must hold when it is
// made now beyond what n's trees hold (an import's files). It reports
// whether n is on a volume.
func (s *Shard) ensureVolume(ctx context.Context, n Names, limitMB int, need int64, uid, gid int) (bool, error) {
	v := siteVolume(n)
	limit := int64(limitMB) * volume.MiB
	if !v.Exists() {
		if !s.vols {
			return false, nil
		}
		need += legacySize(n)
		if err := v.Create(ctx, imageSize(limit, need)); err != nil {
			return false, fmt.Errorf("site volume: %w", err)
		}
	}
	if err := s.attachVolume(ctx, n, uid, gid); err != nil {
		return true, err
	}
	return true, s.fitVolume(ctx, n, limit, uid, gid)
}

// attachVolume mounts n's volume and binds its trees, migrating what a
// tree held before volumes.
func (s *Shard) attachVolume(ctx context.Context, n Names, uid, gid int) error {
	if err := s.mountVolume(ctx, n); err != nil {
		return err
	}
	v := siteVolume(n)
	for _, t := range volTrees {
		if err := s.attachTree(ctx, n, v, t, uid, gid); err != nil {
			return fmt.Errorf("site volume: %s: %w", t.name, err)
		}
	}
	if err := os.Remove(premigrateDir(n)); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("site volume: %w", err)
	}
	return nil
}

// mountVolume mounts n's volume (not its binds) if it has one.
func (s *Shard) mountVolume(ctx context.Context, n Names) error {
	v := siteVolume(n)
	if !v.Exists() {
		return nil
	}
	if err := ensureDir(v.Dir, 0o700, 0, 0); err != nil {
		return err
	}
	if err := v.Mount(ctx); err != nil {
		return fmt.Errorf("site volume: %w", err)
	}
	return chownMode(v.Dir, 0o700, 0, 0)
}

// attachTree makes the tree's path show its directory in the volume.
func (s *Shard) attachTree(ctx context.Context, n Names, v volume.Volume, t volTree, uid, gid int) error {
	path := treePath(n, t.name)
	vdir := filepath.Join(v.Dir, t.name)
	aside := filepath.Join(premigrateDir(n), t.name)
	if !fileExists(filepath.Dir(path)) {
		// No docroot (a restore or a rebuild from a snapshot between its
		// steps): bound once it is built, never half-made here.
		return nil
	}
	// Bound already on almost every pass: found without rereading the
	// mount table, which grows with the sites; anything else is decided
	// on a fresh read.
	ms, err := volume.RecentMounts()
	if err != nil {
		return err
	}
	if !volume.Bound(ms, vdir, path) {
		if ms, err = volume.Mounts(); err != nil {
			return err
		}
	}
	copyOpts := volume.CopyOptions{UID: uid, GID: gid}
	if !volume.Bound(ms, vdir, path) {
		if !mountedOn(ms, path) {
			if err := s.moveAside(path, aside); err != nil {
				return err
			}
		}
		// The directory beneath the bind is root's: while the volume is
		// not mounted, the site cannot write there.
		if err := ensureDir(path, 0o755, 0, 0); err != nil {
			return err
		}
		if err := ensureDir(vdir, t.mode, uid, gid); err != nil {
			return err
		}
		if err := copyAside(ctx, aside, vdir, copyOpts); err != nil {
			return err
		}
		if err := volume.Bind(vdir, path); err != nil {
			return err
		}
	}
	if !fileExists(aside) {
		return nil
	}
	// What was still written through files opened before the move aside;
	// files the site wrote in the volume since win.
	copyOpts.KeepNewer = true
	if err := copyAside(ctx, aside, vdir, copyOpts); err != nil {
		return err
	}
	s.log.Info("site files moved onto the site's volume", "dir", n.Dir, "tree", t.name)
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("remove migrated files: %w", err)
	}
	return nil
}

func mountedOn(ms []volume.Mount, path string) bool {
	for _, m := range ms {
		if m.Point == path {
			return true
		}
	}
	return false
}

// moveAside renames a tree that holds files (a site's from before volumes)
// to the next free aside/<n>, from where they are copied into the volume.
func (s *Shard) moveAside(path, aside string) error {
	ents, err := os.ReadDir(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(ents) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return err
	}
	moved, err := os.ReadDir(aside)
	if err != nil {
		return err
	}
	to := filepath.Join(aside, strconv.Itoa(len(moved)))
	s.log.Info("moving a site's files onto its volume", "path", path)
	if err := os.Rename(path, to); err != nil {
		return err
	}
	return syncDirOf(path)
}

func syncDirOf(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyAside copies aside/0, aside/1 … (in that order) into dst.
func copyAside(ctx context.Context, aside, dst string, o volume.CopyOptions) error {
	ents, err := os.ReadDir(aside)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var ks []int
	for _, e := range ents {
		if k, err := strconv.Atoi(e.Name()); err == nil {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	for _, k := range ks {
		if _, err := volume.Copy(ctx, filepath.Join(aside, strconv.Itoa(k)), dst, o); err != nil {
			return err
		}
	}
	return nil
}

// legacySize is what n's trees hold outside a volume (on the host's disk,
// not below a mount).
func legacySize(n Names) int64 {
	var total int64
	for _, t := range volTrees {
		total += allocatedSize(treePath(n, t.name))
	}
	return total + allocatedSize(premigrateDir(n))
}

// allocatedSize is the disk space the files below dir take (hard links
// once), without crossing into other filesystems.
func allocatedSize(dir string) int64 {
	var total int64
	root, err := os.Lstat(dir)
	if err != nil {
		return 0
	}
	rootDev := root.Sys().(*syscall.Stat_t).Dev
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Dev != rootDev {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// fitVolume makes n's (mounted) image fit its limit and sets the reserve:
// a limit the image cannot hold is grown into, online or by a rebuild, and
// an image so big that the reserve cannot hold back all but the limit is
// rebuilt smaller. A site using more than its limit is held at what it
// uses.
func (s *Shard) fitVolume(ctx context.Context, n Names, limit int64, uid, gid int) error {
	return s.fitVolumeOnce(ctx, n, limit, uid, gid, false)
}

func (s *Shard) fitVolumeOnce(ctx context.Context, n Names, limit int64, uid, gid int, rebuilt bool) error {
	v := siteVolume(n)
	size, err := v.ImageSize()
	if err != nil {
		return err
	}
	u, err := volume.Stat(v.Dir)
	if err != nil {
		return err
	}
	hold := max(limit, u.Used)
	if want := volume.Size(limit); size < want {
		err := v.Grow(ctx, want)
		if errors.Is(err, volume.ErrNoOnlineResize) && !rebuilt {
			return s.rebuildVolume(ctx, n, limit, volume.Size(hold), uid, gid)
		}
		if err != nil {
			return fmt.Errorf("site volume: %w", err)
		}
		s.log.Info("site volume grown", "dir", n.Dir, "bytes", want)
	}
	got, err := v.SetLimit(ctx, hold)
	if err != nil {
		return fmt.Errorf("site volume: %w", err)
	}
	if got > hold+hold/8+4*volume.MiB && !rebuilt {
		// Too big for the reserve (at most half the blocks): rebuilt to
		// twice what it must hold, which the reserve can.
		return s.rebuildVolume(ctx, n, limit, volume.Size(hold), uid, gid)
	}
	return nil
}

// errVolumeBusy: a volume's trees are in use, so it cannot be rebuilt now.
var errVolumeBusy = errors.New("files are in use")

// rebuildVolume replaces n's image with a new one of size bytes holding
// the same files: the binds come off (only when nothing uses them; the
// directories beneath are root's, so the site writes nothing meanwhile),
// the trees are copied into the new image, which is renamed over the old
// one (the commit: a crash before leaves the old image whole, after it the
// new one) and mounted, and the binds go back on.
func (s *Shard) rebuildVolume(ctx context.Context, n Names, limit, size int64, uid, gid int) (err error) {
	v := siteVolume(n)
	next := volume.Volume{Image: v.Image + ".next", Dir: v.Dir + ".next"}
	s.log.Info("rebuilding a site volume", "dir", n.Dir, "bytes", size, "limit", limit)
	if err := s.clearRebuild(n); err != nil {
		return err
	}
	for _, t := range volTrees {
		if err := volume.Unbind(treePath(n, t.name)); err != nil {
			if errors.Is(err, syscall.EBUSY) {
				err = errVolumeBusy
			}
			return errors.Join(fmt.Errorf("site volume: resizing to the %d MB limit waits: %w", limit/volume.MiB, err), s.attachVolume(ctx, n, uid, gid))
		}
	}
	defer func() {
		// Whatever happened, the site's trees are bound again.
		if aerr := s.attachVolume(context.WithoutCancel(ctx), n, uid, gid); aerr != nil {
			err = errors.Join(err, aerr)
		}
		if err == nil {
			err = s.fitVolumeOnce(ctx, n, limit, uid, gid, true)
		}
	}()
	if err := next.Create(ctx, size); err != nil {
		return err
	}
	if err := ensureDir(next.Dir, 0o700, 0, 0); err != nil {
		return err
	}
	if err := next.Mount(ctx); err != nil {
		return err
	}
	for _, t := range volTrees {
		dst := filepath.Join(next.Dir, t.name)
		if err := ensureDir(dst, t.mode, uid, gid); err != nil {
			return err
		}
		if _, err := volume.Copy(ctx, filepath.Join(v.Dir, t.name), dst, volume.CopyOptions{UID: uid, GID: gid}); err != nil {
			return fmt.Errorf("site volume: rebuild: %w", err)
		}
	}
	if err := next.Unmount(); err != nil {
		return err
	}
	if err := os.Rename(next.Image, v.Image); err != nil {
		return fmt.Errorf("site volume: rebuild: %w", err)
	}
	if err := syncDirOf(v.Image); err != nil {
		return fmt.Errorf("site volume: rebuild: %w", err)
	}
	// The old image is gone from the directory; unmounted, its loop
	// device lets go of it.
	if err := v.Unmount(); err != nil {
		return err
	}
	return s.clearRebuild(n)
}

// clearRebuild removes what an interrupted rebuild left.
func (s *Shard) clearRebuild(n Names) error {
	v := siteVolume(n)
	next := volume.Volume{Image: v.Image + ".next", Dir: v.Dir + ".next"}
	if err := volume.UnmountUnder(next.Dir); err != nil {
		return err
	}
	if err := next.Remove(); err != nil {
		return err
	}
	if err := os.RemoveAll(next.Dir); err != nil {
		return fmt.Errorf("site volume: %w", err)
	}
	return nil
}

// dropVolume removes n's volume (its binds first), files and all: a site
// being made from scratch.
func (s *Shard) dropVolume(n Names) error {
	for _, t := range volTrees {
		if err := volume.UnmountUnder(treePath(n, t.name)); err != nil {
			return err
		}
	}
	if err := s.clearRebuild(n); err != nil {
		return err
	}
	if err := siteVolume(n).Remove(); err != nil {
		return fmt.Errorf("site volume: %w", err)
	}
	return nil
}

// removeTree removes dir after unmounting (lazily) everything mounted
// below it: never through a bind mount into a volume.
func removeTree(dir string) error {
	if err := volume.UnmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// diskState is what CondDiskQuota says of site st (n) now.
func (s *Shard) diskState(st *site.Site, n Names) (status, reason, msg string) {
	status, reason, msg, _ = s.diskUse(st, n)
	return status, reason, msg
}

// diskUse is diskState and the MB the site's volume holds (0: unknown).
func (s *Shard) diskUse(st *site.Site, n Names) (status, reason, msg string, usedMB int) {
	limitMB := int64(st.Spec.Limits.WithDefaults().DiskMB)
	v := siteVolume(n)
	m, err := v.Mounted()
	if err != nil || m == nil {
		why := s.volsOff
		if why == "" {
			why = "the site's volume is not mounted"
		}
		return "Unknown", "NotEnforced", fmt.Sprintf("the %d MB disk limit is not enforced on this shard: %s", limitMB, why), 0
	}
	u, err := volume.Stat(v.Dir)
	if err != nil {
		return "Unknown", "NotMeasured", "disk use could not be measured", 0
	}
	used := (u.Used + volume.MiB - 1) / volume.MiB
	switch {
	case u.Used > limitMB*volume.MiB+volume.MiB:
		return "False", "OverLimit", fmt.Sprintf("%d MB used, over the %d MB limit: nothing new can be stored until files are removed", used, limitMB), int(used)
	case u.Avail < volume.MiB:
		return "False", "Full", fmt.Sprintf("storage full: %d MB of %d MB used; uploads are refused", used, limitMB), int(used)
	}
	return "True", "WithinLimit", fmt.Sprintf("%d MB of %d MB used", used, limitMB), int(used)
}

// reportDisk sets st's CondDiskQuota and Status.DiskUsedMB (what plan
// downgrades are checked against).
func (s *Shard) reportDisk(ctx context.Context, rep reporter, st *site.Site, n Names) {
	status, reason, msg, used := s.diskUse(st, n)
	now, gen := s.cfg.Clock(), st.Metadata.Generation
	rep.update(ctx, func(stt *site.Status) {
		stt.SetCondition(site.Condition{Type: CondDiskQuota, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
		stt.DiskUsedMB = used
		stt.Shard = s.cfg.Name
	})
}

// diskReportCurrent is the cheap check that st's reported CondDiskQuota
// still holds (status and reason; the figures are refreshed by full
// passes) and that its uploads are bound (on another device than the
// docroot) when it has a volume.
func (s *Shard) diskReportCurrent(st *site.Site, n Names) bool {
	if siteVolume(n).Exists() {
		a, err1 := os.Stat(n.Docroot)
		b, err2 := os.Stat(treePath(n, "uploads"))
		if err1 != nil || err2 != nil || a.Sys().(*syscall.Stat_t).Dev == b.Sys().(*syscall.Stat_t).Dev {
			return false
		}
	}
	c := st.Status.Condition(CondDiskQuota)
	if c == nil {
		return false
	}
	status, reason, _ := s.diskState(st, n)
	return c.Status == status && c.Reason == reason
}

// mountAll mounts every site volume in the shard's directory and binds its
// trees (Run, before php-fpm starts its pools after a reboot); failures are
// left to the sites' passes.
func (s *Shard) mountAll(ctx context.Context) {
	ents, err := os.ReadDir(s.sitesDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		n := s.namesForID(e.Name())
		if !siteVolume(n).Exists() {
			continue
		}
		uid, gid := lookupIDs(n.Unix)
		if err := s.attachVolume(ctx, n, uid, gid); err != nil {
			s.log.Warn("mount site volume", "dir", n.Dir, "err", err)
		}
	}
}

// unmountAll unmounts every volume and bind below the shard's sites (a
// stopping shard).
func (s *Shard) unmountAll() {
	if err := volume.UnmountUnder(s.sitesDir()); err != nil {
		s.log.Warn("unmount site volumes", "err", err)
	}
}
