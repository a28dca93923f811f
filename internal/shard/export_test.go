package shard

import (
	"context"
	"path/filepath"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
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

// ApplyCore is s.applyCore for the site st, with the site locked as a
// code job holds it.
func ApplyCore(ctx context.Context, s *Shard, st *site.Site, want string) (changed bool, undo func(context.Context) error, err error) {
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return false, nil, err
	}
	defer unlock()
	return s.applyCore(ctx, st, n, want)
}

// UndoCore runs undo with site st locked.
func UndoCore(ctx context.Context, s *Shard, st *site.Site, undo func(context.Context) error) error {
	unlock, err := s.lockSite(ctx, s.NamesFor(st.Metadata.UID).ID)
	if err != nil {
		return err
	}
	defer unlock()
	return undo(ctx)
}

// SiteCoreVersion is the version of the core site st's docroot runs.
func SiteCoreVersion(s *Shard, st *site.Site) string {
	return s.siteCoreVersion(s.NamesFor(st.Metadata.UID))
}

// SnapshotCoreVersion is the core version the metadata of snapshot ref
// records.
func SnapshotCoreVersion(ctx context.Context, s *Shard, ref string) (string, error) {
	_, _, meta, err := s.openSnapshot(ctx, ref)
	if err != nil {
		return "", err
	}
	return meta.CoreVersion, nil
}

// RunSiteCron runs WP-Cron once for site st, as the cron loop does (as
// the site's user, with the shard's cron script).
func RunSiteCron(ctx context.Context, s *Shard, st *site.Site) error {
	n := s.NamesFor(st.Metadata.UID)
	uid, gid := lookupIDs(n.Unix)
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(st.Status.URL), UID: uid, GID: gid}
	return run.Cron(ctx, s.cronScript)
}

// DefaultTemplate is the template database of the shard's default core
// ("" while it is not built and checked).
func DefaultTemplate(ctx context.Context, s *Shard) (string, error) {
	core, err := s.coreFor(ctx, "")
	if err != nil {
		return "", err
	}
	key, err := s.templateKey(core)
	if err != nil {
		return "", err
	}
	if !fileExists(filepath.Join(s.templateDir(), key+".ready")) {
		return "", nil
	}
	return s.templateDB(key), nil
}

// TemplateToken is the token in every placeholder of a template.
const TemplateToken = templateToken

// ForgetCronRuns empties the shard's memory of WP-Cron runs, as a restart
// of the shard does.
func ForgetCronRuns(s *Shard) {
	s.mu.Lock()
	clear(s.cronRan)
	s.mu.Unlock()
}

// PoolFor is the php-fpm pool the shard asks for site st.
func PoolFor(s *Shard, st *site.Site) phpfpm.Pool {
	return s.poolFor(st, s.NamesFor(st.Metadata.UID), 0)
}
