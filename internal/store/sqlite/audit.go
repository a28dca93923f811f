package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// auditTimeFormat is how audit and checkpoint times are stored: UTC, fixed
// width to the microsecond, so that text order is time order (ListAudit's
// Since compares the text). time.RFC3339Nano parses it.
const auditTimeFormat = "2006-01-02T15:04:05.000000Z"

// auditColumns are the audit columns scanAudit reads, in its order.
const auditColumns = `seq, time, actor, actor_user, org, channel, action, target, outcome, detail, request_id, source_ip, prev_hash, hash`

type scanner interface{ Scan(dest ...any) error }

func scanAudit(row scanner) (store.AuditEntry, error) {
	var e store.AuditEntry
	var ts string
	if err := row.Scan(&e.Seq, &ts, &e.Actor, &e.ActorUser, &e.Org, &e.Channel, &e.Action, &e.Target, &e.Outcome,
		&e.Detail, &e.RequestID, &e.SourceIP, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return e, fmt.Errorf("audit entry %d: time %q: %w", e.Seq, ts, err)
	}
	e.Time = t.UTC()
	return e, nil
}

// auditHead reads the chain's last (seq, hash) in tx.
func auditHead(ctx context.Context, tx *sql.Tx) (int64, string, error) {
	var seq int64
	var hash string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, err
}

// AppendAudit appends e to the audit chain. The writer transaction begins
// IMMEDIATE: it holds SQLite's write lock from reading the head to the
// insert, so no other append (of this process or another) comes between.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error { return appendAudit(ctx, tx, &e) })
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// appendAudit seals e after the chain's head and inserts it, in tx (a
// writer transaction: it holds the write lock).
func appendAudit(ctx context.Context, tx *sql.Tx, e *store.AuditEntry) error {
	seq, hash, err := auditHead(ctx, tx)
	if err != nil {
		return err
	}
	store.SealAudit(e, seq, hash)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.Format(auditTimeFormat), e.Actor, e.ActorUser, e.Org, e.Channel, e.Action, e.Target, e.Outcome,
		e.Detail, e.RequestID, e.SourceIP, e.PrevHash, e.Hash)
	return err
}

// ListAudit returns the entries opts selects, in seq order.
func (s *Store) ListAudit(ctx context.Context, opts store.AuditListOptions) ([]store.AuditEntry, error) {
	where := []string{"seq > ?"}
	args := []any{opts.AfterSeq}
	if opts.Org != "" {
		where = append(where, "org = ?")
		args = append(args, opts.Org)
	}
	if opts.Orgs != nil {
		if len(opts.Orgs) == 0 {
			return []store.AuditEntry{}, nil
		}
		where = append(where, "org IN (?"+strings.Repeat(", ?", len(opts.Orgs)-1)+")")
		for _, o := range opts.Orgs {
			args = append(args, o)
		}
	}
	if !opts.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, store.AuditSinceBound(opts.Since).Format(auditTimeFormat))
	}
	args = append(args, store.PageLimit(opts.Limit))
	rows, err := s.read.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// AuditHead returns the chain's end and the last checkpoint's seq.
func (s *Store) AuditHead(ctx context.Context) (store.AuditHead, error) {
	var h store.AuditHead
	err := s.read.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT seq FROM audit ORDER BY seq DESC LIMIT 1), 0),
		COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), ''),
		COALESCE((SELECT max(seq) FROM audit_checkpoints), 0)`).Scan(&h.Seq, &h.Hash, &h.CheckpointSeq)
	if err != nil {
		return h, fmt.Errorf("audit head: %w", err)
	}
	return h, nil
}

// AddAuditCheckpoint stores cp, which must name an entry by its seq and hash.
func (s *Store) AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE seq = ? AND hash = ?`, cp.Seq, cp.Hash).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no audit entry %d with hash %q: %w", cp.Seq, cp.Hash, store.ErrInvalid)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_checkpoints WHERE seq = ?`, cp.Seq).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("checkpoint at %d: %w", cp.Seq, store.ErrAlreadyExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)`,
			cp.Seq, cp.Hash, store.NormalizeAuditTime(cp.Time).Format(auditTimeFormat), cp.KeyID, cp.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	return nil
}

// ListAuditCheckpoints returns the checkpoints after afterSeq, by seq.
func (s *Store) ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, hash, time, key_id, signature FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?`,
		afterSeq, store.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	out := []store.AuditCheckpoint{}
	for rows.Next() {
		var cp store.AuditCheckpoint
		var ts string
		if err := rows.Scan(&cp.Seq, &cp.Hash, &ts, &cp.KeyID, &cp.Signature); err != nil {
			return nil, fmt.Errorf("list audit checkpoints: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, fmt.Errorf("list audit checkpoints: time of %d: %w", cp.Seq, err)
		}
		cp.Time = t.UTC()
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

// chainLegacyAudit chains the entries appended before the audit log was a
// hash chain (migration 00006 left their hash empty): in seq order, each
// gets its time rewritten in auditTimeFormat (to the microsecond), its
// prev_hash and its hash. It runs at every Open and finds nothing to do
// after the first.
func chainLegacyAudit(ctx context.Context, s *Store) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE hash = '' ORDER BY seq`)
		if err != nil {
			return err
		}
		var legacy []store.AuditEntry
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			legacy = append(legacy, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range legacy {
			var prev string
			if e.Seq > 1 {
				if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, e.Seq-1).Scan(&prev); err != nil {
					return fmt.Errorf("entry %d: previous entry: %w", e.Seq, err)
				}
			}
			store.SealAudit(&e, e.Seq-1, prev)
			if _, err := tx.ExecContext(ctx, `UPDATE audit SET time = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
				e.Time.Format(auditTimeFormat), e.PrevHash, e.Hash, e.Seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chain legacy audit entries: %w", err)
	}
	return nil
}
