// Package uptime measures whether sites are up and what that is worth
// against their plan: synthetic probes from the edge (Prober), the
// control plane's bookkeeping of incidents from the probes' results
// (Record), the monthly SLA report per site and per plan (Report), and
// the public status pages (StatusPage, PlatformPage).
//
// A probe is a GET of the site's home page served by the edge's own
// handler in process, as a visitor over HTTPS would get it (a cached page,
// WAF and PHP included, the HTTPS redirect not), marked (IsProbe) so that
// it counts for neither the site's bandwidth, its traffic nor the rate
// limits, and is never answered with a stale page when PHP fails; like a
// visitor's, its page is stored in the page cache, so an idle site's PHP
// runs once per cache TTL, not once a minute. It passes when the
// answer is 200 and its body is WordPress's page (Check: a marker of
// WordPress's markup, so that an error page answered with 200 fails);
// redirects within the platform are followed. A site is reported down
// after Failures failed probes in a row, dated at the first of them; up
// at the first probe that passes.
//
// # Probes at scale
//
// With Config.Peers set, each site is probed by one edge
// per round: the live edge with the highest rendezvous score for the site
// (Assign; highest random weight hashing over the edges' names), so every
// edge computes the same assignment from the same list, and when an edge
// joins or leaves only the sites it gains or held move (about 1/n of
// them). An edge missing from its own Peers list (it is not registered,
// or the list is stale) probes every site, as does an edge without Peers.
// A round spreads its probes evenly over the interval: the edge's sites
// in the order of their hash, the i-th of n started i×Interval/n after the
// round began (at most Parallel at once), so a round of 50,000 sites does
// not probe them in one burst.
//
// The round loop and the in-process response recorder are written here:
// no library probes an http.Handler in process, and a recorder that keeps
// only the head of the body is a few lines (net/http/httptest keeps all
// of it and is meant for tests).
package uptime

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultInterval is how often each site is probed.
const DefaultInterval = time.Minute

// DefaultFailures is how many failed probes in a row make a site down.
const DefaultFailures = 2

// DefaultTimeout bounds one probe.
const DefaultTimeout = 10 * time.Second

// maxBody is how much of a body Check sees.
const maxBody = 512 << 10

// maxRedirects bounds the redirects one probe follows.
const maxRedirects = 3

// Markers are what Check looks for in a page: WordPress's paths in its
// markup, or its generator tag. Its error pages ("Error establishing a
// database connection", wp_die) carry none of them.
var Markers = []string{"/wp-content/", "/wp-includes/", `content="WordPress`}

// Check returns why an answer is not WordPress's page ("" when it is).
func Check(status int, body []byte) string {
	if status != http.StatusOK {
		return fmt.Sprintf("HTTP %d", status)
	}
	for _, m := range Markers {
		if bytes.Contains(body, []byte(m)) {
			return ""
		}
	}
	return "HTTP 200 without a WordPress page"
}

// Target is a site to probe and the host it answers on.
type Target struct {
	Site, Host string
}

// Result is a site's state as the probes see it.
type Result struct {
	Site string `json:"site"`
	Up   bool   `json:"up"`
	// At is the time of the probe that passed (Up), or of the first
	// failed probe of the run that made the site down.
	At time.Time `json:"at"`
	// Cause is what the first failed probe saw (when not Up).
	Cause string `json:"cause,omitempty"`
}

// Config configures a Prober.
type Config struct {
	// Handler serves the probes: the edge (required).
	Handler http.Handler
	// Targets returns the sites to probe in a round (required).
	Targets func() []Target
	// Send reports a round's results to the control plane (required).
	// Results that could not be sent are sent again with the next round
	// unless a newer one replaced them.
	Send func(ctx context.Context, results []Result) error
	// Interval between rounds (default DefaultInterval); Failures and
	// Timeout: DefaultFailures, DefaultTimeout.
	Interval time.Duration
	Failures int
	Timeout  time.Duration
	// Parallel is how many probes run at once (default 4).
	Parallel int
	// Peers returns this edge's name and the names of the live edges
	// that probe (self among them), read at every round: each site is
	// probed by the one Assign picks. Without Peers, or when its list
	// does not hold self (an edge that does not know its name or the
	// list yet), this edge probes every site.
	Peers func() (self string, edges []string)
	Clock func() time.Time
	// After waits for a duration (default time.After): the spreading of a
	// round's probes. Tests inject one that moves their Clock.
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger
}

// Prober probes sites in rounds. Only Run's goroutine uses its state.
type Prober struct {
	cfg Config
	// state per site: failures in a row and when the run began; the
	// last state reported (sent) and the results not sent yet.
	fails   map[string]int
	since   map[string]time.Time
	cause   map[string]string
	sent    map[string]bool // site → up, as last sent
	pending map[string]Result
}

