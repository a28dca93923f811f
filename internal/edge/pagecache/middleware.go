package pagecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/edge/precompress"
)

// X-Cache values.
const (
	Hit    = "HIT"
	Miss   = "MISS"
	Bypass = "BYPASS"
	Stale  = "STALE"
)

// Middleware returns the edge middleware that serves from and fills the
// cache.
func (c *Cache) Middleware() edge.Middleware {
	return func(next edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			return c.serve(w, r, rt, next)
		}
	}
}

// labelValues are the X-Cache header values, shared by every response
// (capacity = length: a layer that adds a value copies).
var labelValues = map[string][]string{Hit: {Hit}, Miss: {Miss}, Bypass: {Bypass}, Stale: {Stale}}

func label(w http.ResponseWriter, r *http.Request, v string) {
	if vv, ok := labelValues[v]; ok {
		w.Header()["X-Cache"] = vv[:1:1]
	} else {
		w.Header().Set("X-Cache", v)
	}
	if info := edge.InfoFrom(r.Context()); info != nil {
		info.Cache = v
	}
}

func (c *Cache) serve(w http.ResponseWriter, r *http.Request, rt *edge.Route, next edge.RouteHandler) error {
	if BypassReason(r, rt, c.cacheFeeds) != "" {
		label(w, r, Bypass)
		return next(&stripWriter{ResponseWriter: w, label: Bypass}, r, rt)
	}
	// What the page may be stored under is all PHP may see of the URL.
	r = keyedRequest(r)
	key := Key(r, rt)
	for attempt := 0; ; attempt++ {
		now := c.now()
		c.mu.Lock()
		idx := c.siteLocked(rt.Site)
		gen := idx.gen
		e := c.lookupLocked(key, now)
		var stale *entry
		if e != nil && !e.pass {
			age := e.age(now)
			switch {
			case !acceptsEncoding(r, e.header.Get("Content-Encoding")):
				// Stored compressed; this visitor cannot take it.
				c.mu.Unlock()
				label(w, r, Miss)
				return next(&stripWriter{ResponseWriter: w, label: Miss}, r, rt)
			case age < e.ttl:
				c.mu.Unlock()
				c.serveEntry(w, r, e, Hit, now)
				return nil
			case age < e.ttl+c.swr:
				if !c.refresh[key] {
					c.refresh[key] = true
					c.startRefresh(r, rt, next, key, gen)
				}
				c.mu.Unlock()
				c.serveEntry(w, r, e, Stale, now)
				return nil
			case age < e.ttl+c.sie:
				stale = e
			}
		}
		if c.peek != nil && c.peek(r) {
			// No page to serve: PHP answers and its page is stored, as
			// for a visitor, but a failure is not hidden behind a stale
			// page.
			stale = nil
		}
		if e != nil && e.pass {
			// Recently not storable: do not queue behind one another.
			c.mu.Unlock()
			_, err := c.fill(w, r, rt, next, key, gen, nil)
			return err
		}
		fk := key + "\x00" + strconv.FormatUint(gen, 10)
		if fl := c.flights[fk]; fl != nil {
			c.mu.Unlock()
			if c.onWait != nil {
				c.onWait()
			}
			select {
			case <-fl.done:
			case <-r.Context().Done():
				return nil // the visitor left
			}
			res := fl.res
			if res.entry != nil {
				c.mu.Lock()
				live := res.entry.elem != nil
				c.mu.Unlock()
				if live {
					c.serveEntry(w, r, res.entry, Miss, c.now())
					return nil
				}
			}
			if res.purged && attempt == 0 {
				continue // coalesce again, under the new generation
			}
			if res.failed && stale != nil {
				c.serveEntry(w, r, stale, Stale, c.now())
				return nil
			}
			_, err := c.fill(w, r, rt, next, key, gen, stale)
			return err
		}
		fl := &flight{done: make(chan struct{})}
		c.flights[fk] = fl
		c.mu.Unlock()
		var err error
		func() {
			defer func() {
				c.mu.Lock()
				delete(c.flights, fk)
				c.mu.Unlock()
				close(fl.done)
			}()
			fl.res, err = c.fill(w, r, rt, next, key, gen, stale)
		}()
		return err
	}
}

// fillResult is what a fill tells the requests that waited for it.
type fillResult struct {
	entry  *entry // stored, shareable
	failed bool   // upstream error or 5xx
	purged bool   // storable, but a purge ran meanwhile
}

