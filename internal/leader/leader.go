// Package leader elects one leader among control-plane replicas that share a
// store, so that periodic control-plane work (placement, schedules, heartbeat
// checks) runs on exactly one of them.
//
// An Elector campaigns for a named lease through a Locker and runs a work
// function only while it holds the lease. Postgres is the Locker for replicas
// sharing a PostgreSQL database: a session-level advisory lock,
// pg_try_advisory_lock(hashtext(name)), taken on a dedicated connection. Solo
// is the always-leader for the SQLite store, whose file one process owns.
//
// # Contract
//
//   - At most one leader at a time per name and database: of all Electors
//     with the same Name on the same database, at most one runs work at any
//     moment. An Elector that just took the lease waits TakeoverDelay (while
//     still checking the lease) before it starts work; a leader learns of a
//     lost lease within CheckInterval+CheckTimeout at the latest and cancels
//     work's context at once. So the guarantee holds as long as work returns
//     within TakeoverDelay-CheckInterval-CheckTimeout of its context being
//     cancelled (and the process is not stopped for longer than that, e.g.
//     by SIGSTOP). Run refuses a TakeoverDelay that leaves no such margin.
//   - A leader that crashes or loses its connection loses the lease: the
//     server releases a session's advisory locks when the session ends
//     (pg_terminate_backend, a killed process, a broken TCP connection once
//     the server notices). Losing the connection is losing leadership.
//   - Different names are independent leases: one replica may lead several.
//     Names are hashed to 32 bits (hashtext), so two names might share a
//     lock; the cost is only that they never lead on different replicas.
//   - A replica that lost leadership waits TakeoverDelay before it campaigns
//     again, so a replica that stayed connected takes over first.
//   - The connection must be a real session: a transaction-pooling proxy
//     (PgBouncer in transaction mode) breaks session-level advisory locks.
//   - Intervals and the clock are injected (Elector fields); the zero values
//     give the defaults below.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the Elector's intervals.
const (
	DefaultRetryInterval = 2 * time.Second
	DefaultCheckInterval = time.Second
	DefaultCheckTimeout  = time.Second
	// DefaultTakeoverDelay is used when TakeoverDelay is zero:
	// 2*(CheckInterval+CheckTimeout).
)

// releaseTimeout bounds giving a lease back after leadership ended.
const releaseTimeout = 5 * time.Second

// Locker takes named leases. The Elector consumes it; Postgres implements
// it, and tests may fake it.
type Locker interface {
	// TryLock tries once to take the lease name. It returns (nil, nil) when
	// someone else holds it.
	TryLock(ctx context.Context, name string) (Lease, error)
}

// Lease is a held lease.
type Lease interface {
	// Check returns nil while the lease is still held and an error once it
	// is lost (which is final).
	Check(ctx context.Context) error
	// Release gives the lease up; afterwards it is not held.
	Release(ctx context.Context) error
}

// Elector campaigns for the lease Name through Locker and runs work while it
// holds it. Set the fields before calling Run; an Elector is for one Run at a
// time.
type Elector struct {
	Locker Locker
	Name   string
	// RetryInterval: how often a follower tries to take the lease.
	RetryInterval time.Duration
	// CheckInterval: how often the leader checks that it still holds the
	// lease; CheckTimeout bounds one check (a check that does not answer in
	// time counts as lost).
	CheckInterval, CheckTimeout time.Duration
	// TakeoverDelay: how long a new leader waits before starting work, and
	// a deposed one before campaigning again. Must exceed
	// CheckInterval+CheckTimeout; zero means 2*(CheckInterval+CheckTimeout).
	TakeoverDelay time.Duration
	// After is the clock (default time.After).
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger
}

func (e *Elector) config() (Elector, error) {
	c := *e
	if c.Locker == nil || c.Name == "" {
		return c, errors.New("leader: elector needs a Locker and a Name")
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.TakeoverDelay == 0 {
		c.TakeoverDelay = 2 * (c.CheckInterval + c.CheckTimeout)
	}
	if c.TakeoverDelay <= c.CheckInterval+c.CheckTimeout {
		return c, fmt.Errorf("leader: takeover delay %v must exceed check interval + check timeout (%v)", c.TakeoverDelay, c.CheckInterval+c.CheckTimeout)
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("lease", c.Name)
	return c, nil
}

// Run campaigns until ctx is done. Whenever it holds the lease (and the
// takeover delay has passed) it calls work with a context that is cancelled
// as soon as leadership is lost or ctx is done, waits for work to return and
// gives the lease back. If work returns while still leader, Run releases the
// lease and returns nil. Run returns nil when ctx is done, and an error only
// for an invalid configuration; failures to reach the database are logged
// and retried.
func (e *Elector) Run(ctx context.Context, work func(ctx context.Context)) error {
	c, err := e.config()
	if err != nil {
		return err
	}
	wait := time.Duration(0)
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-c.After(wait):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		lease, err := c.Locker.TryLock(ctx, c.Name)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.Logger.Warn("leader election: cannot campaign", "err", err)
			}
			wait = c.RetryInterval
			continue
		case lease == nil:
			wait = c.RetryInterval
			continue
		}
		if done := c.lead(ctx, lease, work); done { // c: e with defaults
			return nil
		}
		wait = c.TakeoverDelay
	}
}

// lead holds lease: it waits the takeover delay, runs work, checks the lease
// every CheckInterval and stops work when it is lost or ctx is done. It
// reports whether Run is done (ctx ended or work returned by itself).
func (e *Elector) lead(ctx context.Context, lease Lease, work func(context.Context)) (done bool) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			e.Logger.Debug("leader election: release", "err", err)
		}
	}()
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var workDone chan struct{} // nil until work started
	stop := func() {
		stopWork()
		if workDone != nil {
			<-workDone
		}
	}
	start := e.After(e.TakeoverDelay)
	check := e.After(e.CheckInterval)
	for {
		select {
		case <-ctx.Done():
			stop()
			return true
		case <-workDone:
			e.Logger.Info("leader work returned; giving up leadership")
			return true
		case <-start:
			start = nil
			workDone = make(chan struct{})
			e.Logger.Info("became leader")
			go func() { defer close(workDone); work(workCtx) }()
		case <-check:
			cctx, cancel := context.WithTimeout(ctx, e.CheckTimeout)
			err := lease.Check(cctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					stop()
					return true
				}
				e.Logger.Warn("lost leadership", "err", err)
				stop()
				return false
			}
			check = e.After(e.CheckInterval)
		}
	}
}

// Solo is the always-leader of a store only one process uses (SQLite): Run
// calls work at once and returns when work does or ctx is done.
type Solo struct{}

// Run calls work(ctx) and returns nil when it returns.
func (Solo) Run(ctx context.Context, work func(ctx context.Context)) error {
	work(ctx)
	return nil
}
