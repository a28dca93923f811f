package platform

import (
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func TestBuildRoutes(t *testing.T) {
	ready := func(name, shard string, suspended bool) site.Site {
		return site.Site{
			Metadata: site.Metadata{Name: name},
			Spec:     site.Spec{Domain: name, Suspended: suspended},
			Status:   site.Status{Phase: site.PhaseReady, Shard: shard, Endpoint: "unix:/x.sock", Docroot: "/x"},
		}
	}
	sites := []site.Site{ready("up.test", "a", false), ready("down.test", "b", false), ready("off.test", "b", true), ready("new.test", "c", false)}
	shards := []store.Shard{
		{Name: "a", Phase: store.ShardReady, Roots: []string{"/srv/a/cores"}},
		{Name: "b", Phase: store.ShardUnhealthy, Roots: []string{"/srv/b/cores"}},
		{Name: "c", Phase: store.ShardPending},
	}
	routes, roots := buildRoutes(sites, shards)
	want := map[string]edge.RouteState{"up.test": edge.Serving, "down.test": edge.ShardDown, "off.test": edge.Suspended, "new.test": edge.Serving}
	for _, rt := range routes {
		if rt.State != want[rt.Host] {
			t.Errorf("%s: %v, want %v", rt.Host, rt.State, want[rt.Host])
		}
	}
	if len(routes) != len(want) || len(roots) != 2 || roots[0] != "/srv/a/cores" || roots[1] != "/srv/b/cores" {
		t.Errorf("routes %d, roots %v", len(routes), roots)
	}
}
