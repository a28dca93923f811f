package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

// tokenColumns are the columns scanToken reads.
const tokenColumns = `id, name, role, subject, hash, created_at, kind, prefix, user_id, org, expires_at, last_used_at, last_used_ip, replaced_by`

func scanToken(row pgx.Row) (*store.Token, error) {
	var t store.Token
	var role, kind string
	if err := row.Scan(&t.ID, &t.Name, &role, &t.Subject, &t.Hash, &t.CreatedAt, &kind, &t.Prefix, &t.UserID, &t.Org,
		&t.ExpiresAt, &t.LastUsedAt, &t.LastUsedIP, &t.ReplacedBy); err != nil {
		return nil, err
	}
	t.Role, t.Kind = store.Role(role), store.TokenKind(kind)
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.LastUsedAt = utcPtr(t.ExpiresAt), utcPtr(t.LastUsedAt)
	return &t, nil
}

// utcPtr returns *p in UTC (nil for nil).
func utcPtr(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	u := p.UTC()
	return &u
}

// checkTokenScope checks that t's user and organisation exist, key-share
// locking them so that DeleteUser and DeleteOrg (which delete their tokens)
// wait for this transaction.
func checkTokenScope(ctx context.Context, tx pgx.Tx, t *store.Token) error {
	var one int
	if t.Org != "" {
		err := tx.QueryRow(ctx, `SELECT 1 FROM orgs WHERE name = $1 FOR KEY SHARE`, t.Org).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("organisation %q does not exist: %w", t.Org, store.ErrInvalid)
		}
		if err != nil {
			return mapErr(err)
		}
	}
	if t.UserID != "" {
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE`, t.UserID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user %q does not exist: %w", t.UserID, store.ErrInvalid)
		}
		if err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// CreateToken stores t. Hash must be the lowercase SHA-256 hex of the secret;
// anything else is refused, so a secret is never stored by mistake.
// CreatedAt is stored to the microsecond.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := store.ValidateNewToken(t); err != nil {
		return err
	}
	if err := store.NormalizeTokenScope(&t); err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkTokenScope(ctx, tx, &t); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			t.ID, t.Name, string(t.Role), t.Subject, t.Hash, t.CreatedAt,
			string(t.Kind), t.Prefix, t.UserID, t.Org, t.ExpiresAt, t.LastUsedAt, t.LastUsedIP, t.ReplacedBy)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, err)
	}
	return nil
}

// LookupToken returns the token whose secret hashes to hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	t, err := scanToken(s.read.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("lookup token: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", mapErr(err))
	}
	return t, nil
}

// tokenWhere returns the WHERE clause (with a leading " WHERE", or "") and
// arguments that select f's tokens.
func tokenWhere(f store.TokenFilter) (string, []any) {
	var conds []string
	var args []any
	if f.ID != "" {
		args = append(args, f.ID)
		conds = append(conds, fmt.Sprintf(`id = $%d`, len(args)))
	}
	if f.UserID != "" {
		args = append(args, f.UserID)
		conds = append(conds, fmt.Sprintf(`user_id = $%d`, len(args)))
	}
	if f.Org != "" {
		args = append(args, f.Org)
		conds = append(conds, fmt.Sprintf(`org = $%d`, len(args)))
	}
	if kinds := store.TokenKindFilter(f.Kind); kinds != nil {
		args = append(args, kinds)
		conds = append(conds, fmt.Sprintf(`kind = ANY($%d)`, len(args)))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return ` WHERE ` + strings.Join(conds, ` AND `), args
}

// ListTokens returns the tokens f selects ordered by ID (in byte order),
// without hashes.
func (s *Store) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	where, args := tokenWhere(f)
	rows, err := s.read.Query(ctx, `SELECT `+tokenColumns+` FROM tokens`+where+` ORDER BY id COLLATE "C"`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", mapErr(err))
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
// transaction holding the token's row lock.
func (s *Store) UpdateToken(ctx context.Context, id string, mutate func(*store.Token) error) (*store.Token, error) {
	var out *store.Token
	var mutateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return mapErr(err)
		}
		next := *before
		next.ExpiresAt, next.LastUsedAt = utcPtr(before.ExpiresAt), utcPtr(before.LastUsedAt)
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
		_, err = tx.Exec(ctx, `UPDATE tokens SET name = $1, role = $2, subject = $3, kind = $4, prefix = $5, user_id = $6, org = $7,
			expires_at = $8, last_used_at = $9, last_used_ip = $10, replaced_by = $11 WHERE id = $12`,
			next.Name, string(next.Role), next.Subject, string(next.Kind), next.Prefix, next.UserID, next.Org,
			next.ExpiresAt, next.LastUsedAt, next.LastUsedIP, next.ReplacedBy, id)
		return mapErr(err)
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update token %q: %w", id, err)
	}
	return out, nil
}

// TouchToken records that the token id was accepted at at from ip.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time, ip string) error {
	tag, err := s.write.Exec(ctx, `UPDATE tokens SET last_used_at = $1, last_used_ip = $2 WHERE id = $3`, at, ip, id)
	if err != nil {
		return fmt.Errorf("touch token %q: %w", id, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
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
	tag, err := s.write.Exec(ctx, `DELETE FROM tokens`+where, args...)
	if err != nil {
		return 0, fmt.Errorf("delete tokens: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
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
