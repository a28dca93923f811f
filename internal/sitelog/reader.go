package sitelog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Source is one log of one site: the files Base, Base.1 … in Dir.
type Source struct {
	Dir  string
	Base string // AccessFile or PHPFile
	Kind string // KindAccess or KindPHP
	Site string
}

// PHPSource is the PHP error log of site in its logs directory dir.
func PHPSource(site, dir string) Source {
	return Source{Dir: dir, Base: PHPFile, Kind: KindPHP, Site: site}
}

// pos is a place in a log: a file (by inode) and an offset in it.
type pos struct {
	ino uint64
	off int64
}

func (p pos) String() string {
	if p.ino == 0 {
		return ""
	}
	return strconv.FormatUint(p.ino, 10) + ":" + strconv.FormatInt(p.off, 10)
}

func parseCursor(s string) (pos, error) {
	if s == "" {
		return pos{}, nil
	}
	a, b, ok := strings.Cut(s, ":")
	ino, err1 := strconv.ParseUint(a, 10, 64)
	off, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || off < 0 {
		return pos{}, fmt.Errorf("cursor %q: want the cursor of an entry", s)
	}
	return pos{ino, off}, nil
}

// ValidCursor returns an error unless s is empty or a cursor.
func ValidCursor(s string) error {
	_, err := parseCursor(s)
	return err
}

// maxNames bounds the directory entries a reading looks at.
const maxNames = 4096

type srcFile struct {
	name string
	ino  uint64
	gen  int // 0 current, 1 … rotated
}

// list returns src's regular files, oldest first; none if Dir is missing.
func (src Source) list(root *os.Root) ([]srcFile, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	// A site may fill its logs directory with names: a bounded
	// number is looked at.
	names, err := d.Readdirnames(maxNames)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var out []srcFile
	for _, n := range names {
		gen := 0
		if n != src.Base {
			rest, ok := strings.CutPrefix(n, src.Base+".")
			g, err := strconv.Atoi(rest)
			if !ok || err != nil || g < 1 || strconv.Itoa(g) != rest {
				continue
			}
			gen = g
		}
		fi, err := root.Lstat(n)
		if err != nil || !fi.Mode().IsRegular() {
			continue // a link or FIFO a site made is never read
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Nlink != 1 {
			continue
		}
		out = append(out, srcFile{name: n, ino: st.Ino, gen: gen})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gen > out[j].gen })
	return out, nil
}

