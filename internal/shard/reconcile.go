package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/wordpress"
)

// Condition types a shard reports, in convergence order.
const (
	CondDatabase  = "DatabaseReady"
	CondFiles     = "FilesReady"
	CondInstalled = "Installed"
	CondServing   = "Serving"
)

// reporter accumulates status changes and writes them through Sites.
type reporter struct {
	s   *Shard
	src Sites
	st  *site.Site
}

func (r reporter) update(ctx context.Context, fn func(*site.Status)) {
	err := r.r(ctx, fn)
	if err != nil && ctx.Err() == nil {
		r.s.log.Warn("status update", "site", r.st.Metadata.Name, "err", err)
	}
}

func (r reporter) r(ctx context.Context, fn func(*site.Status)) error {
	name := r.s.cfg.Name
	return r.src.UpdateStatus(ctx, r.st.Metadata.Name, r.st.Metadata.UID, func(st *site.Status) {
		// A pass that read the site before a move switched it to another
		// shard must not take it back.
		if st.Shard != "" && st.Shard != name {
			return
		}
		fn(st)
	})
}

func (r reporter) cond(ctx context.Context, typ, status, reason, msg string, phase site.Phase) {
	now := r.s.cfg.Clock()
	gen := r.st.Metadata.Generation
	r.update(ctx, func(st *site.Status) {
		// A pass that read the site before another one gave its import up
		// for good (converge stops there) must not make it look busy
		// again, even for the moment until it meets the same failure.
		busy := phase == site.PhaseCreating && importGivenUp(st, gen)
		st.SetCondition(site.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
		if phase != "" && !busy {
			st.Phase = phase
		}
		st.Shard = r.s.cfg.Name
	})
}

// importGivenUp reports whether st is a site whose import failed for good
// at generation gen: Failed, with its Installed condition saying so.
func importGivenUp(st *site.Status, gen int64) bool {
	c := st.Condition(CondInstalled)
	return st.Phase == site.PhaseFailed && c != nil && c.Reason == ReasonImportFailed && c.ObservedGeneration == gen
}

// siteLog is the shard's logger for site st.
func (s *Shard) siteLog(st *site.Site) *slog.Logger {
	return s.log.With("site", st.Metadata.Name, "generation", st.Metadata.Generation)
}

func (s *Shard) reconcile(ctx context.Context, src Sites, st *site.Site) error {
	// A site moving to or from this shard, or held by another shard, is
	// handled by the move's steps (move.go), not converged here.
	if handled, err := s.reconcileMove(ctx, src, st); handled {
		return err
	}
	rep := reporter{s: s, src: src, st: st}
	if st.Metadata.DeletionRequested != nil {
		rep.cond(ctx, CondServing, "False", "Deleting", "removing the site", site.PhaseDeleting)
		if err := s.teardown(ctx, s.NamesFor(st.Metadata.UID)); errors.Is(err, errSiteBusy) {
			return nil
		} else if err != nil {
			rep.cond(ctx, CondServing, "False", "DeleteFailed", s.publicMessage(s.siteLog(st), "removing the site", err), site.PhaseDeleting)
			return err
		}
		return src.Finalize(ctx, st.Metadata.Name, st.Metadata.UID)
	}
	n := s.NamesFor(st.Metadata.UID)
	// A restore rewriting the site runs beside convergence; one a crash
	// interrupted is finished or undone first.
	if busy, err := s.recoverInterrupted(ctx, rep, n); busy || err != nil {
		return err
	}
	// So is a code job a crash interrupted (code.go): rolled back.
	if fileExists(codeMarker(n)) {
		unlock, ok := s.tryLockSite(n.ID)
		if !ok {
			return nil
		}
		err := s.recoverCode(ctx, st, n)
		unlock()
		if err != nil {
			return fmt.Errorf("rolling back an interrupted code job: %w", err)
		}
	}
	// The PHP error log, which the site's PHP writes, kept bounded.
	if _, err := sitelog.Rotate(n.LogsDir(), s.cfg.PHPLogs); err != nil {
		s.siteLog(st).Warn("PHP error log not rotated", "err", err)
	}
	// So is its pool's slow log, which php-fpm's master writes.
	if _, err := sitelog.RotateFile(s.fpm.SlowLogDir(), filepath.Base(s.fpm.SlowLog(n.Pool)), s.cfg.PHPLogs); err != nil {
		s.siteLog(st).Warn("PHP slow log not rotated", "err", err)
	}
	if s.upToDate(st, n) {
		return nil
	}
	err := s.converge(ctx, rep, st)
	if errors.Is(err, errInProgress) || errors.Is(err, errGivenUp) {
		return nil
	}
	if err == nil {
		s.mu.Lock()
		s.converged[n.ID] = convergedAt{generation: st.Metadata.Generation, at: s.cfg.Clock()}
		s.mu.Unlock()
	}
	if err != nil && ctx.Err() == nil {
		now := s.cfg.Clock()
		msg := s.publicMessage(s.siteLog(st), "convergence", err)
		rep.update(ctx, func(stt *site.Status) {
			stt.Phase = site.PhaseFailed
			stt.SetCondition(site.Condition{Type: CondServing, Status: "False", Reason: "ConvergeFailed", Message: msg, ObservedGeneration: st.Metadata.Generation}, now)
		})
	}
	return err
}

// upToDate reports whether a full convergence of st can be skipped this
// pass: its generation converged recently in this process, its status says
// so, and the cheap checks (docroot, pool socket) pass.
func (s *Shard) upToDate(st *site.Site, n Names) bool {
	s.mu.Lock()
	c, ok := s.converged[n.ID]
	s.mu.Unlock()
	if !ok || c.generation != st.Metadata.Generation || st.Status.ObservedGeneration != st.Metadata.Generation {
		return false
	}
	if s.cfg.Clock().Sub(c.at) >= s.cfg.FullResync {
		return false
	}
	if st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended {
		return false
	}
	if _, err := os.Stat(filepath.Join(n.Docroot, "wp-config.php")); err != nil {
		return false
	}
	if l, err := os.Readlink(filepath.Join(n.Docroot, "wp-content", "mu-plugins", wordpress.CachePluginName)); err != nil || l != s.cachePlugin {
		return false
	}
	if l, err := os.Readlink(filepath.Join(n.Docroot, "wp-content", "mu-plugins", wordpress.LoginPluginName)); err != nil || l != s.loginPlugin {
		return false
	}
	if l, err := os.Readlink(filepath.Join(n.Docroot, "wp-content", wordpress.DBErrorDropInName)); err != nil || l != s.dbErrorDropIn {
		return false
	}
	if !s.diskReportCurrent(st, n) {
		return false
	}
	if !st.Spec.Suspended && !s.poolUp(n) {
		return false
	}
	return true
}

// poolUp is the cheap check that n's pool serves: its socket exists.
func (s *Shard) poolUp(n Names) bool {
	_, err := os.Stat(n.Socket)
	return err == nil
}

// errInProgress: the site's convergence waits for work running beside it
// (a restore from a snapshot); not a failure.
var errInProgress = errors.New("in progress")

// errGivenUp: the site's convergence stopped at a failure it reported
// itself and does not retry (an import that failed for good); reconcile
// leaves the status as it is.
var errGivenUp = errors.New("given up")

func (s *Shard) converge(ctx context.Context, rep reporter, st *site.Site) error {
	n := s.NamesFor(st.Metadata.UID)
	// An import that failed for good at this generation is not tried
	// again, and nothing else is done: the site stays Failed until it is
	// deleted or its spec changes.
	if st.Spec.Source != nil && st.Spec.Source.Import != nil && importGivenUp(&st.Status, st.Metadata.Generation) &&
		!fileExists(filepath.Join(n.Dir, "installed")) {
		return errGivenUp
	}
	working := site.PhaseCreating
	if st.Status.Phase == site.PhaseReady || st.Status.Phase == site.PhaseSuspended {
		working = "" // keep the phase visitors see while re-converging
	}
	siteURL := s.cfg.PublicURL(st.Spec.Domain)
	// A new site's first convergence is timed step by step (Status.Provision).
	var tm *stepTimer
	if working == site.PhaseCreating && st.Status.Provision == nil && st.Spec.Source == nil {
		tm = newStepTimer(s.cfg.Clock)
	}
	// The core a new docroot is built on (fetched if need be); an existing
	// docroot keeps its own (cores.go).
	core, err := s.siteCore(ctx, st, n)
	if err != nil {
		return failed("getting the site's WordPress core", err)
	}
	tm.step("core")
	s.fillOPcache(core)

	// A new site's pool is started with a reload, which waits for every
	// worker of the master to exit: they are asked now, while the user is
	// made (phpfpm.Master.QuitWorkers). Only on a new site's way to its
	// first Ready: a site that fails before its pool starts, pass after
	// pass, must not cost every other site its warm workers each time.
	// A pool made ahead (spares.go), if one fits, takes the reload off
	// the way altogether: the site's user is the spare's, renamed.
	if tm != nil && st.Status.Phase != site.PhaseFailed && !st.Spec.Suspended && !s.poolUp(n) {
		if s.claimSpare(ctx, st, n) {
			tm.poolVia("spare")
		} else {
			tm.poolVia("reload")
			s.fpm.QuitWorkers()
		}
	}

	// 1. Unix user and the site directory.
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return failed("creating the site's Unix user", err)
	}
	if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
		return failed("creating the site's directory", err)
	}
	tm.step("unix_user")

	// 2. The pool, from here on beside the database, the files and
	// WordPress's installation: a php-fpm reload takes longer the more
	// pools the master has, and all it needs is the user and the site's
	// directory (its working directory). Nothing routes visitors to the
	// pool before the site is Ready, and only root may connect to it.
	poolDone := make(chan error, 1)
	if st.Spec.Suspended {
		poolDone <- nil
	} else {
		pool := s.poolFor(st, n, uid)
		go func() {
			t0 := s.cfg.Clock()
			if tm != nil && tm.pool == "reload" {
				// The reload that starts this pool starts spares for
				// the next new sites too (spares.go).
				s.sparesBeside()
			}
			// A serving pool whose settings changed is reloaded once at
			// the end of the pass, for every site (Converge).
			err := s.fpm.UpdatePool(ctx, pool)
			tm.beside(s.cfg.Clock().Sub(t0))
			poolDone <- err
		}()
	}
	// Every return below waits for the pool goroutine first.
	installErr := func(err error) error {
		if perr := <-poolDone; perr != nil {
			return errors.Join(err, failed("starting the PHP pool", perr))
		}
		return err
	}

	// The secrets, the account they name and wp-config.php are written
	// under the site's secrets lock: a secret rotation (rotate.go) must not
	// see its wp-config.php replaced by one from older secrets.
	releaseSecrets := s.secretsLock(n.ID)
	sec, err := loadOrCreateSecrets(n.Dir)
	if err != nil {
		releaseSecrets()
		return installErr(failed("creating the site's secrets", err))
	}

	// 3. Database and its user (the account in use of the two).
	// A site whose writes are frozen already keeps them frozen: ensuring
	// the database would grant them back for a moment.
	frozen := false
	if st.Spec.WriteFreeze && !st.Move.Active() {
		frozen, _ = s.writesFrozen(ctx, n)
	}
	if !frozen {
		if err := s.db.EnsureDatabase(ctx, n.DB, sec.dbUser(n), sec.DBPassword, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
			releaseSecrets()
			return installErr(failed("creating the database", err))
		}
	}
	rep.cond(ctx, CondDatabase, "True", "Ready", "database "+n.DB+" ready", working)
	// A write freeze (the source's side of a cut-over), made again every
	// pass: EnsureDatabase gives the accounts their privileges back.
	if err := s.convergeWriteFreeze(ctx, rep, st, n, working); err != nil {
		releaseSecrets()
		return installErr(err)
	}
	tm.step("database")

	// 4. Files: docroot sharing the core, own wp-content (what PHP may
	// write on the site's volume), wp-config.php.
	err = s.ensureFiles(ctx, st, n, sec, uid, gid)
	releaseSecrets()
	if err != nil {
		return installErr(failed("writing the site's files", err))
	}
	rep.cond(ctx, CondFiles, "True", "Ready", "files ready", working)
	s.reportDisk(ctx, rep, st, n)
	tm.step("files")

	// 5. WordPress installation.
	// The marker is root's, in the site's directory: a tenant who deletes
	// rows from its own database cannot make the shard reinstall over it.
	marker := filepath.Join(n.Dir, "installed")
	installed := fileExists(marker)
	if !installed && st.Spec.Source != nil {
		// Created from a snapshot: restored in the background instead of
		// installed (restore.go). Only the marker counts: a half-loaded
		// dump already holds the installer's option.
		msg, what := "restoring from snapshot "+st.Spec.Source.Snapshot, "restoring from the snapshot"
		if st.Spec.Source.Import != nil {
			msg, what = "importing from an archive", "importing the archive"
		}
		if err := s.startPopulate(ctx, st); err != nil {
			var giveUp *importGiveUp
			if errors.As(err, &giveUp) {
				msg = "import failed and is not retried: " + giveUp.Reason + " (" + s.publicMessage(s.siteLog(st), what, err) +
					"); delete the site and import a corrected archive"
				rep.cond(ctx, CondInstalled, "False", ReasonImportFailed, msg, site.PhaseFailed)
				return installErr(errGivenUp)
			}
			msg = s.publicMessage(s.siteLog(st), what, err) + "; retrying"
		}
		rep.cond(ctx, CondInstalled, "False", "Restoring", msg, working)
		return installErr(errInProgress)
	}
	if !installed {
		// Installed but not marked: a crash came between the two.
		if installed, err = s.installed(ctx, n.DB); err != nil {
			return installErr(failed("checking the WordPress installation", err))
		}
	}
	if !installed {
		rep.cond(ctx, CondInstalled, "False", "Installing", "installing WordPress", working)
		if err := s.clearPartialInstall(ctx, n); err != nil {
			return installErr(failed("WordPress installation", err))
		}
		// A clone of the shard's template database when there is one for
		// the site's core (template.go); else, or when the clone fails,
		// WordPress's installer.
		if tpl := s.templateReady(core); tpl != "" {
			err := s.cloneTemplate(ctx, tpl, n, siteURL, st.Spec.Title, st.Spec.Admin.User, st.Spec.Admin.Email, st.Spec.Admin.PasswordHash)
			if err == nil {
				tm.via("template")
				installed = true
			} else if ctx.Err() != nil {
				return installErr(failed("WordPress installation", err))
			} else {
				s.siteLog(st).Warn("cloning the template database failed: running the installer; the template is rebuilt", "template", tpl, "err", err)
				s.templateBroken(tpl)
				if err := s.clearPartialInstall(ctx, n); err != nil {
					return installErr(failed("WordPress installation", err))
				}
			}
		}
	}
	if !installed {
		tm.via("installer")
		run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(siteURL), UID: uid, GID: gid}
		if err := run.Install(ctx, s.installScript, wordpress.InstallOptions{
			Title: st.Spec.Title, AdminUser: st.Spec.Admin.User, AdminEmail: st.Spec.Admin.Email,
			AdminPasswordHash: st.Spec.Admin.PasswordHash,
		}); err != nil {
			return installErr(failed("WordPress installation", err))
		}
	}
	if !fileExists(marker) {
		if err := os.WriteFile(marker, []byte(core.Version+"\n"), 0o600); err != nil {
			return installErr(failed("WordPress installation", fmt.Errorf("install marker: %w", err)))
		}
	}
	rep.cond(ctx, CondInstalled, "True", "Installed", "WordPress "+s.siteCoreVersion(n)+" installed", working)
	tm.step("install")

	// 6. Serving: the pool is up; or suspended: the pool is removed.
	if st.Spec.Suspended {
		if err := s.fpm.RemovePool(ctx, n.Pool); err != nil {
			return failed("stopping the PHP pool", err)
		}
		s.finish(ctx, rep, st, n, siteURL, site.PhaseSuspended, "False", "Suspended", "suspended: visitors get a maintenance page", nil)
		return nil
	}
	if err := <-poolDone; err != nil {
		return failed("starting the PHP pool", err)
	}
	tm.step("pool_wait")
	s.finish(ctx, rep, st, n, siteURL, site.PhaseReady, "True", "Serving", "serving at "+siteURL, tm.provision(st.Metadata.Generation))
	if tm != nil {
		s.newSiteReady()
	}
	// What the site runs, so drift shows without a code job.
	s.observeCodeStatus(ctx, rep, st, n, uid, gid)
	return nil
}

