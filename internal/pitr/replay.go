package pitr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
)

// Errors Replay returns (test with errors.Is).
var (
	// ErrNoPosition: the snapshot records no log position (taken before
	// the binary log was shipped).
	ErrNoPosition = errors.New("the snapshot records no binary log position (taken before point-in-time recovery was on)")
	// ErrGap: the log is not continuous from the snapshot's position
	// (shipping was off or restarted, or segments are missing).
	ErrGap = errors.New("the database log has a gap after the snapshot")
	// ErrNotCovered: the log does not reach the requested time yet.
	ErrNotCovered = errors.New("the database log does not reach the requested time")
	// ErrBarrier: the site's database was replaced (an in-place restore)
	// between the snapshot and the requested time.
	ErrBarrier = errors.New("the site's database was replaced (restored) between the snapshot and the requested time; restore from a snapshot taken after that")
)

// Coverage is what is known about the log's completeness: it is
// continuous from Since and has every transaction committed before
// Through.
type Coverage struct {
	Log     string
	Since   string
	Through time.Time
}

// Start is where a replay starts: a snapshot's position, in a log.
type Start struct {
	// GTID is the position the snapshot's dump is consistent with
	// (exclusive: its transactions are in the dump).
	GTID string
	// Log names the continuous log the shard shipped when it took the
	// snapshot (Shipper.Log).
	Log string
}

// CoverageOf is the coverage the segments themselves prove for a replay
// from start: the latest Through among the segments of start's log that
// was continuous since start (Since covered by start). Zero when none.
func CoverageOf(segs []Segment, start Start) Coverage {
	fp, err := ParsePos(start.GTID)
	if err != nil {
		return Coverage{}
	}
	var c Coverage
	for _, sg := range segs {
		sp, err := ParsePos(sg.Meta.Since)
		if err != nil || sg.Meta.Log != start.Log || !fp.CoversPos(sp) {
			continue
		}
		if sg.Meta.Through.After(c.Through) {
			c = Coverage{Log: sg.Meta.Log, Since: sg.Meta.Since, Through: sg.Meta.Through}
		}
	}
	return c
}

// ReplayResult says what Replay applied.
type ReplayResult struct {
	Applied  int       `json:"applied"`
	LastGTID string    `json:"last_gtid,omitempty"`
	LastTime time.Time `json:"last_time,omitzero"`
}

// replaySession is the session every row transaction runs in: values are
// exact literals (UTC for TIMESTAMP, zero dates allowed, 0 kept in
// AUTO_INCREMENT columns), and rows go in in the original order, so
// foreign keys are not checked again.
var replaySession = []string{
	"SET NAMES utf8mb4",
	"SET time_zone='+00:00'",
	"SET sql_mode='NO_AUTO_VALUE_ON_ZERO'",
	"SET foreign_key_checks=0",
}

// Replay applies the transactions of segs (Segments, of one site) that
// follow start (exclusive: the snapshot's position) and were
// committed at or before until (the log's resolution is a second: until's
// fraction is ignored), in order, each row transaction in a transaction
// of its own; it stops at the first commit after until. conn must be
// logged in as the target database's own user (never root: the SQL comes
// from the site); database may differ from the one the log was taken of.
// cov says how far the log is known complete (Flush's Status, or
// CoverageOf); progress, if not nil, gets segments done and total.
func Replay(ctx context.Context, conn *sql.Conn, database string, r *repo.Repo, segs []Segment, start Start, until time.Time, cov Coverage, progress func(done, total int64)) (*ReplayResult, error) {
	from := start.GTID
	if from == "" || start.Log == "" {
		return nil, ErrNoPosition
	}
	if cov.Log != start.Log {
		return nil, fmt.Errorf("%w: the log shipped now (%q) is not the one of the snapshot (%q): the server or its log was replaced since", ErrGap, cov.Log, start.Log)
	}
	fp, err := ParsePos(from)
	if err != nil {
		return nil, fmt.Errorf("pitr: snapshot position: %w", err)
	}
	if sp, err := ParsePos(cov.Since); err != nil || !fp.CoversPos(sp) {
		return nil, fmt.Errorf("%w: the log is continuous only from %s, the snapshot is at %s", ErrGap, cov.Since, from)
	}
	if cov.Through.Before(until.Truncate(time.Second)) {
		return nil, fmt.Errorf("%w: complete up to %s, requested %s", ErrNotCovered, cov.Through.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(database)); err != nil {
		return nil, fmt.Errorf("pitr: replay into %s: %w", database, err)
	}
	session := func() error {
		for _, q := range replaySession {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("pitr: replay session: %w", err)
			}
		}
		return nil
	}
	if err := session(); err != nil {
		return nil, err
	}
	applied := fp.Clone()
	limit := until.Unix()
	res := &ReplayResult{}
	stop := false
	for k, sg := range segs {
		if stop {
			break
		}
		if progress != nil {
			progress(int64(k), int64(len(segs)))
		}
		end, err := ParsePos(sg.Meta.End)
		if err != nil {
			return res, fmt.Errorf("pitr: segment %s: %w", sg.Snapshot.ID, err)
		}
		if fp.CoversPos(end) {
			continue // before the snapshot
		}
		if sg.Meta.Log != start.Log {
			continue // another log's (another server, or before a gap)
		}
		if sp, err := ParsePos(sg.Meta.Since); err != nil || !fp.CoversPos(sp) {
			return res, fmt.Errorf("%w: segment %s continues a log begun at %s, after the snapshot's %s", ErrGap, sg.Snapshot.ID, sg.Meta.Since, from)
		}
		rc, err := r.OpenStream(ctx, sg.Snapshot, StreamName)
		if err != nil {
			return res, fmt.Errorf("pitr: segment %s: %w", sg.Snapshot.ID, err)
		}
		err = readTxns(rc, func(t *Txn) (bool, error) {
			g, err := ParseGTID(t.GTID)
			if err != nil {
				return false, err
			}
			if applied.Covers(g) {
				return true, nil
			}
			if t.Time > limit {
				stop = true
				return false, nil
			}
			if t.Barrier {
				return false, fmt.Errorf("%w (at %s, transaction %s)", ErrBarrier, time.Unix(t.Time, 0).UTC().Format(time.RFC3339), t.GTID)
			}
			if err := apply(ctx, conn, t); err != nil {
				return false, fmt.Errorf("pitr: replay transaction %s: %w", t.GTID, err)
			}
			if t.DDL {
				if err := session(); err != nil {
					return false, err
				}
			}
			applied.Advance(g)
			res.Applied++
			res.LastGTID, res.LastTime = t.GTID, time.Unix(t.Time, 0).UTC()
			return true, nil
		})
		cerr := rc.Close()
		if err != nil {
			return res, err
		}
		if cerr != nil && !stop {
			return res, fmt.Errorf("pitr: segment %s: %w", sg.Snapshot.ID, cerr)
		}
	}
	if progress != nil {
		progress(int64(len(segs)), int64(len(segs)))
	}
	return res, nil
}

// apply runs one transaction: DDL as its statements, rows in a
// transaction.
func apply(ctx context.Context, conn *sql.Conn, t *Txn) error {
	if t.DDL {
		for _, q := range t.Stmts {
			if _, err := conn.ExecContext(ctx, string(q)); err != nil {
				return err
			}
		}
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, q := range t.Stmts {
		if _, err := tx.ExecContext(ctx, string(q)); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}
