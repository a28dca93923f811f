package sitelog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func access(site string, i, status int) Entry {
	return Entry{Time: t0.Add(time.Duration(i) * time.Second), Site: site, Method: "GET", Path: fmt.Sprintf("/p/%d", i),
		Status: status, Bytes: 100, RequestID: fmt.Sprintf("r%d", i)}
}

func readAll(t *testing.T, src Source, q Query) ([]Entry, string) {
	t.Helper()
	var out []Entry
	cur, err := Read(context.Background(), src, q, func(e Entry) error { out = append(out, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out, cur
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestFilters(t *testing.T) {
	w, err := NewWriter(WriterConfig{Dir: t.TempDir(), Bounds: Bounds{FileBytes: 2000, Files: 50}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	statuses := []int{200, 404, 500, 503, 301}
	for i := range 100 {
		if err := w.Write(access("a.test", i, statuses[i%5])); err != nil {
			t.Fatal(err)
		}
	}
	src, _ := w.Source("a.test")
	for _, tc := range []struct {
		status string
		since  time.Time
		limit  int
		want   []string // request ids
	}{
		{status: "5xx", limit: 4, want: []string{"r92", "r93", "r97", "r98"}},
		{status: "404", limit: 2, want: []string{"r91", "r96"}},
		{status: "404,301", since: t0.Add(94 * time.Second), want: []string{"r94", "r96", "r99"}},
		{since: t0.Add(97 * time.Second), want: []string{"r97", "r98", "r99"}},
	} {
		st, err := ParseStatus(tc.status)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readAll(t, src, Query{Status: st, Since: tc.since, Limit: tc.limit})
		var ids []string
		for _, e := range got {
			ids = append(ids, e.RequestID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("status %q since %v: got %v, want %v", tc.status, tc.since, ids, tc.want)
		}
	}
	for _, bad := range []string{"6xx", "99", "abc", "5x", "4040"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
}

// TestRotationBound: one site writing far more than its bound keeps at most
// FileBytes × (Files+1), and many sites together stay under TotalBytes.
func TestRotationBound(t *testing.T) {
	dir := t.TempDir()
	b := Bounds{FileBytes: 4 << 10, Files: 2, TotalBytes: 40 << 10}
	w, err := NewWriter(WriterConfig{Dir: dir, Bounds: b, OpenFiles: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 5000 {
		if err := w.Write(access("hostile.test", i, 200)); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirSize(t, filepath.Join(dir, "hostile.test")); got > b.PerSite() {
		t.Fatalf("one site keeps %d bytes, bound %d", got, b.PerSite())
	}
	src, _ := w.Source("hostile.test")
	got, _ := readAll(t, src, Query{Limit: 1})
	if len(got) != 1 || got[0].RequestID != "r4999" {
		t.Fatalf("last entry after rotations: %+v", got)
	}
	for i := range 3000 {
		if err := w.Write(access(fmt.Sprintf("s%d.test", i%30), i, 200)); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirSize(t, dir); got > b.TotalBytes {
		t.Fatalf("all sites keep %d bytes, bound %d", got, b.TotalBytes)
	}
	if w.Total() != dirSize(t, dir) {
		t.Fatalf("Total %d, on disk %d", w.Total(), dirSize(t, dir))
	}
	// A new writer on the same directory counts what is there.
	w2, err := NewWriter(WriterConfig{Dir: dir, Bounds: b})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Total() != w.Total() {
		t.Fatalf("reopened Total %d, want %d", w2.Total(), w.Total())
	}
}

func TestSiteNames(t *testing.T) {
	w, err := NewWriter(WriterConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, bad := range []string{"", "..", ".", "../etc", "a/b", "a..b", "/etc", "A.test", "a.test/", "-a.test"} {
		if _, err := w.Source(bad); err == nil {
			t.Errorf("Source(%q) accepted", bad)
		}
		if err := w.Write(access(bad, 1, 200)); err == nil {
			t.Errorf("Write(%q) accepted", bad)
		}
	}
}

// TestFollowAcrossRotation: a follower sees every line once while the log
// rotates under it.
func TestFollowAcrossRotation(t *testing.T) {
	w, err := NewWriter(WriterConfig{Dir: t.TempDir(), Bounds: Bounds{FileBytes: 1 << 10, Files: 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 3 {
		w.Write(access("a.test", i, 200))
	}
	src, _ := w.Source("a.test")
	got, cur := readAll(t, src, Query{Limit: 2})
	if len(got) != 2 || got[1].RequestID != "r2" {
		t.Fatalf("initial read %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var seen []string
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, src, Query{Status: []StatusMatch{{Class: 5}}}, cur, time.Millisecond, func(e Entry) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, e.RequestID)
			if len(seen) == 50 {
				cancel()
			}
			return nil
		}, nil)
	}()
	var want []string
	for i := 3; i < 103; i++ {
		st := 200
		if i%2 == 0 {
			st = 502
			want = append(want, fmt.Sprintf("r%d", i))
		}
		w.Write(access("a.test", i, st))
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond) // let the follower interleave with rotations
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("followed %v\nwant     %v", seen, want)
	}
	// Reading after the cursor of an entry continues right after it.
	all, _ := readAll(t, src, Query{Limit: MaxLimit})
	after, _ := readAll(t, src, Query{After: all[len(all)-3].Cursor})
	if len(after) != 2 || after[0].RequestID != all[len(all)-2].RequestID {
		t.Fatalf("after cursor: %+v", after)
	}
}

const phpLog = `[06-Dec-2026 10:00:01 UTC] PHP Warning:  Undefined variable $x in /srv/a.php on line 3
[06-Dec-2026 10:00:02 UTC] PHP Fatal error:  Uncaught Exception: boom in /srv/b.php:4
Stack trace:
#0 {main}
  thrown in /srv/b.php on line 4
[06-Dec-2026 10:00:03 UTC] plugin says hello
`

func TestPHPLogRotateAndRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, PHPFile), []byte(phpLog), 0o644); err != nil {
		t.Fatal(err)
	}
	src := PHPSource("a.test", dir)
	got, _ := readAll(t, src, Query{})
	if len(got) != 3 {
		t.Fatalf("entries %+v", got)
	}
	if got[0].Level != "warning" || got[1].Level != "fatal error" || got[2].Level != "log" {
		t.Fatalf("levels %q %q %q", got[0].Level, got[1].Level, got[2].Level)
	}
	if !strings.HasSuffix(got[1].Message, "thrown in /srv/b.php on line 4") || !got[1].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("multi-line entry %+v", got[1])
	}
	if got, _ := readAll(t, src, Query{Status: []StatusMatch{{Class: 5}}}); len(got) != 0 {
		t.Fatalf("a status filter kept PHP entries: %+v", got)
	}
	b := Bounds{FileBytes: 100, Files: 2}
	for range 5 {
		if _, err := Rotate(dir, b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, PHPFile), []byte(phpLog), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirSize(t, dir); got > 3*int64(len(phpLog)) {
		t.Fatalf("PHP logs keep %d bytes after rotations", got)
	}
	// A site replacing its log by a link to a file it may not read: the
	// link is moved aside by Rotate and never read.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("[06-Dec-2026 10:00:09 UTC] PHP Warning:  SECRET\n"), 0o600)
	os.Remove(filepath.Join(dir, PHPFile))
	os.Remove(filepath.Join(dir, PHPFile+".1"))
	os.Remove(filepath.Join(dir, PHPFile+".2"))
	if err := os.Symlink(secret, filepath.Join(dir, PHPFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, PHPFile+".1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, src, Query{}); len(got) != 0 {
		t.Fatalf("read through a link: %+v", got)
	}
	if rotatedNow, err := Rotate(dir, b); err != nil || !rotatedNow {
		t.Fatalf("Rotate of a link: %v %v", rotatedNow, err)
	}
	if b, _ := os.ReadFile(secret); !strings.Contains(string(b), "SECRET") {
		t.Fatal("Rotate changed the link's target")
	}
}

func TestParsePHPLine(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
		at               time.Time
		ok               bool
	}{
		{"[06-Dec-2026 10:00:01 UTC] PHP Notice:  x", "notice", "x", t0.Add(time.Second), true},
		{"[06-Dec-2026 11:00:01 Europe/Berlin] PHP Deprecated:  y", "deprecated", "y", t0.Add(time.Second), true},
		{"[06-Dec-2026 10:00:01 UTC] WordPress database error", "log", "WordPress database error", t0.Add(time.Second), true},
		{"[06-Dec-2026 10:00:01 Nowhere/Land] x", "", "", time.Time{}, false},
		{"#0 {main}", "", "", time.Time{}, false},
		{"[not a time] x", "", "", time.Time{}, false},
	} {
		at, level, msg, ok := ParsePHPLine(tc.line)
		if ok != tc.ok || level != tc.level || msg != tc.msg || !at.Equal(tc.at) {
			t.Errorf("%q: %v %q %q %v", tc.line, at, level, msg, ok)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := t0
	for in, want := range map[string]time.Time{
		"15m":                  now.Add(-15 * time.Minute),
		"2026-12-06T09:00:00Z": t0.Add(-time.Hour),
		"2026-12-06 09:30:00":  t0.Add(-30 * time.Minute),
		"":                     {},
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-5m", "yesterday", "../../etc/passwd"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("ParseSince(%q) accepted", bad)
		}
	}
}

// TestHostilePHPLog: what a site can do to the log its PHP writes neither
// costs the reader unbounded memory nor stops rotation.
func TestHostilePHPLog(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("y", 3*maxLine)
	content := "[06-Dec-2026 10:00:01 UTC] PHP Warning:  " + long + "\n[06-Dec-2026 10:00:02 UTC] after\n" +
		"[06-Dec-2026 10:00:03 UTC] unfinished " + strings.Repeat("z", 200<<10) // no newline yet
	if err := os.WriteFile(filepath.Join(dir, PHPFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range maxNames + 100 { // names beyond what a reading looks at
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("junk%d", i)), nil, 0o644)
	}
	src := PHPSource("a.test", dir)
	got, cur := readAll(t, src, Query{})
	if len(got) != 2 || len(got[0].Message) > maxLine || got[1].Message != "after" {
		t.Fatalf("entries: %d, first %d bytes, second %+v", len(got), len(got[0].Message), got[len(got)-1])
	}
	// The unfinished line is read once it ends.
	f, _ := os.OpenFile(filepath.Join(dir, PHPFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(" end\n")
	f.Close()
	after, _ := readAll(t, src, Query{After: cur})
	if len(after) != 1 || !strings.HasPrefix(after[0].Message, "unfinished zzz") || len(after[0].Message) > maxLine {
		t.Fatalf("after the line ended: %d entries", len(after))
	}
	// A directory in the log's place is moved aside and, in time, removed.
	b := Bounds{FileBytes: 1, Files: 2}
	for range 4 {
		os.Remove(filepath.Join(dir, PHPFile))
		if err := os.MkdirAll(filepath.Join(dir, PHPFile, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Rotate(dir, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, PHPFile+".3")); err == nil {
		t.Fatal("more rotated files than the bound")
	}
}

// BenchmarkWrite is one access-log line, as the edge writes it on every
// request: over 10 sites (their files stay open) and over 1,000 (more than
// the open-file LRU holds: a file is opened for most lines).
func BenchmarkWrite(b *testing.B) {
	for _, sites := range []int{10, 1000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			w, err := NewWriter(WriterConfig{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := w.Write(access(fmt.Sprintf("s%d.test", i%sites), i, 200)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
