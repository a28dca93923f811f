package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/store"
)

// SiteLogs finds a site's logs where they are: the access log its edges
// write and the PHP error log its shard's pool writes (package sitelog).
// Open starts a reading of st's log of kind (sitelog.KindAccess or
// KindPHP) for q, followed or not. Its errors: ErrLogsElsewhere (no way to
// read that log from here: 501), ErrBadCursor (q.After is not a cursor of
// this log: 400), ErrLogsUnreachable (a machine keeping the log did not
// answer: 502), ErrNoLogSources (no machine to ask: 503) (docs/
// operations.md, Logs).
type SiteLogs interface {
	Open(ctx context.Context, st *site.Site, kind string, q sitelog.Query, follow bool) (LogReading, error)
}

// LogReading is an opened reading of a log. Run emits the last q.Limit
// matching entries, oldest first, and calls tick with how many; when
// followed it goes on emitting each new entry and calling tick every
// LogsFollowInterval with how many came, until ctx ends (nil) or emit,
// tick or the reading fails. Close releases it (after Run, or instead).
type LogReading interface {
	Run(ctx context.Context, emit func(sitelog.Entry) error, tick func(n int) error) error
	Close() error
}

// Errors of SiteLogs.Open.
var (
	// ErrLogsElsewhere: a site's log is not on this machine and cannot
	// be read from here.
	ErrLogsElsewhere = errors.New("the site's logs are kept on another machine")
	// ErrBadCursor: the after cursor is not one of this log's.
	ErrBadCursor = errors.New("not a cursor of this log")
	// ErrLogsUnreachable: a shard or edge keeping the log did not answer.
	ErrLogsUnreachable = errors.New("the machine keeping the log cannot be reached")
	// ErrNoLogSources: no edge has registered where it serves its logs.
	ErrNoLogSources = errors.New("no machine to read the log from")
)

// maxLogsAfter bounds the after parameter: a merged cursor of
// logmesh.MaxSources edges (each "edge-ID.digest@inode:offset", under 128
// bytes) fits.
const maxLogsAfter = logmesh.MaxSources * 128

// LogsFollowInterval is how often a followed log is read again.
const LogsFollowInterval = 250 * time.Millisecond

// logsKeepalive is how often a followed log with nothing new sends an empty
// line, so that proxies and clients see the stream alive.
const logsKeepalive = 15 * time.Second

// getSiteLogs is GET /v1/sites/{name}/logs: the site's access or PHP log
// as JSON lines (sitelog.Entry), oldest first; with follow, the stream stays
// open and carries each new entry.
func (s *server) getSiteLogs(c *call) (response, error) {
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	q := c.r.URL.Query()
	kind := q.Get("kind")
	switch kind {
	case "":
		kind = sitelog.KindAccess
	case sitelog.KindAccess, sitelog.KindPHP:
	default:
		return response{}, badRequest("kind %q: want %s or %s", kind, sitelog.KindAccess, sitelog.KindPHP)
	}
	var lq sitelog.Query
	if lq.Since, err = sitelog.ParseSince(q.Get("since"), s.cfg.Clock()); err != nil {
		return response{}, badRequest("%v", err)
	}
	if lq.Status, err = sitelog.ParseStatus(q.Get("status")); err != nil {
		return response{}, badRequest("%v", err)
	}
	if len(lq.Status) > 0 && kind == sitelog.KindPHP {
		return response{}, badRequest("status filters the access log; the PHP log has no status")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > sitelog.MaxLimit {
			return response{}, badRequest("limit %q: want 1-%d", v, sitelog.MaxLimit)
		}
		lq.Limit = n
	}
	lq.After = q.Get("after")
	if len(lq.After) > maxLogsAfter {
		return response{}, badRequest("after: too long")
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			return response{}, badRequest("follow %q: want true or false", v)
		}
	}
	st, err := s.cfg.Store.GetSite(c.r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, siteNotFound(name)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get site %q: %w", name, err))
	}
	if s.cfg.Logs == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "this control plane reads no site logs")
	}
	ctx := c.r.Context()
	reading, err := s.cfg.Logs.Open(ctx, st, kind, lq, follow)
	where := map[string]string{sitelog.KindAccess: "edges", sitelog.KindPHP: "shard"}[kind]
	switch {
	case err == nil:
	case errors.Is(err, ErrBadCursor):
		return response{}, HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Msg: "after: not a cursor of this log", Err: err}
	case errors.Is(err, ErrLogsElsewhere):
		return response{}, HTTPError{Status: http.StatusNotImplemented, Code: CodeUnimplemented,
			Msg: "the site's " + kind + " log is kept on its " + where + "; this control plane cannot read it (docs/operations.md, Logs)", Err: err}
	case errors.Is(err, ErrNoLogSources):
		return response{}, HTTPError{Status: http.StatusServiceUnavailable, Code: CodeInternal,
			Msg: "no edge has registered the address of its logs (aipress edge --logs-addr; docs/operations.md, Logs)", Err: err}
	case errors.Is(err, ErrLogsUnreachable):
		return response{}, HTTPError{Status: http.StatusBadGateway, Code: CodeInternal,
			Msg: "the site's " + kind + " log is kept on its " + where + ", which did not answer; try again (the cause is in the control plane's log)", Err: err}
	default:
		return response{}, internal(fmt.Errorf("logs of %q: %w", name, err))
	}
	c.longPoll = follow
	return response{contentType: "application/x-ndjson", stream: func(w http.ResponseWriter) error {
		defer reading.Close()
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		idle, every, first := 0, int(logsKeepalive/LogsFollowInterval), true
		return reading.Run(ctx, func(e sitelog.Entry) error { return enc.Encode(e) }, func(n int) error {
			if !follow {
				return nil
			}
			if n == 0 && !first {
				if idle++; idle < every {
					return nil
				}
				if _, err := w.Write([]byte("\n")); err != nil {
					return err
				}
			}
			first, idle = false, 0
			return rc.Flush()
		})
	}}, nil
}

