package shard

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is what a shard measures of itself for its heartbeats.
type Usage struct {
	// MemoryBytes is the resident memory (RSS) of the shard's MariaDB
	// server and its php-fpm master with all its workers.
	MemoryBytes int64
	// DiskBytes is the size of the shard's directory (databases, site
	// files, cores), measured at most every DiskInterval.
	DiskBytes int64
	// Sites placed on the shard (Status.Shard) and those of them Ready, as
	// the last convergence pass listed them (a status the pass wrote is
	// counted by the next); SitesKnown is false before the first pass.
	Sites, Serving int
	SitesKnown     bool
}

// DiskInterval is how often Usage walks the shard's directory again.
const DiskInterval = 5 * time.Minute

// Usage measures the shard's memory now and returns the disk size measured
// last (walking the directory at most every DiskInterval: a shard of 50 sites
// has hundreds of thousands of files).
func (s *Shard) Usage() Usage {
	var u Usage
	var roots []int
	if s.db != nil && s.db.Process() != nil {
		roots = append(roots, s.db.Process().PID())
	}
	if s.fpm != nil && s.fpm.Process() != nil {
		roots = append(roots, s.fpm.Process().PID())
	}
	u.MemoryBytes = treeRSS(roots)

	s.mu.Lock()
	u.Sites, u.Serving, u.SitesKnown = s.counts.sites, s.counts.serving, s.counts.known
	due := s.cfg.Clock().Sub(s.diskAt) >= DiskInterval
	if due {
		s.diskAt = s.cfg.Clock()
	}
	u.DiskBytes = s.diskBytes
	s.mu.Unlock()
	if due {
		go func() {
			n := dirSize(s.cfg.Dir)
			s.mu.Lock()
			s.diskBytes = n
			s.mu.Unlock()
		}()
	}
	return u
}

// treeRSS sums the resident memory of the processes roots and all their
// descendants. The descendants are found from each process's list of the
// children its main thread forked (/proc/PID/task/PID/children): php-fpm's
// master forks its workers that way and MariaDB forks nothing, so the walk
// reads a few small files per process of the tree. A shard beats every few
// seconds, and the former walk over every process's /proc/PID/stat made
// a good part of an idle platform's garbage with 20 shards (each beat read
// all the machine's processes). Without that file (a kernel built without
// CONFIG_PROC_CHILDREN) it still walks every process's parent.
func treeRSS(roots []int) int64 {
	var total int64
	seen := map[int]bool{}
	stack := append([]int(nil), roots...)
	var buf []byte
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if pid <= 0 || seen[pid] {
			continue
		}
		seen[pid] = true
		p := "/proc/" + strconv.Itoa(pid)
		var err error
		buf, err = readInto(p+"/task/"+strconv.Itoa(pid)+"/children", buf[:0])
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(p); serr == nil {
				return treeRSSScan(roots) // the process exists: no children files
			}
			continue // gone
		}
		if err != nil {
			continue
		}
		total += rss(pid)
		for f := range bytes.FieldsSeq(buf) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				stack = append(stack, c)
			}
		}
	}
	return total
}

// readInto appends the whole file at path to buf; files under /proc
// report no size, so it reads until EOF.
func readInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, 512)...)[:len(buf)]
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

// treeRSSScan is treeRSS through every process's parent in /proc.
func treeRSSScan(roots []int) int64 {
	want := map[int]bool{}
	for _, r := range roots {
		if r > 0 {
			want[r] = true
		}
	}
	if len(want) == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(pid); pp > 0 {
			parent[pid] = pp
		}
	}
	// A process belongs to the tree when one of its ancestors is a root.
	var total int64
	for pid := range parent {
		for p, depth := pid, 0; p > 0 && depth < 64; p, depth = parent[p], depth+1 {
			if want[p] {
				total += rss(pid)
				break
			}
		}
	}
	for r := range want {
		if _, seen := parent[r]; !seen {
			total += rss(r) // a root whose stat could not be read above
		}
	}
	return total
}

// ppid reads a process's parent from /proc/PID/stat (the field after the
// command, which may itself contain spaces and parentheses).
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// rss returns the resident memory of a process in bytes (VmRSS), from
// /proc/PID/statm (its second field, in pages).
func rss(pid int) int64 {
	var a [128]byte
	b, err := readInto("/proc/"+strconv.Itoa(pid)+"/statm", a[:0])
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// dirSize is the size of the regular files below dir (hard links counted
// once), each its apparent size or, when smaller, the space it takes (a
// sparse site volume image takes what its files do). It does not descend
// into other filesystems: a site's volume is counted once, by its image.
func dirSize(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	var rootDev uint64
	if fi, err := os.Stat(dir); err == nil {
		rootDev = fi.Sys().(*syscall.Stat_t).Dev
	}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if info, err := d.Info(); err == nil && info.Sys().(*syscall.Stat_t).Dev != rootDev {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size := info.Size()
		if ok && st.Blocks*512 < size {
			size = st.Blocks * 512
		}
		total += size
		return nil
	})
	return total
}
