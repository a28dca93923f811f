package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Changes returns what changed after since, read in one snapshot (see
// store.Store and store.ChangeList).
func (s *Store) Changes(ctx context.Context, since int64, opts store.ChangeOptions) (*store.ChangeList, error) {
	limit := store.PageLimit(opts.Limit)
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo

	var current, horizon int64
	if err := tx.QueryRowContext(ctx,
		`SELECT (SELECT value FROM meta WHERE key = 'revision'), (SELECT value FROM meta WHERE key = 'tombstones_pruned_before')`).
		Scan(&current, &horizon); err != nil {
		return nil, fmt.Errorf("changes: read revision: %w", err)
	}
	if err := store.CheckSince(since, horizon); err != nil {
		return nil, err
	}

	// limit+1 of each tells CutChanges whether the page is cut.
	siteQuery, siteArgs := `SELECT `+siteColumns+` FROM sites WHERE resource_version > ?`, []any{since}
	if opts.Shard != "" {
		siteQuery += ` AND ` + shardMatch
		siteArgs = append(siteArgs, opts.Shard, opts.Shard, opts.Shard)
	}
	siteQuery += ` ORDER BY resource_version LIMIT ?`
	siteArgs = append(siteArgs, limit+1)
	sites, err := querySites(ctx, tx, siteQuery, siteArgs...)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	shards := []store.Shard{}
	if opts.Shard == "" {
		if shards, err = queryShards(ctx, tx,
			`SELECT `+shardColumns+` FROM shards WHERE resource_version > ? ORDER BY resource_version LIMIT ?`,
			since, limit+1); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
	}
	list := &store.ChangeList{}
	// Without a cut, Revision is current, also when since is beyond it.
	list.Sites, list.Shards, list.Revision, list.More = store.CutChanges(sites, shards, limit, current)

	tsQuery, tsArgs := `SELECT revision, name, uid, shard, deleted FROM tombstones WHERE revision > ? AND revision <= ?`,
		[]any{since, list.Revision}
	if opts.Shard != "" {
		tsQuery += ` AND shard = ?`
		tsArgs = append(tsArgs, opts.Shard)
	}
	tsQuery += ` ORDER BY revision, id`
	rows, err := tx.QueryContext(ctx, tsQuery, tsArgs...)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
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
		return nil, fmt.Errorf("changes: %w", err)
	}
	return list, nil
}

// querySites returns the sites a query over siteColumns selects.
func querySites(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]site.Site, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
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
	return out, rows.Err()
}

// queryShards returns the shards a query over shardColumns selects.
func queryShards(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]store.Shard, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
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
	return out, rows.Err()
}

// PruneTombstones drops the tombstones recorded before revision before and
// moves the prune horizon up to before (it never moves down).
func (s *Store) PruneTombstones(ctx context.Context, before int64) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tombstones WHERE revision < ?`, before)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE meta SET value = max(value, ?) WHERE key = 'tombstones_pruned_before'`, before)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune tombstones before %d: %w", before, err)
	}
	return int(n), nil
}
