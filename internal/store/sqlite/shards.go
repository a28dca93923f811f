package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aipress/aipress/internal/store"
)

const shardColumns = `name, resource_version, body, last_heartbeat, usage`

func scanShard(sc rowScanner) (*store.Shard, error) {
	var (
		name, body, usage string
		rv                int64
		beat              sql.NullString
	)
	if err := sc.Scan(&name, &rv, &body, &beat, &usage); err != nil {
		return nil, err
	}
	var last *time.Time
	if beat.Valid {
		t, err := time.Parse(timeFormat, beat.String)
		if err != nil {
			return nil, fmt.Errorf("last_heartbeat of shard %q: %w", name, err)
		}
		last = &t
	}
	return store.DecodeShard(name, rv, last, []byte(body), []byte(usage))
}

// getShard reads the shard called name; ErrNotFound (unwrapped) when there
// is none.
func getShard(ctx context.Context, q querier, name string) (*store.Shard, error) {
	sh, err := scanShard(q.QueryRowContext(ctx, `SELECT `+shardColumns+` FROM shards WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return sh, err
}

// formatHeartbeat is the column value of a heartbeat time (NULL for none).
func formatHeartbeat(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(timeFormat)
}

// CreateShard stores a new shard. It fills an empty Phase with
// store.ShardPending and sets sh.ResourceVersion to the write's revision.
func (s *Store) CreateShard(ctx context.Context, sh *store.Shard) error {
	if err := store.ValidateNewShard(sh); err != nil {
		return err
	}
	c := *sh
	if c.Phase == "" {
		c.Phase = store.ShardPending
	}
	body, err := store.EncodeShard(&c)
	if err != nil {
		return fmt.Errorf("create shard %q: %w", c.Name, err)
	}
	usage, err := store.EncodeUsage(c.Usage)
	if err != nil {
		return fmt.Errorf("create shard %q: %w", c.Name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM shards WHERE name = ?`, c.Name).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAlreadyExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if c.ResourceVersion, err = nextRevision(ctx, tx); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO shards (`+shardColumns+`) VALUES (?, ?, ?, ?, ?)`,
			c.Name, c.ResourceVersion, string(body), formatHeartbeat(c.LastHeartbeat), string(usage))
		return err
	})
	if err != nil {
		return fmt.Errorf("create shard %q: %w", c.Name, err)
	}
	sh.Phase, sh.ResourceVersion = c.Phase, c.ResourceVersion
	return nil
}

// GetShard returns the shard called name.
func (s *Store) GetShard(ctx context.Context, name string) (*store.Shard, error) {
	sh, err := getShard(ctx, s.read, name)
	if err != nil {
		return nil, fmt.Errorf("get shard %q: %w", name, err)
	}
	return sh, nil
}

// ListShards returns every shard ordered by name.
func (s *Store) ListShards(ctx context.Context) ([]store.Shard, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+shardColumns+` FROM shards ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	defer rows.Close()
	out := []store.Shard{}
	for rows.Next() {
		sh, err := scanShard(rows)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		out = append(out, *sh)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	return out, nil
}

// UpdateShard applies mutate to the current value of the shard and stores
// the result, in one writer transaction, as UpdateSite does. It never writes
// LastHeartbeat or Usage (Heartbeat's).
func (s *Store) UpdateShard(ctx context.Context, name string, mutate func(*store.Shard) error) (*store.Shard, error) {
	var out *store.Shard
	var mutateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := getShard(ctx, tx, name)
		if err != nil {
			return err
		}
		next, err := getShard(ctx, tx, name) // an independent copy for mutate
		if err != nil {
			return err
		}
		if err := mutate(next); err != nil {
			mutateErr = err
			return err
		}
		write, err := store.PrepareShardUpdate(before, next)
		if err != nil || !write {
			out = next
			return err
		}
		if next.ResourceVersion, err = nextRevision(ctx, tx); err != nil {
			return err
		}
		body, err := store.EncodeShard(next)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE shards SET resource_version = ?, body = ? WHERE name = ?`,
			next.ResourceVersion, string(body), name)
		out = next
		return err
	})
	if mutateErr != nil && err == mutateErr { //nolint:errorlint // identity: mutate's error is returned as is
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("update shard %q: %w", name, err)
	}
	return out, nil
}

// DeleteShard removes the shard called name. It takes a revision and
// records nothing else (the shard's sites keep their Status.Shard).
func (s *Store) DeleteShard(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM shards WHERE name = ?`, name)
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
		return fmt.Errorf("delete shard %q: %w", name, err)
	}
	return nil
}

// Heartbeat records the shard's heartbeat: one UPDATE, no revision.
func (s *Store) Heartbeat(ctx context.Context, name string, at time.Time, usage store.Usage) error {
	u, err := store.EncodeUsage(usage)
	if err != nil {
		return fmt.Errorf("heartbeat of shard %q: %w", name, err)
	}
	res, err := s.exec(ctx, `UPDATE shards SET last_heartbeat = ?, usage = ? WHERE name = ?`,
		formatHeartbeat(&at), string(u), name)
	if err != nil {
		return fmt.Errorf("heartbeat of shard %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("heartbeat of shard %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("heartbeat of shard %q: %w", name, store.ErrNotFound)
	}
	return nil
}
