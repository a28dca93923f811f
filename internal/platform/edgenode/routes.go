package edgenode

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Locality is what an edge knows of where sites live, from its own
// configuration — never from what shards report.
type Locality struct {
	// ShardDirs are directories of this machine holding the data
	// directories of shards that run here, each at <dir>/<shard name>
	// (`aipress up`: <data-dir>/shards). Only for those shards does the edge
	// read docroots and connect to pool sockets, at the paths their
	// layout gives (package shardlayout). Sites of other shards are served
	// through their gateways, or not at all.
	ShardDirs []string
	// SymlinkRoots are directories outside a local shard's directory from
	// which the edge serves files that the shard's docroots link to
	// (Debian's WordPress links into /usr/share/javascript and friends): a
	// root a shard registers is allowed only when it lies within its own
	// directory's cores or artefact store, or one of these. Nil:
	// DefaultSymlinkRoots.
	SymlinkRoots []string
}

// DefaultSymlinkRoots are the directories Debian's WordPress core links
// into (scripts, fonts, getID3, the CA bundle): nothing per-site or secret.
var DefaultSymlinkRoots = []string{"/usr/share/javascript", "/usr/share/fonts", "/usr/share/php/getid3", "/etc/ssl/certs"}

// localDir returns the data directory of shard name on this machine.
func (l Locality) localDir(name string) (string, bool) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", false
	}
	for _, d := range l.ShardDirs {
		dir := filepath.Join(d, name)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir, true
		}
	}
	return "", false
}

// allowedRoot reports whether a symlink root registered by the local shard
// in dir may be served from.
func (l Locality) allowedRoot(dir, root string) bool {
	roots := l.SymlinkRoots
	if roots == nil {
		roots = DefaultSymlinkRoots
	}
	root = filepath.Clean(root)
	l2 := shardlayout.Layout{Dir: dir}
	for _, a := range append([]string{l2.CoresDir(), l2.ArtefactsDir()}, roots...) {
		if root == a || strings.HasPrefix(root, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// BuildRoutes derives an edge's routes from the sites and the shards: a
// site on a shard local to this edge (loc) is served from its docroot and
// pool socket here; a site on another shard with a gateway, through the
// gateway (which must prove it is that shard); any other site is
// Unavailable. A site whose shard is Unhealthy or Degraded is ShardDown
// (503, Retry-After) unless it is suspended anyway. It also returns the
// symlink roots the edge may serve files from: those the local shards
// registered that loc allows.
func BuildRoutes(sites []site.Site, shards []store.Shard, loc Locality) ([]edge.Route, []string) {
	type where struct {
		layout  shardlayout.Layout
		local   bool
		gateway string
		down    bool
	}
	byName := make(map[string]where, len(shards))
	var roots []string
	for _, sh := range shards {
		w := where{down: sh.Phase == store.ShardUnhealthy || sh.Phase == store.ShardDegraded}
		if dir, ok := loc.localDir(sh.Name); ok {
			w.layout, w.local = shardlayout.Layout{Name: sh.Name, Dir: dir}, true
			for _, r := range sh.Roots {
				if loc.allowedRoot(dir, r) {
					roots = append(roots, r)
				}
			}
		} else if sh.Gateway != "" && sh.Dir != "" {
			w.layout, w.gateway = shardlayout.Layout{Name: sh.Name, Dir: sh.Dir}, sh.Gateway
		}
		byName[sh.Name] = w
	}
	routes := make([]edge.Route, 0, len(sites))
	for i := range sites {
		s := &sites[i]
		var l edge.Location
		if w, ok := byName[s.Status.Shard]; ok {
			n := w.layout.Site(s.Metadata.UID)
			switch {
			case w.local:
				l = edge.Location{Docroot: n.Docroot, Endpoint: "unix:" + n.Socket}
			case w.gateway != "":
				l = edge.Location{Docroot: n.Docroot, Gateway: w.gateway, Shard: s.Status.Shard}
			}
		}
		rt := edge.RouteForSite(s, l)
		if site.IsStaging(s.Metadata.Name) {
			// A staged update's throw-away copy (package rollout):
			// visitors get the maintenance page; its code job checks
			// it on the shard.
			rt.State = edge.Suspended
		}
		if byName[s.Status.Shard].down && rt.State != edge.Suspended {
			rt.State = edge.ShardDown
		}
		routes = append(routes, rt)
	}
	return routes, roots
}
