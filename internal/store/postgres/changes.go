package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// rowsQuerier is a pool or a transaction.
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Changes returns what changed after since, read in one REPEATABLE READ
// snapshot (see store.Store and store.ChangeList). Revisions commit in
// order (the meta row lock is held until commit), so a snapshot holds every
// write up to its revision and none after.
func (s *Store) Changes(ctx context.Context, since int64, opts store.ChangeOptions) (*store.ChangeList, error) {
	limit := store.PageLimit(opts.Limit)
	tx, err := s.read.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // read-only; nothing to undo
	}()

	var current, horizon int64
	if err := tx.QueryRow(ctx,
		`SELECT (SELECT value FROM meta WHERE key = 'revision'), (SELECT value FROM meta WHERE key = 'tombstones_pruned_before')`).
		Scan(&current, &horizon); err != nil {
		return nil, fmt.Errorf("changes: read revision: %w", err)
	}
	if err := store.CheckSince(since, horizon); err != nil {
		return nil, err
	}

	// limit+1 of each tells CutChanges whether the page is cut.
	siteQuery, siteArgs := `SELECT `+siteColumns+` FROM sites WHERE resource_version > $1`, []any{since}
	if opts.Shard != "" {
		siteArgs = append(siteArgs, opts.Shard)
		siteQuery += ` AND ` + shardMatch(len(siteArgs))
	}
	siteArgs = append(siteArgs, limit+1)
	siteQuery += fmt.Sprintf(` ORDER BY resource_version LIMIT $%d`, len(siteArgs))
	sites, err := querySites(ctx, tx, siteQuery, siteArgs...)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	shards := []store.Shard{}
	if opts.Shard == "" {
		if shards, err = queryShards(ctx, tx,
			`SELECT `+shardColumns+` FROM shards WHERE resource_version > $1 ORDER BY resource_version LIMIT $2`,
			since, limit+1); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
	}
	list := &store.ChangeList{}
	// Without a cut, Revision is current, also when since is beyond it.
	list.Sites, list.Shards, list.Revision, list.More = store.CutChanges(sites, shards, limit, current)

	tsQuery, tsArgs := `SELECT revision, name, uid, shard, deleted FROM tombstones WHERE revision > $1 AND revision <= $2`,
		[]any{since, list.Revision}
	if opts.Shard != "" {
		tsQuery += ` AND shard = $3`
		tsArgs = append(tsArgs, opts.Shard)
	}
	tsQuery += ` ORDER BY revision, id`
	rows, err := tx.Query(ctx, tsQuery, tsArgs...)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", mapErr(err))
	}
	defer rows.Close()
	list.Removed = []store.Tombstone{}
	for rows.Next() {
		var t store.Tombstone
		if err := rows.Scan(&t.Revision, &t.Name, &t.UID, &t.Shard, &t.Deleted); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		list.Removed = append(list.Removed, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("changes: %w", mapErr(err))
	}
	return list, nil
}

// querySites returns the sites a query over siteColumns selects.
func querySites(ctx context.Context, q rowsQuerier, query string, args ...any) ([]site.Site, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []site.Site{}
	for rows.Next() {
		r, err := scanSite(rows)
		if err != nil {
			return nil, err
		}
		st, err := r.decode()
		if err != nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, mapErr(rows.Err())
}

// queryShards returns the shards a query over shardColumns selects.
func queryShards(ctx context.Context, q rowsQuerier, query string, args ...any) ([]store.Shard, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []store.Shard{}
	for rows.Next() {
		sh, err := scanShard(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *sh)
	}
	return out, mapErr(rows.Err())
}

// PruneTombstones drops the tombstones recorded before revision before and
// moves the prune horizon up to before (it never moves down).
func (s *Store) PruneTombstones(ctx context.Context, before int64) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The horizon first: its row lock serialises concurrent prunes.
		if _, err := tx.Exec(ctx, `UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'tombstones_pruned_before'`, before); err != nil {
			return mapErr(err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tombstones WHERE revision < $1`, before)
		if err != nil {
			return mapErr(err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune tombstones before %d: %w", before, err)
	}
	return int(n), nil
}
