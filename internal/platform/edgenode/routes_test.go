package edgenode

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Routes come from where the edge's operator says shards live, never from
// what a shard reports: a local shard's sites are served from its
// directory here, a remote shard's through its gateway, and a shard that is
// neither has no Serving route — whatever docroot or endpoint its status
// claims.
func TestBuildRoutes(t *testing.T) {
	local := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(local, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(name, shard string, suspended bool) site.Site {
		return site.Site{
			Metadata: site.Metadata{Name: name, UID: "uid-" + name},
			Spec:     site.Spec{Domain: name, Suspended: suspended},
			// A hostile shard's claims: the edge must ignore them.
			Status: site.Status{Phase: site.PhaseReady, Shard: shard, Endpoint: "unix:/run/other.sock", Docroot: "/"},
		}
	}
	sites := []site.Site{ready("up.test", "a", false), ready("down.test", "b", false), ready("off.test", "b", true),
		ready("new.test", "c", false), ready("remote.test", "r", false), ready("liar.test", "x", false),
		// A staged update's staging site is never routed to visitors.
		ready(site.StagingName("up.test", "job-1"), "a", false)}
	shards := []store.Shard{
		{Name: "a", Phase: store.ShardReady, Roots: []string{filepath.Join(local, "a", "cores", "6.1"), "/usr/share/javascript/jquery", "/etc", "/",
			filepath.Join(local, "a", "artefacts"), filepath.Join(local, "b", "artefacts")}},
		{Name: "b", Phase: store.ShardUnhealthy, Roots: []string{filepath.Join(local, "b", "cores"), filepath.Join(local, "a", "cores")}},
		{Name: "c", Phase: store.ShardPending},
		{Name: "r", Phase: store.ShardReady, Dir: "/srv/r", Gateway: "r.internal:8443", Roots: []string{"/"}},
		// Claims a directory that is local to the edge, but the edge's
		// operator did not list it.
		{Name: "x", Phase: store.ShardReady, Dir: filepath.Join(local, "a")},
	}
	routes, roots := BuildRoutes(sites, shards, Locality{ShardDirs: []string{local}})
	want := map[string]edge.RouteState{"up.test": edge.Serving, "down.test": edge.ShardDown, "off.test": edge.Suspended,
		"new.test": edge.Unavailable, "remote.test": edge.Serving, "liar.test": edge.Unavailable,
		site.StagingName("up.test", "job-1"): edge.Suspended}
	for _, rt := range routes {
		if rt.State != want[rt.Host] {
			t.Errorf("%s: %v, want %v", rt.Host, rt.State, want[rt.Host])
		}
		switch rt.Host {
		case "up.test":
			n := shardlayout.Layout{Name: "a", Dir: filepath.Join(local, "a")}.Site("uid-up.test")
			if rt.Docroot != n.Docroot || rt.Endpoint != "unix:"+n.Socket || rt.Gateway != "" {
				t.Errorf("local route %+v", rt)
			}
		case "remote.test":
			n := shardlayout.Layout{Name: "r", Dir: "/srv/r"}.Site("uid-remote.test")
			if rt.Docroot != n.Docroot || rt.Endpoint != "" || rt.Gateway != "r.internal:8443" || rt.Shard != "r" {
				t.Errorf("remote route %+v", rt)
			}
		}
	}
	if len(routes) != len(want) {
		t.Errorf("%d routes", len(routes))
	}
	// Roots: each local shard's own cores and artefact store and the default allow-list; not
	// /etc or /, and not another shard's directory, nor a remote shard's.
	wantRoots := []string{filepath.Join(local, "a", "cores", "6.1"), "/usr/share/javascript/jquery", filepath.Join(local, "a", "artefacts"), filepath.Join(local, "b", "cores")}
	if !slices.Equal(roots, wantRoots) {
		t.Errorf("roots %v, want %v", roots, wantRoots)
	}
}
