package pooler

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Backends change hands between accounts with COM_CHANGE_USER: a statement
// of an account with no idle backend takes the shard's least recently used
// idle backend of another account (same server, same capabilities) and
// logs it in again as its own user, instead of opening a connection. The
// server authenticates the new user as at connect time (its password, its
// grants, its MAX_USER_CONNECTIONS) and resets the session as a new
// connection's: user variables, temporary tables, prepared statements,
// locks and any transaction of the previous user are gone, the session
// variables are the server's defaults again. Only clean backends are ever
// idle (a pinned or dirty one is closed), so nothing of one site reaches
// another either way. go-mysql's client has no COM_CHANGE_USER; it is
// written here (changeUser), with the handshake's scramble read from the
// bytes the dialled connection received (saltConn).

// saltConn records what a backend connection reads until recording stops:
// the server's greeting, whose scramble COM_CHANGE_USER may need.
type saltConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	buf []byte
}

func (c *saltConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if c.on && n > 0 && len(c.buf) < 4096 {
		c.buf = append(c.buf, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

// greeting stops recording and returns the greeting's scramble.
func (c *saltConn) greeting() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	salt, _ := greetingSalt(c.buf)
	c.buf = nil
	return salt
}

// greetingSalt reads the 20-byte scramble of a Protocol::HandshakeV10
// packet (raw, with its 4-byte header).
func greetingSalt(raw []byte) ([]byte, error) {
	if len(raw) < 4 {
		return nil, errors.New("pooler: short greeting")
	}
	n := int(raw[0]) | int(raw[1])<<8 | int(raw[2])<<16
	if len(raw) < 4+n {
		return nil, errors.New("pooler: short greeting")
	}
	d := raw[4 : 4+n]
	if len(d) < 1 || d[0] != 10 {
		return nil, errors.New("pooler: not a v10 greeting")
	}
	pos := 1
	end := bytes.IndexByte(d[pos:], 0)
	if end < 0 {
		return nil, errors.New("pooler: bad greeting")
	}
	pos += end + 1 + 4 // server version, connection id
	if len(d) < pos+8+1+2+1+2+2+1+10+12 {
		return nil, errors.New("pooler: greeting without a full scramble")
	}
	salt := append([]byte(nil), d[pos:pos+8]...)
	pos += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
	return append(salt, d[pos:pos+12]...), nil
}

// changeUser logs backend b in as pl's account with collation coll and
// resets it to a fresh connection's state. An error leaves b unusable (the
// caller closes it). It writes and reads through the pooler's raw packet
// I/O (rawio.go: b's reused buffers, no allocation of its own), as a
// statement does: a takeover is a handful of statements' worth on a busy
// shard, two of its writes and reads.
func (pl *pool) changeUser(b *backend, coll uint8) error {
	a := pl.acct
	pkt := append(b.wbuf[:0], 0, 0, 0, 0, mysql.COM_CHANGE_USER)
	pkt = append(pkt, a.User...)
	pkt = append(pkt, 0)
	var auth [sha1.Size]byte
	ans := scramble(auth[:0], b.salt, a.Password)
	pkt = append(pkt, byte(len(ans)))
	pkt = append(pkt, ans...)
	pkt = append(pkt, a.Database...)
	pkt = append(pkt, 0)
	pkt = append(pkt, coll, 0)
	pkt = append(pkt, mysql.AUTH_NATIVE_PASSWORD...)
	pkt = append(pkt, 0)
	pkt = append(pkt, 0) // no connection attributes
	b.wbuf = pkt
	b.c.ResetSequence()
	if err := b.c.WritePacket(pkt); err != nil {
		return err
	}
	b.seq = b.c.Sequence
	for range 2 {
		d, err := b.readPacket()
		if err != nil {
			return err
		}
		switch {
		case len(d) > 0 && d[0] == mysql.OK_HEADER:
			var r result
			r.okPacket(d)
			b.status = mysql.SERVER_STATUS_AUTOCOMMIT
			if r.hasStatus {
				b.status = r.status
			}
			b.state = pl.p.freshState(pl.replica, coll)
			b.reused = false
			return nil
		case isErrPacket(d):
			return b.c.HandleErrorPacket(slices.Clone(d))
		case len(d) > 0 && d[0] == mysql.EOF_HEADER:
			// Auth switch: the server sends a new scramble (MariaDB
			// does on every change after the first login).
			plugin, rest, ok := bytes.Cut(d[1:], []byte{0})
			if !ok || string(plugin) != mysql.AUTH_NATIVE_PASSWORD {
				return fmt.Errorf("pooler: change user: server asks for auth plugin %q", plugin)
			}
			salt := bytes.TrimSuffix(rest, []byte{0})
			if len(salt) != 20 {
				return fmt.Errorf("pooler: change user: %d-byte scramble", len(salt))
			}
			b.salt = append(b.salt[:0], salt...)
			reply := append(b.wbuf[:0], 0, 0, 0, 0)
			reply = scramble(reply, b.salt, a.Password)
			b.wbuf = reply
			b.c.Sequence = b.seq
			if err := b.c.WritePacket(reply); err != nil {
				return err
			}
			b.seq = b.c.Sequence
		default:
			return fmt.Errorf("pooler: change user: unexpected answer 0x%02x", d[0])
		}
	}
	return errors.New("pooler: change user: no answer")
}

// scramble appends mysql_native_password's answer to salt for password
// (SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))), 20 bytes; none
// for an empty password) to dst, as go-mysql's CalcPassword computes it,
// without its allocations.
func scramble(dst, salt []byte, password string) []byte {
	if password == "" {
		return dst
	}
	stage1 := sha1.Sum([]byte(password))
	stage2 := sha1.Sum(stage1[:])
	var in [64]byte
	s := sha1.Sum(append(append(in[:0], salt...), stage2[:]...))
	for i := range s {
		s[i] ^= stage1[i]
	}
	return append(dst, s[:]...)
}
