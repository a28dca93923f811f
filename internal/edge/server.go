package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBodyBytes = 64 << 20
	DefaultDialTimeout  = 3 * time.Second
	DefaultRetryAfter   = 30 * time.Second
	DefaultBodyTimeout  = 20 * time.Second
	DefaultMinBodyRate  = 16 << 10 // bytes per second
)

// Config configures a Server. The zero value is usable (logs are discarded).
type Config struct {
	// Logger receives request errors with their causes. Nil discards.
	Logger *slog.Logger
	// AllowedSymlinkRoots are directories outside a docroot that a symlink
	// in a docroot may point into and still be served (Debian's WordPress
	// links to /usr/share/javascript, /usr/share/fonts, /etc/wordpress …).
	// They must never contain per-site data.
	AllowedSymlinkRoots []string
	// MaxBodyBytes caps request bodies sent to PHP (413 beyond).
	// Zero or negative means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DialTimeout bounds connecting to a php-fpm pool (502 beyond).
	DialTimeout time.Duration
	// PHPRetryWait bounds how long after its first attempt a request that
	// met a restarting pool or database is tried again (retry.go); zero
	// means DefaultPHPRetryWait, negative turns retries off.
	PHPRetryWait time.Duration
	// RetryAfter is sent with 503 responses (suspended, unavailable).
	RetryAfter time.Duration
	// TempDir is where request bodies over 64 KiB are spooled before they
	// are sent to PHP (smaller ones stay in memory). Empty: os.TempDir.
	TempDir string
	// BodyTimeout and MinBodyRate bound how slowly a request body for PHP
	// may arrive: it is read completely before a pool is asked, and must
	// have arrived by BodyTimeout plus one second per MinBodyRate bytes
	// (408 beyond). Zero or negative: DefaultBodyTimeout,
	// DefaultMinBodyRate.
	BodyTimeout time.Duration
	MinBodyRate int64
	// Middlewares wrap the serving of every request for a Serving route,
	// the first outermost (e.g. purge endpoint, rate limit, HTTPS redirect,
	// page cache).
	Middlewares []Middleware
	// PHPMiddlewares wrap only what is sent to PHP, the first outermost:
	// the WAF guards code, so static files and cached pages (which run
	// none) skip it. PHPScript tells them which script will run.
	PHPMiddlewares []Middleware
	// Observe, if set, is called once every request has been answered
	// (unknown hosts included), for metrics and access logs.
	Observe func(r *http.Request, info *RequestInfo)
	// Mesh authenticates this edge to the gateways of shards on other
	// machines (routes with a Gateway). Nil: such routes answer 502.
	Mesh Mesh
	// StaticServer makes this Server a shard's static file server for
	// edges on other machines (remote.go): for each request it applies
	// try_files to the docroot and answers with the static file, or with
	// the PHP script an edge should run (204), or a redirect; it never
	// runs PHP. Middlewares and PHPMiddlewares are not used.
	StaticServer bool
}

// RouteHandler serves a request for a known route. It returns an error
// (an *HTTPError for a status and safe message) instead of writing one.
type RouteHandler func(w http.ResponseWriter, r *http.Request, rt *Route) error

// Middleware wraps a RouteHandler: the page cache, the WAF, the rate
// limiter and the HTTPS redirect are middlewares.
type Middleware func(next RouteHandler) RouteHandler

// RequestInfo is what the layers of the edge learned about one request;
// InfoFrom returns it from the request's context so that middlewares can
// fill it in, and Config.Observe receives it at the end.
type RequestInfo struct {
	ID    string
	Site  string // empty for an unknown host
	Start time.Time
	// Status and Bytes are what was sent to the client.
	Status int
	Bytes  int64
	// Cache is HIT, MISS, BYPASS or STALE when the page cache saw the
	// request; empty otherwise.
	Cache string
	// Upstream is the time spent waiting for PHP (zero when PHP was not
	// asked).
	Upstream time.Duration
	// WAFBlocked is set when the WAF refused the request; WAFRules lists
	// the ids of the rules that matched.
	WAFBlocked bool
	WAFRules   []int
	// PHPRetry is set when PHP was asked again after a pool or database
	// restart, or would have been (retry.go).
	PHPRetry RetryInfo

	idHeader [1]string // the X-Request-Id header's value, allocated with the info
}

