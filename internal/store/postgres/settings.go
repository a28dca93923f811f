package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aipress/aipress/internal/store"
)

// GetSetting returns key's value and version (see store.Store).
func (s *Store) GetSetting(ctx context.Context, key string) (*store.Setting, error) {
	out := &store.Setting{Key: key}
	err := s.read.QueryRow(ctx, `SELECT value, version FROM settings WHERE key = $1`, key).Scan(&out.Value, &out.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("setting %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get setting %q: %w", key, mapErr(err))
	}
	if out.Value == nil {
		out.Value = []byte{}
	}
	return out, nil
}

// PutSetting writes key's value when its stored version is version (see
// store.Store).
func (s *Store) PutSetting(ctx context.Context, key string, value []byte, version int64) (*store.Setting, error) {
	if err := store.ValidateSetting(key, value, version); err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	var tag pgconn.CommandTag
	var err error
	if version == 0 {
		tag, err = s.write.Exec(ctx, `INSERT INTO settings (key, value, version) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING`, key, value)
	} else {
		tag, err = s.write.Exec(ctx, `UPDATE settings SET value = $1, version = version + 1 WHERE key = $2 AND version = $3`, value, key, version)
	}
	if err != nil {
		return nil, fmt.Errorf("put setting %q: %w", key, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return nil, fmt.Errorf("put setting %q at version %d: %w", key, version, store.ErrConflict)
	}
	return &store.Setting{Key: key, Value: append([]byte{}, value...), Version: version + 1}, nil
}
