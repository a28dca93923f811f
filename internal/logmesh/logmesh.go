// Package logmesh carries sites' logs from the machines that keep them to
// the control plane, which reads them only when a person asks
// (docs/operations.md, Logs): a shard's gateway serves its own sites' PHP
// logs and an edge serves the access logs it wrote, each over the ALPN
// protocol Proto behind mutual TLS that admits only a control-plane
// certificate (mtls.RoleControl).
//
// The protocol is JSON lines. The control plane sends one Request line;
// the server answers with frames, one JSON object a line:
//
//	{"ok":true}                            the site is here (else {"error":…,"code":"not_found"|"bad_request"|"unavailable"})
//	{"start":"C"}                          the cursor right before the first entry that follows
//	{"entry":{…}}                          a sitelog.Entry, oldest first (at most Request.Limit before "end")
//	{"end":"C"}                            the initial reading is complete; with Follow, new entries follow
//	{}                                     with Follow: nothing new for a while (a keepalive)
//
// Nothing a server says is trusted beyond the site asked for: the client
// refuses entries of another site or kind, lines over MaxFrame bytes,
// more entries than asked for, initial readings over MaxInitial bytes in
// all and malformed cursors.
//
// Reading merges the readings of several servers (every edge keeps its own
// part of a site's access log) by time, and gives each entry a merged
// cursor, one position per server ("name@ino:off,…"), so that a reading
// resumed after it continues on every server where it stopped.
package logmesh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/aipress/aipress/internal/sitelog"
)

// Proto is the ALPN protocol of log readings.
const Proto = "aipress-logs/1"

// Bounds of the protocol.
const (
	// MaxRequest bounds the request line.
	MaxRequest = 4 << 10
	// MaxFrame bounds a frame line a client accepts.
	MaxFrame = 256 << 10
	// MaxMessage bounds a PHP entry's message (with its continuation
	// lines) a server sends; longer ones are cut.
	MaxMessage = 64 << 10
	// MaxSources bounds the servers of one merged reading.
	MaxSources = 64
	// MaxInitial bounds the bytes of the frames of a reading's initial
	// part, over all its servers, that a client holds before merging
	// them: a hostile server's Limit entries of MaxFrame bytes each would
	// otherwise be gigabytes. A reading over it fails (ErrTooLarge).
	MaxInitial = 64 << 20
)

// keepaliveEvery is how often a followed reading with nothing new sends
// an empty frame, so a server learns early that its client went away.
const keepaliveEvery = 5 * time.Second

// Request is what the control plane asks: one log of one site.
type Request struct {
	Site   string                `json:"site"`
	UID    string                `json:"uid"`
	Kind   string                `json:"kind"` // sitelog.KindAccess or KindPHP
	Since  time.Time             `json:"since,omitzero"`
	Status []sitelog.StatusMatch `json:"status,omitempty"`
	Limit  int                   `json:"limit,omitempty"`
	// After is the server's own cursor (never a merged one).
	After  string `json:"after,omitempty"`
	Follow bool   `json:"follow,omitempty"`
}

var uidRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Check validates r as a server receives it.
func (r Request) Check() error {
	if err := sitelog.CheckSite(r.Site); err != nil {
		return err
	}
	if !uidRe.MatchString(r.UID) {
		return fmt.Errorf("logmesh: invalid site UID %q", r.UID)
	}
	if r.Kind != sitelog.KindAccess && r.Kind != sitelog.KindPHP {
		return fmt.Errorf("logmesh: log kind %q", r.Kind)
	}
	if r.Limit < 0 || r.Limit > sitelog.MaxLimit || len(r.Status) > 100 {
		return fmt.Errorf("logmesh: limit %d or %d statuses out of bounds", r.Limit, len(r.Status))
	}
	return sitelog.ValidCursor(r.After)
}

func (r Request) query() sitelog.Query {
	return sitelog.Query{Since: r.Since, Status: r.Status, Limit: r.Limit, After: r.After}
}

// frame is one line of a server's answer.
type frame struct {
	OK    bool           `json:"ok,omitempty"`
	Error string         `json:"error,omitempty"`
	Code  string         `json:"code,omitempty"`
	Start *string        `json:"start,omitempty"`
	End   *string        `json:"end,omitempty"`
	Entry *sitelog.Entry `json:"entry,omitempty"`
}

