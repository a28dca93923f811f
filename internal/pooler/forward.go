package pooler

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
)

// result sums up a backend's response to a command.
type result struct {
	status             uint16
	hasStatus          bool
	ok                 bool // ended with OK or EOF (not ERR)
	errCode            uint16
	affected, insertID uint64
	warnings           uint16
}

// run runs one command for the session on a backend it chooses.
func (s *session) run(ctx context.Context, pkt []byte, st sqlscan.Stmt) error {
	cmd := pkt[0]
	if s.b != nil && s.b.pool.replica && !st.Read {
		// A held replica backend never runs anything but reads.
		b := s.b
		s.b, s.hold = nil, false
		b.pool.put(b)
	}
	canReplica := st.Read && st.Pin == "" && !st.HoldNext && cmd == mysql.COM_QUERY
	toReplica := s.b == nil && canReplica && s.acct.replica != nil && s.p.cfg.Gate.Usable(s.lastGTID)
	want := s.want()
	for attempt := 0; ; attempt++ {
		attached := s.b != nil
		b := s.b
		if b == nil && attempt == 0 && !toReplica {
			if b = s.reclaim(); b != nil {
				s.p.reclaimed.Add(1)
			}
		}
		if b == nil {
			pl := s.acct.primary
			if toReplica {
				pl = s.acct.replica
			}
			var err error
			b, err = pl.get(ctx, s.caps, want)
			if err != nil {
				if toReplica {
					toReplica = false
					continue
				}
				return s.writeErr(s.backendError(err))
			}
			s.turn = s.p.cfg.Clock()
		}
		lost := func() {
			if attached {
				s.loseBackend()
			} else {
				b.pool.discard(b)
			}
		}
		// Replay the session's state where it differs, unless the
		// statement is a SET that leaves b in the session's next state
		// anyway.
		if !b.state.Same(want) && !b.state.Equal(want) && !s.setCovers(b, st) {
			if err := replay(b, want); err != nil {
				var me *mysql.MyError
				if errors.As(err, &me) && !isConnGone(me.Code) {
					// The server refused a SET it took before:
					// answer it rather than loop.
					b.tainted = true
					if !attached {
						b.pool.put(b)
					}
					return s.writeErr(me)
				}
				lost()
				if !attached && attempt < 2 {
					continue
				}
				if toReplica {
					toReplica = false
					continue
				}
				return s.writeErr(errLost)
			}
			b.state = want
		}
		first, sent, err := send(b, pkt)
		if err == nil && b.reused && !attached && isErrPacket(first) && isConnGone(errCode(first)) {
			err = fmt.Errorf("pooled connection gone: error %d", errCode(first))
			sent = false
		}
		if err != nil {
			lost()
			if !attached && attempt < 2 && (!sent || st.Read) {
				continue
			}
			if toReplica {
				toReplica = false
				continue
			}
			if noResponse(cmd) {
				return nil
			}
			return s.writeErr(errLost)
		}
		b.reused = true
		if noResponse(cmd) {
			s.after(ctx, b, st, result{ok: true, status: b.status, hasStatus: true})
			return nil
		}
		s.nc.hold()
		r, err := s.relay(b, cmd, first)
		if err != nil {
			// Part of an answer may have reached the client: the
			// session cannot go on.
			s.nc.flush()
			lost()
			return err
		}
		if b.pool.replica {
			s.p.queriesReplica.Add(1)
		} else {
			s.p.queriesPrimary.Add(1)
		}
		if r.hasStatus {
			b.status = r.status
		}
		s.after(ctx, b, st, r)
		if cmd == mysql.COM_QUERY {
			s.keepStateRead(pkt[1:], b, r)
		}
		// (Not deferred: a defer in this loop is allocated per
		// statement. Its error shows at the client's next read.)
		s.nc.flush()
		return nil
	}
}

func noResponse(cmd byte) bool {
	return cmd == mysql.COM_STMT_CLOSE || cmd == mysql.COM_STMT_SEND_LONG_DATA
}

// isConnGone: errors a server answers on a connection it killed or is
// shutting down (the statement did not run).
func isConnGone(code uint16) bool {
	return code == 1927 || code == mysql.ER_SERVER_SHUTDOWN || code == mysql.ER_QUERY_INTERRUPTED
}

func isErrPacket(p []byte) bool { return len(p) > 0 && p[0] == mysql.ERR_HEADER }

func errCode(p []byte) uint16 {
	if len(p) < 3 {
		return 0
	}
	return binary.LittleEndian.Uint16(p[1:3])
}

