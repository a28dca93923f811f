// Package replwatch watches a shard's read replica and tells the pooler
// whether a read may go to it (it implements pooler.ReplicaGate). Every
// Interval it asks the replica for its replication state (SHOW SLAVE
// STATUS, @@gtid_slave_pos) and the primary for its position
// (@@gtid_binlog_pos), as the monitor account, and keeps the answer as one
// immutable snapshot: Usable, called on every routed read, only loads it.
//
// A read may go to the replica when both replication threads run without
// error, the replica is no more than MaxLag behind — by its own
// Seconds_Behind_Master and by how long it has lacked a transaction the
// primary had logged (which also covers a replica whose IO thread has
// fallen behind, where Seconds_Behind_Master says 0) — the observation is
// fresh (a hung replica stops answering: its last answer ages out), and it
// has applied the transaction the reading session wrote last (the GTID the
// pooler passes; read-your-writes). Anything else sends the read to the
// primary.
//
// Hand-written: a few queries and a comparison of GTID positions; there is
// nothing to take from a library.
package replwatch

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/pooler"
)

// Defaults of Config.
const (
	DefaultMaxLag   = time.Second
	DefaultInterval = 200 * time.Millisecond
)

// staleIntervals is how many intervals an observation stays valid by
// default.
const staleIntervals = 5

// maxHistory bounds the primary positions kept to measure lag.
const maxHistory = 4096

// Config configures a Watch.
type Config struct {
	Primary pooler.Backend
	Replica pooler.Backend
	// User and Password are the monitor account (mariadb.RoleMonitor of
	// the primary; it replicates to the replica).
	User     string
	Password string
	// MaxLag is the most a replica may be behind and still take reads
	// (default DefaultMaxLag).
	MaxLag time.Duration
	// Interval is how often the replica and the primary are asked
	// (default DefaultInterval).
	Interval time.Duration
	// StaleAfter is how old the last observation may be and still count
	// (default 5 intervals): a hung replica stops answering.
	StaleAfter time.Duration
	Clock      func() time.Time
	Logger     *slog.Logger
}

// Status is the latest observation.
type Status struct {
	// Healthy: a read without a position requirement may go to the
	// replica (Usable("")), as of ObservedAt.
	Healthy    bool
	ObservedAt time.Time // zero: nothing observed yet
	IORunning  bool
	SQLRunning bool
	// SecondsBehind is the replica's Seconds_Behind_Master (nil: unknown,
	// a thread is stopped).
	SecondsBehind *int64
	// Behind: the replica lacks a transaction the primary has logged;
	// Lag is for how long it has (0 when not Behind).
	Behind     bool
	Lag        time.Duration
	ReplicaPos string // @@gtid_slave_pos
	PrimaryPos string // @@gtid_binlog_pos ("" if the primary did not answer)
	// Err is why the last observation failed or the replica is unusable.
	Err          string
	Observations uint64
}

type snapshot struct {
	Status
	pos gtidPos // ReplicaPos parsed
}

// Watch is a running replica watch.
type Watch struct {
	cfg     Config
	snap    atomic.Pointer[snapshot]
	count   uint64
	history []observed // primary positions the replica has not covered, oldest first
}

type observed struct {
	at  time.Time
	pos gtidPos
}

var _ pooler.ReplicaGate = (*Watch)(nil)

// New returns a watch; Run starts watching.
func New(cfg Config) *Watch {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = staleIntervals * cfg.Interval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watch{cfg: cfg}
}

