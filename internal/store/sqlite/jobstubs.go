package sqlite

import (
	"context"
	"errors"

	"github.com/aipress/aipress/internal/store"
)

// Placeholders until jobs are implemented.

func (s *Store) CreateJob(context.Context, *store.Job) error { return errors.ErrUnsupported }
func (s *Store) GetJob(context.Context, string) (*store.Job, error) {
	return nil, errors.ErrUnsupported
}
func (s *Store) ListJobs(context.Context, store.JobListOptions) (*store.JobList, error) {
	return nil, errors.ErrUnsupported
}
func (s *Store) UpdateJob(context.Context, string, func(*store.Job) error) (*store.Job, error) {
	return nil, errors.ErrUnsupported
}
