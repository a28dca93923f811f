package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/quietio"
)

// runPHP sends r to the site's pool with SCRIPT_NAME = script (a clean URL
// path of an existing .php file) and streams PHP's response back.
func (s *Server) runPHP(w http.ResponseWriter, r *http.Request, rt *Route, script, pathInfo string) error {
	if strings.HasPrefix(script, noExecPrefix) {
		return notFound(fmt.Errorf("refused to run %s from uploads", script))
	}
	// A remote shard's static server checked the script on its disk before
	// it named it (serveForEdge); this machine does not have that disk.
	if rt.Gateway == "" {
		if err := s.checkScript(rt, script); err != nil {
			return err
		}
	}

	// Body: callPHP spooled it whole (spoolBody), so its length is known
	// and it is on this machine: no pool worker waits for a visitor.
	var body io.Reader
	contentLength := r.ContentLength
	if r.Body != nil && r.Body != http.NoBody && contentLength != 0 {
		if contentLength < 0 {
			return &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: errors.New("request body reached PHP unspooled")}
		}
		body = r.Body
	} else {
		contentLength = 0
	}

	params := s.params(r, rt, script, pathInfo, contentLength)
	retry := s.newRetry(r, body != nil)
	for {
		err := s.phpAttempt(w, r, rt, script, params, body, retry)
		var re *retryableError
		if !errors.As(err, &re) {
			retry.done(r, err)
			return err
		}
		if !retry.wait(r.Context(), re) {
			retry.done(r, re)
			if re.answer != nil {
				return s.relay(w, re.answer.head())
			}
			return re.final
		}
	}
}

// phpAttempt sends one FastCGI request for r to rt's pool and streams the
// answer to w. A failure that a later attempt may not meet (the pool
// restarting, the site's database down) is a *retryableError, returned
// only while nothing has been written to w (retry.go).
func (s *Server) phpAttempt(w http.ResponseWriter, r *http.Request, rt *Route, script string, params []param, body io.Reader, retry *phpRetry) error {
	conn, err := s.dialPool(r.Context(), rt)
	if err != nil {
		return dialFailure(err)
	}
	defer conn.Close()
	// Client gone: close the connection so php-fpm stops and reads unblock.
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()

	bw := paramsWriters.Get().(*bufio.Writer)
	bw.Reset(conn)
	defer func() { bw.Reset(nil); paramsWriters.Put(bw) }()
	rw := newRecordWriter(bw, 4<<10)
	if err := rw.beginRequest(); err != nil {
		return resetFailure(badGateway(err))
	}
	if err := rw.params(params); err != nil {
		if errors.Is(err, errParamTooLarge) {
			return &HTTPError{Status: http.StatusRequestHeaderFieldsTooLarge, Message: "Request header too large.", Cause: err}
		}
		return resetFailure(badGateway(err))
	}
	if err := bw.Flush(); err != nil {
		return resetFailure(badGateway(fmt.Errorf("write params: %w", err)))
	}
	// Stream stdin concurrently with reading the response: PHP may answer
	// before it has read the whole body.
	stdinErr := make(chan error, 1)
	go func() {
		// A writer of its own: bw's buffer is not shared across goroutines.
		size := 0 // an empty FCGI_STDIN record only
		if body != nil {
			size = fcgiStdinChunk
		}
		stdinErr <- newRecordWriter(conn, size).stdin(body)
	}()
	waitStdin := func() error {
		conn.Close() // unblocks a writer stuck on a pool that stopped reading
		return <-stdinErr
	}

	out := newStdoutReader(conn)
	defer out.release()
	upstreamStart := time.Now()
	head, err := readHead(out)
	if head != nil {
		defer head.release()
	}
	if err == nil && head.retry != "" && retry.mayRetryMarked(head.retry) {
		// Kept whole (it is a short page) in case no retry follows.
		err = &retryableError{reason: head.retry, answer: bufferAnswer(head)}
	}
	if err == nil {
		err = s.relay(w, head)
	} else if !errors.As(err, new(*retryableError)) {
		err = resetFailure(err) // nothing of the response came: the pool may be restarting
	}
	if info := InfoFrom(r.Context()); info != nil {
		info.Upstream += time.Since(upstreamStart)
	}
	_ = waitStdin() // a pool that stopped reading shows in the response
	if msg := strings.TrimSpace(out.stderr.String()); msg != "" {
		s.log.Warn("edge: php stderr", "site", rt.Site, "script", script,
			"request_id", w.Header().Get("X-Request-Id"), "stderr", msg)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client left; nothing to tell it
		}
		return err
	}
	return nil
}

