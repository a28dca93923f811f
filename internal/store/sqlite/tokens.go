package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// timeFormat is how token and audit times are stored (always UTC).
const timeFormat = time.RFC3339Nano

// tokenColumns are the columns scanToken reads.
const tokenColumns = `id, name, role, subject, hash, created_at, kind, prefix, user_id, org, expires_at, last_used_at, last_used_ip, replaced_by`

func scanToken(sc rowScanner) (*store.Token, error) {
	var t store.Token
	var role, created, kind string
	var expires, lastUsed sql.NullString
	if err := sc.Scan(&t.ID, &t.Name, &role, &t.Subject, &t.Hash, &created, &kind, &t.Prefix, &t.UserID, &t.Org,
		&expires, &lastUsed, &t.LastUsedIP, &t.ReplacedBy); err != nil {
		return nil, err
	}
	t.Role, t.Kind = store.Role(role), store.TokenKind(kind)
	var err error
	if t.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
		return nil, fmt.Errorf("created_at of token %q: %w", t.ID, err)
	}
	if t.ExpiresAt, err = parseTime(expires); err != nil {
		return nil, fmt.Errorf("expires_at of token %q: %w", t.ID, err)
	}
	if t.LastUsedAt, err = parseTime(lastUsed); err != nil {
		return nil, fmt.Errorf("last_used_at of token %q: %w", t.ID, err)
	}
	return &t, nil
}

// formatTime is how optional times are stored: NULL for nil.
func formatTime(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: t.UTC().Format(timeFormat), Valid: true}
}

// parseTime is the inverse of formatTime.
func parseTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := time.Parse(timeFormat, s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// checkTokenScope checks that t's user and organisation exist.
func checkTokenScope(ctx context.Context, q querier, t *store.Token) error {
	if t.Org != "" {
		if err := orgExists(ctx, q, t.Org); err != nil {
			return err
		}
	}
	if t.UserID != "" {
		var one int
		err := q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, t.UserID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q does not exist: %w", t.UserID, store.ErrInvalid)
		}
		return err
	}
	return nil
}

// CreateToken stores t. Hash must be the lowercase SHA-256 hex of the secret;
// anything else is refused, so a secret is never stored by mistake.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := store.ValidateNewToken(t); err != nil {
		return err
	}
	if err := store.NormalizeTokenScope(&t); err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, err)
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
		if err := checkTokenScope(ctx, tx, &t); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), t.Subject, t.Hash, t.CreatedAt.UTC().Format(timeFormat),
			string(t.Kind), t.Prefix, t.UserID, t.Org, formatTime(t.ExpiresAt), formatTime(t.LastUsedAt), t.LastUsedIP, t.ReplacedBy)
		return err
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, err)
	}
	return nil
}

// LookupToken returns the token whose secret hashes to hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	t, err := scanToken(s.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("lookup token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", err)
	}
	return t, nil
}

// tokenWhere returns the WHERE clause (with a leading " WHERE", or "") and
// arguments that select f's tokens.
func tokenWhere(f store.TokenFilter) (string, []any) {
	var conds []string
	var args []any
	if f.ID != "" {
		conds, args = append(conds, `id = ?`), append(args, f.ID)
	}
	if f.UserID != "" {
		conds, args = append(conds, `user_id = ?`), append(args, f.UserID)
	}
	if f.Org != "" {
		conds, args = append(conds, `org = ?`), append(args, f.Org)
	}
	if kinds := store.TokenKindFilter(f.Kind); kinds != nil {
		conds = append(conds, `kind IN (`+placeholders(len(kinds))+`)`)
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return ` WHERE ` + strings.Join(conds, ` AND `), args
}

// ListTokens returns the tokens f selects ordered by ID, without hashes.
func (s *Store) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	where, args := tokenWhere(f)
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens`+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Hash = ""
		out = append(out, *t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// UpdateToken applies mutate to the token id and stores the result, in one
// writer transaction.
func (s *Store) UpdateToken(ctx context.Context, id string, mutate func(*store.Token) error) (*store.Token, error) {
	var out *store.Token
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		next := *before
		next.ExpiresAt, next.LastUsedAt = clonePtr(before.ExpiresAt), clonePtr(before.LastUsedAt)
		if err := mutate(&next); err != nil {
			mutateErr = err
			return err
		}
		write, err := store.PrepareTokenUpdate(before, &next)
		if err != nil {
			return err
		}
		out = &next
		if !write {
			return nil
		}
		if err := checkTokenScope(ctx, tx, &next); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET name = ?, role = ?, subject = ?, kind = ?, prefix = ?, user_id = ?, org = ?,
			expires_at = ?, last_used_at = ?, last_used_ip = ?, replaced_by = ? WHERE id = ?`,
			next.Name, string(next.Role), next.Subject, string(next.Kind), next.Prefix, next.UserID, next.Org,
			formatTime(next.ExpiresAt), formatTime(next.LastUsedAt), next.LastUsedIP, next.ReplacedBy, id)
		return err
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update token %q: %w", id, err)
	}
	return out, nil
}

// clonePtr returns a copy of *p (nil for nil), so mutate cannot change the
// value compared against.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// TouchToken records that the token id was accepted at at from ip.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time, ip string) error {
	res, err := s.exec(ctx, `UPDATE tokens SET last_used_at = ?, last_used_ip = ? WHERE id = ?`,
		at.UTC().Format(timeFormat), ip, id)
	if err != nil {
		return fmt.Errorf("touch token %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("touch token %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("touch token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// DeleteTokens removes the tokens f selects and returns how many.
func (s *Store) DeleteTokens(ctx context.Context, f store.TokenFilter) (int, error) {
	if err := store.ValidateDeleteTokens(f); err != nil {
		return 0, err
	}
	where, args := tokenWhere(f)
	res, err := s.exec(ctx, `DELETE FROM tokens`+where, args...)
	if err != nil {
		return 0, fmt.Errorf("delete tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete tokens: %w", err)
	}
	return int(n), nil
}

// DeleteToken removes the token with that ID.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM tokens WHERE id = ?`, id)
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
