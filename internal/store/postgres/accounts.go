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

// Accounts (store.Accounts), as in the sqlite package: organisations and
// users are a JSON body plus columns; memberships, invitations and reset
// tokens are plain rows whose foreign keys cascade on the deletion of their
// organisation or user; tokens are deleted explicitly. Concurrency: writes
// that depend on an organisation or user existing (a site, a token, a
// membership, a child organisation) key-share lock its row, and DeleteOrg
// and DeleteUser lock it FOR UPDATE before they count or delete, so the two
// cannot interleave. Unique constraints back the explicit duplicate checks.

const orgColumns = `name, kind, partner, resource_version, body`

func scanOrg(row pgx.Row) (*store.Org, error) {
	var name, kind, partner string
	var rv int64
	var body []byte
	if err := row.Scan(&name, &kind, &partner, &rv, &body); err != nil {
		return nil, err
	}
	return store.DecodeOrg(name, kind, partner, rv, body)
}

// getOrg reads the organisation name with lock (e.g. "FOR UPDATE", or "");
// ErrNotFound (unwrapped) when there is none.
func getOrg(ctx context.Context, q querier, name, lock string) (*store.Org, error) {
	o, err := scanOrg(q.QueryRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE name = $1 `+lock, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return o, mapErr(err)
}

// checkPartner checks o.Partner against the stored organisations,
// key-share locking the partner.
func checkPartner(ctx context.Context, tx pgx.Tx, o *store.Org) error {
	if o.Partner == "" {
		return nil
	}
	p, err := getOrg(ctx, tx, o.Partner, `FOR KEY SHARE`)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return store.CheckPartner(o, p)
}

// CreateOrg stores a new organisation and sets o.ResourceVersion (and an
// empty Kind to customer).
func (s *Store) CreateOrg(ctx context.Context, o *store.Org) error {
	if err := store.ValidateNewOrg(o); err != nil {
		return err
	}
	c := *o
	c.ResourceVersion = 0
	body, err := store.EncodeOrg(&c)
	if err != nil {
		return fmt.Errorf("create org %q: %w", o.Name, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// As CreateJob: the insert locks the new row before the revision
		// bump locks meta.
		if _, err := tx.Exec(ctx, `INSERT INTO orgs (`+orgColumns+`) VALUES ($1, $2, $3, 0, $4)`,
			c.Name, string(c.Kind), c.Partner, body); err != nil {
			return mapErr(err)
		}
		if err := checkPartner(ctx, tx, &c); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH r AS (UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value)
			UPDATE orgs SET resource_version = r.value FROM r WHERE orgs.name = $1 RETURNING orgs.resource_version`,
			c.Name).Scan(&c.ResourceVersion)
	})
	if err != nil {
		return fmt.Errorf("create org %q: %w", o.Name, err)
	}
	o.ResourceVersion = c.ResourceVersion
	return nil
}

// GetOrg returns the organisation name.
func (s *Store) GetOrg(ctx context.Context, name string) (*store.Org, error) {
	o, err := getOrg(ctx, s.read, name, "")
	if err != nil {
		return nil, fmt.Errorf("get org %q: %w", name, err)
	}
	return o, nil
}

// ListOrgs returns one page of organisations ordered by name (in byte
// order).
func (s *Store) ListOrgs(ctx context.Context, opts store.OrgListOptions) (*store.OrgList, error) {
	limit := store.PageLimit(opts.Limit)
	after, err := store.DecodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	args := []any{after}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	q := `SELECT ` + orgColumns + ` FROM orgs WHERE name > $1`
	if opts.Names != nil {
		q += ` AND name = ANY(` + arg(opts.Names) + `)`
	}
	if opts.Partner != "" {
		q += ` AND partner = ` + arg(opts.Partner)
	}
	q += ` ORDER BY name LIMIT ` + arg(limit+1)
	rows, err := s.read.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", mapErr(err))
	}
	defer rows.Close()
	list := &store.OrgList{Items: []store.Org{}}
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		list.Items = append(list.Items, *o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orgs: %w", mapErr(err))
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].Name)
	}
	return list, nil
}