// LocalLogs are the logs on this process's machine: the access logs of its
// edge (AccessDir, an edge's sitelog directory; empty: no edge here) and the
// PHP logs of the shards whose data directories are ShardsDir/<shard name>
// (`aipress up`, and `aipress server`'s child shards). Every other log is
// ErrLogsElsewhere. Paths come from the platform's layout (package
// shardlayout) and the site's name, UID and shard as the store holds them;
// the request's words never become a path.
type LocalLogs struct {
	AccessDir string
	ShardsDir string
	// FlushAccess, if set, writes what this process's edge holds in
	// memory (sitelog.Writer.Flush; its failures are its own to report)
	// before an access log is read, so that a reading shows every request
	// answered before it. Followers need not: the edge writes its lines
	// every 250 ms.
	FlushAccess func()
}

// Open implements SiteLogs.
func (l LocalLogs) Open(_ context.Context, st *site.Site, kind string, q sitelog.Query, follow bool) (LogReading, error) {
	src, err := l.Source(st, kind)
	if err != nil {
		return nil, err
	}
	if err := sitelog.ValidCursor(q.After); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	return localReading{src: src, q: q, follow: follow}, nil
}

// localReading reads a log on this machine.
type localReading struct {
	src    sitelog.Source
	q      sitelog.Query
	follow bool
}

func (r localReading) Close() error { return nil }

func (r localReading) Run(ctx context.Context, emit func(sitelog.Entry) error, tick func(n int) error) error {
	n := 0
	cursor, err := sitelog.Read(ctx, r.src, r.q, func(e sitelog.Entry) error { n++; return emit(e) })
	if err != nil {
		return err
	}
	if err := tick(n); err != nil || !r.follow {
		return err
	}
	return sitelog.Follow(ctx, r.src, r.q, cursor, LogsFollowInterval, emit, tick)
}

// Source is the file set of st's log of kind on this machine, or an error
// wrapping ErrLogsElsewhere.
func (l LocalLogs) Source(st *site.Site, kind string) (sitelog.Source, error) {
	name := st.Metadata.Name
	if err := sitelog.CheckSite(name); err != nil {
		return sitelog.Source{}, err
	}
	switch kind {
	case sitelog.KindAccess:
		if l.AccessDir == "" {
			return sitelog.Source{}, fmt.Errorf("access log of %s: %w", name, ErrLogsElsewhere)
		}
		if l.FlushAccess != nil {
			l.FlushAccess()
		}
		return sitelog.Source{Dir: filepath.Join(l.AccessDir, name), Base: sitelog.AccessFile, Kind: kind, Site: name}, nil
	case sitelog.KindPHP:
		sh := st.Status.Shard
		if sh == "" {
			// Not placed yet: no log anywhere.
			return sitelog.PHPSource(name, ""), nil
		}
		if l.ShardsDir == "" || sh != filepath.Base(sh) || sh == "." || sh == ".." {
			return sitelog.Source{}, fmt.Errorf("PHP log of %s on shard %q: %w", name, sh, ErrLogsElsewhere)
		}
		dir := filepath.Join(l.ShardsDir, sh)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return sitelog.Source{}, fmt.Errorf("PHP log of %s on shard %q: %w", name, sh, ErrLogsElsewhere)
		}
		n := shardlayout.Layout{Name: sh, Dir: dir}.Site(st.Metadata.UID)
		return sitelog.PHPSource(name, n.LogsDir()), nil
	}
	return sitelog.Source{}, fmt.Errorf("log kind %q", kind)
}
