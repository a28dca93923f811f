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

// Accounts (store.Accounts). Organisations and users are a JSON body plus
// columns for what is looked up or constrained; memberships, invitations and
// reset tokens are plain rows. Foreign keys with ON DELETE CASCADE remove a
// user's or an organisation's memberships, invitations and reset tokens;
// tokens (whose user_id and org columns cannot carry foreign keys, see the
// migration) are deleted explicitly in the same transaction.

const orgColumns = `name, kind, partner, resource_version, body`

func scanOrg(sc rowScanner) (*store.Org, error) {
	var name, kind, partner, body string
	var rv int64
	if err := sc.Scan(&name, &kind, &partner, &rv, &body); err != nil {
		return nil, err
	}
	return store.DecodeOrg(name, kind, partner, rv, []byte(body))
}

// getOrg reads the organisation name; ErrNotFound (unwrapped) when there is
// none.
func getOrg(ctx context.Context, q querier, name string) (*store.Org, error) {
	o, err := scanOrg(q.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM orgs WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return o, err
}

// checkPartner checks o.Partner against the stored organisations.
func checkPartner(ctx context.Context, q querier, o *store.Org) error {
	if o.Partner == "" {
		return nil
	}
	p, err := getOrg(ctx, q, o.Partner)
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getOrg(ctx, tx, c.Name); err == nil {
			return store.ErrAlreadyExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := checkPartner(ctx, tx, &c); err != nil {
			return err
		}
		rev, err := nextRevision(ctx, tx)
		if err != nil {
			return err
		}
		c.ResourceVersion = rev
		body, err := store.EncodeOrg(&c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO orgs (`+orgColumns+`) VALUES (?, ?, ?, ?, ?)`,
			c.Name, string(c.Kind), c.Partner, c.ResourceVersion, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("create org %q: %w", o.Name, err)
	}
	o.ResourceVersion = c.ResourceVersion
	return nil
}

// GetOrg returns the organisation name.
func (s *Store) GetOrg(ctx context.Context, name string) (*store.Org, error) {
	o, err := getOrg(ctx, s.read, name)
	if err != nil {
		return nil, fmt.Errorf("get org %q: %w", name, err)
	}
	return o, nil
}

// ListOrgs returns one page of organisations ordered by name.
func (s *Store) ListOrgs(ctx context.Context, opts store.OrgListOptions) (*store.OrgList, error) {
	limit := store.PageLimit(opts.Limit)
	after, err := store.DecodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	q := `SELECT ` + orgColumns + ` FROM orgs WHERE name > ?`
	args := []any{after}
	if opts.Names != nil {
		q += ` AND name IN (` + placeholders(len(opts.Names)) + `)`
		for _, n := range opts.Names {
			args = append(args, n)
		}
	}
	if opts.Partner != "" {
		q += ` AND partner = ?`
		args = append(args, opts.Partner)
	}
	q += ` ORDER BY name LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
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
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].Name)
	}
	return list, nil
}

