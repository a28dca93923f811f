package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

const incidentCols = `id, site, started, ended, cause`

func scanIncident(sc interface{ Scan(...any) error }) (store.Incident, error) {
	var in store.Incident
	var started int64
	var ended sql.NullInt64
	if err := sc.Scan(&in.ID, &in.Site, &started, &ended, &in.Cause); err != nil {
		return in, err
	}
	in.Started = time.Unix(0, started).UTC()
	if ended.Valid {
		t := time.Unix(0, ended.Int64).UTC()
		in.Ended = &t
	}
	return in, nil
}

// OpenIncident opens an incident of site unless one is open (see
// store.Store).
func (s *Store) OpenIncident(ctx context.Context, site string, at time.Time, cause string) (*store.Incident, bool, error) {
	if err := store.ValidateOpenIncident(site, at, cause); err != nil {
		return nil, false, err
	}
	var out store.Incident
	var made bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanIncident(tx.QueryRowContext(ctx, `INSERT INTO incidents (site, started, cause) VALUES (?, ?, ?)
			ON CONFLICT (site) WHERE ended IS NULL DO NOTHING RETURNING `+incidentCols, site, at.UnixNano(), cause))
		if err == nil {
			made = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		out, err = scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE site = ? AND ended IS NULL`, site))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("open incident of %q: %w", site, err)
	}
	return &out, made, nil
}

// CloseIncident closes site's open incident at at (see store.Store).
func (s *Store) CloseIncident(ctx context.Context, site string, at time.Time) (*store.Incident, error) {
	var out store.Incident
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanIncident(tx.QueryRowContext(ctx, `UPDATE incidents SET ended = max(started, ?) WHERE site = ? AND ended IS NULL RETURNING `+incidentCols,
			at.UnixNano(), site))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("open incident of %q: %w", site, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("close incident of %q: %w", site, err)
	}
	return &out, nil
}

// ListIncidents returns the incidents opts selects, by ID (see
// store.Store).
func (s *Store) ListIncidents(ctx context.Context, opts store.IncidentListOptions) ([]store.Incident, error) {
	if err := store.ValidateIncidentList(&opts); err != nil {
		return nil, err
	}
	out := []store.Incident{}
	if opts.Sites != nil && len(opts.Sites) == 0 {
		return out, nil
	}
	where := []string{`id > ?`}
	args := []any{opts.AfterID}
	if opts.Sites != nil {
		list, err := json.Marshal(opts.Sites)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		where = append(where, `site IN (SELECT value FROM json_each(?))`)
		args = append(args, string(list))
	}
	if opts.OpenOnly {
		where = append(where, `ended IS NULL`)
	}
	if !opts.To.IsZero() {
		where = append(where, `started < ?`)
		args = append(args, opts.To.UnixNano())
	}
	if !opts.From.IsZero() {
		where = append(where, `(ended IS NULL OR ended > ?)`)
		args = append(args, opts.From.UnixNano())
	}
	args = append(args, opts.Limit)
	rows, err := s.read.QueryContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE `+strings.Join(where, ` AND `)+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}
