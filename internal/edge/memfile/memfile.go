// Package memfile keeps bytes that are sent many times (a cached page) in a
// sealed anonymous memory file (memfd_create(2)) besides the heap, so that
// the edge's lean HTTP/1.1 path can send them with sendfile(2): the kernel
// then takes the pages as they are instead of copying the bytes from user
// memory for every response, which is what nginx does with files in the
// page cache.
//
// A File is immutable: its memory file is sealed against writes, growth and
// shrinking once filled. Readers of a File may run while it is closed: a
// sendfile(2) already started finishes (the descriptor stays open until it
// returns), a later one fails and the caller falls back to the heap bytes.
package memfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is a byte slice with its memory-file copy.
type File struct {
	b []byte
	f *os.File
}

// New copies nothing: b is kept (and must not change) and written once into
// a new sealed memory file named name (shown in /proc/PID/fd).
func New(name string, b []byte) (*File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfile: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	for off := 0; off < len(b); {
		n, err := unix.Pwrite(fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			_ = f.Close()
			return nil, fmt.Errorf("memfile: write: %w", errors.Join(err, io.ErrShortWrite))
		}
		off += n
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("memfile: seal: %w", err)
	}
	return &File{b: b, f: f}, nil
}

// Bytes returns the bytes (not to be modified).
func (m *File) Bytes() []byte { return m.b }

// Len is the number of bytes.
func (m *File) Len() int { return len(m.b) }

// Close releases the memory file (the heap bytes stay valid). Sends in
// flight finish first.
func (m *File) Close() error { return m.f.Close() }

// Reader returns a reader of the bytes from the start.
func (m *File) Reader() *Reader { return &Reader{m: m} }

// Reader reads a File. It is an io.Reader and an io.WriterTo over the heap
// bytes, and names its unread part as a range of the memory file
// (FileRange) for a writer that can send it with sendfile(2).
type Reader struct {
	m   *File
	off int
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= len(r.m.b) {
		return 0, io.EOF
	}
	n := copy(p, r.m.b[r.off:])
	r.off += n
	return n, nil
}

// WriteTo writes the unread bytes to w in one Write.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.off >= len(r.m.b) {
		return 0, nil
	}
	n, err := w.Write(r.m.b[r.off:])
	r.off += n
	return int64(n), err
}

// FileRange returns the memory file and the range of it not read yet. A
// writer that sends that range itself reports it with Advance.
func (r *Reader) FileRange() (f *os.File, off, n int64) {
	return r.m.f, int64(r.off), int64(len(r.m.b) - r.off)
}

// Advance marks n more bytes as read (sent by the caller from FileRange).
func (r *Reader) Advance(n int64) {
	r.off = min(r.off+int(n), len(r.m.b))
}
