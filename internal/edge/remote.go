package edge

// Sites on shards of other machines.
//
// An edge that does not share a machine with a site's shard cannot stat the
// docroot, yet try_files needs to know whether a path is a static file, a
// PHP script, a directory with index.php or nothing (the front controller).
// The shard agent runs a Server with Config.StaticServer over its own sites
// behind its gateway (`aipress shard --gateway-addr`, gateway.go: mutual
// TLS, ALPN http/1.1), and the site's route names the gateway and the shard
// (Route.Gateway, Route.Shard). The edge sends that server every request the
// page cache did not answer — GET for GET, HEAD for HEAD, GET with X-AIPress-Method for
// any other method, never a body — with the site's domain as Host. The shard
// runs tryFiles (and, for PHP, checkScript) on its real disk, the same code
// as the local fast path, and answers:
//
//	X-AIPress-Try: static    the file (200, 206, 304, 412, 416), or 404/405
//	X-AIPress-Try: php       204 with X-AIPress-Script and X-AIPress-Path-Info
//	                         (path-escaped): the edge runs that over FastCGI
//	X-AIPress-Try: redirect  301 with Location (a directory without its slash)
//	no X-AIPress-Try         404: nothing to serve; 421: not a site of the shard
//
// So try_files keeps its exact semantics at the cost of one round trip to
// the shard before each PHP request that misses the page cache (PHP itself
// takes far longer); the PHP request then goes through the gateway too. The edge still applies its own lexical rules to what
// it relays: a dot segment, PHP source or a forbidden name is never served
// whatever the shard answers, a script must be a clean .php path outside
// uploads, and a redirect must stay on the site. Small files (≤ 256 KiB) are
// kept in memory for remoteFresh and then revalidated with If-Modified-Since.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/mtls"
)

// The headers of the edge ↔ shard static protocol.
const (
	headerTry      = "X-Aipress-Try"
	headerScript   = "X-Aipress-Script"
	headerPathInfo = "X-Aipress-Path-Info"
	headerMethod   = "X-Aipress-Method"
)

// remoteFresh is how long a small remote static file is served from the
// edge's memory before the shard is asked whether it changed.
var remoteFresh = 5 * time.Second

// forwardedStaticHeaders go from the visitor to the shard's static server;
// relayedStaticHeaders come back.
var (
	forwardedStaticHeaders = []string{"Range", "If-Range", "If-Modified-Since", "If-None-Match", "If-Match", "If-Unmodified-Since"}
	relayedStaticHeaders   = []string{"Content-Type", "Content-Length", "Content-Range", "Last-Modified", "Etag", "Accept-Ranges"}
)

// remoteStatic is the edge's side: HTTP clients with kept-alive mutual-TLS
// connections to the shards' gateways (one per shard, so a connection made
// to prove one shard's identity never carries another's requests) and a
// cache of small files.
type remoteStatic struct {
	dialTimeout time.Duration
	mesh        Mesh
	clients     sync.Map    // shard name → *http.Client
	cache       staticCache // by gateway, host and clean path
}

func (rs *remoteStatic) init(dialTimeout time.Duration, mesh Mesh) {
	rs.dialTimeout, rs.mesh = dialTimeout, mesh
}

