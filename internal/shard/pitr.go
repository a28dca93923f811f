package shard

// Point-in-time recovery (package pitr): the shard streams its MariaDB
// server's binary log and ships each site's transactions to its own backup
// repository every Config.PITRFlush; every backup records the position its
// dump is consistent with (SnapshotMeta.GTID, in the log SnapshotMeta.
// PITRLog); a restore with a time (store.RestoreParams.At, or a clone's
// site.Source.At) restores the snapshot, ships what is pending, then
// replays the site's transactions after the snapshot's position up to that
// time — into the staging database of an in-place restore (as a user
// limited to it), or into a clone's own database (as its own user); never
// as root.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
)

// DefaultPITRFlush is the default Config.PITRFlush.
const DefaultPITRFlush = pitr.DefaultFlush

// pitrDir holds the shipper's state.
func (s *Shard) pitrDir() string { return filepath.Join(s.cfg.Dir, "pitr") }

// startShipper starts the binary log shipper unless shipping is off; the
// channel is closed when it has ended.
func (s *Shard) startShipper(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if s.cfg.PITRFlush < 0 || s.cfg.Repos == nil {
		close(done)
		return done
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.db.Port()))
	if s.cfg.Database != nil {
		addr = s.cfg.Database.Addr
	}
	sh, err := pitr.New(pitr.Config{
		Addr: addr, StateDir: s.pitrDir(), Host: s.cfg.Name, Flush: s.cfg.PITRFlush,
		Repo:   func(ctx context.Context) (*repo.Repo, error) { return s.cfg.Repos(ctx, s.cfg.Name) },
		Clock:  s.cfg.Clock,
		Logger: s.log,
	})
	if err != nil {
		s.log.Error("pitr: no binary log shipping", "err", err)
		close(done)
		return done
	}
	s.mu.Lock()
	s.shipper = sh
	s.mu.Unlock()
	go func() {
		defer close(done)
		// The replication account (created on the server, repaired on
		// every start).
		for {
			user, pw, err := s.db.Account(ctx, "replication")
			if err == nil {
				sh.SetAccount(user, pw)
				break
			}
			s.log.Warn("pitr: the replication account", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
		if err := sh.Run(ctx); err != nil {
			s.log.Error("pitr: binary log shipping stopped", "err", err)
		}
	}()
	return done
}

// setShipperSites tells the shipper the databases of the shard's sites.
func (s *Shard) setShipperSites(sites []site.Site) {
	s.mu.Lock()
	sh := s.shipper
	s.mu.Unlock()
	if sh == nil {
		return
	}
	out := make([]pitr.Site, 0, len(sites))
	for _, st := range sites {
		if st.Metadata.UID == "" {
			continue
		}
		out = append(out, pitr.Site{Name: st.Metadata.Name, UID: st.Metadata.UID, DB: s.NamesFor(st.Metadata.UID).DB})
	}
	sh.SetSites(out)
}

// FlushLog ships the binary log now: everything committed before the call
// is in the repository when it returns. A restore to a time calls it
// first. For each site given it also writes a coverage mark (pitr.Shipper.
// Flush): the control plane asks the site's shard for it before a clone on
// another shard replays the site's log, which that shard knows only from
// the repository.
func (s *Shard) FlushLog(ctx context.Context, sites ...*site.Site) (pitr.Status, error) {
	s.mu.Lock()
	sh := s.shipper
	s.mu.Unlock()
	if sh == nil {
		return pitr.Status{}, errors.New("point-in-time recovery is off on this shard (no binary log shipping)")
	}
	var marks []pitr.Site
	for _, st := range sites {
		marks = append(marks, pitr.Site{Name: st.Metadata.Name, UID: st.Metadata.UID, DB: s.NamesFor(st.Metadata.UID).DB})
	}
	return sh.Flush(ctx, marks...)
}

// logName is the continuous log the shipper ships now ("" when off).
func (s *Shard) logName() string {
	s.mu.Lock()
	sh := s.shipper
	s.mu.Unlock()
	if sh == nil {
		return ""
	}
	return sh.Log()
}

// replayTo replays the log of the site a snapshot was taken of (meta), from
// the snapshot's position up to at, into database db as conn's user. The
// site's segments are in repository r (the snapshot's: the shard that took
// it shipped them there). When that site is this shard's the log is
// shipped first; otherwise the segments must prove their own coverage.
func (s *Shard) replayTo(ctx context.Context, r *repo.Repo, meta *SnapshotMeta, at time.Time, run func(func(conn *sql.Conn, db string) error) error, progress func(done, total int64)) (*pitr.ReplayResult, error) {
	start := pitr.Start{GTID: meta.GTID, Log: meta.PITRLog}
	if start.GTID == "" || start.Log == "" {
		return nil, publicf("the snapshot records no binary log position (taken while point-in-time recovery was off): it cannot be restored to a time")
	}
	var cov pitr.Coverage
	if meta.Shard == s.cfg.Name && s.logName() == start.Log {
		st, err := s.FlushLog(ctx)
		if err != nil {
			return nil, fmt.Errorf("ship the binary log before the restore: %w", err)
		}
		cov = pitr.Coverage{Log: st.Log, Since: st.Since, Through: st.Through}
	}
	segs, err := pitr.Segments(ctx, r, meta.Site, meta.SiteUID)
	if err != nil {
		return nil, err
	}
	if cov.Log == "" {
		cov = pitr.CoverageOf(segs, start)
	}
	var res *pitr.ReplayResult
	err = run(func(conn *sql.Conn, db string) error {
		var err error
		res, err = pitr.Replay(ctx, conn, db, r, segs, start, at, cov, progress)
		return err
	})
	if err != nil {
		var pe error
		for _, e := range []error{pitr.ErrGap, pitr.ErrNotCovered, pitr.ErrBarrier, pitr.ErrNoPosition} {
			if errors.Is(err, e) {
				pe = publicf("restore to %s: %v", at.UTC().Format(time.RFC3339), err)
			}
		}
		if pe != nil {
			return res, errors.Join(pe, err)
		}
		return res, fmt.Errorf("replay the database log to %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	s.log.Info("database log replayed", "site", meta.Site, "to", at.UTC(), "transactions", res.Applied, "last_gtid", res.LastGTID)
	return res, nil
}
