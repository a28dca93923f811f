// Package agent is the client side of the control plane's pull-based
// federation API: a shard agent's view of its sites (Sites, an
// implementation of shard.Sites over GET /v1/agent/sites and the report
// routes), its registration and heartbeat, and an edge's watch of the
// routing table (Routes over GET /v1/routes).
//
// Both watchers list once, then follow the changes from the list's
// revision with long polls, keeping the revision to resume from; a 410
// (the revision's tombstones were pruned) makes them list again, and
// network or server errors are retried with backoff from the same
// revision, so a control-plane restart or a network cut loses nothing.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// Watch defaults.
const (
	DefaultWait       = 30 * time.Second
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// follower runs list, then watch again and again, until ctx is done.
type follower struct {
	list  func(context.Context) error
	watch func(context.Context) error
	// minBackoff and maxBackoff bound the wait after an error.
	minBackoff, maxBackoff time.Duration
	log                    *slog.Logger
}

func (f follower) run(ctx context.Context) error {
	listed, justListed := false, false
	backoff := f.minBackoff
	for ctx.Err() == nil {
		var err error
		if !listed {
			err = f.list(ctx)
			listed, justListed = err == nil, err == nil
		} else {
			err = f.watch(ctx)
			if apiclient.IsExpired(err) || errors.Is(err, store.ErrExpired) {
				f.log.Info("watch revision expired; listing again")
				listed = false
				if !justListed {
					continue
				}
				// Expired right after a list: back off rather than spin.
			}
			justListed = false
		}
		if err == nil {
			backoff = f.minBackoff
			continue
		}
		if ctx.Err() != nil {
			break
		}
		f.log.Warn("watch failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, f.maxBackoff)
	}
	return nil
}

func defaults(wait, minB, maxB *time.Duration, log **slog.Logger) {
	if *wait <= 0 {
		*wait = DefaultWait
	}
	if *minB <= 0 {
		*minB = DefaultMinBackoff
	}
	if *maxB < *minB {
		*maxB = max(DefaultMaxBackoff, *minB)
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
}
