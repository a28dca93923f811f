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

	"github.com/aipress/aipress/internal/shardlayout"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/store"
)

// SiteLogs finds a site's logs where this process can read them: the
// access log its edge writes and the PHP error log its shard's pool writes
// (package sitelog). Source returns the source of kind (sitelog.KindAccess
// or sitelog.KindPHP) for st, or an error wrapping ErrLogsElsewhere when
// that log lives on a machine this process does not read (docs/
// operations.md, Logs).
type SiteLogs interface {
	Source(st *site.Site, kind string) (sitelog.Source, error)
}

// ErrLogsElsewhere: a site's log is not on this machine.
var ErrLogsElsewhere = errors.New("the site's logs are kept on another machine")

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
	if err := sitelog.ValidCursor(lq.After); err != nil {
		return response{}, badRequest("after: %v", err)
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
	src, err := s.cfg.Logs.Source(st, kind)
	if errors.Is(err, ErrLogsElsewhere) {
		return response{}, HTTPError{Status: http.StatusNotImplemented, Code: CodeUnimplemented,
			Msg: "the site's " + kind + " log is kept on its " + map[string]string{sitelog.KindAccess: "edges", sitelog.KindPHP: "shard"}[kind] +
				"; this control plane cannot read it (docs/operations.md, Logs)", Err: err}
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("logs of %q: %w", name, err))
	}
	c.longPoll = follow
	ctx := c.r.Context()
	return response{contentType: "application/x-ndjson", stream: func(w http.ResponseWriter) error {
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		emit := func(e sitelog.Entry) error { return enc.Encode(e) }
		cursor, err := sitelog.Read(ctx, src, lq, emit)
		if err != nil || !follow {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		return followLogs(ctx, src, lq, cursor, w, rc, emit)
	}}, nil
}

// followLogs streams new entries until the client goes away, flushing
// after each reading that found some and sending an empty line when nothing
// came for logsKeepalive (a client skips empty lines).
func followLogs(ctx context.Context, src sitelog.Source, q sitelog.Query, cursor string, w http.ResponseWriter, rc *http.ResponseController, emit func(sitelog.Entry) error) error {
	idle := 0
	every := int(logsKeepalive / LogsFollowInterval)
	return sitelog.Follow(ctx, src, q, cursor, LogsFollowInterval, emit, func(n int) error {
		if n == 0 {
			if idle++; idle < every {
				return nil
			}
			if _, err := w.Write([]byte("\n")); err != nil {
				return err
			}
		}
		idle = 0
		return rc.Flush()
	})
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

// Source implements SiteLogs.
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
