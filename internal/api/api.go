// Package api is the control-plane HTTP API: sites, whoami and the OpenAPI
// spec, under /v1. Every route requires a bearer token; what each token may
// do is decided in one place, the routes table, from the token's role.
//
// Handlers return errors that carry their HTTP status (HTTPError); the error
// writer turns them into {"error":{"code","message"}} bodies and logs causes
// of internal errors without sending them.
package api

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/cost"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/revhub"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/sitemetrics"
	"github.com/aipress/aipress/internal/store"
)

//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPISpec returns the embedded OpenAPI 3.0 document served at
// GET /v1/openapi.yaml.
func OpenAPISpec() []byte { return append([]byte(nil), openAPISpec...) }

// Placer chooses the shard that will host a new site.
//
// Contract: Place is called once per create request, after validation and
// before the site is stored, with the fully defaulted site (Status.Shard is
// empty). It must not modify s, must be safe for concurrent use, and returns
// a non-empty shard name or an error. An error fails the create with 500 (the
// cause is logged, not sent). Place should be cheap: it runs on the request
// path. A placed site that then fails to be stored (e.g. the domain was taken
// concurrently) is simply never created; Place must not reserve capacity
// that needs releasing.
type Placer interface {
	Place(ctx context.Context, s *site.Site) (shard string, err error)
}

// StaticPlacer places every site on one shard.
type StaticPlacer string

// Place implements Placer.
func (p StaticPlacer) Place(context.Context, *site.Site) (string, error) {
	if p == "" {
		return "", errors.New("static placer: no shard name")
	}
	return string(p), nil
}

// Config configures the API handler. Store is required.
type Config struct {
	Store store.Store
	// Portal serves GET and HEAD requests for every path outside /v1/ and
	// /metrics (the web portal, internal/portal). Nil: those are 404s.
	Portal http.Handler
	// Placer chooses a new site's shard at creation. Nil: new sites are
	// stored unplaced (Status.Shard empty, phase Pending) and the control
	// plane's leader places them.
	Placer Placer
	// Notify is called after every successful mutation so reconcilers wake
	// up. It must not block. May be nil.
	Notify func()
	// Hub wakes the long polls of GET /v1/agent/sites and GET /v1/routes
	// when the store's revision moves. The API notifies it after its own
	// mutations; the control plane should call Hub.Notify after writes it
	// makes outside the API (e.g. the leader's). Nil: the API makes its own
	// hub over Store (writes made elsewhere are then seen within
	// revhub.DefaultInterval).
	Hub *revhub.Hub
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// Logger receives request and error logs. Default: discard.
	Logger *slog.Logger
	// Version is reported in the X-AIPress-Version header and by whoami.
	Version string
	// PublicURL returns a site's public URL (scheme, domain and the public
	// edge's port), stored in Status.URL at creation.
	// Default: "http://" + domain.
	PublicURL func(domain string) string
	// PublicHTTPSURL returns a site's URL over HTTPS (scheme https, the
	// domain and the edges' HTTPS port) when the edges serve HTTPS. Nil:
	// they do not, and every sign-in link is http://. With it, a site
	// whose spec redirects to HTTPS gets https:// sign-in links that its
	// aipress-login plugin refuses over plain HTTP (loginlink.Claims.TLS).
	PublicHTTPSURL func(domain string) string
	// Purger purges the edge's page cache (POST /v1/sites/{name}/purge).
	// Nil: that route answers 501.
	Purger Purger
	// Logs finds sites' access and PHP logs (GET
	// /v1/sites/{name}/logs; logs.go). Nil: that route answers 501.
	Logs SiteLogs
	// Metrics, if set, serves GET /metrics (Prometheus text format) to
	// viewer tokens; without it the route answers 404.
	Metrics http.Handler
	// Observe, if set, is told of every answer: the route (its method and
	// pattern, "GET /v1/sites/{name}"), the status and the time taken
	// (package cpmetrics).
	Observe func(route string, status int, d time.Duration)
	// MeshCA issues the certificates shard gateways and edges
	// authenticate each other with (POST /v1/agent/certificate, POST
	// /v1/edge/certificate) under the generation the rotation state in the
	// store names (meshca.go). Nil: those routes answer 501.
	MeshCA *mtls.CA
	// MaxShardCapacity caps the capacity a shard registers (default
	// DefaultMaxShardCapacity): a shard's token is trusted for its own
	// sites, not for how many sites it is given.
	MaxShardCapacity int
	// Backups opens the backup repositories (one per shard) and hands out
	// access to shard agents, and the keys of site moves (derived from the
	// same key-encryption key). Nil: showing a snapshot, restoring,
	// GET /v1/agent/backup-access and GET /v1/agent/sites/{name}/move-key
	// answer 501; jobs are still recorded.
	Backups *repos.Manager
	// AuditSigner signs the audit log's checkpoints (every
	// AuditCheckpointEvery audited entries, and on POST
	// /v1/audit/checkpoint) and its public key verifies them (POST
	// /v1/audit/verify). Nil: no checkpoints; those two routes answer 501.
	AuditSigner *auditlog.Signer
	// AuditTrustedKeys are further keys POST /v1/audit/verify accepts
	// checkpoints from (those of key-encryption keys a rotation retired).
	AuditTrustedKeys []ed25519.PublicKey
	// AuditCheckpointEvery is how many entries may follow the last
	// checkpoint before the next audited call signs one (default
	// auditlog.DefaultEvery).
	AuditCheckpointEvery int
	// Plans are the platform's plans (what sites and organisations get,
	// quotas). Nil: plans.Defaults().
	Plans *plans.Set
	// Prices price GET /v1/cost (internal/cost). Nil: cost.Default(),
	// GCP list prices.
	Prices *cost.Sheet
	// LoginKey returns the login key of the site with uid
	// (loginlink.Key of the platform secret): POST
	// /v1/sites/{name}/login-link signs with it, and GET
	// /v1/agent/sites/{name}/login-key gives it to the site's shard. Nil:
	// both answer 501.
	LoginKey func(siteUID string) []byte
	// Auth configures signing in: passwords, OIDC, sign-up, sessions,
	// lock-out and rate limits (see AuthConfig).
	Auth AuthConfig
	// MCP serves the Model Context Protocol endpoint (GET, POST, DELETE
	// /mcp; internal/mcpserver) to authenticated callers, who are in the
	// request's context (CallerFrom). Nil: those routes answer 501.
	MCP http.Handler
	// SiteMetrics keeps the per-site traffic edges report with their
	// usage (POST /v1/edge/usage) and answers GET /v1/sites/{name}/metrics
	// and the sites list's summaries. Nil: an in-memory
	// sitemetrics.Store on Clock (sitemetrics.go).
	SiteMetrics SiteMetrics
	// Assistant answers /v1/assistant (assistant.go). Nil: those routes
	// answer 501.
	Assistant Assistant
	// Uploads keeps the artefacts organisations upload (POST
	// /v1/artefacts; artefacts.go): the control plane's is a fileblob
	// bucket under <data dir>/artefacts. Nil: the artefact routes answer
	// 501.
	Uploads *blob.Bucket
	// Transfer is the transfer store shards write export archives to
	// (POST /v1/sites/{name}/export, GET /v1/jobs/{id}/archive;
	// siteport.go). Nil: those routes answer 501.
	Transfer *blob.Bucket
	// UploadLimits bound an uploaded archive (zero fields:
	// artefact.DefaultLimits').
	UploadLimits artefact.Limits
	// GitSync keeps git sync's configurations, credentials and webhooks
	// (gitsync.go). Nil: those routes answer 501.
	GitSync *gitsync.Manager
}