type infoKey struct{}

type phpScriptKey struct{}

// phpScript is the script (URL path) and PATH_INFO a request will run.
type phpScript struct{ script, pathInfo string }

// PHPScript returns the script (URL path, e.g. "/index.php") that a request
// passed to the PHP middlewares will run.
func PHPScript(ctx context.Context) string {
	c, _ := ctx.Value(phpScriptKey{}).(phpScript)
	return c.script
}

// callPHP runs script through the PHP middlewares.
func (s *Server) callPHP(w http.ResponseWriter, r *http.Request, rt *Route, script, pathInfo string) error {
	r = r.WithContext(context.WithValue(r.Context(), phpScriptKey{}, phpScript{script, pathInfo}))
	// The whole body first (php.go): a slow visitor must not hold a worker.
	r, release, err := s.spoolBody(w, r)
	if err != nil {
		return err
	}
	defer release()
	return s.php(w, r, rt)
}

// InfoFrom returns the RequestInfo of a request the edge is serving, or nil.
func InfoFrom(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(infoKey{}).(*RequestInfo)
	return info
}

// Server is the edge http.Handler. It is safe for concurrent use; the
// routing table is replaced atomically with SetTable.
type Server struct {
	serve        RouteHandler // serveSite wrapped in the middlewares
	php          RouteHandler // runPHP wrapped in the PHP middlewares
	observe      func(*http.Request, *RequestInfo)
	log          *slog.Logger
	allowed      atomic.Pointer[[]string] // allowed symlink roots, resolved; only grows
	allowedMu    sync.Mutex               // serializes AddAllowedSymlinkRoots
	maxBody      int64
	dialTimeout  time.Duration
	retryWait    time.Duration // Config.PHPRetryWait; 0: no retries
	retryAfter   string
	tempDir      string
	bodyTimeout  time.Duration
	minBodyRate  int64
	bodyMemory   int64                      // bodies up to this size are spooled in memory
	onSpool      func(inFile bool, n int64) // tests: how a body was spooled
	onBodyRead   func(n int64)              // tests: bytes of a body read so far
	onRetry      func(reason string)        // tests: a PHP attempt is about to be retried
	table        atomic.Pointer[Table]
	tableSet     chan struct{} // closed by the first SetTable
	tableOnce    sync.Once
	resolved     resolveCache // path in a docroot → real location
	stats        statCache    // recent stats of files in docroots
	now          func() time.Time
	static       staticCache // small static files by real location
	realDocs     sync.Map    // docroot → docroot with symlinks resolved
	allowedRoots sync.Map    // allowed symlink root → open *os.Root
	requestIDGen func() string
	staticServer bool         // Config.StaticServer
	remote       remoteStatic // fetching from shards' static servers
	mesh         Mesh         // Config.Mesh
}