// UpdateOrg applies mutate to the organisation and stores the result, in
// one transaction holding the organisation's row lock.
func (s *Store) UpdateOrg(ctx context.Context, name string, mutate func(*store.Org) error) (*store.Org, error) {
	var out *store.Org
	var mutateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := getOrg(ctx, tx, name, `FOR NO KEY UPDATE`)
		if err != nil {
			return err
		}
		next, err := getOrg(ctx, tx, name, "")
		if err != nil {
			return err
		}
		if err := mutate(next); err != nil {
			mutateErr = err
			return err
		}
		write, err := store.PrepareOrgUpdate(before, next)
		if err != nil {
			return err
		}
		out = next
		if !write {
			return nil
		}
		if next.Partner != before.Partner {
			if err := checkPartner(ctx, tx, next); err != nil {
				return err
			}
		}
		if next.ResourceVersion, err = nextRevision(ctx, tx); err != nil {
			return err
		}
		body, err := store.EncodeOrg(next)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE orgs SET partner = $1, resource_version = $2, body = $3 WHERE name = $4`,
			next.Partner, next.ResourceVersion, body, name)
		return mapErr(err)
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update org %q: %w", name, err)
	}
	return out, nil
}

// DeleteOrg removes the organisation with its memberships, invitations and
// tokens; it refuses while the organisation owns sites or organisations.
func (s *Store) DeleteOrg(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getOrg(ctx, tx, name, `FOR UPDATE`); err != nil {
			return err
		}
		if name == store.DefaultOrg {
			return fmt.Errorf("the default organisation stays: %w", store.ErrConflict)
		}
		var sites, orgs int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sites WHERE org = $1`, name).Scan(&sites); err != nil {
			return mapErr(err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM orgs WHERE partner = $1`, name).Scan(&orgs); err != nil {
			return mapErr(err)
		}
		switch {
		case sites > 0:
			return fmt.Errorf("it owns %d sites: %w", sites, store.ErrConflict)
		case orgs > 0:
			return fmt.Errorf("it is the partner of %d organisations: %w", orgs, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE org = $1`, name); err != nil {
			return mapErr(err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM orgs WHERE name = $1`, name)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("delete org %q: %w", name, err)
	}
	return nil
}

const userColumns = `id, email, password_hash, oidc_issuer, oidc_subject, body`

func scanUser(row pgx.Row) (*store.User, error) {
	var id, email, hash, issuer, subject string
	var body []byte
	if err := row.Scan(&id, &email, &hash, &issuer, &subject, &body); err != nil {
		return nil, err
	}
	return store.DecodeUser(id, email, hash, issuer, subject, body)
}

// getUserWhere reads the one user cond (with its args) selects; ErrNotFound
// (unwrapped) when there is none.
func getUserWhere(ctx context.Context, q querier, cond string, args ...any) (*store.User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+cond, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return u, mapErr(err)
}

// checkUserUnique fails with ErrAlreadyExists when another user than u.ID
// has u's email or OIDC identity (the unique indexes catch concurrent
// writes too).
func checkUserUnique(ctx context.Context, q querier, u *store.User) error {
	var other string
	err := q.QueryRow(ctx, `SELECT id FROM users WHERE id <> $1 AND (email = $2 OR (oidc_issuer <> '' AND oidc_issuer = $3 AND oidc_subject = $4)) LIMIT 1`,
		u.ID, u.Email, u.OIDCIssuer, u.OIDCSubject).Scan(&other)
	switch {
	case err == nil:
		return fmt.Errorf("user %q has that email or oidc identity: %w", other, store.ErrAlreadyExists)
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	}
	return mapErr(err)
}

// CreateUser stores a new user (its email lowercased).
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	if u == nil {
		return fmt.Errorf("create user: nil user: %w", store.ErrInvalid)
	}
	c := *u
	if err := store.ValidateUser(&c); err != nil {
		return fmt.Errorf("create user %q: %w", u.ID, err)
	}
	body, err := store.EncodeUser(&c)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.ID, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkUserUnique(ctx, tx, &c); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, c.Email, c.PasswordHash, c.OIDCIssuer, c.OIDCSubject, body)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.ID, err)
	}
	u.Email = c.Email
	return nil
}

// GetUser returns the user id.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get user %q: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns the user with that email (compared lowercase).
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `email = $1`, strings.ToLower(email))
	if err != nil {
		return nil, fmt.Errorf("get user by email %q: %w", email, err)
	}
	return u, nil
}

// GetUserByOIDC returns the user linked to the OIDC identity.
func (s *Store) GetUserByOIDC(ctx context.Context, issuer, subject string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `oidc_issuer <> '' AND oidc_issuer = $1 AND oidc_subject = $2`, issuer, subject)
	if err != nil {
		return nil, fmt.Errorf("get user by oidc %q %q: %w", issuer, subject, err)
	}
	return u, nil
}

// ListUsers returns one page of users ordered by ID (in byte order).
func (s *Store) ListUsers(ctx context.Context, opts store.UserListOptions) (*store.UserList, error) {
	limit := store.PageLimit(opts.Limit)
	after, err := store.DecodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	args := []any{after}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	q := `SELECT ` + userColumns + ` FROM users WHERE id > $1`
	if opts.Org != "" {
		q += ` AND id IN (SELECT user_id FROM memberships WHERE org = ` + arg(opts.Org) + `)`
	}
	q += ` ORDER BY id LIMIT ` + arg(limit+1)
	rows, err := s.read.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", mapErr(err))
	}
	defer rows.Close()
	list := &store.UserList{Items: []store.User{}}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		list.Items = append(list.Items, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", mapErr(err))
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].ID)
	}
	return list, nil
}

// UpdateUser applies mutate to the user and stores the result, in one
// transaction holding the user's row lock.
func (s *Store) UpdateUser(ctx context.Context, id string, mutate func(*store.User) error) (*store.User, error) {
	var out *store.User
	var mutateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := getUserWhere(ctx, tx, `id = $1 FOR NO KEY UPDATE`, id)
		if err != nil {
			return err
		}
		next, err := getUserWhere(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		if err := mutate(next); err != nil {
			mutateErr = err
			return err
		}
		write, err := store.PrepareUserUpdate(before, next)
		if err != nil {
			return err
		}
		out = next
		if !write {
			return nil
		}
		if err := checkUserUnique(ctx, tx, next); err != nil {
			return err
		}
		body, err := store.EncodeUser(next)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE users SET email = $1, password_hash = $2, oidc_issuer = $3, oidc_subject = $4, body = $5 WHERE id = $6`,
			next.Email, next.PasswordHash, next.OIDCIssuer, next.OIDCSubject, body, id)
		return mapErr(err)
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update user %q: %w", id, err)
	}
	return out, nil
}

