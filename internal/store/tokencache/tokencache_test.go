package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
	"github.com/aipress/aipress/internal/store/storetest"
)

// counting counts the lookups that reach the real store.
type counting struct {
	store.Store
	lookups atomic.Int64
}

func (c *counting) LookupToken(ctx context.Context, hash string) (*store.Token, error) {
	c.lookups.Add(1)
	return c.Store.LookupToken(ctx, hash)
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func newStore(t *testing.T, maxEntries int) (store.Store, *counting, *time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range []string{"a", "b", "c"} {
		if err := st.CreateToken(ctx, store.Token{ID: "tok-" + id, Name: id, Role: store.RoleEdge, Hash: hashOf("secret-" + id), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	cnt := &counting{Store: st}
	now := t0
	return Wrap(cnt, Config{TTL: 5 * time.Second, MaxEntries: maxEntries, Clock: func() time.Time { return now }}), cnt, &now
}

// TestCacheAndRevocation: a verified token is served from the cache until
// its TTL runs out; revoking, rotating or deleting it through the wrapped
// store refuses it at the very next lookup.
func TestCacheAndRevocation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		revoke func(st store.Store) error
		// gone: the lookup must fail (else it must see the change).
		gone  bool
		check func(t *testing.T, tok *store.Token)
	}{
		{name: "delete", gone: true, revoke: func(st store.Store) error { return st.DeleteToken(ctx, "tok-a") }},
		{name: "delete by filter", gone: true, revoke: func(st store.Store) error {
			_, err := st.DeleteTokens(ctx, store.TokenFilter{ID: "tok-a"})
			return err
		}},
		{name: "rotate (expiry set)", revoke: func(st store.Store) error {
			_, err := st.UpdateToken(ctx, "tok-a", func(tk *store.Token) error {
				exp := t0.Add(time.Second)
				tk.ExpiresAt, tk.ReplacedBy = &exp, "tok-b"
				return nil
			})
			return err
		}, check: func(t *testing.T, tok *store.Token) {
			if tok.ExpiresAt == nil || tok.ReplacedBy != "tok-b" {
				t.Errorf("after rotation the lookup gave %+v, want the expiry and replacement", tok)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, cnt, _ := newStore(t, 0)
			for range 3 {
				if _, err := st.LookupToken(ctx, hashOf("secret-a")); err != nil {
					t.Fatal(err)
				}
			}
			if n := cnt.lookups.Load(); n != 1 {
				t.Fatalf("%d store lookups for 3 verifications, want 1 (cached)", n)
			}
			if err := tt.revoke(st); err != nil {
				t.Fatal(err)
			}
			tok, err := st.LookupToken(ctx, hashOf("secret-a"))
			if tt.gone {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("revoked token: lookup = %v, %v; want ErrNotFound at once", tok, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, tok)
		})
	}
}

// TestTTLAndMisses: entries expire after TTL; refused secrets are never
// cached (a token created after a miss works at once); the cache is
// bounded; a touch shows in the cached copy; callers get copies.
func TestTTLAndMisses(t *testing.T) {
	ctx := context.Background()
	st, cnt, now := newStore(t, 2)
	if _, err := st.LookupToken(ctx, hashOf("secret-x")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown secret: %v", err)
	}
	if err := st.CreateToken(ctx, store.Token{ID: "tok-x", Name: "x", Role: store.RoleEdge, Hash: hashOf("secret-x"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LookupToken(ctx, hashOf("secret-x")); err != nil {
		t.Fatalf("token created after a miss: %v", err)
	}
	cnt.lookups.Store(0)
	tok, _ := st.LookupToken(ctx, hashOf("secret-x"))
	tok.Name = "changed by the caller"
	if tok, _ := st.LookupToken(ctx, hashOf("secret-x")); tok.Name != "x" || cnt.lookups.Load() != 0 {
		t.Fatalf("cached lookup: %+v after %d store lookups, want an unchanged copy and 0", tok, cnt.lookups.Load())
	}
	at := t0.Add(time.Second)
	if err := st.TouchToken(ctx, "tok-x", at, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if tok, _ := st.LookupToken(ctx, hashOf("secret-x")); tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(at) {
		t.Errorf("after a touch the cached token's last use is %v, want %v", tok.LastUsedAt, at)
	}
	*now = now.Add(5 * time.Second)
	if _, err := st.LookupToken(ctx, hashOf("secret-x")); err != nil || cnt.lookups.Load() != 1 {
		t.Fatalf("after the TTL: err %v, %d store lookups, want 1", err, cnt.lookups.Load())
	}
	// Bounded: 2 entries at most; a third empties it.
	for _, s := range []string{"secret-a", "secret-b", "secret-c"} {
		if _, err := st.LookupToken(ctx, hashOf(s)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(st.(*cached).entries); n > 2 {
		t.Errorf("%d entries, want at most 2", n)
	}
}

// TestContract: the wrapped store still keeps the store contract (its
// token bullets included) on SQLite.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		t.Helper()
		s, err := sqlite.Open(t.Context(), filepath.Join(dir, "aipress.db"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return Wrap(s, Config{})
	})
}
