package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

const jobColumns = `id, resource_version, body`

func scanJob(row pgx.Row) (*store.Job, error) {
	var (
		id   string
		rv   int64
		body []byte
	)
	if err := row.Scan(&id, &rv, &body); err != nil {
		return nil, err
	}
	return store.DecodeJob(id, rv, body)
}

// getJob reads the job id (locking it when forUpdate); ErrNotFound
// (unwrapped) when there is none.
func getJob(ctx context.Context, q querier, id string, forUpdate bool) (*store.Job, error) {
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	j, err := scanJob(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return j, mapErr(err)
}

// CreateJob stores a new job. It fills an empty Phase with store.JobPending
// and sets j.ResourceVersion to the write's revision.
func (s *Store) CreateJob(ctx context.Context, j *store.Job) error {
	if err := store.ValidateNewJob(j); err != nil {
		return err
	}
	c := *j
	if c.Phase == "" {
		c.Phase = store.JobPending
	}
	body, err := store.EncodeJob(&c)
	if err != nil {
		return fmt.Errorf("create job %q: %w", c.ID, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// As CreateShard: the insert locks the new row before the revision
		// bump locks meta; a concurrent create of the same ID waits, then
		// fails with a unique violation.
		if _, err := tx.Exec(ctx, `INSERT INTO jobs (id, kind, site, shard, phase, created, resource_version, body)
			VALUES ($1, $2, $3, $4, $5, $6, 0, $7)`,
			c.ID, string(c.Kind), c.Site, c.Shard, string(c.Phase), store.JobCreatedKey(c.CreatedAt), body); err != nil {
			return mapErr(err)
		}
		return tx.QueryRow(ctx, `WITH r AS (UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value)
			UPDATE jobs SET resource_version = r.value FROM r WHERE jobs.id = $1 RETURNING jobs.resource_version`,
			c.ID).Scan(&c.ResourceVersion)
	})
	if err != nil {
		return fmt.Errorf("create job %q: %w", c.ID, err)
	}
	j.Phase, j.ResourceVersion = c.Phase, c.ResourceVersion
	return nil
}

// GetJob returns the job id.
func (s *Store) GetJob(ctx context.Context, id string) (*store.Job, error) {
	j, err := getJob(ctx, s.read, id, false)
	if err != nil {
		return nil, fmt.Errorf("get job %q: %w", id, err)
	}
	return j, nil
}

// ListJobs returns one page of jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, opts store.JobListOptions) (*store.JobList, error) {
	key, after, err := store.DecodeJobContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	limit := store.PageLimit(opts.Limit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if after != "" {
		k := arg(key)
		where = append(where, `(created < `+k+` OR (created = `+k+` AND id < `+arg(after)+`))`)
	}
	if opts.Site != "" {
		where = append(where, `site = `+arg(opts.Site))
	}
	if opts.Sites != nil {
		// An empty, non-nil Sites selects nothing: = ANY('{}') is false.
		where = append(where, `site = ANY(`+arg(opts.Sites)+`)`)
	}
	if opts.Shard != "" {
		where = append(where, `shard = `+arg(opts.Shard))
	}
	if opts.Kind != "" {
		where = append(where, `kind = `+arg(string(opts.Kind)))
	}
	if len(opts.Phases) > 0 {
		phases := make([]string, len(opts.Phases))
		for i, p := range opts.Phases {
			phases[i] = string(p)
		}
		where = append(where, `phase = ANY(`+arg(phases)+`)`)
	}
	if opts.ChangedAfter > 0 {
		where = append(where, `resource_version > `+arg(opts.ChangedAfter))
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ` + arg(limit+1)

	rows, err := s.read.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", mapErr(err))
	}
	defer rows.Close()
	list := &store.JobList{Items: []store.Job{}}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		list.Items = append(list.Items, *j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", mapErr(err))
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeJobContinue(&list.Items[limit-1])
	}
	return list, nil
}

// UpdateJob applies mutate to the current value of the job and stores the
// result, in one transaction that holds the job's row lock, as UpdateSite
// does.
func (s *Store) UpdateJob(ctx context.Context, id string, mutate func(*store.Job) error) (*store.Job, error) {
	var out *store.Job
	var mutateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := getJob(ctx, tx, id, true)
		if err != nil {
			return err
		}
		next, err := getJob(ctx, tx, id, false) // an independent copy for mutate
		if err != nil {
			return err
		}
		if err := mutate(next); err != nil {
			mutateErr = err
			return err
		}
		write, err := store.PrepareJobUpdate(before, next)
		if err != nil || !write {
			out = next
			return err
		}
		if next.ResourceVersion, err = nextRevision(ctx, tx); err != nil {
			return err
		}
		body, err := store.EncodeJob(next)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET site = $1, shard = $2, phase = $3, resource_version = $4, body = $5 WHERE id = $6`,
			next.Site, next.Shard, string(next.Phase), next.ResourceVersion, body, id); err != nil {
			return mapErr(err)
		}
		out = next
		return nil
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update job %q: %w", id, err)
	}
	return out, nil
}