// New returns a Server with an empty routing table (every host is unknown
// until SetTable is called).
func New(cfg Config) *Server {
	s := &Server{
		log:          cfg.Logger,
		maxBody:      cfg.MaxBodyBytes,
		dialTimeout:  cfg.DialTimeout,
		tempDir:      cfg.TempDir,
		bodyTimeout:  cfg.BodyTimeout,
		minBodyRate:  cfg.MinBodyRate,
		bodyMemory:   defaultBodyMemory,
		requestIDGen: newRequestID,
		tableSet:     make(chan struct{}),
		now:          time.Now,
	}
	if s.bodyTimeout <= 0 {
		s.bodyTimeout = DefaultBodyTimeout
	}
	if s.minBodyRate <= 0 {
		s.minBodyRate = DefaultMinBodyRate
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.dialTimeout <= 0 {
		s.dialTimeout = DefaultDialTimeout
	}
	switch {
	case cfg.PHPRetryWait == 0:
		s.retryWait = DefaultPHPRetryWait
	case cfg.PHPRetryWait > 0:
		s.retryWait = cfg.PHPRetryWait
	}
	ra := cfg.RetryAfter
	if ra <= 0 {
		ra = DefaultRetryAfter
	}
	s.retryAfter = strconv.Itoa(int((ra + time.Second - 1) / time.Second))
	s.allowed.Store(&[]string{})
	s.AddAllowedSymlinkRoots(cfg.AllowedSymlinkRoots...)
	s.table.Store(NewTable(nil))
	s.php = func(w http.ResponseWriter, r *http.Request, rt *Route) error {
		c, _ := r.Context().Value(phpScriptKey{}).(phpScript)
		return s.runPHP(w, r, rt, c.script, c.pathInfo)
	}
	for i := len(cfg.PHPMiddlewares) - 1; i >= 0; i-- {
		s.php = cfg.PHPMiddlewares[i](s.php)
	}
	s.serve = s.serveSite
	for i := len(cfg.Middlewares) - 1; i >= 0; i-- {
		s.serve = cfg.Middlewares[i](s.serve)
	}
	if cfg.StaticServer {
		s.staticServer = true
		s.serve = s.serveForEdge
	}
	s.remote.init(s.dialTimeout, cfg.Mesh)
	s.mesh = cfg.Mesh
	s.observe = cfg.Observe
	return s
}

// AddAllowedSymlinkRoots allows symlinks out of docroots into roots too
// (absolute paths; relative ones are ignored with a warning). A federated edge
// learns them from the shards it routes to, each of which shares one
// WordPress core among its sites. Roots are never removed: a shard that goes
// away leaves a path no route points into any more.
func (s *Server) AddAllowedSymlinkRoots(roots ...string) {
	s.allowedMu.Lock()
	defer s.allowedMu.Unlock()
	cur := *s.allowed.Load()
	next := slices.Clone(cur)
	for _, root := range roots {
		if !filepath.IsAbs(root) {
			s.log.Warn("edge: ignoring relative symlink root", "root", root)
			continue
		}
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			// Keep the lexical path: it may appear later, and a path that
			// does not exist cannot match a resolved file anyway.
			real = filepath.Clean(root)
		}
		if !slices.Contains(next, real) {
			next = append(next, real)
		}
	}
	if len(next) != len(cur) {
		s.allowed.Store(&next)
	}
}

// SetTable atomically installs t. Requests already running keep the table
// they started with. A nil t is treated as an empty table.
func (s *Server) SetTable(t *Table) {
	if t == nil {
		t = NewTable(nil)
	}
	s.table.Store(t)
	s.tableOnce.Do(func() { close(s.tableSet) })
	// Path resolutions belong to the sites of the old table (a deleted
	// site's entries would otherwise stay forever); they refill on demand.
	s.resolved.reset()
	s.stats.reset()
	s.realDocs.Clear()
}

// TableReady is closed once SetTable was first called: until then every
// host is unknown (404), which a platform starting up does not want its
// edge to answer.
func (s *Server) TableReady() <-chan struct{} { return s.tableSet }

// Table returns the routing table currently installed.
func (s *Server) Table() *Table { return s.table.Load() }

// ServeHTTP routes r by its Host header and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := s.requestIDGen()
	info := &RequestInfo{ID: id, Start: time.Now()}
	info.idHeader[0] = id
	w.Header()["X-Request-Id"] = info.idHeader[:1:1] // no allocation of its own
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	if s.observe != nil {
		cw := &countingWriter{ResponseWriter: w}
		w = cw
		defer func() {
			info.Status, info.Bytes = cw.status, cw.bytes
			if info.Status == 0 {
				info.Status = http.StatusOK
			}
			s.observe(r, info)
		}()
	}
	t := s.table.Load() // this request uses this table until it finishes
	rt, ok := t.Lookup(r.Host)
	if !ok {
		status := http.StatusNotFound
		if s.staticServer {
			status = http.StatusMisdirectedRequest // edges tell it from a missing file
		}
		s.fail(w, r, id, nil, &HTTPError{Status: status, Message: "No site is configured for this address."})
		return
	}
	info.Site = rt.Site
	var err error
	switch rt.State {
	case Serving:
		if rt.Options.WritesFrozen && !safeMethod(r.Method) {
			w.Header().Set("Retry-After", s.retryAfter)
			err = &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site is being moved; changes are paused for a moment. Please try again shortly."}
			break
		}
		err = s.serve(w, r, rt)
	case ShardDown:
		w.Header().Set("Retry-After", s.retryAfter)
		err = &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site's server is not responding. Please try again shortly."}
	case Suspended:
		w.Header().Set("Retry-After", s.retryAfter)
		err = &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site is temporarily down for maintenance."}
	default:
		w.Header().Set("Retry-After", s.retryAfter)
		err = &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site is not available yet. Please try again shortly."}
	}
	if err != nil {
		s.fail(w, r, id, rt, err)
	}
}