// after updates the session after a command ran on b: tracked state,
// pinning, the attached backend, the last write's GTID.
func (s *session) after(ctx context.Context, b *backend, st sqlscan.Stmt, r result) {
	if st.Kind == sqlscan.Set && st.Sets != nil {
		if r.ok {
			s.sets = compact(append(s.sets, st.Sets...))
			s.stateOK = false
			b.state = s.want()
		} else {
			b.tainted = true // some assignments may have taken
		}
	}
	if st.Pin != "" && s.pinned == "" {
		s.setPinned(st.Pin)
	}
	if st.Kind == sqlscan.Use && r.ok && st.DB != "" && st.DB != s.acct.Database && s.pinned == "" {
		s.setPinned("USE of another database")
	}
	inTx := b.inTx()
	writes := !st.Read && st.Kind != sqlscan.Select && st.Kind != sqlscan.Show && st.Kind != sqlscan.Set &&
		st.Kind != sqlscan.Begin && st.Kind != sqlscan.Use && st.Kind != sqlscan.Rollback
	wrote := false
	if inTx {
		if writes {
			s.txWrote = true
		}
	} else {
		wrote = r.ok && (st.Kind == sqlscan.Commit && s.txWrote || writes && st.Kind != sqlscan.Commit)
		s.txWrote = false
	}
	if wrote && s.acct.replica != nil && !b.pool.replica {
		if res, err := b.c.Execute("SELECT @@last_gtid"); err == nil {
			if g, err := res.GetString(0, 0); err == nil && g != "" {
				s.lastGTID = g
			}
		}
		// (Execute read the status of its own answer.)
		b.status = clientStatus(b)
	}
	hold := st.HoldNext || r.affected > 0 || r.insertID > 0 || r.warnings > 0 || !r.ok
	if s.pinned != "" || inTx || hold {
		s.b = b
		s.hold = hold
		return
	}
	s.b, s.hold = nil, false
	if s.linger(b) {
		s.lb = b
	}
}

// setCovers reports whether st is a SET whose assignments, run on b as it
// is, give b exactly the state the session will have after it: then the
// state need not be replayed first (WordPress's SET NAMES as a request's
// first statement, on a backend another session left with other
// character sets, would otherwise be preceded by a SET NAMES replaying
// the handshake's).
func (s *session) setCovers(b *backend, st sqlscan.Stmt) bool {
	if st.Kind != sqlscan.Set || st.Sets == nil || st.Pin != "" {
		return false
	}
	next := stateOf(s.collation, s.base, compact(append(slices.Clone(s.sets), st.Sets...)))
	return b.state.With(st.Sets).Equal(next)
}

// replay runs the SETs that give b the state want.
func replay(b *backend, want sqlscan.State) error {
	for _, q := range want.Replay(b.state) {
		if _, err := b.c.Execute(q); err != nil {
			return err
		}
	}
	b.status = clientStatus(b)
	return nil
}

// send writes a command to b and reads the first packet of the answer;
// sent says whether the command reached the server's socket.
func send(b *backend, pkt []byte) (first []byte, sent bool, err error) {
	buf := append(append(b.wbuf[:0], 0, 0, 0, 0), pkt...)
	if cap(buf) <= 64<<10 {
		b.wbuf = buf
	}
	b.c.ResetSequence()
	if err := b.c.WritePacket(buf); err != nil {
		return nil, false, err
	}
	if noResponse(pkt[0]) {
		return nil, true, nil
	}
	b.seq = b.c.Sequence // after the command's packets
	first, err = b.readPacket()
	if err != nil {
		if strings.Contains(err.Error(), "invalid sequence") {
			// An answer nobody asked for: the server's goodbye
			// (killed, shutting down) was waiting on the socket.
			return nil, false, err
		}
		return nil, true, err
	}
	return first, true, nil
}