// openFile opens name in root for reading: never through a link, never
// blocking on a FIFO, only a regular file with one name.
func openFile(root *os.Root, name string, ino uint64) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.Mode().IsRegular() || !ok || st.Nlink != 1 || st.Ino != ino {
			err = errors.New("not the regular file listed")
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// scan reads src from p (zero: from the oldest file) to the end of the
// current file and calls fn for each entry; it returns where it stopped.
// A line still being written (no newline yet) is left for the next scan.
func (src Source) scan(p pos, fn func(Entry) error) (pos, error) {
	if src.Dir == "" {
		return p, nil // nowhere yet (a site not placed)
	}
	root, err := os.OpenRoot(src.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("sitelog: %w", err)
	}
	defer root.Close()
	// A rotation under way (the writer renaming the files) can make a
	// listing miss a file, or a file listed be renamed before it is
	// opened: the scan then lists again from where it is, rather than
	// skip or repeat lines.
	for try := 0; ; try++ {
		var raced bool
		p, raced, err = src.scanFrom(root, p, fn)
		if err != nil || !raced || try == 10 {
			return p, err
		}
	}
}

// scanFrom is one pass of scan over one listing; raced reports a file that
// changed name meanwhile.
func (src Source) scanFrom(root *os.Root, p pos, fn func(Entry) error) (_ pos, raced bool, _ error) {
	files, err := src.list(root)
	for try := 0; err == nil && try < 10; try++ {
		again, lerr := src.list(root)
		if lerr != nil || slices.Equal(files, again) {
			err = lerr
			break
		}
		files = again
	}
	if err != nil {
		return p, false, fmt.Errorf("sitelog: %w", err)
	}
	start := 0
	from := int64(0)
	if p.ino != 0 {
		for i, f := range files {
			if f.ino == p.ino {
				start, from = i, p.off
				break
			}
		}
	}
	for i := start; i < len(files); i++ {
		f := files[i]
		off := int64(0)
		if i == start {
			off = from
		}
		end, err := src.scanFile(root, f, off, fn)
		if errors.Is(err, errMoved) {
			return p, true, nil
		}
		if err != nil {
			return p, false, err
		}
		p = pos{f.ino, end}
	}
	return p, false, nil
}

// errMoved: a file listed was renamed or removed before it was opened.
var errMoved = errors.New("sitelog: file moved")

// scanFile reads f from off; it returns the offset after the last complete
// line.
func (src Source) scanFile(root *os.Root, f srcFile, off int64, fn func(Entry) error) (int64, error) {
	fh, err := openFile(root, f.name, f.ino)
	if err != nil {
		return off, errMoved // rotated away or replaced meanwhile
	}
	defer fh.Close()
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		return off, fmt.Errorf("sitelog: %w", err)
	}
	br := bufio.NewReaderSize(fh, 64<<10)
	var php *Entry // a PHP entry whose continuation lines may follow
	var phpEnd int64
	flush := func() error {
		if php == nil {
			return nil
		}
		e := *php
		php = nil
		e.Cursor = pos{f.ino, phpEnd}.String()
		return fn(e)
	}
	var last time.Time
	for {
		line, n, err := readLine(br)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return off, ferr
			}
			if !errors.Is(err, io.EOF) {
				return off, fmt.Errorf("sitelog: %w", err)
			}
			return off, nil
		}
		off += n
		line = bytes.TrimRight(line, "\r\n")
		switch src.Kind {
		case KindAccess:
			var e Entry
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			e.Site, e.Kind, e.Cursor = src.Site, KindAccess, pos{f.ino, off}.String()
			if err := fn(e); err != nil {
				return off, err
			}
		default:
			t, level, msg, ok := ParsePHPLine(string(line))
			if !ok && php != nil {
				php.Message += "\n" + string(line)
				phpEnd = off
				continue
			}
			if err := flush(); err != nil {
				return off, err
			}
			if !ok {
				t, level, msg = last, "", string(line)
			}
			last = t
			php = &Entry{Time: t, Site: src.Site, Kind: KindPHP, Level: level, Message: strings.ToValidUTF8(msg, "?")}
			phpEnd = off
		}
	}
}

// maxLine bounds one line kept in memory (a site controls its PHP log):
// the rest of a longer line is skipped.
const maxLine = 16 << 10

// readLine returns the next complete line (cut to maxLine bytes) and how
// many bytes it took, or io.EOF when no complete line is left (a line
// still being written is not consumed: the caller's offset stays before
// it). It never holds more than the reader's buffer of a long line.
func readLine(br *bufio.Reader) ([]byte, int64, error) {
	var line []byte
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if len(line) < maxLine {
			line = append(line, chunk[:min(len(chunk), maxLine-len(line))]...)
		}
		switch {
		case err == nil:
			return line, n, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, 0, err // EOF before a newline: left for later
		}
	}
}

// ParsePHPLine parses one line of PHP's error log:
// "[06-Dec-2026 10:46:23 UTC] PHP Warning:  message". ok is false for a
// line without the timestamp (the continuation of a message).
func ParsePHPLine(line string) (t time.Time, level, msg string, ok bool) {
	if !strings.HasPrefix(line, "[") {
		return time.Time{}, "", "", false
	}
	ts, rest, found := strings.Cut(line[1:], "] ")
	if !found {
		return time.Time{}, "", "", false
	}
	t, err := parsePHPTime(ts)
	if err != nil {
		return time.Time{}, "", "", false
	}
	if body, isPHP := strings.CutPrefix(rest, "PHP "); isPHP {
		if lv, m, found := strings.Cut(body, ":  "); found && len(lv) < 32 {
			return t.UTC(), strings.ToLower(lv), m, true
		}
	}
	return t.UTC(), "log", rest, true
}

