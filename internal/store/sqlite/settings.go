package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aipress/aipress/internal/store"
)

// GetSetting returns key's value and version (see store.Store).
func (s *Store) GetSetting(ctx context.Context, key string) (*store.Setting, error) {
	out := &store.Setting{Key: key}
	err := s.read.QueryRowContext(ctx, `SELECT value, version FROM settings WHERE key = ?`, key).Scan(&out.Value, &out.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("setting %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get setting %q: %w", key, err)
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
	var res sql.Result
	var err error
	if version == 0 {
		res, err = s.exec(ctx, `INSERT INTO settings (key, value, version) VALUES (?, ?, 1) ON CONFLICT (key) DO NOTHING`, key, value)
	} else {
		res, err = s.exec(ctx, `UPDATE settings SET value = ?, version = version + 1 WHERE key = ? AND version = ?`, value, key, version)
	}
	if err != nil {
		return nil, fmt.Errorf("put setting %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("put setting %q: %w", key, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("put setting %q at version %d: %w", key, version, store.ErrConflict)
	}
	return &store.Setting{Key: key, Value: append([]byte{}, value...), Version: version + 1}, nil
}

// ListSettings returns the settings whose key starts with prefix, by key
// (see store.Store).
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]store.Setting, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT key, value, version FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key`,
		len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, err)
	}
	defer rows.Close()
	out := []store.Setting{}
	for rows.Next() {
		var st store.Setting
		if err := rows.Scan(&st.Key, &st.Value, &st.Version); err != nil {
			return nil, fmt.Errorf("list settings %q: %w", prefix, err)
		}
		if st.Value == nil {
			st.Value = []byte{}
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, err)
	}
	return out, nil
}

// DeleteSetting removes key when its stored version is version (see
// store.Store).
func (s *Store) DeleteSetting(ctx context.Context, key string, version int64) error {
	res, err := s.exec(ctx, `DELETE FROM settings WHERE key = ? AND version = ?`, key, version)
	if err != nil {
		return fmt.Errorf("delete setting %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete setting %q: %w", key, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := s.GetSetting(ctx, key); err != nil {
		return err
	}
	return fmt.Errorf("delete setting %q at version %d: %w", key, version, store.ErrConflict)
}
