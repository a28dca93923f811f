package pooler

import (
	"strings"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/aipress/aipress/internal/pooler/sqlscan"
)

// Answers to reads of the session state.
//
// WordPress reads its session's sql_mode as the third statement of every
// request (`SELECT @@SESSION.sql_mode`, to SET it again without the modes
// it cannot use). The pooler tracks that state (sqlscan.State: the server's
// sql_mode for new sessions, and the session's SETs), so the answer is the
// same for every session whose tracked state is Equal: the pooler keeps the
// last answer a server gave to each such query, with the state of the
// session it was given to, and answers a session with an Equal state
// itself, byte for byte as the server did. The answer holds nothing of the
// site's (no database or table name, no row of a table: a column named
// after the variable and its value), and only queries that read nothing
// but tracked state are kept: stateReads.

// stateReads are the queries answered from the answers kept.
var stateReads = map[string]bool{
	"SELECT @@SESSION.sql_mode": true, // WordPress's wpdb::set_sql_mode
}

// maxAnswer bounds an answer kept.
const maxAnswer = 1024

// answer is a server's whole answer (packets with their headers) to a
// state read, and the tracked state of the session it answered.
type answer struct {
	state sqlscan.State
	caps  uint32
	data  []byte
}

// answers keeps one answer per state read and client capabilities.
type answers struct {
	mu sync.Mutex
	m  map[answerKey]answer
}

type answerKey struct {
	query string
	caps  uint32
}

// get returns the answer to query kept for a session with state and
// caps (nil: none).
func (a *answers) get(query string, caps uint32, state sqlscan.State) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[answerKey{query, caps}]
	if !ok || !(x.state.Same(state) || x.state.Equal(state)) {
		return nil
	}
	return x.data
}

// keep records data, a whole answer to query given to a session with
// state and caps.
func (a *answers) keep(query string, caps uint32, state sqlscan.State, data []byte) {
	if len(data) > maxAnswer {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[answerKey]answer{}
	}
	a.m[answerKey{strings.Clone(query), caps}] = answer{state: state, caps: caps, data: append([]byte(nil), data...)}
}

// stateRead answers a state read from the answers kept; false: the
// statement must run.
func (s *session) stateRead(query string) (bool, error) {
	if !stateReads[query] || s.b != nil || s.pinned != "" {
		return false, nil
	}
	d := s.p.answers.get(query, s.caps, s.want())
	if d == nil {
		return false, nil
	}
	_, err := s.nc.Write(d)
	return true, err
}

// keepStateRead keeps the answer to a state read that ran for the session
// on a backend with the session's state (r: its answer as relay summed it
// up), while the whole answer is still held (s.nc).
func (s *session) keepStateRead(query []byte, b *backend, r result) {
	if !stateReads[string(query)] || !r.ok || r.warnings != 0 || r.affected != 0 || r.insertID != 0 || b.inTx() ||
		r.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0 || s.pinned != "" {
		return
	}
	d := s.nc.pending
	// (The whole answer: nothing written before it, from its first
	// packet, sequence number 1.)
	if len(d) < 4 || d[3] != 1 || s.nc.wrote {
		return
	}
	s.p.answers.keep(string(query), s.caps, s.want(), d)
}
