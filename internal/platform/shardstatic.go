package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// shardStatic is a shard agent's static file server for edges on other
// machines (`aipress shard --static-addr`): an edge.Server in StaticServer
// mode over the shard's own sites, so the same code that guards a local
// edge's static files — and decides try_files — runs on the shard's disk.
//
// Only the AllowedClients (the edges; loopback by default) may connect:
// everything it serves is public through an edge anyway (static files, and
// which PHP script a path runs), but a visitor reaching it directly would
// skip the edge's rate limits and maintenance pages. It has no TLS; keep it
// on a private network, as the pools are.
type shardStatic struct {
	name    string
	sh      *shard.Shard
	srv     *edge.Server
	clients shard.Clients
	log     *slog.Logger

	mu          sync.Mutex
	last        []edge.Route
	sites       shard.Sites
	lastRefresh time.Time
}

func newShardStatic(name string, sh *shard.Shard, clients shard.Clients, log *slog.Logger) *shardStatic {
	return &shardStatic{
		name: name, sh: sh, clients: clients, log: log,
		srv: edge.New(edge.Config{StaticServer: true, Logger: log, AllowedSymlinkRoots: sh.AllowedSymlinkRoots()}),
	}
}

// routes are the static server's routes: the sites this shard serves (or
// imports in a move), by domain, with their docroots here.
func (st *shardStatic) routes(sites []site.Site) []edge.Route {
	out := make([]edge.Route, 0, len(sites))
	for i := range sites {
		s := &sites[i]
		if s.Metadata.DeletionRequested != nil || s.Spec.Suspended {
			continue
		}
		if s.Status.Shard != st.name && !(s.Move.Active() && s.Move.Target == st.name) {
			continue
		}
		host := s.Spec.Domain
		if host == "" {
			host = s.Metadata.Name
		}
		out = append(out, edge.Route{Host: host, Site: s.Metadata.Name, Docroot: st.sh.NamesFor(s.Metadata.UID).Docroot, State: edge.Serving})
	}
	return out
}

// update installs the routes for sites if they changed.
func (st *shardStatic) update(sites []site.Site) {
	routes := st.routes(sites)
	st.mu.Lock()
	defer st.mu.Unlock()
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

func (st *shardStatic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !st.clients.Allows(ap.Addr()) {
		st.log.Warn("static server: refused a client not in the allowed clients", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if _, ok := st.srv.Table().Lookup(r.Host); !ok {
		st.refresh(r.Context())
	}
	st.srv.ServeHTTP(w, r)
}

// serve runs the static server on ln until ctx ends.
func (st *shardStatic) serve(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: st, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		st.log.Error("static server stopped", "err", err)
	}
}

// StaticURL returns the URL edges use for a shard's static server
// listening at ln: advertise (a URL, or a host with or without port), else
// the listen address if it names a host, else poolAdvertise with the port.
func StaticURL(ln net.Addr, advertise, listen, poolAdvertise string) (string, error) {
	_, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return "", err
	}
	if advertise != "" {
		if strings.Contains(advertise, "://") {
			if !strings.HasPrefix(advertise, "http://") && !strings.HasPrefix(advertise, "https://") {
				return "", fmt.Errorf("static advertise %q: want http(s)://host:port", advertise)
			}
			return strings.TrimSuffix(advertise, "/"), nil
		}
		if _, _, err := net.SplitHostPort(advertise); err == nil {
			return "http://" + advertise, nil
		}
		return "http://" + net.JoinHostPort(strings.Trim(advertise, "[]"), port), nil
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return "http://" + net.JoinHostPort(host, port), nil
		}
	}
	if poolAdvertise != "" {
		return "http://" + net.JoinHostPort(poolAdvertise, port), nil
	}
	return "", fmt.Errorf("static server on %s: give the address edges reach it at (static advertise)", listen)
}
