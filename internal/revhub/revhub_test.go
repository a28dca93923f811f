package revhub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStore is a revision counter that counts how often it is read.
type fakeStore struct {
	rev   atomic.Int64
	reads atomic.Int64
}

func (f *fakeStore) current(context.Context) (int64, error) {
	f.reads.Add(1)
	return f.rev.Load(), nil
}

// newHub returns a hub that never polls on its own within a test: only
// Notify (and the first read) makes it read.
func newHub(f *fakeStore) *Hub {
	return New(Config{Current: f.current, Interval: time.Hour})
}

func TestWaitReturnsAtOnceWhenAhead(t *testing.T) {
	f := &fakeStore{}
	f.rev.Store(7)
	h := newHub(f)
	got, err := h.Wait(context.Background(), 6)
	if err != nil || got != 7 {
		t.Fatalf("Wait = %d, %v; want 7", got, err)
	}
	if h.Revision() != 7 {
		t.Errorf("Revision = %d", h.Revision())
	}
}

func TestBroadcastWakesAllWaitersWithOneRead(t *testing.T) {
	f := &fakeStore{}
	f.rev.Store(5)
	h := newHub(f)
	const n = 200
	var wg sync.WaitGroup
	results := make(chan int64, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := h.Wait(context.Background(), 5)
			if err != nil {
				t.Error(err)
			}
			results <- rev
		}()
	}
	// Wait until the hub has read the revision once and every waiter is
	// parked (no clock involved: we poll the hub's own state).
	for {
		h.mu.Lock()
		parked := h.waiters == n && h.rev == 5
		h.mu.Unlock()
		if parked {
			break
		}
		time.Sleep(time.Millisecond)
	}
	readsBefore := f.reads.Load()
	f.rev.Store(6)
	h.Notify()
	wg.Wait()
	close(results)
	for rev := range results {
		if rev != 6 {
			t.Errorf("waiter woke with %d, want 6", rev)
		}
	}
	if extra := f.reads.Load() - readsBefore; extra != 1 {
		t.Errorf("waking %d waiters took %d reads, want 1", n, extra)
	}
}

func TestUnchangedRevisionDoesNotWake(t *testing.T) {
	f := &fakeStore{}
	f.rev.Store(3)
	h := newHub(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.Wait(ctx, 3); done <- err }()
	for h.Revision() != 3 {
		time.Sleep(time.Millisecond)
	}
	for range 5 {
		h.Notify() // the revision did not move: nobody wakes
	}
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v without a new revision", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v", err)
	}
}

func TestReadErrorsAreRetried(t *testing.T) {
	var calls atomic.Int64
	h := New(Config{Interval: time.Millisecond, Current: func(context.Context) (int64, error) {
		if calls.Add(1) < 3 {
			return 0, errors.New("database is locked")
		}
		return 9, nil
	}})
	got, err := h.Wait(context.Background(), 1)
	if err != nil || got != 9 {
		t.Fatalf("Wait = %d, %v", got, err)
	}
}

// keyedStore is a change log: each write has a revision and the key it
// touched.
type keyedStore struct {
	mu      sync.Mutex
	log     []string // log[i] is the key revision i+1 touched
	queries atomic.Int64
}

func (k *keyedStore) write(key string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = append(k.log, key)
	return int64(len(k.log))
}

func (k *keyedStore) current(context.Context) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return int64(len(k.log)), nil
}

func (k *keyedStore) affected(_ context.Context, from int64) ([]string, int64, error) {
	k.queries.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.log[from:]...), int64(len(k.log)), nil
}

// A key waiter wakes for a change to its key only; one analysis query runs
// per move however many waiters there are; a waiter older than what the hub
// analysed returns at once.
func TestWaitKeyWakesOnlyItsKey(t *testing.T) {
	k := &keyedStore{}
	k.write("a")
	h := New(Config{Current: k.current, Affected: k.affected, Interval: time.Hour})

	// Older than the hub's base: answered at once (the caller re-queries).
	if rev, err := h.WaitKey(context.Background(), 0, "a"); err != nil || rev != 1 {
		t.Fatalf("WaitKey(0) = %d, %v; want 1 at once", rev, err)
	}

	const waiters = 50
	woke := make(chan string, 2*waiters)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range waiters {
		key := "b"
		if i%2 == 0 {
			key = "c"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.WaitKey(ctx, 1, key); err == nil {
				woke <- key
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them wait
	before := k.queries.Load()
	k.write("b")
	h.Notify()
	for range waiters / 2 {
		select {
		case key := <-woke:
			if key != "b" {
				t.Fatalf("a waiter for %q woke on a change to b", key)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiters for b not woken")
		}
	}
	select {
	case key := <-woke:
		t.Fatalf("a waiter for %q woke on a change to b", key)
	case <-time.After(100 * time.Millisecond):
	}
	if n := k.queries.Load() - before; n != 1 {
		t.Errorf("%d analysis queries for one move, want 1", n)
	}
	k.write("c")
	h.Notify()
	for range waiters / 2 {
		select {
		case key := <-woke:
			if key != "c" {
				t.Fatalf("woke %q", key)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiters for c not woken")
		}
	}
	cancel()
	wg.Wait()
}
