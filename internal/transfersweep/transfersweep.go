// Package transfersweep removes export archives from the transfer store
// once they are older than their expiry: an export job's archive
// (exports/<site uid>/<job>.tar.gz, or .xml for WXR) is there to be
// downloaded, not kept; GET /v1/jobs/{id}/archive answers 410 Gone after.
//
// The control plane's leader runs a Sweeper; its clock is injected.
package transfersweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Prefix is where export jobs write their archives in the transfer store
// (store.ExportKey, store.WXRExportKey).
const Prefix = "exports/"

// DefaultExpiry is how long an export archive is kept when the
// configuration names no expiry.
const DefaultExpiry = 7 * 24 * time.Hour

// DefaultInterval is how often Run sweeps.
const DefaultInterval = time.Hour

// Sweeper removes export archives older than Expiry (by their
// modification time in the bucket) from Bucket.
type Sweeper struct {
	Bucket *blob.Bucket
	// Expiry is an archive's lifetime: 0 means DefaultExpiry, a negative
	// one keeps archives for ever (Run does nothing).
	Expiry time.Duration
	// Interval between sweeps in Run: 0 means DefaultInterval.
	Interval time.Duration
	Clock    func() time.Time // nil: time.Now
	Log      *slog.Logger     // nil: discarded
}

func (s *Sweeper) expiry() time.Duration {
	if s.Expiry == 0 {
		return DefaultExpiry
	}
	return s.Expiry
}

func (s *Sweeper) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock()
}

// Sweep removes every archive below Prefix modified before now - Expiry
// and returns how many it removed and their bytes. An archive removed by
// someone else meanwhile is not an error.
func (s *Sweeper) Sweep(ctx context.Context) (removed int, bytes int64, err error) {
	if s.expiry() < 0 {
		return 0, 0, nil
	}
	cutoff := s.now().Add(-s.expiry())
	it := s.Bucket.List(&blob.ListOptions{Prefix: Prefix})
	var errs []error
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return removed, bytes, fmt.Errorf("transfersweep: list %s: %w", Prefix, err)
		}
		if obj.IsDir || !obj.ModTime.Before(cutoff) {
			continue
		}
		if err := s.Bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("transfersweep: delete %s: %w", obj.Key, err))
			continue
		}
		removed++
		bytes += obj.Size
	}
	return removed, bytes, errors.Join(errs...)
}

// Run sweeps at once and then every Interval until ctx ends; failures
// are logged and the next sweep tries again. It returns ctx's error.
func (s *Sweeper) Run(ctx context.Context) error {
	if s.expiry() < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := s.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, b, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("sweeping expired export archives", "err", err)
		}
		if n > 0 {
			log.Info("removed expired export archives", "archives", n, "bytes", b, "expiry", s.expiry())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
