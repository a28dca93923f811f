package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// timeFormat is how token and audit times are stored (always UTC).
const timeFormat = time.RFC3339Nano

// CreateToken stores t. Hash must be the lowercase SHA-256 hex of the secret;
// anything else is refused, so a secret is never stored by mistake.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := store.ValidateNewToken(t); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM tokens WHERE id = ? OR hash = ? LIMIT 1`, t.ID, t.Hash).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tokens (id, name, role, subject, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), t.Subject, t.Hash, t.CreatedAt.UTC().Format(timeFormat))
		return err
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, err)
	}
	return nil
}

// LookupToken returns the token whose secret hashes to hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	var t store.Token
	var role, created string
	err := s.read.QueryRowContext(ctx, `SELECT id, name, role, subject, hash, created_at FROM tokens WHERE hash = ?`, hash).
		Scan(&t.ID, &t.Name, &role, &t.Subject, &t.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("lookup token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", err)
	}
	t.Role = store.Role(role)
	if t.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
		return nil, fmt.Errorf("lookup token: created_at of %q: %w", t.ID, err)
	}
	return &t, nil
}

// ListTokens returns every token ordered by ID, without hashes.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, name, role, subject, created_at FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		var t store.Token
		var role, created string
		if err := rows.Scan(&t.ID, &t.Name, &role, &t.Subject, &created); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Role = store.Role(role)
		if t.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
			return nil, fmt.Errorf("list tokens: created_at of %q: %w", t.ID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken removes the token with that ID.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.write.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete token %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete token %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete token %q: %w", id, store.ErrNotFound)
	}
	return nil
}