// parsePHPTime parses PHP's log time, "06-Dec-2026 10:46:23 UTC": the zone
// is date.timezone's name (UTC unless php.ini sets one, e.g.
// "Europe/Berlin").
func parsePHPTime(ts string) (time.Time, error) {
	const layout = "02-Jan-2006 15:04:05"
	if len(ts) < len(layout)+2 || ts[len(layout)] != ' ' {
		return time.Time{}, fmt.Errorf("not a PHP log time: %q", ts)
	}
	zone := ts[len(layout)+1:]
	loc := time.UTC
	if zone != "UTC" {
		l, err := time.LoadLocation(zone)
		if err != nil {
			return time.Time{}, err
		}
		loc = l
	}
	return time.ParseInLocation(layout, ts[:len(layout)], loc)
}

// Read calls emit with the last q.Limit entries of src that match q (from
// q.After on, if given), oldest first, and returns the cursor where a
// Follow continues.
func Read(ctx context.Context, src Source, q Query, emit func(Entry) error) (string, error) {
	_, end, err := ReadRange(ctx, src, q, nil, emit)
	return end, err
}

// ReadRange is Read that also returns start, the cursor right before the
// first entry emitted (the entry scanned before it, matching or not; q.After
// when it is the first entry scanned; end when nothing is emitted): reading
// after start gives the same entries. Before, if set, is called with start
// before the first entry is emitted. Readers merging several logs keep it
// as each log's position until one of its entries is shown.
func ReadRange(ctx context.Context, src Source, q Query, before func(start string) error, emit func(Entry) error) (start, end string, err error) {
	from, err := parseCursor(q.After)
	if err != nil {
		return "", "", err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	type kept struct {
		e    Entry
		prev string // the cursor of the entry scanned before e
	}
	ring := make([]kept, 0, min(limit, 256))
	next := 0 // ring position to overwrite once full
	prev := from.String()
	endPos, err := src.scan(from, func(e Entry) error {
		p := prev
		prev = e.Cursor
		if !q.Match(e) {
			return nil
		}
		if len(ring) < limit {
			ring = append(ring, kept{e, p})
			return nil
		}
		ring[next] = kept{e, p}
		next = (next + 1) % limit
		return ctx.Err()
	})
	if err != nil {
		return "", "", err
	}
	end = endPos.String()
	start = end
	if len(ring) > 0 {
		start = ring[next%len(ring)].prev
	}
	if before != nil {
		if err := before(start); err != nil {
			return "", "", err
		}
	}
	for i := range ring {
		if err := emit(ring[(next+i)%len(ring)].e); err != nil {
			return "", "", err
		}
	}
	return start, end, nil
}

// Follow calls emit with every entry of src matching q written after
// cursor (from Read), reading again every interval, until ctx is done (then
// it returns nil) or emit or after fails. After each reading, after (if
// set) is called with how many entries it emitted, on the same goroutine
// (to flush a stream). Rotations are followed: the rest of the file the
// cursor names is read before the newer ones.
func Follow(ctx context.Context, src Source, q Query, cursor string, every time.Duration, emit func(Entry) error, after func(n int) error) error {
	p, err := parseCursor(cursor)
	if err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n := 0
		p, err = src.scan(p, func(e Entry) error {
			if !q.Match(e) {
				return nil
			}
			n++
			return emit(e)
		})
		if err != nil {
			return err
		}
		if after != nil {
			if err := after(n); err != nil {
				return err
			}
		}
	}
}