// UpdateOrg applies mutate to the organisation and stores the result, in one
// writer transaction.
func (s *Store) UpdateOrg(ctx context.Context, name string, mutate func(*store.Org) error) (*store.Org, error) {
	var out *store.Org
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := getOrg(ctx, tx, name)
		if err != nil {
			return err
		}
		next, err := getOrg(ctx, tx, name) // an independent copy for mutate
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
		_, err = tx.ExecContext(ctx, `UPDATE orgs SET partner = ?, resource_version = ?, body = ? WHERE name = ?`,
			next.Partner, next.ResourceVersion, string(body), name)
		return err
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getOrg(ctx, tx, name); err != nil {
			return err
		}
		if name == store.DefaultOrg {
			return fmt.Errorf("the default organisation stays: %w", store.ErrConflict)
		}
		var sites, orgs int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sites WHERE org = ?`, name).Scan(&sites); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM orgs WHERE partner = ?`, name).Scan(&orgs); err != nil {
			return err
		}
		switch {
		case sites > 0:
			return fmt.Errorf("it owns %d sites: %w", sites, store.ErrConflict)
		case orgs > 0:
			return fmt.Errorf("it is the partner of %d organisations: %w", orgs, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE org = ?`, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM orgs WHERE name = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete org %q: %w", name, err)
	}
	return nil
}

const userColumns = `id, email, password_hash, oidc_issuer, oidc_subject, body`

func scanUser(sc rowScanner) (*store.User, error) {
	var id, email, hash, issuer, subject, body string
	if err := sc.Scan(&id, &email, &hash, &issuer, &subject, &body); err != nil {
		return nil, err
	}
	return store.DecodeUser(id, email, hash, issuer, subject, []byte(body))
}

// getUserWhere reads the one user cond (with its args) selects; ErrNotFound
// (unwrapped) when there is none.
func getUserWhere(ctx context.Context, q querier, cond string, args ...any) (*store.User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return u, err
}

// checkUserUnique fails with ErrAlreadyExists when another user than id has
// u's email or OIDC identity.
func checkUserUnique(ctx context.Context, q querier, u *store.User) error {
	var other string
	err := q.QueryRowContext(ctx, `SELECT id FROM users WHERE id <> ? AND (email = ? OR (oidc_issuer <> '' AND oidc_issuer = ? AND oidc_subject = ?)) LIMIT 1`,
		u.ID, u.Email, u.OIDCIssuer, u.OIDCSubject).Scan(&other)
	switch {
	case err == nil:
		return fmt.Errorf("user %q has that email or oidc identity: %w", other, store.ErrAlreadyExists)
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return err
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getUserWhere(ctx, tx, `id = ?`, c.ID); err == nil {
			return store.ErrAlreadyExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := checkUserUnique(ctx, tx, &c); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			c.ID, c.Email, c.PasswordHash, c.OIDCIssuer, c.OIDCSubject, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.ID, err)
	}
	u.Email = c.Email
	return nil
}

// GetUser returns the user id.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("get user %q: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns the user with that email (compared lowercase).
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `email = ?`, strings.ToLower(email))
	if err != nil {
		return nil, fmt.Errorf("get user by email %q: %w", email, err)
	}
	return u, nil
}

// GetUserByOIDC returns the user linked to the OIDC identity.
func (s *Store) GetUserByOIDC(ctx context.Context, issuer, subject string) (*store.User, error) {
	u, err := getUserWhere(ctx, s.read, `oidc_issuer <> '' AND oidc_issuer = ? AND oidc_subject = ?`, issuer, subject)
	if err != nil {
		return nil, fmt.Errorf("get user by oidc %q %q: %w", issuer, subject, err)
	}
	return u, nil
}

// ListUsers returns one page of users ordered by ID.
func (s *Store) ListUsers(ctx context.Context, opts store.UserListOptions) (*store.UserList, error) {
	limit := store.PageLimit(opts.Limit)
	after, err := store.DecodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	q := `SELECT ` + userColumns + ` FROM users WHERE id > ?`
	args := []any{after}
	if opts.Org != "" {
		q += ` AND id IN (SELECT user_id FROM memberships WHERE org = ?)`
		args = append(args, opts.Org)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
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
		return nil, fmt.Errorf("list users: %w", err)
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].ID)
	}
	return list, nil
}

// UpdateUser applies mutate to the user and stores the result, in one writer
// transaction.
func (s *Store) UpdateUser(ctx context.Context, id string, mutate func(*store.User) error) (*store.User, error) {
	var out *store.User
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := getUserWhere(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		next, err := getUserWhere(ctx, tx, `id = ?`, id)
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
		_, err = tx.ExecContext(ctx, `UPDATE users SET email = ?, password_hash = ?, oidc_issuer = ?, oidc_subject = ?, body = ? WHERE id = ?`,
			next.Email, next.PasswordHash, next.OIDCIssuer, next.OIDCSubject, string(body), id)
		return err
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return affected(res)
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	return nil
}

// affected turns a write that touched no row into store.ErrNotFound
// (unwrapped).
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// PutMembership creates or replaces the (m.Org, m.UserID) membership.
func (s *Store) PutMembership(ctx context.Context, m store.Membership) error {
	if err := store.ValidateMembership(m); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getOrg(ctx, tx, m.Org); err != nil {
			return fmt.Errorf("organisation %q: %w", m.Org, err)
		}
		if _, err := getUserWhere(ctx, tx, `id = ?`, m.UserID); err != nil {
			return fmt.Errorf("user %q: %w", m.UserID, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO memberships (org, user_id, role, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (org, user_id) DO UPDATE SET role = excluded.role`,
			m.Org, m.UserID, string(m.Role), m.CreatedAt.UTC().Format(timeFormat))
		return err
	})
	if err != nil {
		return fmt.Errorf("put membership %s/%s: %w", m.Org, m.UserID, err)
	}
	return nil
}

// DeleteMembership removes the (org, userID) membership.
func (s *Store) DeleteMembership(ctx context.Context, org, userID string) error {
	res, err := s.exec(ctx, `DELETE FROM memberships WHERE org = ? AND user_id = ?`, org, userID)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete membership %s/%s: %w", org, userID, err)
	}
	return nil
}

