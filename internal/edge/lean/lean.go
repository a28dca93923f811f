// Package lean is a lean HTTP/1.1 path in front of net/http for the
// edge's plain-HTTP listener.
//
// A Server accepts the connections of a listener and reads their requests
// itself. A request it takes — GET or HEAD over HTTP/1.1, no body, nothing
// unusual (see parseRequest) — runs the same http.Handler net/http would
// run, with a ResponseWriter that follows net/http's response rules but
// sends each response's header block and body in one write(2)/writev(2)
// (or header then sendfile(2) for a large file). Every middleware of the
// handler therefore applies unchanged: routing, WAF, rate limits, cache,
// bandwidth, metrics, access log, request ids.
//
// At the first request it does not take, the connection — with every
// byte already read replayed first — goes to the fallback http.Server
// through an in-process listener, and net/http serves it from then on
// (bodies, Expect, upgrades, HTTP/1.0, absolute-form targets, malformed
// or oversized requests, which net/http answers as it always did).
//
// Timeouts follow the fallback server's: ReadHeaderTimeout (or
// ReadTimeout) from a request's first byte to its last header line,
// IdleTimeout (or ReadTimeout) between requests; no write timeout unless
// WriteTimeout is set. A request that takes longer than watchAfter has its
// connection watched (one read in the background, as net/http always
// does) so that its context ends when the client goes away.
//
// Not supported on the lean path: Hijack (upgrades are handed off),
// trailers (no handler of the edge sets them), 1xx besides what
// WriteHeader writes. TLS listeners are not wrapped: HTTP/2 stays with
// net/http.
package lean

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// watchAfter is how long a request runs before its connection is watched
// for the client going away (a cache hit or a static file ends well
// before; a PHP request may not).
const watchAfter = 50 * time.Millisecond

// Server serves a listener's connections on the lean path, handing the
// rest to HTTP.
type Server struct {
	// HTTP is the fallback server; its Handler serves both paths, and its
	// timeouts, BaseContext and ConnContext apply to both.
	HTTP *http.Server
	// Logger receives handler panics (default: discard).
	Logger *slog.Logger
	// Now is the clock for Date headers (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	ln       net.Listener
	fallback *chanListener
	conns    map[*conn]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts ln's connections until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.HTTP == nil || s.HTTP.Handler == nil {
		return errors.New("lean: Server.HTTP with a Handler is required")
	}
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.fallback = newChanListener(ln.Addr())
	s.conns = map[*conn]struct{}{}
	fb := s.fallback
	s.mu.Unlock()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.HTTP.Serve(fb) }()
	base := context.Background()
	if s.HTTP.BaseContext != nil {
		base = s.HTTP.BaseContext(ln)
	}
	base = context.WithValue(base, http.ServerContextKey, s.HTTP)
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			_ = fb.Close()
			<-httpDone
			return err
		}
		delay = 0
		c := s.newConn(base, rw)
		if c == nil {
			continue
		}
		go c.serve()
	}
}

func (s *Server) newConn(base context.Context, rw net.Conn) *conn {
	ctx := context.WithValue(base, http.LocalAddrContextKey, rw.LocalAddr())
	if s.HTTP.ConnContext != nil {
		ctx = s.HTTP.ConnContext(ctx, rw)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	c := &conn{s: s, rwc: rw, ctx: ctx, remote: rw.RemoteAddr().String(), now: now,
		rbuf: make([]byte, 0, 4096), wbuf: make([]byte, 0, 4096)}
	c.state.Store(stateActive)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		_ = rw.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// headerLimit is the largest header block the lean path reads: 16 KiB, or
// the fallback's MaxHeaderBytes when smaller (net/http refuses more).
func (s *Server) headerLimit() int {
	if m := s.HTTP.MaxHeaderBytes; m > 0 && m < maxHeaderBlock {
		return m
	}
	return maxHeaderBlock
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, closes idle connections, waits (until ctx
// ends) for requests in flight, then shuts the fallback server down.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListener()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			break
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			_ = s.HTTP.Shutdown(ctx)
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.wg.Wait()
	return s.HTTP.Shutdown(ctx)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.closeListener()
	s.closeAll()
	return s.HTTP.Close()
}

func (s *Server) closeListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	if s.ln != nil {
		_ = s.ln.Close()
	}
}

// closeIdle closes the connections waiting for a request; it reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle && c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.rwc.Close()
	}
}

const (
	stateIdle   int32 = iota // between requests
	stateActive              // reading or serving a request
	stateClosed
)

// conn is one connection on the lean path.
type conn struct {
	s      *Server
	rwc    net.Conn
	ctx    context.Context
	remote string
	now    func() time.Time
	state  atomic.Int32

	rbuf       []byte // read: rbuf[rpos:] not consumed yet
	rpos       int
	wbuf       []byte // response bytes not written yet
	werr       error
	keys       []string
	header     http.Header // the response header map, reused (serveRequest)
	dateSec    int64
	dateBuf    []byte
	vecs       net.Buffers // the array of out
	out        net.Buffers // being written (writev)
	handedOff  bool
	watchTimer *time.Timer
	watch      watchState
}

