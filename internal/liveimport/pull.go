package liveimport

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// ListingName is the entry of a pulled archive that records where it
// came from and every file the source had (for a delta: those not in it
// are unchanged, and files of the previous listing missing from this one
// were deleted on the source).
const ListingName = "aipress-live.json"

// Record is ListingName's content.
type Record struct {
	Format int    `json:"format"`
	Source string `json:"source"`
	// Delta: only the files changed since the listing of the previous
	// pull are in the archive; Deleted are the previous listing's files
	// the source no longer has.
	Delta   bool      `json:"delta"`
	Deleted []string  `json:"deleted,omitempty"`
	Listing Listing   `json:"listing"`
	Pulled  time.Time `json:"pulled"`
}

// PullOptions are what Pull takes.
type PullOptions struct {
	DB DB
	// Since, if set, is the listing of the previous pull: only files
	// whose size or mtime changed are written (a delta for a re-sync).
	Since *Listing
	// Scratch is the directory where the dump is spooled ("": the
	// system's temporary directory); the spool is removed.
	Scratch string
	// Progress, if set, is told the step ("dump", "files") and its bytes
	// done and total (0: unknown).
	Progress func(step string, done, total int64)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Pulled is what Pull wrote.
type Pulled struct {
	Source string `json:"source"`
	// Files and Bytes are the files written; Listed every file found.
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`
	Listed    int   `json:"listed"`
	DumpBytes int64 `json:"dump_bytes"`
	// Deleted are the previous listing's files gone from the source.
	Deleted []string `json:"deleted,omitempty"`
	// Skipped are links out of the docroot and other non-files.
	Skipped []string `json:"skipped,omitempty"`
	Listing *Listing `json:"-"`
	Delta   bool     `json:"delta"`
}

// Pull writes the site as a tar.gz to w: database.sql (the dump), the
// files of wp-content (with Since: the changed ones only),
// wp-includes/version.php, and ListingName. The archive is streamed;
// the dump is spooled to a temporary file first (a tar header needs its
// size). On error what was written to w is not a usable archive (the
// gzip stream is not closed): the receiver must see the error too, e.g.
// through io.Pipe's CloseWithError.
func (c *Conn) Pull(ctx context.Context, w io.Writer, opt PullOptions) (*Pulled, error) {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	progress := func(step string, done, total int64) {
		if opt.Progress != nil {
			opt.Progress(step, done, total)
		}
	}
	listing, skipped, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	p := &Pulled{Source: c.src.String(), Listed: len(listing.Files), Skipped: skipped, Listing: listing, Delta: opt.Since != nil}
	files := listing.Files
	if opt.Since != nil {
		var deleted []string
		files, deleted = listing.Changed(opt.Since)
		// Only wp-content is the site's to delete from (a version.php
		// no longer readable is not a deletion).
		for _, d := range deleted {
			if strings.HasPrefix(d, "wp-content/") {
				p.Deleted = append(p.Deleted, d)
			}
		}
	}

	spool, err := os.CreateTemp(opt.Scratch, "aipress-live-dump-*.sql")
	if err != nil {
		return nil, fmt.Errorf("spool the dump: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	cw := &countingWriter{w: spool, fn: func(n int64) { progress("dump", n, 0) }}
	if err := c.Dump(ctx, opt.DB, cw); err != nil {
		return nil, err
	}
	p.DumpBytes = cw.n
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}

	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	mtime := now()
	if err := tw.WriteHeader(&tar.Header{Name: "database.sql", Mode: 0o600, Size: p.DumpBytes, ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, spool); err != nil {
		return nil, fmt.Errorf("archive the dump: %w", err)
	}
	// wp-content always, even when no file of it changed.
	if err := tw.WriteHeader(&tar.Header{Name: "wp-content/", Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}); err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	var done int64
	index := make(map[string]int, len(listing.Files))
	for j, f := range listing.Files {
		index[f.Path] = j
	}
	dirs := map[string]bool{"wp-content/": true}
	buf := make([]byte, 256<<10)
	for i := range files {
		f := &files[i]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := writeDirs(tw, f.Path, dirs, mtime); err != nil {
			return nil, err
		}
		n, err := c.copyFile(tw, f, buf)
		if err != nil {
			return nil, err
		}
		if j, ok := index[f.Path]; ok {
			listing.Files[j] = *f
		}
		done += n
		p.Files++
		p.Bytes += n
		progress("files", done, total)
	}
	// The listing records what was read (a file's size may have changed
	// between the walk and the read).
	rec, err := json.MarshalIndent(Record{Format: 1, Source: p.Source, Delta: p.Delta, Deleted: p.Deleted, Listing: *listing, Pulled: mtime.UTC()}, "", " ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ListingName, Mode: 0o600, Size: int64(len(rec)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(rec); err != nil {
		return nil, err
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, err
	}
	return p, nil
}

// writeDirs writes the directory entries above rel not written yet.
func writeDirs(tw *tar.Writer, rel string, dirs map[string]bool, mtime time.Time) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		d := rel[:i+1]
		if dirs[d] {
			continue
		}
		dirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	return nil
}

// copyFile writes f's tar entry: its size as the open file has it, and
// exactly that many bytes.
func (c *Conn) copyFile(tw *tar.Writer, f *File, buf []byte) (int64, error) {
	r, err := c.sftp.Open(f.Real)
	if err != nil {
		return 0, fmt.Errorf("open %s on %s: %w", f.Path, c.src.Host, err)
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Path, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s on %s changed while it was pulled (no longer a file)", f.Path, c.src.Host)
	}
	f.Size, f.MTime = st.Size(), st.ModTime().Unix()
	mode := int64(0o644)
	if f.Mode&0o111 != 0 {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Name: f.Path, Mode: mode, Size: f.Size, ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(tw, io.LimitReader(r, f.Size), buf)
	if err == nil && n < f.Size {
		err = fmt.Errorf("it shrank while it was pulled (%d of %d bytes): pull again", n, f.Size)
	}
	if err != nil {
		return n, fmt.Errorf("pull %s from %s: %w", f.Path, c.src.Host, err)
	}
	return n, nil
}

type countingWriter struct {
	w  io.Writer
	n  int64
	fn func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.fn != nil {
		c.fn(c.n)
	}
	return n, err
}

// Stream pulls the site (Pull) into send's reader as it is read: the
// archive goes to its receiver (e.g. apiclient's ImportSite or
// ResyncSite with size -1) without landing on this machine's disk. A
// pull that fails ends the reader with its error, so the receiver sees a
// body that breaks off (the API makes nothing of it); the pull's error is
// returned first, else send's.
func (c *Conn) Stream(ctx context.Context, opt PullOptions, send func(io.Reader) error) (*Pulled, error) {
	pr, pw := io.Pipe()
	type result struct {
		p   *Pulled
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := c.Pull(ctx, pw, opt)
		pw.CloseWithError(err)
		done <- result{p, err}
	}()
	serr := send(pr)
	// A receiver that stopped reading early must not leave the pull
	// blocked on the pipe.
	pr.CloseWithError(errors.New("the receiver stopped reading"))
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("pull from %s: %w", c.src.Host, r.err)
	}
	if serr != nil {
		return r.p, serr
	}
	return r.p, nil
}