// checkScript refuses a script whose real location (after symlinks) is
// outside the docroot and the allowed symlink roots, or inside uploads.
func (s *Server) checkScript(rt *Route, script string) error {
	if strings.HasPrefix(script, noExecPrefix) {
		return notFound(fmt.Errorf("refused to run %s from uploads", script))
	}
	scriptFile := filepath.Join(rt.Docroot, filepath.FromSlash(script))
	rootDir, rel, err := s.confine(rt.Docroot, scriptFile)
	if err != nil {
		return notFound(err)
	}
	if realDoc, _ := s.realDocroot(rt.Docroot); rootDir == realDoc &&
		strings.HasPrefix("/"+filepath.ToSlash(rel)+"/", noExecPrefix) {
		return notFound(fmt.Errorf("%s resolves into uploads", script))
	}
	return nil
}

// phpHead is the CGI header block of PHP's answer, parsed; br holds what
// follows of the body.
type phpHead struct {
	status int
	hdr    textproto.MIMEHeader
	br     *bufio.Reader
	out    *stdoutReader
	retry  string // the RetryHeader's reason ("": none)
	pooled bool   // br is headBufs'
}

// release gives a head's reader back for another request (readHead's);
// h.br must not be used after.
func (h *phpHead) release() {
	if h.pooled && h.br != nil {
		h.br.Reset(nil)
		headBufs.Put(h.br)
		h.br = nil
	}
}

// Per-request buffers of phpAttempt and relay, kept between requests
// (fastcgi.go has the response's).
var (
	headBufs      = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
	paramsWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
	relayBufs     = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// readHead reads and parses PHP's CGI headers.
func readHead(out *stdoutReader) (*phpHead, error) {
	br := headBufs.Get().(*bufio.Reader)
	br.Reset(out)
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		br.Reset(nil)
		headBufs.Put(br)
		return nil, badGateway(fmt.Errorf("read php response headers: %w", err))
	}
	status := 0
	if st := hdr.Get("Status"); st != "" {
		code, _, _ := strings.Cut(strings.TrimSpace(st), " ")
		status, err = strconv.Atoi(code)
		if err != nil || status < 100 || status > 999 {
			br.Reset(nil)
			headBufs.Put(br)
			return nil, badGateway(fmt.Errorf("php sent bogus Status %q", st))
		}
		delete(hdr, "Status")
	}
	if status == 0 {
		status = http.StatusOK
		if hdr.Get("Location") != "" {
			status = http.StatusFound
		}
	}
	for _, k := range hopByHop {
		delete(hdr, k)
	}
	h := &phpHead{status: status, hdr: hdr, br: br, out: out, pooled: true}
	if v := hdr.Get(RetryHeader); v != "" {
		delete(hdr, RetryHeader) // the edge's business, never the visitor's
		if status == http.StatusServiceUnavailable {
			h.retry = retryReason(v)
		}
	}
	return h, nil
}

// relay sends PHP's status and headers (head) to w and streams the body.
func (s *Server) relay(w http.ResponseWriter, head *phpHead) error {
	h := w.Header()
	for k, vv := range head.hdr {
		h[k] = vv // multiple Set-Cookie lines stay separate
	}
	w.WriteHeader(head.status)

	br, out := head.br, head.out
	rc := http.NewResponseController(w)
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return &errResponseStarted{fmt.Errorf("write response: %w", werr)}
			}
			// Flush when PHP has nothing more ready, so flush() in PHP
			// reaches the visitor.
			if br.Buffered() == 0 && !out.pending() {
				if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
					return &errResponseStarted{fmt.Errorf("flush response: %w", ferr)}
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &errResponseStarted{fmt.Errorf("read php response body: %w", rerr)}
		}
	}
}