// Purger removes pages from the edge's page cache; each method returns how
// many cached objects it removed. edge.Purger (implemented by the page
// cache) satisfies it; it is declared here so the API does not depend on the
// edge.
type Purger interface {
	PurgeURL(site, rawURL string) int
	PurgeTag(site, tag string) int
	PurgeSite(site string) int
}

// Pagination limits of GET /v1/sites.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

type server struct {
	cfg  Config
	log  *slog.Logger
	auth *authState
	mesh *meshCA // nil without Config.MeshCA
	// statusPage keeps the platform's public status page a moment
	// (uptime.go).
	statusPage *pageCache
}

// NewHub returns a revision hub over st for Config.Hub: it reads the
// current revision with a Changes call past any revision, which returns no
// rows (an index lookup) and the current revision.
func NewHub(st store.Store, log *slog.Logger) *revhub.Hub {
	return revhub.New(revhub.Config{Logger: log,
		Current: func(ctx context.Context) (int64, error) {
			cl, err := st.Changes(ctx, math.MaxInt64, store.ChangeOptions{Limit: 1})
			if err != nil {
				return 0, err
			}
			return cl.Revision, nil
		},
		// One query over every change per move tells which shards it
		// touched; only their agents' long polls wake (WaitKey).
		Affected: func(ctx context.Context, from int64) ([]string, int64, error) {
			var keys []string
			start := from
			for {
				cl, err := st.Changes(ctx, from, store.ChangeOptions{Limit: store.MaxLimit})
				if err != nil {
					return nil, 0, err
				}
				for i := range cl.Sites {
					keys = append(keys, cl.Sites[i].Shards()...)
				}
				for _, tb := range cl.Removed {
					if tb.Shard != "" {
						keys = append(keys, tb.Shard)
					}
				}
				from = cl.Revision
				if !cl.More {
					break
				}
			}
			// Jobs are not in the change feed: the active ones written
			// after the move's start wake their shard's job polls (key
			// "jobs:" + shard). Only those are read: thousands of
			// Pending jobs (a nightly backup round) would otherwise be
			// read and decoded on every move.
			opts := store.JobListOptions{Phases: []store.JobPhase{store.JobPending, store.JobRunning}, ChangedAfter: start, Limit: store.MaxLimit}
			for {
				jobs, err := st.ListJobs(ctx, opts)
				if err != nil {
					return nil, 0, err
				}
				for _, j := range jobs.Items {
					if j.ResourceVersion > start && j.Shard != "" {
						keys = append(keys, JobsKey(j.Shard))
					}
				}
				if jobs.Continue == "" {
					return keys, from, nil
				}
				opts.Continue = jobs.Continue
			}
		},
	})
}

// JobsKey is the revision hub key of a shard's job polls.
func JobsKey(shard string) string { return "jobs:" + shard }

