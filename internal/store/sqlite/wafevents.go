package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// AppendWAFEvents stores events and applies keep (see store.Store).
func (s *Store) AppendWAFEvents(ctx context.Context, events []site.WAFEvent, keep store.WAFRetention) error {
	if err := store.ValidateWAFEvents(events); err != nil {
		return err
	}
	if len(events) == 0 && keep.Before.IsZero() {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO waf_events (site, site_uid, time, body) VALUES (?, ?, ?, ?) RETURNING id`)
		if err != nil {
			return err
		}
		defer ins.Close()
		sites := map[string]bool{}
		for i := range events {
			e := &events[i]
			body, err := store.EncodeWAFEvent(*e)
			if err != nil {
				return err
			}
			if err := ins.QueryRowContext(ctx, e.Site, e.SiteUID, e.Time.UnixNano(), string(body)).Scan(&e.ID); err != nil {
				return err
			}
			sites[e.Site] = true
		}
		if keep.PerSite > 0 {
			for name := range sites {
				if _, err := tx.ExecContext(ctx, `DELETE FROM waf_events WHERE site = ? AND id < (
					SELECT id FROM waf_events WHERE site = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
					name, name, keep.PerSite-1); err != nil {
					return err
				}
			}
		}
		if !keep.Before.IsZero() {
			if _, err := tx.ExecContext(ctx, `DELETE FROM waf_events WHERE time < ?`, keep.Before.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append WAF events: %w", err)
	}
	return nil
}

// ListWAFEvents returns a page of one site's events, newest first.
func (s *Store) ListWAFEvents(ctx context.Context, opts store.WAFEventListOptions) (*store.WAFEventList, error) {
	before, err := store.ValidateWAFEventList(opts)
	if err != nil {
		return nil, err
	}
	limit := store.PageLimit(opts.Limit)
	q := `SELECT id, body FROM waf_events WHERE site = ? AND site_uid = ?`
	args := []any{opts.Site, opts.SiteUID}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list WAF events of %q: %w", opts.Site, err)
	}
	defer rows.Close()
	out := &store.WAFEventList{Items: []site.WAFEvent{}}
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("list WAF events of %q: %w", opts.Site, err)
		}
		e, err := store.DecodeWAFEvent(id, []byte(body))
		if err != nil {
			return nil, err
		}
		e.SiteUID = opts.SiteUID
		out.Items = append(out.Items, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list WAF events of %q: %w", opts.Site, err)
	}
	if len(out.Items) > limit {
		out.Items = out.Items[:limit]
		out.Continue = store.EncodeWAFEventContinue(out.Items[limit-1].ID)
	}
	return out, nil
}
