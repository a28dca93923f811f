package pooler

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
)

// fallbackVersion is announced while the primary's real version is not
// known (it was never reached).
const fallbackVersion = "5.5.5-10.11.0-MariaDB"

// learnVersion records the primary's server version.
func (p *Pooler) learnVersion(v string) {
	if v == "" {
		return
	}
	p.mu.Lock()
	p.version = v
	p.mu.Unlock()
}

// serverVersion is the primary's version, probed from its greeting once.
func (p *Pooler) serverVersion(ctx context.Context) string {
	p.mu.Lock()
	v := p.version
	p.mu.Unlock()
	if v != "" {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, p.cfg.Primary.Network, p.cfg.Primary.Addr)
	if err != nil {
		return fallbackVersion
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var hdr [4]byte
	if _, err := readFull(c, hdr[:]); err != nil {
		return fallbackVersion
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	body := make([]byte, n)
	if _, err := readFull(c, body); err != nil || len(body) < 2 || body[0] != 10 {
		return fallbackVersion
	}
	end := bytes.IndexByte(body[1:], 0)
	if end < 0 {
		return fallbackVersion
	}
	v = string(body[1 : 1+end])
	p.learnVersion(v)
	return v
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// mysqlServer returns the go-mysql server settings for a version.
func (p *Pooler) mysqlServer(version string) *server.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil || p.srvVersion != version {
		p.srv = server.NewServer(version, backendCollationID, mysql.AUTH_NATIVE_PASSWORD, nil, nil)
		p.srvVersion = version
	}
	return p.srv
}

// hostConn is a client connection as the handshake sees it: its remote
// address prints as MariaDB names the client's host ("localhost" for the
// Unix socket), and it keeps the handshake's bytes so the pooler can check
// the password itself before answering a database or limit error (go-mysql
// asks for the database before it checks the password).
type hostConn struct {
	net.Conn
	host string

	mu        sync.Mutex
	capturing bool
	lastWrite []byte
	read      []byte

	holding bool
	pending []byte
	wrote   bool // part of the held answer was written already
}

type hostAddr string

func (a hostAddr) Network() string { return "mysql" }
func (a hostAddr) String() string  { return string(a) }

func (c *hostConn) RemoteAddr() net.Addr { return hostAddr(c.host) }

func (c *hostConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.capturing {
		patchStatus(b)
		c.lastWrite = append(c.lastWrite[:0], b...)
		c.read = c.read[:0]
	}
	c.mu.Unlock()
	if c.holding {
		// Gather the answer's packets (one write per 64 KiB, not per
		// packet), always keeping the last one back until flush.
		if len(c.pending) > 0 && len(c.pending)+len(b) > holdBuffer {
			_, err := c.Conn.Write(c.pending)
			c.pending = c.pending[:0]
			c.wrote = true
			if err != nil {
				return 0, err
			}
		}
		c.pending = append(c.pending, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// appendPacket adds one packet (payload d, under 16 MiB, with sequence
// number seq) to the held answer, as Write would with header and payload
// in one buffer, without building that buffer first.
func (c *hostConn) appendPacket(seq uint8, d []byte) error {
	if len(c.pending) > 0 && len(c.pending)+4+len(d) > holdBuffer {
		_, err := c.Conn.Write(c.pending)
		c.pending = c.pending[:0]
		c.wrote = true
		if err != nil {
			return err
		}
	}
	n := len(d)
	c.pending = append(c.pending, byte(n), byte(n>>8), byte(n>>16), seq)
	c.pending = append(c.pending, d...)
	return nil
}

// reservePacket adds the header of a packet of n bytes (under 16 MiB,
// sequence number seq) to the held answer and returns the room for its
// payload, which the caller fills.
func (c *hostConn) reservePacket(seq uint8, n int) ([]byte, error) {
	if len(c.pending) > 0 && len(c.pending)+4+n > holdBuffer {
		_, err := c.Conn.Write(c.pending)
		c.pending = c.pending[:0]
		c.wrote = true
		if err != nil {
			return nil, err
		}
	}
	c.pending = append(c.pending, byte(n), byte(n>>8), byte(n>>16), seq)
	c.pending = growLen(c.pending, n)
	return c.pending[len(c.pending)-n:], nil
}

// holdBuffer is how much of an answer hostConn gathers before it writes.
const holdBuffer = 64 << 10

// hold gathers an answer's packets and keeps the last one back until
// flush, so the pooler's bookkeeping (backend back in its pool, pins, counters) is done
// before the client sees the answer end. Only the session's goroutine
// writes.
func (c *hostConn) hold() { c.holding, c.wrote = true, false }

// flush writes what hold kept back.
func (c *hostConn) flush() error {
	c.holding = false
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	if cap(c.pending) > 4*holdBuffer {
		c.pending = nil // a large answer's buffer is not kept
	} else {
		c.pending = c.pending[:0]
	}
	return err
}

func (c *hostConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if c.capturing {
		c.read = append(c.read, b[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

// clientAuth is what the captured handshake says: the scramble the client
// answered and its answer.
type clientAuth struct {
	salt, auth []byte
	collation  uint8
	caps       uint32
}

// captured parses the last greeting (or auth switch request) written and
// the response read after it.
func (c *hostConn) captured() (clientAuth, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ca clientAuth
	w, r := c.lastWrite, c.read
	if len(w) < 5 || len(r) < 4 {
		return ca, fmt.Errorf("pooler: handshake not captured")
	}
	w, r = w[4:], r[4:]
	switch w[0] {
	case 10: // greeting
		i := bytes.IndexByte(w[1:], 0)
		if i < 0 {
			return ca, fmt.Errorf("pooler: bad greeting")
		}
		pos := 1 + i + 1 + 4
		if len(w) < pos+8+1+18+12 {
			return ca, fmt.Errorf("pooler: bad greeting")
		}
		ca.salt = append(append([]byte{}, w[pos:pos+8]...), w[pos+8+1+18:pos+8+1+18+12]...)
		// Handshake response.
		if len(r) < 32 {
			return ca, fmt.Errorf("pooler: short handshake response")
		}
		caps := binary.LittleEndian.Uint32(r[:4])
		ca.caps = caps
		ca.collation = r[8]
		pos = 32
		i = bytes.IndexByte(r[pos:], 0)
		if i < 0 {
			return ca, fmt.Errorf("pooler: bad handshake response")
		}
		pos += i + 1
		if pos >= len(r) {
			return ca, nil
		}
		switch {
		case caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
			s, _, _, err := mysql.LengthEncodedString(r[pos:])
			if err != nil {
				return ca, fmt.Errorf("pooler: bad auth data: %w", err)
			}
			ca.auth = s
		default:
			n := int(r[pos])
			if pos+1+n > len(r) {
				return ca, fmt.Errorf("pooler: bad auth data")
			}
			ca.auth = r[pos+1 : pos+1+n]
		}
	case 0xfe: // auth switch request: plugin name NUL, 20 bytes scramble
		i := bytes.IndexByte(w[1:], 0)
		if i < 0 || len(w) < 1+i+1+20 {
			return ca, fmt.Errorf("pooler: bad auth switch")
		}
		ca.salt = w[1+i+1 : 1+i+1+20]
		ca.auth = r
	default:
		return ca, fmt.Errorf("pooler: unexpected handshake packet")
	}
	ca.salt = append([]byte{}, ca.salt...)
	ca.auth = append([]byte{}, ca.auth...)
	return ca, nil
}

// handshakeHandler is the go-mysql Handler of the handshake: it records
// the database asked for. Commands are served by the session's own loop.
type handshakeHandler struct {
	db    string
	hasDB bool
}

func (h *handshakeHandler) UseDB(db string) error { h.db, h.hasDB = db, true; return nil }
func (h *handshakeHandler) HandleQuery(string) (*mysql.Result, error) {
	return nil, mysql.NewDefaultError(mysql.ER_UNKNOWN_ERROR)
}
func (h *handshakeHandler) HandleFieldList(string, string) ([]*mysql.Field, error) {
	return nil, mysql.NewDefaultError(mysql.ER_UNKNOWN_ERROR)
}
func (h *handshakeHandler) HandleStmtPrepare(string) (int, int, any, error) {
	return 0, 0, nil, mysql.NewDefaultError(mysql.ER_UNKNOWN_ERROR)
}
func (h *handshakeHandler) HandleStmtExecute(any, string, []any) (*mysql.Result, error) {
	return nil, mysql.NewDefaultError(mysql.ER_UNKNOWN_ERROR)
}
func (h *handshakeHandler) HandleStmtClose(any) error             { return nil }
func (h *handshakeHandler) HandleOtherCommand(byte, []byte) error { return nil }

// credentials is the CredentialProvider of one handshake. It checks the
// password itself (the same check go-mysql makes next) so it can answer
// MariaDB's errors in MariaDB's order: a wrong password (1045) before a
// database the account may not use (1044) before its client limit (1226).
type credentials struct {
	p    *Pooler
	hc   *hostConn
	h    *handshakeHandler
	sess *session // registered with its account on success
	ctx  context.Context
}

func (cr *credentials) CheckUsername(string) (bool, error) { return true, nil }

func (cr *credentials) GetCredential(user string) (string, bool, error) {
	ca, err := cr.hc.captured()
	if err != nil {
		return "", false, err
	}
	denied := func() error {
		using := "YES"
		if len(ca.auth) == 0 {
			using = "NO"
		}
		return mysql.NewDefaultError(mysql.ER_ACCESS_DENIED_ERROR, user, cr.hc.host, using)
	}
	cr.p.mu.Lock()
	a := cr.p.accounts[user]
	cr.p.mu.Unlock()
	if a == nil || !bytes.Equal(mysql.CalcPassword(ca.salt, []byte(a.Password)), ca.auth) || (a.Password == "") != (len(ca.auth) == 0) {
		return "", false, denied()
	}
	if cr.h.hasDB && cr.h.db != "" && cr.h.db != a.Database {
		return "", false, mysql.NewDefaultError(mysql.ER_DBACCESS_DENIED_ERROR, user, cr.hc.host, cr.h.db)
	}
	cr.sess.collation = ca.collation
	if err := cr.p.register(a, cr.sess); err != nil {
		return "", false, err
	}
	// With no backend open to the primary (of any account) the server
	// may be down: find out now, so the client's connect fails as it
	// would directly (WordPress then shows its database error page
	// instead of pages with failed queries).
	cr.p.mu.Lock()
	none := cr.p.stats.BackendsPrimary == 0
	cr.p.mu.Unlock()
	if none {
		b, err := a.primary.get(cr.ctx, ca.caps&capsKey, sqlscan.NewState(backendCollationID))
		if err != nil {
			cr.p.unregister(cr.sess)
			var me *mysql.MyError
			if errors.As(err, &me) {
				return "", false, me
			}
			return "", false, mysql.NewError(2002, "Can't connect to the database server through the pooler")
		}
		a.primary.put(b)
	}
	// (After that dial: the first session's base is the server's too.)
	cr.sess.base = cr.p.base(false)
	return a.Password, true, nil
}

// register adds a session to its account unless the account's client
// limit is reached.
func (p *Pooler) register(a *account, s *session) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.closed {
		return mysql.NewDefaultError(mysql.ER_ACCESS_DENIED_ERROR, a.User, "localhost", "YES")
	}
	if len(a.sessions) >= a.MaxClients {
		a.refused++
		return mysql.NewDefaultError(mysql.ER_USER_LIMIT_REACHED, a.User, "max_user_connections", a.MaxClients)
	}
	a.sessions[s] = struct{}{}
	s.acct = a
	p.stats.Clients++
	return nil
}

func (p *Pooler) unregister(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.acct == nil {
		return
	}
	if _, ok := s.acct.sessions[s]; ok {
		delete(s.acct.sessions, s)
		p.stats.Clients--
	}
}

// multiResults are the capabilities the greeting announces besides
// go-mysql's own.
const multiResults = mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS

// patchStatus sets SERVER_STATUS_AUTOCOMMIT in the greeting and in the OK
// that ends the handshake, as MariaDB does (go-mysql sends no status
// there), and announces multiResults in the greeting.
func patchStatus(b []byte) {
	if len(b) < 5 {
		return
	}
	p := b[4:]
	switch p[0] {
	case 10: // greeting: version NUL, id 4, scramble 8, filler, caps 2, charset, status 2, caps' upper 2
		i := bytes.IndexByte(p[1:], 0)
		if pos := 1 + i + 1 + 4 + 8 + 1 + 2 + 1; i >= 0 && pos+2 <= len(p) {
			p[pos] |= byte(mysql.SERVER_STATUS_AUTOCOMMIT)
			if pos+4 <= len(p) {
				// Multiple result sets (a stored procedure's), which
				// relay passes on: a client that saw no
				// CLIENT_MULTI_RESULTS would not ask for it, and
				// MariaDB refuses a CALL returning rows (1312).
				upper := uint16(multiResults >> 16)
				p[pos+2] |= byte(upper)
				p[pos+3] |= byte(upper >> 8)
			}
		}
	case mysql.OK_HEADER: // 0 affected, 0 insert id, status 2, warnings 2
		if len(p) >= 7 && p[1] == 0 && p[2] == 0 {
			p[3] |= byte(mysql.SERVER_STATUS_AUTOCOMMIT)
		}
	}
}
