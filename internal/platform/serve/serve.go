// Package serve is what AIPress's roles (`aipress up`, `server`, `shard`,
// `edge`; packages up, controlplane, shardagent, edgenode) share to serve
// HTTP: listeners opened as a group and closed together on every error path
// (Group), HTTP servers run on them and shut down together, the address a
// client dials for a listener (ClientAddr) and the one other machines reach
// it at (Advertise), sites' URLs from the edge's
// ports (HTTPURL, HTTPSURL), ports of addresses and URLs (PortOf), the
// bearer-token plumbing of side listeners (pprof, metrics), and the health
// endpoint of --health-addr (Health).
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReadHeaderTimeout is the roles' servers' http.Server.ReadHeaderTimeout.
const ReadHeaderTimeout = 10 * time.Second

// Group is a role's listeners and the HTTP servers on them. A role opens
// its listeners with Listen as its first steps; until Serve hands one to a
// server, Close closes it, so a role that fails half-way through its start
// calls Close (or Shutdown) on its error path and leaves no port bound.
// Shutdown stops the servers gracefully and closes whatever was never
// served. The zero value is not usable: call NewGroup.
type Group struct {
	log *slog.Logger

	mu       sync.Mutex
	idle     []net.Listener // opened, not (yet) served
	servers  []Server
	shutdown bool // Shutdown ran: a later Serve closes its listener
	wg       sync.WaitGroup
}

// NewGroup returns an empty group logging server errors to log.
func NewGroup(log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log}
}

// Listen opens a TCP listener on addr, owned by the group. what names it
// in the error ("edge listen: …").
func (g *Group) Listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	g.mu.Lock()
	g.idle = append(g.idle, ln)
	g.mu.Unlock()
	return ln, nil
}

// Server is what a group runs on a listener: an *http.Server, or a
// server in front of one (the edge's lean HTTP/1.1 path, package
// edge/lean).
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Serve runs srv on ln, a listener of the group (over TLS with
// srv.TLSConfig when it is set), in a goroutine until Shutdown. name is
// for the log.
func (g *Group) Serve(name string, srv *http.Server, ln net.Listener) {
	if srv.TLSConfig != nil {
		g.serve(name, srv, ln, func(ln net.Listener) net.Listener { return tls.NewListener(ln, srv.TLSConfig) })
		return
	}
	g.serve(name, srv, ln, nil)
}

// ServeServer runs srv on ln (plain TCP), like Serve.
func (g *Group) ServeServer(name string, srv Server, ln net.Listener) { g.serve(name, srv, ln, nil) }

func (g *Group) serve(name string, srv Server, ln net.Listener, wrap func(net.Listener) net.Listener) {
	g.mu.Lock()
	for i, l := range g.idle {
		if l == ln {
			g.idle = append(g.idle[:i], g.idle[i+1:]...)
			break
		}
	}
	if g.shutdown {
		// A server started late (the edge waits for its shards) after
		// the group stopped: nothing to serve.
		g.mu.Unlock()
		_ = ln.Close()
		return
	}
	g.servers = append(g.servers, srv)
	g.wg.Add(1)
	g.mu.Unlock()
	if wrap != nil {
		ln = wrap(ln)
	}
	go func() {
		defer g.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("server stopped", "server", name, "err", err)
		}
	}()
}

// Close closes the listeners no server was given yet (a start that
// failed); the servers keep running.
func (g *Group) Close() {
	g.mu.Lock()
	idle := g.idle
	g.idle = nil
	g.mu.Unlock()
	for _, ln := range idle {
		_ = ln.Close()
	}
}

// Shutdown closes the listeners never served and shuts the servers down
// (http.Server.Shutdown: in-flight requests finish until ctx ends, then
// their connections are closed), and waits for them.
func (g *Group) Shutdown(ctx context.Context) {
	g.Close()
	g.mu.Lock()
	g.shutdown = true
	servers := g.servers
	g.servers = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}()
	}
	wg.Wait()
	g.wg.Wait()
}

// ClientAddr turns a listener's address into one a client can dial: an
// unspecified IP (":8080", "[::]:8080") becomes 127.0.0.1.
func ClientAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// HTTPURL returns the function that gives a site's URL: http, the domain,
// and port unless it is 80 (0 or less: 80).
func HTTPURL(port int) func(string) string {
	suffix := ""
	if port > 0 && port != 80 {
		suffix = fmt.Sprintf(":%d", port)
	}
	return func(domain string) string { return "http://" + domain + suffix }
}

// HTTPSURL returns the function that gives a site's URL over HTTPS:
// https, the domain, and port unless it is 443; nil when port is 0 or
// less (no HTTPS listener).
func HTTPSURL(port int) func(string) string {
	if port <= 0 {
		return nil
	}
	suffix := ""
	if port != 443 {
		suffix = fmt.Sprintf(":%d", port)
	}
	return func(domain string) string { return "https://" + domain + suffix }
}

// PortOf is the port of a listener's address or of a URL ("" or no port:
// 0; a URL without one: its scheme's).
func PortOf(s string) int {
	if s == "" {
		return 0
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		if p := u.Port(); p != "" {
			n, _ := strconv.Atoi(p)
			return n
		}
		switch u.Scheme {
		case "http":
			return 80
		case "https":
			return 443
		}
		return 0
	}
	if _, p, err := net.SplitHostPort(s); err == nil {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 0
}

// BearerToken returns the secret of an "Authorization: Bearer <secret>"
// header.
func BearerToken(r *http.Request) (string, bool) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return "", false
	}
	return secret, true
}

// Unauthorized answers 401 with a Bearer challenge and msg.
func Unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="aipress"`)
	http.Error(w, msg, http.StatusUnauthorized)
}
