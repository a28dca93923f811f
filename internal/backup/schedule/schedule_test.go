package schedule

import (
	"slices"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

var t0 = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC) // a Sunday

func TestEffective(t *testing.T) {
	def := site.BackupPolicy{EveryHours: 24, Keep: site.Retention{Daily: 14, Weekly: 8, Monthly: 12}}
	for _, tc := range []struct {
		name string
		in   site.BackupPolicy
		want site.BackupPolicy
	}{
		{"zero takes the plan's", site.BackupPolicy{}, def},
		{"own interval", site.BackupPolicy{EveryHours: 6}, site.BackupPolicy{EveryHours: 6, Keep: def.Keep}},
		{"off", site.BackupPolicy{EveryHours: -1}, site.BackupPolicy{EveryHours: -1, Keep: def.Keep}},
		{"own retention as a whole", site.BackupPolicy{Keep: site.Retention{Hourly: 3}}, site.BackupPolicy{EveryHours: 24, Keep: site.Retention{Hourly: 3}}},
	} {
		if got := Effective(tc.in, def); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDue(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name     string
		last     time.Time
		interval time.Duration
		want     bool
	}{
		{"never backed up", time.Time{}, 24 * h, true},
		{"just backed up", t0.Add(-time.Minute), 24 * h, false},
		{"exactly the interval", t0.Add(-24 * h), 24 * h, true},
		{"overdue", t0.Add(-30 * h), 24 * h, true},
		{"hourly, 59 minutes", t0.Add(-59 * time.Minute), h, false},
		{"off", time.Time{}, 0, false},
	} {
		if got := Due(tc.last, tc.interval, t0); got != tc.want {
			t.Errorf("%s: Due = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCoverage(t *testing.T) {
	h := time.Hour
	old := t0.Add(-90 * 24 * h)
	for _, tc := range []struct {
		name      string
		last      time.Time
		created   time.Time
		interval  time.Duration
		want      State
		wantAlert bool
	}{
		{"fresh daily", t0.Add(-20 * h), old, 24 * h, OK, false},
		{"daily within the window", t0.Add(-29 * h), old, 24 * h, OK, false},
		{"daily late", t0.Add(-31 * h), old, 24 * h, Late, true},
		{"hourly within two hours", t0.Add(-119 * time.Minute), old, h, OK, false},
		{"hourly late", t0.Add(-121 * time.Minute), old, h, Late, true},
		{"none, new site", time.Time{}, t0.Add(-h), 24 * h, None, false},
		{"none, old site", time.Time{}, old, 24 * h, None, true},
		{"off with backups", t0.Add(-1000 * h), old, 0, Off, false},
		{"off without backups", time.Time{}, old, 0, None, false},
	} {
		state, alert := Coverage(tc.last, tc.created, tc.interval, t0)
		if state != tc.want || alert != tc.wantAlert {
			t.Errorf("%s: %s alert=%v, want %s alert=%v", tc.name, state, alert, tc.want, tc.wantAlert)
		}
	}
}

// series returns n times going back from start by step.
func series(start time.Time, step time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(-time.Duration(i) * step)
	}
	return out
}

func kept(times []time.Time, keep []bool) []string {
	var out []string
	for i, k := range keep {
		if k {
			out = append(out, times[i].Format("2006-01-02T15:04"))
		}
	}
	slices.Sort(out)
	return out
}

func countKept(keep []bool) int {
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	return n
}

func TestKeep(t *testing.T) {
	h, d := time.Hour, 24*time.Hour
	business := site.Retention{Hourly: 48, Daily: 14, Weekly: 8, Monthly: 12}
	for _, tc := range []struct {
		name  string
		times []time.Time
		r     site.Retention
		want  int      // how many are kept
		check []string // some of them, if given (sorted)
	}{
		{"nothing", nil, business, 0, nil},
		{"no rules keep the newest", series(t0, h, 10), site.Retention{}, 1, []string{"2025-06-15T12:00"}},
		{"hourly 3 of 10", series(t0, h, 10), site.Retention{Hourly: 3}, 3, []string{"2025-06-15T10:00", "2025-06-15T11:00", "2025-06-15T12:00"}},
		{"two in one hour: the newest", []time.Time{t0.Add(10 * time.Minute), t0.Add(50 * time.Minute), t0.Add(-h)}, site.Retention{Hourly: 2},
			2, []string{"2025-06-15T11:00", "2025-06-15T12:50"}},
		{"daily 7 of hourly for 10 days", series(t0, h, 240), site.Retention{Daily: 7}, 7, nil},
		// Hourly backups for 100 days under the business plan: 48 hourly,
		// then 14 days (12 beyond the hourly window's two days), 8 weeks,
		// 12 months, with overlaps counted once.
		{"business for 100 days", series(t0, h, 2400), business, 48 + 12 + 6 + 2, nil},
		{"weekly by ISO week", series(t0, d, 21), site.Retention{Weekly: 3}, 3,
			// 15 June is a Sunday: weeks end on Sundays (1, 8, 15 June).
			[]string{"2025-06-01T12:00", "2025-06-08T12:00", "2025-06-15T12:00"}},
		{"monthly", series(t0, 10*d, 40), site.Retention{Monthly: 3}, 3, []string{"2025-04-26T12:00", "2025-05-26T12:00", "2025-06-15T12:00"}},
		{"stopped backups keep the last", []time.Time{t0.Add(-400 * d), t0.Add(-401 * d)}, site.Retention{Hourly: 1}, 1, []string{"2024-05-11T12:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep := Keep(tc.times, tc.r, nil)
			if len(keep) != len(tc.times) {
				t.Fatalf("%d decisions for %d times", len(keep), len(tc.times))
			}
			if n := countKept(keep); n != tc.want {
				t.Errorf("kept %d, want %d: %v", n, tc.want, kept(tc.times, keep))
			}
			if tc.check != nil {
				if got := kept(tc.times, keep); !slices.Equal(got, tc.check) {
					t.Errorf("kept %v, want %v", got, tc.check)
				}
			}
		})
	}
}

// TestKeepOrderIndependent checks that shuffled input gives the same
// decisions per time.
func TestKeepOrderIndependent(t *testing.T) {
	times := series(t0, 5*time.Hour, 200)
	r := site.Retention{Hourly: 10, Daily: 5, Weekly: 3, Monthly: 2}
	want := kept(times, Keep(times, r, nil))
	rev := slices.Clone(times)
	slices.Reverse(rev)
	if got := kept(rev, Keep(rev, r, nil)); !slices.Equal(got, want) {
		t.Errorf("reversed input kept %v, want %v", got, want)
	}
}

func TestKeepLocation(t *testing.T) {
	// 23:30 and 00:30 UTC fall on one day in UTC-2 (21:30, 22:30).
	loc := time.FixedZone("UTC-2", -2*3600)
	times := []time.Time{
		time.Date(2025, 6, 15, 0, 30, 0, 0, time.UTC),
		time.Date(2025, 6, 14, 23, 30, 0, 0, time.UTC),
	}
	if n := countKept(Keep(times, site.Retention{Daily: 2}, time.UTC)); n != 2 {
		t.Errorf("UTC: kept %d, want 2", n)
	}
	if n := countKept(Keep(times, site.Retention{Daily: 2}, loc)); n != 1 {
		t.Errorf("UTC-2: kept %d, want 1", n)
	}
}
