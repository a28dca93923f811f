package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// Group commit. SQLite has one writer, and each transaction costs its
// commit (the WAL pages of the revision row, the tables' and indexes'
// pages) besides its statements; under a burst of API creates, agents'
// status reports and heartbeats the writes queued behind each other one
// transaction each (bench/scale: sixty writers waiting at 100 creates a
// second). Now whoever gets the writer takes every write queued at that
// moment and runs them in one transaction, each in a savepoint of its own:
// a write that fails (its fn returns an error or panics) is rolled back to
// its savepoint alone and gets its own error, as it would have alone; the
// others commit together. Should the transaction itself fail (a savepoint
// statement fails, e.g. because a canceled statement made SQLite roll the
// whole transaction back), every write that had not failed by itself runs
// again alone. A lone write runs as before, without savepoints.

// txReq is one write waiting for a group commit.
type txReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan txResult // buffered: the committer never blocks
}

// txResult is what a write came to: its error, or the panic of its fn.
type txResult struct {
	err      error
	panicked bool
	pv       any
}

// exec runs one statement in the next group commit.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// inTx runs fn in a writer transaction, with the writes queued meanwhile,
// and returns once that transaction committed (nil) or fn's writes were
// rolled back (fn's error as is, or the transaction's). A panic in fn is
// raised again here, after its writes were rolled back.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &txReq{ctx: ctx, fn: fn, done: make(chan txResult, 1)}
	s.pmu.Lock()
	s.pending = append(s.pending, req)
	s.pmu.Unlock()
	for {
		select {
		case r := <-req.done:
			return r.result()
		case s.wgate <- struct{}{}:
			s.pmu.Lock()
			batch := s.pending
			s.pending = nil
			s.pmu.Unlock()
			s.commit(batch)
			<-s.wgate
		case <-ctx.Done():
			s.pmu.Lock()
			if i := slices.Index(s.pending, req); i >= 0 {
				s.pending = slices.Delete(s.pending, i, i+1)
				s.pmu.Unlock()
				return ctx.Err()
			}
			s.pmu.Unlock()
			return (<-req.done).result() // a committer has it
		}
	}
}

func (r txResult) result() error {
	if r.panicked {
		panic(r.pv)
	}
	return r.err
}

// commit runs batch in one transaction and answers each request.
func (s *Store) commit(batch []*txReq) {
	switch len(batch) {
	case 0:
		return
	case 1:
		batch[0].done <- s.runAlone(batch[0])
		return
	}
	// The transaction is the batch's, not any one caller's: a caller that
	// leaves fails its own statements, which roll back to its savepoint.
	ctx := context.Background()
	results := make([]txResult, len(batch))
	ran := make([]bool, len(batch))
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			r.done <- txResult{err: err}
		}
		return
	}
	aborted := false
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i], ran[i] = txResult{err: err}, true
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
			aborted = true
			break
		}
		res := runFn(r.fn, tx)
		results[i], ran[i] = res, true
		if res.err != nil || res.panicked {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
				aborted = true
				break
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
			aborted = true
			break
		}
	}
	if !aborted {
		if err := tx.Commit(); err != nil {
			for i, r := range batch {
				if results[i].err == nil && !results[i].panicked {
					results[i].err = fmt.Errorf("commit: %w", err)
				}
				r.done <- results[i]
			}
			return
		}
		for i, r := range batch {
			r.done <- results[i]
		}
		return
	}
	_ = tx.Rollback() // perhaps rolled back already
	// Nothing of the batch is written: a write that failed by itself keeps
	// its result; the others run again, alone.
	for i, r := range batch {
		if ran[i] && (results[i].err != nil || results[i].panicked) {
			r.done <- results[i]
			continue
		}
		r.done <- s.runAlone(r)
	}
}

// runAlone runs r in a transaction of its own.
func (s *Store) runAlone(r *txReq) txResult {
	if err := r.ctx.Err(); err != nil {
		return txResult{err: err}
	}
	tx, err := s.write.BeginTx(r.ctx, nil)
	if err != nil {
		return txResult{err: err}
	}
	res := runFn(r.fn, tx)
	if res.err != nil || res.panicked {
		// err is returned as is (UpdateSite passes mutate's error through).
		if rbErr := ignoreDone(tx.Rollback()); rbErr != nil && !res.panicked {
			res.err = errors.Join(res.err, rbErr)
		}
		return res
	}
	if err := tx.Commit(); err != nil {
		return txResult{err: err}
	}
	return res
}

// runFn calls fn, turning a panic into a result.
func runFn(fn func(*sql.Tx) error, tx *sql.Tx) (res txResult) {
	defer func() {
		if pv := recover(); pv != nil {
			res = txResult{panicked: true, pv: pv}
		}
	}()
	return txResult{err: fn(tx)}
}
