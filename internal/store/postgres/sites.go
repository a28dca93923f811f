package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// siteRow is a sites row as stored.
type siteRow struct {
	name, uid, shard, org        string
	moveSource, moveTarget       string // of an active move, else ""
	resourceVersion              int64
	metadata, spec, status, move []byte
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
		metadata:        md,
		spec:            sp,
		status:          st,
		move:            mv,
	}, nil
}

func (r siteRow) decode() (*site.Site, error) {
	s, err := store.DecodeSite(r.name, r.metadata, r.spec, r.status)
	if err != nil {
		return nil, err
	}
	if s.Move, err = store.DecodeMove(r.name, r.move); err != nil {
		return nil, err
	}
	// The columns are authoritative.
	s.Metadata.Name = r.name
	s.Metadata.UID = r.uid
	s.Metadata.Org = r.org
	s.Metadata.ResourceVersion = r.resourceVersion
	return s, nil
}

const siteColumns = `name, uid, shard, org, move_source, move_target, resource_version, metadata, spec, status, move`

func scanSite(row pgx.Row) (siteRow, error) {
	var r siteRow
	err := row.Scan(&r.name, &r.uid, &r.shard, &r.org, &r.moveSource, &r.moveTarget, &r.resourceVersion, &r.metadata, &r.spec, &r.status, &r.move)
	return r, err
}

// shardMatch returns the condition "the shard in parameter $n holds the
// site" (site.Site.Shards).
func shardMatch(n int) string {
	return fmt.Sprintf(`(shard = $%[1]d OR move_source = $%[1]d OR move_target = $%[1]d)`, n)
}

