// Package platform runs the all-in-one AIPress platform (`aipress up`): the
// control-plane API, one local shard and the edge in one process, on an
// embedded SQLite store in one data directory or, with Config.Store, on a
// PostgreSQL database that several replicas may share.
//
// Start-up order: the store and the API come first (a client can create
// sites at once), then the edge, then the shard, whose MariaDB and php-fpm
// take a few seconds on a fresh data directory. The edge's routing table is
// rebuilt whenever the store's revision moves.
//
// Periodic control-plane work runs under a leader elector (leader.go): on
// PostgreSQL only the replica holding the lease runs it; on SQLite the one
// process always leads. The shard's convergence, its orphan collection and the
// route sync are per-process and never gated.
package platform

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

// Config is the typed configuration of `aipress up`.
type Config struct {
	DataDir string // default ./aipress-data
	// Store selects the control-plane store: empty for SQLite in
	// <DataDir>/aipress.db, a postgres:// or postgresql:// URL for
	// PostgreSQL (package store/open).
	Store    string
	HTTPAddr string // edge, default :8080
	APIAddr  string // control-plane API, default 127.0.0.1:7070
	Logger   *slog.Logger
	Version  string
	// CacheBytes is the edge page cache's memory budget, default 256 MiB.
	CacheBytes int64
	// DebugAddr, if set, serves Go's pprof profiles (net/http/pprof) there,
	// without authentication: for loopback only.
	DebugAddr string
	// HTTPSAddr is the edge's HTTPS listener (HTTP/2); empty: none.
	// Certificates come from the internal CA in <data-dir>/tls for
	// internal names (*.localhost, *.test, IPs …) and from ACME for
	// other site domains.
	HTTPSAddr string
	// ACMECA is the ACME directory URL (default Let's Encrypt production);
	// ACMEOff uses the internal CA for every name. ACMEEmail is the
	// account's contact address.
	ACMECA, ACMEEmail string
	// Rate limits of the edge in requests per second, per client IP and
	// per site: 0 means the default (ratelimit.DefaultIPRate,
	// DefaultSiteRate), negative turns the limit off. Bursts: 0 means
	// twice the rate (the defaults' bursts for default rates).
	RateIP, RateSite           float64
	RateIPBurst, RateSiteBurst int
	// Ready, if set, is called once the API and edge listen and the shard
	// has converged for the first time.
	Ready func()
}

// LocalShard is the name of the one shard `aipress up` runs.
const LocalShard = "local"

// AdminTokenFile is the file in the data directory that holds the admin
// API token (mode 0600).
const AdminTokenFile = "admin-token"

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "./aipress-data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.APIAddr == "" {
		c.APIAddr = "127.0.0.1:7070"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = pagecache.DefaultMaxBytes
	}
}