// ensureFiles makes the site's files: the docroot sharing the core, its own
// wp-content, its volume (volumes.go), the mu-plugin links, wp-config.php
// and the modes.
func (s *Shard) ensureFiles(ctx context.Context, st *site.Site, n Names, sec *secrets, uid, gid int) error {
	core, err := s.siteCore(ctx, st, n)
	if err != nil {
		return err
	}
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return err
	}
	limitMB := st.Spec.Limits.WithDefaults().DiskMB
	onVolume, err := s.ensureVolume(ctx, n, limitMB, 0, uid, gid)
	if err != nil {
		return err
	}
	cfg := wordpress.Config{
		Domain: st.Spec.Domain, URL: s.cfg.PublicURL(st.Spec.Domain), Docroot: n.Docroot, CoreDir: core.Tree,
		DBName: n.DB, DBUser: sec.dbUser(n), DBPassword: sec.DBPassword,
		DBHost: s.clientHost(), Salts: sec.Salts, Constants: st.Spec.Constants,
	}
	if s.cfg.PurgeURL != "" && s.cfg.PurgeKey != nil {
		cfg.PurgeURL, cfg.PurgeKey = s.cfg.PurgeURL, s.cfg.PurgeKey(st.Metadata.Name)
	}
	if onVolume {
		cfg.DiskLimitMB = limitMB
	}
	if key := s.loginKey(ctx, st, n); key != "" {
		cfg.SiteUID, cfg.LoginKey = st.Metadata.UID, key
	}
	// The plugins are symlinks to the shard's one copy (one OPcache
	// entry for every site) in the root-owned mu-plugins directory.
	for _, p := range []string{s.cachePlugin, s.storagePlugin, s.loginPlugin} {
		if err := wordpress.LinkMUPlugin(n.Docroot, p); err != nil {
			return err
		}
	}
	// WordPress's database error page: a 503 the edge retries (the
	// shard's MariaDB restarting), not a 500.
	if err := wordpress.LinkDropIn(n.Docroot, s.dbErrorDropIn); err != nil {
		return err
	}
	// The pooler accepts the accounts secrets.json names, with the site's
	// limits, before wp-config.php names them (dbtier.go).
	s.noteLimits(n.ID, st.Spec.Limits)
	s.syncPooler()
	if err := writeIfChanged(filepath.Join(n.Docroot, "wp-config.php"), cfg.Render(), 0o640, 0, gid); err != nil {
		return err
	}
	// The spec's plugins and themes the docroot lacks (code.go).
	s.ensureCodeLinks(ctx, st, n)
	return sitePermissions(n, uid, gid)
}

