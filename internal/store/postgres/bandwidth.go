package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

// AddBandwidth adds each site's bytes to its count of month (see
// store.Store).
func (s *Store) AddBandwidth(ctx context.Context, month string, bytes map[string]int64) error {
	if err := store.ValidateBandwidth(month, bytes); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// In name order: concurrent batches lock rows in one order, so
		// they never deadlock.
		for _, name := range slices.Sorted(maps.Keys(bytes)) {
			n := bytes[name]
			if n == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO bandwidth (site, month, bytes) VALUES ($1, $2, $3)
				ON CONFLICT (month, site) DO UPDATE SET bytes = bandwidth.bytes + excluded.bytes`, name, month, n); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add bandwidth: %w", err)
	}
	return nil
}

// ListBandwidth returns month's counts by site (see store.Store).
func (s *Store) ListBandwidth(ctx context.Context, opts store.BandwidthListOptions) (map[string]int64, error) {
	if err := store.ValidateBandwidthList(opts); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	if opts.Sites != nil && len(opts.Sites) == 0 {
		return out, nil
	}
	q := `SELECT site, bytes FROM bandwidth WHERE month = $1 AND bytes > $2`
	args := []any{opts.Month, opts.MinBytes}
	if opts.Sites != nil {
		q += ` AND site = ANY($3)`
		args = append(args, opts.Sites)
	}
	rows, err := s.read.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list bandwidth: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("list bandwidth: %w", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bandwidth: %w", err)
	}
	return out, nil
}
