package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/agent"
	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/bandwidth"
	"github.com/aipress/aipress/internal/edge/pagecache"
	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/edge/waf"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

// AgentConfig is a shard agent's connection to its control plane.
type AgentConfig struct {
	Server string // the control plane's API URL
	Token  string // the shard's agent token (`aipress shard token create`)
}

// RunShard runs `aipress shard`: one shard agent that talks to the control
// plane over its API, until ctx ends.
func RunShard(ctx context.Context, cfg ShardConfig, ac AgentConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := apiclient.New(ac.Server, ac.Token)
	return runShardAgent(ctx, cfg, &apiLink{c: c, name: cfg.Name, log: cfg.Logger.With("shard", cfg.Name)})
}

// apiLink is the shardLink over the control plane's API (package agent).
type apiLink struct {
	c     *apiclient.Client
	name  string
	log   *slog.Logger
	sites *agent.Sites
	jobs  *agent.Jobs
	repos *agent.Repos
}

func (l *apiLink) Register(ctx context.Context, reg Registration) error {
	_, err := agent.Register(ctx, l.c, apiclient.RegisterRequest{
		Capacity: reg.Capacity, Labels: reg.Labels, Roots: reg.Roots,
		Provider: reg.Provider, AgentVersion: reg.AgentVersion, Dir: reg.Dir, Gateway: reg.Gateway,
	})
	return err
}

func (l *apiLink) Certificate(ctx context.Context, csr []byte) ([]byte, []byte, error) {
	resp, err := l.c.AgentCertificate(ctx, csr)
	if err != nil {
		return nil, nil, err
	}
	return []byte(resp.Certificate), []byte(resp.CA), nil
}

func (l *apiLink) CABundle(ctx context.Context) ([]byte, error) {
	resp, err := l.c.AgentMeshCA(ctx)
	if err != nil {
		return nil, err
	}
	return []byte(resp.CA), nil
}

func (l *apiLink) Heartbeat(ctx context.Context, u store.Usage) error { return l.c.Heartbeat(ctx, u) }

func (l *apiLink) Sites(wake func()) shard.Sites {
	l.sites = agent.NewSites(agent.SitesConfig{Client: l.c, Shard: l.name, Wake: wake, Logger: l.log})
	return l.sites
}

func (l *apiLink) Jobs(wake func()) shard.Jobs {
	l.jobs = agent.NewJobs(agent.JobsConfig{Client: l.c, Shard: l.name, Wake: wake, Logger: l.log})
	return l.jobs
}

func (l *apiLink) Uploads() func(context.Context, string) (io.ReadCloser, error) {
	return agentUploads(l.c)
}

func (l *apiLink) Repos() repoOpener {
	l.repos = &agent.Repos{Client: l.c}
	return l.repos.Open
}

// Run follows the shard's sites and jobs until ctx ends.
func (l *apiLink) Run(ctx context.Context) error {
	errs := make(chan error, 2)
	go func() { errs <- l.sites.Run(ctx) }()
	go func() { errs <- l.jobs.Run(ctx) }()
	err := <-errs
	if err2 := <-errs; err == nil {
		err = err2
	}
	if l.repos != nil {
		_ = l.repos.Close()
	}
	return err
}

// EdgeConfig configures `aipress edge`: the edge alone, following the
// routing table of a control plane.
type EdgeConfig struct {
	Server, Token string // the control plane's API URL and an edge token
	// DataDir holds the edge's TLS state and its purge secret.
	DataDir   string
	HTTPAddr  string
	HTTPSAddr string
	// MetricsAddr, if set, serves the edge's Prometheus metrics at
	// /metrics there, to requests with the bearer token in
	// MetricsTokenFile (default <DataDir>/metrics-token, made on the first
	// start).
	MetricsAddr      string
	MetricsTokenFile string
	// Locality says which shards run on this edge's machine (their
	// directories) and which symlink roots it serves files from; sites of
	// other shards are reached through their gateways.
	Locality          Locality
	ACMECA, ACMEEmail string
	RateIP, RateSite  float64
	CacheBytes        int64
	Logger            *slog.Logger
	// Ready is called once the edge has the whole routing table.
	Ready func()
}