// New returns the API handler. It panics if cfg.Store is nil.
func New(cfg Config) http.Handler {
	s := newServer(cfg)
	cfg = s.cfg
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Portal != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			!strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/v1" && r.URL.Path != "/metrics" {
			cfg.Portal.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// newServer defaults cfg and returns the server New serves (and
// GitApplier applies with). It panics if cfg.Store is nil.
func newServer(cfg Config) *server {
	if cfg.Store == nil {
		panic("api.New: Store is required")
	}
	if cfg.Hub == nil {
		cfg.Hub = NewHub(cfg.Store, cfg.Logger)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = func(domain string) string { return "http://" + domain }
	}
	if cfg.Plans == nil {
		cfg.Plans = plans.Defaults()
	}
	if cfg.Prices == nil {
		cfg.Prices = cost.Default()
	}
	if cfg.SiteMetrics == nil {
		cfg.SiteMetrics = sitemetrics.New(sitemetrics.Config{Clock: cfg.Clock})
	}
	s := &server{cfg: cfg, log: cfg.Logger, auth: newAuthState(cfg.Auth), statusPage: &pageCache{}}
	if cfg.MeshCA != nil {
		s.mesh = &meshCA{ca: cfg.MeshCA, st: cfg.Store}
	}
	return s
}

// call is one authenticated request as seen by a handler.
type call struct {
	r     *http.Request
	token *store.Token
	// who is the principal the token acts as (authz.go).
	who *principal
	// action is the route's action (e.g. "site.update").
	action string
	// perm is the route's permission, checked again by handlers of
	// scopeHandler routes on the targets they find (call.allow).
	perm perm
	// target is what the call acts on (a site name), for the audit log.
	// The wrapper sets it from the {name} path value; handlers may refine it.
	target string
	// org is the organisation the call acted in, when it acted in one.
	org string
	// detail says what a mutation changed, for the audit log (optional).
	detail string
	// channel, requestID and sourceIP say how the call came in, for the
	// audit log (requestMeta).
	channel, requestID, sourceIP string
	// longPoll: the call may wait on purpose (a watch or job long poll
	// with since=, a followed log), so its duration says how long nothing
	// happened, not how slow the API was: Config.Observe is not told of
	// it.
	longPoll bool
	// auditInTx: the handler may write the route's success entry in the
	// same transaction as its one write (POST /v1/sites: one commit, not
	// two); audited: it did, so the wrapper appends none.
	auditInTx, audited bool
}

// response is what a handler produced: a status and a JSON body, or raw
// bytes with a content type.
type response struct {
	status      int
	body        any
	raw         []byte
	contentType string
	// unchanged: the mutation wrote nothing (an agent's no-op report or a
	// heartbeat, which takes no revision), so nobody is woken.
	unchanged bool
	// stream, if set, writes the body (status 200, contentType) as it
	// goes; an error after the first byte aborts the connection, so the
	// client sees a broken transfer, never a short body that looks whole.
	stream func(w http.ResponseWriter) error
	// header and cookies are added to the answer (sign-in routes).
	header  http.Header
	cookies []*http.Cookie
	// serve, if set, writes the whole answer itself (statuses, headers,
	// event streams): a handler the API hands the request on to (MCP).
	serve func(w http.ResponseWriter)
}

type handlerFunc func(s *server, c *call) (response, error)

// route is one row of the routing and authorization table. Every route but
// the public ones is authenticated; Perm is what the caller needs and Scope
// where the organisation of its target comes from (authz.go decides).
// Mutating routes call Notify (and wake the revision hub) on success, and
// are audited unless Quiet.
type route struct {
	Method   string
	Pattern  string // http.ServeMux path pattern, also the OpenAPI path
	Action   string // e.g. "site.create"; the audit log's action
	Perm     perm
	Scope    scope
	Mutating bool
	// Quiet: a high-rate agent or edge report (status, move, heartbeat,
	// WAF events), not audited; the audit log records operators' actions.
	Quiet  bool
	handle handlerFunc
}

// Short names for the table below.
const (
	platform = scopePlatform
	onSite   = scopeSite
	onOrg    = scopeOrg
	inside   = scopeHandler
	machine  = scopeMachine
)

// routes is the single table of routes and the permissions they require.
var routes = []route{
	{"GET", "/v1/sites", "site.list", permSiteRead, inside, false, false, (*server).listSites},
	{"POST", "/v1/sites", "site.create", permSiteWrite, inside, true, false, (*server).createSite},
	{"POST", "/v1/imports", "site.import", permSiteWrite, inside, true, false, (*server).importSite},
	{"GET", "/v1/sites/{name}", "site.get", permSiteRead, onSite, false, false, (*server).getSite},
	{"PATCH", "/v1/sites/{name}", "site.update", permSiteWrite, onSite, true, false, (*server).patchSite},
	{"DELETE", "/v1/sites/{name}", "site.delete", permSiteWrite, onSite, true, false, (*server).deleteSite},
	{"POST", "/v1/sites/{name}/suspend", "site.suspend", permSiteSuspend, onSite, true, false, (*server).suspendSite},
	{"POST", "/v1/sites/{name}/resume", "site.resume", permSiteSuspend, onSite, true, false, (*server).resumeSite},
	{"POST", "/v1/sites/{name}/freeze", "site.freeze", permSiteWrite, onSite, true, false, (*server).freezeSite},
	{"POST", "/v1/sites/{name}/unfreeze", "site.unfreeze", permSiteWrite, onSite, true, false, (*server).unfreezeSite},
	{"POST", "/v1/sites/{name}/purge", "site.purge", permSiteWrite, onSite, true, false, (*server).purgeSite},
	{"POST", "/v1/sites/{name}/login-link", "site.login-link", permSiteWrite, onSite, true, false, (*server).createLoginLink},
	{"POST", "/v1/sites/{name}/move", "site.move", permPlatformOps, platform, true, false, (*server).moveSite},
	{"POST", "/v1/sites/{name}/move/abort", "site.move.abort", permPlatformOps, platform, true, false, (*server).abortMove},
	{"GET", "/v1/sites/{name}/waf/events", "site.waf.events", permSiteRead, onSite, false, false, (*server).listWAFEvents},
	{"GET", "/v1/sites/{name}/incidents", "site.incidents", permSiteRead, onSite, false, false, (*server).listIncidents},
	{"GET", "/v1/sites/{name}/status-page", "site.status-page.get", permSiteRead, onSite, false, false, (*server).getStatusPage},
	{"PUT", "/v1/sites/{name}/status-page", "site.status-page.set", permSiteWrite, onSite, true, false, (*server).putStatusPage},
	// authz: site readers; the report covers the sites the caller may read (?org=, ?site= checked inside).
	{"GET", "/v1/sla", "sla.report", permSiteRead, inside, false, false, (*server).slaReport},
	// authz: anyone; a site's page only when its status page is public (else 404, as for no site).
	{"GET", "/status", "status.platform", permPublic, platform, false, false, (*server).publicPlatformStatus},
	{"GET", "/status/{name}", "status.site", permPublic, platform, false, false, (*server).publicSiteStatus},
	{"GET", "/v1/sites/{name}/metrics", "site.metrics", permSiteRead, onSite, false, false, (*server).getSiteMetrics},
	{"GET", "/v1/sites/{name}/logs", "site.logs", permSiteRead, onSite, false, false, (*server).getSiteLogs},
	{"POST", "/v1/sites/{name}/secrets/rotate", "site.secrets.rotate", permSecrets, onSite, true, false, (*server).rotateSiteSecret},
	{"POST", "/v1/sites/{name}/code/enforce", "site.code.enforce", permSiteWrite, onSite, true, false, (*server).enforceCode},
	// authz: site.write in the file's organisation (checked inside, dry runs too).
	{"POST", "/v1/apply", "site.apply", permSiteWrite, inside, true, false, (*server).applyFile},

	// Git sync (gitsync.go): developers and owners of the site's or the
	// organisation's organisation set it; readers read it.
	{"PUT", "/v1/sites/{name}/git", "site.git.set", permSiteWrite, onSite, true, false, (*server).putGit},
	{"GET", "/v1/sites/{name}/git", "site.git.get", permSiteRead, onSite, false, false, (*server).getGit},
	{"DELETE", "/v1/sites/{name}/git", "site.git.delete", permSiteWrite, onSite, true, false, (*server).deleteGit},
	{"POST", "/v1/sites/{name}/git/sync", "site.git.sync", permSiteWrite, onSite, true, false, (*server).syncGit},
	{"PUT", "/v1/orgs/{org}/git", "org.git.set", permSiteWrite, onOrg, true, false, (*server).putGit},
	{"GET", "/v1/orgs/{org}/git", "org.git.get", permSiteRead, onOrg, false, false, (*server).getGit},
	{"DELETE", "/v1/orgs/{org}/git", "org.git.delete", permSiteWrite, onOrg, true, false, (*server).deleteGit},
	{"POST", "/v1/orgs/{org}/git/sync", "org.git.sync", permSiteWrite, onOrg, true, false, (*server).syncGit},
	// authz: who may rotate the organisation's sites' secrets (owners, developers, admins).
	{"GET", "/v1/orgs/{org}/git/credentials", "org.git.credential.list", permSecrets, onOrg, false, false, (*server).listGitCredentials},
	{"PUT", "/v1/orgs/{org}/git/credentials/{secret}", "org.git.credential.set", permSecrets, onOrg, true, false, (*server).putGitCredential},
	{"DELETE", "/v1/orgs/{org}/git/credentials/{secret}", "org.git.credential.delete", permSecrets, onOrg, true, false, (*server).deleteGitCredential},
	// authz: no token; the body's HMAC signature with the webhook's secret (checked inside; else 401).
	{"POST", "/v1/git/hooks/{id}", "git.hook", permPublic, platform, true, false, (*server).gitHook},

	{"POST", "/v1/sites/{name}/updates", "site.update.staged", permSiteWrite, onSite, true, false, (*server).createUpdate},
	{"POST", "/v1/updates", "fleet.update", permPlatformAdm, platform, true, false, (*server).createFleetUpdate},
	{"POST", "/v1/sites/{name}/backups", "backup.create", permSiteWrite, onSite, true, false, (*server).createBackup},
	{"POST", "/v1/sites/{name}/restore", "backup.restore", permSiteWrite, onSite, true, false, (*server).restoreSite},
	{"POST", "/v1/sites/{name}/export", "site.export", permSiteWrite, onSite, true, false, (*server).exportSite},
	{"POST", "/v1/sites/{name}/wxr-import", "site.wxr_import", permSiteWrite, onSite, true, false, (*server).wxrImport},
	{"POST", "/v1/sites/{name}/resync", "site.resync", permSiteWrite, onSite, true, false, (*server).resyncSite},
	{"GET", "/v1/backups", "backup.list", permSiteRead, inside, false, false, (*server).listBackups},
	{"GET", "/v1/backups/coverage", "backup.coverage", permPlatformRead, platform, false, false, (*server).backupCoverage},
	{"GET", "/v1/backups/{ref}", "backup.get", permSiteRead, inside, false, false, (*server).getBackup},
	{"POST", "/v1/backups/{ref}/restore", "backup.restore", permSiteWrite, inside, true, false, (*server).restoreBackup},
	{"POST", "/v1/backups/verify", "backup.verify", permPlatformOps, platform, true, false, (*server).verifyBackups},
	{"POST", "/v1/backups/prune", "backup.prune", permPlatformOps, platform, true, false, (*server).pruneBackups},
	{"GET", "/v1/jobs", "job.list", permSiteRead, inside, false, false, (*server).listJobs},

	// Uploaded artefacts (artefacts.go): who may change a site's code
	// (site.write, as PATCH /v1/sites/{name}) may upload the code it
	// runs; site readers list the organisation's uploads (?org=, checked
	// inside).
	{"POST", "/v1/artefacts", "artefact.upload", permSiteWrite, inside, true, false, (*server).uploadArtefact},
	{"GET", "/v1/artefacts", "artefact.list", permSiteRead, inside, false, false, (*server).listArtefacts},
	{"GET", "/v1/jobs/{id}", "job.get", permSiteRead, inside, false, false, (*server).getJob},
	{"GET", "/v1/jobs/{id}/archive", "job.archive", permSiteWrite, inside, false, false, (*server).jobArchive},

	{"GET", "/v1/shards", "shard.list", permPlatformRead, platform, false, false, (*server).listShards},
	{"GET", "/v1/shards/{name}", "shard.get", permPlatformRead, platform, false, false, (*server).getShard},
	{"DELETE", "/v1/shards/{name}", "shard.delete", permPlatformOps, platform, true, false, (*server).deleteShard},
	{"POST", "/v1/shards/{name}/cordon", "shard.cordon", permPlatformOps, platform, true, false, (*server).cordonShard},
	{"POST", "/v1/shards/{name}/uncordon", "shard.uncordon", permPlatformOps, platform, true, false, (*server).uncordonShard},
	{"POST", "/v1/shards/{name}/drain", "shard.drain", permPlatformOps, platform, true, false, (*server).drainShard},
	{"POST", "/v1/shards/{name}/recover", "shard.recover", permPlatformOps, platform, true, false, (*server).recoverShard},

	{"GET", "/v1/tokens", "token.list", permAny, inside, false, false, (*server).listTokens},
	{"POST", "/v1/tokens", "token.create", permAny, inside, true, false, (*server).createToken},
	{"DELETE", "/v1/tokens/{id}", "token.delete", permAny, inside, true, false, (*server).deleteToken},
	{"POST", "/v1/tokens/{id}/rotate", "token.rotate", permAny, inside, true, false, (*server).rotateToken},

	// authz: platform readers all organisations; members the organisations they act in (a partner's included).
	{"GET", "/v1/orgs", "org.list", permOrgRead, inside, false, false, (*server).listOrgs},
	// authz: platform admins any; owners of a partner organisations under their partner (checked inside).
	{"POST", "/v1/orgs", "org.create", permOrgCreate, inside, true, false, (*server).createOrg},
	// authz: platform readers; members of {org} (or of its partner).
	{"GET", "/v1/orgs/{org}", "org.get", permOrgRead, onOrg, false, false, (*server).getOrg},
	// authz: whoever may change one of its fields (org.billing: owners, billing, admins); each field is checked inside.
	{"PATCH", "/v1/orgs/{org}", "org.update", permOrgBilling, onOrg, true, false, (*server).patchOrg},
	// authz: owners of {org} (or of its partner), platform admins.
	{"DELETE", "/v1/orgs/{org}", "org.delete", permOrgWrite, onOrg, true, false, (*server).deleteOrg},
	// authz: platform readers; members of {org}.
	{"GET", "/v1/orgs/{org}/members", "org.member.list", permOrgRead, onOrg, false, false, (*server).listMembers},
	// authz: owners of {org}, platform admins (who alone may add a user who is not a member).
	{"PUT", "/v1/orgs/{org}/members/{user}", "org.member.set", permOrgMembers, onOrg, true, false, (*server).setMember},
	// authz: owners of {org}, platform admins; any member removing itself (checked inside).
	{"DELETE", "/v1/orgs/{org}/members/{user}", "org.member.remove", permOrgMembers, inside, true, false, (*server).removeMember},
	// authz: owners of {org}, platform admins.
	{"POST", "/v1/orgs/{org}/invites", "org.invite.create", permOrgMembers, onOrg, true, false, (*server).createInvite},
	{"GET", "/v1/orgs/{org}/invites", "org.invite.list", permOrgMembers, onOrg, false, false, (*server).listInvites},
	{"DELETE", "/v1/orgs/{org}/invites/{id}", "org.invite.delete", permOrgMembers, onOrg, true, false, (*server).deleteInvite},

	// authz: platform readers (admin, operator, support, viewer).
	{"GET", "/v1/users", "user.list", permPlatformRead, platform, false, false, (*server).listUsers},
	// authz: platform admins.
	{"POST", "/v1/users", "user.create", permPlatformAdm, platform, true, false, (*server).createUser},
	// authz: platform readers, the user itself, owners of an organisation the user is in (checked inside; else 404).
	{"GET", "/v1/users/{id}", "user.get", permAny, inside, false, false, (*server).getUser},
	// authz: the user itself (name), platform admins (name, platform_role, disabled); checked inside.
	{"PATCH", "/v1/users/{id}", "user.update", permAny, inside, true, false, (*server).patchUser},
	// authz: platform admins.
	{"DELETE", "/v1/users/{id}", "user.delete", permPlatformAdm, platform, true, false, (*server).deleteUser},

	{"POST", "/v1/agent/register", "agent.register", permShard, machine, true, false, (*server).agentRegister},
	{"POST", "/v1/agent/heartbeat", "agent.heartbeat", permShard, machine, true, true, (*server).agentHeartbeat},
	{"POST", "/v1/agent/usage", "agent.usage", permShard, machine, true, true, (*server).agentUsage},
	{"GET", "/v1/agent/sites", "agent.sites", permShard, machine, false, false, (*server).agentSites},
	{"PUT", "/v1/agent/sites/{name}/status", "agent.status", permShard, machine, true, true, (*server).agentStatus},
	{"PUT", "/v1/agent/sites/{name}/move", "agent.move", permShard, machine, true, true, (*server).agentMove},
	{"POST", "/v1/agent/sites/{name}/finalize", "agent.finalize", permShard, machine, true, false, (*server).agentFinalize},
	{"GET", "/v1/agent/sites/{name}/move-key", "agent.move-key", permShard, machine, false, false, (*server).agentMoveKey},
	{"GET", "/v1/agent/sites/{name}/login-key", "agent.login-key", permShard, machine, false, false, (*server).agentLoginKey},
	{"GET", "/v1/agent/jobs", "agent.jobs", permShard, machine, false, false, (*server).agentJobs},
	{"GET", "/v1/agent/jobs/{id}", "agent.job.get", permShard, machine, false, false, (*server).agentJob},
	{"PUT", "/v1/agent/jobs/{id}", "agent.job", permShard, machine, true, true, (*server).agentReportJob},
	{"GET", "/v1/agent/backup-access", "agent.backup-access", permShard, machine, false, false, (*server).agentBackupAccess},
	// authz: shard agents, for uploads of organisations they host a site of (checked inside).
	{"GET", "/v1/agent/artefacts/{sha256}", "agent.artefact", permShard, machine, false, false, (*server).agentArtefact},
	{"POST", "/v1/agent/certificate", "agent.certificate", permShard, machine, true, false, (*server).agentCertificate},
	{"POST", "/v1/edge/certificate", "edge.certificate", permEdgeOnly, machine, true, false, (*server).edgeCertificate},
	// authz: edge tokens only (the edge is the token's); re-sent every minute.
	{"PUT", "/v1/edge/logs-address", "edge.logs-address", permEdgeOnly, machine, true, true, (*server).putEdgeLogsAddress},
	// authz: shard agents (their gateway's check of the mesh CA bundle).
	{"GET", "/v1/agent/mesh-ca", "agent.mesh-ca", permShard, machine, false, false, (*server).meshBundle},
	// authz: edges (their check of the mesh CA bundle), and admins as for the routing table.
	{"GET", "/v1/edge/mesh-ca", "edge.mesh-ca", permEdge, machine, false, false, (*server).meshBundle},
	// authz: platform admins.
	{"GET", "/v1/mesh/ca", "mesh.ca.get", permPlatformAdm, platform, false, false, (*server).getMeshCA},
	// authz: platform admins.
	{"POST", "/v1/mesh/ca/rotate", "mesh.ca.rotate", permPlatformAdm, platform, true, false, (*server).rotateMeshCA},

	{"GET", "/v1/routes", "routes.watch", permEdge, machine, false, false, (*server).watchRoutes},
	{"POST", "/v1/edge/waf-events", "edge.waf-events", permEdge, machine, true, true, (*server).reportWAFEvents},
	{"GET", "/v1/usage", "usage.list", permSiteRead, inside, false, false, (*server).listUsage},
	{"GET", "/v1/cost", "cost.report", permOrgRead, inside, false, false, (*server).costReport},
	{"POST", "/v1/edge/usage", "edge.usage", permEdge, machine, true, true, (*server).reportUsage},
	{"POST", "/v1/edge/probes", "edge.probes", permEdge, machine, true, true, (*server).reportProbes},
	{"GET", "/v1/edge/peers", "edge.peers", permEdge, machine, false, false, (*server).edgePeers},

	// Organisation owners read their organisations' entries (the
	// handlers filter with auditOrgs); the chain is the platform admin's.
	{"GET", "/v1/audit", "audit.list", permOrgAudit, inside, false, false, (*server).listAudit},
	{"GET", "/v1/audit/export", "audit.export", permOrgAudit, inside, false, false, (*server).exportAudit},
	{"POST", "/v1/audit/verify", "audit.verify", permPlatformAdm, platform, true, false, (*server).verifyAudit},
	{"POST", "/v1/audit/checkpoint", "audit.checkpoint", permPlatformAdm, platform, true, false, (*server).checkpointAudit},

	// Signing in (auth.go, authoidc.go, device.go). Public routes are
	// rate-limited per source address in wrap and audited by their
	// handlers (auditAuth), which know the user.
	{"POST", "/v1/auth/signup", "auth.signup", permPublic, platform, true, false, (*server).signup},
	{"POST", "/v1/auth/login", "auth.login", permPublic, platform, true, false, (*server).login},
	// Any user's session or sign-in token (the handler refuses machine tokens).
	{"POST", "/v1/auth/logout", "auth.logout", permAny, inside, true, false, (*server).logout},
	{"GET", "/v1/auth/oidc/start", "auth.oidc.start", permPublic, platform, false, false, (*server).oidcStart},
	{"GET", "/v1/auth/oidc/callback", "auth.login.oidc", permPublic, platform, false, false, (*server).oidcCallback},
	{"POST", "/v1/auth/password-reset", "auth.password-reset", permPublic, platform, true, false, (*server).passwordReset},
	{"POST", "/v1/auth/password-reset/confirm", "auth.password-reset.confirm", permPublic, platform, true, false, (*server).passwordResetConfirm},
	{"POST", "/v1/invites/accept", "invite.accept", permPublic, platform, true, false, (*server).acceptInvite},
	{"POST", "/v1/auth/device", "auth.device", permPublic, platform, true, false, (*server).deviceStart},
	// Any user's session or sign-in token (approves as that user; the handler refuses machine tokens).
	{"POST", "/v1/auth/device/approve", "auth.device.approve", permAny, inside, true, false, (*server).deviceApprove},
	{"POST", "/v1/auth/device/token", "auth.login.device", permPublic, platform, true, false, (*server).deviceToken},

	{"GET", "/v1/whoami", "whoami", permAny, platform, false, false, (*server).whoami},
	// The assistant (assistant.go): any caller, acting with its own rights
	// (its conversations are its own, checked inside); each message is
	// audited, and so is each call the assistant makes (channel assistant).
	{"GET", "/v1/assistant", "assistant.info", permPeople, platform, false, false, (*server).assistantInfo},
	{"POST", "/v1/assistant/chat", "assistant.chat", permPeople, inside, true, false, (*server).assistantChat},
	{"POST", "/v1/assistant/confirm", "assistant.confirm", permPeople, inside, true, false, (*server).assistantConfirm},
	{"POST", "/v1/assistant/cancel", "assistant.cancel", permPeople, inside, true, false, (*server).assistantCancel},
	{"GET", "/v1/openapi.yaml", "openapi.get", permAny, platform, false, false, (*server).openapi},
	{"GET", "/metrics", "metrics.get", permPlatformRead, platform, false, false, (*server).metrics},

	// The MCP endpoint (mcp.go): every token; the tools it runs call the
	// API with the caller's credential, which authorizes and audits them,
	// so the transport's requests are not audited as changes.
	{"GET", "/mcp", "mcp.stream", permPeople, platform, false, false, (*server).serveMCP},
	{"POST", "/mcp", "mcp.message", permPeople, platform, false, false, (*server).serveMCP},
	{"DELETE", "/mcp", "mcp.close", permPeople, platform, false, false, (*server).serveMCP},
}

func derefProblems(p *[]sitefile.Problem) []sitefile.Problem {
	if p == nil {
		return nil
	}
	return *p
}

// touchEvery is how often a token's last-used time and address are
// written (at most).
const touchEvery = time.Minute

// authenticate finds the request's token: the bearer header's, else the
// session cookie's (a browser's; only session tokens count there).
func (s *server) authenticate(r *http.Request) (*store.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
			tok, err := s.lookupSecret(r, ck.Value)
			if err == nil && tok.Kind != store.TokenSession {
				return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "the session cookie holds no session")
			}
			return tok, err
		}
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token (Authorization: Bearer <token>) or session cookie")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "malformed Authorization header; want \"Bearer <token>\"")
	}
	return s.lookupSecret(r, secret)
}

