package pagecache

import (
	"container/list"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBytes             = 256 << 20
	DefaultMaxObjectBytes       = 8 << 20
	DefaultStaleWhileRevalidate = 60 * time.Second
	DefaultStaleIfError         = 10 * time.Minute
	DefaultFillTimeout          = 60 * time.Second
	// passTTL caps how long a key whose response was not storable skips
	// coalescing (hit-for-miss).
	passTTL = 30 * time.Second
	// entryOverhead approximates the bookkeeping bytes of one entry.
	entryOverhead = 256
)

// Config configures a Cache. The zero value is usable.
type Config struct {
	// MaxBytes is the memory budget for all sites (keys, headers and
	// bodies); least recently used entries are evicted beyond it.
	MaxBytes int64
	// MaxObjectBytes is the largest response stored; larger ones stream
	// through uncached.
	MaxObjectBytes int64
	// StaleWhileRevalidate is how long after expiry an entry is still
	// served (X-Cache: STALE) while one background request refreshes it.
	// Negative disables it.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long after expiry an entry is served when PHP
	// fails (error or 5xx). Negative disables it.
	StaleIfError time.Duration
	// FillTimeout bounds an upstream request that outlives its visitor: a
	// fill whose visitor left (others may wait for it) and background
	// refreshes.
	FillTimeout time.Duration
	// CacheFeeds lets feeds and sitemaps be cached.
	CacheFeeds bool
	// Peek, if set, marks requests that must see PHP's failures: a
	// fresh page (or one within StaleWhileRevalidate) answers them, and
	// on a miss PHP does and its page is stored as a visitor's would be,
	// but no stale page hides a failure (StaleIfError). The uptime probes
	// are such: an idle site's probe runs PHP once per cache TTL rather
	// than once a minute (and keeps a php-fpm worker alive for its idle
	// timeout each time).
	Peek func(*http.Request) bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives upstream failures hidden by stale pages. Nil discards.
	Logger *slog.Logger
}

// Cache is an in-memory full-page cache shared by all sites of an edge.
// It is safe for concurrent use.
type Cache struct {
	maxBytes, maxObject int64
	swr, sie            time.Duration
	fillTimeout         time.Duration
	cacheFeeds          bool
	peek                func(*http.Request) bool
	now                 func() time.Time
	log                 *slog.Logger

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used first
	entries map[string]*entry
	sites   map[string]*siteIndex
	flights map[string]*flight
	refresh map[string]bool // keys being refreshed in the background
	bytes   int64
	gen     uint64 // last generation handed out (global, so never reused)

	bg sync.WaitGroup // background refreshes (tests wait on it)
	// onWait, if set, is called when a request starts waiting for
	// another's fill (tests).
	onWait func()
}

var _ edge.Purger = (*Cache)(nil)

// entry is one stored response, or a hit-for-miss marker (pass).
type entry struct {
	key, site, resource string
	status              int
	header              http.Header
	body                []byte
	gz                  []byte   // gzip variant of body (precompress); nil: none
	length, gzLength    []string // Content-Length values of body and gz, shared by every hit
	tags                []string
	stored              time.Time
	ttl                 time.Duration
	size                int64
	pass                bool
	elem                *list.Element // nil once removed
}

func (e *entry) age(now time.Time) time.Duration { return max(now.Sub(e.stored), 0) }

// siteIndex finds a site's entries by tag and by resource (path and query
// without scheme and host) for purges. It is never deleted, so that its
// generation never goes back.
type siteIndex struct {
	gen       uint64
	all       map[*entry]struct{}
	tags      map[string]map[*entry]struct{}
	resources map[string]map[*entry]struct{}
}

// flight is one upstream request others wait for.
type flight struct {
	done chan struct{}
	res  fillResult
}

