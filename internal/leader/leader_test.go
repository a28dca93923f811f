package leader

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store/postgres/pgtest"
)

// The tests run against a real PostgreSQL server that TestMain starts
// (pgtest); each test gets its own database.

var pg pgtest.Env

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// newDB creates a database for t and returns its name and URL.
func newDB(t *testing.T) (name, dsn string) {
	t.Helper()
	srv := pg.Server(t)
	name = pgtest.DatabaseFor(t.TempDir())
	if err := srv.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return name, srv.URL(name)
}

// fastElector returns an elector with short intervals for tests.
func fastElector(t *testing.T, dsn, name string) *Elector {
	t.Helper()
	l, err := NewPostgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return &Elector{Locker: l, Name: name, RetryInterval: 20 * time.Millisecond,
		CheckInterval: 50 * time.Millisecond, CheckTimeout: time.Second, TakeoverDelay: 2 * time.Second}
}

// runners counts the electors running work at the same time.
type runners struct {
	now, max atomic.Int32
	leader   atomic.Int32 // id of the last elector that started work
	starts   atomic.Int32
}

// work returns the work function of elector id: it counts itself as
// running until its context is cancelled.
func (r *runners) work(id int32) func(context.Context) {
	return func(ctx context.Context) {
		n := r.now.Add(1)
		for {
			m := r.max.Load()
			if n <= m || r.max.CompareAndSwap(m, n) {
				break
			}
		}
		r.leader.Store(id)
		r.starts.Add(1)
		<-ctx.Done()
		r.now.Add(-1)
	}
}

// waitFor polls cond every 10 ms for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminateHolders terminates the sessions holding advisory locks in
// database db and returns how many it terminated.
func terminateHolders(t *testing.T, db string) int {
	t.Helper()
	var n int
	err := pg.Server(t).Admin().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = $1)`, db).Scan(&n)
	if err != nil {
		t.Fatalf("terminate: %v", err)
	}
	return n
}

// startElectors runs each elector until the test ends.
func startElectors(t *testing.T, r *runners, els ...*Elector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, e := range els {
		wg.Go(func() {
			if err := e.Run(ctx, r.work(int32(i+1))); err != nil {
				t.Errorf("elector %d: %v", i+1, err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if n := r.now.Load(); n != 0 {
			t.Errorf("%d runners still counted after Run returned", n)
		}
	})
}

// TestFailover campaigns with two electors for the same name while the
// leader's connection is killed: at most one runs work at any time, and the
// other takes over.
func TestFailover(t *testing.T) {
	db, dsn := newDB(t)
	var r runners
	startElectors(t, &r, fastElector(t, dsn, "control-plane"), fastElector(t, dsn, "control-plane"))

	for round := range 3 {
		waitFor(t, "a leader", func() bool { return r.now.Load() == 1 })
		old := r.leader.Load()
		// Kill the leader's session until the other elector leads (the
		// deposed one waits the takeover delay before campaigning, so one
		// kill is normally enough).
		deadline := time.Now().Add(60 * time.Second)
		for r.now.Load() != 1 || r.leader.Load() == old {
			if r.now.Load() == 1 {
				terminateHolders(t, db)
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: elector %d still leads or nobody does after killing its connection", round, old)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("round %d: elector %d took over from %d", round, r.leader.Load(), old)
	}
	if m := r.max.Load(); m > 1 {
		t.Fatalf("%d electors ran work at the same time", m)
	}
}

// TestOneLeaderWhileCampaigning lets two electors campaign for a few seconds
// without failures: exactly one leads, the whole time.
func TestOneLeaderWhileCampaigning(t *testing.T) {
	_, dsn := newDB(t)
	var r runners
	startElectors(t, &r, fastElector(t, dsn, "x"), fastElector(t, dsn, "x"))
	waitFor(t, "a leader", func() bool { return r.now.Load() == 1 })
	for range 100 {
		if n := r.now.Load(); n != 1 {
			t.Fatalf("%d electors run work, want 1", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := r.starts.Load(); s != 1 {
		t.Errorf("work started %d times without a failure, want once", s)
	}
}

// TestHandOver stops the leader: its lease is released and the other
// elector takes over.
func TestHandOver(t *testing.T) {
	_, dsn := newDB(t)
	var r runners
	ctx1, stop1 := context.WithCancel(t.Context())
	ctx2, stop2 := context.WithCancel(t.Context())
	errs := make(chan error, 2)
	go func() { errs <- fastElector(t, dsn, "x").Run(ctx1, r.work(1)) }()
	waitFor(t, "elector 1 to lead", func() bool { return r.leader.Load() == 1 })
	go func() { errs <- fastElector(t, dsn, "x").Run(ctx2, r.work(2)) }()
	stop1()
	waitFor(t, "elector 2 to lead", func() bool { return r.leader.Load() == 2 && r.now.Load() == 1 })
	stop2()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := r.max.Load(); m > 1 {
		t.Fatalf("%d electors ran work at the same time", m)
	}
	if n := r.now.Load(); n != 0 {
		t.Errorf("%d runners still counted after Run returned", n)
	}
}

// TestDifferentNames checks that leases of different names are independent.
func TestDifferentNames(t *testing.T) {
	_, dsn := newDB(t)
	var a, b runners
	startElectors(t, &a, fastElector(t, dsn, "placement"))
	startElectors(t, &b, fastElector(t, dsn, "schedules"))
	waitFor(t, "both to lead", func() bool { return a.now.Load() == 1 && b.now.Load() == 1 })
}

// TestWorkReturns checks that Run gives the lease up and returns when work
// returns by itself, so another elector can lead.
func TestWorkReturns(t *testing.T) {
	_, dsn := newDB(t)
	e := fastElector(t, dsn, "x")
	e.TakeoverDelay = 0 // the default
	ran := false
	if err := e.Run(t.Context(), func(context.Context) { ran = true }); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("work did not run")
	}
	var r runners
	startElectors(t, &r, fastElector(t, dsn, "x"))
	waitFor(t, "the next elector to lead", func() bool { return r.now.Load() == 1 })
}

func TestConfigErrors(t *testing.T) {
	l, err := NewPostgres("postgres://127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []*Elector{
		{Name: "x"},
		{Locker: l},
		{Locker: l, Name: "x", CheckInterval: time.Second, CheckTimeout: time.Second, TakeoverDelay: 2 * time.Second},
	} {
		if err := e.Run(t.Context(), func(context.Context) { t.Error("work ran") }); err == nil {
			t.Errorf("elector %d: Run accepted an invalid configuration", i)
		}
	}
	if _, err := NewPostgres("postgres://[::1"); err == nil {
		t.Error("NewPostgres accepted a malformed URL")
	}
}

// TestUnreachable checks that Run keeps campaigning (and never runs work)
// while the database is unreachable, and returns when ctx ends.
func TestUnreachable(t *testing.T) {
	l, err := NewPostgres("postgres://u@127.0.0.1:1/x?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int32
	e := &Elector{Locker: countingLocker{l, &tries}, Name: "x", RetryInterval: time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, func(context.Context) { t.Error("work ran without the lease") }) }()
	waitFor(t, "a few attempts", func() bool { return tries.Load() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type countingLocker struct {
	Locker
	n *atomic.Int32
}

func (c countingLocker) TryLock(ctx context.Context, name string) (Lease, error) {
	c.n.Add(1)
	return c.Locker.TryLock(ctx, name)
}

func TestSolo(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Solo{}.Run(ctx, func(ctx context.Context) { close(started); <-ctx.Done() })
	}()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
