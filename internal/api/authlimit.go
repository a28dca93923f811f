package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket (golang.org/x/time/rate) per key (a
// client IP or an e-mail address), bounded to max keys: when full, buckets
// idle long enough to be full again are dropped, and if none is, the
// oldest half goes (an attacker cycling keys gets fresh buckets, which the
// other scope still limits).
type keyedLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(perSecond float64, burst, max int) *keyedLimiter {
	if burst < 1 {
		burst = 1
	}
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, buckets: map[string]*bucket{}}
}

// allow takes a token for key at now; when none is left it returns false
// and how long until one is.
func (l *keyedLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *keyedLimiter) evict(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > refill {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	// Nothing idle: drop the older half.
	var cut time.Time
	times := make([]time.Time, 0, len(l.buckets))
	for _, b := range l.buckets {
		times = append(times, b.last)
	}
	cut = medianTime(times)
	for k, b := range l.buckets {
		if !b.last.After(cut) {
			delete(l.buckets, k)
		}
	}
}

func medianTime(ts []time.Time) time.Time {
	slices.SortFunc(ts, time.Time.Compare)
	return ts[len(ts)/2]
}

// tooMany is the 429 of a refused sign-in attempt, with Retry-After.
type tooMany struct{ retry time.Duration }

func rateLimited(retry time.Duration) HTTPError {
	return HTTPError{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
		Msg: "too many sign-in attempts; try again later", Err: tooMany{retry}}
}

func (t tooMany) Error() string { return "rate limited for " + t.retry.String() }

// retryAfterSeconds rounds a delay up to whole seconds (at least 1).
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientIP is the request's source address (X-Forwarded-For is not
// trusted), IPv6 reduced to its /64 as the edge's limiter does.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