// New returns a Prober.
func New(cfg Config) *Prober {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Failures <= 0 {
		cfg.Failures = DefaultFailures
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Prober{cfg: cfg, fails: map[string]int{}, since: map[string]time.Time{}, cause: map[string]string{},
		sent: map[string]bool{}, pending: map[string]Result{}}
}

// Run probes every Interval until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.Round(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("uptime report not sent; kept for the next round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Assign returns which of edges probes site: the one with the highest
// rendezvous score (hash of edge and site), "" when edges is empty. Every
// edge computes the same answer from the same list, in any order.
func Assign(site string, edges []string) string {
	best, bestScore := "", uint64(0)
	for _, e := range edges {
		if sc := score(e, site); best == "" || sc > bestScore || sc == bestScore && e < best {
			best, bestScore = e, sc
		}
	}
	return best
}

// score is edge's rendezvous weight for site: FNV-1a of both, mixed by
// splitmix64's finaliser (FNV alone scores similar names alike).
func score(edge, site string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(edge))
	h.Write([]byte{0})
	h.Write([]byte(site))
	return mix(h.Sum64())
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// mine returns the targets this edge probes in a round, in the order of
// their site's hash (the order of the round's schedule).
func (p *Prober) mine(targets []Target) []Target {
	var self string
	var peers []string
	if p.cfg.Peers != nil {
		self, peers = p.cfg.Peers()
	}
	var out []Target
	if self != "" && slices.Contains(peers, self) {
		out = make([]Target, 0, len(targets)/len(peers)+1)
		for _, t := range targets {
			if Assign(t.Site, peers) == self {
				out = append(out, t)
			}
		}
	} else {
		out = slices.Clone(targets)
	}
	slices.SortFunc(out, func(a, b Target) int {
		ha, hb := mix(siteHash(a.Site)), mix(siteHash(b.Site))
		switch {
		case ha < hb:
			return -1
		case ha > hb:
			return 1
		}
		return strings.Compare(a.Site, b.Site)
	})
	return out
}

func siteHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Round probes every target this edge is assigned once, spread over the
// interval (see the package documentation), and sends the results that
// change what the control plane knows: a site that went down or came
// back, and every down site again (so that a control plane that lost a
// report, or a new one, learns it). Sites up all along are sent once, then
// only when they change. It must not run concurrently with itself.
func (p *Prober) Round(ctx context.Context) error {
	targets := p.mine(p.cfg.Targets())
	type outcome struct {
		t     Target
		at    time.Time
		cause string
	}
	out := make([]outcome, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.cfg.Parallel)
	start := p.cfg.Clock()
	for i, t := range targets {
		due := start.Add(time.Duration(int64(p.cfg.Interval) * int64(i) / int64(len(targets))))
		if d := due.Sub(p.cfg.Clock()); d > 0 {
			select {
			case <-ctx.Done():
			case <-p.cfg.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			at := p.cfg.Clock()
			out[i] = outcome{t: t, at: at, cause: p.Probe(ctx, t.Host)}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	seen := make(map[string]bool, len(out))
	for _, o := range out {
		name := o.t.Site
		seen[name] = true
		if o.cause == "" {
			p.fails[name] = 0
			if up, ok := p.sent[name]; !ok || !up {
				p.pending[name] = Result{Site: name, Up: true, At: o.at}
			}
			continue
		}
		if p.fails[name] == 0 {
			p.since[name], p.cause[name] = o.at, o.cause
		}
		p.fails[name]++
		if p.fails[name] >= p.cfg.Failures {
			p.pending[name] = Result{Site: name, At: p.since[name], Cause: p.cause[name]}
		}
	}
	// Sites gone from the table are forgotten.
	for name := range p.fails {
		if !seen[name] {
			delete(p.fails, name)
			delete(p.since, name)
			delete(p.cause, name)
			delete(p.sent, name)
			delete(p.pending, name)
		}
	}
	if len(p.pending) == 0 {
		return nil
	}
	results := make([]Result, 0, len(p.pending))
	for _, r := range p.pending {
		results = append(results, r)
	}
	if err := p.cfg.Send(ctx, results); err != nil {
		return err
	}
	for _, r := range results {
		p.sent[r.Site] = r.Up
	}
	clear(p.pending)
	return nil
}

type probeKey struct{}

// IsProbe reports whether r is an uptime probe (which the edge counts
// for neither bandwidth nor traffic). Visitors cannot make one: the mark
// is a context value, not a header.
func IsProbe(r *http.Request) bool {
	v, _ := r.Context().Value(probeKey{}).(bool)
	return v
}

// Probe asks the handler for host's home page and returns why it failed
// ("" when it passed).
func (p *Prober) Probe(ctx context.Context, host string) string {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, true), p.cfg.Timeout)
	defer cancel()
	u := &url.URL{Scheme: "https", Host: host, Path: "/"}
	for range maxRedirects + 1 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "bad host"
		}
		req.RemoteAddr = "127.0.0.1:0"
		req.TLS = &tls.ConnectionState{} // as over HTTPS: no redirect to it
		req.Header.Set("User-Agent", "AIPress-Uptime/1")
		rec := &recorder{header: http.Header{}}
		p.cfg.Handler.ServeHTTP(rec, req)
		if ctx.Err() != nil {
			return "timeout"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		switch rec.status {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			next, err := u.Parse(rec.header.Get("Location"))
			if err != nil || next.Host == "" {
				return fmt.Sprintf("HTTP %d to a bad location", rec.status)
			}
			u = next
			continue
		}
		return Check(rec.status, rec.body.Bytes())
	}
	return "too many redirects"
}

// recorder is the probes' ResponseWriter: it keeps the status, the
// headers and the first maxBody bytes of the body.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := maxBody - r.body.Len(); room > 0 {
		r.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}
