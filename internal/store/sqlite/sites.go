package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// siteRow is a sites row as stored.
type siteRow struct {
	name, uid, shard, org        string
	moveSource, moveTarget       string // of an active move, else ""
	resourceVersion              int64
	metadata, spec, status, move string
}

func encodeSite(s *site.Site) (siteRow, error) {
	md, sp, st, err := store.EncodeSite(s)
	if err != nil {
		return siteRow{}, err
	}
	mv, err := store.EncodeMove(s.Move)
	if err != nil {
		return siteRow{}, err
	}
	src, dst := store.MoveShards(s)
	return siteRow{
		name:            s.Metadata.Name,
		uid:             s.Metadata.UID,
		shard:           s.Status.Shard,
		org:             s.Metadata.Org,
		moveSource:      src,
		moveTarget:      dst,
		resourceVersion: s.Metadata.ResourceVersion,
		metadata:        string(md),
		spec:            string(sp),
		status:          string(st),
		move:            string(mv),
	}, nil
}

func (r siteRow) decode() (*site.Site, error) {
	s, err := store.DecodeSite(r.name, []byte(r.metadata), []byte(r.spec), []byte(r.status))
	if err != nil {
		return nil, err
	}
	if s.Move, err = store.DecodeMove(r.name, []byte(r.move)); err != nil {
		return nil, err
	}
	// The columns are authoritative.
	s.Metadata.Name = r.name
	s.Metadata.UID = r.uid
	s.Metadata.Org = r.org
	s.Metadata.ResourceVersion = r.resourceVersion
	return s, nil
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

const siteColumns = `name, uid, shard, org, move_source, move_target, resource_version, metadata, spec, status, move`

func scanSite(sc rowScanner) (siteRow, error) {
	var r siteRow
	err := sc.Scan(&r.name, &r.uid, &r.shard, &r.org, &r.moveSource, &r.moveTarget, &r.resourceVersion, &r.metadata, &r.spec, &r.status, &r.move)
	return r, err
}

// shardMatch is the condition "the shard ? holds the site" (site.Site.Shards),
// taking the shard's name three times.
const shardMatch = `(shard = ? OR move_source = ? OR move_target = ?)`

// insertTombstones records ts in tx.
func insertTombstones(ctx context.Context, tx *sql.Tx, ts []store.Tombstone) error {
	for _, t := range ts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones (revision, name, uid, shard, deleted) VALUES (?, ?, ?, ?, ?)`,
			t.Revision, t.Name, t.UID, t.Shard, t.Deleted); err != nil {
			return fmt.Errorf("record tombstone: %w", err)
		}
	}
	return nil
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getRow reads the row of name; ErrNotFound (unwrapped) when there is none.
func getRow(ctx context.Context, q querier, name string) (siteRow, error) {
	r, err := scanSite(q.QueryRowContext(ctx, `SELECT `+siteColumns+` FROM sites WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return siteRow{}, store.ErrNotFound
	}
	return r, err
}

// CreateSite stores a new site. It sets s.Metadata.Generation to 1,
// s.Metadata.ResourceVersion to the write's revision and an empty
// s.Metadata.Org to store.DefaultOrg.
func (s *Store) CreateSite(ctx context.Context, st *site.Site) error {
	return s.createSite(ctx, st, nil)
}

// CreateSiteAudited is CreateSite and AppendAudit of e in one transaction.
func (s *Store) CreateSiteAudited(ctx context.Context, st *site.Site, e store.AuditEntry) error {
	return s.createSite(ctx, st, &e)
}