// RunEdge runs `aipress edge` until ctx ends.
func RunEdge(ctx context.Context, cfg EdgeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = pagecache.DefaultMaxBytes
	}
	edgeLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("edge listen: %w", err)
	}
	var httpsLn net.Listener
	if cfg.HTTPSAddr != "" {
		if httpsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			edgeLn.Close()
			return fmt.Errorf("edge https listen: %w", err)
		}
	}
	extras, err := newEdgeExtras(&Config{RateIP: cfg.RateIP, RateSite: cfg.RateSite, ACMECA: cfg.ACMECA, ACMEEmail: cfg.ACMEEmail}, dataDir, httpsLn, log)
	if err != nil {
		edgeLn.Close()
		return err
	}
	defer extras.stop()
	purges, err := newPurging(dataDir, edgeLn.Addr())
	if err != nil {
		return err
	}
	// Metrics behind a bearer token (metricsauth.go): loopback is no
	// boundary where sites' PHP runs.
	var metricsH http.Handler
	var metricsTokenFile string
	if cfg.MetricsAddr != "" {
		if metricsH, metricsTokenFile, err = edgeMetricsHandler(extras.metrics.Handler(), dataDir, cfg.MetricsTokenFile, log); err != nil {
			edgeLn.Close()
			return err
		}
	}
	pageCache := pagecache.New(pagecache.Config{MaxBytes: cfg.CacheBytes, Logger: log.With("component", "pagecache")})
	edgeLog := log.With("component", "edge")
	client := apiclient.New(cfg.Server, cfg.Token)
	// WAF events go to the control plane in batches (never on the
	// request path).
	wafEvents := waf.NewReporter(waf.ReporterConfig{Logger: log.With("component", "waf"),
		Send: func(ctx context.Context, evs []site.WAFEvent) error {
			_, err := client.ReportWAFEvents(ctx, evs)
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
				// Sending it again would fail again: drop it.
				log.Warn("waf: the control plane refused a batch of events; dropped", "events", len(evs), "err", err)
				return nil
			}
			return err
		}})
	fw, err := waf.New(waf.Config{Logger: log.With("component", "waf"), Events: wafEvents})
	if err != nil {
		return err
	}
	go func() { _ = fw.Prepare(1) }()
	// Bandwidth per site, reported to the control plane, which answers
	// with the sites over their plan's monthly bandwidth (509 here).
	// Each site's traffic for the portal's charts goes with them.
	traffic := sitemetrics.NewRecorder()
	meter := bandwidth.New(bandwidth.Config{Logger: log.With("component", "bandwidth"),
		Send: func(ctx context.Context, b map[string]int64) ([]string, error) {
			sites := traffic.Take()
			r, err := client.SendUsageReport(ctx, &api.UsageReport{Bytes: b, Sites: sites})
			if err != nil {
				traffic.Return(sites)
				return nil, err
			}
			return r.Over, nil
		}})
	mws := []edge.Middleware{purge.KeyringMiddleware(purges.ring, pageCache, edgeLog)}
	mws = append(mws, meter.Middleware())
	mws = append(mws, extras.middlewares()...)
	mws = append(mws, pageCache.Middleware())
	// client (above) also follows the routing table and gets the edge's certificate.
	mesh := &edgeMesh{}
	ed := edge.New(edge.Config{Logger: edgeLog, Middlewares: mws,
		PHPMiddlewares: []edge.Middleware{fw.Middleware()}, Observe: observeAll(extras.metrics.Observe, meter.Observe, siteObserver(traffic, time.Now)), Mesh: mesh})
	extras.edge.Store(ed)

	// Follow the control plane's routing table.
	var uids map[string]string
	var once sync.Once
	watcher := agent.NewRoutes(agent.RoutesConfig{
		Source: client, Logger: log.With("component", "routes"),
		OnChange: func(snap agent.Snapshot) {
			routes, roots := BuildRoutes(snap.Sites, snap.Shards, cfg.Locality)
			ed.AddAllowedSymlinkRoots(roots...)
			ed.SetTable(edge.NewTable(routes))
			next := make(map[string]string, len(snap.Sites))
			for i := range snap.Sites {
				next[snap.Sites[i].Metadata.Name] = snap.Sites[i].Metadata.UID
			}
			for name, uid := range uids {
				if next[name] != uid {
					pageCache.PurgeSite(name)
				}
			}
			uids = next
			once.Do(func() {
				log.Info("edge has the routing table", "sites", len(snap.Sites), "shards", len(snap.Shards), "revision", snap.Revision)
				if cfg.Ready != nil {
					cfg.Ready()
				}
			})
		},
	})

	edgeSrv := &http.Server{Handler: extras.httpHandler(ed), ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{edgeSrv}
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("server stopped", "server", name, "err", err)
			}
		}()
	}
	serve("edge", edgeSrv, edgeLn)
	if httpsLn != nil {
		httpsSrv := &http.Server{Handler: ed, ReadHeaderTimeout: 10 * time.Second, TLSConfig: extras.tlsConfig}
		servers = append(servers, httpsSrv)
		serve("edge-https", httpsSrv, tls.NewListener(httpsLn, extras.tlsConfig))
	}
	if metricsH != nil {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			log.Error("metrics listener not started", "err", err)
		} else {
			srv := &http.Server{Handler: metricsH, ReadHeaderTimeout: 10 * time.Second}
			servers = append(servers, srv)
			serve("metrics", srv, ln)
			log.Info("edge metrics", "addr", ln.Addr().String(), "bearer_token_file", metricsTokenFile)
		}
	}
	log.Info("AIPress edge is up", "edge", edgeLn.Addr().String(), "server", cfg.Server,
		"purge_secret", filepath.Join(dataDir, PurgeSecretFile))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := watcher.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("routing table watch stopped", "err", err)
		}
	}()
	// The edge's certificate for shards' gateways.
	wg.Add(1)
	go func() {
		defer wg.Done()
		mesh.keep(ctx, client, filepath.Join(dataDir, EdgeCredentialsDir), log.With("component", "mesh"))
	}()
	wg.Add(1)
	go func() { defer wg.Done(); wafEvents.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); meter.Run(ctx) }()
	<-ctx.Done()
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	log.Info("stopped")
	return nil
}

