// Package placement chooses the shard that hosts a new site.
//
// It is pure logic: no I/O and no store. The control plane feeds it the
// shards it knows (their labels, capacity and state) and the sites already
// placed, and asks for a shard for each new site.
//
// # Rules
//
// A shard is eligible for a new site when it is Healthy (or Starting: just
// created by a Provider and not yet up), not Cordoned, not Draining, has
// every label the request's Constraints name with the same value, and holds
// fewer sites than its Capacity (0 means DefaultCapacity, 50). Cordoned
// shards keep their sites but get no new ones; draining shards get none
// either, and are emptied by moving their sites elsewhere (Index.PlanDrain).
//
// Among eligible shards the choice is, in order:
//
//  1. Tenant spread: the shard holding the fewest sites of the request's
//     tenant (ignored when the tenant is empty), so one tenant's sites land on
//     as many shards as possible.
//  2. Headroom: shards below their headroom line ((1-Headroom)×Capacity, see
//     Placer.Headroom) before shards above it.
//  3. Bin-packing: below the line, the shard with the least room left
//     (best fit), so shards fill one by one and a new shard is only needed
//     when all are full; above the line, the shard with the most room left, so
//     the reserved headroom is used up evenly.
//  4. Name, ascending, so that the choice is deterministic.
//
// When no shard is eligible the error wraps ErrNoCapacity (a
// *NoCapacityError says why each shard was excluded); PlaceOrGrow then asks a
// Provider for a new shard labelled with the request's constraints.
//
// Placer.Choose works on a slice of shards the caller builds; Index keeps the
// shards and the placed sites in memory, is safe for concurrent use, and
// places atomically (choose and assign under one lock).
package placement

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// DefaultCapacity is the number of sites a shard holds when its Capacity is 0.
const DefaultCapacity = 50

// Errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrNoCapacity means no shard is eligible for the request: all are
	// full, unhealthy, cordoned, draining or lack a required label. The
	// error is a *NoCapacityError.
	ErrNoCapacity = errors.New("no shard has capacity")
	// ErrUnknownShard means the index holds no shard of that name.
	ErrUnknownShard = errors.New("unknown shard")
	// ErrShardExists means Add was given a name the index already holds.
	ErrShardExists = errors.New("shard already exists")
	// ErrShardNotEmpty means Remove was asked for a shard that still holds
	// sites.
	ErrShardNotEmpty = errors.New("shard still holds sites")
	// ErrAssigned means the site is already assigned to another shard.
	ErrAssigned = errors.New("site already assigned to another shard")
	// ErrInvalid means an argument is unusable (e.g. an empty name).
	ErrInvalid = errors.New("invalid argument")
)

// Shard is what placement knows of one shard.
type Shard struct {
	// Name identifies the shard (unique).
	Name string
	// Labels describe the shard, e.g. region=eu, tier=gold. Requests'
	// constraints are matched against them.
	Labels map[string]string
	// Capacity is the most sites the shard holds; 0 (or less) means
	// DefaultCapacity.
	Capacity int
	// Sites is how many sites the shard holds. The Index counts them
	// itself from Assign and Unassign and ignores this field on input.
	Sites int
	// Cordoned: the shard keeps its sites but gets no new ones.
	Cordoned bool
	// Draining: the shard gets no new sites and its sites are to be moved
	// elsewhere.
	Draining bool
	// Healthy: the shard is up and converging its sites.
	Healthy bool
	// Starting: the shard was just created by a Provider and is not healthy
	// yet. A starting shard is eligible although not Healthy, so that sites
	// created while it comes up wait on it instead of each asking for yet
	// another shard. The Index clears it when an update reports the shard
	// Healthy.
	Starting bool
}

// Cap is the shard's effective capacity: Capacity, or DefaultCapacity when
// Capacity is 0 or less.
func (s Shard) Cap() int {
	if s.Capacity <= 0 {
		return DefaultCapacity
	}
	return s.Capacity
}

// Request asks for a shard for one new site.
type Request struct {
	// Site is the site's name (its domain).
	Site string
	// Tenant owns the site; a tenant's sites are spread over shards. Empty:
	// no spread.
	Tenant string
	// Constraints are labels the shard must have, with these values, e.g.
	// region=eu, tier=gold.
	Constraints map[string]string
}

// Placer holds the placement policy. The zero value is ready to use: no
// headroom.
type Placer struct {
	// Headroom is the fraction of each shard's capacity kept free for as
	// long as another shard has room below its own line. A shard's headroom
	// line is Cap - ceil(Headroom×Cap) sites: with Headroom 0.1 and capacity
	// 50, shards fill to 45 one after the other, and only when every eligible
	// shard holds 45 or more do the remaining 5 slots of each get used (the
	// emptiest first). Headroom never makes a shard full: a shard accepts
	// sites until it holds Cap, and ErrNoCapacity (hence a new shard) only
	// comes when all are at Cap. Values below 0 count as 0; 1 or more puts
	// every shard above its line, which places each site on the emptiest
	// shard (spreading instead of packing).
	Headroom float64
}

