// Package siteclone builds the record of a clone: a new site the shard
// creates from a snapshot of another (spec.source) instead of installing
// WordPress. The API's restore into a new domain and a staged update's
// staging site (package rollout) both make their clones here; the caller
// places and stores the result.
package siteclone

import (
	"maps"
	"time"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
)

// Request is what a clone is made of.
type Request struct {
	// Spec is the spec to clone (a snapshot's, or a site's current one);
	// it is copied, not changed.
	Spec site.Spec
	// Snapshot is the snapshot ref the shard restores; FromSite and
	// FromURL the site it was taken of and that site's URL then ("": the
	// shard reads it from the snapshot).
	Snapshot, FromSite, FromURL string
	// At, if set, makes the clone a point-in-time restore: the shard
	// replays the source site's database log after Snapshot up to At
	// (site.Source.At).
	At *time.Time
	// Domain (the clone's name), UID, Org, Labels and Now (its creation
	// time) make its metadata.
	Domain, UID, Org string
	Labels           map[string]string
	Now              time.Time
	// Shard is where it goes ("": placement decides), URL its public URL.
	Shard, URL string
}

// New returns the clone's site record (Pending): the spec with the new
// domain, not suspended, the snapshot as its source, and what its plan in
// set gives today (not the limits the snapshot recorded; an unknown plan
// takes the default).
func New(r Request, set *plans.Set) *site.Site {
	spec := r.Spec
	spec.Domain = r.Domain
	spec.Suspended, spec.SuspendedBy = false, ""
	spec.Source = &site.Source{Snapshot: r.Snapshot, FromSite: r.FromSite, FromURL: r.FromURL}
	if r.At != nil {
		at := r.At.UTC()
		spec.Source.At = &at
	}
	if p, ok := set.Get(spec.Plan); ok {
		p.Apply(&spec)
	} else {
		set.Default().Apply(&spec)
	}
	spec.Defaults()
	return &site.Site{
		Metadata: site.Metadata{Name: r.Domain, UID: r.UID, Org: r.Org, Labels: maps.Clone(r.Labels), CreatedAt: r.Now.UTC()},
		Spec:     spec,
		Status:   site.Status{Phase: site.PhasePending, Shard: r.Shard, URL: r.URL},
	}
}