// loginKey is the login key (hex) for st's wp-config.php ("": none). When
// the control plane cannot give it (an outage), the key the site's
// wp-config.php already defines for this UID is kept and the failure is
// logged: a site's files are never held back for sign-in links, which
// work again with the key once the control plane answers (the next
// rewrite fetches it again).
func (s *Shard) loginKey(ctx context.Context, st *site.Site, n Names) string {
	if s.cfg.LoginKey == nil {
		return ""
	}
	key, err := s.cfg.LoginKey(ctx, st.Metadata.Name, st.Metadata.UID)
	if err == nil {
		return key
	}
	var kept string
	if old, rerr := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php")); rerr == nil {
		if uid, k := wordpress.LoginKeyOf(old); uid == st.Metadata.UID {
			kept = k
		}
	}
	s.log.Warn("login key unavailable: keeping the site's current one (sign-in links refused if it has none)",
		"site", st.Metadata.Name, "kept", kept != "", "err", err)
	return kept
}

// poolFor is the php-fpm pool of site st.
func (s *Shard) poolFor(st *site.Site, n Names, uid int) phpfpm.Pool {
	pool := phpfpm.Pool{
		Name: n.Pool, SiteDir: n.Dir,
		MaxChildren: st.Spec.PHP.MaxChildren, MemoryMB: st.Spec.PHP.MemoryLimitMB, UploadMaxMB: st.Spec.PHP.UploadMaxMB,
		IdleTimeout:    time.Duration(st.Spec.PHP.IdleTimeoutSecond) * time.Second,
		RequestTimeout: time.Duration(st.Spec.PHP.RequestTimeoutSeconds) * time.Second, // 0: the default
	}
	if uid >= 0 {
		pool.User, pool.Group = n.Unix, n.Unix
	}
	return pool
}

