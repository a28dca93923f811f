package siteport

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// FormatVersion is the archive format Export writes (Manifest.Format).
const FormatVersion = 1

// Entry names of an exported archive.
const (
	DumpName     = "database.sql"
	ManifestName = "manifest.json"
	ContentDir   = "wp-content"
)

// Manifest describes an exported archive; it is its last entry.
type Manifest struct {
	Format           int       `json:"format"`
	Generator        string    `json:"generator"`
	CreatedAt        time.Time `json:"created_at"`
	Domain           string    `json:"domain"`
	URL              string    `json:"url"`
	WordPressVersion string    `json:"wordpress_version,omitempty"`
	DBVersion        string    `json:"db_version,omitempty"`
	TablePrefix      string    `json:"table_prefix"`
	Charset          string    `json:"charset"`
	// Files and Bytes count the entries (database.sql included);
	// DatabaseBytes is database.sql's size.
	Files         int   `json:"files"`
	Bytes         int64 `json:"bytes"`
	DatabaseBytes int64 `json:"database_bytes"`
	// Entries are every file's path, size and SHA-256, in archive order.
	Entries []ManifestEntry `json:"entries"`
	// Skipped are what the site's tree had that is not in the archive
	// (links that leave it, special files), with why.
	Skipped []string `json:"skipped,omitempty"`
}

// ManifestEntry is one file of the archive.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ExportSource is what Export reads.
type ExportSource struct {
	// WPContent is the site's wp-content directory. A symlink in it is
	// followed when it resolves into one of FollowInto (the shard's
	// WordPress cores: bundled themes and plugins are links there) and
	// left out otherwise.
	WPContent  string
	FollowInto []string
	// Dump writes the site's database (mariadb-dump); its DEFINER
	// clauses are removed on the way.
	Dump func(ctx context.Context, w io.Writer) error
	// The manifest's description of the site.
	Domain, URL, WordPressVersion, DBVersion, TablePrefix string
	Now                                                   time.Time
	// Progress, if set, is told the bytes written so far.
	Progress func(done int64)
}

// Export writes the portable tar.gz of src to w (see the package
// comment) and returns its manifest. The dump goes first so that a
// reader sees the database before thousands of uploads.
func Export(ctx context.Context, w io.Writer, src ExportSource) (*Manifest, error) {
	m := &Manifest{Format: FormatVersion, Generator: "aipress", CreatedAt: src.Now.UTC(), Domain: src.Domain, URL: src.URL,
		WordPressVersion: src.WordPressVersion, DBVersion: src.DBVersion, TablePrefix: src.TablePrefix, Charset: "utf8mb4", Entries: []ManifestEntry{}}
	cw := &countWriter{w: w, fn: src.Progress}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	ex := &exporter{ctx: ctx, tw: tw, m: m, now: src.Now, follow: src.FollowInto}
	if err := ex.dump(src.Dump); err != nil {
		return nil, err
	}
	if err := ex.dir(ContentDir, 0o755); err != nil {
		return nil, err
	}
	if err := ex.tree(src.WPContent, ContentDir, 0); err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(body)), ModTime: src.Now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return m, nil
}

type exporter struct {
	ctx    context.Context
	tw     *tar.Writer
	m      *Manifest
	now    time.Time
	follow []string
}

// dump spools the filtered dump to a temporary file (tar needs an entry's
// size first), hashing it on the way, then copies it in.
func (e *exporter) dump(fn func(context.Context, io.Writer) error) error {
	tmp, err := os.CreateTemp("", "aipress-export-*.sql")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fn(e.ctx, pw)) }()
	f := NewDumpFilter(pr)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), f)
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("export the database: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := e.tw.WriteHeader(&tar.Header{Name: DumpName, Mode: 0o644, Size: n, ModTime: e.now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.Copy(e.tw, tmp); err != nil {
		return err
	}
	e.m.DatabaseBytes = n
	e.add(DumpName, n, h.Sum(nil))
	return nil
}

func (e *exporter) add(name string, size int64, sum []byte) {
	e.m.Files++
	e.m.Bytes += size
	e.m.Entries = append(e.m.Entries, ManifestEntry{Path: name, Size: size, SHA256: hex.EncodeToString(sum)})
}

func (e *exporter) dir(name string, mode fs.FileMode) error {
	return e.tw.WriteHeader(&tar.Header{Name: name + "/", Mode: int64(mode.Perm()), ModTime: e.now, Typeflag: tar.TypeDir, Format: tar.FormatPAX})
}

// tree writes the contents of the directory dir as name/…; depth bounds
// followed links.
func (e *exporter) tree(dir, name string, depth int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	for _, ent := range ents {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		p, n := filepath.Join(dir, ent.Name()), path.Join(name, ent.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil || depth > 8 || !e.followable(target) {
				e.m.Skipped = append(e.m.Skipped, n+" (a link out of the site's files)")
				continue
			}
			if fi, err = os.Stat(target); err != nil {
				return err
			}
			p = target
			depth++
		}
		switch {
		case fi.IsDir():
			if err := e.dir(n, fi.Mode()); err != nil {
				return err
			}
			if err := e.tree(p, n, depth); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := e.file(p, n, fi); err != nil {
				return err
			}
		default:
			e.m.Skipped = append(e.m.Skipped, n+" (not a regular file)")
		}
	}
	return nil
}

func (e *exporter) followable(target string) bool {
	for _, r := range e.follow {
		if r != "" && (target == r || strings.HasPrefix(target, strings.TrimSuffix(r, "/")+"/")) {
			return true
		}
	}
	return false
}

func (e *exporter) file(p, name string, fi fs.FileInfo) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := e.tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(e.tw, h), io.LimitReader(f, fi.Size()))
	if err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	if n != fi.Size() {
		return fmt.Errorf("export %s: it shrank while being read (%d of %d bytes)", name, n, fi.Size())
	}
	e.add(name, n, h.Sum(nil))
	return nil
}

type countWriter struct {
	w    io.Writer
	n    int64
	last int64
	fn   func(int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.fn != nil && c.n-c.last >= 8<<20 {
		c.last = c.n
		c.fn(c.n)
	}
	return n, err
}

// ReadManifest reads the manifest of an exported archive at file (nil,
// nil for an archive without one: not made by Export).
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrBroken, err)
	}
	return &m, nil
}
