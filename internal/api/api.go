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
	"net/http"
	"strings"
	"time"

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

// Config configures the API handler. Store and Placer are required.
type Config struct {
	Store  store.Store
	Placer Placer
	// Notify is called after every successful mutation so reconcilers wake
	// up. It must not block. May be nil.
	Notify func()
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

// New returns the API handler. It panics if cfg.Store or cfg.Placer is nil.
func New(cfg Config) http.Handler {
	if cfg.Store == nil || cfg.Placer == nil {
		panic("api.New: Store and Placer are required")
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
}

// response is what a handler produced: a status and a JSON body, or raw
// bytes with a content type.
type response struct {
	status      int
	body        any
	raw         []byte
	contentType string
}

type handlerFunc func(s *server, c *call) (response, error)

// route is one row of the routing and authorization table. Every route is
// authenticated; Role is the minimum role required; Mutating routes are
// audited and call Notify on success.
type route struct {
	Method   string
	Pattern  string // http.ServeMux path pattern, also the OpenAPI path
	Action   string // e.g. "site.create"; audit action and future RBAC verb
	Role     store.Role
	Mutating bool
	handle   handlerFunc
}

// routes is the single table of routes and the roles they require.
var routes = []route{
	{"GET", "/v1/sites", "site.list", store.RoleViewer, false, (*server).listSites},
	{"POST", "/v1/sites", "site.create", store.RoleAdmin, true, (*server).createSite},
	{"GET", "/v1/sites/{name}", "site.get", store.RoleViewer, false, (*server).getSite},
	{"PATCH", "/v1/sites/{name}", "site.update", store.RoleAdmin, true, (*server).patchSite},
	{"DELETE", "/v1/sites/{name}", "site.delete", store.RoleAdmin, true, (*server).deleteSite},
	{"POST", "/v1/sites/{name}/suspend", "site.suspend", store.RoleAdmin, true, (*server).suspendSite},
	{"POST", "/v1/sites/{name}/resume", "site.resume", store.RoleAdmin, true, (*server).resumeSite},
	{"POST", "/v1/sites/{name}/purge", "site.purge", store.RoleAdmin, true, (*server).purgeSite},
	{"GET", "/v1/whoami", "whoami", store.RoleViewer, false, (*server).whoami},
	{"GET", "/v1/openapi.yaml", "openapi.get", store.RoleViewer, false, (*server).openapi},
	{"GET", "/metrics", "metrics.get", store.RoleViewer, false, (*server).metrics},
}

// roleRank orders roles; a token may do what its role or any lower role may.
var roleRank = map[store.Role]int{
	store.RoleViewer: 1,
	store.RoleAdmin:  2,
}

// authorize is the one place that decides whether a token may perform an
// action.
func authorize(tok *store.Token, rt route) error {
	have, ok := roleRank[tok.Role]
	if !ok || have < roleRank[rt.Role] {
		return errorf(http.StatusForbidden, CodeForbidden, "token %q (role %q) may not perform %s", tok.ID, tok.Role, rt.Action)
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
			s.audit(r.Context(), rt, c, err)
			if err == nil && s.cfg.Notify != nil {
				s.cfg.Notify()
			}
		}
		status := resp.status
		if err != nil {
			status = s.writeError(w, r, err)
		} else {
			s.write(w, r, resp)
		}
		level := slog.LevelDebug
		if rt.Mutating {
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
	e := store.AuditEntry{Time: s.cfg.Clock().UTC(), Actor: c.token.ID, Action: rt.Action, Target: c.target, Outcome: outcome}
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
