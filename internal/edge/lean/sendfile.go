package lean

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoSendfile means nothing was sent and the caller should copy instead:
// the connection or the file offers no descriptor (the file was closed),
// or the kernel refused sendfile(2) for this file before any byte went.
var errNoSendfile = errors.New("lean: sendfile not possible")

// sendRange sends the buffered header block (c.wbuf) and then n bytes of f
// from off with sendfile(2), without moving f's offset (several
// connections send the same file at once). The header goes with
// MSG_MORE, so that it leaves in the same segment as the body's start
// (nginx's tcp_nopush). It returns the body bytes sent; on errNoSendfile,
// c.wbuf holds what of the header block was not sent.
func (c *conn) sendRange(f *os.File, off, n int64) (int64, error) {
	sc, ok := c.rwc.(syscall.Conn)
	if !ok {
		return 0, errNoSendfile
	}
	dst, err := sc.SyscallConn()
	if err != nil {
		return 0, errNoSendfile
	}
	src, err := f.SyscallConn()
	if err != nil {
		return 0, errNoSendfile
	}
	hdr := c.wbuf
	var sent int64
	var werr error
	// Control holds f's descriptor open (a concurrent Close waits for it).
	cerr := src.Control(func(sfd uintptr) {
		err := dst.Write(func(dfd uintptr) bool {
			for len(hdr) > 0 {
				m, err := unix.SendmsgN(int(dfd), hdr, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case err != nil:
					werr = err
					return true
				}
				hdr = hdr[m:]
			}
			for sent < n {
				o := off + sent
				m, err := unix.Sendfile(int(dfd), int(sfd), &o, int(min(n-sent, 1<<30)))
				if m > 0 {
					sent += int64(m)
				}
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case sent == 0 && (err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP):
					werr = errNoSendfile
					return true
				case err != nil:
					werr = err
					return true
				case m == 0:
					werr = io.ErrUnexpectedEOF // the file is shorter than said
					return true
				}
			}
			return true
		})
		if werr == nil {
			werr = err
		}
	})
	if cerr != nil {
		return 0, errNoSendfile // f closed: nothing was sent
	}
	// What of the header block was not sent stays buffered.
	c.wbuf = append(c.wbuf[:0], hdr...)
	var errno unix.Errno
	if errors.As(werr, &errno) {
		werr = &os.SyscallError{Syscall: "sendfile", Err: werr}
	}
	return sent, werr
}
