package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		applied = true
		if key.ID != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM usage_reports WHERE hour < ?`,
				store.UsageHour(hour.Add(-store.UsageReportRetention))); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO usage_reports (source, id, hour) VALUES (?, ?, ?)
				ON CONFLICT (source, id) DO NOTHING`, key.Source, key.ID, h)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				applied = false
				return nil
			}
		}
		// In name order: concurrent reports lock rows in one order.
		for _, name := range slices.Sorted(maps.Keys(deltas)) {
			d := deltas[name]
			if _, err := tx.ExecContext(ctx, `INSERT INTO usage_hourly (site, hour, shard, requests, bytes_out, cache_hits, php_us,
				db_queries, db_bytes, files_bytes, backup_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (hour, site) DO UPDATE SET
				shard = CASE WHEN excluded.shard = '' THEN shard ELSE excluded.shard END,
				requests = requests + excluded.requests, bytes_out = bytes_out + excluded.bytes_out,
				cache_hits = cache_hits + excluded.cache_hits, php_us = php_us + excluded.php_us,
				db_queries = db_queries + excluded.db_queries,
				db_bytes = coalesce(excluded.db_bytes, db_bytes), files_bytes = coalesce(excluded.files_bytes, files_bytes),
				backup_bytes = coalesce(excluded.backup_bytes, backup_bytes)`,
				name, h, d.Shard, d.Requests, d.BytesOut, d.CacheHits, d.PHPMicros, d.DBQueries,
				d.DBBytes, d.FilesBytes, d.BackupBytes); err != nil {
				return err
			}
			if d.BytesOut > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO bandwidth (site, month, bytes) VALUES (?, ?, ?)
					ON CONFLICT (month, site) DO UPDATE SET bytes = bytes + excluded.bytes`, name, month, d.BytesOut); err != nil {
					return err
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
	where := []string{`hour >= ?`, `hour <= ?`}
	args := []any{q.FromHour, q.ToHour}
	if opts.Sites != nil {
		list, err := json.Marshal(opts.Sites)
		if err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		where = append(where, `site IN (SELECT value FROM json_each(?))`)
		args = append(args, string(list))
	}
	outer := ``
	if opts.After != "" {
		p, rest, _ := strings.Cut(opts.After, "|")
		site, shard, _ := strings.Cut(rest, "|")
		outer = ` WHERE (period, site, shard) > (?, ?, ?)`
		args = append(args, p, site, shard)
	}
	args = append(args, q.Limit)
	query := fmt.Sprintf(`SELECT * FROM (SELECT substr(hour, 1, %d) AS period, site, shard, count(*),
		sum(requests), sum(bytes_out), sum(cache_hits), sum(php_us), sum(db_queries),
		coalesce(sum(db_bytes) / nullif(count(db_bytes), 0), 0),
		coalesce(sum(files_bytes) / nullif(count(files_bytes), 0), 0),
		coalesce(sum(backup_bytes) / nullif(count(backup_bytes), 0), 0)
		FROM usage_hourly WHERE %s GROUP BY 1, 2, 3)%s ORDER BY 1, 2, 3 LIMIT ?`, q.KeyLen, strings.Join(where, " AND "), outer)
	rows, err := s.read.QueryContext(ctx, query, args...)
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
