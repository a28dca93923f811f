package pooler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
)

// Errors the pooler answers itself.
var (
	errAccountClosed = errors.New("pooler: account closed")
	// errLost: the backend went away while the statement may have run.
	errLost = mysql.NewError(2013, "Lost connection to MySQL server during query")
)

// session is one client connection.
type session struct {
	p    *Pooler
	acct *account
	nc   *hostConn
	c    *server.Conn
	caps uint32 // client capabilities that key backends

	collation uint8
	base      []sqlscan.Assignment // the server's session defaults at login (Pooler.base)
	sets      []sqlscan.Assignment // tracked SETs, last of each name
	state     sqlscan.State        // of collation and sets, while stateOK
	stateOK   bool

	b        *backend  // attached backend: pinned, in a transaction, or held
	lb       *backend  // the backend left lingering (linger.go); maybe taken since
	turn     time.Time // when the session took its backend from the pools (linger.go)
	pinned   string    // why b is pinned for life ("" not pinned)
	hold     bool      // keep b through the next statement
	txWrote  bool      // the open transaction wrote
	lastGTID string    // the session's last write, for read-your-writes

	killed atomic.Bool
}

func (s *session) kill() {
	s.killed.Store(true)
	s.nc.Close()
}

// state builds the session's tracked state afresh (States are never
// shared between a session and a backend).
func stateOf(coll uint8, base, sets []sqlscan.Assignment) sqlscan.State {
	st := sqlscan.NewState(coll)
	st.Apply(base)
	st.Apply(sets)
	return st
}

// want is the session's tracked state. (Made once per change of sets; a
// State is never changed in place once made, so backends may share it.)
func (s *session) want() sqlscan.State {
	if !s.stateOK {
		s.state = stateOf(s.collation, s.base, slices.Clone(s.sets))
		s.stateOK = true
	}
	return s.state
}

// compact keeps the last assignment of each name, in order.
func compact(sets []sqlscan.Assignment) []sqlscan.Assignment {
	seen := map[string]bool{}
	out := make([]sqlscan.Assignment, 0, len(sets))
	for i := len(sets) - 1; i >= 0; i-- {
		if !seen[sets[i].Name] {
			seen[sets[i].Name] = true
			out = append(out, sets[i])
		}
	}
	slices.Reverse(out)
	return out
}

// handle serves one client connection.
func (p *Pooler) handle(ctx context.Context, nc net.Conn) {
	host := "localhost"
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		host = ta.IP.String()
	}
	hc := &hostConn{Conn: nc, host: host, capturing: true}
	s := &session{p: p, nc: hc}
	h := &handshakeHandler{}
	cr := &credentials{p: p, hc: hc, h: h, sess: s, ctx: ctx}
	c, err := p.mysqlServer(p.serverVersion(ctx)).NewCustomizedConn(hc, cr, h)
	if err != nil {
		p.unregister(s)
		nc.Close()
		return
	}
	hc.mu.Lock()
	hc.capturing = false
	hc.lastWrite, hc.read = nil, nil
	hc.mu.Unlock()
	s.c = c
	s.caps = c.Capability() & capsKey
	defer func() {
		s.detach(true)
		p.unregister(s)
		c.Close()
	}()
	if s.killed.Load() { // the account went away during the handshake
		return
	}
	s.loop(ctx)
}

// loop serves commands until the client leaves.
func (s *session) loop(ctx context.Context) {
	for {
		s.c.ResetSequence()
		pkt, err := s.c.ReadPacket()
		if err != nil || len(pkt) == 0 || s.killed.Load() {
			return
		}
		if err := s.command(ctx, pkt); err != nil {
			s.p.log.Debug("pooler: client session ends", "user", s.acct.User, "err", err)
			return
		}
		if s.killed.Load() {
			return
		}
	}
}

// errQuit ends the session quietly.
var errQuit = errors.New("quit")

// command serves one command; an error ends the session.
func (s *session) command(ctx context.Context, pkt []byte) error {
	switch cmd := pkt[0]; cmd {
	case mysql.COM_QUIT:
		return errQuit
	case mysql.COM_PING:
		return s.writeOK()
	case mysql.COM_INIT_DB:
		if db := string(pkt[1:]); db != s.acct.Database {
			return s.writeErr(mysql.NewDefaultError(mysql.ER_DBACCESS_DENIED_ERROR, s.acct.User, "localhost", db))
		}
		if s.pinned != "" {
			// Its backend may have USEd another database.
			return s.run(ctx, pkt, sqlscan.Stmt{Kind: sqlscan.Use, DB: s.acct.Database})
		}
		return s.writeOK()
	case mysql.COM_RESET_CONNECTION:
		s.detach(true)
		s.sets = nil
		s.stateOK = false
		s.lastGTID = ""
		return s.writeOK()
	case mysql.COM_CHANGE_USER:
		return s.writeErr(mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, "This version of MariaDB doesn't yet support 'COM_CHANGE_USER through the connection pooler'"))
	case mysql.COM_QUERY:
		// (pkt is this command's alone and never written: the query
		// and what Scan keeps of it share its bytes.)
		q := unsafe.String(unsafe.SliceData(pkt[1:]), len(pkt)-1)
		if ok, err := s.stateRead(q); ok || err != nil {
			return err
		}
		st := sqlscan.Scan(q)
		if s.deferSet(st) {
			return s.writeOK()
		}
		return s.run(ctx, pkt, st)
	case mysql.COM_STMT_PREPARE:
		return s.run(ctx, pkt, sqlscan.Stmt{Kind: sqlscan.Other, Pin: "prepared statement"})
	case mysql.COM_STMT_EXECUTE, mysql.COM_STMT_FETCH, mysql.COM_STMT_RESET, mysql.COM_STMT_CLOSE, mysql.COM_STMT_SEND_LONG_DATA:
		if s.pinned == "" {
			if cmd == mysql.COM_STMT_CLOSE || cmd == mysql.COM_STMT_SEND_LONG_DATA {
				return nil // no response
			}
			return s.writeErr(mysql.NewDefaultError(mysql.ER_UNKNOWN_STMT_HANDLER, 0, "mysqld_stmt_"+stmtCmdName(cmd)))
		}
		return s.run(ctx, pkt, sqlscan.Stmt{Kind: sqlscan.Other, Pin: "prepared statement"})
	case mysql.COM_FIELD_LIST, mysql.COM_STATISTICS:
		return s.run(ctx, pkt, sqlscan.Stmt{Kind: sqlscan.Show, Read: false})
	case mysql.COM_SET_OPTION:
		return s.run(ctx, pkt, sqlscan.Stmt{Kind: sqlscan.Other, Pin: "COM_SET_OPTION"})
	default:
		return s.writeErr(mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "Unknown command"))
	}
}