// safeMethod reports whether m only reads (RFC 9110 §9.2.1, less TRACE,
// which the edge does not serve anyway).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// HTTPError is an error with the status and the safe message a client sees;
// Cause (logged, never shown) says what actually went wrong.
type HTTPError struct {
	Status  int
	Message string
	Cause   error
}

func (e *HTTPError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("%d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Cause)
}

func (e *HTTPError) Unwrap() error { return e.Cause }

// errResponseStarted marks an error after the response status was sent: it
// can only be logged, and the connection is aborted so the client sees a
// truncated response instead of a complete-looking one.
type errResponseStarted struct{ err error }

func (e *errResponseStarted) Error() string { return "after response started: " + e.err.Error() }
func (e *errResponseStarted) Unwrap() error { return e.err }

func notFound(cause error) *HTTPError {
	return &HTTPError{Status: http.StatusNotFound, Message: "The requested page was not found.", Cause: cause}
}

// fail logs err and, if nothing was written yet, renders its page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, id string, rt *Route, err error) {
	attrs := []any{"request_id", id, "host", r.Host, "method", r.Method, "uri", r.RequestURI}
	if rt != nil {
		attrs = append(attrs, "site", rt.Site)
	}
	var started *errResponseStarted
	if errors.As(err, &started) {
		s.log.Error("edge: response aborted", append(attrs, "err", started.err)...)
		panic(http.ErrAbortHandler)
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		he = &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: err}
	}
	attrs = append(attrs, "status", he.Status)
	switch {
	case he.Status >= 500 && he.Cause != nil:
		s.log.Error("edge: request failed", append(attrs, "err", he.Cause)...)
	case he.Cause != nil:
		s.log.Info("edge: request refused", append(attrs, "err", he.Cause)...)
	}
	writePage(w, he.Status, he.Message, id)
}

// writePage writes a small self-contained HTML page.
func writePage(w http.ResponseWriter, status int, msg, id string) {
	h := w.Header()
	for _, k := range []string{"Content-Length", "Content-Encoding", "Etag", "Last-Modified", "Content-Range"} {
		h.Del(k)
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	title := html.EscapeString(fmt.Sprintf("%d %s", status, http.StatusText(status)))
	io.WriteString(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>"+title+
		"</title></head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\n<h1>"+title+
		"</h1>\n<p>"+html.EscapeString(msg)+"</p>\n<p><small>Request ID: "+html.EscapeString(id)+
		"</small></p>\n</body></html>\n")
}

// countingWriter records the status and the bytes written for Observe.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// ReadFrom keeps the server's sendfile path for static files
// (http.ServeContent copies a file with io.Copy, which uses ReadFrom).
func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	rf, ok := c.ResponseWriter.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
		c.bytes += n
		return n, err
	}
	n, err := rf.ReadFrom(src)
	c.bytes += n
	return n, err
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// Purger removes pages from the edge's page cache. The page cache
// implements it; the purge endpoint and the control-plane API use it.
// Each method returns how many cached objects it removed; purging what is
// not cached is not an error.
//
// PurgeURL takes an absolute URL (scheme, host, path, query) and removes
// the page for it under every normalisation of its query. PurgeTag removes
// every page of site tagged with tag (surrogate keys such as "post-12",
// "home", "feed"). PurgeSite removes every page of site.
type Purger interface {
	PurgeURL(site, rawURL string) int
	PurgeTag(site, tag string) int
	PurgeSite(site string) int
}
