package logmesh

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/sitelog"
)

// Dialer opens a connection to a server that negotiated Proto with an
// identity the caller checked (mtls).
type Dialer func(ctx context.Context) (net.Conn, error)

// Source is one server of a reading: Name names it in merged cursors (an
// edge's name).
type Source struct {
	Name string
	Dial Dialer
}

// ErrBadCursor marks an after cursor that is not one of this reading's.
var ErrBadCursor = errors.New("logmesh: not a cursor of this log")

// ErrUnreachable marks a server that could not be reached or broke the
// protocol.
var ErrUnreachable = errors.New("logmesh: the log's server cannot be reached")

// ErrTooLarge marks a reading whose initial part is over MaxInitial bytes.
var ErrTooLarge = errors.New("logmesh: the answers are too large; ask for fewer entries")

// stream is one server's answer.
type stream struct {
	name  string
	req   Request
	conn  net.Conn
	br    *bufio.Reader
	start string
	ended bool
	n     int // entries before "end"
	size  int // bytes of the lines before "end"
}

// openStream sends req to src and reads its first frame.
func openStream(ctx context.Context, src Source, req Request) (*stream, error) {
	conn, err := src.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, src.Name, err)
	}
	s := &stream{name: src.Name, req: req, conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
	fail := func(err error) (*stream, error) {
		conn.Close()
		return nil, err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fail(fmt.Errorf("%w: %s: %w", ErrUnreachable, src.Name, err))
	}
	f, err := s.next()
	if err != nil {
		return fail(err)
	}
	if f.Error != "" || f.Code != "" {
		return fail(&RemoteError{Code: truncate(f.Code, 40), Msg: truncate(f.Error, 300)})
	}
	if !f.OK {
		return fail(fmt.Errorf("%w: %s: no answer to the request", ErrUnreachable, src.Name))
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n]
	}
	return s
}

// next reads the next frame, checked: an entry is of the site and kind
// asked for, with a cursor; no more than the limit asked for before "end".
func (s *stream) next() (frame, error) {
	for {
		line, err := readLine(s.br, MaxFrame)
		if err != nil {
			return frame{}, fmt.Errorf("%w: %s: %w", ErrUnreachable, s.name, err)
		}
		if !s.ended {
			s.size += len(line) + 1
		}
		var f frame
		if err := json.Unmarshal(line, &f); err != nil {
			return frame{}, fmt.Errorf("%w: %s: a bad frame: %w", ErrUnreachable, s.name, err)
		}
		if f == (frame{}) {
			continue // a keepalive
		}
		bad := func(why string) (frame, error) {
			return frame{}, fmt.Errorf("%w: %s: %s", ErrUnreachable, s.name, why)
		}
		switch {
		case f.Entry != nil:
			e := f.Entry
			if e.Site != s.req.Site || e.Kind != s.req.Kind {
				return bad(fmt.Sprintf("an entry of %q (%s), not of %s", truncate(e.Site, 100), truncate(e.Kind, 20), s.req.Site))
			}
			if e.Cursor == "" || sitelog.ValidCursor(e.Cursor) != nil {
				return bad("an entry without a valid cursor")
			}
			if !s.ended {
				limit := s.req.Limit
				if limit <= 0 {
					limit = sitelog.DefaultLimit
				}
				if s.n++; s.n > limit {
					return bad("more entries than asked for")
				}
			}
		case f.Start != nil:
			if sitelog.ValidCursor(*f.Start) != nil || s.ended {
				return bad("a bad start")
			}
			s.start = *f.Start
		case f.End != nil:
			if sitelog.ValidCursor(*f.End) != nil || s.ended {
				return bad("a bad end")
			}
			s.ended = true
		}
		return f, nil
	}
}

// Reading is a log read from one server (its cursors unchanged) or merged
// from several (merged cursors).
type Reading struct {
	req     Request
	merged  bool
	every   time.Duration
	streams []*stream
}

// nameRe is the names of sources in merged cursors (mtls identity names).
var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// ParseMerged parses a merged cursor: source name → its cursor ("" for
// "from its oldest entry").
func ParseMerged(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxSources {
		return nil, fmt.Errorf("%w: more than %d parts", ErrBadCursor, MaxSources)
	}
	for _, p := range parts {
		name, c, ok := strings.Cut(p, "@")
		if !ok || !nameRe.MatchString(name) || sitelog.ValidCursor(c) != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadCursor, truncate(p, 100))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: %s twice", ErrBadCursor, name)
		}
		out[name] = c
	}
	return out, nil
}

