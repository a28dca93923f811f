package edge

// The gateway: a shard's one door for edges on other machines.
//
// A shard's php-fpm pools listen only on root-owned 0600 Unix sockets, so
// no site user can connect to another site's pool (FastCGI runs any PHP
// file of the pool's user with any PHP settings the client sends). Edges
// on other machines reach the shard through its agent's gateway instead: a
// TLS listener that admits only clients holding an edge certificate of the
// platform's CA (package mtls), and proves to the edge that it is the shard
// the route names. By ALPN protocol, a connection carries
//
//	http/1.1        the shard's static file server (a Server with
//	                Config.StaticServer; remote.go): static files and
//	                try_files decisions
//	aipress-fcgi/1  FastCGI to one site's pool: the edge sends the site's
//	                host name and "\n"; the gateway answers "ok\n" and then
//	                relays bytes between the connection and the pool's
//	                socket, or answers "error <reason>\n" and closes
//	aipress-logs/1  (GatewayConfig.Logs) a site's PHP log, for the control
//	                plane alone (a certificate of role control): package
//	                logmesh, over the shard's own sites
//
// Which role a protocol admits is the TLS configuration's to check
// (mtls.Credentials.ServerTLSByProto): edges for the first two, the
// control plane for the logs.

// The gateway knows its sites from the static server's routing table
// (Route.Endpoint names each site's socket), so an edge can reach only the
// pools of the sites the shard serves, by their host names.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
)

// ALPN protocols of the gateway.
const (
	ProtoFastCGI = "aipress-fcgi/1"
	ProtoHTTP    = "http/1.1"
)

// maxGatewayHello bounds the host line an edge sends.
const maxGatewayHello = 300

// Mesh gives an edge the TLS configuration of its connections to shards'
// gateways: ClientTLS(peer, protos…) authenticates this edge and accepts
// only a server proving identity peer. *mtls.Credentials implements it.
type Mesh interface {
	ClientTLS(peer mtls.Identity, nextProtos ...string) *tls.Config
}

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Static is the shard's static file server (Config.StaticServer); its
	// routing table also tells the gateway each site's pool socket.
	Static *Server
	// TLS is the server configuration: it must require and verify an edge's
	// client certificate for ProtoHTTP, ProtoFastCGI and no protocol, and
	// a control-plane certificate for logmesh.Proto
	// (mtls.Credentials.ServerTLSByProto(GatewayRoles())). The gateway
	// sets its ALPN protocols.
	TLS *tls.Config
	// Logs, if set, serves the shard's sites' PHP logs to the control
	// plane (logmesh.Proto).
	Logs *logmesh.Server
	// Refresh, if set, is called when a host is not in the static server's
	// table, before the gateway gives up on it (an edge may learn of a new
	// site before the shard's next pass).
	Refresh func(ctx context.Context)
	Logger  *slog.Logger
	// DialTimeout bounds connecting to a pool (default DefaultDialTimeout).
	DialTimeout time.Duration
}

// Gateway serves edges on other machines; see the comment above.
type Gateway struct {
	cfg GatewayConfig
	log *slog.Logger
	srv *http.Server
	// ctx ends at Shutdown: followed logs stop.
	ctx    context.Context
	cancel context.CancelFunc
}

// GatewayRoles are the roles each ALPN protocol of a gateway admits.
func GatewayRoles() map[string]mtls.Role {
	return map[string]mtls.Role{"": mtls.RoleEdge, ProtoHTTP: mtls.RoleEdge, ProtoFastCGI: mtls.RoleEdge, logmesh.Proto: mtls.RoleControl}
}

// NewGateway returns a gateway; Serve runs it.
func NewGateway(cfg GatewayConfig) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	tlsCfg := cfg.TLS.Clone()
	tlsCfg.NextProtos = []string{ProtoFastCGI, ProtoHTTP}
	next := map[string]func(*http.Server, *tls.Conn, http.Handler){
		ProtoFastCGI: func(_ *http.Server, c *tls.Conn, _ http.Handler) { g.serveFastCGI(c) },
	}
	if cfg.Logs != nil {
		tlsCfg.NextProtos = append(tlsCfg.NextProtos, logmesh.Proto)
		next[logmesh.Proto] = func(_ *http.Server, c *tls.Conn, _ http.Handler) { cfg.Logs.ServeConn(g.ctx, c) }
	}
	g.srv = &http.Server{
		Handler:           http.HandlerFunc(g.serveHTTP),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		TLSNextProto:      next,
	}
	return g
}

