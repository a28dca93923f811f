package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/edge"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestPerIPBucket(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	var limited []string
	l := New(Config{IPRate: 2, IPBurst: 3, Now: clk.Now, OnLimited: func(site, scope string) { limited = append(limited, site+"/"+scope) }})
	h := l.Middleware(func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error { return nil })
	rt := &edge.Route{Site: "blog.localhost"}
	call := func(addr string) (error, http.Header) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		return h(w, r, rt), w.Header()
	}
	for i := range 3 {
		if err, _ := call("127.0.0.1:1000"); err != nil {
			t.Fatalf("request %d within burst: %v", i, err)
		}
	}
	err, hdr := call("127.0.0.1:1001") // another port, same client
	var he *edge.HTTPError
	if !errors.As(err, &he) || he.Status != 429 {
		t.Fatalf("4th request: %v", err)
	}
	if hdr.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1 (2 req/s)", hdr.Get("Retry-After"))
	}
	if err, _ := call("127.0.0.2:1000"); err != nil {
		t.Errorf("another client was limited: %v", err)
	}
	clk.add(500 * time.Millisecond) // one token back
	if err, _ := call("127.0.0.1:1000"); err != nil {
		t.Errorf("after refill: %v", err)
	}
	if err, _ := call("127.0.0.1:1000"); err == nil {
		t.Error("refilled more than one token")
	}
	if fmt.Sprint(limited) != "[blog.localhost/ip blog.localhost/ip]" {
		t.Errorf("OnLimited calls = %v", limited)
	}
}

func TestPerSiteBucket(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	l := New(Config{SiteRate: 0.1, SiteBurst: 2, Now: clk.Now})
	for i, c := range []string{"10.0.0.1", "10.0.0.2"} {
		if d, scope := l.Allow(c, "a"); scope != "" {
			t.Fatalf("request %d: %s %v", i, scope, d)
		}
	}
	d, scope := l.Allow("10.0.0.3", "a")
	if scope != ScopeSite || d != 10*time.Second {
		t.Errorf("third request to a: scope %q wait %v, want site 10s", scope, d)
	}
	if _, scope := l.Allow("10.0.0.3", "b"); scope != "" {
		t.Error("site b limited by a's traffic")
	}
}

func TestOff(t *testing.T) {
	l := New(Config{})
	if l.Enabled() {
		t.Fatal("zero config enabled")
	}
	for range 1000 {
		if _, scope := l.Allow("1.2.3.4", "a"); scope != "" {
			t.Fatal("limited while off")
		}
	}
}

func TestBoundedMaps(t *testing.T) {
	l := New(Config{IPRate: 1, SiteRate: 1, MaxEntries: 100})
	for i := range 10_000 {
		l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("s%d", i))
	}
	if n := l.ips.len(); n != 100 {
		t.Errorf("ip buckets = %d, want 100", n)
	}
	if n := l.sites.len(); n != 100 {
		t.Errorf("site buckets = %d, want 100", n)
	}
	// The most recent client kept its bucket (burst 2, one token used).
	l.Allow("10.0.39.15", "x")
	if _, scope := l.Allow("10.0.39.15", "y"); scope != ScopeIP {
		t.Errorf("recent client's bucket was lost: %q", scope)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":            "127.0.0.1",
		"[::ffff:10.0.0.1]:1":       "10.0.0.1",
		"[2001:db8:1:2:3::4]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:80": "2001:db8:1:2::/64",
		"garbage":                   "garbage",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// Exempt requests pass whatever the buckets hold and take nothing from
// them.
func TestExempt(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	l := New(Config{IPRate: 1, IPBurst: 1, SiteRate: 1, SiteBurst: 1, Now: clk.Now,
		Exempt: func(r *http.Request) bool { return r.Header.Get("X-Test-Exempt") != "" }})
	h := l.Middleware(func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error { return nil })
	rt := &edge.Route{Site: "blog.localhost"}
	call := func(exempt bool) error {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:1000"
		if exempt {
			r.Header.Set("X-Test-Exempt", "1")
		}
		return h(httptest.NewRecorder(), r, rt)
	}
	for i := range 3 {
		if err := call(true); err != nil {
			t.Fatalf("exempt request %d: %v", i, err)
		}
	}
	if err := call(false); err != nil {
		t.Errorf("first visitor request after exempt ones: %v", err)
	}
	if err := call(false); err == nil {
		t.Error("second visitor request within a burst of 1 passed")
	}
	if err := call(true); err != nil {
		t.Errorf("exempt request with empty buckets: %v", err)
	}
}
