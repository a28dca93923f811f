package volume

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Dev    string // major:minor of the filesystem
	Root   string // the directory of the filesystem mounted ("/" or a bind's subdirectory)
	Point  string // where it is mounted
	FSType string
	Source string // e.g. /dev/loop3
}

// Mounts lists this process's mounts, in mount order, read now from
// /proc/self/mountinfo. The slice is shared with RecentMounts' callers: do
// not modify it.
func Mounts() ([]Mount, error) { return mounts.get(true) }

// RecentMounts is Mounts without rereading the table when this package has
// mounted and unmounted nothing since the last read and that read is less
// than mountTableMaxAge old. A change made otherwise (a rename inside a
// mounted volume, which moves a bind's root; another process's mount) may
// go unseen that long: use it to find that everything is in place already,
// and read Mounts before acting on what it says is missing. A shard asks
// several times per site on every pass; rereading a table that grows with
// the sites made each pass O(sites²), most of the shard's CPU at 80 sites.
func RecentMounts() ([]Mount, error) { return mounts.get(false) }

// mountTableMaxAge bounds how long a change made outside this package (an
// operator's umount, another process) may go unseen.
const mountTableMaxAge = time.Second

// mounts is the process's cached mount table (RecentMounts). It is package
// state on purpose: it caches the kernel's mount table of this process,
// which is itself process-wide, and every mount and unmount this package
// makes marks it stale.
var mounts = &mountTable{path: "/proc/self/mountinfo", now: time.Now}

// mountTable caches a parsed mountinfo file. changed is called after each
// mount or unmount; get(false) reads again when one happened since its
// last read began, or when that read is older than mountTableMaxAge;
// get(true) always reads. (The kernel's own signal, POLLPRI on an open
// mountinfo, was tried first: on this kernel an unmount did not always
// raise it.)
//
// A read goes into a buffer kept from the read before, and a file equal
// to the one last parsed keeps that parse: an idle platform's shards
// reread a table of 4 lines per site about once a second, and parsing it
// anew each time (a string per field) made most of an idle platform's
// garbage at 1,000 sites (about 1.5 MB a second).
type mountTable struct {
	path string
	now  func() time.Time
	gen  atomic.Uint64 // bumped by changed

	mu     sync.Mutex
	ms     []Mount
	msGen  uint64
	readAt time.Time
	raw    []byte // the file ms was parsed from
	buf    []byte // the buffer of the next read
	reads  int    // how many times the file was read (tests)
	parses int    // how many times a read was parsed (tests)
}

// changed marks the table stale; call it after a mount or an unmount.
func (t *mountTable) changed() { t.gen.Add(1) }

func (t *mountTable) get(fresh bool) ([]Mount, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	g := t.gen.Load()
	if !fresh && t.ms != nil && g == t.msGen && now.Sub(t.readAt) < mountTableMaxAge {
		return t.ms, nil
	}
	// g is taken before the read: a change during the read makes the
	// next call read again.
	b, err := readInto(t.path, t.buf[:0])
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	t.reads++
	if t.ms != nil && bytes.Equal(b, t.raw) {
		t.buf = b
		t.msGen, t.readAt = g, now
		return t.ms, nil
	}
	ms, err := parseMountinfo(b)
	if err != nil {
		t.buf = b
		return nil, err
	}
	t.parses++
	if ms == nil {
		ms = []Mount{}
	}
	// The parse holds no reference to b (its strings are copies): the
	// previous file's buffer becomes the next read's.
	t.raw, t.buf = b, t.raw
	t.ms, t.msGen, t.readAt = ms, g, now
	return ms, nil
}

// readInto appends the whole file at path to buf. Files under /proc
// report no size, so it reads until EOF, growing buf as needed.
func readInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// mount is unix.Mount, marking the mount table stale.
func mount(source, target, fstype string, flags uintptr, data string) error {
	defer mounts.changed()
	return unix.Mount(source, target, fstype, flags, data)
}

