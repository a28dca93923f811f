package shard

import (
	"context"

	"github.com/aipress/aipress/internal/site"
)

// applyCore switches site st's docroot (n) to WordPress core want and
// migrates its database (wp_upgrade), returning whether anything changed
// and how to undo it. This stand-in, until several cores per shard exist
// (issue 12, part C, replaces this file), knows only the shard's one core.
func (s *Shard) applyCore(ctx context.Context, st *site.Site, n Names, want string) (changed bool, undo func(context.Context) error, err error) {
	if want == "" || want == s.core.Version {
		return false, nil, nil
	}
	return false, nil, publicf("WordPress core %s is not available on shard %s (it has %s)", want, s.cfg.Name, s.core.Version)
}