// deferSet records a SET that cannot fail in the session's state without
// running it, when the session holds no backend: the state is replayed on
// the backend of its next statement (or given to it with COM_CHANGE_USER),
// as any tracked SET is; false: st must run. A SET cannot fail when it
// sets only known character sets (Assignment.KnownNames) and values the
// server gave a new session (its sql_mode, in s.base). WordPress sets its
// character set twice and its sql_mode once as a request's first
// statements, each a round trip to the server and, on a busy shard, a
// backend taken over.
func (s *session) deferSet(st sqlscan.Stmt) bool {
	if st.Kind != sqlscan.Set || st.Pin != "" || len(st.Sets) == 0 || s.b != nil || s.pinned != "" {
		return false
	}
	for _, a := range st.Sets {
		if !a.KnownNames() && !slices.Contains(s.base, a) {
			return false
		}
	}
	s.sets = compact(append(s.sets, st.Sets...))
	s.stateOK = false
	return true
}

func stmtCmdName(cmd byte) string {
	switch cmd {
	case mysql.COM_STMT_EXECUTE:
		return "execute"
	case mysql.COM_STMT_FETCH:
		return "fetch"
	default:
		return "reset"
	}
}

// status is the server status the client sees in answers the pooler
// makes itself.
func (s *session) status() uint16 {
	if s.b != nil {
		return s.b.status
	}
	return mysql.SERVER_STATUS_AUTOCOMMIT
}

func (s *session) writeOK() error {
	st := s.status()
	return s.c.WritePacket([]byte{0, 0, 0, 0, mysql.OK_HEADER, 0, 0, byte(st), byte(st >> 8), 0, 0})
}

func (s *session) writeErr(e *mysql.MyError) error {
	data := make([]byte, 4, 16+len(e.Message))
	data = append(data, mysql.ERR_HEADER, byte(e.Code), byte(e.Code>>8), '#')
	state := e.State
	if len(state) != 5 {
		state = "HY000"
	}
	data = append(data, state...)
	data = append(data, e.Message...)
	return s.c.WritePacket(data)
}

// detach lets go of the attached backend: back to the pool when it is
// clean, closed when it holds state of this session or always is true.
func (s *session) detach(closeDirty bool) {
	s.unlinger()
	b := s.b
	if b == nil {
		return
	}
	s.b = nil
	s.hold = false
	dirty := s.pinned != "" || b.inTx()
	if s.pinned != "" {
		s.setPinned("")
	}
	if dirty && closeDirty {
		b.pool.discard(b)
		return
	}
	b.pool.put(b)
}

func (s *session) setPinned(why string) {
	was := s.pinned != ""
	s.pinned = why
	is := why != ""
	if was == is {
		return
	}
	d := 1
	if !is {
		d = -1
	}
	s.p.mu.Lock()
	s.p.stats.PinnedSessions += d
	s.acct.pinned += d
	s.p.mu.Unlock()
}

// loseBackend closes the attached backend after a failure.
func (s *session) loseBackend() {
	b := s.b
	s.b = nil
	s.hold = false
	if s.pinned != "" {
		s.setPinned("")
	}
	if b != nil {
		b.pool.discard(b)
	}
}

// backendError is the client's error when no backend could be had.
func (s *session) backendError(err error) *mysql.MyError {
	var busy errBackendsBusy
	switch {
	case errors.As(err, &busy):
		s.p.mu.Lock()
		s.acct.refused++
		s.p.mu.Unlock()
		return mysql.NewError(mysql.ER_TOO_MANY_USER_CONNECTIONS,
			fmt.Sprintf("User %s already has more than 'max_user_connections' active connections (all %d backend connections of the pooler busy)", s.acct.User, s.acct.MaxBackends))
	case errors.Is(err, errAccountClosed):
		return mysql.NewError(1927, "Connection was killed")
	}
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me
	}
	return mysql.NewError(2002, fmt.Sprintf("Can't connect to the database server through the pooler (%v)", err))
}