// relay forwards b's answer to cmd, whose first packet is first, to the
// client, and sums it up.
func (s *session) relay(b *backend, cmd byte, first []byte) (result, error) {
	var r result
	p := first
	fwd := func(d []byte) error {
		if s.nc.holding && len(d) < mysql.MaxPayloadLen {
			if err := s.nc.appendPacket(s.c.Sequence, d); err != nil {
				return fmt.Errorf("pooler: client: %w", err)
			}
			s.c.Sequence++
			return nil
		}
		buf := make([]byte, 4+len(d))
		copy(buf[4:], d)
		if err := s.c.WritePacket(buf); err != nil {
			return fmt.Errorf("pooler: client: %w", err)
		}
		return nil
	}
	// next reads the next packet and forwards it to the client: straight
	// into its held answer (rawio.go), which the returned payload is part
	// of until the next packet is read.
	next := func() ([]byte, error) {
		if !s.nc.holding {
			return nil, errors.New("pooler: relay without a held answer")
		}
		d, big, err := b.relayPacket(s.nc, s.c.Sequence)
		if err != nil {
			return nil, err
		}
		if big {
			return d, fwd(d)
		}
		s.c.Sequence++
		return d, nil
	}
	// copyUntilEOF forwards packets up to and including an EOF (or ERR).
	copyUntilEOF := func() error {
		for {
			d, err := next()
			if err != nil {
				return err
			}
			if isEOF(d) {
				r.eof(d)
				return nil
			}
			if isErrPacket(d) {
				r.ok, r.errCode = false, errCode(d)
				return errStop
			}
		}
	}
	switch cmd {
	case mysql.COM_STATISTICS, mysql.COM_SET_OPTION:
		if isErrPacket(p) {
			r.errCode = errCode(p)
		} else {
			r.ok = true
			if isEOF(p) {
				r.eof(p)
			}
		}
		return r, fwd(p)
	case mysql.COM_FIELD_LIST:
		if err := fwd(p); err != nil {
			return r, err
		}
		if isErrPacket(p) {
			r.errCode = errCode(p)
			return r, nil
		}
		if isEOF(p) {
			r.eof(p)
			return r, nil
		}
		if err := copyUntilEOF(); err != nil && err != errStop {
			return r, err
		}
		return r, nil
	case mysql.COM_STMT_PREPARE:
		if err := fwd(p); err != nil {
			return r, err
		}
		if isErrPacket(p) {
			r.errCode = errCode(p)
			return r, nil
		}
		if len(p) < 12 {
			return r, errors.New("pooler: short prepare answer")
		}
		cols := binary.LittleEndian.Uint16(p[5:7])
		params := binary.LittleEndian.Uint16(p[7:9])
		r.warnings = binary.LittleEndian.Uint16(p[10:12])
		r.ok = true
		for _, n := range []uint16{params, cols} {
			if n == 0 {
				continue
			}
			for range n {
				if _, err := next(); err != nil {
					return r, err
				}
			}
			if err := copyUntilEOF(); err != nil {
				return r, err
			}
		}
		r.ok = true
		return r, nil
	case mysql.COM_STMT_FETCH:
		if err := fwd(p); err != nil {
			return r, err
		}
		if isErrPacket(p) {
			r.errCode = errCode(p)
			return r, nil
		}
		if isEOF(p) {
			r.eof(p)
			return r, nil
		}
		if err := copyUntilEOF(); err != nil && err != errStop {
			return r, err
		}
		return r, nil
	}
	// COM_QUERY, COM_STMT_EXECUTE, COM_STMT_RESET: results.
	if err := fwd(p); err != nil {
		return r, err
	}
	for {
		switch {
		case p[0] == mysql.OK_HEADER:
			r.ok = true
			r.okPacket(p)
		case isErrPacket(p):
			r.ok, r.errCode = false, errCode(p)
			return r, nil
		case p[0] == mysql.LocalInFile_HEADER:
			return r, errors.New("pooler: LOAD DATA LOCAL is not supported")
		default:
			n, _, _ := mysql.LengthEncodedInt(p)
			for range n {
				if _, err := next(); err != nil {
					return r, err
				}
			}
			// EOF after the column definitions.
			d, err := next()
			if err != nil {
				return r, err
			}
			if !isEOF(d) {
				return r, errors.New("pooler: no EOF after column definitions")
			}
			r.eof(d)
			r.ok = true
			if cmd == mysql.COM_STMT_EXECUTE && r.status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 {
				return r, nil
			}
			if err := copyUntilEOF(); err == errStop {
				return r, nil
			} else if err != nil {
				return r, err
			}
		}
		if r.status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
			return r, nil
		}
		d, err := next() // (forwarded already)
		if err != nil {
			return r, err
		}
		p = d
	}
}

var errStop = errors.New("stop")

func isEOF(p []byte) bool { return len(p) > 0 && len(p) < 9 && p[0] == mysql.EOF_HEADER }

func (r *result) eof(p []byte) {
	if len(p) >= 5 {
		r.warnings += binary.LittleEndian.Uint16(p[1:3])
		r.status = binary.LittleEndian.Uint16(p[3:5])
		r.hasStatus = true
	}
}

func (r *result) okPacket(p []byte) {
	pos := 1
	n, _, m := mysql.LengthEncodedInt(p[pos:])
	r.affected += n
	pos += m
	if pos >= len(p) {
		return
	}
	id, _, m := mysql.LengthEncodedInt(p[pos:])
	if id != 0 {
		r.insertID = id
	}
	pos += m
	if pos+4 <= len(p) {
		r.status = binary.LittleEndian.Uint16(p[pos:])
		r.hasStatus = true
		r.warnings += binary.LittleEndian.Uint16(p[pos+2:])
	}
}

// clientStatus is the status go-mysql's client read last on b.
func clientStatus(b *backend) uint16 {
	var st uint16
	if b.c.IsAutoCommit() {
		st |= mysql.SERVER_STATUS_AUTOCOMMIT
	}
	if b.c.IsInTransaction() {
		st |= mysql.SERVER_STATUS_IN_TRANS
	}
	return st
}
