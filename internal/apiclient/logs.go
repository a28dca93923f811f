package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/aipress/aipress/internal/sitelog"
)

// LogEntry is one line of GET /v1/sites/{name}/logs.
type LogEntry = sitelog.Entry

// LogsQuery selects a site's log entries (GET /v1/sites/{name}/logs).
type LogsQuery struct {
	Kind   string // sitelog.KindAccess (default) or sitelog.KindPHP
	Since  string // a duration back from now (15m) or a time (RFC 3339)
	Status string // e.g. "5xx", "404,429" (access log only)
	Limit  int    // the last Limit matching entries (0: the server's default)
	After  string // continue after the entry with this Cursor
	Follow bool   // keep the stream open for new entries
}

func (q LogsQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"kind": q.Kind, "since": q.Since, "status": q.Status, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	return v
}

// SiteLogs streams the site's log entries q selects to fn, oldest first;
// with q.Follow it returns only when ctx ends (nil), fn fails or the
// stream breaks (an error: reconnect with After set to the last entry's
// Cursor to lose nothing and repeat nothing).
func (c *Client) SiteLogs(ctx context.Context, name string, q LogsQuery, fn func(LogEntry) error) error {
	path := withQuery(sitePath(name)+"/logs", q.values())
	resp, err := c.getStream(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e LogEntry
		switch err := dec.Decode(&e); {
		case errors.Is(err, io.EOF): // a clean end (a broken one is io.ErrUnexpectedEOF)
			if q.Follow && ctx.Err() == nil {
				return fmt.Errorf("GET %s: the server ended the stream", path)
			}
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("GET %s: %w", path, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