// EdgeCredentialsDir is the directory in an edge's data directory holding
// its key and certificate for shards' gateways (0700).
const EdgeCredentialsDir = "mesh-tls"

// edgeMesh is an edge's identity towards shards' gateways (edge.Mesh): the
// credentials once the edge knows its name and holds a certificate; until
// then every gateway connection fails (502) and local sites are unaffected.
type edgeMesh struct {
	creds atomic.Pointer[mtls.Credentials]
}

func (m *edgeMesh) ClientTLS(peer mtls.Identity, nextProtos ...string) *tls.Config {
	if c := m.creds.Load(); c != nil {
		return c.ClientTLS(peer, nextProtos...)
	}
	noCert := errors.New("this edge has no certificate for shards' gateways yet")
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: nextProtos,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return nil, noCert
		},
		InsecureSkipVerify: true, // and every server refused below
		VerifyConnection:   func(tls.ConnectionState) error { return noCert },
	}
}

// keep learns the edge's name (its token's ID), loads its credentials from
// dir and keeps a certificate issued, until ctx ends.
func (m *edgeMesh) keep(ctx context.Context, c *apiclient.Client, dir string, log *slog.Logger) {
	var id string
	for id == "" {
		who, err := c.WhoAmI(ctx)
		if err == nil {
			id = who.ID
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("asking the control plane who this edge is", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	creds, err := mtls.LoadCredentials(dir, mtls.Identity{Role: mtls.RoleEdge, Name: id})
	if err != nil {
		log.Error("edge credentials: sites behind shards' gateways will answer 502", "err", err)
		return
	}
	issue, bundle := edgeCertSources(c)
	if creds.Ready(time.Now()) {
		m.creds.Store(creds)
	}
	for !creds.Ready(time.Now()) {
		if err := creds.Renew(ctx, issue); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			log.Warn("getting the edge's certificate", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	m.creds.Store(creds)
	log.Info("edge certificate for shards' gateways", "identity", creds.Self().String(), "not_after", creds.NotAfter())
	_ = creds.Keep(ctx, issue, bundle, mtls.CheckInterval, nil, log)
}

// edgeCertSources are an edge's certificate issuer and CA bundle check
// through the control plane's API (its edge token).
func edgeCertSources(c *apiclient.Client) (mtls.Issuer, mtls.BundleSource) {
	issue := func(ctx context.Context, csr []byte) ([]byte, []byte, error) {
		resp, err := c.EdgeCertificate(ctx, csr)
		if err != nil {
			return nil, nil, err
		}
		return []byte(resp.Certificate), []byte(resp.CA), nil
	}
	bundle := func(ctx context.Context) ([]byte, error) {
		resp, err := c.EdgeMeshCA(ctx)
		if err != nil {
			return nil, err
		}
		return []byte(resp.CA), nil
	}
	return issue, bundle
}
