package replwatch

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/pooler"
)

func TestParseAndCover(t *testing.T) {
	p, err := parseGTIDs("0-1-42,1-2-7")
	if err != nil || p[0] != 42 || p[1] != 7 {
		t.Fatalf("parse = %v, %v", p, err)
	}
	for _, bad := range []string{"0-1", "x-1-2", "0-1-2-3", "0-1-"} {
		if _, err := parseGTIDs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"0-1-42", "0-1-42", true},
		{"0-1-42", "0-1-41", true},
		{"0-1-42", "0-1-43", false},
		{"0-2-50", "0-1-43", true}, // server ids do not order; sequence numbers do
		{"0-1-42", "1-1-1", false}, // a domain the replica has not seen
		{"0-1-42,1-1-3", "0-1-40,1-1-3", true},
		{"", "", true},
		{"", "0-1-1", false},
	} {
		h, _ := parseGTIDs(tc.have)
		w, _ := parseGTIDs(tc.want)
		if h.covers(w) != tc.ok {
			t.Errorf("%q covers %q = %v", tc.have, tc.want, !tc.ok)
		}
	}
}

// Usable's rules on a given observation: health, freshness (by Clock) and
// the session's position.
func TestUsableRules(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	w := New(Config{Interval: 100 * time.Millisecond, Clock: func() time.Time { return now }})
	if w.Usable("") {
		t.Fatal("usable before any observation")
	}
	pos, _ := parseGTIDs("0-1-5")
	w.store(Status{Healthy: true, ObservedAt: now}, pos)
	if !w.Usable("") || !w.Usable("0-1-5") || !w.Usable("0-1-4") {
		t.Fatal("a healthy replica at 0-1-5 is not usable")
	}
	if w.Usable("0-1-6") {
		t.Fatal("usable for a transaction the replica has not applied")
	}
	if w.Usable("garbage") {
		t.Fatal("usable for an unparsable position")
	}
	now = now.Add(staleIntervals*100*time.Millisecond + time.Millisecond)
	if w.Usable("") {
		t.Fatal("usable on a stale observation")
	}
	w.store(Status{Healthy: false, ObservedAt: now}, pos)
	if w.Usable("") {
		t.Fatal("usable while unhealthy")
	}
}

// judge's rules on observations: threads, errors, Seconds_Behind_Master,
// and the lag measured against the primary's positions (a replica whose
// IO thread is behind reports Seconds_Behind_Master 0).
func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	zero, five := int64(0), int64(5)
	ok := mariadb.ReplicaStatus{Configured: true, IORunning: true, SQLRunning: true, SecondsBehind: &zero, GTIDPos: "0-1-10"}
	with := func(f func(*mariadb.ReplicaStatus)) mariadb.ReplicaStatus { r := ok; f(&r); return r }
	for _, tc := range []struct {
		name string
		rs   mariadb.ReplicaStatus
		want bool
	}{
		{"healthy", ok, true},
		{"not configured", with(func(r *mariadb.ReplicaStatus) { r.Configured = false }), false},
		{"IO stopped", with(func(r *mariadb.ReplicaStatus) { r.IORunning = false }), false},
		{"SQL stopped", with(func(r *mariadb.ReplicaStatus) { r.SQLRunning = false }), false},
		{"error", with(func(r *mariadb.ReplicaStatus) { r.LastError = "SQL thread: x"; r.LastSQLErrno = 1032 }), false},
		{"lag unknown", with(func(r *mariadb.ReplicaStatus) { r.SecondsBehind = nil }), false},
		{"5s behind", with(func(r *mariadb.ReplicaStatus) { r.SecondsBehind = &five }), false},
	} {
		w := New(Config{})
		if st := w.judge("0-1-10", nil, t0, tc.rs, nil, t0); st.Healthy != tc.want {
			t.Errorf("%s: healthy = %v (%s)", tc.name, st.Healthy, st.Err)
		}
	}
	if st := New(Config{}).judge("", nil, t0, ok, errors.New("refused"), t0); st.Healthy {
		t.Error("healthy when the replica did not answer")
	}

	// The primary moves to 0-1-11 at t0; the replica (reporting 0s
	// behind) stays at 0-1-10.
	w := New(Config{MaxLag: time.Second})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if st := w.judge("0-1-11", nil, at(0), ok, nil, at(10*time.Millisecond)); !st.Healthy || !st.Behind {
		t.Fatalf("just behind: %+v", st)
	}
	if st := w.judge("0-1-12", nil, at(900*time.Millisecond), ok, nil, at(time.Second)); !st.Healthy || st.Lag != time.Second {
		t.Fatalf("1s behind: %+v", st)
	}
	st := w.judge("0-1-12", nil, at(1100*time.Millisecond), ok, nil, at(1200*time.Millisecond))
	if st.Healthy || st.Lag != 1200*time.Millisecond {
		t.Fatalf("1.2s behind, MaxLag 1s: %+v", st)
	}
	// It applies 0-1-11: the lag is now since the primary had 0-1-12.
	caught := with(func(r *mariadb.ReplicaStatus) { r.GTIDPos = "0-1-11" })
	if st := w.judge("0-1-12", nil, at(1300*time.Millisecond), caught, nil, at(1400*time.Millisecond)); !st.Healthy || st.Lag != 500*time.Millisecond {
		t.Fatalf("after catching up to 0-1-11: %+v", st)
	}
	// The replica does not answer while the primary moves on to 0-1-13;
	// back, it is behind since then.
	if st := w.judge("0-1-13", nil, at(1500*time.Millisecond), ok, errors.New("refused"), at(1500*time.Millisecond)); st.Healthy {
		t.Fatalf("replica not answering: %+v", st)
	}
	if st := w.judge("0-1-13", nil, at(2900*time.Millisecond), with(func(r *mariadb.ReplicaStatus) { r.GTIDPos = "0-1-12" }), nil, at(3*time.Second)); st.Healthy || st.Lag != 1500*time.Millisecond {
		t.Fatalf("back after 1.5s without 0-1-13: %+v", st)
	}
	all := with(func(r *mariadb.ReplicaStatus) { r.GTIDPos = "0-1-13" })
	if st := w.judge("", errors.New("primary down"), at(4*time.Second), all, nil, at(4*time.Second)); !st.Healthy || st.Behind || st.Lag != 0 {
		t.Fatalf("caught up, primary not answering: %+v", st)
	}
}

