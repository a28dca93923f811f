// Package sitelog keeps sites' logs on disk, bounded in size, and reads
// them back filtered and followed.
//
// Two kinds of log exist per site. The edge writes an access log (Writer):
// one JSON line per answered request, under <dir>/<site>/access.log. The
// shard's php-fpm pool writes the PHP error log itself (php_admin_value
// error_log, internal/phpfpm), in PHP's own text format, into the site's
// logs directory; Rotate keeps it bounded and ParsePHP reads it.
//
// Both rotate by size: the current file, once over Bounds.FileBytes, is
// renamed to .1 (the older ones shift to .2 … .Files, the oldest is
// removed), so a site keeps at most Bounds.FileBytes × (Files + 1) bytes
// of each log. A Writer also bounds all its sites together
// (Bounds.TotalBytes): beyond it, it removes the oldest rotated files of
// any site, so the busiest or most hostile site loses its history first and
// the disk never fills.
//
// This is written here rather than with lumberjack (gopkg.in/natefinch/
// lumberjack.v2, which the module proxy serves): lumberjack keeps one open
// file and one logger per output, which at 50,000 sites per edge means
// 50,000 descriptors, and it has no bound over many outputs together. A
// Writer keeps a small LRU of open files instead and one total.
//
// A Writer never makes a request wait for the disk: Write appends the
// entry to a bounded buffer in memory, and a background goroutine encodes
// the buffered entries, groups them by site and appends each site's lines
// with one write, every WriterConfig.FlushInterval. With the buffer full,
// Write drops the entry and counts it (Dropped). This is written here as
// well: a buffered write syncer (zapcore.BufferedWriteSyncer) buffers the
// bytes of one output and, full, makes the writer wait for the disk.
package sitelog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Kinds of log.
const (
	KindAccess = "access"
	KindPHP    = "php"
)

// File names: the current file of each kind; rotated ones add .1 … .N.
const (
	AccessFile = "access.log"
	PHPFile    = "php-error.log"
)

// Entry is one line of a site's log: the access fields for KindAccess, Level
// and Message for KindPHP.
type Entry struct {
	Time time.Time `json:"time"`
	Site string    `json:"site"`
	Kind string    `json:"kind"`

	Method     string  `json:"method,omitempty"`
	Path       string  `json:"path,omitempty"`
	Status     int     `json:"status,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	// Cache is the page cache's verdict (HIT, MISS, BYPASS, STALE), empty
	// when the cache did not see the request.
	Cache     string `json:"cache,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	// Level is PHP's severity in lower case ("warning", "fatal error",
	// "notice", "deprecated", "parse error"), "log" for error_log() lines.
	Level   string `json:"level,omitempty"`
	Message string `json:"message,omitempty"`

	// Cursor is where the line ends in its file: a reader given it
	// (Query.After) continues right after this line, across rotations.
	Cursor string `json:"cursor,omitempty"`
}

// Bounds limit a log's size.
type Bounds struct {
	// FileBytes is the size beyond which the current file is rotated
	// (default DefaultFileBytes).
	FileBytes int64
	// Files is how many rotated files are kept (default DefaultFiles).
	Files int
	// TotalBytes bounds all sites of a Writer together (default
	// DefaultTotalBytes); Rotate does not use it.
	TotalBytes int64
}

// Defaults: 4 MiB of each log per site (1 MiB current + 3 rotated), 2 GiB
// of access logs per edge.
const (
	DefaultFileBytes  = 1 << 20
	DefaultFiles      = 3
	DefaultTotalBytes = 2 << 30
)

func (b Bounds) withDefaults() Bounds {
	if b.FileBytes <= 0 {
		b.FileBytes = DefaultFileBytes
	}
	if b.Files <= 0 {
		b.Files = DefaultFiles
	}
	if b.TotalBytes <= 0 {
		b.TotalBytes = DefaultTotalBytes
	}
	return b
}

// PerSite is the most bytes one log of one site keeps.
func (b Bounds) PerSite() int64 {
	b = b.withDefaults()
	return b.FileBytes * int64(b.Files+1)
}

// ErrBadSite is returned for a site name that cannot be a directory.
var ErrBadSite = errors.New("sitelog: invalid site name")