// fill asks next for r and streams the answer to w (nil for a background
// refresh) while recording it, then stores it if it may be. With a stale
// entry, an upstream failure is answered with it instead.
func (c *Cache) fill(w http.ResponseWriter, r *http.Request, rt *edge.Route, next edge.RouteHandler, key string, gen uint64, stale *entry) (fillResult, error) {
	if w != nil {
		label(w, r, Miss)
	}
	// The fill outlives its visitor (others may wait for it), bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.fillTimeout)
	defer cancel()
	if stale != nil {
		// A failure is answered with the stale page at once, rather than
		// after the edge's retries of a restarting pool.
		ctx = edge.WithoutRetryWait(ctx)
	}
	up := upstreamRequest(ctx, r)
	fw := &fillWriter{client: w, header: http.Header{}, headOnly: r.Method == http.MethodHead,
		hasStale: stale != nil, max: c.maxObject, routeTTL: rt.Options.CacheTTL}
	if w != nil {
		fw.header = w.Header().Clone()
	}
	start := time.Now()
	err := next(fw, up, rt)
	if err == nil && !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("pagecache: upstream for %s: %w", key, ctx.Err())
	}
	failed := err != nil || fw.status >= 500
	if failed {
		if stale != nil && !fw.forwarded {
			cause := err
			if cause == nil {
				cause = fmt.Errorf("status %d", fw.status)
			}
			c.log.Warn("pagecache: upstream failed, serving stale page", "site", rt.Site, "key", key,
				"age", stale.age(c.now()).String(), "err", cause, "took", time.Since(start).String())
			if w != nil {
				c.serveEntry(w, r, stale, Stale, c.now())
			}
			return fillResult{failed: true}, nil
		}
		if w != nil && !fw.forwarded {
			fw.copyHeader() // e.g. Allow or Retry-After set before the error
		}
		return fillResult{failed: true}, err
	}
	now := c.now()
	e := &entry{key: key, site: rt.Site, resource: resourceKey(r.URL), stored: now}
	if !fw.storable {
		// Remember for a while that this key is not storable, so that
		// visitors do not queue behind one another for it.
		e.pass, e.ttl, e.size = true, min(rt.Options.CacheTTL, passTTL), int64(len(key))+entryOverhead
		c.store(e, gen)
		return fillResult{}, nil
	}
	e.status, e.ttl, e.body = fw.status, fw.ttl, fw.buf.Bytes()
	if cap(e.body)-len(e.body) > len(e.body)/8 {
		// The fill's buffer grew by doubling while PHP's answer came in
		// pieces: a 52 KB home page sat in a 64 KB array, 20 % more than
		// the entry's size counts against MaxBytes, for as long as it is
		// cached (an idle site's probe keeps its home page cached).
		e.body = bytes.Clone(e.body)
	}
	e.tags = parseTags(fw.header.Values(TagsHeader))
	e.header = storedHeader(fw.header)
	if e.status == http.StatusOK && e.header.Get("Content-Encoding") == "" && precompress.Compressible(e.header.Get("Content-Type")) {
		// Compressed once here rather than for every visitor.
		if e.gz = precompress.Gzip(e.body); e.gz != nil {
			precompress.AddVary(e.header)
		}
	}
	e.length = []string{strconv.Itoa(len(e.body))}
	if e.gz != nil {
		e.gzLength = []string{strconv.Itoa(len(e.gz))}
	}
	e.size = int64(len(key)+len(e.body)+len(e.gz)) + entryOverhead
	for k, vv := range e.header {
		for _, v := range vv {
			e.size += int64(len(k) + len(v) + 4)
		}
	}
	for _, t := range e.tags {
		e.size += int64(len(t)) + 64
	}
	if !c.store(e, gen) {
		return fillResult{purged: true}, nil
	}
	return fillResult{entry: e}, nil
}

// upstreamRequest is r as the fill sends it: HEAD becomes GET (WordPress
// answers HEAD with an empty body, which must not become GET's entry), and
// conditional and range headers are dropped so that PHP answers in full.
func upstreamRequest(ctx context.Context, r *http.Request) *http.Request {
	up := r.Clone(ctx)
	if up.Method == http.MethodHead {
		up.Method = http.MethodGet
	}
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"} {
		up.Header.Del(k)
	}
	up.Body = http.NoBody
	up.ContentLength = 0
	return up
}

// notStored are response headers never kept in an entry.
var notStored = []string{"Set-Cookie", "X-Request-Id", TagsHeader, "X-Cache", "Age", "Content-Length",
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization"}

func storedHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range notStored {
		delete(out, k)
	}
	return out
}

