package store

import (
	"fmt"
	"time"
)

// Incident is a span of time during which the uptime probes saw a site
// down (package uptime): opened at the first failed probe, closed at the
// first probe that saw the site up again. Ended is nil while it is open.
type Incident struct {
	ID   int64  `json:"id"`
	Site string `json:"site"`
	// Started is the time of the first probe that failed; Ended that of
	// the first that succeeded afterwards (nil: still open).
	Started time.Time  `json:"started"`
	Ended   *time.Time `json:"ended,omitempty"`
	// Cause is what the first failed probe saw ("HTTP 503", "no
	// WordPress page in the body", "timeout"): safe to show the public.
	Cause string `json:"cause"`
}

// Duration is how long the incident lasted, until now when it is open.
func (i Incident) Duration(now time.Time) time.Duration {
	end := now
	if i.Ended != nil {
		end = *i.Ended
	}
	return max(end.Sub(i.Started), 0)
}

// IncidentListOptions selects incidents.
type IncidentListOptions struct {
	// Sites, when not nil, keeps only these sites' incidents (an empty,
	// non-nil slice selects none).
	Sites []string
	// OpenOnly keeps only the incidents not closed yet.
	OpenOnly bool
	// From and To, when not zero, keep only the incidents that overlap
	// [From, To): started before To, and still open or ended after From.
	From, To time.Time
	// AfterID pages: only incidents with a greater ID.
	AfterID int64
	// Limit is at most this many (default 100, max MaxIncidentList).
	Limit int
}

// MaxIncidentList bounds one page of ListIncidents.
const MaxIncidentList = 10_000

// MaxIncidentCause bounds an incident's Cause.
const MaxIncidentCause = 200

// ValidateOpenIncident checks OpenIncident's arguments (for
// implementations).
func ValidateOpenIncident(site string, at time.Time, cause string) error {
	if site == "" || len(site) > 253 || at.IsZero() || len(cause) > MaxIncidentCause {
		return fmt.Errorf("%w: incident of site %q at %v, cause of %d bytes", ErrInvalid, site, at, len(cause))
	}
	return nil
}

// ValidateIncidentList checks and defaults ListIncidents' options (for
// implementations).
func ValidateIncidentList(opts *IncidentListOptions) error {
	if opts.Limit < 0 || opts.Limit > MaxIncidentList || opts.AfterID < 0 {
		return fmt.Errorf("%w: incident list limit %d (at most %d), after %d", ErrInvalid, opts.Limit, MaxIncidentList, opts.AfterID)
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && !opts.From.Before(opts.To) {
		return fmt.Errorf("%w: incident list from %v is not before to %v", ErrInvalid, opts.From, opts.To)
	}
	if opts.Limit == 0 {
		opts.Limit = 100
	}
	return nil
}
