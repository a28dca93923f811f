package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// bypassCookie makes the edge's page cache pass a request to PHP.
const bypassCookie = "wordpress_no_cache=1"

// record is one request of the load.
type record struct {
	start, end time.Time
	site       string
	cached     bool // GET / without cookies (the page cache answers)
	status     int
	err        string // transport error ("": an answer came)
	refused    bool   // the connection was refused
}

func (r record) ok() bool { return r.err == "" && r.status >= 200 && r.status < 400 }

func (r record) outcome() string {
	kind := "uncached"
	if r.cached {
		kind = "cached"
	}
	if r.err != "" {
		return fmt.Sprintf("%s %s: %s", r.site, kind, r.err)
	}
	return fmt.Sprintf("%s %s: status %d", r.site, kind, r.status)
}

// load sends GET / to the sites through the edge, cached and uncached in
// turn, and keeps every request's record.
type load struct {
	edge    string
	domains []string
	client  *http.Client

	mu   sync.Mutex
	recs []record
}

func newLoad(edge string, domains []string) *load {
	tr := &http.Transport{
		// A new connection per request: a kept one would hide refused
		// connections behind resets of the old one.
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &load{edge: edge, domains: domains, client: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get sends one request and returns its record.
func (l *load) get(ctx context.Context, domain string, cached bool) record {
	rec := record{start: time.Now(), site: domain, cached: cached}
	defer func() { rec.end = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.edge+"/", nil)
	if err != nil {
		rec.err = err.Error()
		return rec
	}
	req.Host = domain
	if !cached {
		req.Header.Set("Cookie", bypassCookie)
	}
	resp, err := l.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rec.status = resp.StatusCode
	}
	if err != nil {
		rec.err = err.Error()
		rec.refused = errors.Is(err, syscall.ECONNREFUSED)
	}
	rec.end = time.Now()
	return rec
}

// run starts workers that send requests until ctx ends; the channel is
// closed once they have stopped.
func (l *load) run(ctx context.Context, workers int) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				rec := l.get(ctx, l.domains[i%len(l.domains)], i%2 == 0)
				if ctx.Err() != nil {
					return // cut by the end of the run, not by a fault
				}
				l.mu.Lock()
				l.recs = append(l.recs, rec)
				l.mu.Unlock()
				if rec.refused {
					time.Sleep(10 * time.Millisecond) // nothing listens: do not spin
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// since returns the records of requests that ended after t.
func (l *load) since(t time.Time) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range l.recs {
		if r.end.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// uncachedP50 is the median duration of the successful uncached requests
// that ended after t (0: none).
func (l *load) uncachedP50(t time.Time) time.Duration {
	var ds []time.Duration
	for _, r := range l.since(t) {
		if r.ok() && !r.cached {
			ds = append(ds, r.end.Sub(r.start))
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
