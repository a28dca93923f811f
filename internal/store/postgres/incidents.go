package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

const incidentCols = `id, site, started, ended, cause`

func scanIncident(sc pgx.Row) (store.Incident, error) {
	var in store.Incident
	var started int64
	var ended *int64
	if err := sc.Scan(&in.ID, &in.Site, &started, &ended, &in.Cause); err != nil {
		return in, err
	}
	in.Started = time.Unix(0, started).UTC()
	if ended != nil {
		t := time.Unix(0, *ended).UTC()
		in.Ended = &t
	}
	return in, nil
}

// OpenIncident opens an incident of site unless one is open (see
// store.Store). The partial unique index incidents_open keeps concurrent
// openers to one row: the loser's INSERT does nothing and it reads the
// winner's.
func (s *Store) OpenIncident(ctx context.Context, site string, at time.Time, cause string) (*store.Incident, bool, error) {
	if err := store.ValidateOpenIncident(site, at, cause); err != nil {
		return nil, false, err
	}
	out, err := scanIncident(s.write.QueryRow(ctx, `INSERT INTO incidents (site, started, cause) VALUES ($1, $2, $3)
		ON CONFLICT (site) WHERE ended IS NULL DO NOTHING RETURNING `+incidentCols, site, at.UnixNano(), cause))
	if err == nil {
		return &out, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("open incident of %q: %w", site, mapErr(err))
	}
	out, err = scanIncident(s.write.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE site = $1 AND ended IS NULL`, site))
	if err != nil {
		// Closed between the two statements: the caller's next probe
		// report opens a new one.
		return nil, false, fmt.Errorf("open incident of %q: %w", site, mapErr(err))
	}
	return &out, false, nil
}

// CloseIncident closes site's open incident at at (see store.Store).
func (s *Store) CloseIncident(ctx context.Context, site string, at time.Time) (*store.Incident, error) {
	out, err := scanIncident(s.write.QueryRow(ctx, `UPDATE incidents SET ended = greatest(started, $1) WHERE site = $2 AND ended IS NULL RETURNING `+incidentCols,
		at.UnixNano(), site))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("open incident of %q: %w", site, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("close incident of %q: %w", site, mapErr(err))
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
	where := []string{`id > $1`}
	args := []any{opts.AfterID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if opts.Sites != nil {
		where = append(where, `site = ANY(`+arg(opts.Sites)+`)`)
	}
	if opts.OpenOnly {
		where = append(where, `ended IS NULL`)
	}
	if !opts.To.IsZero() {
		where = append(where, `started < `+arg(opts.To.UnixNano()))
	}
	if !opts.From.IsZero() {
		where = append(where, `(ended IS NULL OR ended > `+arg(opts.From.UnixNano())+`)`)
	}
	rows, err := s.read.Query(ctx, `SELECT `+incidentCols+` FROM incidents WHERE `+strings.Join(where, ` AND `)+` ORDER BY id LIMIT `+arg(opts.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", mapErr(err))
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
		return nil, fmt.Errorf("list incidents: %w", mapErr(err))
	}
	return out, nil
}