// callerSecret is the credential the request authenticated with: the
// bearer token, else the session cookie's secret. Handlers that call the
// API again on the caller's behalf (the assistant, the MCP server) present
// it as a bearer token, so those calls carry exactly the caller's rights.
func callerSecret(r *http.Request) string {
	if scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(secret)
	}
	if ck, err := r.Cookie(SessionCookie); err == nil {
		return ck.Value
	}
	return ""
}

// lookupSecret finds the live token whose secret is secret and notes its
// use (at most every touchEvery).
func (s *server) lookupSecret(r *http.Request, secret string) (*store.Token, error) {
	sum := sha256.Sum256([]byte(secret))
	tok, err := s.cfg.Store.LookupToken(r.Context(), hex.EncodeToString(sum[:]))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "invalid token")
	}
	if err != nil {
		return nil, internal(err)
	}
	now := s.cfg.Clock()
	if tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt) {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "token %s expired at %s", tok.ID, tok.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) >= touchEvery {
		if err := s.cfg.Store.TouchToken(r.Context(), tok.ID, now.UTC(), remoteIP(r)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("note token use", "token", tok.ID, "err", err)
		}
	}
	return tok, nil
}

// remoteIP is the address of the request's peer (without its port).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock()
		if s.cfg.Version != "" {
			w.Header().Set("X-AIPress-Version", s.cfg.Version)
		}
		channel, reqID, sourceIP := requestMeta(w, r)
		c := &call{r: r, action: rt.Action, perm: rt.Perm, target: r.PathValue("name"),
			channel: channel, requestID: reqID, sourceIP: sourceIP}
		var resp response
		// Cookie-borne state changes must be same-origin (CSRF), and
		// public routes are rate-limited per source address (not
		// audited: a flood would be a store write per request).
		err := s.checkCSRF(r)
		if err == nil && rt.Perm == permPublic {
			if ok, d := s.auth.ips.allow(clientIP(r), s.cfg.Clock()); !ok {
				err = rateLimited(d)
			}
		}
		if err == nil {
			err = s.admit(c, rt)
		}
		if err == nil {
			resp, err = rt.handle(s, c)
		}
		if rt.Mutating && c.who != nil {
			// Public routes audit themselves (auditAuth names the user).
			if !rt.Quiet && rt.Perm != permPublic && !(c.audited && err == nil) {
				s.audit(r.Context(), rt, c, err)
			}
			// Signing in changes nothing reconcilers watch.
			if err == nil && !resp.unchanged && rt.Perm != permPublic {
				s.cfg.Hub.Notify()
				if s.cfg.Notify != nil {
					s.cfg.Notify()
				}
			}
		}
		status := resp.status
		if err != nil {
			status = s.writeError(w, r, err)
		} else {
			s.write(w, r, resp)
		}
		level := slog.LevelDebug
		if rt.Mutating && !rt.Quiet {
			level = slog.LevelInfo
		}
		actor := ""
		if c.who != nil {
			actor = c.who.actor()
		}
		took := s.cfg.Clock().Sub(start)
		if s.cfg.Observe != nil && !c.longPoll {
			s.cfg.Observe(rt.Method+" "+rt.Pattern, cmp.Or(status, http.StatusOK), took)
		}
		s.log.Log(r.Context(), level, "api request", "method", r.Method, "path", r.URL.Path,
			"action", rt.Action, "actor", actor, "status", status, "duration", took)
	})
}

