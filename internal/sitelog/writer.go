package sitelog

import (
	"bytes"
	"cmp"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultOpenFiles is how many sites' access logs a Writer keeps open.
const DefaultOpenFiles = 1024

// DefaultBufferBytes bounds the lines a Writer holds for its background
// writer: some 25,000 requests' entries, over a second of a busy edge.
const DefaultBufferBytes = 8 << 20

// DefaultFlushInterval is how often the background writer writes what is
// buffered: well under a second, so that a follower polling every 250 ms
// sees a line within about half a second.
const DefaultFlushInterval = 250 * time.Millisecond

// Errors of Write.
var (
	// ErrFull is returned when the buffer is full (the background
	// writer is behind): the line is dropped and counted (Dropped).
	ErrFull = errors.New("sitelog: buffer full, access log line dropped")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("sitelog: writer closed")
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Dir holds one directory per site (created 0700: logs name clients'
	// addresses and paths).
	Dir    string
	Bounds Bounds
	// OpenFiles bounds the open descriptors (default DefaultOpenFiles).
	OpenFiles int
	// BufferBytes bounds the memory of the entries waiting for the
	// background writer (default DefaultBufferBytes); beyond it Write
	// drops the entry rather than wait.
	BufferBytes int64
	// FlushInterval is how often the background writer writes the
	// buffered entries (default DefaultFlushInterval); it also writes as
	// soon as half the buffer is used.
	FlushInterval time.Duration
	// OnError, if set, is called on the background writer's goroutine
	// with what failed in writing a batch (the lines concerned are
	// lost). It must not call the Writer.
	OnError func(error)
}

// Writer appends sites' access logs under one directory within Bounds. It
// is safe for concurrent use.
//
// Write, on the request path, only appends the entry to a bounded buffer
// in memory; a background goroutine encodes the buffered entries, groups
// them by site and appends each site's lines with one write (or one per
// rotation), every FlushInterval, when half the buffer is used, on Flush
// and on Close. A clean Close loses no line; a crash loses at most the
// last FlushInterval's.
type Writer struct {
	cfg  WriterConfig
	root *os.Root

	// The request path's side: Write takes bmu only.
	bmu          sync.Mutex
	pending      []Entry
	pendingBytes int64
	closed       bool
	dropped      atomic.Int64
	wake         chan struct{} // the buffer is half used
	stop         chan struct{} // Close
	done         chan struct{} // the background writer returned

	// The files' side. Lock order: mu, then bmu.
	mu    sync.Mutex
	spare []Entry                  // the previous batch's slice, reused
	enc   bytes.Buffer             // a batch's lines
	lines []line                   // where each is in enc
	chunk []byte                   // one site's lines for one write
	open  map[string]*list.Element // site → *openLog in lru
	lru   *list.List               // front: most recent
	total int64                    // bytes of every file under Dir
}

// line is one encoded entry of a batch: enc[start:end].
type line struct {
	site       string
	start, end int
}

type openLog struct {
	site string
	f    *os.File
	size int64
}

// NewWriter opens (creating) cfg.Dir, sums what it holds and starts the
// background writer (Close stops it).
func NewWriter(cfg WriterConfig) (*Writer, error) {
	cfg.Bounds = cfg.Bounds.withDefaults()
	if cfg.OpenFiles <= 0 {
		cfg.OpenFiles = DefaultOpenFiles
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	w := &Writer{cfg: cfg, root: root, open: map[string]*list.Element{}, lru: list.New(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	files, err := w.files()
	if err != nil {
		root.Close()
		return nil, err
	}
	for _, f := range files {
		w.total += f.size
	}
	go w.run()
	return w, nil
}

// Dir is the directory the Writer writes to.
func (w *Writer) Dir() string { return w.cfg.Dir }

// Bounds are the Writer's bounds (defaults filled in).
func (w *Writer) Bounds() Bounds { return w.cfg.Bounds }

// Source is where a site's access log is read from.
func (w *Writer) Source(site string) (Source, error) {
	if err := CheckSite(site); err != nil {
		return Source{}, err
	}
	return Source{Dir: filepath.Join(w.cfg.Dir, site), Base: AccessFile, Kind: KindAccess, Site: site}, nil
}

// Total is the bytes all sites' access logs take now on disk (not
// counting what is buffered).
func (w *Writer) Total() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// Dropped is how many entries Write dropped because the buffer was full.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// entryBytes is what an Entry takes in the buffer besides its strings.
const entryBytes = int64(unsafe.Sizeof(Entry{}))

// memSize is about what e takes in memory.
func (e *Entry) memSize() int64 {
	return entryBytes + int64(len(e.Site)+len(e.Kind)+len(e.Method)+len(e.Path)+len(e.Cache)+len(e.ClientIP)+
		len(e.RequestID)+len(e.Level)+len(e.Message)+len(e.Cursor))
}

// Write queues e (Kind access) for its site's log, where the background
// writer appends it as one JSON line. It never blocks on the disk: with
// the buffer full it drops e and returns ErrFull.
func (w *Writer) Write(e Entry) error {
	if err := CheckSite(e.Site); err != nil {
		return err
	}
	size := e.memSize()
	w.bmu.Lock()
	if w.closed {
		w.bmu.Unlock()
		return ErrClosed
	}
	if w.pendingBytes+size > w.cfg.BufferBytes {
		w.bmu.Unlock()
		w.dropped.Add(1)
		return ErrFull
	}
	w.pending = append(w.pending, e)
	w.pendingBytes += size
	half := w.pendingBytes > w.cfg.BufferBytes/2
	w.bmu.Unlock()
	if half {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// run is the background writer.
func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.wake:
		}
		w.mu.Lock()
		err := w.flush()
		w.mu.Unlock()
		w.report(err)
	}
}

func (w *Writer) report(err error) {
	if err != nil && w.cfg.OnError != nil {
		w.cfg.OnError(err)
	}
}

// Flush writes the buffered entries now and returns what failed.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

// flush takes the buffered entries and writes them, grouped by site (in
// their order within a site). It goes on with the other sites when one
// fails and returns the first failure. w.mu is held.
func (w *Writer) flush() error {
	w.bmu.Lock()
	batch := w.pending
	w.pending, w.pendingBytes = w.spare[:0], 0
	w.bmu.Unlock()
	defer func() {
		clear(batch) // let the entries' strings go
		w.spare = batch[:0]
	}()
	if len(batch) == 0 {
		return nil
	}
	w.enc.Reset()
	w.lines = w.lines[:0]
	enc := json.NewEncoder(&w.enc)
	var first error
	for i := range batch {
		e := &batch[i]
		e.Kind, e.Cursor = KindAccess, ""
		start := w.enc.Len()
		if err := enc.Encode(e); err != nil { // one line, newline included
			w.enc.Truncate(start)
			first = cmp.Or(first, fmt.Errorf("sitelog: %w", err))
			continue
		}
		w.lines = append(w.lines, line{site: e.Site, start: start, end: w.enc.Len()})
	}
	slices.SortStableFunc(w.lines, func(a, b line) int { return strings.Compare(a.site, b.site) })
	for i := 0; i < len(w.lines); {
		j := i + 1
		for j < len(w.lines) && w.lines[j].site == w.lines[i].site {
			j++
		}
		if err := w.writeSite(w.lines[i].site, w.lines[i:j]); err != nil {
			first = cmp.Or(first, err)
		}
		i = j
	}
	clear(w.lines)
	return first
}

// writeSite appends lines to site's log: in one write, or one per file
// when the log rotates on the way, keeping the bounds line by line as if
// each were written alone. w.mu is held.
func (w *Writer) writeSite(site string, lines []line) error {
	ol, err := w.get(site)
	if err != nil {
		return err
	}
	buf := w.enc.Bytes()
	chunk := w.chunk[:0]
	defer func() { w.chunk = chunk[:0] }()
	write := func() error {
		if len(chunk) == 0 {
			return nil
		}
		n, err := ol.f.Write(chunk)
		ol.size += int64(n)
		w.total += int64(n)
		chunk = chunk[:0]
		if err != nil {
			return fmt.Errorf("sitelog: write %s: %w", site, err)
		}
		if w.total > w.cfg.Bounds.TotalBytes {
			if err := w.shrink(); err != nil {
				return err
			}
			// shrink may have closed ol (starting it afresh).
			if ol, err = w.get(site); err != nil {
				return err
			}
		}
		return nil
	}
	for _, l := range lines {
		ln := buf[l.start:l.end]
		if size := ol.size + int64(len(chunk)); size > 0 && size+int64(len(ln)) > w.cfg.Bounds.FileBytes {
			if err := write(); err != nil {
				return err
			}
			if ol.size > 0 {
				if err := w.rotate(ol); err != nil {
					return err
				}
			}
		}
		chunk = append(chunk, ln...)
	}
	return write()
}

// get returns site's open log, opening it (and closing the least recently
// used one) if needed. w.mu is held.
func (w *Writer) get(site string) (*openLog, error) {
	if el, ok := w.open[site]; ok {
		w.lru.MoveToFront(el)
		return el.Value.(*openLog), nil
	}
	if err := w.root.Mkdir(site, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	f, err := w.root.OpenFile(filepath.Join(site, AccessFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	ol := &openLog{site: site, f: f, size: fi.Size()}
	w.open[site] = w.lru.PushFront(ol)
	for w.lru.Len() > w.cfg.OpenFiles {
		w.closeEl(w.lru.Back())
	}
	return ol, nil
}

func (w *Writer) closeEl(el *list.Element) {
	ol := el.Value.(*openLog)
	ol.f.Close()
	w.lru.Remove(el)
	delete(w.open, ol.site)
}

// rotate rotates ol's files and opens a new current one. w.mu is held.
func (w *Writer) rotate(ol *openLog) error {
	sub, err := w.root.OpenRoot(ol.site)
	if err != nil {
		return fmt.Errorf("sitelog: %w", err)
	}
	defer sub.Close()
	var dropped int64
	if fi, err := sub.Stat(rotated(AccessFile, w.cfg.Bounds.Files)); err == nil {
		dropped = fi.Size()
	}
	if err := rotateIn(sub, AccessFile, w.cfg.Bounds.Files); err != nil {
		return err
	}
	w.total -= dropped
	f, err := sub.OpenFile(AccessFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		w.closeEl(w.open[ol.site])
		return fmt.Errorf("sitelog: %w", err)
	}
	ol.f.Close()
	ol.f, ol.size = f, 0
	return nil
}

type logFile struct {
	path    string // relative to Dir
	size    int64
	rotated bool
	mod     int64 // modification time, ns
}

// files lists every log file under Dir.
func (w *Writer) files() ([]logFile, error) {
	var out []logFile
	err := fs.WalkDir(w.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		out = append(out, logFile{path: p, size: fi.Size(), rotated: !strings.HasSuffix(p, AccessFile), mod: fi.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	return out, nil
}

// shrink removes the oldest rotated files of any site until the total is
// under nine tenths of the bound (so that it does not run on every write),
// then, if rotated files were not enough, truncates the largest current
// files. w.mu is held.
func (w *Writer) shrink() error {
	files, err := w.files()
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	target := w.cfg.Bounds.TotalBytes / 10 * 9
	sort.Slice(files, func(i, j int) bool { return files[i].mod < files[j].mod })
	for _, f := range files {
		if total <= target {
			break
		}
		if !f.rotated {
			continue
		}
		if err := w.root.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sitelog: %w", err)
		}
		total -= f.size
	}
	if total > target {
		// Only current files are left (many sites, small bound):
		// start the largest afresh.
		sort.Slice(files, func(i, j int) bool { return files[i].size > files[j].size })
		for _, f := range files {
			if total <= target {
				break
			}
			if f.rotated {
				continue
			}
			site := filepath.Dir(f.path)
			if el, ok := w.open[site]; ok {
				w.closeEl(el)
			}
			if err := w.root.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sitelog: %w", err)
			}
			total -= f.size
		}
	}
	w.total = total
	return nil
}

// Remove deletes site's access logs (the site was deleted).
func (w *Writer) Remove(site string) error {
	if err := CheckSite(site); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// What is buffered goes first (the site's own lines with the rest).
	w.report(w.flush())
	if el, ok := w.open[site]; ok {
		w.closeEl(el)
	}
	if err := w.root.RemoveAll(site); err != nil {
		return fmt.Errorf("sitelog: %w", err)
	}
	files, err := w.files()
	if err != nil {
		return err
	}
	w.total = 0
	for _, f := range files {
		w.total += f.size
	}
	return nil
}

// Close stops the background writer, writes what is buffered and closes
// the files; Write fails (ErrClosed) from then on. It returns what failed
// in the last writing.
func (w *Writer) Close() error {
	w.bmu.Lock()
	closed := w.closed
	w.closed = true
	w.bmu.Unlock()
	if closed {
		return nil
	}
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flush()
	for w.lru.Len() > 0 {
		w.closeEl(w.lru.Back())
	}
	return errors.Join(err, w.root.Close())
}