var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// params builds the CGI/FastCGI parameters for r, as nginx's fastcgi_params
// would, except that HTTP_HOST keeps the port the visitor sent.
func (s *Server) params(r *http.Request, rt *Route, script, pathInfo string, contentLength int64) []param {
	https := r.TLS != nil
	scheme := "http"
	if https {
		scheme = "https"
	}
	serverName, hostPort := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		serverName, hostPort = h, p
	}
	serverAddr, serverPort := "", hostPort
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, p, err := net.SplitHostPort(la.String()); err == nil {
			serverAddr, serverPort = h, p
		}
	}
	if serverPort == "" {
		serverPort = "80"
		if https {
			serverPort = "443"
		}
	}
	remoteAddr, remotePort, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remoteAddr = r.RemoteAddr
	}
	requestURI := r.RequestURI
	if requestURI == "" || requestURI[0] != '/' {
		requestURI = r.URL.RequestURI() // absolute-form target or client-side request
	}
	docroot := rt.Docroot
	cl := ""
	if contentLength > 0 {
		cl = strconv.FormatInt(contentLength, 10)
	}
	p := make([]param, 0, 32+len(r.Header))
	add := func(k, v string) { p = append(p, param{k, v}) }
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", "aipress")
	add("SERVER_PROTOCOL", r.Proto)
	add("SERVER_NAME", serverName)
	add("SERVER_ADDR", serverAddr)
	add("SERVER_PORT", serverPort)
	add("REQUEST_SCHEME", scheme)
	if https {
		add("HTTPS", "on")
	}
	add("REMOTE_ADDR", remoteAddr)
	add("REMOTE_PORT", remotePort)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_URI", requestURI)
	add("DOCUMENT_URI", script+pathInfo)
	add("DOCUMENT_ROOT", docroot)
	add("SCRIPT_NAME", script)
	add("SCRIPT_FILENAME", filepath.Join(docroot, filepath.FromSlash(script)))
	add("QUERY_STRING", r.URL.RawQuery)
	add("CONTENT_TYPE", r.Header.Get("Content-Type"))
	add("CONTENT_LENGTH", cl)
	add("REDIRECT_STATUS", "200")
	if pathInfo != "" {
		add("PATH_INFO", pathInfo)
		add("PATH_TRANSLATED", filepath.Join(docroot, filepath.FromSlash(path.Clean(pathInfo))))
	}
	add("HTTP_HOST", r.Host) // exactly as sent, port included
	for k, vv := range r.Header {
		// Headers with "_" would alias dashed ones (X_Forwarded_For vs
		// X-Forwarded-For); nginx drops them too. Proxy is httpoxy.
		if strings.IndexByte(k, '_') >= 0 {
			continue
		}
		switch textproto.CanonicalMIMEHeaderKey(k) {
		case "Content-Type", "Content-Length", "Host", "Proxy",
			"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
			continue
		}
		add(cgiHeaderName(k), strings.Join(vv, ", "))
	}
	// The edge is the first hop: what a visitor claims in X-Forwarded-* is
	// replaced, never trusted.
	add("HTTP_X_FORWARDED_FOR", remoteAddr)
	add("HTTP_X_FORWARDED_PROTO", scheme)
	add("HTTP_X_FORWARDED_HOST", r.Host)
	return p
}

func cgiHeaderName(k string) string {
	b := make([]byte, 0, len("HTTP_")+len(k))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c == '-':
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}

// dialPool connects to rt's pool: its socket on this machine, or through
// its shard's gateway.
func (s *Server) dialPool(ctx context.Context, rt *Route) (net.Conn, error) {
	if rt.Gateway != "" {
		return s.dialGateway(ctx, rt)
	}
	network, address, err := parseEndpoint(rt.Endpoint)
	if err != nil {
		return nil, err
	}
	dialer := net.Dialer{Timeout: s.dialTimeout}
	conn, err := dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("dial php-fpm pool %s: %w", rt.Endpoint, err)
	}
	return quietio.Wrap(conn), nil
}

// parseEndpoint splits "unix:/path" (pools listen on Unix sockets only).
func parseEndpoint(ep string) (network, address string, err error) {
	network, address, ok := strings.Cut(ep, ":")
	if !ok || address == "" || network != "unix" {
		return "", "", fmt.Errorf("bad endpoint %q: want unix:/path", ep)
	}
	if !filepath.IsAbs(address) {
		return "", "", fmt.Errorf("bad endpoint %q: unix socket path must be absolute", ep)
	}
	return network, address, nil
}

// defaultBodyMemory: request bodies up to this size are spooled in memory,
// larger ones in an unlinked temporary file.
const defaultBodyMemory = 64 << 10

