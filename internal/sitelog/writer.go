package sitelog

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// DefaultOpenFiles is how many sites' access logs a Writer keeps open.
const DefaultOpenFiles = 1024

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Dir holds one directory per site (created 0700: logs name clients'
	// addresses and paths).
	Dir    string
	Bounds Bounds
	// OpenFiles bounds the open descriptors (default DefaultOpenFiles).
	OpenFiles int
}

// Writer appends sites' access logs under one directory within Bounds. It
// is safe for concurrent use.
type Writer struct {
	cfg  WriterConfig
	root *os.Root

	mu    sync.Mutex
	open  map[string]*list.Element // site → *openLog in lru
	lru   *list.List               // front: most recent
	total int64                    // bytes of every file under Dir
}

type openLog struct {
	site string
	f    *os.File
	size int64
}

// NewWriter opens (creating) cfg.Dir and sums what it holds.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	cfg.Bounds = cfg.Bounds.withDefaults()
	if cfg.OpenFiles <= 0 {
		cfg.OpenFiles = DefaultOpenFiles
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("sitelog: %w", err)
	}
	w := &Writer{cfg: cfg, root: root, open: map[string]*list.Element{}, lru: list.New()}
	files, err := w.files()
	if err != nil {
		root.Close()
		return nil, err
	}
	for _, f := range files {
		w.total += f.size
	}
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

// Total is the bytes all sites' access logs take now.
func (w *Writer) Total() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// Write appends e (Kind access) to its site's log as one JSON line.
func (w *Writer) Write(e Entry) error {
	if err := CheckSite(e.Site); err != nil {
		return err
	}
	e.Kind, e.Cursor = KindAccess, ""
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("sitelog: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	ol, err := w.get(e.Site)
	if err != nil {
		return err
	}
	if ol.size > 0 && ol.size+int64(len(line)) > w.cfg.Bounds.FileBytes {
		if err := w.rotate(ol); err != nil {
			return err
		}
	}
	n, err := ol.f.Write(line)
	ol.size += int64(n)
	w.total += int64(n)
	if err != nil {
		return fmt.Errorf("sitelog: write %s: %w", e.Site, err)
	}
	if w.total > w.cfg.Bounds.TotalBytes {
		return w.shrink()
	}
	return nil
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

// Close closes the open files.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.lru.Len() > 0 {
		w.closeEl(w.lru.Back())
	}
	return w.root.Close()
}