func parseMountinfo(b []byte) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent major:minor root point options [optional...] - type source superoptions
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("volume: mountinfo: malformed line %q", sc.Text())
		}
		out = append(out, Mount{Dev: f[2], Root: unescape(f[3]), Point: unescape(f[4]), FSType: f[sep+1], Source: unescape(f[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("volume: mountinfo: %w", err)
	}
	return out, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space …).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// top returns the mount on point that is visible (the last one), if any.
func top(ms []Mount, point string) *Mount {
	var m *Mount
	for i := range ms {
		if ms[i].Point == point {
			m = &ms[i]
		}
	}
	return m
}

// containing returns the mount that path (clean, absolute) lies in.
func containing(ms []Mount, path string) *Mount {
	var best *Mount
	for i := range ms {
		p := ms[i].Point
		// path == p, or path below p (without making p+"/": this runs
		// for every mount, several times per site on every shard pass).
		if p == "/" || strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/') {
			if best == nil || len(p) >= len(best.Point) {
				best = &ms[i]
			}
		}
	}
	return best
}

// Bound reports whether dst is a bind mount of the directory src.
func Bound(ms []Mount, src, dst string) bool {
	d := top(ms, dst)
	s := containing(ms, src)
	if d == nil || s == nil {
		return false
	}
	rel, err := filepath.Rel(s.Point, src)
	if err != nil {
		return false
	}
	return d.Dev == s.Dev && d.Root == filepath.Join(s.Root, rel)
}

// Bind makes dst (a directory) show the directory src, nosuid, nodev,
// noexec, unless it does already; whatever else is mounted on dst is
// unmounted first.
func Bind(src, dst string) error {
	ms, err := Mounts()
	if err != nil {
		return err
	}
	if Bound(ms, src, dst) {
		return nil
	}
	if top(ms, dst) != nil {
		if err := unmount(dst, unix.MNT_DETACH); err != nil {
			return err
		}
	}
	if err := mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("volume: bind %s on %s: %w", src, dst, err)
	}
	if err := mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|MountFlags, ""); err != nil {
		_ = unmount(dst, unix.MNT_DETACH)
		return fmt.Errorf("volume: bind %s on %s: %w", src, dst, err)
	}
	return nil
}

// Share makes dir a mount point (a bind mount of itself, unless something
// is mounted there already) with shared propagation, so that what is
// mounted below it later also appears in mount namespaces copied from this
// one before — php-fpm's, whose private /proc (package procns) makes it a
// namespace of its own: a slave copy of a shared mount receives the mounts
// made under it on the host. On a host whose root mount is private (no
// systemd) nothing propagates otherwise. Idempotent.
func Share(dir string) error {
	ms, err := Mounts()
	if err != nil {
		return err
	}
	if top(ms, dir) == nil {
		if err := mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("volume: bind %s on itself: %w", dir, err)
		}
	}
	if err := mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("volume: make %s shared: %w", dir, err)
	}
	return nil
}

// Unbind unmounts what is mounted on dst only if nothing uses it (EBUSY
// otherwise); nothing mounted is no error.
func Unbind(dst string) error { return unmount(dst, 0) }

// IsMountPoint reports whether something is mounted on path.
func IsMountPoint(path string) (bool, error) {
	ms, err := Mounts()
	if err != nil {
		return false, err
	}
	return top(ms, path) != nil, nil
}

// UnmountUnder unmounts (lazily) everything mounted on dir or below it,
// deepest first, so that removing dir afterwards removes only what lies
// on dir's own filesystem.
func UnmountUnder(dir string) error {
	ms, err := Mounts()
	if err != nil {
		return err
	}
	var points []string
	for _, m := range ms {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			points = append(points, m.Point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		errs = append(errs, unmount(p, unix.MNT_DETACH))
	}
	return errors.Join(errs...)
}
