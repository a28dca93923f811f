package providertest_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/control/providertest"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

// The local provider passes the contract with fake start and stop
// functions (the real ones run `aipress shard` processes).
func TestLocalProvider(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "aipress.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var mu sync.Mutex
		running := map[string]bool{}
		p := &control.LocalProvider{
			Store: st,
			Start: func(_ context.Context, sh store.Shard, token string) error {
				if token == "" {
					t.Errorf("shard %s started without a token", sh.Name)
				}
				mu.Lock()
				defer mu.Unlock()
				running[sh.Name] = true
				return nil
			},
			Stop: func(_ context.Context, name string) error {
				mu.Lock()
				defer mu.Unlock()
				delete(running, name)
				return nil
			},
		}
		return providertest.Harness{Provider: p, Store: st, Exists: func(_ *testing.T, name string) bool {
			mu.Lock()
			defer mu.Unlock()
			return running[name]
		}}
	})
}
