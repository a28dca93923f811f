package shard

// The shard's WordPress cores. A shard has a default core (Config.CoreSource,
// Debian's: s.core) and any other version a site's Spec.CoreVersion names,
// fetched once through the artefact store (artefact.Core) and registered
// beside the default under <shard dir>/cores/<version> (wordpress.RegisterCore:
// the same read-only tree with its config shim, the same content skeleton),
// then kept for the shard's lifetime; a core registered by an earlier run is
// found on disk without fetching it again.
//
// A new site's docroot is built on its Spec.CoreVersion's core ("" = the
// default). An existing docroot stays on the core it links to: convergence
// never moves a site to another core, because that needs WordPress's
// database upgrade and a way back — applyCore does both, for the code job
// that changes a site's core.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
)

// coresDir is where the shard registers its cores.
func (s *Shard) coresDir() string { return s.layout.CoresDir() }

// coreFor returns the shard's core of version ("" or the default's version:
// the default), registering it first — from an earlier run's registration
// on disk, or fetched through the artefact store — when the shard has not
// got it yet. Concurrent calls for one version fetch it once.
// Its tree is compiled into OPcache's file cache beside (opcache.go): a
// moved or restored site's first request on this shard finds it compiled.
func (s *Shard) coreFor(ctx context.Context, version string) (*wordpress.Core, error) {
	c, err := s.getCore(ctx, version)
	if err == nil {
		s.fillOPcache(c)
	}
	return c, err
}