// Stats is a snapshot of the cache's size.
type Stats struct {
	Entries int   // stored pages (hit-for-miss markers included)
	Bytes   int64 // accounted bytes
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	c := &Cache{
		maxBytes: cfg.MaxBytes, maxObject: cfg.MaxObjectBytes,
		swr: cfg.StaleWhileRevalidate, sie: cfg.StaleIfError, fillTimeout: cfg.FillTimeout,
		cacheFeeds: cfg.CacheFeeds, peek: cfg.Peek, now: cfg.Clock, log: cfg.Logger,
		lru: list.New(), entries: map[string]*entry{}, sites: map[string]*siteIndex{},
		flights: map[string]*flight{}, refresh: map[string]bool{},
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxObject <= 0 {
		c.maxObject = DefaultMaxObjectBytes
	}
	if c.maxObject > c.maxBytes {
		c.maxObject = c.maxBytes
	}
	switch {
	case c.swr == 0:
		c.swr = DefaultStaleWhileRevalidate
	case c.swr < 0:
		c.swr = 0
	}
	switch {
	case c.sie == 0:
		c.sie = DefaultStaleIfError
	case c.sie < 0:
		c.sie = 0
	}
	if c.fillTimeout <= 0 {
		c.fillTimeout = DefaultFillTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats returns the number of entries and the bytes they account for.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Entries: len(c.entries), Bytes: c.bytes}
}

func (c *Cache) siteLocked(site string) *siteIndex {
	idx := c.sites[site]
	if idx == nil {
		idx = &siteIndex{gen: c.gen, all: map[*entry]struct{}{}, tags: map[string]map[*entry]struct{}{},
			resources: map[string]map[*entry]struct{}{}}
		c.sites[site] = idx
	}
	return idx
}

// generation returns the site's current generation.
func (c *Cache) generation(site string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.siteLocked(site).gen
}

// lookupLocked returns the entry for key unless it is past every window
// (then it is removed), marking it recently used.
func (c *Cache) lookupLocked(key string, now time.Time) *entry {
	e := c.entries[key]
	if e == nil {
		return nil
	}
	limit := e.ttl
	if !e.pass {
		limit += max(c.swr, c.sie)
	}
	if e.age(now) >= limit {
		c.removeLocked(e)
		return nil
	}
	c.lru.MoveToFront(e.elem)
	return e
}

// store inserts e if site's generation is still gen; it reports whether it
// did.
func (c *Cache) store(e *entry, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.siteLocked(e.site)
	if idx.gen != gen || e.size > c.maxBytes {
		return false
	}
	if old := c.entries[e.key]; old != nil {
		c.removeLocked(old)
	}
	for c.bytes+e.size > c.maxBytes {
		back := c.lru.Back()
		if back == nil {
			break
		}
		c.removeLocked(back.Value.(*entry))
	}
	e.elem = c.lru.PushFront(e)
	c.entries[e.key] = e
	c.bytes += e.size
	idx.all[e] = struct{}{}
	addTo(idx.resources, e.resource, e)
	for _, t := range e.tags {
		addTo(idx.tags, t, e)
	}
	return true
}

func addTo(m map[string]map[*entry]struct{}, k string, e *entry) {
	s := m[k]
	if s == nil {
		s = map[*entry]struct{}{}
		m[k] = s
	}
	s[e] = struct{}{}
}

func removeFrom(m map[string]map[*entry]struct{}, k string, e *entry) {
	if s := m[k]; s != nil {
		delete(s, e)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

func (c *Cache) removeLocked(e *entry) {
	if e.elem == nil {
		return
	}
	c.lru.Remove(e.elem)
	e.elem = nil
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	c.bytes -= e.size
	if idx := c.sites[e.site]; idx != nil {
		delete(idx.all, e)
		removeFrom(idx.resources, e.resource, e)
		for _, t := range e.tags {
			removeFrom(idx.tags, t, e)
		}
	}
}

// purgeLocked removes the entries of set, bumps the site's generation (so
// fills running now do not store what they rendered before the purge) and
// returns how many pages it removed.
func (c *Cache) purgeLocked(idx *siteIndex, set map[*entry]struct{}) int {
	c.gen++
	idx.gen = c.gen
	n := 0
	for e := range set {
		if !e.pass {
			n++
		}
		c.removeLocked(e)
	}
	return n
}

// PurgeURL removes the pages of site for rawURL under every scheme, port
// and host of the site, and every normalisation of its query (tracking
// parameters, order). rawURL may also be a path ("/hello-world/?p=1").
func (c *Cache) PurgeURL(site, rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		c.log.Warn("pagecache: purge of unparsable URL", "site", site, "url", rawURL, "err", err)
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.siteLocked(site)
	return c.purgeLocked(idx, clone(idx.resources[resourceKey(u)]))
}

// PurgeTag removes every page of site tagged with tag.
func (c *Cache) PurgeTag(site, tag string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.siteLocked(site)
	return c.purgeLocked(idx, clone(idx.tags[tag]))
}

// PurgeSite removes every page of site.
func (c *Cache) PurgeSite(site string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.siteLocked(site)
	return c.purgeLocked(idx, clone(idx.all))
}

func clone(s map[*entry]struct{}) map[*entry]struct{} {
	out := make(map[*entry]struct{}, len(s))
	for e := range s {
		out[e] = struct{}{}
	}
	return out
}