// client returns the HTTP client for shard's gateway.
func (rs *remoteStatic) client(shard string) *http.Client {
	if c, ok := rs.clients.Load(shard); ok {
		return c.(*http.Client)
	}
	peer := mtls.Identity{Role: mtls.RoleShard, Name: shard}
	nd := &net.Dialer{Timeout: rs.dialTimeout, KeepAlive: 30 * time.Second}
	c := &http.Client{
		Transport: &http.Transport{
			// No Proxy: the shards are reached directly, never through
			// whatever HTTP_PROXY the edge's environment names. The TLS
			// configuration is asked for at every dial: the edge may get
			// its certificate after its first request.
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := &tls.Dialer{NetDialer: nd, Config: rs.mesh.ClientTLS(peer, ProtoHTTP)}
				return mtls.Dial(ctx, d, network, addr)
			},
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableCompression:    true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	actual, _ := rs.clients.LoadOrStore(shard, c)
	return actual.(*http.Client)
}

// serveRemote is try_files for a route whose docroot is on another machine:
// the shard's static server decides, and serves static files.
func (s *Server) serveRemote(w http.ResponseWriter, r *http.Request, rt *Route) error {
	if s.remote.mesh == nil {
		return badGateway(fmt.Errorf("route %s: this edge has no certificate for shards' gateways", rt.Site))
	}
	if _, _, err := net.SplitHostPort(rt.Gateway); err != nil || rt.Shard == "" {
		return badGateway(fmt.Errorf("route %s: bad gateway %q of shard %q", rt.Site, rt.Gateway, rt.Shard))
	}
	base := "https://" + rt.Gateway
	upath := r.URL.Path
	if upath == "" || upath[0] != '/' {
		upath = "/" + upath
	}
	trailingSlash := strings.HasSuffix(upath, "/")
	clean := path.Clean(upath)
	if strings.IndexByte(clean, 0) >= 0 || hasDotSegment(clean) {
		return notFound(fmt.Errorf("refused path %q", clean))
	}
	// What this edge never serves as a file, whatever the shard says.
	name := path.Base(clean)
	servable := !trailingSlash && !isPHPScript(name) && !forbiddenName(name)
	get := r.Method == http.MethodGet || r.Method == http.MethodHead

	var (
		key     string
		cached  staticEntry
		haveOld bool
	)
	if servable && get {
		key = base + "\x00" + rt.Host + "\x00" + clean
		if e, ok := s.remote.cache.get(key); ok {
			if time.Since(e.fetched) < remoteFresh {
				w.Header().Set("X-Content-Type-Options", "nosniff")
				serveBytes(w, r, name, e)
				return nil
			}
			cached, haveOld = e, true
		}
	}

	method := http.MethodGet
	if r.Method == http.MethodHead && !haveOld {
		method = http.MethodHead
	}
	target := base + (&url.URL{Path: upath, RawQuery: r.URL.RawQuery}).RequestURI()
	req, err := http.NewRequestWithContext(r.Context(), method, target, nil)
	if err != nil {
		return badGateway(fmt.Errorf("static request for %s: %w", rt.Site, err))
	}
	req.Host = rt.Host
	if !get {
		req.Header.Set(headerMethod, r.Method)
	}
	// Revalidating a cached copy asks only about that copy; the visitor's
	// own conditions and ranges are then answered from memory.
	forwarded := false
	if haveOld {
		req.Header.Set("If-Modified-Since", cached.modTime.UTC().Format(http.TimeFormat))
	} else {
		for _, k := range forwardedStaticHeaders {
			if v := r.Header.Values(k); len(v) > 0 {
				req.Header[k] = v
				forwarded = true
			}
		}
	}
	upstreamStart := time.Now()
	resp, err := s.remote.client(rt.Shard).Do(req)
	if info := InfoFrom(r.Context()); info != nil {
		info.Upstream += time.Since(upstreamStart)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the visitor left
		}
		return badGateway(fmt.Errorf("static server %s: %w", base, err))
	}
	defer resp.Body.Close()

	switch resp.Header.Get(headerTry) {
	case "php":
		if key != "" {
			s.remote.cache.forget(key)
		}
		script, pathInfo, err := phpDecision(resp)
		if err != nil {
			return badGateway(fmt.Errorf("static server %s for %s%s: %w", base, rt.Host, clean, err))
		}
		return s.callPHP(w, r, rt, script, pathInfo)
	case "redirect":
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "/") ||
			strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			return badGateway(fmt.Errorf("static server %s: bad redirect %d %q", base, resp.StatusCode, loc))
		}
		http.Redirect(w, r, loc, http.StatusMovedPermanently)
		return nil
	case "static":
		if !servable {
			return notFound(fmt.Errorf("static server %s offered %q, which is never served", base, clean))
		}
		return s.relayStatic(w, r, resp, key, name, cached, haveOld, forwarded)
	}
	if key != "" {
		s.remote.cache.forget(key)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return notFound(fmt.Errorf("static server %s: nothing serves %s%s", base, rt.Host, clean))
	case http.StatusMisdirectedRequest:
		w.Header().Set("Retry-After", s.retryAfter)
		return &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site is not available yet. Please try again shortly.",
			Cause: fmt.Errorf("static server %s does not serve %s", base, rt.Host)}
	default:
		return badGateway(fmt.Errorf("static server %s answered %s for %s%s", base, resp.Status, rt.Host, clean))
	}
}