// Run starts the platform and blocks until ctx is cancelled, then stops
// everything (child processes included) and returns.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if os.Geteuid() == 0 {
		// Site users and mysql must reach their files below the data dir.
		changed, err := fsperm.EnsureTraversable(dataDir)
		if err != nil {
			return err
		}
		for _, d := range changed {
			log.Warn("made directory searchable (o+x) so site users can reach the data dir", "dir", d)
		}
	}

	st, err := storeopen.Open(ctx, cfg.Store, dataDir)
	if err != nil {
		return err
	}
	el, err := newElector(cfg.Store, log)
	if err != nil {
		st.Close()
		return err
	}
	defer st.Close()

	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	edgeLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("edge listen: %w", err)
	}
	var httpsLn net.Listener
	if cfg.HTTPSAddr != "" {
		if httpsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			apiLn.Close()
			edgeLn.Close()
			return fmt.Errorf("edge https listen: %w", err)
		}
	}
	closeLns := func() {
		apiLn.Close()
		edgeLn.Close()
		if httpsLn != nil {
			httpsLn.Close()
		}
	}
	// TLS, metrics and rate limiting of the edge (edgeextras.go).
	extras, err := newEdgeExtras(&cfg, dataDir, httpsLn, log)
	if err != nil {
		closeLns()
		return err
	}
	defer extras.stop()
	apiURL := "http://" + clientAddr(apiLn.Addr())
	if err := ensureAdminToken(ctx, st, dataDir, apiURL); err != nil {
		closeLns()
		return err
	}
	publicURL := publicURLFunc(edgeLn.Addr())
	// Cache purges (purge.go): WordPress posts them to the edge's purge
	// endpoint; the API purges through the same Purger, the page cache.
	purges, err := newPurging(dataDir, edgeLn.Addr())
	if err != nil {
		closeLns()
		return err
	}

	sh := shard.New(shard.Config{
		Name: LocalShard, Dir: filepath.Join(dataDir, "shards", LocalShard),
		PublicURL: publicURL, Logger: log,
		PurgeURL: purges.url, PurgeKey: purges.key,
		TransferURL: "file://" + filepath.Join(dataDir, "transfer"),
	})
	// The edge's page cache; it is also the edge.Purger for purges.
	pageCache := pagecache.New(pagecache.Config{MaxBytes: cfg.CacheBytes, Logger: log.With("component", "pagecache")})
	routes := newRouteSync(st, log)
	routes.purger = pageCache
	notify := func() { sh.Wake(); routes.wake() }

	apiHandler := api.New(api.Config{
		Store: st, Placer: fixedPlacer(LocalShard), Notify: notify,
		Logger: log.With("component", "api"), Version: cfg.Version, PublicURL: publicURL,
		Purger:  pageCache,
		Metrics: extras.metrics.Handler(),
	})
	// The edge is created after the shard prepared its core (it needs the
	// symlink roots); until then it answers 503 for every host.
	var edgeHandler atomicHandler
	edgeHandler.set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "AIPress is starting", http.StatusServiceUnavailable)
	}))

	apiSrv := &http.Server{Handler: apiHandler, ReadHeaderTimeout: 10 * time.Second}
	edgeSrv := &http.Server{Handler: extras.httpHandler(&edgeHandler), ReadHeaderTimeout: 10 * time.Second}
	var httpsSrv *http.Server
	if httpsLn != nil {
		httpsSrv = &http.Server{Handler: &edgeHandler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: extras.tlsConfig}
	}
	var wg sync.WaitGroup
	// Periodic control-plane work, on the elected replica only (leader.go).
	leadCtx, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := el.Run(leadCtx, controlPlaneWork(log)); err != nil {
			log.Error("leader election stopped", "err", err)
		}
	}()
	serve := func(name string, srv *http.Server, ln net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("server stopped", "server", name, "err", err)
			}
		}()
	}
	serve("api", apiSrv, apiLn)
	serve("edge", edgeSrv, edgeLn)
	debugSrv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
	if cfg.DebugAddr != "" {
		if debugLn, err := net.Listen("tcp", cfg.DebugAddr); err != nil {
			log.Error("debug listener not started", "err", err)
		} else {
			serve("debug", debugSrv, debugLn)
			log.Warn("serving pprof without authentication", "addr", debugLn.Addr().String())
		}
	}
	if httpsSrv != nil {
		serve("edge-https", httpsSrv, tls.NewListener(httpsLn, extras.tlsConfig))
		log.Info("edge HTTPS", "addr", httpsLn.Addr().String(), "ca", filepath.Join(dataDir, "tls", "ca.crt"))
	}
	log.Info("AIPress is up", "api", apiURL, "edge", edgeLn.Addr().String(), "data_dir", dataDir)

	runErr := make(chan error, 1)
	func() {
		if err := sh.Prepare(ctx); err != nil {
			runErr <- err
			return
		}
		edgeLog := log.With("component", "edge")
		// The WAF guards PHP: it inspects what would run code; pages from
		// the cache and static files never reach PHP (internal/edge/doc.go).
		fw, err := waf.New(waf.Config{Logger: log.With("component", "waf")})
		if err != nil {
			runErr <- err
			return
		}
		go func() { _ = fw.Prepare(1) }()                                             // build the default rule set before the first request needs it
		mws := []edge.Middleware{purge.Middleware(purges.secret, pageCache, edgeLog)} // first: purges never reach the WAF, the cache or PHP
		mws = append(mws, extras.middlewares()...)                                    // rate limit, HTTPS redirect
		mws = append(mws, pageCache.Middleware())
		ed := edge.New(edge.Config{Logger: edgeLog, AllowedSymlinkRoots: sh.AllowedSymlinkRoots(),
			Middlewares: mws, PHPMiddlewares: []edge.Middleware{fw.Middleware()}, Observe: extras.metrics.Observe})
		extras.edge.Store(ed)
		routes.target = ed
		edgeHandler.set(ed)
		wg.Add(2)
		go func() { defer wg.Done(); routes.run(ctx) }()
		src := notifyingSites{Sites: shard.FromStore(st), after: routes.wake}
		go func() { defer wg.Done(); runErr <- sh.Run(ctx, src) }()
		go func() {
			select {
			case <-sh.Ready():
				routes.wake()
				log.Info("local shard ready")
				if cfg.Ready != nil {
					cfg.Ready()
				}
			case <-ctx.Done():
			}
		}()
	}()

	var result error
	select {
	case <-ctx.Done():
	case err := <-runErr:
		result = err
	}
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = apiSrv.Shutdown(shutdownCtx)
	_ = debugSrv.Close()
	_ = edgeSrv.Shutdown(shutdownCtx)
	if httpsSrv != nil {
		_ = httpsSrv.Shutdown(shutdownCtx)
	}
	stopLeading()
	if result != nil {
		// The shard did not start; nothing else waits on ctx.
		wg.Wait()
		return result
	}
	wg.Wait()
	log.Info("stopped")
	return nil
}

// ensureAdminToken creates the admin token on first start and (re)writes
// the client configuration next to it.
func ensureAdminToken(ctx context.Context, st store.Store, dataDir, apiURL string) error {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	if err != nil || token == "" {
		token = "aip_" + randomHex(24)
	}
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	if _, err := st.LookupToken(ctx, hash); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateToken(ctx, store.Token{ID: "admin-" + hash[:8], Name: "admin", Role: store.RoleAdmin, Hash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // WriteFile keeps an existing file's mode
		return fmt.Errorf("admin token: %w", err)
	}
	if err := apiclient.WriteConfig(dataDir, apiURL, token); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}

// fixedPlacer puts every site on the one local shard.
type fixedPlacer string

func (p fixedPlacer) Place(context.Context, *site.Site) (string, error) { return string(p), nil }

// publicURLFunc returns the function that gives a site's URL: http, the
// domain, and the edge's port unless it is 80.
func publicURLFunc(addr net.Addr) func(string) string {
	port := ""
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.Port != 80 {
		port = fmt.Sprintf(":%d", tcp.Port)
	}
	return func(domain string) string { return "http://" + domain + port }
}

// clientAddr turns a listener address into one a client can dial.
func clientAddr(a net.Addr) string {
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