// createSite creates st and, when e is not nil, appends e to the audit
// chain in the same transaction.
func (s *Store) createSite(ctx context.Context, st *site.Site, e *store.AuditEntry) error {
	if err := store.ValidateNewSite(st); err != nil {
		return err
	}
	name := st.Metadata.Name
	c := *st
	c.Metadata.Generation = 1
	if c.Metadata.Org == "" {
		c.Metadata.Org = store.DefaultOrg
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := orgExists(ctx, tx, c.Metadata.Org); err != nil {
			return err
		}
		var existing string
		err := tx.QueryRowContext(ctx, `SELECT name FROM sites WHERE name = ? OR uid = ? LIMIT 1`, name, c.Metadata.UID).Scan(&existing)
		switch {
		case err == nil && existing == name:
			return store.ErrAlreadyExists
		case err == nil:
			return fmt.Errorf("uid %q is used by site %q: %w", c.Metadata.UID, existing, store.ErrAlreadyExists)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		rev, err := nextRevision(ctx, tx)
		if err != nil {
			return err
		}
		c.Metadata.ResourceVersion = rev
		r, err := encodeSite(&c)
		if err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO sites (`+siteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.name, r.uid, r.shard, r.org, r.moveSource, r.moveTarget, r.resourceVersion, r.metadata, r.spec, r.status, r.move); err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		a := *e // sealed anew should the group commit run fn again
		return appendAudit(ctx, tx, &a)
	})
	if err != nil {
		return fmt.Errorf("create site %q: %w", name, err)
	}
	st.Metadata.Generation = c.Metadata.Generation
	st.Metadata.ResourceVersion = c.Metadata.ResourceVersion
	st.Metadata.Org = c.Metadata.Org
	return nil
}

// GetSite returns the site called name.
func (s *Store) GetSite(ctx context.Context, name string) (*site.Site, error) {
	r, err := getRow(ctx, s.read, name)
	if err != nil {
		return nil, fmt.Errorf("get site %q: %w", name, err)
	}
	st, err := r.decode()
	if err != nil {
		return nil, fmt.Errorf("get site %q: %w", name, err)
	}
	return st, nil
}

// ListSites returns one page of sites ordered by name, and the revision of
// the snapshot it was read from.
func (s *Store) ListSites(ctx context.Context, opts store.ListOptions) (*store.SiteList, error) {
	if err := store.ValidateListOptions(opts); err != nil {
		return nil, err
	}
	limit := store.PageLimit(opts.Limit)
	after, err := store.DecodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}

	var b strings.Builder
	args := []any{after}
	b.WriteString(`SELECT ` + siteColumns + ` FROM sites WHERE name > ?`)
	switch {
	case opts.Shard != "":
		b.WriteString(` AND ` + shardMatch)
		args = append(args, opts.Shard, opts.Shard, opts.Shard)
	case opts.Unplaced:
		b.WriteString(` AND shard = ''`)
	}
	if opts.Orgs != nil {
		// An empty, non-nil Orgs selects nothing: IN () is false.
		b.WriteString(` AND org IN (` + placeholders(len(opts.Orgs)) + `)`)
		for _, o := range opts.Orgs {
			args = append(args, o)
		}
	}
	if opts.NameContains != "" {
		b.WriteString(` AND instr(name, ?) > 0`)
		args = append(args, opts.NameContains)
	}
	b.WriteString(` ORDER BY name LIMIT ?`)
	args = append(args, limit+1) // one more tells whether there is a next page

	// One read transaction: in WAL mode the revision and the rows come from
	// the same snapshot.
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo

	list := &store.SiteList{Items: []site.Site{}}
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'revision'`).Scan(&list.Revision); err != nil {
		return nil, fmt.Errorf("list sites: read revision: %w", err)
	}
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanSite(rows)
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		st, err := r.decode()
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		list.Items = append(list.Items, *st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].Metadata.Name)
	}
	return list, nil
}

// UpdateSite applies mutate to the current value of the site and stores the
// result, in one writer transaction. mutate runs while the store's write
// connection is held: it must not call the store's write methods.
func (s *Store) UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error) {
	var out *site.Site
	var siteErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, siteErr, err = updateSiteTx(ctx, tx, name, mutate)
		if err == nil && siteErr != nil {
			err = siteErr // nothing was written; roll back anyway
		}
		return err
	})
	return out, store.UpdateSiteErr(name, siteErr, err)
}

