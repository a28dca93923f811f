package up

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/shardmetrics"
	"github.com/aipress/aipress/internal/store"
)

// inprocShards are the shards `aipress up` runs in its own process, each a
// shard agent whose link to the control plane is the store itself
// (storeLink): the first ones from the start, more when the local provider
// adds them.
type inprocShards struct {
	dataDir     string
	log         *slog.Logger
	publicURL   func(string) string
	purgeURL    string
	purgeKey    func(site string) string
	transferURL string
	version     string
	// heartbeatTimeout is the control plane's (the shards beat thrice
	// within it).
	heartbeatTimeout  time.Duration
	st                store.Store
	repos             *repos.Manager
	loginKey          func(uid string) []byte
	uploads           *blob.Bucket
	catalogueURL      string
	allowPrivateFetch bool
	after             func()
	// firewall and loopbackPorts are the shards' site firewall (sitefw).
	firewall shardagent.FirewallMode
	// directDB and dbReplica are the shards' database options
	// (Config.DirectDB, DBReplica).
	directDB       bool
	dbReplica      string
	poolerBackends int
	poolerLinger   time.Duration
	dbBufferPool   int64 // Config.DBBufferPool
	loopbackPorts  []int
	// metrics gathers the shards' metrics with the edge's (metrics.go).
	metrics *gatherers

	mu      sync.Mutex
	ctx     context.Context
	runErr  chan<- error
	running map[string]*inprocShard
	wg      sync.WaitGroup
}

type inprocShard struct {
	wake    func()
	ready   chan struct{}
	servers chan struct{} // closed once its MariaDB, php-fpm and pooler are up
	cancel  context.CancelFunc
}

// ensure creates the records of the first n local shards if missing and
// returns their names.
func (p *inprocShards) ensure(ctx context.Context, n, capacity int) ([]string, error) {
	var names []string
	for i := 1; i <= n; i++ {
		name := LocalShard
		if i > 1 {
			name = fmt.Sprintf("%s-%d", LocalShard, i)
		}
		names = append(names, name)
		err := p.st.CreateShard(ctx, &store.Shard{
			Name: name, Capacity: capacity, Provider: control.ProviderLocal,
			Phase: store.ShardPending, CreatedAt: time.Now().UTC(),
		})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("shard %s: %w", name, err)
		}
	}
	return names, nil
}

// startAll starts every local shard in the store.
func (p *inprocShards) startAll(ctx context.Context) error {
	shards, err := p.st.ListShards(ctx)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if sh.Provider == control.ProviderLocal {
			if err := p.start(ctx, sh, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// start is control.LocalProvider.Start (the token is not needed: the shard
// reaches the store directly).
func (p *inprocShards) start(_ context.Context, sh store.Shard, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return errors.New("in-process shards are not running")
	}
	if p.running == nil {
		p.running = map[string]*inprocShard{}
	}
	if _, ok := p.running[sh.Name]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(p.ctx)
	r := &inprocShard{ready: make(chan struct{}), servers: make(chan struct{}), cancel: cancel, wake: func() {}}
	p.running[sh.Name] = r
	link := &storeLink{st: p.st, repos: p.repos, loginKey: p.loginKey, uploads: p.uploads, name: sh.Name, now: time.Now, after: p.after, wakeShards: p.wakeAll}
	cfg := shardagent.Config{
		Name: sh.Name, DataDir: filepath.Join(p.dataDir, "shards", sh.Name), Capacity: sh.Capacity,
		Labels: sh.Labels, Provider: control.ProviderLocal, PublicURL: p.publicURL, CatalogueURL: p.catalogueURL, AllowPrivateFetch: p.allowPrivateFetch,
		PurgeURL: p.purgeURL, PurgeKey: p.purgeKey, TransferURL: p.transferURL,
		Logger: p.log, Version: p.version, Ready: func() { close(r.ready) },
		HeartbeatInterval: controlplane.HeartbeatInterval(p.heartbeatTimeout),
		SiteFirewall:      p.firewall, LoopbackPorts: p.loopbackPorts,
		DirectDB: p.directDB, DBReplica: p.dbReplica, DBPoolerBackends: p.poolerBackends, DBPoolerLinger: p.poolerLinger, DBBufferPool: p.dbBufferPool,
		OnShard: func(s *shard.Shard) {
			p.metrics.setShard(sh.Name, shardmetrics.New(s, shardmetrics.Config{Shard: sh.Name}).Registry())
			p.mu.Lock()
			r.wake = func() { s.Wake(); s.WakeJobs() }
			p.mu.Unlock()
			go func() {
				select {
				case <-s.ServersReady():
					close(r.servers)
				case <-ctx.Done():
				}
			}()
		},
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := shardagent.RunLink(ctx, cfg, link); err != nil {
			select {
			case p.runErr <- fmt.Errorf("shard %s: %w", sh.Name, err):
			default:
			}
		}
	}()
	p.log.Info("started local shard", "shard", sh.Name)
	return nil
}

// wakeAll makes every shard converge now.
func (p *inprocShards) wakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.running {
		r.wake()
	}
}

// waitReady waits until the named shards converged once.
func (p *inprocShards) waitReady(ctx context.Context, names []string) bool {
	for _, n := range names {
		p.mu.Lock()
		r := p.running[n]
		p.mu.Unlock()
		if r == nil {
			return false
		}
		select {
		case <-r.ready:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// waitServers waits until the servers (MariaDB, php-fpm, pooler) of the
// named shards are up, or ctx ends; it reports whether they all are.
func (p *inprocShards) waitServers(ctx context.Context, names []string) bool {
	for _, n := range names {
		p.mu.Lock()
		r := p.running[n]
		p.mu.Unlock()
		if r == nil {
			return false
		}
		select {
		case <-r.servers:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (p *inprocShards) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.running {
		r.cancel()
	}
}

func (p *inprocShards) wait() { p.wg.Wait() }