// serveEntry writes e to w.
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, lbl string, now time.Time) {
	h := w.Header()
	for k, vv := range e.header {
		h[k] = vv[:len(vv):len(vv)] // an Add by a later layer copies
	}
	label(w, r, lbl)
	h.Set("Age", strconv.FormatInt(int64(e.age(now)/time.Second), 10))
	body, length := e.body, e.length
	if e.gz != nil && r.Header.Get("Range") == "" && precompress.AcceptsGzip(r) {
		// The stored gzip variant (ranges are of the identity bytes).
		body, length = e.gz, e.gzLength
		h.Set("Content-Encoding", "gzip")
		if et := h.Get("Etag"); et != "" {
			h.Set("Etag", precompress.WeakETag(et))
		}
	}
	if e.status == http.StatusOK && (r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" ||
		r.Header.Get("If-Modified-Since") != "" || r.Header.Get("If-Range") != "") {
		// Handles Range, If-None-Match against a stored ETag, and HEAD.
		// The stored Last-Modified (if PHP sent one) answers If-Modified-Since.
		modTime, _ := http.ParseTime(e.header.Get("Last-Modified"))
		http.ServeContent(w, r, "", modTime, bytes.NewReader(body))
		return
	}
	// The common hit: the whole page in one Write (ServeContent would copy
	// it through a fresh 32 KiB buffer in several writes).
	h["Content-Length"] = length[:1:1]
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// startRefresh refreshes key in the background for a stale hit. c.mu is
// held; the refresh flag for key is set.
func (c *Cache) startRefresh(r *http.Request, rt *edge.Route, next edge.RouteHandler, key string, gen uint64) {
	// A context of its own (the visitor's ends with its request) keeping
	// only the server's values: the visitor's edge.RequestInfo must not be
	// written after its request finished.
	ctx := context.Background()
	for _, k := range []any{http.ServerContextKey, http.LocalAddrContextKey} {
		if v := r.Context().Value(k); v != nil {
			ctx = context.WithValue(ctx, k, v)
		}
	}
	up := r.Clone(ctx)
	routeCopy := *rt
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.refresh, key)
			c.mu.Unlock()
		}()
		if _, err := c.fill(nil, up, &routeCopy, next, key, gen, nil); err != nil {
			c.log.Warn("pagecache: background refresh failed", "site", rt.Site, "key", key, "err", err)
		}
	}()
}

// fillWriter records a response for the cache while streaming it to the
// visitor (client), unless it is a 5xx that a stale entry will replace.
type fillWriter struct {
	client      http.ResponseWriter // nil: background refresh
	header      http.Header
	headOnly    bool // the visitor asked HEAD: no body to it
	hasStale    bool
	max         int64
	routeTTL    time.Duration
	wroteHeader bool
	status      int
	forwarded   bool // the status line went to the client
	clientErr   error
	storable    bool
	ttl         time.Duration
	buf         bytes.Buffer
}

func (f *fillWriter) Header() http.Header { return f.header }

func (f *fillWriter) WriteHeader(status int) {
	if f.wroteHeader {
		return
	}
	if status >= 100 && status < 200 {
		return // informational: nothing to record
	}
	f.wroteHeader, f.status = true, status
	ttl, _ := StorableTTL(status, f.header, f.routeTTL, f.max)
	f.storable, f.ttl = ttl > 0, ttl
	if f.client == nil || (status >= 500 && f.hasStale) {
		return
	}
	f.copyHeader()
	f.forwarded = true
	f.client.WriteHeader(status)
}

// copyHeader gives the client the recorded header, minus the tags.
func (f *fillWriter) copyHeader() {
	if f.client == nil {
		return
	}
	h := f.client.Header()
	for k, vv := range f.header {
		h[k] = vv
	}
	h.Del(TagsHeader)
	h.Set("X-Cache", Miss)
}

func (f *fillWriter) Write(p []byte) (int, error) {
	if !f.wroteHeader {
		f.WriteHeader(http.StatusOK)
	}
	if f.storable {
		if int64(f.buf.Len()+len(p)) > f.max {
			f.storable = false
			f.buf = bytes.Buffer{}
		} else {
			f.buf.Write(p)
		}
	}
	if f.forwarded && !f.headOnly && f.clientErr == nil {
		if _, err := f.client.Write(p); err != nil {
			f.clientErr = err
		}
	}
	if f.clientErr != nil && !f.storable {
		// The visitor is gone and nothing is recorded: stop PHP.
		return 0, f.clientErr
	}
	return len(p), nil
}

// FlushError flushes to the visitor (http.ResponseController uses it).
func (f *fillWriter) FlushError() error {
	if !f.forwarded || f.clientErr != nil {
		return nil
	}
	err := http.NewResponseController(f.client).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	if err != nil {
		f.clientErr = err
		if !f.storable {
			return err
		}
	}
	return nil
}

// stripWriter removes the tags header from a response that is not cached
// and keeps the X-Cache label.
type stripWriter struct {
	http.ResponseWriter
	label string
	done  bool
}

func (s *stripWriter) prepare() {
	if !s.done {
		s.done = true
		h := s.ResponseWriter.Header()
		h.Del(TagsHeader)
		h.Set("X-Cache", s.label)
	}
}

func (s *stripWriter) WriteHeader(status int) {
	if status >= 200 {
		s.prepare()
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *stripWriter) Write(p []byte) (int, error) {
	s.prepare()
	return s.ResponseWriter.Write(p)
}

// FlushError flushes the underlying writer.
func (s *stripWriter) FlushError() error {
	s.prepare()
	return http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *stripWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ReadFrom keeps the server's sendfile path for static files.
func (s *stripWriter) ReadFrom(src io.Reader) (int64, error) {
	s.prepare()
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{s.ResponseWriter}, src)
}
