package pitr

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"

	"github.com/aipress/aipress/internal/backup/repo"
)

// DefaultFlush is the default Config.Flush.
const DefaultFlush = 60 * time.Second

// Site is a site whose database the log keeps.
type Site struct {
	Name string // the site's name: its segments' repository Site
	UID  string
	DB   string // its database on the server
}

// Config configures a Shipper.
type Config struct {
	// Addr is the primary's host:port (a local server's loopback port).
	Addr string
	// User and Password: an account with REPLICATION SLAVE and BINLOG
	// MONITOR (mariadb.Server.Account(ctx, "replication")); see also
	// SetAccount.
	User, Password string
	// ServerID is the id the shipper registers with as a replica; it must
	// differ from every server's and replica's. Default: derived from
	// StateDir, in [1<<30, 1<<31).
	ServerID uint32
	// StateDir holds state.json (the shipped position); required.
	StateDir string
	// Repo opens the repository segments are written to; required.
	Repo func(ctx context.Context) (*repo.Repo, error)
	// Host is recorded as the segments' Host (the shard's name).
	Host string
	// Flush is how often buffered transactions are shipped (default
	// DefaultFlush).
	Flush time.Duration
	// MaxBuffer ships early when the buffered statements exceed it
	// (default 32 MiB).
	MaxBuffer int
	// WaitCaughtUp bounds how long a periodic flush waits for the stream
	// to reach the server's position (default 10s).
	WaitCaughtUp time.Duration
	Clock        func() time.Time
	Logger       *slog.Logger
}

// state is what state.json keeps.
type state struct {
	// Pos: every transaction up to it is shipped (or not wanted); a
	// restart streams from here.
	Pos string `json:"pos"`
	// Since is where the continuous log began (SegmentMeta.Since).
	Since     string    `json:"since"`
	SinceTime time.Time `json:"since_time"`
	// Log names this continuous log (random, new whenever Since is):
	// positions of another log (another server, or this one after a
	// gap) are not comparable with it.
	Log string `json:"log"`
	// Shipped is, per site uid, the position its last segment was cut at:
	// a transaction it covers is not shipped again after a restart.
	Shipped map[string]string `json:"shipped,omitempty"`
}

// Status is what Flush reports.
type Status struct {
	// Log names the continuous log (SegmentMeta.Log).
	Log string
	// Since is where the continuous log began.
	Since string
	// Through: every transaction committed before it is shipped.
	Through time.Time
	// Pos is the position shipped up to.
	Pos string
}

// Shipper streams the primary's binary log and ships each site's
// transactions to the repository. Create it with New, run it with Run.
type Shipper struct {
	cfg Config
	log *slog.Logger

	flushMu sync.Mutex // one flush at a time

	mu       sync.Mutex
	sites    map[string]Site // by database
	st       state
	loaded   bool
	pos      Pos              // stream position (all complete transactions read)
	buf      map[string][]Txn // by site uid
	bufSites map[string]Site  // by uid
	bufBytes int
	progress chan struct{} // closed and replaced when pos advances
	running  bool
	full     chan struct{}

	sitesSet chan struct{} // closed by the first SetSites

	noFinalFlush bool // tests: die as if killed, without shipping
}

// New returns a Shipper.
func New(cfg Config) (*Shipper, error) {
	if cfg.StateDir == "" || cfg.Repo == nil || cfg.Addr == "" {
		return nil, errors.New("pitr: Config needs Addr, StateDir and Repo")
	}
	if cfg.Flush <= 0 {
		cfg.Flush = DefaultFlush
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 32 << 20
	}
	if cfg.WaitCaughtUp <= 0 {
		cfg.WaitCaughtUp = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ServerID == 0 {
		h := fnv.New32a()
		h.Write([]byte(cfg.StateDir))
		cfg.ServerID = 1<<30 | h.Sum32()&(1<<30-1)
	}
	return &Shipper{cfg: cfg, log: cfg.Logger, sites: map[string]Site{}, buf: map[string][]Txn{}, bufSites: map[string]Site{},
		progress: make(chan struct{}), full: make(chan struct{}, 1), sitesSet: make(chan struct{})}, nil
}

// SetAccount sets (or changes) Config.User and Password, for a shipper
// made before its account exists; the next connection uses them.
func (s *Shipper) SetAccount(user, password string) {
	s.mu.Lock()
	s.cfg.User, s.cfg.Password = user, password
	s.mu.Unlock()
}

func (s *Shipper) account() (user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.User, s.cfg.Password
}

// SetSites names the sites whose databases are logged (the others'
// transactions are dropped). The shard calls it with all its sites before
// it creates their databases.
func (s *Shipper) SetSites(sites []Site) {
	m := make(map[string]Site, len(sites))
	for _, st := range sites {
		m[st.DB] = st
	}
	s.mu.Lock()
	s.sites = m
	select {
	case <-s.sitesSet:
	default:
		close(s.sitesSet)
	}
	s.mu.Unlock()
}

func (s *Shipper) statePath() string { return filepath.Join(s.cfg.StateDir, "state.json") }

func (s *Shipper) loadState() (bool, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pitr: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("pitr: %s: %w", s.statePath(), err)
	}
	s.st = st
	return true, nil
}

