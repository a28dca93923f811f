package up

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherers is what `aipress up` serves at the API's /metrics besides the
// control plane's own: its edge's registry (which has the Go runtime and
// process collectors) and each local shard's (package shardmetrics), added
// as the shards start.
type gatherers struct {
	edge prometheus.Gatherer

	mu     sync.Mutex
	shards map[string]prometheus.Gatherer
}

// setShard adds (or replaces, after a restart) a shard's registry.
func (g *gatherers) setShard(name string, r prometheus.Gatherer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shards == nil {
		g.shards = map[string]prometheus.Gatherer{}
	}
	g.shards[name] = r
}

// Gather gathers the edge and every shard.
func (g *gatherers) Gather() ([]*dto.MetricFamily, error) {
	g.mu.Lock()
	all := prometheus.Gatherers{g.edge}
	for _, r := range g.shards {
		all = append(all, r)
	}
	g.mu.Unlock()
	return all.Gather()
}