// Serve accepts connections on ln (a plain TCP listener: the gateway does
// the TLS) until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	err := g.srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for HTTP requests in flight; FastCGI
// relays end when their peers close.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.cancel()
	return g.srv.Shutdown(ctx)
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := g.cfg.Static.Table().Lookup(r.Host); !ok && g.cfg.Refresh != nil {
		g.cfg.Refresh(r.Context())
	}
	g.cfg.Static.ServeHTTP(w, r)
}

// serveFastCGI relays one FastCGI connection to the pool of the site the
// edge names.
func (g *Gateway) serveFastCGI(c *tls.Conn) {
	defer c.Close()
	peer := "?"
	if st := c.ConnectionState(); len(st.PeerCertificates) > 0 {
		if id, err := mtls.IdentityOf(st.PeerCertificates[0]); err == nil {
			peer = id.String()
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	line, err := readLine(br, maxGatewayHello)
	if err != nil {
		g.log.Info("gateway: bad FastCGI hello", "edge", peer, "err", err)
		return
	}
	host := strings.TrimSpace(line)
	rt, ok := g.cfg.Static.Table().Lookup(host)
	if !ok && g.cfg.Refresh != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		g.cfg.Refresh(ctx)
		cancel()
		rt, ok = g.cfg.Static.Table().Lookup(host)
	}
	if !ok || rt.State != Serving {
		io.WriteString(c, "error unknown site\n")
		g.log.Info("gateway: FastCGI for a host this shard does not serve", "edge", peer, "host", truncateString(host, 100))
		return
	}
	network, address, err := parseEndpoint(rt.Endpoint)
	if err != nil || network != "unix" {
		io.WriteString(c, "error no pool\n")
		g.log.Error("gateway: site has no pool socket", "site", rt.Site, "endpoint", rt.Endpoint, "err", err)
		return
	}
	pool, err := net.DialTimeout(network, address, g.cfg.DialTimeout)
	if err != nil {
		io.WriteString(c, "error pool unavailable\n")
		g.log.Warn("gateway: dial pool", "site", rt.Site, "err", err)
		return
	}
	defer pool.Close()
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Edge → pool; bytes the reader already buffered go first.
		_, _ = io.Copy(pool, br)
		if uc, ok := pool.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, pool)
	// The pool answered in full (or went away): end the edge's side too,
	// which unblocks the copy above.
	_ = c.CloseWrite()
	_ = c.Close()
	wg.Wait()
}

// readLine reads one line of at most max bytes.
func readLine(br *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > max {
			return "", fmt.Errorf("line longer than %d bytes", max)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// dialGateway opens a FastCGI connection to rt's pool through its shard's
// gateway: mutual TLS with the shard rt.Shard, the site's host, and the
// gateway's "ok".
func (s *Server) dialGateway(ctx context.Context, rt *Route) (net.Conn, error) {
	if s.mesh == nil {
		return nil, errors.New("this edge has no certificate for shards' gateways (no mesh credentials)")
	}
	cfg := s.mesh.ClientTLS(mtls.Identity{Role: mtls.RoleShard, Name: rt.Shard}, ProtoFastCGI)
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: s.dialTimeout}, Config: cfg}
	dctx, cancel := context.WithTimeout(ctx, s.dialTimeout+2*time.Second)
	defer cancel()
	conn, err := mtls.Dial(dctx, &d, "tcp", rt.Gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway %s of shard %s: %w", rt.Gateway, rt.Shard, err)
	}
	tc := conn.(*tls.Conn)
	if p := tc.ConnectionState().NegotiatedProtocol; p != ProtoFastCGI {
		conn.Close()
		return nil, fmt.Errorf("gateway %s of shard %s does not speak %s (negotiated %q)", rt.Gateway, rt.Shard, ProtoFastCGI, p)
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, rt.Host+"\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("gateway %s: %w", rt.Gateway, err)
	}
	br := bufio.NewReaderSize(conn, 64)
	line, err := readLine(br, 100)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("gateway %s: %w", rt.Gateway, err)
	}
	if line != "ok" {
		conn.Close()
		return nil, fmt.Errorf("gateway %s of shard %s refused %s: %s", rt.Gateway, rt.Shard, rt.Host, truncateString(line, 100))
	}
	if br.Buffered() > 0 { // the gateway sends nothing after "ok" before the pool does
		conn.Close()
		return nil, fmt.Errorf("gateway %s: unexpected bytes after ok", rt.Gateway)
	}
	return conn, nil
}
