package shardagent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
)

// shardStatic is a shard agent's gateway for edges on other machines
// (`aipress shard --gateway-addr`, edge.Gateway): its static file server —
// an edge.Server in StaticServer mode over the shard's own sites, so the
// same code that guards a local edge's static files, and decides
// try_files, runs on the shard's disk — and the FastCGI relay to its pools'
// sockets, behind mutual TLS that admits only the platform's edges.
type shardStatic struct {
	name string
	sh   *shard.Shard
	srv  *edge.Server
	log  *slog.Logger

	mu          sync.Mutex
	last        []edge.Route
	own         map[string]string // the shard's own sites: name → UID
	sites       shard.Sites
	lastRefresh time.Time
}

func newShardStatic(name string, sh *shard.Shard, log *slog.Logger) *shardStatic {
	return &shardStatic{
		name: name, sh: sh, log: log,
		srv: edge.New(edge.Config{StaticServer: true, Logger: log, AllowedSymlinkRoots: sh.AllowedSymlinkRoots()}),
	}
}

// routes are the gateway's routes: the sites this shard serves (or imports
// in a move), by domain, with their docroots and pool sockets here.
func (st *shardStatic) routes(sites []site.Site) []edge.Route {
	out := make([]edge.Route, 0, len(sites))
	for i := range sites {
		s := &sites[i]
		if s.Metadata.DeletionRequested != nil || s.Spec.Suspended || site.IsStaging(s.Metadata.Name) {
			continue
		}
		if s.Status.Shard != st.name && !(s.Move.Active() && s.Move.Target == st.name) {
			continue
		}
		host := s.Spec.Domain
		if host == "" {
			host = s.Metadata.Name
		}
		n := st.sh.NamesFor(s.Metadata.UID)
		out = append(out, edge.Route{Host: host, Site: s.Metadata.Name, Docroot: n.Docroot, Endpoint: "unix:" + n.Socket, State: edge.Serving})
	}
	return out
}

// update installs the routes for sites if they changed.
func (st *shardStatic) update(sites []site.Site) {
	routes := st.routes(sites)
	own := make(map[string]string, len(sites))
	for i := range sites {
		if s := &sites[i]; s.Status.Shard == st.name && s.Metadata.DeletionRequested == nil {
			own[s.Metadata.Name] = s.Metadata.UID
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.own = own
	if st.last != nil && slices.Equal(routes, st.last) {
		return
	}
	st.last = routes
	st.srv.SetTable(edge.NewTable(routes))
}

// wrap returns sites that update the table whenever the shard lists them
// (every convergence pass and heartbeat).
func (st *shardStatic) wrap(sites shard.Sites) shard.Sites {
	st.mu.Lock()
	st.sites = sites
	st.mu.Unlock()
	return staticSites{Sites: sites, st: st}
}

type staticSites struct {
	shard.Sites
	st *shardStatic
}

func (s staticSites) ListSites(ctx context.Context, name string) ([]site.Site, error) {
	list, err := s.Sites.ListSites(ctx, name)
	if err == nil {
		s.st.update(list)
	}
	return list, err
}

// refresh re-reads the shard's sites (at most every 250 ms): an edge may
// learn of a site, or of a move's switch, before this shard's next pass.
func (st *shardStatic) refresh(ctx context.Context) {
	st.mu.Lock()
	sites := st.sites
	if sites == nil || time.Since(st.lastRefresh) < 250*time.Millisecond {
		st.mu.Unlock()
		return
	}
	st.lastRefresh = time.Now()
	st.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if list, err := sites.ListSites(ctx, st.name); err == nil {
		st.update(list)
	}
}

// phpLog is the gateway's logmesh.Resolver: the PHP log of a site this
// shard holds (by name and UID, as its last listing of its sites says),
// in the site's directory of the shard's layout.
func (st *shardStatic) phpLog(ctx context.Context, name, uid, kind string) (sitelog.Source, error) {
	if kind != sitelog.KindPHP {
		return sitelog.Source{}, fmt.Errorf("a shard keeps no %s log: %w", kind, logmesh.ErrNotFound)
	}
	mine := func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.own[name] == uid
	}
	if !mine() {
		st.refresh(ctx) // a site placed since the last pass
		if !mine() {
			return sitelog.Source{}, fmt.Errorf("site %s (%s) is not on shard %s: %w", name, uid, st.name, logmesh.ErrNotFound)
		}
	}
	return sitelog.PHPSource(name, st.sh.NamesFor(uid).LogsDir()), nil
}

// serve runs the gateway on ln, with creds (the shard's certificate),
// until ctx ends: edges' static files and FastCGI, and the control
// plane's readings of the sites' PHP logs.
func (st *shardStatic) serve(ctx context.Context, ln net.Listener, creds *mtls.Credentials) {
	g := edge.NewGateway(edge.GatewayConfig{
		Static: st.srv, TLS: creds.ServerTLSByProto(edge.GatewayRoles()), Logger: st.log, Refresh: st.refresh,
		Logs: &logmesh.Server{Resolve: st.phpLog, Logger: st.log.With("component", "logmesh")},
	})
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(sctx)
	}()
	if err := g.Serve(ln); err != nil {
		st.log.Error("gateway stopped", "err", err)
	}
}

// GatewayAdvertise returns the address edges reach a gateway listening at
// ln under: advertise if set (a host, or host:port), else the listen
// address if it names a host.
func GatewayAdvertise(ln net.Addr, advertise, listen string) (string, error) {
	return serve.Advertise(ln, advertise, listen, "--gateway-advertise", "edges reach")
}
