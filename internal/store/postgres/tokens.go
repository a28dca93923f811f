package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

// CreateToken stores t. Hash must be the lowercase SHA-256 hex of the secret;
// anything else is refused, so a secret is never stored by mistake.
// CreatedAt is stored to the microsecond.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := store.ValidateNewToken(t); err != nil {
		return err
	}
	_, err := s.write.Exec(ctx, `INSERT INTO tokens (id, name, role, subject, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.Name, string(t.Role), t.Subject, t.Hash, t.CreatedAt)
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, mapErr(err))
	}
	return nil
}

// LookupToken returns the token whose secret hashes to hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	var t store.Token
	var role string
	err := s.read.QueryRow(ctx, `SELECT id, name, role, subject, hash, created_at FROM tokens WHERE hash = $1`, hash).
		Scan(&t.ID, &t.Name, &role, &t.Subject, &t.Hash, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("lookup token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", mapErr(err))
	}
	t.Role = store.Role(role)
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

// ListTokens returns every token ordered by ID (in byte order), without
// hashes.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.read.Query(ctx, `SELECT id, name, role, subject, created_at FROM tokens ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		var t store.Token
		var role string
		if err := rows.Scan(&t.ID, &t.Name, &role, &t.Subject, &t.CreatedAt); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Role = store.Role(role)
		t.CreatedAt = t.CreatedAt.UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken removes the token with that ID.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	tag, err := s.write.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete token %q: %w", id, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete token %q: %w", id, store.ErrNotFound)
	}
	return nil
}