func (s *Shard) getCore(ctx context.Context, version string) (*wordpress.Core, error) {
	if version == "" || version == s.core.Version {
		return s.core, nil
	}
	if !wordpress.ValidCoreVersion(version) {
		return nil, publicf("WordPress core version %q is not a version like 6.4.2", version)
	}
	for {
		s.coreMu.Lock()
		if c := s.cores[version]; c != nil {
			s.coreMu.Unlock()
			return c, nil
		}
		if wait, busy := s.coreFetching[version]; busy {
			s.coreMu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s.cores == nil {
			s.cores = map[string]*wordpress.Core{}
			s.coreFetching = map[string]chan struct{}{}
		}
		done := make(chan struct{})
		s.coreFetching[version] = done
		s.coreMu.Unlock()

		c, err := s.registerCore(ctx, version)
		s.coreMu.Lock()
		delete(s.coreFetching, version)
		if err == nil {
			s.cores[version] = c
		}
		close(done)
		s.coreMu.Unlock()
		return c, err
	}
}

// registerCore finds core version registered on disk or fetches and
// registers it.
func (s *Shard) registerCore(ctx context.Context, version string) (*wordpress.Core, error) {
	c, err := wordpress.OpenCore(s.coresDir(), version)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if s.cfg.Artefacts == nil {
		return nil, publicf("WordPress core %s is not available on shard %s: it has %s and no artefact store to fetch others from",
			version, s.cfg.Name, s.core.Version)
	}
	a, err := s.cfg.Artefacts.Ensure(ctx, artefact.Ref{Kind: artefact.Core, Name: "wordpress", Version: version})
	switch {
	case errors.Is(err, artefact.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", publicf("WordPress core %s is not in the catalogue", version), err)
	case errors.Is(err, artefact.ErrRefused):
		return nil, fmt.Errorf("%w: %w", publicf("WordPress core %s was refused by the artefact store (details in the log of shard %s)", version, s.cfg.Name), err)
	case err != nil:
		return nil, fmt.Errorf("fetching WordPress core %s: %w", version, err)
	}
	return s.registerCoreTree(a.Dir, version)
}

// registerCoreTree registers the WordPress tree at dir, which must declare
// version.
func (s *Shard) registerCoreTree(dir, version string) (*wordpress.Core, error) {
	got, err := wordpress.ReadVersion(dir)
	if err != nil {
		return nil, fmt.Errorf("WordPress core %s: %w", version, err)
	}
	if got != version {
		return nil, fmt.Errorf("WordPress core %s: the tree fetched for it (%s) declares version %s", version, dir, got)
	}
	c, err := wordpress.RegisterCore(dir, s.coresDir())
	if err != nil {
		return nil, fmt.Errorf("WordPress core %s: %w", version, err)
	}
	return c, nil
}

// docrootCore returns the core docroot links to (LinkedCoreVersion).
func (s *Shard) docrootCore(ctx context.Context, docroot string) (*wordpress.Core, error) {
	v, err := wordpress.LinkedCoreVersion(s.coresDir(), docroot)
	if err != nil {
		return nil, err
	}
	return s.coreFor(ctx, v)
}

// siteCore is the core st's files are made on: the one its docroot links
// to when it has one, else (a docroot yet to be built) its
// Spec.CoreVersion's.
func (s *Shard) siteCore(ctx context.Context, st *site.Site, n Names) (*wordpress.Core, error) {
	if _, err := os.Lstat(n.Docroot); err == nil {
		return s.docrootCore(ctx, n.Docroot)
	}
	return s.coreFor(ctx, st.Spec.CoreVersion)
}

// siteCoreVersion is the version of the core site n runs (its docroot's),
// the default's when that cannot be read.
func (s *Shard) siteCoreVersion(n Names) string {
	if v, err := wordpress.LinkedCoreVersion(s.coresDir(), n.Docroot); err == nil {
		return v
	}
	return s.core.Version
}

// AllowedSymlinkRoots are the directories outside site docroots that the
// edge may serve static files from: every core the shard has or will
// register (its cores directory), what the default core's symlinks reach
// (Debian's links into /usr/share/javascript and friends; catalogue cores
// hold no links, the artefact store refuses them), and the artefact store
// (plugins and themes linked into docroots). Nothing there is written by a
// site. Valid after Prepare.
func (s *Shard) AllowedSymlinkRoots() []string {
	roots := []string{s.coresDir()}
	add := func(c *wordpress.Core) {
		for _, r := range c.LinkRoots {
			if r == s.coresDir() || strings.HasPrefix(r, s.coresDir()+"/") || slices.Contains(roots, r) {
				continue
			}
			roots = append(roots, r)
		}
	}
	add(s.core)
	s.coreMu.Lock()
	for _, c := range s.cores {
		add(c)
	}
	s.coreMu.Unlock()
	if s.cfg.Artefacts != nil && s.cfg.Artefacts.Root() != "" {
		roots = append(roots, filepath.Clean(s.cfg.Artefacts.Root()))
	}
	return roots
}

// applyCore moves site st (names n) to WordPress core want ("" = the
// shard's default) when its docroot runs another: it ensures the core
// (fetching it through the artefact store if needed), relinks the docroot
// (wordpress.RelinkDocroot), rewrites wp-config.php (ensureFiles, as
// convergence does) and runs WordPress's database upgrade (wp_upgrade) as
// the site's user. It is idempotent: a docroot already on want (and a
// database at want's version) changes nothing, and a call after a crash
// half-way finishes the move.
//
// changed reports that the docroot moved or the database was upgraded;
// then undo moves the docroot back to the core it ran before and rewrites
// wp-config.php again (it is never nil; without a change it does nothing).
// When err is not nil, changed says whether anything was done before the
// failure, and undo is still the way back.
//
// The contract with the caller (the code job): the caller holds the site's
// lock (lockSite), so convergence leaves the site alone meanwhile; it dumps
// the site's database before calling applyCore, and when it rolls back
// (applyCore failed, or a later step or the health check did) it first
// loads that dump back — wp_upgrade migrates the schema and data forward,
// which only the dump undoes — and then calls undo, so that the old core
// finds its own database version. undo does not touch the database.
func (s *Shard) applyCore(ctx context.Context, st *site.Site, n Names, want string) (changed bool, undo func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	target, err := s.coreFor(ctx, want)
	if err != nil {
		return false, noop, err
	}
	prev, err := s.docrootCore(ctx, n.Docroot)
	if err != nil {
		return false, noop, fmt.Errorf("the site's current WordPress core: %w", err)
	}
	// WordPress has no way down: a database a newer core upgraded stays
	// at its version (a rollback loads its dump back before moving the
	// docroot back).
	coreDB, err := wordpress.ReadDBVersion(target.Tree)
	if err != nil {
		return false, noop, err
	}
	if siteDB, err := s.siteDBVersion(ctx, n); err != nil {
		return false, noop, err
	} else if siteDB > coreDB {
		return false, noop, publicf("WordPress %s cannot run this site: its database is at version %d, newer than that core's (%d); WordPress does not downgrade a database",
			target.Version, siteDB, coreDB)
	}
	uid, gid := lookupIDs(n.Unix)
	if uid < 0 && os.Geteuid() == 0 {
		return false, noop, fmt.Errorf("the site's Unix user %s is missing", n.Unix)
	}
	rewrite := func(ctx context.Context) error {
		release := s.secretsLock(n.ID)
		defer release()
		sec, err := loadOrCreateSecrets(n.Dir)
		if err != nil {
			return err
		}
		return s.ensureFiles(ctx, st, n, sec, uid, gid)
	}
	undo = func(ctx context.Context) error {
		relinked, err := wordpress.RelinkDocroot(prev, n.Docroot)
		if err != nil {
			return err
		}
		if err := rewrite(ctx); err != nil {
			return fmt.Errorf("wp-config.php for WordPress %s: %w", prev.Version, err)
		}
		s.forgetConverged(n)
		if relinked {
			return s.fpm.Reload(ctx)
		}
		return nil
	}
	relinked, err := wordpress.RelinkDocroot(target, n.Docroot)
	if err != nil {
		return relinked, undo, err
	}
	if relinked {
		s.forgetConverged(n)
	}
	if err := rewrite(ctx); err != nil {
		return relinked, undo, fmt.Errorf("wp-config.php for WordPress %s: %w", target.Version, err)
	}
	need, err := s.needsUpgrade(ctx, n, target)
	if err != nil {
		return relinked, undo, err
	}
	// php-fpm starts afresh (phpfpm.Master.Reload): its OPcache would go
	// on running the old core's scripts for the docroot's paths. Also
	// when a crash came between the relink and here (the database is not
	// upgraded yet then).
	if relinked || need {
		if err := s.fpm.Reload(ctx); err != nil {
			return true, undo, err
		}
	}
	if !need {
		if relinked {
			s.log.Info("site moved to another WordPress core", "site", st.Metadata.Name, "from", prev.Version, "to", target.Version)
		}
		return relinked, undo, nil
	}
	siteURL := st.Status.URL
	if siteURL == "" {
		siteURL = s.cfg.PublicURL(st.Spec.Domain)
	}
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(siteURL), UID: uid, GID: gid}
	res, err := run.Upgrade(ctx, s.upgradeScript)
	if err != nil {
		return true, undo, fmt.Errorf("%w: %w", publicf("the WordPress %s database upgrade failed: %s", target.Version, firstLine(err)), err)
	}
	s.log.Info("site moved to another WordPress core", "site", st.Metadata.Name, "from", prev.Version, "to", target.Version,
		"db_version_before", res.DBVersionBefore, "db_version_after", res.DBVersionAfter)
	return true, undo, nil
}

// needsUpgrade reports whether the site's database is at another version
// than core c's ($wp_db_version against the db_version option).
func (s *Shard) needsUpgrade(ctx context.Context, n Names, c *wordpress.Core) (bool, error) {
	want, err := wordpress.ReadDBVersion(c.Tree)
	if err != nil {
		return false, err
	}
	got, err := s.siteDBVersion(ctx, n)
	if err != nil {
		return false, err
	}
	return got != want, nil
}

// siteDBVersion is the site's db_version option (0 when it has none or
// it is not a number). The option is the site's data, read only to decide
// whether to run WordPress's upgrade as the site's user.
func (s *Shard) siteDBVersion(ctx context.Context, n Names) (int, error) {
	got, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COALESCE(MAX(option_value), '') FROM `%s`.wp_options WHERE option_name = 'db_version'", n.DB))
	if err != nil {
		return 0, fmt.Errorf("the site's database version: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(got))
	if err != nil {
		return 0, nil
	}
	return v, nil
}

// forgetConverged makes the next pass check site n in full.
func (s *Shard) forgetConverged(n Names) {
	s.mu.Lock()
	delete(s.converged, n.ID)
	s.mu.Unlock()
}

// firstLine is what an owner is shown of a failed upgrade (the full error
// goes to the log): PHP's fatal error without its stack trace and paths,
// or the script's own last word, shortened.
func firstLine(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "PHP Fatal error:"); i >= 0 {
		msg = msg[i:]
	} else if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	msg, _, _ = strings.Cut(msg, "\n")
	if i := strings.Index(msg, " in /"); i > 0 {
		msg = msg[:i] // no paths of the shard
	}
	return truncate(strings.Join(strings.Fields(msg), " "), 300)
}
