// Package api is the control-plane HTTP API: sites, whoami and the OpenAPI
// spec, under /v1. Every route requires a bearer token; what each token may
// do is decided in one place, the routes table, from the token's role.
//
// Handlers return errors that carry their HTTP status (HTTPError); the error
// writer turns them into {"error":{"code","message"}} bodies and logs causes
// of internal errors without sending them.
package api

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/revhub"
	"github.com/aipress/aipress/internal/site"
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
	// Purger purges the edge's page cache (POST /v1/sites/{name}/purge).
	// Nil: that route answers 501.
	Purger Purger
	// Metrics, if set, serves GET /metrics (Prometheus text format) to
	// viewer tokens; without it the route answers 404.
	Metrics http.Handler
	// Authority issues the certificates shard gateways and edges
	// authenticate each other with (POST /v1/agent/certificate, POST
	// /v1/edge/certificate). Nil: those routes answer 501.
	Authority *mtls.Authority
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
	cfg Config
	log *slog.Logger
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
			// Jobs are not in the change feed: the active ones (few)
			// written after the move's start wake their shard's job
			// polls (key "jobs:" + shard).
			jobs, err := st.ListJobs(ctx, store.JobListOptions{Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit})
			if err != nil {
				return nil, 0, err
			}
			for _, j := range jobs.Items {
				if j.ResourceVersion > start && j.Shard != "" {
					keys = append(keys, JobsKey(j.Shard))
				}
			}
			return keys, from, nil
		},
	})
}

// JobsKey is the revision hub key of a shard's job polls.
func JobsKey(shard string) string { return "jobs:" + shard }

