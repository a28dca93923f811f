package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Placeholders until shards, changes and token management are implemented.

var errTODO = errors.ErrUnsupported

func (s *Store) Changes(context.Context, int64, store.ChangeOptions) (*store.ChangeList, error) {
	return nil, errTODO
}
func (s *Store) PruneTombstones(context.Context, int64) (int, error)             { return 0, errTODO }
func (s *Store) CreateShard(context.Context, *store.Shard) error                 { return errTODO }
func (s *Store) GetShard(context.Context, string) (*store.Shard, error)          { return nil, errTODO }
func (s *Store) ListShards(context.Context) ([]store.Shard, error)               { return nil, errTODO }
func (s *Store) DeleteShard(context.Context, string) error                       { return errTODO }
func (s *Store) ListTokens(context.Context) ([]store.Token, error)               { return nil, errTODO }
func (s *Store) DeleteToken(context.Context, string) error                       { return errTODO }
func (s *Store) Heartbeat(context.Context, string, time.Time, store.Usage) error { return errTODO }
func (s *Store) UpdateShard(context.Context, string, func(*store.Shard) error) (*store.Shard, error) {
	return nil, errTODO
}
