package siteport

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrHostile is an archive refused for what an entry would do to the
// disk it is unpacked on; ErrBroken one that cannot be read to its end.
var (
	ErrHostile = errors.New("archive refused")
	ErrBroken  = errors.New("broken archive")
)

// Limits bound what Extract unpacks (0: no bound).
type Limits struct {
	// Bytes is the most the entries may hold together, Files the most
	// entries.
	Bytes int64
	Files int
}

// Extracted is what Extract unpacked.
type Extracted struct {
	// Format is "tar", "tar.gz" or "zip".
	Format string `json:"format"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	// Skipped are entries not unpacked (symlinks and hard links that stay
	// inside the archive, with what they pointed to).
	Skipped []string `json:"skipped,omitempty"`
}

// Sniff returns the format of the archive whose first bytes are head:
// "zip", "gzip" (tar.gz, or a gzip-compressed dump), "tar", or "".
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return "zip"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return "tar"
	}
	return ""
}

// Extract unpacks the archive at file (tar, tar.gz or zip) into the
// existing directory dst, entry by entry, refusing (ErrHostile) an entry
// whose name is absolute or climbs out with "..", a symlink or hard link
// whose target would leave dst, a device or FIFO, and an archive beyond
// lim; a truncated or corrupt archive is ErrBroken. Links that stay
// inside are not made (Extracted.Skipped). progress, if set, is told the
// archive bytes read so far and the archive's size. What was unpacked
// before an error stays in dst: the caller removes dst.
func Extract(ctx context.Context, file, dst string, lim Limits, progress func(done, total int64)) (*Extracted, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open the archive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	x := &extractor{ctx: ctx, root: root, lim: lim, out: &Extracted{}}
	cr := &progressReader{r: f, total: fi.Size(), fn: progress}
	switch Sniff(head[:n]) {
	case "zip":
		x.out.Format = "zip"
		zr, err := zip.NewReader(&progressReaderAt{f: f, pr: cr}, fi.Size())
		if err != nil {
			return nil, fmt.Errorf("%w: not a readable zip file: %v", ErrBroken, err)
		}
		err = x.zip(zr)
		return x.out, err
	case "gzip":
		x.out.Format = "tar.gz"
		zr, err := gzip.NewReader(bufio.NewReaderSize(cr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBroken, err)
		}
		err = x.tar(tar.NewReader(zr))
		if err == nil {
			// The rest of the gzip stream: its checksum and length are
			// checked only at its end.
			if _, cerr := io.Copy(io.Discard, zr); cerr != nil {
				err = brokenGzip(cerr)
			}
		}
		return x.out, err
	case "tar":
		x.out.Format = "tar"
		return x.out, x.tar(tar.NewReader(bufio.NewReaderSize(cr, 1<<20)))
	}
	return nil, fmt.Errorf("%w: %s is neither a tar, a tar.gz nor a zip file", ErrBroken, filepath.Base(file))
}

func brokenGzip(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: the gzip stream ends early (an interrupted download or copy?)", ErrBroken)
	}
	return fmt.Errorf("%w: corrupt gzip data: %v", ErrBroken, err)
}

type extractor struct {
	ctx  context.Context
	root *os.Root
	lim  Limits
	out  *Extracted
}

// clean checks an entry's name and returns it relative to dst ("" for
// the archive's root itself).
func clean(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: entry %q: a NUL in its name", ErrHostile, name)
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) > 1 && n[1] == ':') {
		return "", fmt.Errorf("%w: entry %q has an absolute path", ErrHostile, name)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: entry %q climbs out of the archive with \"..\" (zip-slip)", ErrHostile, name)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// linkInside reports whether a link at rel pointing to target stays
// inside the archive's tree.
func linkInside(rel, target string) bool {
	t := strings.ReplaceAll(target, `\`, "/")
	if target == "" || strings.HasPrefix(t, "/") || (len(t) > 1 && t[1] == ':') {
		return false
	}
	j := path.Clean(path.Join(path.Dir(rel), t))
	return j != ".." && !strings.HasPrefix(j, "../")
}

func (x *extractor) count(size int64) error {
	x.out.Files++
	x.out.Bytes += size
	if x.lim.Files > 0 && x.out.Files > x.lim.Files {
		return fmt.Errorf("%w: more than %d entries", ErrHostile, x.lim.Files)
	}
	if x.lim.Bytes > 0 && x.out.Bytes > x.lim.Bytes {
		return fmt.Errorf("%w: its files hold more than %d bytes (the site's disk limit)", ErrHostile, x.lim.Bytes)
	}
	return x.ctx.Err()
}

func (x *extractor) mkdir(rel string) error {
	if rel == "" {
		return nil
	}
	if err := x.root.MkdirAll(rel, 0o755); err != nil {
		return fmt.Errorf("%w: directory %q: %v", ErrHostile, rel, err)
	}
	return nil
}

// file writes rel from r (size bytes, -1 unknown).
func (x *extractor) file(rel string, r io.Reader, size int64, name string) error {
	if err := x.count(max(size, 0)); err != nil {
		return err
	}
	if err := x.mkdir(path.Dir(rel)); err != nil && path.Dir(rel) != "." {
		return err
	}
	// O_EXCL: an archive naming one file twice, or a file where a
	// directory was, is refused rather than written through.
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrHostile, name, err)
	}
	var lr io.Reader = r
	if x.lim.Bytes > 0 {
		lr = io.LimitReader(r, x.lim.Bytes-x.out.Bytes+max(size, 0)+1)
	}
	n, err := io.Copy(f, lr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if size < 0 {
		x.out.Bytes += n
		if x.lim.Bytes > 0 && x.out.Bytes > x.lim.Bytes {
			return fmt.Errorf("%w: its files hold more than %d bytes (the site's disk limit)", ErrHostile, x.lim.Bytes)
		}
	}
	if err != nil {
		return err
	}
	return nil
}

func (x *extractor) tar(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
				return brokenGzipOrTar(err)
			}
			return fmt.Errorf("%w: %v", ErrBroken, err)
		}
		rel, err := clean(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := x.mkdir(rel); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			if rel == "" {
				return fmt.Errorf("%w: a file entry without a name", ErrHostile)
			}
			if err := x.file(rel, tr, hdr.Size, hdr.Name); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return brokenGzipOrTar(err)
				}
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeLink {
				// A hard link names an entry of the archive, from its root.
				if t, err := clean(target); err != nil || t == "" {
					return fmt.Errorf("%w: hard link %q points outside the archive (%q)", ErrHostile, hdr.Name, target)
				}
				target = "/" + target
				x.out.Skipped = append(x.out.Skipped, rel+" (hard link to "+strings.TrimPrefix(target, "/")+")")
				continue
			}
			if !linkInside(rel, target) {
				return fmt.Errorf("%w: symlink %q points outside the archive (%q)", ErrHostile, hdr.Name, target)
			}
			x.out.Skipped = append(x.out.Skipped, rel+" (symlink to "+target+")")
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		default:
			return fmt.Errorf("%w: entry %q is a device, FIFO or other special file (type %q)", ErrHostile, hdr.Name, hdr.Typeflag)
		}
		if err := x.ctx.Err(); err != nil {
			return err
		}
	}
}

func brokenGzipOrTar(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: the archive ends in the middle of an entry (an interrupted download or copy?)", ErrBroken)
	}
	return brokenGzip(err)
}

func (x *extractor) zip(zr *zip.Reader) error {
	for _, zf := range zr.File {
		rel, err := clean(zf.Name)
		if err != nil {
			return err
		}
		mode := zf.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBroken, zf.Name, err)
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBroken, zf.Name, err)
			}
			if !linkInside(rel, string(target)) {
				return fmt.Errorf("%w: symlink %q points outside the archive (%q)", ErrHostile, zf.Name, target)
			}
			x.out.Skipped = append(x.out.Skipped, rel+" (symlink to "+string(target)+")")
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			if err := x.mkdir(rel); err != nil {
				return err
			}
		case mode.IsRegular():
			if rel == "" {
				return fmt.Errorf("%w: a file entry without a name", ErrHostile)
			}
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBroken, zf.Name, err)
			}
			err = x.file(rel, rc, int64(zf.UncompressedSize64), zf.Name)
			rc.Close()
			if err != nil {
				if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("%w: entry %q: %v", ErrBroken, zf.Name, err)
				}
				return err
			}
		default:
			return fmt.Errorf("%w: entry %q is a device, FIFO or other special file", ErrHostile, zf.Name)
		}
	}
	return nil
}

type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
	last        int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.add(int64(n))
	return n, err
}

func (p *progressReader) add(n int64) {
	p.done += n
	if p.fn != nil && (p.done-p.last >= 8<<20 || p.done >= p.total) {
		p.last = p.done
		p.fn(min(p.done, p.total), p.total)
	}
}

type progressReaderAt struct {
	f  *os.File
	pr *progressReader
}

func (p *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.f.ReadAt(b, off)
	p.pr.add(int64(n))
	return n, err
}
