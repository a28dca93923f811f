package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Locking. Every process that reads or adds data holds a lock object
// locks/<random id> (sealed JSON: exclusive flag, owner, time), rewritten
// every LockTTL/3. A lock whose time is older than LockTTL belongs to a dead
// process: it is ignored and deleted by whoever finds it.
//
// Backups and restores take shared locks (one lock object per Repo, shared
// by all its sessions); the final phase of Prune (deleting packs and
// replacing index files) takes an exclusive lock. Acquiring is
// write-then-check: a process writes its lock, then lists the others; a
// shared lock that finds an exclusive one withdraws and waits; an exclusive
// lock that finds shared ones keeps its object (so no new shared lock gets
// in) and waits for them to end; of two exclusive locks the older one wins.
// Object stores list their own writes (GCS, S3, files), so of two racing
// processes at least one sees the other.
//
// A holder that fails to refresh its lock for LockTTL has lost it: a
// backup then refuses to commit (its data may have been pruned).

// lockInfo is the plaintext of a lock object.
type lockInfo struct {
	Exclusive bool      `json:"exclusive"`
	Owner     string    `json:"owner"`
	Time      time.Time `json:"time"`
}

// heldLock is a lock this process holds, kept fresh in the background.
type heldLock struct {
	r         *Repo
	key       string
	exclusive bool
	stop      chan struct{}
	done      chan struct{}

	mu          sync.Mutex
	lastRefresh time.Time
	lost        error
}

// valid returns an error if the lock was lost (not refreshed in time, or
// its object deleted as stale by another process).
func (l *heldLock) valid(ctx context.Context) error {
	l.mu.Lock()
	lost, last := l.lost, l.lastRefresh
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if l.r.opts.Now().Sub(last) > l.r.opts.LockTTL {
		return fmt.Errorf("%w: lock %s not refreshed since %s", ErrLocked, l.key, last.Format(time.RFC3339))
	}
	ok, err := l.r.bucket.Exists(ctx, l.key)
	if err != nil {
		return fmt.Errorf("check lock: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: lock %s was removed by another process", ErrLocked, l.key)
	}
	return nil
}

func (l *heldLock) write(ctx context.Context, now time.Time) error {
	plain, err := json.Marshal(lockInfo{Exclusive: l.exclusive, Owner: l.r.opts.Owner, Time: now.UTC()})
	if err != nil {
		return err
	}
	return l.r.put(ctx, l.key, seal(l.r.keys.aead, nil, plain, []byte(aadLock)), false)
}

func (l *heldLock) refresher() {
	defer close(l.done)
	interval := l.r.opts.LockTTL / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := l.r.opts.Now()
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		err := l.write(ctx, now)
		cancel()
		l.mu.Lock()
		if now.Sub(l.lastRefresh) > l.r.opts.LockTTL && l.lost == nil {
			l.lost = fmt.Errorf("%w: lock %s expired before it was refreshed", ErrLocked, l.key)
		}
		if err == nil {
			l.lastRefresh = now
		}
		l.mu.Unlock()
	}
}

// release stops refreshing and deletes the lock object.
func (l *heldLock) release() error {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.r.bucket.Delete(ctx, l.key); err != nil {
		return fmt.Errorf("remove lock %s: %w", l.key, err)
	}
	return nil
}

// otherLock is a live lock of someone else.
type otherLock struct {
	key  string
	info lockInfo
}