// Error codes of a server's refusal.
const (
	CodeNotFound    = "not_found"
	CodeBadRequest  = "bad_request"
	CodeUnavailable = "unavailable"
)

// ErrNotFound is what a Resolver returns for a site that is not this
// machine's to answer for.
var ErrNotFound = errors.New("logmesh: the site's log is not kept here")

// RemoteError is a server's refusal.
type RemoteError struct {
	Code, Msg string
}

func (e *RemoteError) Error() string { return "logmesh: refused (" + e.Code + "): " + e.Msg }

// IsNotFound reports whether err is a server saying the site is not its.
func IsNotFound(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == CodeNotFound
}

// Resolver returns the log of kind of the site with that name and UID
// when this machine keeps it for a site of its own, else an error wrapping
// ErrNotFound. The path must come from the machine's own knowledge of its
// sites, never from the request beyond naming which.
type Resolver func(ctx context.Context, site, uid, kind string) (sitelog.Source, error)

// Server answers readings on connections whose TLS already admitted the
// control plane.
type Server struct {
	Resolve Resolver
	// Flush, if set, is called before an access log is read (an edge's
	// buffered lines: sitelog.Writer.Flush).
	Flush func()
	// Every is how often a followed log is read again (default 250 ms).
	Every  time.Duration
	Logger *slog.Logger
}

// ServeConn answers one reading on c and closes it.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := s.Every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 1024)
	line, err := readLine(br, MaxRequest)
	if err != nil {
		log.Info("logmesh: bad request line", "err", err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	bw := bufio.NewWriterSize(c, 32<<10)
	write := func(f frame) error {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if len(b) > MaxFrame {
			return nil // cannot happen with MaxMessage; never send what a client refuses
		}
		_, err = bw.Write(b)
		return err
	}
	flush := func() error {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return bw.Flush()
	}
	refuse := func(code, msg string) {
		_ = write(frame{Error: msg, Code: code})
		_ = flush()
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		refuse(CodeBadRequest, "request: "+err.Error())
		return
	}
	if err := req.Check(); err != nil {
		refuse(CodeBadRequest, err.Error())
		return
	}
	src, err := s.Resolve(ctx, req.Site, req.UID, req.Kind)
	if errors.Is(err, ErrNotFound) {
		refuse(CodeNotFound, "no "+req.Kind+" log of "+req.Site+" here")
		return
	}
	if err != nil {
		log.Warn("logmesh: resolve", "site", req.Site, "err", err)
		refuse(CodeUnavailable, "the log cannot be read here")
		return
	}
	if req.Kind == sitelog.KindAccess && s.Flush != nil {
		s.Flush()
	}
	// The client sends nothing more: a read that returns means it went.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()
	if err := write(frame{OK: true}); err != nil {
		return
	}
	emit := func(e sitelog.Entry) error {
		if len(e.Message) > MaxMessage {
			e.Message = e.Message[:MaxMessage]
		}
		return write(frame{Entry: &e})
	}
	q := req.query()
	_, end, err := sitelog.ReadRange(ctx, src, q, func(start string) error { return write(frame{Start: &start}) }, emit)
	if err != nil {
		log.Warn("logmesh: read", "site", req.Site, "kind", req.Kind, "err", err)
		return
	}
	if err := write(frame{End: &end}); err != nil || flush() != nil || !req.Follow {
		return
	}
	idle, keep := 0, int(keepaliveEvery/every)
	err = sitelog.Follow(ctx, src, q, end, every, emit, func(n int) error {
		if n == 0 {
			if idle++; idle < keep {
				return nil
			}
			if _, err := bw.WriteString("{}\n"); err != nil {
				return err
			}
		}
		idle = 0
		return flush()
	})
	if err != nil && ctx.Err() == nil {
		log.Info("logmesh: follow ended", "site", req.Site, "kind", req.Kind, "err", err)
	}
}

// readLine reads one line of at most max bytes (without its newline).
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		b = append(b, chunk...)
		if len(b) > max {
			return nil, fmt.Errorf("logmesh: line longer than %d bytes", max)
		}
		if !isPrefix {
			return b, nil
		}
	}
}
