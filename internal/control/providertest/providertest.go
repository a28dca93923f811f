// Package providertest is the contract suite of control.ShardProvider:
// every shard provider (local processes, Kubernetes) must pass it.
package providertest

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Harness is one provider under test and its store.
type Harness struct {
	Provider control.ShardProvider
	Store    store.Store
	// Exists reports whether the provider's infrastructure for shard name
	// exists (a started process, the Kubernetes objects).
	Exists func(t *testing.T, name string) bool
}

// Run runs the contract suite; newHarness returns a fresh provider and
// store for each test.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("CreateRecordsAndStarts", func(t *testing.T) { testCreate(t, newHarness(t)) })
	t.Run("CreateRetryReusesTheShard", func(t *testing.T) { testRetry(t, newHarness(t)) })
	t.Run("DeleteEmpty", func(t *testing.T) { testDeleteEmpty(t, newHarness(t)) })
	t.Run("DeleteRefusedWhileHoldingSites", func(t *testing.T) { testDeleteNonEmpty(t, newHarness(t)) })
	t.Run("DeleteRefusedWhileASiteMovesIn", func(t *testing.T) { testDeleteMoveTarget(t, newHarness(t)) })
}

func testCreate(t *testing.T, h Harness) {
	ctx := t.Context()
	want := map[string]string{"region": "eu", "tier": "standard"}
	sh, err := h.Provider.CreateShard(ctx, maps.Clone(want))
	if err != nil {
		t.Fatalf("CreateShard: %v", err)
	}
	if sh.Name == "" {
		t.Fatal("CreateShard returned a shard without a name")
	}
	for k, v := range want {
		if sh.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, sh.Labels[k], v, sh.Labels)
		}
	}
	if sh.Healthy {
		t.Error("a new shard is Healthy before it ever reported")
	}
	rec, err := h.Store.GetShard(ctx, sh.Name)
	if err != nil {
		t.Fatalf("store record of %s: %v", sh.Name, err)
	}
	if rec.Provider != h.Provider.Kind() {
		t.Errorf("record's provider = %q, want %q", rec.Provider, h.Provider.Kind())
	}
	if rec.Phase != store.ShardPending {
		t.Errorf("record's phase = %q, want Pending", rec.Phase)
	}
	if !hasToken(t, h.Store, sh.Name) {
		t.Errorf("no agent token was issued for %s", sh.Name)
	}
	if !h.Exists(t, sh.Name) {
		t.Errorf("no infrastructure for %s after CreateShard", sh.Name)
	}
	other, err := h.Provider.CreateShard(ctx, map[string]string{"region": "us"})
	if err != nil {
		t.Fatalf("CreateShard (other labels): %v", err)
	}
	if other.Name == sh.Name {
		t.Errorf("a shard for other labels reused %s", sh.Name)
	}
}

func testRetry(t *testing.T, h Harness) {
	ctx := t.Context()
	a, err := h.Provider.CreateShard(ctx, map[string]string{"region": "eu"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Provider.CreateShard(ctx, map[string]string{"region": "eu"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != b.Name {
		t.Errorf("a retry made a second shard: %s then %s", a.Name, b.Name)
	}
	shards, err := h.Store.ListShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 1 {
		t.Errorf("store holds %d shards after a retry, want 1", len(shards))
	}
}

func testDeleteEmpty(t *testing.T, h Harness) {
	ctx := t.Context()
	sh, err := h.Provider.CreateShard(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Provider.DeleteShard(ctx, sh.Name); err != nil {
		t.Fatalf("DeleteShard of an empty shard: %v", err)
	}
	if _, err := h.Store.GetShard(ctx, sh.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after DeleteShard: err = %v, want ErrNotFound", err)
	}
	if hasToken(t, h.Store, sh.Name) {
		t.Error("the agent token survived DeleteShard")
	}
	if h.Exists(t, sh.Name) {
		t.Error("infrastructure survived DeleteShard")
	}
	if err := h.Provider.DeleteShard(ctx, sh.Name); err != nil {
		t.Errorf("second DeleteShard: %v, want nil (idempotent)", err)
	}
}

func testDeleteNonEmpty(t *testing.T, h Harness) {
	ctx := t.Context()
	sh, err := h.Provider.CreateShard(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	createSite(t, h.Store, "blog.example.com", func(s *site.Site) { s.Status.Shard = sh.Name })
	err = h.Provider.DeleteShard(ctx, sh.Name)
	if !errors.Is(err, control.ErrShardNotEmpty) {
		t.Fatalf("DeleteShard of a shard holding a site: err = %v, want ErrShardNotEmpty", err)
	}
	if _, err := h.Store.GetShard(ctx, sh.Name); err != nil {
		t.Errorf("record after a refused DeleteShard: %v", err)
	}
	if !h.Exists(t, sh.Name) {
		t.Error("infrastructure removed by a refused DeleteShard")
	}
}

func testDeleteMoveTarget(t *testing.T, h Harness) {
	ctx := t.Context()
	sh, err := h.Provider.CreateShard(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.CreateShard(ctx, &store.Shard{Name: "elsewhere", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	createSite(t, h.Store, "moving.example.com", func(s *site.Site) {
		s.Status.Shard = "elsewhere"
		s.Status.Phase = site.PhaseReady
		s.Move = &site.Move{ID: "m1", Source: "elsewhere", Target: sh.Name, Phase: site.MoveExporting, RequestedAt: time.Now().UTC()}
	})
	if err := h.Provider.DeleteShard(ctx, sh.Name); !errors.Is(err, control.ErrShardNotEmpty) {
		t.Fatalf("DeleteShard of a move's target: err = %v, want ErrShardNotEmpty", err)
	}
	if !h.Exists(t, sh.Name) {
		t.Error("infrastructure removed by a refused DeleteShard")
	}
}

func createSite(t *testing.T, st store.Store, name string, mutate func(*site.Site)) {
	t.Helper()
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: name, Title: name, Plan: "basic"},
		Status:   site.Status{Phase: site.PhasePending},
	}
	if err := st.CreateSite(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateSite(t.Context(), name, func(cur *site.Site) error { mutate(cur); return nil }); err != nil {
		t.Fatal(err)
	}
}

func hasToken(t *testing.T, st store.Store, shard string) bool {
	t.Helper()
	toks, err := st.ListTokens(t.Context(), store.TokenFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Role == store.RoleShard && tk.Subject == shard {
			return true
		}
	}
	return false
}