// line returns the headroom line of a shard of capacity c: the number of
// sites below which it counts as comfortably below full.
func (p *Placer) line(c int) int {
	h := p.Headroom
	if h <= 0 || math.IsNaN(h) {
		return c
	}
	if h >= 1 {
		return 0
	}
	// The epsilon absorbs float error: 0.1×50 must reserve 5, not 6.
	reserve := int(math.Ceil(h*float64(c) - 1e-9))
	return c - reserve
}

// Choose returns the name of the shard that should host req's site, among
// shards (whose Sites field must be current). tenantSites maps a shard name
// to how many of req.Tenant's sites that shard holds; nil or missing names
// count as 0. When no shard is eligible the error wraps ErrNoCapacity and is
// a *NoCapacityError. Choose does not modify its arguments.
func (p *Placer) Choose(shards []Shard, tenantSites map[string]int, req Request) (string, error) {
	var b best
	for i := range shards {
		s := &shards[i]
		if !eligible(s, s.Sites, req.Constraints) {
			continue
		}
		t := 0
		if req.Tenant != "" {
			t = tenantSites[s.Name]
		}
		c := s.Cap()
		b.consider(s.Name, t, s.Sites, c, p.line(c))
	}
	if b.name == "" {
		nc := newNoCapacity(req)
		for i := range shards {
			nc.count(&shards[i], shards[i].Sites)
		}
		return "", nc
	}
	return b.name, nil
}

// eligible reports whether s, holding sites sites, may take a new site under
// constraints.
func eligible(s *Shard, sites int, constraints map[string]string) bool {
	if !(s.Healthy || s.Starting) || s.Cordoned || s.Draining || sites >= s.Cap() {
		return false
	}
	return matches(s.Labels, constraints)
}

// matches reports whether labels has every constraint's key with its value.
func matches(labels, constraints map[string]string) bool {
	for k, v := range constraints {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// best keeps the best candidate seen so far under the package's ranking.
type best struct {
	name   string
	tenant int  // the tenant's sites on it
	above  bool // at or above its headroom line
	room   int  // Cap - sites
}

// consider offers one eligible shard and reports whether it is now the best.
func (b *best) consider(name string, tenant, sites, capacity, line int) bool {
	above := sites >= line
	room := capacity - sites
	if b.name != "" {
		switch {
		case tenant != b.tenant:
			if tenant > b.tenant {
				return false
			}
		case above != b.above:
			if above {
				return false
			}
		case room != b.room:
			// Below the line: best fit (least room). Above: most room.
			if (room > b.room) != above {
				return false
			}
		case name > b.name:
			return false
		}
	}
	*b = best{name: name, tenant: tenant, above: above, room: room}
	return true
}

// NoCapacityError explains an ErrNoCapacity: how many shards were excluded
// and why. Each shard counts once, under the first reason that applies, in
// the order of the fields.
type NoCapacityError struct {
	Site        string
	Constraints map[string]string
	Shards      int // shards considered
	Unhealthy   int // neither Healthy nor Starting
	Cordoned    int
	Draining    int
	// Unmatched counts shards by the first (in key order) constraint they
	// fail, as "key=value".
	Unmatched map[string]int
	Full      int // at capacity
}

func newNoCapacity(req Request) *NoCapacityError {
	return &NoCapacityError{Site: req.Site, Constraints: req.Constraints}
}

// count files one ineligible shard (eligible ones count only in Shards).
func (e *NoCapacityError) count(s *Shard, sites int) {
	e.Shards++
	switch {
	case !(s.Healthy || s.Starting):
		e.Unhealthy++
	case s.Cordoned:
		e.Cordoned++
	case s.Draining:
		e.Draining++
	default:
		for _, k := range sortedKeys(e.Constraints) {
			v := e.Constraints[k]
			if got, ok := s.Labels[k]; !ok || got != v {
				if e.Unmatched == nil {
					e.Unmatched = map[string]int{}
				}
				e.Unmatched[k+"="+v]++
				return
			}
		}
		if sites >= s.Cap() {
			e.Full++
		}
	}
}

// Error implements error, e.g. `placement: no shard has capacity for site
// "a.example" (constraints region=eu): 5 shards: 2 full, 1 cordoned, 2 not
// region=eu`.
func (e *NoCapacityError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "placement: %s for site %q", ErrNoCapacity, e.Site)
	if len(e.Constraints) > 0 {
		sb.WriteString(" (constraints ")
		sb.WriteString(FormatLabels(e.Constraints))
		sb.WriteString(")")
	}
	if e.Shards == 0 {
		sb.WriteString(": no shards")
		return sb.String()
	}
	fmt.Fprintf(&sb, ": %d shards", e.Shards)
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(e.Full, "full")
	add(e.Unhealthy, "unhealthy")
	add(e.Cordoned, "cordoned")
	add(e.Draining, "draining")
	for _, kv := range sortedKeys(e.Unmatched) {
		add(e.Unmatched[kv], "not "+kv)
	}
	if len(parts) > 0 {
		sb.WriteString(": ")
		sb.WriteString(strings.Join(parts, ", "))
	}
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrNoCapacity) true.
func (e *NoCapacityError) Unwrap() error { return ErrNoCapacity }

// FormatLabels renders labels as "k1=v1,k2=v2" in key order ("" when empty).
func FormatLabels(labels map[string]string) string {
	keys := sortedKeys(labels)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