// admit authenticates the call (unless the route is public), loads its
// principal and applies the route's permission.
func (s *server) admit(c *call, rt route) error {
	if rt.Perm == permPublic {
		c.token = &store.Token{ID: "anonymous"}
		c.who = &principal{token: c.token, orgs: map[string]store.OrgRole{}}
		return nil
	}
	tok, err := s.authenticate(c.r)
	if err != nil {
		return err
	}
	c.token = tok
	if c.who, err = s.loadPrincipal(c.r.Context(), tok); err != nil {
		return err
	}
	return s.authorizeRoute(c, rt)
}

func (s *server) audit(ctx context.Context, rt route, c *call, err error) {
	e := s.callAudit(c, err)
	e.Action = rt.Action
	s.auditEvent(ctx, c.r, e)
}

// callAudit is the audit entry of call c ending with err (nil: success),
// as the wrapper appends it after the handler.
func (s *server) callAudit(c *call, err error) store.AuditEntry {
	outcome := "success"
	if err != nil {
		outcome = asHTTPError(err).Code
	}
	userID := ""
	if c.who.user != nil {
		userID = c.who.user.ID
	}
	return store.AuditEntry{Actor: c.who.actor(), ActorUser: userID, Org: c.org, Action: c.action,
		Target: c.target, Outcome: outcome, Detail: c.detail, Channel: c.channel, RequestID: c.requestID, SourceIP: c.sourceIP,
		Time: s.cfg.Clock().UTC()}
}