// Run watches until ctx is done.
func (w *Watch) Run(ctx context.Context) error {
	primary, err := w.open(w.cfg.Primary)
	if err != nil {
		return err
	}
	defer primary.Close()
	replica, err := w.open(w.cfg.Replica)
	if err != nil {
		return err
	}
	defer replica.Close()
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	var wasHealthy bool
	for {
		st := w.observe(ctx, primary, replica)
		if ctx.Err() != nil {
			return nil
		}
		if st.Healthy != wasHealthy {
			wasHealthy = st.Healthy
			if st.Healthy {
				w.cfg.Logger.Info("replica usable for reads", "pos", st.ReplicaPos)
			} else {
				w.cfg.Logger.Warn("replica not usable for reads", "why", st.Err, "lag", st.Lag)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *Watch) open(b pooler.Backend) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = b.Network, b.Addr
	cfg.User, cfg.Passwd = w.cfg.User, w.cfg.Password
	cfg.Timeout = max(w.cfg.StaleAfter, time.Second)
	cfg.AllowNativePasswords = true
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("replwatch: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	return db, nil
}

// observe asks the primary, then the replica, and stores the snapshot.
// The primary first: a replica position that covers what the primary had
// logged was reached by the time the replica answered.
func (w *Watch) observe(ctx context.Context, primary, replica *sql.DB) Status {
	qctx, cancel := context.WithTimeout(ctx, max(w.cfg.StaleAfter, time.Second))
	defer cancel()
	// The primary's position is dated when it was asked for: a lag
	// measured from then is, if anything, too long (the safe side).
	pAt := w.cfg.Clock()
	primaryPos, perr := "", error(nil)
	if err := primary.QueryRowContext(qctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&primaryPos); err != nil {
		perr = err
	}
	rs, rerr := mariadb.ReadReplicaStatus(qctx, replica)
	return w.judge(primaryPos, perr, pAt, rs, rerr, w.cfg.Clock())
}

// judge makes and stores the snapshot of one observation: the primary's
// position (or perr) as of pAt, the replica's state (or rerr) as of now.
func (w *Watch) judge(primaryPos string, perr error, pAt time.Time, rs mariadb.ReplicaStatus, rerr error, now time.Time) Status {
	w.count++
	st := Status{Observations: w.count, ObservedAt: now}
	var ppos gtidPos
	primaryOK := false
	if perr == nil {
		st.PrimaryPos = primaryPos
		if p, err := parseGTIDs(primaryPos); err == nil {
			ppos, primaryOK = p, true
		}
	}
	// Lag: since when the replica has lacked a position the primary had.
	// The primary's positions are kept while the replica does not answer
	// too: back, it is as far behind as they say.
	var rpos gtidPos
	if rerr == nil {
		st.IORunning, st.SQLRunning, st.SecondsBehind, st.ReplicaPos = rs.IORunning, rs.SQLRunning, rs.SecondsBehind, rs.GTIDPos
		if rpos, rerr = parseGTIDs(rs.GTIDPos); rerr != nil {
			rerr = fmt.Errorf("position: %w", rerr)
		}
	}
	if primaryOK && (rerr != nil || !rpos.covers(ppos)) {
		if n := len(w.history); n == 0 || !w.history[n-1].pos.equal(ppos) {
			if n < maxHistory { // full: keep the oldest (the lag only grows)
				w.history = append(w.history, observed{at: pAt, pos: ppos})
			}
		}
	}
	if rerr != nil {
		st.Err = "replica: " + rerr.Error()
		w.store(st, nil)
		return st
	}
	i := 0
	for i < len(w.history) && rpos.covers(w.history[i].pos) {
		i++
	}
	w.history = w.history[i:]
	if len(w.history) > 0 {
		st.Behind = true
		st.Lag = max(now.Sub(w.history[0].at), 0)
	}
	switch {
	case !rs.Configured:
		st.Err = "replica has no primary"
	case rs.LastError != "":
		st.Err = rs.LastError
	case !rs.IORunning || !rs.SQLRunning:
		st.Err = fmt.Sprintf("replication threads: IO running %v, SQL running %v", rs.IORunning, rs.SQLRunning)
	case rs.SecondsBehind == nil:
		st.Err = "replica lag unknown"
	case time.Duration(*rs.SecondsBehind)*time.Second > w.cfg.MaxLag:
		st.Err = fmt.Sprintf("replica %ds behind", *rs.SecondsBehind)
	case st.Lag > w.cfg.MaxLag:
		st.Err = fmt.Sprintf("replica lacks the primary's transactions for %v", st.Lag)
	default:
		st.Healthy = true
	}
	w.store(st, rpos)
	return st
}

func (w *Watch) store(st Status, pos gtidPos) {
	w.snap.Store(&snapshot{Status: st, pos: pos})
}

// Usable reports whether a read may go to the replica: the last
// observation is fresh and healthy and the replica has applied gtid (a
// MariaDB GTID or position such as "0-1-42" or "0-1-42,1-2-7"; "": no
// requirement). It implements pooler.ReplicaGate.
func (w *Watch) Usable(gtid string) bool {
	s := w.snap.Load()
	if s == nil || !s.Healthy {
		return false
	}
	if w.cfg.Clock().Sub(s.ObservedAt) > w.cfg.StaleAfter {
		return false
	}
	if gtid == "" {
		return true
	}
	want, err := parseGTIDs(gtid)
	if err != nil {
		return false
	}
	return s.pos.covers(want)
}

// Status returns the latest observation (zero before the first).
func (w *Watch) Status() Status {
	s := w.snap.Load()
	if s == nil {
		return Status{}
	}
	return s.Status
}

// gtidPos is a GTID position: the sequence number per replication domain
// (the server id does not order transactions; sequence numbers do, within
// a domain, under gtid_strict_mode).
type gtidPos map[uint32]uint64

// parseGTIDs parses "D-S-N[,D-S-N...]" ("" is the empty position).
func parseGTIDs(s string) (gtidPos, error) {
	p := gtidPos{}
	s = strings.TrimSpace(s)
	if s == "" {
		return p, nil
	}
	for _, g := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) != 3 {
			return nil, fmt.Errorf("replwatch: GTID %q: want domain-server-sequence", g)
		}
		d, err1 := strconv.ParseUint(parts[0], 10, 32)
		_, err2 := strconv.ParseUint(parts[1], 10, 32)
		n, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("replwatch: GTID %q: want domain-server-sequence", g)
		}
		if n > p[uint32(d)] {
			p[uint32(d)] = n
		}
	}
	return p, nil
}

// covers reports whether p includes every transaction of q.
func (p gtidPos) covers(q gtidPos) bool {
	for d, n := range q {
		if p[d] < n {
			return false
		}
	}
	return true
}

func (p gtidPos) equal(q gtidPos) bool { return p.covers(q) && q.covers(p) }