// New returns the API handler. It panics if cfg.Store is nil.
func New(cfg Config) http.Handler {
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
	s := &server{cfg: cfg, log: cfg.Logger}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// call is one authenticated request as seen by a handler.
type call struct {
	r     *http.Request
	token *store.Token
	// target is what the call acts on (a site name), for the audit log.
	// The wrapper sets it from the {name} path value; handlers may refine it.
	target string
	// detail says what a mutation changed, for the audit log (optional).
	detail string
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
}

type handlerFunc func(s *server, c *call) (response, error)

// route is one row of the routing and authorization table. Every route is
// authenticated; Role names who may call it (see allowedRoles). Mutating
// routes call Notify (and wake the revision hub) on success, and are
// audited unless Quiet.
type route struct {
	Method   string
	Pattern  string // http.ServeMux path pattern, also the OpenAPI path
	Action   string // e.g. "site.create"; audit action and future RBAC verb
	Role     store.Role
	Mutating bool
	// Quiet: a high-rate agent or edge report (status, move, heartbeat,
	// WAF events), not audited; the audit log records operators' actions.
	Quiet  bool
	handle handlerFunc
}

// routes is the single table of routes and the roles they require.
var routes = []route{
	{"GET", "/v1/sites", "site.list", store.RoleViewer, false, false, (*server).listSites},
	{"POST", "/v1/sites", "site.create", store.RoleAdmin, true, false, (*server).createSite},
	{"GET", "/v1/sites/{name}", "site.get", store.RoleViewer, false, false, (*server).getSite},
	{"PATCH", "/v1/sites/{name}", "site.update", store.RoleAdmin, true, false, (*server).patchSite},
	{"DELETE", "/v1/sites/{name}", "site.delete", store.RoleAdmin, true, false, (*server).deleteSite},
	{"POST", "/v1/sites/{name}/suspend", "site.suspend", store.RoleAdmin, true, false, (*server).suspendSite},
	{"POST", "/v1/sites/{name}/resume", "site.resume", store.RoleAdmin, true, false, (*server).resumeSite},
	{"POST", "/v1/sites/{name}/purge", "site.purge", store.RoleAdmin, true, false, (*server).purgeSite},
	{"POST", "/v1/sites/{name}/move", "site.move", store.RoleAdmin, true, false, (*server).moveSite},
	{"POST", "/v1/sites/{name}/move/abort", "site.move.abort", store.RoleAdmin, true, false, (*server).abortMove},
	{"GET", "/v1/sites/{name}/waf/events", "site.waf.events", store.RoleViewer, false, false, (*server).listWAFEvents},
	// authz: platform admin, or the site's org owner/developer (the site's org from {name})
	{"POST", "/v1/sites/{name}/secrets/rotate", "site.secrets.rotate", store.RoleAdmin, true, false, (*server).rotateSiteSecret},

	{"POST", "/v1/sites/{name}/backups", "backup.create", store.RoleAdmin, true, false, (*server).createBackup},
	{"GET", "/v1/backups", "backup.list", store.RoleViewer, false, false, (*server).listBackups},
	{"GET", "/v1/backups/coverage", "backup.coverage", store.RoleViewer, false, false, (*server).backupCoverage},
	{"GET", "/v1/backups/{ref}", "backup.get", store.RoleViewer, false, false, (*server).getBackup},
	{"POST", "/v1/backups/{ref}/restore", "backup.restore", store.RoleAdmin, true, false, (*server).restoreBackup},
	{"POST", "/v1/backups/verify", "backup.verify", store.RoleAdmin, true, false, (*server).verifyBackups},
	{"POST", "/v1/backups/prune", "backup.prune", store.RoleAdmin, true, false, (*server).pruneBackups},
	{"GET", "/v1/jobs", "job.list", store.RoleViewer, false, false, (*server).listJobs},
	{"GET", "/v1/jobs/{id}", "job.get", store.RoleViewer, false, false, (*server).getJob},

	{"GET", "/v1/shards", "shard.list", store.RoleViewer, false, false, (*server).listShards},
	{"GET", "/v1/shards/{name}", "shard.get", store.RoleViewer, false, false, (*server).getShard},
	{"DELETE", "/v1/shards/{name}", "shard.delete", store.RoleAdmin, true, false, (*server).deleteShard},
	{"POST", "/v1/shards/{name}/cordon", "shard.cordon", store.RoleAdmin, true, false, (*server).cordonShard},
	{"POST", "/v1/shards/{name}/uncordon", "shard.uncordon", store.RoleAdmin, true, false, (*server).uncordonShard},
	{"POST", "/v1/shards/{name}/drain", "shard.drain", store.RoleAdmin, true, false, (*server).drainShard},
	{"POST", "/v1/shards/{name}/recover", "shard.recover", store.RoleAdmin, true, false, (*server).recoverShard},

	{"GET", "/v1/tokens", "token.list", store.RoleAdmin, false, false, (*server).listTokens},
	{"POST", "/v1/tokens", "token.create", store.RoleAdmin, true, false, (*server).createToken},
	{"DELETE", "/v1/tokens/{id}", "token.delete", store.RoleAdmin, true, false, (*server).deleteToken},

	{"POST", "/v1/agent/register", "agent.register", store.RoleShard, true, false, (*server).agentRegister},
	{"POST", "/v1/agent/heartbeat", "agent.heartbeat", store.RoleShard, true, true, (*server).agentHeartbeat},
	{"GET", "/v1/agent/sites", "agent.sites", store.RoleShard, false, false, (*server).agentSites},
	{"PUT", "/v1/agent/sites/{name}/status", "agent.status", store.RoleShard, true, true, (*server).agentStatus},
	{"PUT", "/v1/agent/sites/{name}/move", "agent.move", store.RoleShard, true, true, (*server).agentMove},
	{"POST", "/v1/agent/sites/{name}/finalize", "agent.finalize", store.RoleShard, true, false, (*server).agentFinalize},
	{"GET", "/v1/agent/sites/{name}/move-key", "agent.move-key", store.RoleShard, false, false, (*server).agentMoveKey},
	{"GET", "/v1/agent/jobs", "agent.jobs", store.RoleShard, false, false, (*server).agentJobs},
	{"GET", "/v1/agent/jobs/{id}", "agent.job.get", store.RoleShard, false, false, (*server).agentJob},
	{"PUT", "/v1/agent/jobs/{id}", "agent.job", store.RoleShard, true, true, (*server).agentReportJob},
	{"GET", "/v1/agent/backup-access", "agent.backup-access", store.RoleShard, false, false, (*server).agentBackupAccess},
	{"POST", "/v1/agent/certificate", "agent.certificate", store.RoleShard, true, false, (*server).agentCertificate},
	{"POST", "/v1/edge/certificate", "edge.certificate", roleEdgeOnly, true, false, (*server).edgeCertificate},

	{"GET", "/v1/routes", "routes.watch", store.RoleEdge, false, false, (*server).watchRoutes},
	{"POST", "/v1/edge/waf-events", "edge.waf-events", store.RoleEdge, true, true, (*server).reportWAFEvents},

	{"GET", "/v1/whoami", "whoami", roleAny, false, false, (*server).whoami},
	{"GET", "/v1/openapi.yaml", "openapi.get", store.RoleViewer, false, false, (*server).openapi},
	{"GET", "/metrics", "metrics.get", store.RoleViewer, false, false, (*server).metrics},
}

// roleAny marks a route every valid token may call.
const roleAny store.Role = "any"

// roleEdgeOnly marks a route only edge tokens may call (an edge's own
// certificate: an admin is no edge).
const roleEdgeOnly store.Role = "edge-only"

// allowedRoles maps a route's Role to the token roles that may call it.
// Operators' roles are ranked (an admin may do what a viewer may); shard and
// edge tokens reach only their own routes (and whoami), and operators do not
// act as a shard agent: a shard's reports come from its own token.
var allowedRoles = map[store.Role][]store.Role{
	store.RoleViewer: {store.RoleViewer, store.RoleAdmin},
	store.RoleAdmin:  {store.RoleAdmin},
	store.RoleShard:  {store.RoleShard},
	store.RoleEdge:   {store.RoleEdge, store.RoleAdmin},
	roleEdgeOnly:     {store.RoleEdge},
	roleAny:          {store.RoleViewer, store.RoleAdmin, store.RoleShard, store.RoleEdge},
}

// authorize is the one place that decides whether a token may perform an
// action.
func authorize(tok *store.Token, rt route) error {
	if !slices.Contains(allowedRoles[rt.Role], tok.Role) {
		return errorf(http.StatusForbidden, CodeForbidden, "token %q (role %q) may not perform %s", tok.ID, tok.Role, rt.Action)
	}
	if tok.Role == store.RoleShard && tok.Subject == "" {
		return errorf(http.StatusForbidden, CodeForbidden, "token %q (role shard) names no shard", tok.ID)
	}
	return nil
}

func (s *server) authenticate(r *http.Request) (*store.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token (Authorization: Bearer <token>)")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "malformed Authorization header; want \"Bearer <token>\"")
	}
	sum := sha256.Sum256([]byte(secret))
	tok, err := s.cfg.Store.LookupToken(r.Context(), hex.EncodeToString(sum[:]))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "invalid token")
	}
	if err != nil {
		return nil, internal(err)
	}
	return tok, nil
}

