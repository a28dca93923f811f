package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/aipress/aipress/internal/store"
)

const jobColumns = `id, resource_version, body`

func scanJob(sc rowScanner) (*store.Job, error) {
	var (
		id, body string
		rv       int64
	)
	if err := sc.Scan(&id, &rv, &body); err != nil {
		return nil, err
	}
	return store.DecodeJob(id, rv, []byte(body))
}

// getJob reads the job id; ErrNotFound (unwrapped) when there is none.
func getJob(ctx context.Context, q querier, id string) (*store.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return j, err
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, c.ID).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if c.ResourceVersion, err = nextRevision(ctx, tx); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (id, kind, site, shard, phase, created, resource_version, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, string(c.Kind), c.Site, c.Shard, string(c.Phase), store.JobCreatedKey(c.CreatedAt), c.ResourceVersion, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("create job %q: %w", c.ID, err)
	}
	j.Phase, j.ResourceVersion = c.Phase, c.ResourceVersion
	return nil
}

// GetJob returns the job id.
func (s *Store) GetJob(ctx context.Context, id string) (*store.Job, error) {
	j, err := getJob(ctx, s.read, id)
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
	if after != "" {
		where = append(where, `(created < ? OR (created = ? AND id < ?))`)
		args = append(args, key, key, after)
	}
	if opts.Site != "" {
		where = append(where, `site = ?`)
		args = append(args, opts.Site)
	}
	if opts.Sites != nil {
		// An empty, non-nil Sites selects nothing: IN () is false.
		where = append(where, `site IN (`+placeholders(len(opts.Sites))+`)`)
		for _, s := range opts.Sites {
			args = append(args, s)
		}
	}
	if opts.Shard != "" {
		where = append(where, `shard = ?`)
		args = append(args, opts.Shard)
	}
	if opts.Kind != "" {
		where = append(where, `kind = ?`)
		args = append(args, string(opts.Kind))
	}
	if len(opts.Phases) > 0 {
		where = append(where, `phase IN (?`+strings.Repeat(`, ?`, len(opts.Phases)-1)+`)`)
		for _, p := range opts.Phases {
			args = append(args, string(p))
		}
	}
	if opts.ChangedAfter > 0 {
		where = append(where, `resource_version > ?`)
		args = append(args, opts.ChangedAfter)
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit+1)

	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
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
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeJobContinue(&list.Items[limit-1])
	}
	return list, nil
}

// UpdateJob applies mutate to the current value of the job and stores the
// result, in one writer transaction, as UpdateSite does.
func (s *Store) UpdateJob(ctx context.Context, id string, mutate func(*store.Job) error) (*store.Job, error) {
	var out *store.Job
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		next, err := getJob(ctx, tx, id) // an independent copy for mutate
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
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET site = ?, shard = ?, phase = ?, resource_version = ?, body = ? WHERE id = ?`,
			next.Site, next.Shard, string(next.Phase), next.ResourceVersion, string(body), id)
		out = next
		return err
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update job %q: %w", id, err)
	}
	return out, nil
}