// saveState writes the state (the caller holds mu or is the only user).
func (s *Shipper) saveState(st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("pitr: %w", err)
	}
	tmp := s.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("pitr: %w", err)
	}
	if err := os.Rename(tmp, s.statePath()); err != nil {
		return fmt.Errorf("pitr: %w", err)
	}
	return nil
}

// serverPos reads the primary's @@gtid_binlog_pos.
func (s *Shipper) serverPos(ctx context.Context) (Pos, error) {
	cfg := mysql.NewConfig()
	user, pw := s.account()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pw, "tcp", s.cfg.Addr
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var pos string
	var logBin int
	if err := db.QueryRowContext(ctx, "SELECT @@global.log_bin, @@global.gtid_binlog_pos").Scan(&logBin, &pos); err != nil {
		return nil, fmt.Errorf("pitr: read the server's binary log position: %w", err)
	}
	if logBin == 0 {
		return nil, errors.New("pitr: the server's binary log is off (log_bin)")
	}
	return ParsePos(pos)
}

// Run streams and ships until ctx ends (then it ships what it holds,
// within a minute). It starts streaming once SetSites was called (the
// transactions it reads are kept or dropped by the sites it knows). It
// reconnects after errors; it returns only an error it cannot recover
// from (a damaged state file).
func (s *Shipper) Run(ctx context.Context) error {
	select {
	case <-s.sitesSet:
	case <-ctx.Done():
		return nil
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.Flush)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.full:
			}
			if _, err := s.flush(ctx, s.cfg.WaitCaughtUp); err != nil && ctx.Err() == nil {
				s.log.Warn("pitr: ship the binary log", "err", err)
			}
		}
	}()
	backoff := time.Second
	for ctx.Err() == nil {
		start := s.cfg.Clock()
		err := s.stream(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.cfg.Clock().Sub(start) > time.Minute {
			backoff = time.Second
		}
		s.log.Warn("pitr: binary log stream ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	<-done
	if s.noFinalFlush {
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := s.flush(fctx, 0); err != nil {
		s.log.Warn("pitr: ship the binary log at shutdown", "err", err)
	}
	return nil
}

// init loads the state, or starts the log at the server's position.
func (s *Shipper) init(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	ok, err := s.loadState()
	if err != nil {
		return err
	}
	if !ok {
		for {
			p, err := s.serverPos(ctx)
			if err == nil {
				now := s.cfg.Clock().UTC()
				s.st = state{Pos: p.String(), Since: p.String(), SinceTime: now, Log: newLogID(), Shipped: map[string]string{}}
				if err := s.saveState(s.st); err != nil {
					return err
				}
				s.log.Info("pitr: binary log shipping starts", "pos", p.String())
				break
			}
			s.log.Warn("pitr: cannot start the binary log shipping yet", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
	}
	if s.st.Shipped == nil {
		s.st.Shipped = map[string]string{}
	}
	if s.st.Log == "" {
		s.st.Log = newLogID()
	}
	p, err := ParsePos(s.st.Pos)
	if err != nil {
		return fmt.Errorf("pitr: state: %w", err)
	}
	s.mu.Lock()
	s.pos, s.loaded = p, true
	s.mu.Unlock()
	return nil
}

// stream reads the binary log from the current position until an error.
func (s *Shipper) stream(ctx context.Context) error {
	host, portStr, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("pitr: address %q: %w", s.cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("pitr: address %q: %w", s.cfg.Addr, err)
	}
	user, pw := s.account()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.cfg.ServerID, Flavor: gomysql.MariaDBFlavor, Host: host, Port: uint16(port),
		User: user, Password: pw, Charset: "utf8mb4",
		TimestampStringLocation: time.UTC, HeartbeatPeriod: 10 * time.Second, ReadTimeout: 40 * time.Second,
		DisableRetrySync: true, Logger: slog.New(slog.DiscardHandler), Localhost: "aipress-pitr",
	})
	defer syncer.Close()
	s.mu.Lock()
	from := s.pos.String()
	s.mu.Unlock()
	gset, err := gomysql.ParseMariadbGTIDSet(from)
	if err != nil {
		return fmt.Errorf("pitr: position %q: %w", from, err)
	}
	if err := s.checkFormat(ctx); err != nil {
		return err
	}
	streamer, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return s.streamErr(ctx, err)
	}
	tr := &translator{keep: s.keep, names: s.dbNames}
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return s.streamErr(ctx, err)
		}
		c, err := tr.handle(ev)
		if err != nil {
			// Not translatable (format): stop here; the position stays
			// before this transaction, so nothing is skipped silently.
			return err
		}
		if c != nil {
			s.commit(c)
			// Backpressure: while the repository does not take the
			// buffer, stop reading (the server keeps its binary log).
			for s.buffered() > 4*s.cfg.MaxBuffer {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
		}
	}
}

func (s *Shipper) buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bufBytes
}

