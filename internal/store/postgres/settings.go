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

// ListSettings returns the settings whose key starts with prefix, by key
// (see store.Store).
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]store.Setting, error) {
	rows, err := s.read.Query(ctx, `SELECT key, value, version FROM settings WHERE substr(key, 1, $1) = $2 ORDER BY key COLLATE "C"`,
		len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, mapErr(err))
	}
	defer rows.Close()
	out := []store.Setting{}
	for rows.Next() {
		var st store.Setting
		if err := rows.Scan(&st.Key, &st.Value, &st.Version); err != nil {
			return nil, fmt.Errorf("list settings %q: %w", prefix, mapErr(err))
		}
		if st.Value == nil {
			st.Value = []byte{}
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, mapErr(err))
	}
	return out, nil
}

// DeleteSetting removes key when its stored version is version (see
// store.Store).
func (s *Store) DeleteSetting(ctx context.Context, key string, version int64) error {
	tag, err := s.write.Exec(ctx, `DELETE FROM settings WHERE key = $1 AND version = $2`, key, version)
	if err != nil {
		return fmt.Errorf("delete setting %q: %w", key, mapErr(err))
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := s.GetSetting(ctx, key); err != nil {
		return err
	}
	return fmt.Errorf("delete setting %q at version %d: %w", key, version, store.ErrConflict)
}
