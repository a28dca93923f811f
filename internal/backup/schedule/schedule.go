// Package schedule holds the pure rules of scheduled backups: a site's
// effective policy, when it is due, which snapshots retention keeps, and
// its coverage state. Nothing here reads a clock or a store: callers pass
// the time.
package schedule

import (
	"slices"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// Effective fills p's zero fields from def, the plan's defaults (see
// site.BackupPolicy): EveryHours 0 takes def's; the Keep fields are taken
// from def as a whole when p keeps nothing.
func Effective(p, def site.BackupPolicy) site.BackupPolicy {
	if p.EveryHours == 0 {
		p.EveryHours = def.EveryHours
	}
	if p.Keep == (site.Retention{}) {
		p.Keep = def.Keep
	}
	return p
}

// Interval is how often the policy backs a site up; 0 means never
// (scheduled backups off).
func Interval(p site.BackupPolicy) time.Duration {
	if p.EveryHours <= 0 {
		return 0
	}
	return time.Duration(p.EveryHours) * time.Hour
}

// Due reports whether a site whose last good backup was at last (zero:
// none) is due at now under a schedule of interval (0: never).
func Due(last time.Time, interval time.Duration, now time.Time) bool {
	return interval > 0 && (last.IsZero() || !now.Before(last.Add(interval)))
}

// Window is how old a site's last good backup may be before its coverage
// is LATE: the interval plus a quarter of it, at least an hour (a run that
// was late or retried is not an alert; a missed one is).
func Window(interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	return interval + max(interval/4, time.Hour)
}

// State is a site's backup coverage.
type State string

// Coverage states.
const (
	// OK: the last good backup is within the window.
	OK State = "OK"
	// Late: the last good backup is older than the window.
	Late State = "LATE"
	// None: the site has no good backup at all.
	None State = "NONE"
	// Off: scheduled backups are turned off for the site.
	Off State = "OFF"
)

// Coverage returns a site's coverage state and whether it is an alert:
// LATE always is; NONE is once the site is older than its window (a new
// site waits for its first scheduled backup); OFF and OK are not.
func Coverage(last time.Time, created time.Time, interval time.Duration, now time.Time) (State, bool) {
	if interval <= 0 {
		if last.IsZero() {
			return None, false
		}
		return Off, false
	}
	w := Window(interval)
	switch {
	case last.IsZero():
		return None, now.Sub(created) > w
	case now.Sub(last) > w:
		return Late, true
	}
	return OK, false
}

// Keep decides which snapshots retention keeps, as restic's forget does:
// for each rule, going from the newest snapshot to the oldest, the newest
// snapshot of each hour (day, ISO week, month) is kept, for the first
// Hourly (Daily, Weekly, Monthly) such periods that hold a snapshot. A
// snapshot any rule keeps is kept, and the newest snapshot is always kept,
// whatever the rules (a site whose backups stopped keeps its last one).
// Periods are calendar periods in loc (nil: UTC). times may come in any
// order; keep[i] is the decision for times[i].
func Keep(times []time.Time, r site.Retention, loc *time.Location) []bool {
	if loc == nil {
		loc = time.UTC
	}
	keep := make([]bool, len(times))
	if len(times) == 0 {
		return keep
	}
	order := make([]int, len(times))
	for i := range order {
		order[i] = i
	}
	// Newest first; equal times by index, so the result is deterministic.
	slices.SortStableFunc(order, func(a, b int) int { return times[b].Compare(times[a]) })
	keep[order[0]] = true

	type bucketFn func(t time.Time) [3]int
	rules := []struct {
		n      int
		bucket bucketFn
	}{
		{r.Hourly, func(t time.Time) [3]int { y, d := t.Year(), t.YearDay(); return [3]int{y, d, t.Hour()} }},
		{r.Daily, func(t time.Time) [3]int { return [3]int{t.Year(), t.YearDay(), 0} }},
		{r.Weekly, func(t time.Time) [3]int { y, w := t.ISOWeek(); return [3]int{y, w, 0} }},
		{r.Monthly, func(t time.Time) [3]int { return [3]int{t.Year(), int(t.Month()), 0} }},
	}
	for _, rule := range rules {
		if rule.n <= 0 {
			continue
		}
		var last [3]int
		kept := 0
		for k, i := range order {
			b := rule.bucket(times[i].In(loc))
			if k > 0 && b == last {
				continue
			}
			last = b
			keep[i] = true
			kept++
			if kept == rule.n {
				break
			}
		}
	}
	return keep
}