// finish reports the site's convergence done; prov, when not nil, is its
// first convergence's timing (recorded once).
func (s *Shard) finish(ctx context.Context, rep reporter, st *site.Site, n Names, siteURL string, phase site.Phase, status, reason, msg string, prov *site.Provision) {
	now := s.cfg.Clock()
	gen := st.Metadata.Generation
	endpoint := s.endpoint(n)
	rep.update(ctx, func(stt *site.Status) {
		stt.SetCondition(site.Condition{Type: CondServing, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
		stt.Phase = phase
		stt.Shard = s.cfg.Name
		stt.URL = siteURL
		stt.Endpoint = endpoint
		stt.Docroot = n.Docroot
		stt.ObservedGeneration = gen
		if prov != nil && stt.Provision == nil {
			stt.Provision = prov
		}
	})
}

// installed reports whether the installer finished for database db (it sets
// the aipress_installed option as its very last step).
func (s *Shard) installed(ctx context.Context, db string) (bool, error) {
	n, err := s.db.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'wp_options'", db)
	if err != nil {
		return false, fmt.Errorf("installed check: %w", err)
	}
	if n == "0" {
		return false, nil
	}
	v, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.wp_options WHERE option_name = 'aipress_installed'", db))
	if err != nil {
		return false, fmt.Errorf("installed check: %w", err)
	}
	return v != "0", nil
}

// clearPartialInstall empties a database that an interrupted installer left
// half-filled, so the installer starts from scratch.
func (s *Shard) clearPartialInstall(ctx context.Context, n Names) error {
	tables, err := s.db.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", n.DB)
	if err != nil {
		return fmt.Errorf("partial install check: %w", err)
	}
	if tables == "0" {
		return nil
	}
	s.log.Warn("clearing a partial WordPress installation", "database", n.DB, "tables", tables)
	if err := s.db.RecreateDatabase(ctx, n.DB); err != nil {
		return err
	}
	s.resetPooled(siteDBUsers(n)...)
	return nil
}

// errSiteBusy is work on a site put off because a job (a code job, a
// restore) holds it; the job's end wakes the shard, whose next pass
// retries.
var errSiteBusy = errors.New("the site is busy with a job; retried when it ends")

// teardown removes everything the shard created for a site; each step is
// idempotent, so an interrupted teardown is finished by the next pass. It
// holds the site (lockSite) and returns errSiteBusy while a job does: a
// code job's rollback must not recreate what teardown removed.
func (s *Shard) teardown(ctx context.Context, n Names) error {
	unlock, ok := s.tryHoldSite(n.ID, false)
	if !ok {
		return errSiteBusy
	}
	defer unlock()
	return s.teardownHeld(ctx, n)
}

// teardownHeld is teardown with the site held by the caller.
func (s *Shard) teardownHeld(ctx context.Context, n Names) error {
	if err := s.fpm.RemovePool(ctx, n.Pool); err != nil {
		return err
	}
	if err := s.dropSiteDatabase(ctx, n); err != nil {
		return err
	}
	// Its volume and binds are unmounted (lazily: a request still
	// writing keeps its detached volume until it ends) before anything is
	// removed, so nothing is removed through them.
	if err := removeTree(n.Dir); err != nil {
		return fmt.Errorf("remove site files: %w", err)
	}
	s.forgetLimits(n.ID)
	s.syncPooler()
	if err := s.clearStaging(ctx, n); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.lastCron, n.ID)
	delete(s.cronRan, n.ID)
	delete(s.converged, n.ID)
	delete(s.populateErr, n.ID)
	s.mu.Unlock()
	return s.removeSiteUser(ctx, n)
}

// collectOrphans removes pools, databases, users, directories and Unix users
// of this shard that belong to no known site — what a crash between the
// control plane forgetting a site and the shard removing it would leave.
func (s *Shard) collectOrphans(ctx context.Context, known map[string]bool) error {
	var errs []error
	// Only names with this shard's prefix are considered: another shard's
	// Unix users (the one namespace shards share) never match, and neither
	// do its databases, pools or directories, which live in its own
	// server, master and directory anyway.
	orphan := func(name string) (Names, bool) {
		m := s.orphanName.FindStringSubmatch(name)
		if m == nil || known[m[1]] {
			return Names{}, false
		}
		return s.namesForID(m[1]), true
	}
	seen := map[string]Names{}
	pools, err := s.fpm.Pools()
	errs = append(errs, err)
	dbs, err := s.db.ListDatabases(ctx, s.prefix)
	errs = append(errs, err)
	users, err := s.db.ListUsers(ctx, s.prefix)
	errs = append(errs, err)
	var dirs []string
	if ents, err := os.ReadDir(s.sitesDir()); err == nil {
		for _, e := range ents {
			dirs = append(dirs, s.prefix+e.Name())
		}
	}
	for _, list := range [][]string{pools, dbs, users, dirs, shardUnixUsers(s.sitesDir())} {
		for _, name := range list {
			if n, ok := orphan(name); ok {
				seen[n.ID] = n
			}
		}
	}
	for _, n := range seen {
		s.log.Warn("removing orphaned site resources", "id", n.ID)
		if err := s.teardown(ctx, n); !errors.Is(err, errSiteBusy) {
			errs = append(errs, err)
		}
	}
	// Load users of dumps a crash interrupted.
	errs = append(errs, s.db.CollectLoadUsers(ctx))
	return errors.Join(errs...)
}

// cronLoop runs WP-Cron for the shard's serving sites until ctx is done.
func (s *Shard) cronLoop(ctx context.Context, src Sites) {
	if s.cfg.CronInterval < 0 {
		return
	}
	t := time.NewTicker(min(s.cfg.CronInterval/2, 10*time.Second))
	defer t.Stop()
	for {
		s.runCron(ctx, src)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runCron runs WP-Cron for serving sites whose interval has passed.
func (s *Shard) runCron(ctx context.Context, src Sites) {
	if s.cfg.CronInterval < 0 {
		return
	}
	sites, err := src.ListSites(ctx, s.cfg.Name)
	if err != nil {
		return
	}
	now := s.cfg.Clock()
	for _, st := range sites {
		if st.Status.Phase != site.PhaseReady || st.Spec.Suspended || st.Metadata.DeletionRequested != nil {
			continue
		}
		// Only the shard that serves the site runs its cron, and not while
		// a move has frozen its writes.
		if st.Status.Shard != s.cfg.Name || st.Move.Frozen() || st.Spec.WriteFreeze {
			continue
		}
		n := s.NamesFor(st.Metadata.UID)
		if s.siteBusy(n.ID) {
			continue // being restored
		}
		s.mu.Lock()
		last, ok := s.lastCron[n.ID]
		due := !ok || now.Sub(last) >= s.cfg.CronInterval
		if due {
			s.lastCron[n.ID] = now
		}
		s.mu.Unlock()
		if !due || !ok { // the first pass only starts the clock
			continue
		}
		if !s.cronDue(ctx, n, now) {
			continue
		}
		uid, gid := lookupIDs(n.Unix)
		if uid < 0 && os.Geteuid() == 0 {
			// Never run a site's code as root; the next full pass
			// recreates a missing user.
			s.log.Warn("cron skipped: the site's Unix user is missing", "site", st.Metadata.Name, "user", n.Unix)
			continue
		}
		run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(st.Status.URL), UID: uid, GID: gid}
		s.mu.Lock()
		s.cronRan[n.ID] = now
		s.mu.Unlock()
		if err := run.Cron(ctx, s.cronScript); err != nil && ctx.Err() == nil {
			s.log.Warn("cron", "site", st.Metadata.Name, "err", err)
		}
	}
}

// cronIdleRun is the longest a serving site goes without a WP-Cron run
// when none of its events is due (see cronDue).
const cronIdleRun = time.Hour

// cronDue reports whether site n's WP-Cron should run now: when its
// earliest scheduled event is due, when its schedule cannot be read, and
// at least every cronIdleRun. Starting PHP and loading WordPress for a
// site with nothing due costs a CPU-heavy process (0.1–0.3 s of CPU, 30+
// MB) and a database write (aipress_cron_last_run), once a minute per
// site: about 17 runs a second at 1,000 sites, more than two cores. A
// fresh site's events are hourly at the most frequent, so most of those
// runs did nothing.
//
// The schedule is WordPress's cron option, a PHP-serialized array keyed
// by Unix time, which WordPress keeps sorted and reads in order, stopping
// at the first future time (wp_get_ready_cron_jobs, wp-cron.php): its
// first key is what WordPress itself decides on. The option is the site's
// to write, so it is only parsed, never trusted beyond that: anything
// unexpected runs cron, as before.
func (s *Shard) cronDue(ctx context.Context, n Names, now time.Time) bool {
	s.mu.Lock()
	ran, ok := s.cronRan[n.ID]
	s.mu.Unlock()
	if !ok {
		// The shard (re)started since the site's last run: its own record
		// of that run (cron.php writes it), so that a restart does not
		// start WordPress for every site a minute later.
		ran, ok = s.cronLastRun(ctx, n, now)
		if ok {
			s.mu.Lock()
			if _, had := s.cronRan[n.ID]; !had {
				s.cronRan[n.ID] = ran
			}
			s.mu.Unlock()
		}
	}
	if !ok || now.Sub(ran) >= cronIdleRun {
		return true
	}
	v, err := s.db.QueryString(ctx, "SELECT LEFT(option_value, 64) FROM `"+n.DB+"`.wp_options WHERE option_name = 'cron'")
	if err != nil {
		return true
	}
	next, ok := firstCronTime(v)
	return !ok || next <= now.Unix()
}

// cronLastRun reads when site n's WP-Cron last ran from the option
// cron.php records (aipress_cron_last_run, Unix seconds); ok is false when
// it cannot be read, is not a time, or lies in the future. The site can
// write it: a time it made up can only put off its own hourly idle run,
// never a due event, which cronDue finds in the schedule.
func (s *Shard) cronLastRun(ctx context.Context, n Names, now time.Time) (time.Time, bool) {
	v, err := s.db.QueryString(ctx, "SELECT COALESCE(MAX(option_value), '') FROM `"+n.DB+"`.wp_options WHERE option_name = 'aipress_cron_last_run'")
	if err != nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || sec <= 0 || sec > now.Unix() {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// firstCronTime returns the first key of a serialized cron array
// (a:N:{i:TIME;...), ok false when v does not start so: no event
// scheduled (only its "version" key), or a value WordPress did not write.
func firstCronTime(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "a:")
	if !ok {
		return 0, false
	}
	i := strings.Index(rest, ":{i:")
	if i < 1 || strings.Trim(rest[:i], "0123456789") != "" {
		return 0, false
	}
	rest = rest[i+len(":{i:"):]
	j := strings.IndexByte(rest, ';')
	if j < 1 {
		return 0, false
	}
	t, err := strconv.ParseInt(rest[:j], 10, 64)
	if err != nil {
		return 0, false
	}
	return t, true
}

func writeIfChanged(path string, data []byte, mode os.FileMode, uid, gid int) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return chownMode(path, mode, uid, gid)
	}
	var oldMod time.Time
	if fi, err := os.Stat(path); err == nil {
		oldMod = fi.ModTime()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := chownMode(tmp, mode, uid, gid); err != nil {
		return err
	}
	// OPcache notices a changed script by its modification time in whole
	// seconds: a replacement written in the same second as the file it
	// replaces gets the next second.
	if !oldMod.IsZero() {
		if fi, err := os.Stat(tmp); err == nil && fi.ModTime().Unix() <= oldMod.Unix() {
			t := time.Unix(oldMod.Unix()+1, 0)
			if err := os.Chtimes(tmp, t, t); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Base(path), err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func ensureDir(path string, mode os.FileMode, uid, gid int) error {
	if err := os.MkdirAll(path, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", path, err)
	}
	return chownMode(path, mode, uid, gid)
}

func chownMode(path string, mode os.FileMode, uid, gid int) error {
	if gid >= 0 && os.Geteuid() == 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

// sitePermissions sets the modes that isolate a site: its directory is
// reachable by its own group only; core files stay root-owned and read-only;
// only uploads (plus private tmp and logs) belong to the site user.
func sitePermissions(n Names, uid, gid int) error {
	if err := chownMode(n.Docroot, 0o755, 0, 0); err != nil {
		return err
	}
	for _, d := range []string{"tmp", "logs"} {
		if err := ensureDir(filepath.Join(n.Dir, d), 0o750, uid, gid); err != nil {
			return err
		}
	}
	if err := chownMode(filepath.Join(n.Dir, "tmp"), 0o700, uid, gid); err != nil {
		return err
	}
	return ensureDir(filepath.Join(n.Docroot, "wp-content", "uploads"), 0o755, uid, gid)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// convergeWriteFreeze freezes site n's database writes while
// st.Spec.WriteFreeze holds (not during a move, which freezes and
// unfreezes by itself) and unfreezes them once it no longer does,
// reporting CondWritesFrozen.
func (s *Shard) convergeWriteFreeze(ctx context.Context, rep reporter, st *site.Site, n Names, working site.Phase) error {
	if st.Move.Active() {
		return nil
	}
	c := st.Status.Condition(site.CondWritesFrozen)
	switch {
	case st.Spec.WriteFreeze:
		if frozen, err := s.writesFrozen(ctx, n); err != nil || !frozen {
			if err := s.freezeWrites(ctx, n); err != nil {
				return failed("freezing the site's writes", err)
			}
		}
		if c == nil || c.Status != "True" || c.ObservedGeneration != st.Metadata.Generation {
			rep.cond(ctx, site.CondWritesFrozen, "True", "Frozen", "writes frozen: the database accounts may only read, no WP-Cron", working)
		}
	case c != nil && c.Status == "True":
		if err := s.unfreezeWrites(ctx, n); err != nil {
			return failed("unfreezing the site's writes", err)
		}
		rep.cond(ctx, site.CondWritesFrozen, "False", "Unfrozen", "writes allowed", working)
	}
	return nil
}
