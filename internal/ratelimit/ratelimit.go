// Package ratelimit is the edge's rate limiter: an edge.Middleware with a
// token bucket (golang.org/x/time/rate) per client IP and one per site.
// The buckets live in LRU-bounded maps, so a flood of distinct addresses
// evicts the least recently seen buckets instead of growing memory.
//
// The client IP is the connection's remote address (X-Forwarded-For is not
// trusted); IPv6 clients are limited per /64, the smallest block a single
// host usually gets. Loopback clients are limited like any other.
package ratelimit

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/aipress/aipress/internal/edge"
)

// Defaults of the platform (requests per second and burst).
const (
	DefaultIPRate    = 50
	DefaultIPBurst   = 100
	DefaultSiteRate  = 500
	DefaultSiteBurst = 1000
	// DefaultMaxEntries bounds each map of buckets.
	DefaultMaxEntries = 100_000
)

// Scopes of a refusal, as passed to OnLimited.
const (
	ScopeIP   = "ip"
	ScopeSite = "site"
)

// Config configures a Limiter. A rate of zero or less turns that scope off.
type Config struct {
	IPRate    float64 // requests per second per client IP
	IPBurst   int     // zero: twice IPRate (at least 1)
	SiteRate  float64 // requests per second per site
	SiteBurst int     // zero: twice SiteRate (at least 1)
	// MaxEntries bounds each map of buckets. Zero: DefaultMaxEntries.
	MaxEntries int
	// OnLimited is called for every refused request (for metrics).
	OnLimited func(site, scope string)
	// Exempt, if set, marks requests the middleware neither counts nor
	// refuses (the edge's own uptime probes).
	Exempt func(*http.Request) bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg   Config
	ips   *lru
	sites *lru
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	cfg.IPBurst = burst(cfg.IPRate, cfg.IPBurst)
	cfg.SiteBurst = burst(cfg.SiteRate, cfg.SiteBurst)
	l := &Limiter{cfg: cfg}
	if cfg.IPRate > 0 {
		l.ips = newLRU(cfg.MaxEntries, rate.Limit(cfg.IPRate), cfg.IPBurst)
	}
	if cfg.SiteRate > 0 {
		l.sites = newLRU(cfg.MaxEntries, rate.Limit(cfg.SiteRate), cfg.SiteBurst)
	}
	return l
}

func burst(r float64, b int) int {
	if b > 0 {
		return b
	}
	return max(1, int(2*r))
}

// Enabled reports whether any scope limits.
func (l *Limiter) Enabled() bool { return l.ips != nil || l.sites != nil }

// Middleware is the edge middleware: a request over either limit gets 429
// with Retry-After, and never reaches the layers after it.
func (l *Limiter) Middleware(next edge.RouteHandler) edge.RouteHandler {
	return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
		if l.cfg.Exempt != nil && l.cfg.Exempt(r) {
			return next(w, r, rt)
		}
		if wait, scope := l.Allow(clientKey(r.RemoteAddr), rt.Site); scope != "" {
			if l.cfg.OnLimited != nil {
				l.cfg.OnLimited(rt.Site, scope)
			}
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
			msg := "Too many requests from your address. Please slow down."
			if scope == ScopeSite {
				msg = "This site is receiving too many requests. Please try again shortly."
			}
			return &edge.HTTPError{Status: http.StatusTooManyRequests, Message: msg}
		}
		return next(w, r, rt)
	}
}

// Allow takes a token for client and site. When a bucket is empty it
// returns how long until one is available and the scope that refused
// ("" when allowed). The IP bucket is checked first, so a refused client
// uses none of its site's tokens.
func (l *Limiter) Allow(client, site string) (time.Duration, string) {
	now := l.cfg.Now()
	if l.ips != nil {
		if d, ok := take(l.ips.get(client), now); !ok {
			return d, ScopeIP
		}
	}
	if l.sites != nil {
		if d, ok := take(l.sites.get(site), now); !ok {
			return d, ScopeSite
		}
	}
	return 0, ""
}

func take(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	if lim.AllowN(now, 1) {
		return 0, true
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return d, false
}

// clientKey is the remote IP, or its /64 for IPv6.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// lru is a bounded map of limiters, least recently used evicted first.
type lru struct {
	mu    sync.Mutex
	max   int
	limit rate.Limit
	burst int
	order *list.List // of *entry, front = most recent
	items map[string]*list.Element
}

type entry struct {
	key string
	lim *rate.Limiter
}

func newLRU(n int, limit rate.Limit, burst int) *lru {
	return &lru{max: n, limit: limit, burst: burst, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *lru) get(key string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry).lim
	}
	if c.order.Len() >= c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*entry).key)
	}
	lim := rate.NewLimiter(c.limit, c.burst)
	c.items[key] = c.order.PushFront(&entry{key: key, lim: lim})
	return lim
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