// checkFormat makes sure the server logs what translation needs.
func (s *Shipper) checkFormat(ctx context.Context) error {
	cfg := mysql.NewConfig()
	user, pw := s.account()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pw, "tcp", s.cfg.Addr
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var format, image, meta string
	if err := db.QueryRowContext(ctx, "SELECT @@global.binlog_format, @@global.binlog_row_image, @@global.binlog_row_metadata").Scan(&format, &image, &meta); err != nil {
		return fmt.Errorf("pitr: read the server's binary log settings: %w", err)
	}
	if format != "ROW" || image != "FULL" || meta != "FULL" {
		return fmt.Errorf("%w: the server logs binlog_format=%s, binlog_row_image=%s, binlog_row_metadata=%s; point-in-time recovery needs ROW, FULL, FULL", errFormat, format, image, meta)
	}
	return nil
}

// streamErr handles a stream error: when the server no longer has the
// position (its binary logs were purged), the log starts again at the
// server's current position and Since records the gap.
func (s *Shipper) streamErr(ctx context.Context, err error) error {
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		p, perr := s.serverPos(ctx)
		if perr != nil {
			return errors.Join(err, perr)
		}
		s.mu.Lock()
		s.pos = p
		s.st.Since, s.st.SinceTime, s.st.Log = p.String(), s.cfg.Clock().UTC(), newLogID()
		st := s.st
		s.mu.Unlock()
		s.log.Warn("pitr: the server no longer has the binary log position; the log restarts (a gap)", "err", err, "pos", p.String())
		return errors.Join(err, s.saveState(st))
	}
	return err
}

func (s *Shipper) keep(db string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sites[db]
	return ok
}

func (s *Shipper) dbNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.sites))
	for db := range s.sites {
		out = append(out, db)
	}
	return out
}

// commit buffers a committed transaction's parts and advances the
// position.
func (s *Shipper) commit(c *committed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(st Site, t Txn) {
		if sp, ok := s.st.Shipped[st.UID]; ok {
			if p, err := ParsePos(sp); err == nil && p.Covers(c.gtid) {
				return // shipped before a restart
			}
		}
		s.buf[st.UID] = append(s.buf[st.UID], t)
		s.bufSites[st.UID] = st
		for _, q := range t.Stmts {
			s.bufBytes += len(q)
		}
	}
	for _, db := range c.order {
		if st, ok := s.sites[db]; ok {
			add(st, *c.parts[db])
		}
	}
	for _, db := range c.barriers {
		if st, ok := s.sites[db]; ok {
			add(st, Txn{GTID: c.gtid.String(), Time: c.time, Barrier: true})
		}
	}
	s.pos.Advance(c.gtid)
	close(s.progress)
	s.progress = make(chan struct{})
	if s.bufBytes > s.cfg.MaxBuffer {
		select {
		case s.full <- struct{}{}:
		default:
		}
	}
}

// Log names the continuous log the shipper ships now ("" before it has
// started): a backup records it beside its dump's position, and Replay
// accepts only segments of that log.
func (s *Shipper) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		return ""
	}
	return s.st.Log
}

// Flush ships everything committed on the server before the call: it
// reads the server's position, waits (until ctx ends) for the stream to
// reach it and ships every site's buffered transactions. A restore calls
// it first. It fails when the shipper is not running.
//
// For each site in mark it also writes a segment without transactions
// that records the coverage (Through): a replay elsewhere (a clone on
// another shard), which knows the log only from the repository, can then
// prove that the log reaches the time even when the site wrote nothing.
func (s *Shipper) Flush(ctx context.Context, mark ...Site) (Status, error) {
	s.mu.Lock()
	running := s.running && s.loaded
	s.mu.Unlock()
	if !running {
		return Status{}, errors.New("pitr: the binary log shipper is not running")
	}
	st, err := s.flush(ctx, -1)
	if err != nil {
		return st, err
	}
	end, err := ParsePos(st.Pos)
	if err != nil {
		return st, err
	}
	for _, site := range mark {
		if err := s.shipSegment(ctx, site, nil, st.Log, st.Since, end, st.Through); err != nil {
			return st, fmt.Errorf("pitr: mark the log's coverage for site %s: %w", site.Name, err)
		}
	}
	return st, nil
}