// checkCSRF refuses cross-origin browser requests that change state
// without a bearer header (a session cookie rides along by itself; a
// bearer header is set by a program, never by another site). Go's
// CrossOriginProtection reads Sec-Fetch-Site and Origin: requests
// without them (programs) pass.
func (s *server) checkCSRF(r *http.Request) error {
	if r.Header.Get("Authorization") != "" {
		return nil
	}
	if err := s.auth.csrf.Check(r); err != nil {
		return HTTPError{Status: http.StatusForbidden, Code: CodeForbidden, Msg: "cross-origin request refused", Err: err}
	}
	return nil
}

func (s *server) write(w http.ResponseWriter, r *http.Request, resp response) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	for _, ck := range resp.cookies {
		http.SetCookie(w, ck)
	}
	if resp.serve != nil {
		resp.serve(w)
		return
	}
	if resp.stream != nil {
		w.Header().Set("Content-Type", resp.contentType)
		w.WriteHeader(http.StatusOK)
		if err := resp.stream(w); err != nil {
			s.log.Error("api stream failed", "method", r.Method, "path", r.URL.Path, "err", err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	if resp.body == nil && resp.raw == nil && resp.status >= 300 && resp.status < 400 {
		w.WriteHeader(resp.status) // a redirect
		return
	}
	if resp.raw != nil {
		w.Header().Set("Content-Type", resp.contentType)
		w.WriteHeader(resp.status)
		_, _ = w.Write(resp.raw)
		return
	}
	if resp.status == http.StatusNoContent {
		w.WriteHeader(resp.status)
		return
	}
	writeJSON(w, resp.status, resp.body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body) // the client went away; nothing to do
}

// writeError writes err as a JSON error body and returns the status used.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	he := asHTTPError(err)
	if he.Status >= 500 {
		s.log.Error("api internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if he.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	var tm tooMany
	if errors.As(err, &tm) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(tm.retry)))
	}
	writeJSON(w, he.Status, ErrorBody{Error: ErrorDetail{Code: he.Code, Message: he.Msg, Details: derefProblems(he.Details)}})
	return he.Status
}
