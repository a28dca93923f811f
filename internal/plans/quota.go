package plans

import (
	"fmt"
	"strings"
)

// Org is what a quota check needs to know of an organisation.
type Org struct {
	Name string
	// Plan is the organisation's plan; "" leaves it unbounded (the
	// platform's own organisations, e.g. store.DefaultOrg).
	Plan string
	// Sites is how many sites it has now.
	Sites int
}

// Change is what a request would do to a site of the organisation.
type Change struct {
	// New: a site is created (it counts against max_sites); otherwise an
	// existing site changes to Plan.
	New bool
	// Site names the site in messages (its domain).
	Site string
	// Plan is the site's plan after the change.
	Plan string
	// UsedDiskMB is what an existing site stores now (0: unknown or
	// nothing); a plan whose disk_mb is below it is refused, so a
	// downgrade never leaves a site unable to write.
	UsedDiskMB int
}

// QuotaError is a change a plan does not allow. Its message says which
// plan, which limit and what the organisation or site has.
type QuotaError struct{ Msg string }

func (e *QuotaError) Error() string { return e.Msg }

func quotaf(format string, args ...any) error {
	return &QuotaError{Msg: fmt.Sprintf(format, args...)}
}

// Check decides whether org may make change c; the API's create and
// update handlers call it and answer a *QuotaError with 403
// quota_exceeded. An unknown site plan is a plain error (the caller's bad
// input).
func (s *Set) Check(org Org, c Change) error {
	p, err := s.Lookup(c.Plan)
	if err != nil {
		return err
	}
	if c.UsedDiskMB > p.DiskMB {
		return quotaf("site %s stores %d MB; plan %s allows %d MB of disk: delete files first, or choose a larger plan",
			c.Site, c.UsedDiskMB, p.Name, p.DiskMB)
	}
	if org.Plan == "" {
		return nil
	}
	op, ok := s.Get(org.Plan)
	if !ok {
		return quotaf("organisation %s's plan %q is not one of the platform's plans (%s); an administrator must set a valid plan",
			org.Name, org.Plan, strings.Join(s.Names(), ", "))
	}
	if c.New && op.MaxSites > 0 && org.Sites >= op.MaxSites {
		return quotaf("organisation %s's plan %s allows %s; it has %d", org.Name, op.Name, plural(op.MaxSites, "site"), org.Sites)
	}
	if s.Rank(p.Name) > s.Rank(op.Name) {
		return quotaf("organisation %s's plan %s allows sites on plans up to %s (%s); %s is larger",
			org.Name, op.Name, op.Name, strings.Join(s.Names()[:s.Rank(op.Name)+1], ", "), p.Name)
	}
	return nil
}

// plural is "1 site", "3 sites".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
