package store

import (
	"fmt"
	"time"
)

// UsageDelta is what one report says of one site for one hour: counters
// that add up over reports, and gauges that the last report of the hour
// sets (nil: the report did not measure it).
type UsageDelta struct {
	// Shard is the shard the site was on when reported ("" keeps the
	// hour's shard as it was; a new row gets "").
	Shard string
	// Requests, bytes out (response bodies), page-cache hits and the
	// microseconds requests waited for PHP (the edge's view), database
	// queries (the shard's view).
	Requests, BytesOut, CacheHits, PHPMicros, DBQueries int64
	// DBBytes, FilesBytes and BackupBytes are sizes measured during the
	// hour.
	DBBytes, FilesBytes, BackupBytes *int64
}

// UsageKey names a report so that a retried one is applied once: Source is
// who sent it (an edge's or a shard's name, from its token), ID its own
// identifier. An empty ID is never deduplicated.
type UsageKey struct {
	Source, ID string
}

// Usage periods: an hourly record and its rollups.
const (
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// UsageListOptions selects usage records.
type UsageListOptions struct {
	// Period is PeriodHour, PeriodDay or PeriodMonth (default hour).
	Period string
	// From and To select the hours that overlap [From, To) (both
	// required, From < To, at most MaxUsageSpan apart).
	From, To time.Time
	// Sites, when not nil, keeps only these sites.
	Sites []string
	// Limit bounds the records returned (default 1000, at most
	// MaxUsageLimit); After continues after the last record of the
	// previous page (UsageRecord.Cursor).
	Limit int
	After string
}

// MaxUsageLimit bounds UsageListOptions.Limit.
const MaxUsageLimit = 10_000

// MaxUsageSpan bounds the hours one list reads (a little over a year).
const MaxUsageSpan = 400 * 24 * time.Hour

// UsageRecord is a site's usage on one shard over one period: counters
// summed over its hours, gauges averaged over the hours that measured them
// (so DBBytes of a month, times the month's hours, is its byte-hours).
type UsageRecord struct {
	Site  string `json:"site"`
	Shard string `json:"shard"`
	// Period is the period's start: "2026-12-06T10" (hour, UTC),
	// "2026-12-06" (day) or "2026-12" (month).
	Period      string `json:"period"`
	Hours       int64  `json:"hours"` // hourly records summed
	Requests    int64  `json:"requests"`
	BytesOut    int64  `json:"bytes_out"`
	CacheHits   int64  `json:"cache_hits"`
	PHPMicros   int64  `json:"php_us"`
	DBQueries   int64  `json:"db_queries"`
	DBBytes     int64  `json:"db_bytes"`
	FilesBytes  int64  `json:"files_bytes"`
	BackupBytes int64  `json:"backup_bytes"`
}

// Cursor is the After that continues a list after r.
func (r *UsageRecord) Cursor() string { return r.Period + "|" + r.Site + "|" + r.Shard }

// UsageHour is the hour key of t (UTC) as stored: "2006-01-02T15".
func UsageHour(t time.Time) string { return t.UTC().Format("2006-01-02T15") }

// UsageReportRetention is how long report keys are kept for deduplication.
const UsageReportRetention = 7 * 24 * time.Hour

// ValidateUsage checks AddUsage's arguments (for implementations).
func ValidateUsage(key UsageKey, deltas map[string]UsageDelta) error {
	if len(key.Source) > 253 || len(key.ID) > 128 || (key.ID != "" && key.Source == "") {
		return fmt.Errorf("%w: usage report key %q/%q", ErrInvalid, key.Source, key.ID)
	}
	for name, d := range deltas {
		bad := name == "" || len(name) > 253 || len(d.Shard) > 253
		for _, n := range []int64{d.Requests, d.BytesOut, d.CacheHits, d.PHPMicros, d.DBQueries} {
			bad = bad || n < 0
		}
		for _, g := range []*int64{d.DBBytes, d.FilesBytes, d.BackupBytes} {
			bad = bad || (g != nil && *g < 0)
		}
		if bad {
			return fmt.Errorf("%w: usage of site %q: %+v", ErrInvalid, name, d)
		}
	}
	return nil
}

// UsageListQuery is ListUsage's options checked and completed: the
// period's key length in the stored hour ("2006-01-02T15"), the hour
// bounds and the limit (for implementations).
type UsageListQuery struct {
	KeyLen           int
	FromHour, ToHour string
	Limit            int
}

// ValidateUsageList checks ListUsage's options (for implementations).
func ValidateUsageList(opts UsageListOptions) (UsageListQuery, error) {
	q := UsageListQuery{Limit: opts.Limit}
	switch opts.Period {
	case "", PeriodHour:
		q.KeyLen = 13
	case PeriodDay:
		q.KeyLen = 10
	case PeriodMonth:
		q.KeyLen = 7
	default:
		return q, fmt.Errorf("%w: usage period %q: want hour, day or month", ErrInvalid, opts.Period)
	}
	if opts.From.IsZero() || !opts.From.Before(opts.To) || opts.To.Sub(opts.From) > MaxUsageSpan {
		return q, fmt.Errorf("%w: usage from %v to %v: want From before To, at most %v apart", ErrInvalid, opts.From, opts.To, MaxUsageSpan)
	}
	if opts.Limit < 0 || opts.Limit > MaxUsageLimit {
		return q, fmt.Errorf("%w: usage limit %d: want 0 to %d", ErrInvalid, opts.Limit, MaxUsageLimit)
	}
	if q.Limit == 0 {
		q.Limit = 1000
	}
	q.FromHour = UsageHour(opts.From)
	// To is exclusive: an hour that starts before To is in.
	q.ToHour = UsageHour(opts.To.Add(-time.Nanosecond))
	return q, nil
}