// watchState is the background read of a request that runs long.
type watchState struct {
	mu      sync.Mutex
	running bool
	stop    bool // the handler returned: do not start
	done    chan struct{}
	cancel  context.CancelFunc
	b       [1]byte
	n       int
	err     error
}

func (c *conn) serve() {
	defer c.s.forget(c)
	defer func() {
		if !c.handedOff {
			_ = c.rwc.Close()
		}
	}()
	srv := c.s.HTTP
	hdrTimeout := srv.ReadHeaderTimeout
	if hdrTimeout <= 0 {
		hdrTimeout = srv.ReadTimeout
	}
	idleTimeout := srv.IdleTimeout
	if idleTimeout <= 0 {
		idleTimeout = srv.ReadTimeout
	}
	first := true
	for {
		// Wait for a request's first byte (idle: Shutdown may close the
		// connection), then its headers. The first request's header
		// deadline runs from the accept, as in net/http.
		if c.rpos == len(c.rbuf) {
			c.rbuf, c.rpos = c.rbuf[:0], 0
			if first {
				c.setReadDeadline(hdrTimeout)
			} else {
				c.setReadDeadline(idleTimeout)
			}
			if c.s.shutdown.Load() || !c.state.CompareAndSwap(stateActive, stateIdle) {
				return
			}
			ok := c.fill()
			if !c.state.CompareAndSwap(stateIdle, stateActive) || !ok {
				return
			}
		}
		// The header deadline runs from the request's first byte. Without
		// a ReadTimeout it is cleared once the request is read, so a
		// request that came whole in one read (the common case) skips
		// setting it: one timer update less per request.
		hdrSet := first
		if !first && srv.ReadTimeout > 0 {
			c.setReadDeadline(hdrTimeout)
			hdrSet = true
		}
		first = false
		var req parsed
		for {
			res, p := parseRequest(c.rbuf[c.rpos:], c.s.headerLimit())
			if res == take {
				req = p
				break
			}
			if res == handOff {
				c.handOff()
				return
			}
			if !hdrSet {
				c.setReadDeadline(hdrTimeout)
				hdrSet = true
			}
			if !c.fill() {
				return // EOF, timeout, or an error: net/http closes silently too
			}
		}
		if srv.ReadTimeout <= 0 {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
		c.rpos += req.n
		if !c.serveRequest(&req) {
			c.closeWriteAndWait()
			return
		}
		if c.rpos == len(c.rbuf) {
			c.rbuf, c.rpos = c.rbuf[:0], 0
		}
	}
}

// rstAvoidanceDelay is net/http's: how long a connection closed after a
// response stays half-open, so that a client still sending (pipelined
// requests) does not get a reset that could destroy the response.
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait half-closes the connection and lets the client read
// the response before the close (net/http's closeWriteAndWait).
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && c.werr == nil {
		_ = cw.CloseWrite()
		time.Sleep(rstAvoidanceDelay)
	}
}

func (c *conn) setReadDeadline(d time.Duration) {
	if d > 0 {
		_ = c.rwc.SetReadDeadline(c.now().Add(d))
	} else {
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
}

// fill reads more of the connection into rbuf; false on EOF or error.
func (c *conn) fill() bool {
	if c.rpos > 0 && c.rpos == len(c.rbuf) {
		c.rbuf, c.rpos = c.rbuf[:0], 0
	}
	if len(c.rbuf) == cap(c.rbuf) {
		if c.rpos > 0 {
			n := copy(c.rbuf, c.rbuf[c.rpos:])
			c.rbuf, c.rpos = c.rbuf[:n], 0
		} else {
			c.rbuf = append(c.rbuf, make([]byte, cap(c.rbuf))...)[:len(c.rbuf)]
		}
	}
	n, err := c.rwc.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+n]
	if n > 0 {
		return true
	}
	return err == nil
}

// handOff passes the connection, with what was read and not consumed, to
// the fallback server.
func (c *conn) handOff() {
	pending := append([]byte(nil), c.rbuf[c.rpos:]...)
	_ = c.rwc.SetReadDeadline(time.Time{})
	if c.s.fallback.deliver(&replayConn{Conn: c.rwc, pending: pending}) {
		c.handedOff = true
	}
}

