// Package tokencache keeps the API tokens a store has just verified, so
// that an agent's, an edge's or a program's calls do not each cost a store
// query to authenticate.
//
// Why a cache and not a cheaper hash: tokens are not stored with a slow
// hash. A token's secret is 32 random bytes, out of reach of guessing, so
// the store keeps only its SHA-256 (LookupToken takes that hash) and
// verification is already one hash and one indexed query. What remains to
// save is the query, which at 200 agents and edges long-polling,
// heartbeating and reporting was about 4 % of the control plane's CPU, and
// one round trip to PostgreSQL per request.
//
// What is cached: found tokens only (a refused secret is asked again every
// time, so a token just created works at once), keyed by the hash the store
// is queried with — the SHA-256 of the presented secret, never the secret
// itself — for at most TTL, and at most MaxEntries of them (when full,
// expired entries go, and if none had expired the cache starts empty).
// Callers get copies.
//
// Revocation is immediate in this process: every write through the
// wrapped store that can end or change a token (UpdateToken — rotation,
// DeleteToken, DeleteTokens, DeleteUser, DeleteOrg, UpdateUser) empties the
// cache before it returns. A token expiring is checked by the caller on each
// request (ExpiresAt travels with the cached token). Another process
// writing the same store (a second control-plane replica, or a tool on the
// store directly) is seen within TTL; keep TTL short.
package tokencache

import (
	"context"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Defaults of Config.
const (
	DefaultTTL        = 5 * time.Second
	DefaultMaxEntries = 16384
)

// Config configures Wrap.
type Config struct {
	// TTL bounds how long a verified token is trusted without asking the
	// store again (default DefaultTTL).
	TTL time.Duration
	// MaxEntries bounds the cache (default DefaultMaxEntries).
	MaxEntries int
	// Clock is the time source (default time.Now).
	Clock func() time.Time
}

// Wrap returns st with LookupToken answered from the cache when it can.
// Every other method passes through to st.
func Wrap(st store.Store, cfg Config) store.Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &cached{Store: st, cfg: cfg, entries: map[string]entry{}}
}

type entry struct {
	tok     store.Token
	expires time.Time
}

type cached struct {
	store.Store
	cfg Config

	mu      sync.Mutex
	entries map[string]entry // by token hash
	// gen counts invalidations: a lookup that started before one must not
	// store what it read (it may be the revoked token).
	gen uint64
}

func clone(t store.Token) *store.Token {
	if t.ExpiresAt != nil {
		v := *t.ExpiresAt
		t.ExpiresAt = &v
	}
	if t.LastUsedAt != nil {
		v := *t.LastUsedAt
		t.LastUsedAt = &v
	}
	return &t
}

// LookupToken answers from the cache while the entry is fresh, else asks
// the store and remembers a found token.
func (c *cached) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	now := c.cfg.Clock()
	c.mu.Lock()
	e, ok := c.entries[hash]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return clone(e.tok), nil
	}
	tok, err := c.Store.LookupToken(ctx, hash)
	if err != nil {
		return tok, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return tok, nil // invalidated meanwhile: do not keep what was read before
	}
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.cfg.MaxEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.cfg.MaxEntries {
			clear(c.entries)
		}
	}
	c.entries[hash] = entry{tok: *clone(*tok), expires: now.Add(c.cfg.TTL)}
	return tok, nil
}

// invalidate empties the cache; it runs before and after a write, so a
// lookup racing the write keeps nothing it read before the write ended.
func (c *cached) invalidate() {
	c.mu.Lock()
	clear(c.entries)
	c.gen++
	c.mu.Unlock()
}

// TouchToken records a use, and in the cached copies too, so that callers
// that write the last use at most once a minute see it written.
func (c *cached) TouchToken(ctx context.Context, id string, at time.Time, ip string) error {
	err := c.Store.TouchToken(ctx, id, at, ip)
	if err != nil {
		return err
	}
	c.mu.Lock()
	for k, e := range c.entries {
		if e.tok.ID == id {
			t := at
			e.tok.LastUsedAt, e.tok.LastUsedIP = &t, ip
			c.entries[k] = e
		}
	}
	c.mu.Unlock()
	return nil
}

func (c *cached) UpdateToken(ctx context.Context, id string, mutate func(*store.Token) error) (*store.Token, error) {
	c.invalidate()
	defer c.invalidate()
	return c.Store.UpdateToken(ctx, id, mutate)
}

func (c *cached) DeleteToken(ctx context.Context, id string) error {
	c.invalidate()
	defer c.invalidate()
	return c.Store.DeleteToken(ctx, id)
}

func (c *cached) DeleteTokens(ctx context.Context, f store.TokenFilter) (int, error) {
	c.invalidate()
	defer c.invalidate()
	return c.Store.DeleteTokens(ctx, f)
}

func (c *cached) DeleteUser(ctx context.Context, id string) error {
	c.invalidate()
	defer c.invalidate()
	return c.Store.DeleteUser(ctx, id)
}

func (c *cached) UpdateUser(ctx context.Context, id string, mutate func(*store.User) error) (*store.User, error) {
	c.invalidate()
	defer c.invalidate()
	return c.Store.UpdateUser(ctx, id, mutate)
}

func (c *cached) DeleteOrg(ctx context.Context, name string) error {
	c.invalidate()
	defer c.invalidate()
	return c.Store.DeleteOrg(ctx, name)
}