// liveLocks lists the non-stale locks other than own, deleting stale ones.
func (r *Repo) liveLocks(ctx context.Context, own string) ([]otherLock, error) {
	objs, err := listAll(ctx, r.bucket, prefixLocks)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	now := r.opts.Now()
	var out []otherLock
	for _, o := range objs {
		if _, ok := objectName(o.Key, prefixLocks, 32); !ok || o.Key == own {
			continue
		}
		data, err := r.bucket.ReadAll(ctx, o.Key)
		if err != nil {
			continue // removed meanwhile
		}
		var info lockInfo
		plain, err := open(r.keys.aead, nil, data, []byte(aadLock))
		if err == nil {
			err = json.Unmarshal(plain, &info)
		}
		if err != nil {
			// Unreadable: judge by the object's own time, count it as
			// exclusive meanwhile (conservative).
			info = lockInfo{Exclusive: true, Owner: "unreadable lock", Time: o.ModTime}
		}
		if now.Sub(info.Time) > r.opts.LockTTL {
			_ = r.bucket.Delete(ctx, o.Key) // stale: its process is gone
			continue
		}
		out = append(out, otherLock{key: o.Key, info: info})
	}
	return out, nil
}

// lock acquires a shared or exclusive lock, waiting (polling every
// LockPoll) until ctx ends; then the error wraps ErrLocked.
func (r *Repo) lock(ctx context.Context, exclusive bool) (*heldLock, error) {
	l := &heldLock{r: r, key: prefixLocks + randomHex(16), exclusive: exclusive,
		stop: make(chan struct{}), done: make(chan struct{})}
	written := false
	cleanup := func() {
		if written {
			_ = r.bucket.Delete(context.WithoutCancel(ctx), l.key)
			written = false
		}
	}
	for {
		others, err := r.liveLocks(ctx, l.key)
		if err != nil {
			cleanup()
			return nil, err
		}
		blocker, yield := "", false
		for _, o := range others {
			switch {
			case !exclusive && o.info.Exclusive:
				blocker, yield = o.key, true
			case exclusive && !o.info.Exclusive:
				if blocker == "" {
					blocker = o.key // wait for it, keeping our lock in place
				}
			case exclusive && o.info.Exclusive:
				// The older exclusive lock wins; ties by key.
				if !written || o.info.Time.Before(l.lastRefresh) ||
					(o.info.Time.Equal(l.lastRefresh) && o.key < l.key) {
					blocker, yield = o.key, true
				}
			}
		}
		if blocker == "" {
			if written {
				go l.refresher()
				return l, nil
			}
			now := r.opts.Now()
			if err := l.write(ctx, now); err != nil {
				return nil, fmt.Errorf("write lock: %w", err)
			}
			l.lastRefresh, written = now, true
			continue // check again, now that ours is visible
		}
		if yield {
			cleanup()
		}
		// Jitter so that racing processes do not stay in step.
		wait := r.opts.LockPoll/2 + rand.N(r.opts.LockPoll/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			cleanup()
			return nil, fmt.Errorf("%w: waited for %s: %w", ErrLocked, strings.TrimPrefix(blocker, prefixLocks), ctx.Err())
		case <-t.C:
		}
		if written {
			// Keep an exclusive lock we are waiting with fresh.
			now := r.opts.Now()
			if now.Sub(l.lastRefresh) > r.opts.LockTTL/3 {
				if err := l.write(ctx, now); err == nil {
					l.lastRefresh = now
				}
			}
		}
	}
}

// lockManager shares one shared lock among a Repo's sessions.
type lockManager struct {
	r    *Repo
	mu   sync.Mutex
	held *heldLock
	refs map[*heldLock]int
}

// acquireShared returns the Repo's shared lock, taking it if needed; call
// the returned release when done.
func (m *lockManager) acquireShared(ctx context.Context) (*heldLock, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refs == nil {
		m.refs = map[*heldLock]int{}
	}
	if m.held != nil && m.held.valid(ctx) != nil {
		// A lost lock is not handed out again; the sessions holding it
		// fail their own check.
		m.held = nil
	}
	if m.held == nil {
		l, err := m.r.lock(ctx, false)
		if err != nil {
			return nil, nil, err
		}
		m.held = l
	}
	l := m.held
	m.refs[l]++
	var once sync.Once
	return l, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.refs[l]--
			if m.refs[l] == 0 {
				delete(m.refs, l)
				if m.held == l {
					m.held = nil
				}
				_ = l.release()
			}
		})
	}, nil
}
