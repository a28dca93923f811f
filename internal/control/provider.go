package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/store"
)

// LocalProvider is the placement.Provider of shards that run on this
// machine: it records the new shard in the store (Provider "local", Phase
// Pending), issues its agent token, and hands both to Start, which runs the
// agent (a goroutine of `aipress up`, or an `aipress shard` child process of
// `aipress server`). The shard registers and heartbeats like any other.
//
// Names are Prefix followed by the next free number ("local-2", "local-3",
// …). A creation that failed after the record was written is resumed by the
// next call with the same labels: the record of a local shard that never
// heartbeated and holds no sites is reused rather than a second one made.
type LocalProvider struct {
	Store store.Store
	// Start runs the agent of shard sh with the agent token (its secret).
	// It must return once the agent is started, not when it stops.
	Start func(ctx context.Context, sh store.Shard, token string) error
	// Stop, if set, stops the agent of shard name (DeleteShard calls it).
	Stop func(ctx context.Context, name string) error
	// Prefix of new shards' names; default "local-".
	Prefix string
	// Capacity of new shards (0: placement.DefaultCapacity).
	Capacity int
	// Labels every new shard gets besides the placement constraints.
	Labels map[string]string
	Clock  func() time.Time

	mu sync.Mutex
}

// ProviderLocal is the Provider value of shards LocalProvider creates.
const ProviderLocal = "local"

// CreateShard implements placement.Provider.
func (p *LocalProvider) CreateShard(ctx context.Context, labels map[string]string) (placement.Shard, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix := p.Prefix
	if prefix == "" {
		prefix = "local-"
	}
	now := time.Now
	if p.Clock != nil {
		now = p.Clock
	}
	all := maps.Clone(p.Labels)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, labels)

	shards, err := p.Store.ListShards(ctx)
	if err != nil {
		return placement.Shard{}, fmt.Errorf("local provider: %w", err)
	}
	next := 1
	var rec *store.Shard
	for i, sh := range shards {
		if n, ok := strings.CutPrefix(sh.Name, prefix); ok {
			if v, err := strconv.Atoi(n); err == nil && v >= next {
				next = v + 1
			}
		}
		if rec == nil && sh.Provider == ProviderLocal && sh.Phase == store.ShardPending &&
			sh.LastHeartbeat == nil && maps.Equal(sh.Labels, all) {
			rec = &shards[i]
		}
	}
	if rec == nil {
		if next < 2 {
			next = 2 // "local" is the first shard of `aipress up`
		}
		rec = &store.Shard{
			Name: prefix + strconv.Itoa(next), Capacity: p.Capacity, Labels: all,
			Provider: ProviderLocal, Phase: store.ShardPending, CreatedAt: now().UTC(),
		}
		if err := p.Store.CreateShard(ctx, rec); err != nil {
			return placement.Shard{}, fmt.Errorf("local provider: create shard %s: %w", rec.Name, err)
		}
	}
	token, err := IssueShardToken(ctx, p.Store, rec.Name, now())
	if err != nil {
		return placement.Shard{}, fmt.Errorf("local provider: %w", err)
	}
	if err := p.Start(ctx, *rec, token); err != nil {
		return placement.Shard{}, fmt.Errorf("local provider: start shard %s: %w", rec.Name, err)
	}
	return placement.Shard{Name: rec.Name, Labels: rec.Labels, Capacity: rec.Capacity, Starting: true}, nil
}

// IssueShardToken creates a new agent token for shard and returns its
// secret (shown once; the store keeps its SHA-256).
func IssueShardToken(ctx context.Context, st store.Store, shard string, now time.Time) (string, error) {
	return issueToken(ctx, st, store.RoleShard, shard, "shard "+shard, now)
}

func issueToken(ctx context.Context, st store.Store, role store.Role, subject, name string, now time.Time) (string, error) {
	secret, hash, err := store.NewTokenSecret()
	if err != nil {
		return "", err
	}
	err = st.CreateToken(ctx, store.Token{
		ID: string(role) + "-" + hash[:12], Name: name, Role: role, Subject: subject, Hash: hash, CreatedAt: now.UTC(),
	})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", fmt.Errorf("issue %s token: %w", role, err)
	}
	return secret, nil
}