// ListMemberships returns the memberships f selects ordered by org, then
// user.
func (s *Store) ListMemberships(ctx context.Context, f store.MembershipFilter) ([]store.Membership, error) {
	q := `SELECT org, user_id, role, created_at FROM memberships WHERE 1 = 1`
	var args []any
	if f.Org != "" {
		q += ` AND org = ?`
		args = append(args, f.Org)
	}
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY org, user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	defer rows.Close()
	out := []store.Membership{}
	for rows.Next() {
		var m store.Membership
		var role, created string
		if err := rows.Scan(&m.Org, &m.UserID, &role, &created); err != nil {
			return nil, fmt.Errorf("list memberships: %w", err)
		}
		m.Role = store.OrgRole(role)
		if m.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
			return nil, fmt.Errorf("list memberships: created_at: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	return out, nil
}

const inviteColumns = `id, org, email, role, hash, created_by, created_at, expires_at, accepted_at`

func scanInvite(sc rowScanner) (*store.Invite, error) {
	var inv store.Invite
	var role, created, expires string
	var accepted sql.NullString
	if err := sc.Scan(&inv.ID, &inv.Org, &inv.Email, &role, &inv.Hash, &inv.CreatedBy, &created, &expires, &accepted); err != nil {
		return nil, err
	}
	inv.Role = store.OrgRole(role)
	var err error
	if inv.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
		return nil, fmt.Errorf("created_at of invite %q: %w", inv.ID, err)
	}
	if inv.ExpiresAt, err = time.Parse(timeFormat, expires); err != nil {
		return nil, fmt.Errorf("expires_at of invite %q: %w", inv.ID, err)
	}
	if inv.AcceptedAt, err = parseTime(accepted); err != nil {
		return nil, fmt.Errorf("accepted_at of invite %q: %w", inv.ID, err)
	}
	return &inv, nil
}

// CreateInvite stores a new invitation (its email lowercased).
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	if err := store.ValidateNewInvite(&inv); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getOrg(ctx, tx, inv.Org); err != nil {
			return fmt.Errorf("organisation %q: %w", inv.Org, err)
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM invites WHERE id = ? OR hash = ? LIMIT 1`, inv.ID, inv.Hash).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO invites (`+inviteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.Org, inv.Email, string(inv.Role), inv.Hash, inv.CreatedBy,
			inv.CreatedAt.UTC().Format(timeFormat), inv.ExpiresAt.UTC().Format(timeFormat), formatTime(inv.AcceptedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create invite %q: %w", inv.ID, err)
	}
	return nil
}

// ListInvites returns the organisation's invitations ordered by ID.
func (s *Store) ListInvites(ctx context.Context, org string) ([]store.Invite, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE org = ? ORDER BY id`, org)
	if err != nil {
		return nil, fmt.Errorf("list invites of %q: %w", org, err)
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
		return nil, fmt.Errorf("list invites of %q: %w", org, err)
	}
	return out, nil
}

// DeleteInvite removes the invitation id.
func (s *Store) DeleteInvite(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM invites WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete invite %q: %w", id, err)
	}
	return nil
}

// AcceptInvite marks the invitation whose secret hashes to hash accepted at
// at. The writer transaction makes concurrent accepts queue: the first wins,
// the others see it accepted.
func (s *Store) AcceptInvite(ctx context.Context, hash string, at time.Time) (*store.Invite, error) {
	var out *store.Invite
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		inv, err := scanInvite(tx.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE hash = ?`, hash))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case inv.AcceptedAt != nil:
			return fmt.Errorf("already accepted: %w", store.ErrConflict)
		case store.Expired(inv.ExpiresAt, at):
			return fmt.Errorf("expired: %w", store.ErrNotFound)
		}
		acc := at.UTC()
		inv.AcceptedAt = &acc
		if _, err := tx.ExecContext(ctx, `UPDATE invites SET accepted_at = ? WHERE id = ?`, formatTime(&acc), inv.ID); err != nil {
			return err
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getUserWhere(ctx, tx, `id = ?`, rt.UserID); err != nil {
			return fmt.Errorf("user %q: %w", rt.UserID, err)
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM reset_tokens WHERE hash = ?`, rt.Hash).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO reset_tokens (hash, user_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?)`,
			rt.Hash, rt.UserID, rt.CreatedAt.UTC().Format(timeFormat), rt.ExpiresAt.UTC().Format(timeFormat), formatTime(rt.UsedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create reset token for %q: %w", rt.UserID, err)
	}
	return nil
}

// UseResetToken marks the reset token whose secret hashes to hash used at
// at; concurrent uses queue on the writer and only the first succeeds.
func (s *Store) UseResetToken(ctx context.Context, hash string, at time.Time) (*store.ResetToken, error) {
	var out *store.ResetToken
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var rt store.ResetToken
		var created, expires string
		var used sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT hash, user_id, created_at, expires_at, used_at FROM reset_tokens WHERE hash = ?`, hash).
			Scan(&rt.Hash, &rt.UserID, &created, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if rt.CreatedAt, err = time.Parse(timeFormat, created); err != nil {
			return err
		}
		if rt.ExpiresAt, err = time.Parse(timeFormat, expires); err != nil {
			return err
		}
		switch {
		case used.Valid:
			return fmt.Errorf("already used: %w", store.ErrNotFound)
		case store.Expired(rt.ExpiresAt, at):
			return fmt.Errorf("expired: %w", store.ErrNotFound)
		}
		u := at.UTC()
		rt.UsedAt = &u
		if _, err := tx.ExecContext(ctx, `UPDATE reset_tokens SET used_at = ? WHERE hash = ?`, formatTime(&u), hash); err != nil {
			return err
		}
		out = &rt
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("use reset token: %w", err)
	}
	return out, nil
}
