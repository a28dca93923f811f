package pooler

import (
	"bufio"
	"fmt"
	"io"
	"net"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Raw packet I/O on backend connections.
//
// go-mysql's client reads every packet through two pooled buffers and
// copies it twice; a statement's answer has a packet per column and per
// row. The pooler reads its statements' answers itself instead, straight
// from one buffered reader into the client's held answer (one copy per
// packet, no allocation). go-mysql's client still runs the pooler's own
// commands (the handshake, replayed SETs, COM_CHANGE_USER) and reads
// their answers through the same reader (bufConn), so neither reads
// ahead of the other: the server sends nothing but answers to commands,
// one command at a time, and each reader reads its command's whole
// answer.

// bufConn is a backend's connection with the one buffered reader both
// go-mysql's client and the pooler read from.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func newBufConn(nc net.Conn) *bufConn {
	return &bufConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10)}
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// header reads the next packet's header from b and returns its payload
// length, checking its sequence number.
func (b *backend) header() (int, error) {
	h, err := b.br.Peek(4)
	if err != nil {
		return 0, fmt.Errorf("pooler: backend: %w", err)
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	if h[3] != b.seq {
		// (send looks for "invalid sequence": the server's goodbye.)
		return 0, fmt.Errorf("pooler: backend: invalid sequence %d != %d", h[3], b.seq)
	}
	b.seq++
	b.br.Discard(4)
	return n, nil
}

// readRest reads the rest of a packet whose first part has n bytes
// (its header read) into b.rbuf, joining the parts of a packet of 16 MiB
// or more.
func (b *backend) readRest(n int) ([]byte, error) {
	d := b.rbuf[:0]
	for {
		at := len(d)
		d = growLen(d, n)
		if _, err := io.ReadFull(b.br, d[at:]); err != nil {
			return nil, fmt.Errorf("pooler: backend: %w", err)
		}
		if n < mysql.MaxPayloadLen {
			break
		}
		var err error
		if n, err = b.header(); err != nil {
			return nil, err
		}
	}
	if cap(d) <= 64<<10 {
		b.rbuf = d
	}
	return d, nil
}

// readPacket reads b's next packet (into b.rbuf: valid until the next
// read).
func (b *backend) readPacket() ([]byte, error) {
	n, err := b.header()
	if err != nil {
		return nil, err
	}
	return b.readRest(n)
}

// growLen extends d by n bytes.
func growLen(d []byte, n int) []byte {
	if cap(d)-len(d) < n {
		nd := make([]byte, len(d), len(d)+n+len(d)/2)
		copy(nd, d)
		d = nd
	}
	return d[:len(d)+n]
}

// relayPacket reads b's next packet into the client's held answer (c
// holding), with sequence number seq, and returns its payload there
// (valid until the next packet is added). A packet of 16 MiB or more is
// joined into b.rbuf and returned with big set, not added: the caller
// writes it (go-mysql splits it).
func (b *backend) relayPacket(c *hostConn, seq uint8) (d []byte, big bool, err error) {
	n, err := b.header()
	if err != nil {
		return nil, false, err
	}
	if n >= mysql.MaxPayloadLen {
		d, err := b.readRest(n)
		return d, true, err
	}
	d, err = c.reservePacket(seq, n)
	if err != nil {
		return nil, false, fmt.Errorf("pooler: client: %w", err)
	}
	if _, err := io.ReadFull(b.br, d); err != nil {
		c.pending = c.pending[:len(c.pending)-n-4] // not half a packet to the client
		return nil, false, fmt.Errorf("pooler: backend: %w", err)
	}
	return d, false, nil
}
