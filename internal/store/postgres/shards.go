package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aipress/aipress/internal/store"
)

const shardColumns = `name, resource_version, body, last_heartbeat, usage`

func scanShard(row pgx.Row) (*store.Shard, error) {
	var (
		name        string
		rv          int64
		body, usage []byte
		beat        *time.Time
	)
	if err := row.Scan(&name, &rv, &body, &beat, &usage); err != nil {
		return nil, err
	}
	if beat != nil {
		u := beat.UTC()
		beat = &u
	}
	return store.DecodeShard(name, rv, beat, body, usage)
}

// getShard reads the shard called name (locking it when forUpdate);
// ErrNotFound (unwrapped) when there is none.
func getShard(ctx context.Context, q querier, name string, forUpdate bool) (*store.Shard, error) {
	query := `SELECT ` + shardColumns + ` FROM shards WHERE name = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	sh, err := scanShard(q.QueryRow(ctx, query, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return sh, mapErr(err)
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// As CreateSite: the insert locks the new row before the revision
		// bump locks meta; a concurrent create of the same name waits, then
		// fails with a unique violation.
		if _, err := tx.Exec(ctx, `INSERT INTO shards (`+shardColumns+`) VALUES ($1, 0, $2, $3, $4)`,
			c.Name, body, c.LastHeartbeat, usage); err != nil {
			return mapErr(err)
		}
		return tx.QueryRow(ctx, `WITH r AS (UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value)
			UPDATE shards SET resource_version = r.value FROM r WHERE shards.name = $1 RETURNING shards.resource_version`,
			c.Name).Scan(&c.ResourceVersion)
	})
	if err != nil {
		return fmt.Errorf("create shard %q: %w", c.Name, err)
	}
	sh.Phase, sh.ResourceVersion = c.Phase, c.ResourceVersion
	return nil
}

// GetShard returns the shard called name.
func (s *Store) GetShard(ctx context.Context, name string) (*store.Shard, error) {
	sh, err := getShard(ctx, s.read, name, false)
	if err != nil {
		return nil, fmt.Errorf("get shard %q: %w", name, err)
	}
	return sh, nil
}

// ListShards returns every shard ordered by name (in byte order).
func (s *Store) ListShards(ctx context.Context) ([]store.Shard, error) {
	shards, err := queryShards(ctx, s.read, `SELECT `+shardColumns+` FROM shards ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	return shards, nil
}

// UpdateShard applies mutate to the current value of the shard and stores
// the result, in one transaction that holds the shard's row lock, as
// UpdateSite does. It never writes LastHeartbeat or Usage (Heartbeat's).
func (s *Store) UpdateShard(ctx context.Context, name string, mutate func(*store.Shard) error) (*store.Shard, error) {
	var out *store.Shard
	var mutateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := getShard(ctx, tx, name, true)
		if err != nil {
			return err
		}
		c := *before
		next := &c // an independent copy for mutate
		next.Labels = maps.Clone(before.Labels)
		next.Roots = slices.Clone(before.Roots)
		if before.LastHeartbeat != nil {
			t := *before.LastHeartbeat
			next.LastHeartbeat = &t
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
		if _, err := tx.Exec(ctx, `UPDATE shards SET resource_version = $1, body = $2 WHERE name = $3`,
			next.ResourceVersion, body, name); err != nil {
			return mapErr(err)
		}
		out = next
		return nil
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The delete locks the row before the revision bump locks meta.
		tag, err := tx.Exec(ctx, `DELETE FROM shards WHERE name = $1`, name)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
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

// Heartbeat records the shard's heartbeat: one UPDATE, no revision. at is
// stored to the microsecond.
func (s *Store) Heartbeat(ctx context.Context, name string, at time.Time, usage store.Usage) error {
	u, err := store.EncodeUsage(usage)
	if err != nil {
		return fmt.Errorf("heartbeat of shard %q: %w", name, err)
	}
	tag, err := s.write.Exec(ctx, `UPDATE shards SET last_heartbeat = $1, usage = $2 WHERE name = $3`, at, u, name)
	if err != nil {
		return fmt.Errorf("heartbeat of shard %q: %w", name, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("heartbeat of shard %q: %w", name, store.ErrNotFound)
	}
	return nil
}
