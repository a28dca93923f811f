package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/sitelog"
)

// logsReconnectDelay is how long `site logs --follow` waits before it
// reconnects a broken stream.
const logsReconnectDelay = time.Second

func newSiteLogsCmd(o *siteOpts) *cobra.Command {
	var (
		q   apiclient.LogsQuery
		php bool
	)
	cmd := &cobra.Command{
		Use:   "logs DOMAIN",
		Short: "Show a site's access log or PHP error log, filtered or followed",
		Long: `Show the site's access log (every request the edge answered: time, status,
method, path, bytes, duration, page cache, client IP, request id) or, with
--php, its PHP error log (warnings, errors and error_log() lines of its pool),
oldest first: the last --limit entries that match, then with --follow every
new one as it is written, until interrupted. A broken stream is reconnected
and continues right after the last entry shown (nothing lost, nothing twice).

Logs are rotated and bounded: each site keeps up to 4 MiB of each log by
default (docs/operations.md, Logs). -o json prints one JSON object per line.`,
		Example: `  aipress site logs blog.localhost
  aipress site logs blog.localhost --status 5xx --since 1h
  aipress site logs blog.localhost --status 404,429 --follow
  aipress site logs blog.localhost --php --since "2026-12-06 10:00:00"
  aipress site logs blog.localhost --follow -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			if php {
				if q.Status != "" {
					return errors.New("--status filters the access log; the PHP log has no status")
				}
				q.Kind = sitelog.KindPHP
			}
			if _, err := sitelog.ParseStatus(q.Status); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			shown := 0
			var cursor string
			print := func(e apiclient.LogEntry) error {
				shown++
				cursor = e.Cursor
				return printLogEntry(w, o.output, e)
			}
			ctx := cmd.Context()
			for {
				qq := q
				if cursor != "" {
					qq.After, qq.Limit = cursor, sitelog.MaxLimit
				}
				err := c.SiteLogs(ctx, args[0], qq, print)
				if !q.Follow || err == nil || ctx.Err() != nil || !reconnectable(err) {
					if err == nil && !q.Follow && shown == 0 && o.output == "table" {
						fmt.Fprintf(cmd.ErrOrStderr(), "No %s log entries match for %s.\n", kindName(q.Kind), args[0])
					}
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "log stream broken (%v); reconnecting\n", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(logsReconnectDelay):
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&q.Follow, "follow", "f", false, "keep printing new entries until interrupted")
	f.StringVar(&q.Since, "since", "", "only entries since a duration ago (15m, 2h) or a time (RFC 3339 or \"2006-01-02 15:04:05\" UTC)")
	f.StringVar(&q.Status, "status", "", "only requests with these statuses: codes or classes, comma-separated (5xx, 404,429)")
	f.BoolVar(&php, "php", false, "show the PHP error log instead of the access log")
	f.IntVar(&q.Limit, "limit", 100, fmt.Sprintf("the last N matching entries (1-%d)", sitelog.MaxLimit))
	cmd.Flags().SortFlags = false
	return cmd
}

// reconnectable reports whether a follow may retry after err: a broken
// connection or stream, or a server error; not a refusal (4xx).
func reconnectable(err error) bool {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500 && ae.Status != 501
	}
	return !errors.Is(err, context.Canceled)
}

func kindName(kind string) string {
	if kind == sitelog.KindPHP {
		return "PHP"
	}
	return "access"
}

// printLogEntry prints e as a line of text, a JSON line or a YAML document.
func printLogEntry(w io.Writer, format string, e apiclient.LogEntry) error {
	switch format {
	case "json":
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return printData(w, format, e)
	}
	ts := e.Time.UTC().Format("2006-01-02 15:04:05.000")
	var err error
	if e.Kind == sitelog.KindPHP {
		_, err = fmt.Fprintf(w, "%s  %-12s %s\n", ts, e.Level, strings.ReplaceAll(e.Message, "\n", "\n    "))
	} else {
		_, err = fmt.Fprintf(w, "%s  %d %s %s  %dB %.1fms %s %s %s\n", ts, e.Status, e.Method, e.Path,
			e.Bytes, e.DurationMS, dash(e.Cache), dash(e.ClientIP), dash(e.RequestID))
	}
	return err
}