func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock()
		if s.cfg.Version != "" {
			w.Header().Set("X-AIPress-Version", s.cfg.Version)
		}
		tok, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c := &call{r: r, token: tok, target: r.PathValue("name")}
		var resp response
		if err = authorize(tok, rt); err == nil {
			resp, err = rt.handle(s, c)
		}
		if rt.Mutating {
			if !rt.Quiet {
				s.audit(r.Context(), rt, c, err)
			}
			if err == nil && !resp.unchanged {
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
		s.log.Log(r.Context(), level, "api request", "method", r.Method, "path", r.URL.Path,
			"action", rt.Action, "actor", tok.ID, "status", status, "duration", s.cfg.Clock().Sub(start))
	})
}

func (s *server) audit(ctx context.Context, rt route, c *call, err error) {
	outcome := "success"
	if err != nil {
		outcome = asHTTPError(err).Code
	}
	e := store.AuditEntry{Time: s.cfg.Clock().UTC(), Actor: c.token.ID, Action: rt.Action, Target: c.target, Outcome: outcome, Detail: c.detail}
	if aerr := s.cfg.Store.AppendAudit(ctx, e); aerr != nil {
		// The mutation (if any) already happened; the response must say so.
		s.log.Error("audit append failed", "action", rt.Action, "target", c.target, "actor", c.token.ID, "err", aerr)
	}
}

func (s *server) write(w http.ResponseWriter, r *http.Request, resp response) {
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
	writeJSON(w, he.Status, ErrorBody{Error: ErrorDetail{Code: he.Code, Message: he.Msg}})
	return he.Status
}
