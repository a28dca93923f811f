package quietio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// unixPair returns both ends of a Unix socket connection, the accepted
// one wrapped by Wrap.
func unixPair(t *testing.T) (q, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	q = Wrap(c)
	if _, ok := q.(*quietConn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *quietConn", c, q)
	}
	t.Cleanup(func() { q.Close(); peer.Close() })
	return q, peer
}

func TestQuietConn(t *testing.T) {
	t.Run("both ways", func(t *testing.T) {
		q, peer := unixPair(t)
		// More than a Unix socket's buffer: the write waits for the
		// reader through the poller.
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
			got <- b
		}()
		if n, err := q.Write(big); n != len(big) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
		}
		if b := <-got; !bytes.Equal(b, big) {
			t.Fatalf("peer read %d bytes, not what was written", len(b))
		}
		go peer.Write([]byte("hello"))
		buf := make([]byte, 16)
		n, err := io.ReadAtLeast(q, buf, 5)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		if n, err := q.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) = %d, %v", n, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		q, _ := unixPair(t)
		q.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := q.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		var ne net.Error
		if _, err := q.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("Read past the deadline: %v is no net.Error timeout", err)
		}
	})
	t.Run("peer closes", func(t *testing.T) {
		q, peer := unixPair(t)
		peer.Close()
		if _, err := q.Read(make([]byte, 8)); err != io.EOF {
			t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
		}
		// Writing to a closed peer fails (EPIPE) rather than killing
		// the process or hanging.
		var err error
		for range 100 {
			if _, err = q.Write([]byte("x")); err != nil {
				break
			}
		}
		if err == nil {
			t.Fatal("writes to a closed peer kept succeeding")
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" {
			t.Errorf("Write error %v (%T), want a *net.OpError of write", err, err)
		}
	})
	t.Run("close unblocks a read", func(t *testing.T) {
		q, _ := unixPair(t)
		errc := make(chan error, 1)
		go func() {
			_, err := q.Read(make([]byte, 8))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		q.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read on a closed connection: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still blocked after Close")
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if q := Wrap(a); q != a {
			t.Errorf("Wrap(net.Pipe) = %T, want it unwrapped", q)
		}
	})
}