// spoolBody reads r's whole body before PHP is asked for a worker, as
// nginx's request buffering does: a worker is taken only once the request
// is complete, so a visitor who sends a body slowly costs this goroutine,
// never one of the site's few PHP workers. Bodies of up to bodyMemory bytes
// stay in memory, larger ones go to an unlinked temporary file in tempDir;
// more than maxBody bytes is 413. The body must arrive by bodyTimeout plus
// one second per minBodyRate bytes received so far (a deadline on the
// connection, moved on as bytes come), else 408. It returns r with the
// spooled body and its length (PHP needs CONTENT_LENGTH, also for chunked
// bodies) and a function that releases the spool.
func (s *Server) spoolBody(w http.ResponseWriter, r *http.Request) (*http.Request, func(), error) {
	release := func() {}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r, release, nil
	}
	if r.ContentLength > s.maxBody {
		return nil, release, tooLarge(fmt.Errorf("Content-Length %d exceeds %d", r.ContentLength, s.maxBody))
	}
	src := &pacedBody{r: http.MaxBytesReader(w, r.Body, s.maxBody), rc: http.NewResponseController(w),
		start: time.Now(), timeout: s.bodyTimeout, rate: s.minBodyRate, progress: s.onBodyRead}
	ok := false
	defer func() { src.finish(ok) }()

	var mem bytes.Buffer
	if r.ContentLength <= s.bodyMemory { // includes unknown (-1)
		n, err := io.Copy(&mem, io.LimitReader(src, s.bodyMemory+1))
		if err != nil {
			return nil, release, bodyError(src, err)
		}
		if n <= s.bodyMemory {
			if s.onSpool != nil {
				s.onSpool(false, n)
			}
			ok = true
			return spooled(r, bytes.NewReader(mem.Bytes()), n), release, nil
		}
	}
	f, err := os.CreateTemp(s.tempDir, "aipress-body-*")
	if err != nil {
		return nil, release, &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("spool request body: %w", err)}
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, io.MultiReader(&mem, src))
	if err != nil {
		f.Close()
		var pe *fs.PathError
		if errors.As(err, &pe) { // the file, not the visitor (disk full)
			return nil, release, &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("spool request body: %w", err)}
		}
		return nil, release, bodyError(src, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, release, &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("spool request body: %w", err)}
	}
	if s.onSpool != nil {
		s.onSpool(true, n)
	}
	ok = true
	return spooled(r, f, n), func() { f.Close() }, nil
}

// spooled is r with body (n bytes) instead of what the visitor sends.
func spooled(r *http.Request, body io.Reader, n int64) *http.Request {
	r = r.WithContext(r.Context()) // a shallow copy
	r.Body, r.ContentLength, r.TransferEncoding = io.NopCloser(body), n, nil
	return r
}

// pacedBody reads a request body while keeping the connection's read
// deadline at start + timeout + received/rate.
type pacedBody struct {
	r       io.Reader
	rc      *http.ResponseController
	start   time.Time
	timeout time.Duration
	rate    int64 // bytes per second
	n       int64
	// unbounded is set when the connection takes no deadline (a
	// ResponseWriter that cannot reach it).
	unbounded bool
	progress  func(n int64) // tests
}

func (p *pacedBody) deadline() time.Time {
	return p.start.Add(p.timeout + time.Duration(float64(p.n)/float64(p.rate)*float64(time.Second)))
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if !p.unbounded && p.rc.SetReadDeadline(p.deadline()) != nil {
		p.unbounded = true
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.progress != nil && n > 0 {
		p.progress(p.n)
	}
	return n, err
}

// finish lifts the deadline once the body is read: the connection is read
// again for the next request (and to notice a visitor who leaves while PHP
// runs). After a failure it moves the deadline to now instead: net/http
// would otherwise wait, without a bound, to discard the rest of the body
// before answering; so it gives up at once and closes the connection.
func (p *pacedBody) finish(ok bool) {
	if p.unbounded {
		return
	}
	if ok {
		_ = p.rc.SetReadDeadline(time.Time{})
	} else {
		_ = p.rc.SetReadDeadline(time.Now())
	}
}

// bodyError is the answer to a body that could not be read.
func bodyError(p *pacedBody, err error) *HTTPError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &HTTPError{Status: http.StatusRequestTimeout,
			Message: fmt.Sprintf("The request body arrived too slowly (it must arrive within %s plus one second per %d bytes).", p.timeout, p.rate),
			Cause:   fmt.Errorf("request body: %d bytes by %s: %w", p.n, p.deadline().Sub(p.start).Round(time.Millisecond), err)}
	default:
		return &HTTPError{Status: http.StatusBadRequest, Message: "Could not read the request body.", Cause: fmt.Errorf("spool request body: %w", err)}
	}
}

func badGateway(cause error) *HTTPError {
	return &HTTPError{Status: http.StatusBadGateway, Message: "The site could not be reached. Please try again shortly.", Cause: cause}
}

func tooLarge(cause error) *HTTPError {
	return &HTTPError{Status: http.StatusRequestEntityTooLarge, Message: "The request body is too large.", Cause: cause}
}
