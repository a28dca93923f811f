package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

// auditColumns are the audit columns scanAudit reads, in its order.
const auditColumns = `seq, time, actor, actor_user, org, channel, action, target, outcome, detail, request_id, source_ip, prev_hash, hash`

// lockAuditChain takes the transaction-level advisory lock that serialises
// appends to the audit chain, across connections and replicas. (Locking
// the last row FOR UPDATE would not do: at READ COMMITTED a waiter would
// then see that same row, no longer the last, and fork the chain.) The
// two-key form keeps it apart from the leader's single-key locks.
func lockAuditChain(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('aipress'), hashtext('audit chain'))`)
	if err != nil {
		return fmt.Errorf("lock audit chain: %w", err)
	}
	return nil
}

func scanAudit(row pgx.Row) (store.AuditEntry, error) {
	var e store.AuditEntry
	err := row.Scan(&e.Seq, &e.Time, &e.Actor, &e.ActorUser, &e.Org, &e.Channel, &e.Action, &e.Target, &e.Outcome,
		&e.Detail, &e.RequestID, &e.SourceIP, &e.PrevHash, &e.Hash)
	e.Time = e.Time.UTC()
	return e, err
}

// auditHead reads the chain's last (seq, hash) in tx.
func auditHead(ctx context.Context, tx pgx.Tx) (int64, string, error) {
	var seq int64
	var hash string
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, err
}

// AppendAudit appends e to the audit chain, holding the chain's advisory
// lock from reading the head to the insert. Time is stored to the
// microsecond (store.SealAudit truncates it before hashing).
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error { return appendAudit(ctx, tx, &e) })
	if err != nil {
		return fmt.Errorf("append audit: %w", mapErr(err))
	}
	return nil
}

// appendAudit takes the chain's lock, seals e after the chain's head and
// inserts it, in tx.
func appendAudit(ctx context.Context, tx pgx.Tx, e *store.AuditEntry) error {
	if err := lockAuditChain(ctx, tx); err != nil {
		return err
	}
	seq, hash, err := auditHead(ctx, tx)
	if err != nil {
		return err
	}
	store.SealAudit(e, seq, hash)
	_, err = tx.Exec(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		e.Seq, e.Time, e.Actor, e.ActorUser, e.Org, e.Channel, e.Action, e.Target, e.Outcome,
		e.Detail, e.RequestID, e.SourceIP, e.PrevHash, e.Hash)
	return err
}

// ListAudit returns the entries opts selects, in seq order.
func (s *Store) ListAudit(ctx context.Context, opts store.AuditListOptions) ([]store.AuditEntry, error) {
	if opts.Orgs != nil && len(opts.Orgs) == 0 {
		return []store.AuditEntry{}, nil
	}
	q := `SELECT ` + auditColumns + ` FROM audit WHERE seq > $1`
	args := []any{opts.AfterSeq}
	if opts.Org != "" {
		args = append(args, opts.Org)
		q += fmt.Sprintf(" AND org = $%d", len(args))
	}
	if opts.Orgs != nil {
		args = append(args, opts.Orgs)
		q += fmt.Sprintf(" AND org = ANY($%d)", len(args))
	}
	if !opts.Since.IsZero() {
		args = append(args, store.AuditSinceBound(opts.Since))
		q += fmt.Sprintf(" AND time >= $%d", len(args))
	}
	args = append(args, store.PageLimit(opts.Limit))
	q += fmt.Sprintf(" ORDER BY seq LIMIT $%d", len(args))
	rows, err := s.read.Query(ctx, q, args...)
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
	err := s.read.QueryRow(ctx, `SELECT
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit WHERE seq = $1 AND hash = $2`, cp.Seq, cp.Hash).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no audit entry %d with hash %q: %w", cp.Seq, cp.Hash, store.ErrInvalid)
		}
		// A concurrent add of the same seq fails on the primary key
		// (ErrAlreadyExists through mapErr).
		_, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature) VALUES ($1, $2, $3, $4, $5)`,
			cp.Seq, cp.Hash, store.NormalizeAuditTime(cp.Time), cp.KeyID, cp.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("add audit checkpoint %d: %w", cp.Seq, mapErr(err))
	}
	return nil
}

// ListAuditCheckpoints returns the checkpoints after afterSeq, by seq.
func (s *Store) ListAuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]store.AuditCheckpoint, error) {
	rows, err := s.read.Query(ctx, `SELECT seq, hash, time, key_id, signature FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2`,
		afterSeq, store.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	out := []store.AuditCheckpoint{}
	for rows.Next() {
		var cp store.AuditCheckpoint
		if err := rows.Scan(&cp.Seq, &cp.Hash, &cp.Time, &cp.KeyID, &cp.Signature); err != nil {
			return nil, fmt.Errorf("list audit checkpoints: %w", err)
		}
		cp.Time = cp.Time.UTC()
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

// chainLegacyAudit chains the entries appended before the audit log was a
// hash chain (migration 00006 left their hash empty), in seq order, under
// the chain's lock. It runs at every Open and finds nothing to do after the
// first.
func chainLegacyAudit(ctx context.Context, s *Store) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAuditChain(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit WHERE hash = '' ORDER BY seq`)
		if err != nil {
			return err
		}
		legacy, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditEntry, error) { return scanAudit(r) })
		if err != nil {
			return err
		}
		for _, e := range legacy {
			var prev string
			if e.Seq > 1 {
				if err := tx.QueryRow(ctx, `SELECT hash FROM audit WHERE seq = $1`, e.Seq-1).Scan(&prev); err != nil {
					return fmt.Errorf("entry %d: previous entry: %w", e.Seq, err)
				}
			}
			store.SealAudit(&e, e.Seq-1, prev)
			if _, err := tx.Exec(ctx, `UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3`, e.PrevHash, e.Hash, e.Seq); err != nil {
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
