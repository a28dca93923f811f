package edgenode

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
)

// PeerSource tells an edge its own name and the live edges' (GET
// /v1/whoami, GET /v1/edge/peers; *apiclient.Client), so that each site is
// probed by one edge (uptime.Assign).
type PeerSource interface {
	WhoAmI(ctx context.Context) (*apiclient.WhoAmI, error)
	EdgePeers(ctx context.Context) ([]string, error)
}

// probePeers is what the uptime prober reads at each round (Get): the
// edge's name and the live edges as last fetched. Until both are known,
// and after a failed fetch, the list is empty and the edge probes every
// site: a site probed twice is better than one probed by nobody.
type probePeers struct {
	mu    sync.Mutex
	self  string
	edges []string
}

// Get returns the edge's name and the live edges (uptime.Config.Peers).
func (p *probePeers) Get() (string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self, p.edges
}

// refresh learns the edge's name once, then fetches the list.
func (p *probePeers) refresh(ctx context.Context, src PeerSource) error {
	p.mu.Lock()
	self := p.self
	p.mu.Unlock()
	if self == "" {
		who, err := src.WhoAmI(ctx)
		if err != nil {
			return err
		}
		self = who.ID
	}
	edges, err := src.EdgePeers(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.self = self
	if err != nil {
		p.edges = nil
		return err
	}
	p.edges = edges
	return nil
}

// run refreshes the list every interval until ctx ends.
func (p *probePeers) run(ctx context.Context, src PeerSource, every time.Duration, log *slog.Logger) {
	for {
		if err := p.refresh(ctx, src); err != nil && ctx.Err() == nil {
			log.Warn("live edges not known: this edge probes every site until they are", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
