package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// List page sizes (see store.Store).
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// siteRow is a sites row as stored.
type siteRow struct {
	name, uid, shard       string
	resourceVersion        int64
	metadata, spec, status string
}

func encodeSite(s *site.Site) (siteRow, error) {
	md, err := json.Marshal(s.Metadata)
	if err != nil {
		return siteRow{}, fmt.Errorf("encode metadata: %w", err)
	}
	sp, err := json.Marshal(s.Spec)
	if err != nil {
		return siteRow{}, fmt.Errorf("encode spec: %w", err)
	}
	st, err := json.Marshal(s.Status)
	if err != nil {
		return siteRow{}, fmt.Errorf("encode status: %w", err)
	}
	return siteRow{
		name:            s.Metadata.Name,
		uid:             s.Metadata.UID,
		shard:           s.Status.Shard,
		resourceVersion: s.Metadata.ResourceVersion,
		metadata:        string(md),
		spec:            string(sp),
		status:          string(st),
	}, nil
}

func (r siteRow) decode() (*site.Site, error) {
	var s site.Site
	if err := json.Unmarshal([]byte(r.metadata), &s.Metadata); err != nil {
		return nil, fmt.Errorf("decode metadata of %q: %w", r.name, err)
	}
	if err := json.Unmarshal([]byte(r.spec), &s.Spec); err != nil {
		return nil, fmt.Errorf("decode spec of %q: %w", r.name, err)
	}
	if err := json.Unmarshal([]byte(r.status), &s.Status); err != nil {
		return nil, fmt.Errorf("decode status of %q: %w", r.name, err)
	}
	// The columns are authoritative.
	s.Metadata.Name = r.name
	s.Metadata.UID = r.uid
	s.Metadata.ResourceVersion = r.resourceVersion
	return &s, nil
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

const siteColumns = `name, uid, shard, resource_version, metadata, spec, status`

func scanSite(sc rowScanner) (siteRow, error) {
	var r siteRow
	err := sc.Scan(&r.name, &r.uid, &r.shard, &r.resourceVersion, &r.metadata, &r.spec, &r.status)
	return r, err
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

// CreateSite stores a new site. It sets s.Metadata.Generation to 1 and
// s.Metadata.ResourceVersion to the write's revision.
func (s *Store) CreateSite(ctx context.Context, st *site.Site) error {
	if st == nil {
		return fmt.Errorf("create site: nil site: %w", store.ErrInvalid)
	}
	name := st.Metadata.Name
	switch {
	case name == "":
		return fmt.Errorf("create site: empty name: %w", store.ErrInvalid)
	case st.Metadata.UID == "":
		return fmt.Errorf("create site %q: empty uid: %w", name, store.ErrInvalid)
	case st.Metadata.CreatedAt.IsZero():
		return fmt.Errorf("create site %q: zero created_at: %w", name, store.ErrInvalid)
	}
	c := *st
	c.Metadata.Generation = 1
	err := s.inTx(ctx, func(tx *sql.Tx) error {
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
		_, err = tx.ExecContext(ctx, `INSERT INTO sites (`+siteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.name, r.uid, r.shard, r.resourceVersion, r.metadata, r.spec, r.status)
		return err
	})
	if err != nil {
		return fmt.Errorf("create site %q: %w", name, err)
	}
	st.Metadata.Generation = c.Metadata.Generation
	st.Metadata.ResourceVersion = c.Metadata.ResourceVersion
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
	limit := opts.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	after, err := decodeContinue(opts.Continue)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}

	var b strings.Builder
	args := []any{after}
	b.WriteString(`SELECT ` + siteColumns + ` FROM sites WHERE name > ?`)
	if opts.Shard != "" {
		b.WriteString(` AND shard = ?`)
		args = append(args, opts.Shard)
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
		list.Continue = encodeContinue(list.Items[limit-1].Metadata.Name)
	}
	return list, nil
}

// continuePrefix versions the continue token's format.
const continuePrefix = "1:"

func encodeContinue(lastName string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(continuePrefix + lastName))
}

func decodeContinue(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), continuePrefix) || len(b) == len(continuePrefix) {
		return "", fmt.Errorf("invalid continue token: %w", store.ErrInvalid)
	}
	return string(b[len(continuePrefix):]), nil
}

// UpdateSite applies mutate to the current value of the site and stores the
// result, in one writer transaction. mutate runs while the store's write
// connection is held: it must not call the store's write methods.
func (s *Store) UpdateSite(ctx context.Context, name string, mutate func(*site.Site) error) (*site.Site, error) {
	var out *site.Site
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := getRow(ctx, tx, name)
		if err != nil {
			return err
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
			mutateErr = err
			return err
		}
		bm, nm := &before.Metadata, &next.Metadata
		switch {
		case nm.Name != bm.Name:
			return fmt.Errorf("metadata.name cannot change: %w", store.ErrInvalid)
		case nm.UID != bm.UID:
			return fmt.Errorf("metadata.uid cannot change: %w", store.ErrInvalid)
		case !nm.CreatedAt.Equal(bm.CreatedAt):
			return fmt.Errorf("metadata.created_at cannot change: %w", store.ErrInvalid)
		}
		// Generation and ResourceVersion belong to the store.
		nm.Generation, nm.ResourceVersion = bm.Generation, bm.ResourceVersion

		specChanged, err := generationChange(before, next)
		if err != nil {
			return err
		}
		if specChanged {
			nm.Generation++
		} else {
			same, err := jsonEqual(before, next)
			if err != nil {
				return err
			}
			if same {
				out = next // nothing changed: write nothing
				return nil
			}
		}
		rev, err := nextRevision(ctx, tx)
		if err != nil {
			return err
		}
		nm.ResourceVersion = rev
		w, err := encodeSite(next)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE sites SET shard = ?, resource_version = ?, metadata = ?, spec = ?, status = ? WHERE name = ?`,
			w.shard, w.resourceVersion, w.metadata, w.spec, w.status, name); err != nil {
			return err
		}
		out = next
		return nil
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update site %q: %w", name, err)
	}
	return out, nil
}

// generationChange reports whether the change from a to b bumps the
// generation: the spec, the labels or the deletion request changed.
func generationChange(a, b *site.Site) (bool, error) {
	same, err := jsonEqual(a.Spec, b.Spec)
	if err != nil || !same {
		return !same, err
	}
	// nil and empty label maps are the same labels.
	if !maps.Equal(a.Metadata.Labels, b.Metadata.Labels) {
		return true, nil
	}
	da, db := a.Metadata.DeletionRequested, b.Metadata.DeletionRequested
	if (da == nil) != (db == nil) || (da != nil && !da.Equal(*db)) {
		return true, nil
	}
	return false, nil
}

// jsonEqual reports whether a and b have the same JSON encoding.
func jsonEqual(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return string(ja) == string(jb), nil
}

// DeleteSite removes the site called name.
func (s *Store) DeleteSite(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sites WHERE name = ?`, name)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		_, err = nextRevision(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete site %q: %w", name, err)
	}
	return nil
}
