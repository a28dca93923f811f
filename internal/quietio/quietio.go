// Package quietio reads and writes sockets without waking the Go
// runtime's monitor thread.
//
// The runtime's monitor (sysmon) sleeps for good while every P is idle,
// and any ordinary system call made after that wakes it and restarts its
// 20 µs polling, which lasts a millisecond or more before it backs off.
// aipress is idle between a page's database statements (PHP or MariaDB
// is working) and between the parts of PHP's answer, and each statement
// the pooler relayed then made such a system call: bench-db counted 42 %
// of aipress's context switches in sysmon's sleeps, and ≈ 1.1 ms of
// aipress's CPU per page went with them (docs/database.md, "The runtime's
// monitor thread"). A read or write of a non-blocking socket never
// blocks, so Wrap makes them raw system calls, which the runtime does not
// track, and waits for the socket through the network poller as net.Conn
// does (deadlines and Close keep working: syscall.RawConn). The pooler's
// client and backend connections and the edge's FastCGI connections use
// it. No library does this; it is the few lines below.
package quietio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// quietConn is a socket connection whose Read and Write are raw system
// calls (see above); everything else is the connection's own.
type quietConn struct {
	net.Conn
	rc syscall.RawConn
}

// Wrap returns nc reading and writing through raw system calls, or nc
// itself when it is not a socket the runtime polls (a test's net.Pipe).
func Wrap(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &quietConn{Conn: nc, rc: rc}
}

func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var serr syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until readable
			}
			serr = e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != 0 {
		return 0, c.opError("read", serr)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *quietConn) Write(p []byte) (int, error) {
	var n int
	var serr syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until writable
			}
			serr = e
			return true
		}
		return true
	})
	if err != nil {
		return n, err
	}
	if serr != 0 {
		return n, c.opError("write", serr)
	}
	return n, nil
}

// opError wraps a system call's error as net.Conn's methods do.
func (c *quietConn) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}