// ErrShardNotEmpty means a provider refused to delete a shard that still
// holds sites (placed on it, or moving to or from it): drain it first.
var ErrShardNotEmpty = errors.New("shard still holds sites")

// ShardProvider is a placement.Provider that also removes the shards it
// made. The controller uses it, and the contract suite in
// control/providertest checks every implementation.
//
// Contract, besides placement.Provider's: CreateShard records the new shard
// in the store (Provider = Kind(), Phase Pending) before it starts anything,
// so that a store record exists for every shard whose infrastructure
// exists. DeleteShard removes shard name's infrastructure, its agent tokens
// and its store record, in that order; it refuses (an error wrapping
// ErrShardNotEmpty, nothing removed) while any site is on the shard or
// moving to or from it, and it is idempotent: deleting a shard that is
// already gone (record or infrastructure or both) finishes what is left and
// returns nil.
type ShardProvider interface {
	placement.Provider
	// Kind is the store.Shard.Provider value of the shards it creates.
	Kind() string
	DeleteShard(ctx context.Context, name string) error
}

// ShardStatus is what a provider observed of one shard's infrastructure.
type ShardStatus struct {
	Name string
	// Phase is ShardPending (never ready yet), ShardReady or ShardDegraded
	// (not ready after it had been).
	Phase  store.ShardPhase
	Reason string
}

// ShardWatcher is a provider that observes its shards' infrastructure (the
// Kubernetes provider watches its StatefulSets). WatchShards runs until ctx
// ends and calls report with every shard's status when it changes (and may
// repeat unchanged ones); report writes it to the store's
// Shard.ProviderPhase, from which the controller derives the shard's Phase.
// The controller runs it while leading.
type ShardWatcher interface {
	WatchShards(ctx context.Context, report func(ctx context.Context, st ShardStatus) error) error
}

// ShardLister is a provider that can list the shards whose infrastructure
// exists. The controller deletes (through DeleteShard) those whose store
// record is gone, so `aipress shard delete` (which the API refuses for a
// shard holding sites) also removes what the provider made for it.
type ShardLister interface {
	ListShards(ctx context.Context) ([]string, error)
}

// Kind implements ShardProvider.
func (p *LocalProvider) Kind() string { return ProviderLocal }

// DeleteShard implements ShardProvider: it refuses a shard holding sites,
// else calls Stop (if set), then removes the shard's tokens and record.
func (p *LocalProvider) DeleteShard(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := CheckShardEmpty(ctx, p.Store, name); err != nil {
		return fmt.Errorf("local provider: delete shard %s: %w", name, err)
	}
	if p.Stop != nil {
		if err := p.Stop(ctx, name); err != nil {
			return fmt.Errorf("local provider: stop shard %s: %w", name, err)
		}
	}
	if err := RemoveShardRecord(ctx, p.Store, name); err != nil {
		return fmt.Errorf("local provider: %w", err)
	}
	return nil
}

// CheckShardEmpty returns an error wrapping ErrShardNotEmpty when a site is
// on shard name or moving to or from it.
func CheckShardEmpty(ctx context.Context, st store.Store, name string) error {
	page, err := st.ListSites(ctx, store.ListOptions{Shard: name, Limit: 1})
	if err != nil {
		return fmt.Errorf("count the sites of shard %s: %w", name, err)
	}
	if len(page.Items) > 0 {
		return fmt.Errorf("shard %s: site %s and maybe more: %w", name, page.Items[0].Metadata.Name, ErrShardNotEmpty)
	}
	return nil
}

// RemoveShardRecord deletes shard name's agent tokens and its store record;
// either being gone already is fine.
func RemoveShardRecord(ctx context.Context, st store.Store, name string) error {
	toks, err := st.ListTokens(ctx, store.TokenFilter{})
	if err != nil {
		return fmt.Errorf("list tokens of shard %s: %w", name, err)
	}
	for _, tk := range toks {
		if tk.Role == store.RoleShard && tk.Subject == name {
			if err := st.DeleteToken(ctx, tk.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete token %s of shard %s: %w", tk.ID, name, err)
			}
		}
	}
	if err := st.DeleteShard(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete shard %s: %w", name, err)
	}
	return nil
}
