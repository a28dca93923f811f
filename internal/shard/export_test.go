package shard

import (
	"context"

	"github.com/aipress/aipress/internal/site"
)

// SetCrashAt makes an in-place restore call fn at its crash points
// ("staged": staging complete, before the swap is committed; "swapping":
// committed, before the swap) and stop there, without cleanup, when fn
// returns an error — what a kill -9 at that point leaves. A DB password
// rotation has its own points: "rotate-created" (the new account exists),
// "rotate-switching" (secrets.json names it, wp-config.php does not yet)
// and "rotate-dropped" (the old account is gone, the rotation is not yet
// marked done). A code job has "code-applied" (changed, not yet checked:
// the snapshot's marker is there).
func SetCrashAt(s *Shard, fn func(point string) error) { s.crashAt = fn }

// LoginKeyFor is the login key the shard would write into st's
// wp-config.php in docroot.
func LoginKeyFor(ctx context.Context, s *Shard, st *site.Site, docroot string) string {
	return s.loginKey(ctx, st, Names{Docroot: docroot})
}
