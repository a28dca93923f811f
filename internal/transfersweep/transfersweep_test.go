package transfersweep

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"
)

func TestSweep(t *testing.T) {
	ctx := context.Background()
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{CreateDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys := []string{"exports/uid-a/job1.tar.gz", "exports/uid-b/job2.xml", "imports/x/archive", "moves/uid-a/snap"}
	for _, k := range keys {
		if err := b.WriteAll(ctx, k, []byte("archive "+k), nil); err != nil {
			t.Fatal(err)
		}
	}
	written := time.Now()
	exists := func(k string) bool {
		ok, err := b.Exists(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tc := range []struct {
		name    string
		expiry  time.Duration
		now     time.Time
		removed int
	}{
		{"younger than the default expiry", 0, written.Add(6 * 24 * time.Hour), 0},
		{"kept for ever", -1, written.Add(365 * 24 * time.Hour), 0},
		{"younger than a day's expiry", 24 * time.Hour, written.Add(23 * time.Hour), 0},
		{"older than the default expiry", 0, written.Add(8 * 24 * time.Hour), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sweeper{Bucket: b, Expiry: tc.expiry, Clock: func() time.Time { return tc.now }}
			n, bytes, err := s.Sweep(ctx)
			if err != nil || n != tc.removed {
				t.Fatalf("Sweep: %d removed (%d bytes), %v; want %d", n, bytes, err, tc.removed)
			}
			for _, k := range keys {
				want := tc.removed == 0 || k[:len(Prefix)] != Prefix
				if exists(k) != want {
					t.Errorf("%s: exists %v, want %v", k, !want, want)
				}
			}
		})
	}
	// Nothing left to remove: a second sweep removes nothing, without error.
	s := &Sweeper{Bucket: b, Clock: func() time.Time { return written.Add(30 * 24 * time.Hour) }}
	if n, _, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d, %v", n, err)
	}
}

// TestRunSweepsAtOnce: Run sweeps when it starts (a restarted leader does
// not wait an interval) and stops with its context.
func TestRunSweepsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{CreateDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "exports/u/j.tar.gz", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	logged := make(chan string, 10)
	log := slog.New(chanHandler(logged))
	done := make(chan error, 1)
	go func() {
		done <- (&Sweeper{Bucket: b, Log: log, Interval: time.Hour, Clock: func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }}).Run(ctx)
	}()
	if msg := <-logged; msg != "removed expired export archives" {
		t.Fatalf("logged %q", msg)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run: %v", err)
	}
	if ok, _ := b.Exists(context.Background(), "exports/u/j.tar.gz"); ok {
		t.Error("the expired archive is still there after Run's first sweep")
	}
}

// chanHandler sends each record's message to c.
type chanHandler chan string

func (h chanHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error { h <- r.Message; return nil }
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h chanHandler) WithGroup(string) slog.Handler                 { return h }