// DeleteUser removes the user with its memberships, reset tokens and tokens.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getUserWhere(ctx, tx, `id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = $1`, id); err != nil {
			return mapErr(err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	return nil
}

// PutMembership creates or replaces the (m.Org, m.UserID) membership.
func (s *Store) PutMembership(ctx context.Context, m store.Membership) error {
	if err := store.ValidateMembership(m); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getOrg(ctx, tx, m.Org, `FOR KEY SHARE`); err != nil {
			return fmt.Errorf("organisation %q: %w", m.Org, err)
		}
		if _, err := getUserWhere(ctx, tx, `id = $1 FOR KEY SHARE`, m.UserID); err != nil {
			return fmt.Errorf("user %q: %w", m.UserID, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO memberships (org, user_id, role, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org, user_id) DO UPDATE SET role = excluded.role`,
			m.Org, m.UserID, string(m.Role), m.CreatedAt)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put membership %s/%s: %w", m.Org, m.UserID, err)
	}
	return nil
}

// DeleteMembership removes the (org, userID) membership.
func (s *Store) DeleteMembership(ctx context.Context, org, userID string) error {
	tag, err := s.write.Exec(ctx, `DELETE FROM memberships WHERE org = $1 AND user_id = $2`, org, userID)
	if err != nil {
		return fmt.Errorf("delete membership %s/%s: %w", org, userID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete membership %s/%s: %w", org, userID, store.ErrNotFound)
	}
	return nil
}

// ListMemberships returns the memberships f selects ordered by org, then
// user (in byte order).
func (s *Store) ListMemberships(ctx context.Context, f store.MembershipFilter) ([]store.Membership, error) {
	q := `SELECT org, user_id, role, created_at FROM memberships WHERE true`
	var args []any
	if f.Org != "" {
		args = append(args, f.Org)
		q += fmt.Sprintf(` AND org = $%d`, len(args))
	}
	if f.UserID != "" {
		args = append(args, f.UserID)
		q += fmt.Sprintf(` AND user_id = $%d`, len(args))
	}
	rows, err := s.read.Query(ctx, q+` ORDER BY org, user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", mapErr(err))
	}
	defer rows.Close()
	out := []store.Membership{}
	for rows.Next() {
		var m store.Membership
		var role string
		if err := rows.Scan(&m.Org, &m.UserID, &role, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("list memberships: %w", err)
		}
		m.Role, m.CreatedAt = store.OrgRole(role), m.CreatedAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships: %w", mapErr(err))
	}
	return out, nil
}

const inviteColumns = `id, org, email, role, hash, created_by, created_at, expires_at, accepted_at`

func scanInvite(row pgx.Row) (*store.Invite, error) {
	var inv store.Invite
	var role string
	if err := row.Scan(&inv.ID, &inv.Org, &inv.Email, &role, &inv.Hash, &inv.CreatedBy, &inv.CreatedAt, &inv.ExpiresAt, &inv.AcceptedAt); err != nil {
		return nil, err
	}
	inv.Role = store.OrgRole(role)
	inv.CreatedAt, inv.ExpiresAt, inv.AcceptedAt = inv.CreatedAt.UTC(), inv.ExpiresAt.UTC(), utcPtr(inv.AcceptedAt)
	return &inv, nil
}

// CreateInvite stores a new invitation (its email lowercased).
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	if err := store.ValidateNewInvite(&inv); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getOrg(ctx, tx, inv.Org, `FOR KEY SHARE`); err != nil {
			return fmt.Errorf("organisation %q: %w", inv.Org, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO invites (`+inviteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			inv.ID, inv.Org, inv.Email, string(inv.Role), inv.Hash, inv.CreatedBy, inv.CreatedAt, inv.ExpiresAt, inv.AcceptedAt)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create invite %q: %w", inv.ID, err)
	}
	return nil
}

// ListInvites returns the organisation's invitations ordered by ID.
func (s *Store) ListInvites(ctx context.Context, org string) ([]store.Invite, error) {
	rows, err := s.read.Query(ctx, `SELECT `+inviteColumns+` FROM invites WHERE org = $1 ORDER BY id`, org)
	if err != nil {
		return nil, fmt.Errorf("list invites of %q: %w", org, mapErr(err))
	}
	defer rows.Close()
	out := []store.Invite{}
	for rows.Next() {
		inv, err := scanInvite(rows)
		if err != nil {
			return nil, fmt.Errorf("list invites of %q: %w", org, err)
		}
		out = append(out, *inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list invites of %q: %w", org, mapErr(err))
	}
	return out, nil
}

// DeleteInvite removes the invitation id.
func (s *Store) DeleteInvite(ctx context.Context, id string) error {
	tag, err := s.write.Exec(ctx, `DELETE FROM invites WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete invite %q: %w", id, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete invite %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// AcceptInvite marks the invitation whose secret hashes to hash accepted at
// at. The row lock makes concurrent accepts queue: the first wins, the
// others then read it accepted.
func (s *Store) AcceptInvite(ctx context.Context, hash string, at time.Time) (*store.Invite, error) {
	var out *store.Invite
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inv, err := scanInvite(tx.QueryRow(ctx, `SELECT `+inviteColumns+` FROM invites WHERE hash = $1 FOR UPDATE`, hash))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return mapErr(err)
		case inv.AcceptedAt != nil:
			return fmt.Errorf("already accepted: %w", store.ErrConflict)
		case store.Expired(inv.ExpiresAt, at):
			return fmt.Errorf("expired: %w", store.ErrNotFound)
		}
		acc := at.UTC().Truncate(time.Microsecond)
		inv.AcceptedAt = &acc
		if _, err := tx.Exec(ctx, `UPDATE invites SET accepted_at = $1 WHERE id = $2`, acc, inv.ID); err != nil {
			return mapErr(err)
		}
		out = inv
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accept invite: %w", err)
	}
	return out, nil
}

// CreateResetToken stores a new password reset token.
func (s *Store) CreateResetToken(ctx context.Context, rt store.ResetToken) error {
	if err := store.ValidateNewResetToken(rt); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getUserWhere(ctx, tx, `id = $1 FOR KEY SHARE`, rt.UserID); err != nil {
			return fmt.Errorf("user %q: %w", rt.UserID, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO reset_tokens (hash, user_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)`,
			rt.Hash, rt.UserID, rt.CreatedAt, rt.ExpiresAt, rt.UsedAt)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create reset token for %q: %w", rt.UserID, err)
	}
	return nil
}

// UseResetToken marks the reset token whose secret hashes to hash used at
// at; the row lock lets only the first of concurrent uses succeed.
func (s *Store) UseResetToken(ctx context.Context, hash string, at time.Time) (*store.ResetToken, error) {
	var out *store.ResetToken
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var rt store.ResetToken
		err := tx.QueryRow(ctx, `SELECT hash, user_id, created_at, expires_at, used_at FROM reset_tokens WHERE hash = $1 FOR UPDATE`, hash).
			Scan(&rt.Hash, &rt.UserID, &rt.CreatedAt, &rt.ExpiresAt, &rt.UsedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return mapErr(err)
		case rt.UsedAt != nil:
			return fmt.Errorf("already used: %w", store.ErrNotFound)
		case store.Expired(rt.ExpiresAt, at):
			return fmt.Errorf("expired: %w", store.ErrNotFound)
		}
		rt.CreatedAt, rt.ExpiresAt = rt.CreatedAt.UTC(), rt.ExpiresAt.UTC()
		u := at.UTC().Truncate(time.Microsecond)
		rt.UsedAt = &u
		if _, err := tx.Exec(ctx, `UPDATE reset_tokens SET used_at = $1 WHERE hash = $2`, u, hash); err != nil {
			return mapErr(err)
		}
		out = &rt
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("use reset token: %w", err)
	}
	return out, nil
}
