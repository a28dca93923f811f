package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/platform/edgenode"
)

// edge measures what an edge does on start: fetch the whole routing table
// through GET /v1/routes (the watch's list) with an edge token, and build
// its edge.Table. The heap figures come from this process: the growth while
// fetching and building, and what the table keeps once the response is
// garbage.
func (b *bench) edge(ctx context.Context) error {
	cl := newClient(b.cp.URL(), b.edgeToken, 1)
	var before, peak, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	resp, err := cl.Routes(ctx)
	if err != nil {
		return fmt.Errorf("edge: routes: %w", err)
	}
	b.f.EdgeFetch = time.Since(t0)
	t1 := time.Now()
	table := buildTable(resp)
	b.f.EdgeBuild = time.Since(t1)
	runtime.ReadMemStats(&peak)
	resp = nil //nolint:ineffassign // only the table stays reachable
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.f.EdgeRoutes = table.Len()
	b.f.EdgeHeap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	b.f.EdgePeak = int64(peak.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(table)
	logf("edge: %d routes fetched in %s, table built in %s, %s kept", b.f.EdgeRoutes, ms(b.f.EdgeFetch), ms(b.f.EdgeBuild), mib(b.f.EdgeHeap))
	if want := len(b.sites); table.Len() != want {
		return fmt.Errorf("edge: table has %d routes, want %d", table.Len(), want)
	}
	return nil
}

// buildTable turns the routes list into the edge's table, one route per
// site as an edge derives it (every shard reached through a gateway).
func buildTable(resp *apiclient.RoutesResponse) *edge.Table {
	routes, _ := edgenode.BuildRoutes(resp.Sites, resp.Shards, edgenode.Locality{})
	return edge.NewTable(routes)
}