// CheckSite returns ErrBadSite unless name is a plain domain (as
// internal/site.NormalizeDomain makes them): 1–253 of a-z, 0-9, '.' and
// '-', starting and ending with a letter or digit, no "..": no slash, no dot
// segment, nothing a path could escape with. It runs on every request (the
// edge's Write), hence a loop rather than a regular expression (25 times
// faster; the test checks both agree).
func CheckSite(name string) error {
	if !validSite(name) {
		return fmt.Errorf("%w %q", ErrBadSite, name)
	}
	return nil
}

func validSite(name string) bool {
	n := len(name)
	if n == 0 || n > 253 {
		return false
	}
	for i := 0; i < n; i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '-') && i > 0 && i < n-1:
			if c == '.' && name[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Query selects entries.
type Query struct {
	// Since drops entries older than it (zero: none).
	Since time.Time
	// Status keeps access entries whose status matches one of these
	// (ParseStatus); empty keeps all. PHP entries have no status: a
	// non-empty Status drops them.
	Status []StatusMatch
	// Limit keeps the last Limit matching entries of what exists now
	// (follow then continues with every new one); 0: DefaultLimit.
	Limit int
	// After is a Cursor of an entry read before: reading continues right
	// after it (when its file still exists; else from the oldest entry).
	After string
}

// DefaultLimit and MaxLimit bound Query.Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// StatusMatch matches one status (404) or a class (5 for 5xx).
type StatusMatch struct {
	Code  int // exact; 0 when Class is set
	Class int // 1–5
}

// ParseStatus parses a comma-separated list such as "5xx,404".
func ParseStatus(s string) ([]StatusMatch, error) {
	if s == "" {
		return nil, nil
	}
	var out []StatusMatch
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if len(p) == 3 && p[1:] == "xx" && p[0] >= '1' && p[0] <= '5' {
			out = append(out, StatusMatch{Class: int(p[0] - '0')})
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 100 || n > 599 || len(p) != 3 {
			return nil, fmt.Errorf("status %q: want a code such as 404 or a class such as 5xx", p)
		}
		out = append(out, StatusMatch{Code: n})
	}
	return out, nil
}

// Match reports whether e passes q's Since and Status.
func (q Query) Match(e Entry) bool {
	if !q.Since.IsZero() && e.Time.Before(q.Since) {
		return false
	}
	if len(q.Status) == 0 {
		return true
	}
	if e.Kind != KindAccess {
		return false
	}
	for _, m := range q.Status {
		if m.Code == e.Status || (m.Class != 0 && e.Status/100 == m.Class) {
			return true
		}
	}
	return false
}

// ParseSince parses a duration back from now ("15m", "2h") or a time
// (RFC 3339, or "2006-01-02 15:04:05" in UTC).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: give a positive duration", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateTime, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration (15m, 2h) or a time (RFC 3339)", s)
}

// rotated is the name of rotated file i (1 … N) of base.
func rotated(base string, i int) string { return base + "." + strconv.Itoa(i) }

// rotateIn shifts base's files in root (base → base.1 → … → base.files,
// the oldest removed). It works on names only, never following a link a
// site may have put there (os.Root renames and removes entries).
func rotateIn(root *os.Root, base string, files int) error {
	// RemoveAll: a site may have made its log a directory.
	if err := root.RemoveAll(rotated(base, files)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sitelog: rotate %s: %w", base, err)
	}
	for i := files - 1; i >= 1; i-- {
		if err := root.Rename(rotated(base, i), rotated(base, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sitelog: rotate %s: %w", base, err)
		}
	}
	if err := root.Rename(base, rotated(base, 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sitelog: rotate %s: %w", base, err)
	}
	return nil
}

// Rotate rotates the PHP error log in dir (a site's logs directory, which
// the site's PHP writes) when it is larger than b.FileBytes, and reports
// whether it did. PHP opens its error log for every message, so the next
// message creates a new file. Between two calls a site may write beyond the
// bound; its disk limit (its volume) bounds that.
func Rotate(dir string, b Bounds) (bool, error) { return RotateFile(dir, PHPFile, b) }

// RotateFile is Rotate for the log called name in dir (php-fpm's slow log
// of a pool, which the master opens for every trace).
func RotateFile(dir, name string, b Bounds) (bool, error) {
	b = b.withDefaults()
	root, err := os.OpenRoot(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sitelog: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sitelog: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Size() <= b.FileBytes {
		return false, nil
	}
	// Over the bound, or not a regular file (a link or a FIFO the site
	// made): moved aside either way; readers skip what is not regular.
	return true, rotateIn(root, name, b.Files)
}
