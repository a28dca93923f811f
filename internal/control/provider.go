package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

// IssueEdgeToken creates a new edge token named name.
func IssueEdgeToken(ctx context.Context, st store.Store, name string, now time.Time) (string, error) {
	return issueToken(ctx, st, store.RoleEdge, "", "edge "+name, now)
}

func issueToken(ctx context.Context, st store.Store, role store.Role, subject, name string, now time.Time) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := "aip_" + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	err := st.CreateToken(ctx, store.Token{
		ID: string(role) + "-" + hash[:12], Name: name, Role: role, Subject: subject, Hash: hash, CreatedAt: now.UTC(),
	})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", fmt.Errorf("issue %s token: %w", role, err)
	}
	return secret, nil
}