// UpdateSites applies mutate to each named site in one writer transaction
// (see store.Store).
func (s *Store) UpdateSites(ctx context.Context, names []string, mutate func(*site.Site) error) ([]error, error) {
	errs := make([]error, len(names))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, name := range names {
			_, siteErr, err := updateSiteTx(ctx, tx, name, mutate)
			if err != nil {
				return fmt.Errorf("update site %q: %w", name, err)
			}
			errs[i] = store.UpdateSiteErr(name, siteErr, nil)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update sites: %w", err)
	}
	return errs, nil
}

// updateSiteTx is one site's update inside tx. siteErr is an error of this
// site alone, found before anything was written (unknown, mutate's error,
// a forbidden change); err is one of the transaction.
func updateSiteTx(ctx context.Context, tx *sql.Tx, name string, mutate func(*site.Site) error) (out *site.Site, siteErr, err error) {
	r, err := getRow(ctx, tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err, nil
	}
	if err != nil {
		return nil, nil, err
	}
	before, err := r.decode()
	if err != nil {
		return nil, nil, err
	}
	next, err := r.decode() // an independent copy for mutate
	if err != nil {
		return nil, nil, err
	}
	if err := mutate(next); err != nil {
		return nil, store.MutateError{Err: err}, nil
	}
	write, err := store.PrepareUpdate(before, next)
	if err != nil {
		return nil, err, nil
	}
	if !write {
		return next, nil, nil // nothing changed: write nothing
	}
	rev, err := nextRevision(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	next.Metadata.ResourceVersion = rev
	w, err := encodeSite(next)
	if err != nil {
		return nil, nil, err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE sites SET shard = ?, move_source = ?, move_target = ?, resource_version = ?,
			metadata = ?, spec = ?, status = ?, move = ? WHERE name = ?`,
		w.shard, w.moveSource, w.moveTarget, w.resourceVersion, w.metadata, w.spec, w.status, w.move, name); err != nil {
		return nil, nil, err
	}
	if err := insertTombstones(ctx, tx, store.UpdateTombstones(before, next, rev)); err != nil {
		return nil, nil, err
	}
	return next, nil, nil
}

// DeleteSite removes the site called name and records its tombstones.
func (s *Store) DeleteSite(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := getRow(ctx, tx, name)
		if err != nil {
			return err
		}
		old, err := r.decode()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sites WHERE name = ?`, name); err != nil {
			return err
		}
		rev, err := nextRevision(ctx, tx)
		if err != nil {
			return err
		}
		return insertTombstones(ctx, tx, store.DeleteTombstones(old, rev))
	})
	if err != nil {
		return fmt.Errorf("delete site %q: %w", name, err)
	}
	return nil
}

// placeholders returns n comma-separated '?'.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// orgExists checks that the organisation name exists; its error wraps
// store.ErrInvalid (a site or token naming no organisation is bad input).
func orgExists(ctx context.Context, q querier, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM orgs WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("organisation %q does not exist: %w", name, store.ErrInvalid)
	}
	return err
}

// SetSiteOrg moves the site called name to the organisation org, taking a
// revision; the Generation stays.
func (s *Store) SetSiteOrg(ctx context.Context, name, org string) (*site.Site, error) {
	var out *site.Site
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := getRow(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		if r.org == org {
			out, err = r.decode()
			return err
		}
		rev, err := nextRevision(ctx, tx)
		if err != nil {
			return err
		}
		next, err := r.decode()
		if err != nil {
			return err
		}
		next.Metadata.Org, next.Metadata.ResourceVersion = org, rev
		w, err := encodeSite(next)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sites SET org = ?, resource_version = ?, metadata = ? WHERE name = ?`,
			w.org, w.resourceVersion, w.metadata, name); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set org of site %q: %w", name, err)
	}
	return out, nil
}

// CountAllSites returns how many sites the store holds.
func (s *Store) CountAllSites(ctx context.Context) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM sites`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sites: %w", err)
	}
	return n, nil
}

// CountSites returns how many sites the organisation owns (0 for an
// unknown one).
func (s *Store) CountSites(ctx context.Context, org string) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM sites WHERE org = ?`, org).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sites of %q: %w", org, err)
	}
	return n, nil
}
