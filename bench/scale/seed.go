package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

// Seeding (-seed N) writes the simulated shards and N simulated sites
// straight into the store before the server starts, as registration and
// POST /v1/sites would have written them (sites unplaced, Pending). It
// exists because POST /v1/sites hashes each site's admin password with
// bcrypt (~70 ms of CPU), which caps creation at a few dozen sites per
// second on two cores: 50,000 sites through the API take the better part of
// an hour before anything else is measured. Seeded sites also give the
// leader one burst of placements to make, with nothing else running, which
// isolates its cost per site.

// simLabels returns the labels simulated shard i registers with.
func simLabels(i int) map[string]string {
	return map[string]string{labelTier: tierSim, "region": fmt.Sprintf("r%d", i%4)}
}

// simRegistration is what simulated shard i registers.
func (o *options) simRegistration(i int) store.Shard {
	return store.Shard{Capacity: o.simCapacity(), Labels: simLabels(i), AgentVersion: agentVersion, Provider: agentProvider}
}

// Registration fields of the simulated agents.
const (
	agentVersion  = "bench-scale"
	agentProvider = "bench"
)

// seed writes the simulated shards and the first o.seed simulated sites
// into the store at spec (SQLite in dataDir when empty).
func (b *bench) seed(ctx context.Context, spec, dataDir string) error {
	start := time.Now()
	st, err := storeopen.Open(ctx, spec, dataDir)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i, name := range b.simNames {
		sh := b.o.simRegistration(i)
		sh.Name, sh.Phase, sh.CreatedAt = name, store.ShardPending, now
		if err := st.CreateShard(ctx, &sh); err != nil {
			return fmt.Errorf("seed shard %s: %w", name, err)
		}
	}
	// One hash for all: the sites are never installed.
	hash, err := bcrypt.GenerateFromPassword([]byte("seeded-sites-are-never-installed"), bcrypt.MinCost)
	if err != nil {
		return err
	}
	names := b.sites[len(b.realSites) : len(b.realSites)+b.o.seed]
	err = parallel(ctx, len(names), 4, func(i int) error {
		s := seededSite(names[i], string(hash), now)
		if err := st.CreateSite(ctx, s); err != nil {
			return fmt.Errorf("seed site %s: %w", names[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf("seeded %d shards and %d sites into the store in %s", len(b.simNames), len(names), time.Since(start).Round(time.Millisecond))
	return nil
}

// seededSite is the site POST /v1/sites would store for name on plan dev.
func seededSite(name, hash string, now time.Time) *site.Site {
	uid := make([]byte, 16)
	_, _ = rand.Read(uid)
	devPlan, _ := plans.Defaults().Get("dev")
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: hex.EncodeToString(uid), Labels: map[string]string{labelTier: tierSim}, CreatedAt: now},
		Spec: site.Spec{Domain: name, Title: "Scale " + name, Plan: "dev", PHP: devPlan.PHP, Limits: devPlan.Limits(),
			Admin: site.Admin{User: api.DefaultAdminUser, Email: "ops@scale.test", PasswordHash: hash}, Cache: api.DefaultCache},
		Status: site.Status{Phase: site.PhasePending, URL: "http://" + name},
	}
	s.Spec.Defaults()
	return s
}

// waitSeededPlaced waits until the store holds no unplaced site, reading it
// through its own handle, and returns when that was.
func (b *bench) waitSeededPlaced(ctx context.Context, spec, dataDir string) (time.Time, error) {
	st, err := storeopen.Open(ctx, spec, dataDir)
	if err != nil {
		return time.Time{}, fmt.Errorf("open store to watch placement: %w", err)
	}
	defer st.Close()
	var at time.Time
	err = b.poll(ctx, 30*time.Minute, "seeded sites placed", func() (bool, error) {
		page, err := st.ListSites(ctx, store.ListOptions{Unplaced: true, Limit: 1})
		if err != nil {
			return false, err
		}
		at = time.Now()
		return len(page.Items) == 0, nil
	})
	return at, err
}
