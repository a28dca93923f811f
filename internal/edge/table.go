package edge

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// RouteState says what the edge does with requests for a route's host.
// The zero value is Unavailable, so a half-filled Route never serves.
type RouteState uint8

// Route states.
const (
	Unavailable RouteState = iota // not ready yet, or failing: 503 "not available yet"
	Serving                       // static files from Docroot, PHP via Endpoint
	Suspended                     // 503 maintenance page
	// ShardDown: the site's shard stopped heartbeating; 503 with
	// Retry-After until it returns (never another site's content).
	ShardDown
)

// String returns the state's name.
func (s RouteState) String() string {
	switch s {
	case Serving:
		return "Serving"
	case Suspended:
		return "Suspended"
	case ShardDown:
		return "ShardDown"
	default:
		return "Unavailable"
	}
}

// Route maps one host name to one site. Docroot is the absolute directory
// static files are served from (and the path php-fpm sees); Endpoint is the
// site's FastCGI pool on this machine, "unix:/path/to.sock". Gateway, when
// set, is the host:port of the gateway of the site's shard Shard on another
// machine (gateway.go): Docroot is then on that machine, not this one, and
// static files, try_files decisions and FastCGI all go through the gateway
// over mutual TLS, which must prove it is Shard. The caller derives these
// from where the site lives (see internal/platform), never from a shard's
// report.
type Route struct {
	Host     string
	Site     string
	Docroot  string
	Endpoint string
	Gateway  string
	Shard    string
	State    RouteState
	Options  RouteOptions
}

// Location is where a site's files and pool are, for RouteForSite: on this
// machine (Docroot and Endpoint), or behind a shard's gateway (Docroot on
// the shard's machine, Gateway and Shard). The zero Location leaves the
// route Unavailable.
type Location struct {
	Docroot, Endpoint, Gateway, Shard string
}

// RouteOptions are the site's edge policies, read by the middlewares.
type RouteOptions struct {
	CacheTTL      time.Duration // 0: no page cache
	WAFMode       string        // site.WAFOff, WAFDetect or WAFBlock
	WAFParanoia   int           // 1–4
	HTTPSRedirect bool
	// WritesFrozen: the site is being moved between shards; requests
	// that may write (any method but GET, HEAD and OPTIONS) get 503 with
	// Retry-After until the switch.
	WritesFrozen bool
	// WAFExclusions are the site's WAF rule exclusions, nil when it has
	// none (read-only; a pointer keeps RouteOptions comparable).
	WAFExclusions *[]site.WAFExclusion
}

// RouteForSite derives the route for s from its spec and observed status
// and where it lives (loc): Serving only when the shard reports it Ready and
// loc says where to reach it, Suspended when the spec or the phase says so,
// Unavailable otherwise.
func RouteForSite(s *site.Site, loc Location) Route {
	host := s.Spec.Domain
	if host == "" {
		host = s.Metadata.Name
	}
	spec := s.Spec
	spec.Defaults()
	r := Route{
		Host:     host,
		Site:     s.Metadata.Name,
		Docroot:  loc.Docroot,
		Endpoint: loc.Endpoint,
		Gateway:  loc.Gateway,
		Shard:    loc.Shard,
		Options: RouteOptions{
			CacheTTL:      time.Duration(spec.Cache.TTLSeconds) * time.Second,
			WAFMode:       spec.WAF.Mode,
			WAFParanoia:   spec.WAF.ParanoiaLevel,
			HTTPSRedirect: spec.HTTPSRedirect,
			WritesFrozen:  s.Move.Frozen(),
		},
	}
	if ex := spec.WAF.Exclusions; len(ex) > 0 {
		r.Options.WAFExclusions = &ex
	}
	switch {
	case s.Spec.Suspended || s.Status.Phase == site.PhaseSuspended || maintenance(s):
		r.State = Suspended
	case s.Status.Phase == site.PhaseReady && loc.Docroot != "" && (loc.Endpoint != "" || loc.Gateway != "" && loc.Shard != ""):
		r.State = Serving
	default:
		r.State = Unavailable
	}
	return r
}

// maintenance reports whether the shard has put the site into maintenance
// (an in-place restore).
func maintenance(s *site.Site) bool {
	c := s.Status.Condition(site.CondMaintenance)
	return c != nil && c.Status == "True"
}

// Table is an immutable host → route index. Build a new one with NewTable
// and install it with (*Server).SetTable; never modify a Table (or a *Route
// it returned) after it has been handed to a Server.
type Table struct {
	routes []Route
	byHost map[string]*Route
}

// NewTable indexes routes by lower-cased host (a trailing dot is dropped).
// Routes with an empty host are ignored; on duplicate hosts the last wins.
// The slice is copied, so the caller may reuse it.
func NewTable(routes []Route) *Table {
	t := &Table{
		routes: make([]Route, len(routes)),
		byHost: make(map[string]*Route, len(routes)),
	}
	copy(t.routes, routes)
	for i := range t.routes {
		r := &t.routes[i]
		r.Host = strings.TrimSuffix(strings.ToLower(r.Host), ".")
		if r.Docroot != "" {
			r.Docroot = filepath.Clean(r.Docroot)
		}
		if r.Host == "" {
			continue
		}
		t.byHost[r.Host] = r
	}
	return t
}

// Len returns the number of distinct hosts in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byHost)
}

// Lookup finds the route for a Host header value: the port (if any) is
// stripped, the name lower-cased and a trailing dot trimmed. It does not
// allocate when host is already lower-case. The returned Route is shared and
// must not be modified. A nil Table has no routes.
func (t *Table) Lookup(host string) (*Route, bool) {
	if t == nil {
		return nil, false
	}
	h := normalizeHost(host)
	if h == "" {
		return nil, false
	}
	r, ok := t.byHost[h]
	return r, ok
}

// normalizeHost returns host without port, without trailing dot, lower-cased.
func normalizeHost(host string) string {
	host = stripPort(host)
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// stripPort removes a ":port" suffix, keeping bracketed IPv6 literals intact
// ("[::1]:8080" → "[::1]").
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return host
	}
	if strings.IndexByte(host, ']') > i { // colon inside an IPv6 literal, no port
		return host
	}
	if host[0] != '[' && strings.IndexByte(host[:i], ':') >= 0 {
		return host // bare IPv6 address without brackets: no port to strip
	}
	return host[:i]
}

// Routes returns a copy of the table's routes, one per site (the uptime
// probes' targets).
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.routes)
}
