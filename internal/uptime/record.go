package uptime

import (
	"context"
	"fmt"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Incidents is the part of the store the control plane keeps incidents
// in (store.Store has it; its contract is store.Store's Incidents
// bullet): at most one open incident per site, opened by OpenIncident
// (idempotent) and closed by CloseIncident (ErrNotFound when none is
// open).
type Incidents interface {
	OpenIncident(ctx context.Context, site string, at time.Time, cause string) (*store.Incident, bool, error)
	CloseIncident(ctx context.Context, site string, at time.Time) (*store.Incident, error)
	ListIncidents(ctx context.Context, opts store.IncidentListOptions) ([]store.Incident, error)
}

// Recorded counts what Record changed.
type Recorded struct {
	Opened int `json:"opened"`
	Closed int `json:"closed"`
}

// Record applies probe results to the incidents: a site reported down
// gets an incident (from the result's At) unless one is open, a site
// reported up has its open incident closed (at the result's At). Times
// after now (an edge's clock ahead of the control plane's) count as now.
// Results are applied in order; Record is idempotent, so a report sent
// twice changes nothing the second time.
func Record(ctx context.Context, st Incidents, results []Result, now time.Time) (Recorded, error) {
	var out Recorded
	if len(results) == 0 {
		return out, nil
	}
	names := make([]string, 0, len(results))
	for _, r := range results {
		names = append(names, r.Site)
	}
	open := map[string]bool{}
	var after int64
	for {
		page, err := st.ListIncidents(ctx, store.IncidentListOptions{Sites: names, OpenOnly: true, AfterID: after, Limit: store.MaxIncidentList})
		if err != nil {
			return out, fmt.Errorf("open incidents: %w", err)
		}
		for _, in := range page {
			open[in.Site] = true
			after = in.ID
		}
		if len(page) < store.MaxIncidentList {
			break
		}
	}
	for _, r := range results {
		at := r.At
		if at.After(now) {
			at = now
		}
		switch {
		case r.Up && open[r.Site]:
			if _, err := st.CloseIncident(ctx, r.Site, at); err != nil {
				return out, fmt.Errorf("close the incident of %q: %w", r.Site, err)
			}
			open[r.Site] = false
			out.Closed++
		case !r.Up && !open[r.Site]:
			_, made, err := st.OpenIncident(ctx, r.Site, at, r.Cause)
			if err != nil {
				return out, fmt.Errorf("open an incident of %q: %w", r.Site, err)
			}
			open[r.Site] = true
			if made {
				out.Opened++
			}
		}
	}
	return out, nil
}
