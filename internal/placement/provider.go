package placement

import (
	"context"
	"errors"
	"fmt"
)

// ErrBadShard means a Provider returned a shard that cannot take the site it
// was created for (no name, a missing constraint label, cordoned, draining
// or full).
var ErrBadShard = errors.New("provider returned an unusable shard")

// Provider creates shards: local processes today, Kubernetes later.
//
// Contract: CreateShard starts a new, empty shard whose labels include
// labels (it may add its own, e.g. the provider's kind) and returns it. It
// may return before the shard is up: Healthy false is fine, and the index
// treats the shard as Starting until an update reports it healthy, so sites
// placed meanwhile wait on it. Capacity 0 means DefaultCapacity. CreateShard
// must be idempotent on retry: when a call fails or its context ends after
// creation began, calling again with the same labels must return the shard
// that was begun (or a new one having cleaned up the first), never leave
// two. It must be safe for concurrent use; PlaceOrGrow makes at most one
// call per constraint set at a time.
type Provider interface {
	CreateShard(ctx context.Context, labels map[string]string) (Shard, error)
}

// growCall is one shard creation in flight, shared by every placement that
// found no capacity for the same constraints meanwhile.
type growCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// PlaceOrGrow places req.Site through idx, and when no shard has capacity
// asks p for a new shard labelled with req.Constraints, adds it to idx and
// places the site on it. Concurrent placements that find no capacity for the
// same constraints share one creation: a burst that overflows by fewer sites
// than a shard holds creates exactly one shard. It fails with the provider's
// error, ErrBadShard, ErrInvalid or ctx's error.
func PlaceOrGrow(ctx context.Context, idx *Index, p Provider, req Request) (string, error) {
	if req.Site == "" {
		return "", fmt.Errorf("placement: place: empty site name: %w", ErrInvalid)
	}
	key := labelsKey(req.Constraints)
	for {
		shard, call, leader, err := idx.placeOrJoinGrow(req, key)
		if err == nil {
			return shard, nil
		}
		if !errors.Is(err, ErrNoCapacity) {
			return "", err
		}
		if !leader {
			// Another placement is creating a shard for these
			// constraints: wait for it, then try again. Every round
			// follows a successful creation, so this makes progress.
			select {
			case <-call.done:
			case <-ctx.Done():
				return "", fmt.Errorf("placement: place site %q: waiting for a new shard: %w", req.Site, ctx.Err())
			}
			if call.err != nil {
				return "", fmt.Errorf("placement: place site %q: %w", req.Site, call.err)
			}
			continue
		}
		s, cerr := p.CreateShard(ctx, cloneLabels(req.Constraints))
		if cerr != nil {
			cerr = fmt.Errorf("creating a shard (%v): %w", err, cerr)
		}
		shard, err = idx.finishGrow(key, call, req, s, cerr)
		if err != nil {
			return "", fmt.Errorf("placement: place site %q: %w", req.Site, err)
		}
		return shard, nil
	}
}

// placeOrJoinGrow places req, or, when no shard has capacity, returns the
// creation in flight for key (leader false) or registers a new one that the
// caller must carry out and finish (leader true). Trying to place and
// joining happen under one lock, so a placement never starts a creation
// after another has just added room.
func (x *Index) placeOrJoinGrow(req Request, key string) (shard string, call *growCall, leader bool, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	shard, err = x.placeLocked(req)
	if err == nil || !errors.Is(err, ErrNoCapacity) {
		return shard, nil, false, err
	}
	if c, ok := x.grows[key]; ok {
		return "", c, false, err
	}
	c := &growCall{done: make(chan struct{})}
	x.grows[key] = c
	return "", c, true, err
}

// finishGrow adds the shard a provider created (or records its error),
// places req's site on it and wakes the placements waiting on call. Adding
// and placing happen under one lock, so the leader's site gets a slot on the
// shard it created.
func (x *Index) finishGrow(key string, call *growCall, req Request, s Shard, err error) (string, error) {
	x.mu.Lock()
	defer func() {
		call.err = err
		delete(x.grows, key)
		close(call.done)
		x.mu.Unlock()
	}()
	if err != nil {
		return "", err
	}
	if s.Name == "" {
		err = fmt.Errorf("new shard has no name: %w", ErrBadShard)
		return "", err
	}
	if !s.Healthy {
		s.Starting = true
	}
	e, ok := x.byName[s.Name]
	if ok {
		// An idempotent retry returned a shard we hold already.
		x.set(e, s)
	} else {
		e = x.addLocked(s)
	}
	if r, ok := x.sites[req.Site]; ok {
		return r.shard.Name, nil
	}
	if !eligible(&e.Shard, e.Sites, req.Constraints) {
		nc := newNoCapacity(req)
		nc.count(&e.Shard, e.Sites)
		err = fmt.Errorf("new shard %q (labels %s) cannot take the site: %v: %w", s.Name, FormatLabels(s.Labels), nc, ErrBadShard)
		return "", err
	}
	x.assignLocked(req.Site, req.Tenant, e)
	return e.Name, nil
}