// serveRequest runs the handler for req; it reports whether the
// connection stays open.
func (c *conn) serveRequest(p *parsed) (keep bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	// Built on the stack: WithContext makes the one copy that escapes.
	req := http.Request{Method: p.method, URL: p.url, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: p.header, Body: http.NoBody, Host: p.host, RemoteAddr: c.remote, RequestURI: p.target, Close: p.close}
	r := req.WithContext(ctx)
	// The response header map is the connection's, emptied for each
	// request (a map of 16 is a third of a cache hit's allocated bytes):
	// nothing of the edge keeps a ResponseWriter's Header after its
	// handler returned (net/http would not send it either), and what was
	// stored from it (a cached page's header, a snapshot) is a copy.
	if c.header == nil {
		c.header = make(http.Header, 16)
	} else {
		clear(c.header)
	}
	w := &response{c: c, req: r, isHEAD: p.method == http.MethodHead, handlerHeader: c.header,
		contentLength: -1, wantsClose: p.close}
	c.startWatch(cancel)
	panicked := c.runHandler(w, r)
	watchErr := c.stopWatch()
	if panicked {
		return false
	}
	w.finish()
	if watchErr != nil {
		return false
	}
	return !w.closeAfter && c.werr == nil
}

// runHandler calls the handler, recovering a panic as net/http does (the
// connection is closed; http.ErrAbortHandler is not logged).
func (c *conn) runHandler(w *response, r *http.Request) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if v != http.ErrAbortHandler && c.s.Logger != nil {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.Logger.Error("http: panic serving", "remote", c.remote, "panic", fmt.Sprint(v), "stack", string(buf))
			}
		}
	}()
	c.s.HTTP.Handler.ServeHTTP(w, r)
	return false
}

// startWatch arms the watch of a request that runs long: after
// watchAfter, one read in the background tells whether the client went
// away (its context is then cancelled) or sent its next request early.
// Only when nothing is buffered: buffered bytes mean the client is
// pipelining, and reading further would only add to them.
func (c *conn) startWatch(cancel context.CancelFunc) {
	c.watch.mu.Lock()
	c.watch.running, c.watch.stop, c.watch.cancel, c.watch.n, c.watch.err = false, false, cancel, 0, nil
	c.watch.mu.Unlock()
	if c.rpos != len(c.rbuf) {
		return
	}
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(watchAfter, c.watchRead)
		return
	}
	c.watchTimer.Reset(watchAfter)
}

func (c *conn) watchRead() {
	w := &c.watch
	w.mu.Lock()
	if w.stop || w.running {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.done = make(chan struct{})
	cancel := w.cancel
	w.mu.Unlock()
	n, err := c.rwc.Read(w.b[:])
	w.n = n
	if n == 0 && !isTimeout(err) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		w.err = err
		cancel() // the client went away
	}
	close(w.done)
}

// stopWatch ends the watch; it returns the error that ended the
// connection, if the watch saw one. A byte the watch read is appended
// to the read buffer.
func (c *conn) stopWatch() error {
	if c.watchTimer != nil {
		c.watchTimer.Stop()
	}
	w := &c.watch
	w.mu.Lock()
	w.stop = true
	running := w.running
	w.mu.Unlock()
	if !running {
		return nil
	}
	_ = c.rwc.SetReadDeadline(time.Unix(1, 0)) // interrupt the read
	<-w.done
	_ = c.rwc.SetReadDeadline(time.Time{})
	if w.n > 0 {
		c.rbuf = append(c.rbuf, w.b[:w.n]...)
	}
	return w.err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// send queues p for the client: into wbuf if it fits, else wbuf and p in
// one writev.
func (c *conn) send(p []byte) {
	if c.werr != nil {
		return
	}
	if len(c.wbuf)+len(p) <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, p...)
		return
	}
	if len(c.wbuf) == 0 {
		_, c.werr = c.rwc.Write(p)
		return
	}
	// WriteTo consumes the slice it is called on: c.out, a field (no
	// allocation), over c.vecs's array.
	if c.vecs == nil {
		c.vecs = make(net.Buffers, 2)
	}
	c.out = append(c.vecs[:0], c.wbuf, p)
	_, c.werr = c.out.WriteTo(c.rwc)
	c.wbuf = c.wbuf[:0]
}

// flush writes wbuf.
func (c *conn) flush() {
	if len(c.wbuf) == 0 || c.werr != nil {
		c.wbuf = c.wbuf[:0]
		return
	}
	_, c.werr = c.rwc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
}

// date is the Date header's value for now, formatted once a second.
func (c *conn) date() []byte {
	t := c.now()
	if sec := t.Unix(); sec != c.dateSec || c.dateBuf == nil {
		c.dateSec = sec
		c.dateBuf = t.UTC().AppendFormat(c.dateBuf[:0], http.TimeFormat)
	}
	return c.dateBuf
}

// replayConn reads pending before the connection.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// CloseWrite and ReadFrom reach the connection's own (net/http uses them
// for a clean close and for sendfile).
func (r *replayConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (r *replayConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := r.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.Conn}, src)
}

// chanListener is the fallback server's listener: the connections the lean
// path hands off.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// deliver hands c to the fallback server; false if it is closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
