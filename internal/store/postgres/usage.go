package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

// AddUsage adds one report's usage to hour's records, and its bytes out
// to the month's bandwidth (see store.Store).
func (s *Store) AddUsage(ctx context.Context, key store.UsageKey, hour time.Time, deltas map[string]store.UsageDelta) (bool, error) {
	if err := store.ValidateUsage(key, deltas); err != nil {
		return false, err
	}
	h := store.UsageHour(hour)
	month := hour.UTC().Format("2006-01")
	applied := true
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		applied = true
		if key.ID != "" {
			if _, err := tx.Exec(ctx, `DELETE FROM usage_reports WHERE hour < $1`,
				store.UsageHour(hour.Add(-store.UsageReportRetention))); err != nil {
				return mapErr(err)
			}
			// A concurrent copy of the report waits here for the
			// first one's transaction, then inserts nothing.
			tag, err := tx.Exec(ctx, `INSERT INTO usage_reports (source, id, hour) VALUES ($1, $2, $3)
				ON CONFLICT (source, id) DO NOTHING`, key.Source, key.ID, h)
			if err != nil {
				return mapErr(err)
			}
			if tag.RowsAffected() == 0 {
				applied = false
				return nil
			}
		}
		// In name order: concurrent reports lock rows in one order, so
		// they never deadlock.
		for _, name := range slices.Sorted(maps.Keys(deltas)) {
			d := deltas[name]
			if _, err := tx.Exec(ctx, `INSERT INTO usage_hourly AS u (site, hour, shard, requests, bytes_out, cache_hits, php_us,
				db_queries, db_bytes, files_bytes, backup_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
				ON CONFLICT (hour, site) DO UPDATE SET
				shard = CASE WHEN excluded.shard = '' THEN u.shard ELSE excluded.shard END,
				requests = u.requests + excluded.requests, bytes_out = u.bytes_out + excluded.bytes_out,
				cache_hits = u.cache_hits + excluded.cache_hits, php_us = u.php_us + excluded.php_us,
				db_queries = u.db_queries + excluded.db_queries,
				db_bytes = coalesce(excluded.db_bytes, u.db_bytes), files_bytes = coalesce(excluded.files_bytes, u.files_bytes),
				backup_bytes = coalesce(excluded.backup_bytes, u.backup_bytes)`,
				name, h, d.Shard, d.Requests, d.BytesOut, d.CacheHits, d.PHPMicros, d.DBQueries,
				d.DBBytes, d.FilesBytes, d.BackupBytes); err != nil {
				return mapErr(err)
			}
			if d.BytesOut > 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO bandwidth (site, month, bytes) VALUES ($1, $2, $3)
					ON CONFLICT (month, site) DO UPDATE SET bytes = bandwidth.bytes + excluded.bytes`, name, month, d.BytesOut); err != nil {
					return mapErr(err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("add usage: %w", err)
	}
	return applied, nil
}

// ListUsage returns usage records (see store.Store).
func (s *Store) ListUsage(ctx context.Context, opts store.UsageListOptions) ([]store.UsageRecord, error) {
	q, err := store.ValidateUsageList(opts)
	if err != nil {
		return nil, err
	}
	out := []store.UsageRecord{}
	if opts.Sites != nil && len(opts.Sites) == 0 {
		return out, nil
	}
	where := []string{`hour >= $1`, `hour <= $2`}
	args := []any{q.FromHour, q.ToHour}
	if opts.Sites != nil {
		args = append(args, opts.Sites)
		where = append(where, fmt.Sprintf(`site = ANY($%d)`, len(args)))
	}
	outer := ``
	if opts.After != "" {
		p, rest, _ := strings.Cut(opts.After, "|")
		site, shard, _ := strings.Cut(rest, "|")
		args = append(args, p, site, shard)
		outer = fmt.Sprintf(` WHERE (period, site, shard) > ($%d, $%d, $%d)`, len(args)-2, len(args)-1, len(args))
	}
	args = append(args, q.Limit)
	query := fmt.Sprintf(`SELECT * FROM (SELECT substr(hour, 1, %d) COLLATE "C" AS period, site, shard, count(*),
		sum(requests)::bigint, sum(bytes_out)::bigint, sum(cache_hits)::bigint, sum(php_us)::bigint, sum(db_queries)::bigint,
		coalesce(sum(db_bytes) / nullif(count(db_bytes), 0), 0)::bigint,
		coalesce(sum(files_bytes) / nullif(count(files_bytes), 0), 0)::bigint,
		coalesce(sum(backup_bytes) / nullif(count(backup_bytes), 0), 0)::bigint
		FROM usage_hourly WHERE %s GROUP BY 1, 2, 3) AS r%s ORDER BY 1, 2, 3 LIMIT $%d`, q.KeyLen, strings.Join(where, " AND "), outer, len(args))
	rows, err := s.read.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.UsageRecord
		if err := rows.Scan(&r.Period, &r.Site, &r.Shard, &r.Hours, &r.Requests, &r.BytesOut, &r.CacheHits, &r.PHPMicros,
			&r.DBQueries, &r.DBBytes, &r.FilesBytes, &r.BackupBytes); err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	return out, nil
}