// flush ships the buffer. wait < 0: wait for the server's position until
// ctx ends (and fail if it is not reached); 0: do not wait; > 0: wait
// that long at most.
func (s *Shipper) flush(ctx context.Context, wait time.Duration) (Status, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var through time.Time
	if wait != 0 {
		t0 := s.cfg.Clock().UTC()
		target, err := s.serverPos(ctx)
		if err == nil {
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if wait > 0 {
				wctx, cancel = context.WithTimeout(ctx, wait)
			}
			err = s.waitFor(wctx, target)
			cancel()
		}
		if err != nil && wait < 0 {
			return Status{}, fmt.Errorf("pitr: the log did not reach the server's position: %w", err)
		}
		if err == nil {
			through = t0
		}
	}
	s.mu.Lock()
	if !s.loaded {
		s.mu.Unlock()
		return Status{}, errors.New("pitr: the binary log shipper has not started")
	}
	end := s.pos.Clone()
	batch, sites := s.buf, s.bufSites
	s.buf, s.bufSites, s.bufBytes = map[string][]Txn{}, map[string]Site{}, 0
	st := s.st
	s.mu.Unlock()

	var errs []error
	failed := map[string][]Txn{}
	for uid, txns := range batch {
		if len(errs) > 0 {
			failed[uid] = txns
			continue
		}
		if err := s.ship(ctx, sites[uid], txns, st.Log, st.Since, end, through); err != nil {
			errs = append(errs, fmt.Errorf("site %s: %w", sites[uid].Name, err))
			failed[uid] = txns
			continue
		}
		s.mu.Lock()
		s.st.Shipped[uid] = end.String()
		cp := s.st
		cp.Shipped = maps(s.st.Shipped)
		s.mu.Unlock()
		if err := s.saveState(cp); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(failed) > 0 {
		// Back in front of what arrived meanwhile, in order.
		for uid, txns := range failed {
			s.buf[uid] = append(txns, s.buf[uid]...)
			s.bufSites[uid] = sites[uid]
			for _, t := range txns {
				for _, q := range t.Stmts {
					s.bufBytes += len(q)
				}
			}
		}
		return Status{}, errors.Join(errs...)
	}
	// Everything up to end is shipped: a restart resumes there. Sites
	// whose segments cover end need no entry any more.
	s.st.Pos = end.String()
	for uid, sp := range s.st.Shipped {
		if p, err := ParsePos(sp); err == nil && end.CoversPos(p) {
			delete(s.st.Shipped, uid)
		}
	}
	cp := s.st
	cp.Shipped = maps(s.st.Shipped)
	if err := s.saveState(cp); err != nil {
		return Status{}, err
	}
	return Status{Log: s.st.Log, Since: s.st.Since, Through: through, Pos: s.st.Pos}, nil
}

func newLogID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// waitFor waits until the stream's position covers target.
func (s *Shipper) waitFor(ctx context.Context, target Pos) error {
	for {
		s.mu.Lock()
		ok := s.pos.CoversPos(target)
		ch := s.progress
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ship writes one site's transactions as a segment snapshot.
func (s *Shipper) ship(ctx context.Context, st Site, txns []Txn, logID, since string, end Pos, through time.Time) error {
	if len(txns) == 0 {
		return nil
	}
	return s.shipSegment(ctx, st, txns, logID, since, end, through)
}

// shipSegment writes a segment (without transactions: a coverage mark).
func (s *Shipper) shipSegment(ctx context.Context, st Site, txns []Txn, logID, since string, end Pos, through time.Time) error {
	r, err := s.cfg.Repo(ctx)
	if err != nil {
		return err
	}
	data, err := encodeTxns(txns)
	if err != nil {
		return err
	}
	m := SegmentMeta{Kind: SegmentKind, Version: SegmentVersion, Site: st.Name, UID: st.UID, DB: st.DB,
		Log: logID, Since: since, End: end.String(), Through: through, Txns: len(txns)}
	if len(txns) > 0 {
		m.FirstGTID, m.LastGTID = txns[0].GTID, txns[len(txns)-1].GTID
		m.FirstTime, m.LastTime = time.Unix(txns[0].Time, 0).UTC(), time.Unix(txns[len(txns)-1].Time, 0).UTC()
	} else {
		// A mark: its times are its coverage's.
		m.FirstTime, m.LastTime = through.Truncate(time.Second).UTC(), through.Truncate(time.Second).UTC()
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: st.Name, Host: s.cfg.Host, Tags: SegmentTags(m), Meta: raw})
	if err != nil {
		return err
	}
	defer b.Abort()
	if _, err := b.AddStream(ctx, StreamName, bytesReader(data)); err != nil {
		return err
	}
	snap, err := b.Commit(ctx)
	if err != nil {
		return err
	}
	s.log.Debug("pitr: log segment shipped", "site", st.Name, "snapshot", snap.ID, "txns", len(txns), "last_gtid", m.LastGTID)
	return nil
}