// pair is a real primary and its replica.
type pair struct {
	primary, replica *mariadb.Server
	monUser, monPW   string
}

func startPair(t *testing.T) *pair {
	t.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("mariadb-server not installed (make deps)")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	run := func(s *mariadb.Server) {
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; s.Close() })
		select {
		case <-s.Ready():
		case <-time.After(3 * time.Minute):
			t.Fatal("mariadb not ready")
		}
	}
	p := &pair{primary: &mariadb.Server{Dir: filepath.Join(dir, "primary"), Logger: log}}
	run(p.primary)
	p.replica = &mariadb.Server{Dir: filepath.Join(dir, "replica"), Logger: log, ReplicaOf: p.primary}
	run(p.replica)
	var err error
	if p.monUser, p.monPW, err = p.primary.Account(context.Background(), mariadb.RoleMonitor); err != nil {
		t.Fatal(err)
	}
	p.caughtUp(t)
	return p
}

// caughtUp waits until the replica has applied what the primary logged.
func (p *pair) caughtUp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	want, err := p.primary.GTIDPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := parseGTIDs(want)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica caught up with "+want, func() bool {
		got, err := p.replica.GTIDPos(ctx)
		g, perr := parseGTIDs(got)
		return err == nil && perr == nil && g.covers(w)
	})
}

func (p *pair) watch(t *testing.T, cfg Config) *Watch {
	t.Helper()
	cfg.Primary = pooler.Backend{Network: "unix", Addr: p.primary.Socket()}
	cfg.Replica = pooler.Backend{Network: "unix", Addr: p.replica.Socket()}
	cfg.User, cfg.Password = p.monUser, p.monPW
	w := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitFor polls cond until it holds (the deadline only ends a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// siteWrite inserts a row as the site user and returns that write's GTID
// (what the pooler learns with SELECT @@last_gtid).
func siteWrite(t *testing.T, db *sql.DB, v int) string {
	t.Helper()
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (?)", v); err != nil {
		t.Fatal(err)
	}
	var g string
	if err := c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil || g == "" {
		t.Fatalf("last_gtid = %q, %v", g, err)
	}
	return g
}

// A real replica: usable when caught up; a stopped SQL thread, lag
// beyond MaxLag, a hung or killed replica make it unusable, and a
// session's own write must have arrived before its reads may go there.
func TestWatch(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	if err := p.primary.EnsureDatabase(ctx, "wp_w", "wp_w", "pwW", 10); err != nil {
		t.Fatal(err)
	}
	if err := p.primary.Exec(ctx, "CREATE TABLE wp_w.t (x int)"); err != nil {
		t.Fatal(err)
	}
	site, err := p.primary.OpenAs("wp_w", "pwW", "wp_w")
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	p.caughtUp(t)
	w := p.watch(t, Config{Interval: 50 * time.Millisecond})
	waitFor(t, "usable", func() bool { return w.Usable("") })

	g1 := siteWrite(t, site, 1)
	waitFor(t, "usable for the session's write "+g1, func() bool { return w.Usable(g1) })

	// SQL thread stopped: the next write does not arrive; not usable,
	// and the replica is seen behind.
	if err := p.replica.Exec(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	g2 := siteWrite(t, site, 2)
	waitFor(t, "the stopped SQL thread seen, the replica behind", func() bool {
		st := w.Status()
		return !st.SQLRunning && st.Behind && st.Lag > 0
	})
	if w.Usable(g2) || w.Usable("") {
		t.Fatalf("usable with the SQL thread stopped: %+v", w.Status())
	}
	if err := p.replica.Exec(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "usable for "+g2+" after START SLAVE", func() bool { return w.Usable(g2) })

	// Lag with both threads running (the replica applies 3s late): not
	// usable once it lacks a transaction longer than MaxLag, usable again
	// when it caught up.
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 3", "START SLAVE"} {
		if err := p.replica.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	usableAgain(t, w, "usable with the delay set")
	g3 := siteWrite(t, site, 3)
	waitFor(t, "lag beyond MaxLag with both threads running", func() bool {
		st := w.Status()
		return st.IORunning && st.SQLRunning && st.Lag > DefaultMaxLag && !w.Usable("")
	})
	if w.Usable(g3) {
		t.Fatal("usable for a write the lagging replica has not applied")
	}
	waitFor(t, "usable once the delayed write is applied", func() bool { return w.Usable(g3) })
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 0", "START SLAVE"} {
		if err := p.replica.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// A hung replica stops answering: its last observation ages out.
	waitFor(t, "usable", func() bool { return w.Usable("") })
	if err := p.replica.Process().Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a hung replica unusable", func() bool { return !w.Usable("") })
	if err := p.replica.Process().Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "usable after SIGCONT", func() bool { return w.Usable("") })

	// A killed replica is unusable; restarted by its supervisor, it
	// resumes and is usable again with the writes made meanwhile.
	if err := p.replica.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a killed replica unusable", func() bool { return !w.Usable("") })
	g4 := siteWrite(t, site, 4)
	waitFor(t, "usable for "+g4+" after the restart", func() bool { return w.Usable(g4) })
}
