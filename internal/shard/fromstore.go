package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// FromStore adapts the control plane's store to Sites, for a shard that runs
// in the control plane's process (aipress up).
func FromStore(st store.Store) Sites { return storeSites{st} }

type storeSites struct{ st store.Store }

var errOtherUID = errors.New("site was re-created")

func (s storeSites) ListSites(ctx context.Context, shard string) ([]site.Site, error) {
	var out []site.Site
	opts := store.ListOptions{Shard: shard, Limit: 1000}
	for {
		page, err := s.st.ListSites(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Continue == "" {
			return out, nil
		}
		opts.Continue = page.Continue
	}
}

func (s storeSites) UpdateStatus(ctx context.Context, name, uid string, fn func(*site.Status)) error {
	_, err := s.st.UpdateSite(ctx, name, func(cur *site.Site) error {
		if cur.Metadata.UID != uid {
			return errOtherUID
		}
		fn(&cur.Status)
		return nil
	})
	if errors.Is(err, errOtherUID) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s storeSites) UpdateMove(ctx context.Context, name, uid string, fn func(*site.Move)) error {
	_, err := s.st.UpdateSite(ctx, name, func(cur *site.Site) error {
		if cur.Metadata.UID != uid || cur.Move == nil {
			return errOtherUID
		}
		fn(cur.Move)
		site.AdvanceMove(cur, time.Now().UTC())
		return nil
	})
	if errors.Is(err, errOtherUID) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s storeSites) Finalize(ctx context.Context, name, uid string) error {
	cur, err := s.st.GetSite(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize %s: %w", name, err)
	}
	if cur.Metadata.UID != uid {
		return nil
	}
	if err := s.st.DeleteSite(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("finalize %s: %w", name, err)
	}
	return nil
}