// insertTombstones records ts in tx.
func insertTombstones(ctx context.Context, tx pgx.Tx, ts []store.Tombstone) error {
	for _, t := range ts {
		if _, err := tx.Exec(ctx, `INSERT INTO tombstones (revision, name, uid, shard, deleted) VALUES ($1, $2, $3, $4, $5)`,
			t.Revision, t.Name, t.UID, t.Shard, t.Deleted); err != nil {
			return fmt.Errorf("record tombstone: %w", mapErr(err))
		}
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// getRow reads the row of name (locking it when forUpdate); ErrNotFound
// (unwrapped) when there is none.
func getRow(ctx context.Context, q querier, name string, forUpdate bool) (siteRow, error) {
	query := `SELECT ` + siteColumns + ` FROM sites WHERE name = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	r, err := scanSite(q.QueryRow(ctx, query, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return siteRow{}, store.ErrNotFound
	}
	return r, mapErr(err)
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
	c.Metadata.ResourceVersion = 0 // the column, set below, is authoritative
	r, err := encodeSite(&c)
	if err != nil {
		return fmt.Errorf("create site %q: %w", name, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if e != nil {
			// The audit entry first: the chain's lock is then taken before,
			// not while, the revision row is held (which every site and
			// shard write waits for). Its insert is rolled back with the
			// site's should that fail.
			a := *e // the caller's entry stays as given
			if err := appendAudit(ctx, tx, &a); err != nil {
				return err
			}
		}
		// The insert locks the new row before the revision bump locks meta:
		// the same order as UpdateSite and DeleteSite. A concurrent create of
		// the same name waits here for this one to end, then fails. The
		// foreign key on org key-share locks the organisation's row (an
		// unknown one gives ErrInvalid).
		_, err := tx.Exec(ctx, `INSERT INTO sites (`+siteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)`,
			r.name, r.uid, r.shard, r.org, r.moveSource, r.moveTarget, r.metadata, r.spec, r.status, r.move)
		if pe, ok := pgError(err); ok && pe.Code == codeUniqueViolation && pe.ConstraintName == constraintSitesUIDUnique {
			return fmt.Errorf("uid %q is used by another site: %w", c.Metadata.UID, store.ErrAlreadyExists)
		}
		if err != nil {
			return mapErr(err)
		}
		return tx.QueryRow(ctx, `WITH r AS (UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value)
			UPDATE sites SET resource_version = r.value FROM r WHERE sites.name = $1 RETURNING sites.resource_version`,
			name).Scan(&c.Metadata.ResourceVersion)
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
	r, err := getRow(ctx, s.read, name, false)
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
	b.WriteString(`SELECT ` + siteColumns + ` FROM sites WHERE name > $1`)
	switch {
	case opts.Shard != "":
		args = append(args, opts.Shard)
		b.WriteString(` AND ` + shardMatch(len(args)))
	case opts.Unplaced:
		b.WriteString(` AND shard = ''`)
	}
	if opts.Orgs != nil {
		// An empty, non-nil Orgs selects nothing: = ANY('{}') is false.
		args = append(args, opts.Orgs)
		fmt.Fprintf(&b, ` AND org = ANY($%d)`, len(args))
	}
	if opts.NameContains != "" {
		args = append(args, opts.NameContains)
		fmt.Fprintf(&b, ` AND strpos(name, $%d) > 0`, len(args))
	}
	args = append(args, limit+1) // one more tells whether there is a next page
	fmt.Fprintf(&b, ` ORDER BY name LIMIT $%d`, len(args))

	// One REPEATABLE READ transaction: the revision and the rows come from
	// the same snapshot.
	tx, err := s.read.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // read-only; nothing to undo
	}()

	list := &store.SiteList{Items: []site.Site{}}
	if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'revision'`).Scan(&list.Revision); err != nil {
		return nil, fmt.Errorf("list sites: read revision: %w", err)
	}
	rows, err := tx.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", mapErr(err))
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
		return nil, fmt.Errorf("list sites: %w", mapErr(err))
	}
	if len(list.Items) > limit {
		list.Items = list.Items[:limit]
		list.Continue = store.EncodeContinue(list.Items[limit-1].Metadata.Name)
	}
	return list, nil
}

// UpdateSite applies mutate to the current value of the site and stores the
// result, in one transaction that holds the site's row lock (SELECT ... FOR
// UPDATE) from the read to the commit. mutate runs while the transaction is
// open: it may read the store but must not call its write methods.
func (s *Store) UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error) {
	var out *site.Site
	var siteErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, siteErr, err = updateSiteTx(ctx, tx, name, mutate)
		if err == nil && siteErr != nil {
			err = siteErr // nothing was written; roll back anyway
		}
		return err
	})
	return out, store.UpdateSiteErr(name, siteErr, err)
}

// UpdateSites applies mutate to each named site in one transaction (see
// store.Store), in a few round trips whatever the number of sites: the rows
// are read and locked by one query, the revisions taken by one update, and
// the writes sent as one batch.
func (s *Store) UpdateSites(ctx context.Context, names []string, mutate func(*site.Site) error) ([]error, error) {
	if len(names) == 0 {
		return []error{}, nil
	}
	if hasDuplicate(names) {
		return s.updateSitesOneByOne(ctx, names, mutate)
	}
	errs := make([]error, len(names))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Every row is locked first, in name order: a transaction that
		// holds the revision row (meta) never waits for a site row, as in
		// UpdateSite (site row, then meta), so no two writers deadlock.
		rows, err := tx.Query(ctx, `SELECT `+siteColumns+` FROM sites WHERE name = ANY($1) ORDER BY name FOR UPDATE`, names)
		if err != nil {
			return mapErr(err)
		}
		byName := make(map[string]siteRow, len(names))
		for rows.Next() {
			r, err := scanSite(rows)
			if err != nil {
				rows.Close()
				return mapErr(err)
			}
			byName[r.name] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return mapErr(err)
		}
		type write struct{ before, next *site.Site }
		var writes []write
		for i, name := range names {
			r, ok := byName[name]
			if !ok {
				errs[i] = store.UpdateSiteErr(name, store.ErrNotFound, nil)
				continue
			}
			before, err := r.decode()
			if err != nil {
				return err
			}
			next, err := r.decode() // an independent copy for mutate
			if err != nil {
				return err
			}
			if err := mutate(next); err != nil {
				errs[i] = err // as is
				continue
			}
			write, err := store.PrepareUpdate(before, next)
			if err != nil {
				errs[i] = store.UpdateSiteErr(name, err, nil)
				continue
			}
			if write {
				writes = append(writes, struct{ before, next *site.Site }{before, next})
			}
		}
		if len(writes) == 0 {
			return nil
		}
		var last int64
		if err := tx.QueryRow(ctx, `UPDATE meta SET value = value + $1 WHERE key = 'revision' RETURNING value`, len(writes)).Scan(&last); err != nil {
			return fmt.Errorf("bump revision: %w", mapErr(err))
		}
		b := &pgx.Batch{}
		for k, w := range writes {
			rev := last - int64(len(writes)) + 1 + int64(k)
			w.next.Metadata.ResourceVersion = rev
			e, err := encodeSite(w.next)
			if err != nil {
				return err
			}
			b.Queue(`UPDATE sites SET shard = $1, move_source = $2, move_target = $3, resource_version = $4,
				metadata = $5, spec = $6, status = $7, move = $8 WHERE name = $9`,
				e.shard, e.moveSource, e.moveTarget, e.resourceVersion, e.metadata, e.spec, e.status, e.move, w.next.Metadata.Name)
			for _, t := range store.UpdateTombstones(w.before, w.next, rev) {
				b.Queue(`INSERT INTO tombstones (revision, name, uid, shard, deleted) VALUES ($1, $2, $3, $4, $5)`,
					t.Revision, t.Name, t.UID, t.Shard, t.Deleted)
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return mapErr(err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update sites: %w", err)
	}
	return errs, nil
}

// updateSitesOneByOne is UpdateSites site after site, for a list that
// names a site twice (its second mutate must see the first's write).
func (s *Store) updateSitesOneByOne(ctx context.Context, names []string, mutate func(*site.Site) error) ([]error, error) {
	errs := make([]error, len(names))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		sorted := slices.Clone(names)
		slices.Sort(sorted)
		if _, err := tx.Exec(ctx, `SELECT name FROM sites WHERE name = ANY($1) ORDER BY name FOR UPDATE`, sorted); err != nil {
			return mapErr(err)
		}
		for i, name := range names {
			_, siteErr, err := updateSiteTx(ctx, tx, name, mutate)
			if err != nil {
				return err
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

func hasDuplicate(names []string) bool {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return true
		}
		seen[n] = true
	}
	return false
}

// updateSiteTx is one site's update inside tx. siteErr is an error of this
// site alone, found before anything was written (unknown, mutate's error,
// a forbidden change); err is one of the transaction.
func updateSiteTx(ctx context.Context, tx pgx.Tx, name string, mutate func(*site.Site) error) (out *site.Site, siteErr, err error) {
	r, err := getRow(ctx, tx, name, true)
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
	if _, err := tx.Exec(ctx,
		`UPDATE sites SET shard = $1, move_source = $2, move_target = $3, resource_version = $4,
			metadata = $5, spec = $6, status = $7, move = $8 WHERE name = $9`,
		w.shard, w.moveSource, w.moveTarget, w.resourceVersion, w.metadata, w.spec, w.status, w.move, name); err != nil {
		return nil, nil, mapErr(err)
	}
	if err := insertTombstones(ctx, tx, store.UpdateTombstones(before, next, rev)); err != nil {
		return nil, nil, err
	}
	return next, nil, nil
}

// DeleteSite removes the site called name and records its tombstones.
func (s *Store) DeleteSite(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The delete locks the row before the revision bump locks meta.
		r, err := scanSite(tx.QueryRow(ctx, `DELETE FROM sites WHERE name = $1 RETURNING `+siteColumns, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return mapErr(err)
		}
		old, err := r.decode()
		if err != nil {
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

// SetSiteOrg moves the site called name to the organisation org, taking a
// revision; the Generation stays.
func (s *Store) SetSiteOrg(ctx context.Context, name, org string) (*site.Site, error) {
	var out *site.Site
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := getRow(ctx, tx, name, true)
		if err != nil {
			return err
		}
		// Key-share lock the organisation so it cannot go away before the
		// commit (as the foreign key would, but with a clear error).
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM orgs WHERE name = $1 FOR KEY SHARE`, org).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("organisation %q does not exist: %w", org, store.ErrInvalid)
		}
		if err != nil {
			return mapErr(err)
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
		if _, err := tx.Exec(ctx, `UPDATE sites SET org = $1, resource_version = $2, metadata = $3 WHERE name = $4`,
			w.org, w.resourceVersion, w.metadata, name); err != nil {
			return mapErr(err)
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
	if err := s.read.QueryRow(ctx, `SELECT count(*) FROM sites`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sites: %w", mapErr(err))
	}
	return n, nil
}

// CountSites returns how many sites the organisation owns (0 for an
// unknown one).
func (s *Store) CountSites(ctx context.Context, org string) (int, error) {
	var n int
	if err := s.read.QueryRow(ctx, `SELECT count(*) FROM sites WHERE org = $1`, org).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sites of %q: %w", org, mapErr(err))
	}
	return n, nil
}