// formatMerged is the merged cursor of positions (in sources' order).
func formatMerged(names, pos []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('@')
		b.WriteString(pos[i])
	}
	return b.String()
}

// Open starts req on sources: one source gives its cursors as they are
// (req.After is its own); with merged, req.After is a merged cursor
// (ParseMerged) and every source gets its own part ("" for a source it does
// not name). every is how often a followed reading reports (Run's tick).
// Every source must answer: the first failure is returned (wrapping
// ErrUnreachable, ErrBadCursor or a *RemoteError).
func Open(ctx context.Context, sources []Source, req Request, merged bool, every time.Duration) (*Reading, error) {
	if len(sources) == 0 || len(sources) > MaxSources || (!merged && len(sources) != 1) {
		return nil, fmt.Errorf("logmesh: %d sources", len(sources))
	}
	afters := map[string]string{}
	if merged {
		var err error
		if afters, err = ParseMerged(req.After); err != nil {
			return nil, err
		}
		for _, s := range sources {
			if !nameRe.MatchString(s.Name) {
				return nil, fmt.Errorf("logmesh: source name %q", s.Name)
			}
		}
	} else if err := sitelog.ValidCursor(req.After); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	r := &Reading{req: req, merged: merged, every: every}
	type result struct {
		i   int
		s   *stream
		err error
	}
	results := make(chan result, len(sources))
	for i, src := range sources {
		sreq := req
		if merged {
			sreq.After = afters[src.Name]
		}
		go func() {
			s, err := openStream(ctx, src, sreq)
			results <- result{i, s, err}
		}()
	}
	r.streams = make([]*stream, len(sources))
	var first error
	for range sources {
		res := <-results
		if res.err != nil && first == nil {
			first = res.err
		}
		r.streams[res.i] = res.s
	}
	if first != nil {
		r.Close()
		return nil, first
	}
	return r, nil
}

// Close closes the connections.
func (r *Reading) Close() error {
	for _, s := range r.streams {
		if s != nil {
			s.conn.Close()
		}
	}
	return nil
}

// Run emits the last req.Limit matching entries of all sources, oldest
// first (merged by time), then calls tick with how many it emitted; with
// Follow it goes on with every new entry as it arrives, calling tick every
// `every` with how many came, until ctx ends (nil) or a server fails
// (ErrUnreachable) or emit or tick fails.
func (r *Reading) Run(ctx context.Context, emit func(sitelog.Entry) error, tick func(n int) error) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	done := make(chan struct{})
	defer close(done)
	type item struct {
		src int
		e   sitelog.Entry
	}
	// The initial readings, in full.
	var all []item
	size := 0 // bytes of the streams before the current one
	for i, s := range r.streams {
		for !s.ended {
			if size+s.size > MaxInitial {
				return fmt.Errorf("%w: over %d bytes (%s)", ErrTooLarge, MaxInitial, s.name)
			}
			f, err := s.next()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if f.Entry != nil {
				all = append(all, item{i, *f.Entry})
			}
		}
		size += s.size
	}
	names := make([]string, len(r.streams))
	pos := make([]string, len(r.streams))
	for i, s := range r.streams {
		names[i], pos[i] = s.name, s.start
	}
	out := func(it item) sitelog.Entry {
		e := it.e
		pos[it.src] = e.Cursor
		if r.merged {
			e.Cursor = formatMerged(names, pos)
		}
		return e
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].e.Time.Before(all[j].e.Time) })
	limit := r.req.Limit
	if limit <= 0 {
		limit = sitelog.DefaultLimit
	}
	cut := max(0, len(all)-limit)
	for i, it := range all {
		e := out(it)
		if i < cut {
			continue
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	if err := tick(len(all) - cut); err != nil || !r.req.Follow {
		return err
	}
	// Following: each server's entries as they come.
	items := make(chan item, 256)
	errs := make(chan error, len(r.streams))
	for i, s := range r.streams {
		go func() {
			for {
				f, err := s.next()
				if err != nil {
					errs <- err // buffered: never blocks
					return
				}
				if f.Entry != nil {
					select {
					case items <- item{i, *f.Entry}:
					case <-done:
						return
					}
				}
			}
		}()
	}
	t := time.NewTicker(r.every)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case it := <-items:
			n++
			if err := emit(out(it)); err != nil {
				return err
			}
		case <-t.C:
			if err := tick(n); err != nil {
				return err
			}
			n = 0
		}
	}
}

// Names are the sources' names of a merged cursor, sorted (for messages
// and tests).
func Names(merged string) []string {
	m, _ := ParseMerged(merged)
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