// relayStatic answers with a static file from the shard: from memory when
// the shard confirmed the cached copy (304) or sent a small file whole,
// else streamed through.
func (s *Server) relayStatic(w http.ResponseWriter, r *http.Request, resp *http.Response, key, name string, cached staticEntry, haveOld, forwarded bool) error {
	switch resp.StatusCode {
	case http.StatusNotModified:
		if haveOld {
			cached.fetched = time.Now()
			s.remote.cache.put(key, cached)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			serveBytes(w, r, name, cached)
			return nil
		}
	case http.StatusOK:
		if key != "" && !forwarded && resp.Request.Method == http.MethodGet &&
			resp.ContentLength >= 0 && resp.ContentLength <= maxStaticEntry {
			if modTime, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
				body := make([]byte, resp.ContentLength)
				if _, err := io.ReadFull(resp.Body, body); err != nil {
					if r.Context().Err() != nil {
						return nil
					}
					return badGateway(fmt.Errorf("read static file %s: %w", resp.Request.URL, err))
				}
				e := newStaticEntry(name, body, modTime)
				e.fetched = time.Now()
				s.remote.cache.put(key, e)
				w.Header().Set("X-Content-Type-Options", "nosniff")
				serveBytes(w, r, name, e)
				return nil
			}
		}
	case http.StatusPartialContent, http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
	case http.StatusNotFound:
		s.remote.cache.forget(key)
		return notFound(fmt.Errorf("static server refused %s", resp.Request.URL))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", "GET, HEAD")
		return &HTTPError{Status: http.StatusMethodNotAllowed, Message: "Method not allowed."}
	default:
		return badGateway(fmt.Errorf("static server answered %s for %s", resp.Status, resp.Request.URL))
	}
	h := w.Header()
	for _, k := range relayedStaticHeaders {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		if r.Context().Err() != nil {
			return nil
		}
		return &errResponseStarted{fmt.Errorf("relay static file %s: %w", resp.Request.URL, err)}
	}
	return nil
}

// phpDecision reads and checks the script a shard's static server named.
func phpDecision(resp *http.Response) (script, pathInfo string, err error) {
	if resp.StatusCode != http.StatusNoContent {
		return "", "", fmt.Errorf("php decision with status %s", resp.Status)
	}
	script, err = url.PathUnescape(resp.Header.Get(headerScript))
	if err != nil {
		return "", "", fmt.Errorf("script: %w", err)
	}
	pathInfo, err = url.PathUnescape(resp.Header.Get(headerPathInfo))
	if err != nil {
		return "", "", fmt.Errorf("path info: %w", err)
	}
	if script == "" || script[0] != '/' || path.Clean(script) != script || !isPHPScript(script) ||
		hasDotSegment(script) || strings.IndexByte(script, 0) >= 0 || strings.HasPrefix(script, noExecPrefix) {
		return "", "", fmt.Errorf("refused script %q", script)
	}
	if pathInfo != "" && (pathInfo[0] != '/' || strings.IndexByte(pathInfo, 0) >= 0) {
		return "", "", fmt.Errorf("refused path info %q", pathInfo)
	}
	return script, pathInfo, nil
}

// serveForEdge is the shard's side (Config.StaticServer): try_files on this
// machine's docroot, answered as the protocol above says. It never runs PHP.
func (s *Server) serveForEdge(w http.ResponseWriter, r *http.Request, rt *Route) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &HTTPError{Status: http.StatusMethodNotAllowed, Message: "Method not allowed."}
	}
	if m := r.Header.Get(headerMethod); m != "" {
		if !validMethod(m) {
			return &HTTPError{Status: http.StatusBadRequest, Message: "Bad request.", Cause: fmt.Errorf("bad %s %q", headerMethod, m)}
		}
		r2 := *r
		r2.Method = m
		r = &r2
	}
	res, err := s.tryFiles(r, rt)
	if err != nil {
		return err
	}
	h := w.Header()
	switch res.kind {
	case tryRedirect:
		h.Set(headerTry, "redirect")
		http.Redirect(w, r, res.location, http.StatusMovedPermanently)
		return nil
	case tryStatic:
		h.Set(headerTry, "static")
		return s.serveStatic(w, r, rt, res.fsPath, res.fi)
	default:
		if err := s.checkScript(rt, res.script); err != nil {
			return err
		}
		h.Set(headerTry, "php")
		h.Set(headerScript, (&url.URL{Path: res.script}).EscapedPath())
		if res.pathInfo != "" {
			h.Set(headerPathInfo, (&url.URL{Path: res.pathInfo}).EscapedPath())
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// validMethod reports whether m is an HTTP method token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
