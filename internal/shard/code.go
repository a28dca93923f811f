package shard

// Code jobs (store.JobCode): a site's plugins, themes, options, must-use
// settings and core brought to its spec, with a health check after the
// change and a rollback of code and database when it fails.
//
// A job, holding the site (lockSite: convergence, cron and restores leave
// it alone meanwhile):
//
//  1. rolls back what a job a crash interrupted left (its marker, below);
//  2. resolves every extension of the spec to an artefact (the store
//     fetches what it lacks; bundled ones are the core's own copies);
//  3. observes what the site runs (the links in wp-content/plugins and
//     themes, WordPress's own view through the code script, the options,
//     the constants of wp-config.php, the core) and plans the changes;
//     no change: done;
//  4. snapshots the site in code-rollback/ (root's, in the site's
//     directory): a dump of its database, its wp-config.php and the targets
//     of its plugin and theme links; the marker (state.json) is written
//     last, so a snapshot with a marker is complete;
//  5. applies: the core (applyCore), plugins deactivated through WordPress
//     (their deactivation hooks run), new and changed links (a link to a
//     temporary name renamed over the old one), wp-config.php, then the
//     theme switched, plugins activated (their activation hooks run; a
//     fatal error ends PHP and is reported with PHP's message) and options
//     set, through WordPress as the site's user; removed links last;
//  6. checks the site's health through an in-process edge (the paths of
//     the smoke test, no new "PHP Fatal error" in the site's error log, the
//     home page's content) and that WordPress now runs what the spec says;
//  7. on success removes the snapshot (the commit); on failure restores the
//     links and wp-config.php, loads the dump into a scratch database as a
//     load user limited to it (never as root: it is the site's data) and
//     swaps its tables in atomically, checks the health again, and fails
//     the job with the reason and RolledBack.
//
// Status.Code gets what the site runs after every job (and on full
// convergence passes of sites that use code: observeCodeStatus).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/phpini"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitelog"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// CodeReadyWait bounds how long a code job waits for its site to be
// installed and serving on this shard.
const CodeReadyWait = 10 * time.Minute

// Code change actions and kinds (store.CodeChange).
const (
	actInstall    = "install"
	actUpdate     = "update"
	actRemove     = "remove"
	actActivate   = "activate"
	actDeactivate = "deactivate"
	actOption     = "option"
	actConstant   = "constant"
	actCore       = "core"
)

// SourceUnmanaged is the source of an extension the spec never named
// (site.InstalledExtension.Source).
const SourceUnmanaged = "unmanaged"

// maxErrorLogRead bounds how much of a site's PHP error log a health check
// reads (what was appended during the job).
const maxErrorLogRead = 4 << 20

func codeDir(n Names) string       { return filepath.Join(n.Dir, "code-rollback") }
func codeMarker(n Names) string    { return filepath.Join(codeDir(n), "state.json") }
func codeDump(n Names) string      { return filepath.Join(codeDir(n), "database.sql") }
func codeConfig(n Names) string    { return filepath.Join(codeDir(n), "wp-config.php") }
func codeStagingDB(n Names) string { return n.DB + "_cs" }
func codeOldDB(n Names) string     { return n.DB + "_co" }

// codeState is the marker of a code job's snapshot.
type codeState struct {
	Job     string    `json:"job"`
	Started time.Time `json:"started"`
	// Core is the core version the docroot ran.
	Core string `json:"core"`
	// Links are the targets of the links in wp-content/plugins and
	// wp-content/themes ("plugins" and "themes", folder → target).
	Links map[string]map[string]string `json:"links"`
}

var extDirs = map[string]string{"plugin": "plugins", "theme": "themes"}

// wanted is an extension of the spec resolved to what to link.
type wanted struct {
	kind   string // plugin or theme
	ext    site.Extension
	target string // the folder to link
	digest string // "" bundled
	ver    string // the version the artefact declares
}

// codeRun is one code job's working state.
type codeRun struct {
	s        *Shard
	st       *site.Site
	n        Names
	run      wordpress.Runner
	uid, gid int
	progress func(msg string)
	// changedAt is when the job last changed a link or wp-config.php:
	// PHP's workers see the change RevalidateFreq later (phpini).
	changedAt time.Time
}

// changed notes a change of a link or wp-config.php.
func (cr *codeRun) changed() { cr.changedAt = cr.s.cfg.Clock() }

// settle waits until every PHP worker runs what the links and
// wp-config.php say now (OPcache's revalidation and PHP's realpath cache
// expire after phpini.RevalidateFreq, in whole seconds).
func (cr *codeRun) settle(ctx context.Context) error {
	if cr.changedAt.IsZero() {
		return nil
	}
	return sleepUntil(ctx, cr.s.cfg.Clock, cr.changedAt.Add(phpini.RevalidateFreq+time.Second))
}

// RunCode brings site st's code to its current spec (see the top of this
// file). get re-reads the site (its spec may have changed since the job
// was created: the current one is applied). The result is set on failure
// too.
func (s *Shard) RunCode(ctx context.Context, src Sites, get func(context.Context) (*site.Site, error), jobID string, p store.CodeParams, progress func(msg string)) (_ *store.CodeResult, err error) {
	began := s.cfg.Clock()
	if progress == nil {
		progress = func(string) {}
	}
	st, err := s.waitCodeReady(ctx, get, progress)
	if err != nil {
		return nil, err
	}
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The spec as it is now that the site is held; what waitCodeReady
	// checked may have changed while another job held it (a move, a
	// deletion, a suspension began).
	if st, err = get(ctx); err != nil {
		return nil, err
	}
	if ready, err := s.codeReady(st); err != nil {
		return nil, err
	} else if !ready {
		return nil, publicf("site %s is no longer ready on shard %s (phase %s); retry", st.Metadata.Name, s.cfg.Name, st.Status.Phase)
	}
	uid, gid := lookupIDs(n.Unix)
	if uid < 0 && os.Geteuid() == 0 {
		return nil, publicf("site %s has no Unix user on shard %s yet", st.Metadata.Name, s.cfg.Name)
	}
	cr := &codeRun{s: s, st: st, n: n, uid: uid, gid: gid, progress: progress,
		run: wordpress.Runner{Docroot: n.Docroot, Host: hostOf(s.cfg.PublicURL(st.Spec.Domain)), UID: uid, GID: gid}}
	rep := reporter{s: s, src: src, st: st}
	res := &store.CodeResult{Generation: st.Metadata.Generation}
	finished := false
	defer func() {
		// A job that failed before it changed anything (an artefact that
		// cannot be fetched, a plan the site refuses) says so too.
		if err != nil && !finished && ctx.Err() == nil {
			reason := cr.reason(err)
			s.setCodeStatus(ctx, rep, nil, func(c *site.CodeStatus) { c.LastJob, c.LastError = jobID, reason })
		}
	}()
	finish := func(obs *site.CodeStatus, applied bool, reason string) {
		finished = true
		res.Duration = s.cfg.Clock().Sub(began).Round(time.Millisecond).String()
		res.Observed = obs
		s.setCodeStatus(ctx, rep, obs, func(c *site.CodeStatus) {
			c.LastJob = jobID
			c.LastError = reason
			if applied {
				c.AppliedGeneration = st.Metadata.Generation
			}
		})
	}

	if fileExists(codeMarker(n)) {
		progress("rolling back an interrupted code job")
		check, err := cr.recover(ctx)
		if err != nil {
			return nil, err
		}
		res.Checks = append(res.Checks, check)
	}

	progress("resolving plugins and themes")
	want, err := cr.resolve(ctx)
	if err != nil {
		return nil, err
	}
	progress("observing the site")
	cur, err := cr.observe(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := cr.plan(want, cur)
	if err != nil {
		return nil, err
	}
	res.Changes = plan
	if len(plan) == 0 {
		if err := writeCodeSources(n, want); err != nil {
			s.log.Warn("code sources not recorded: unpinned extensions are resolved again next job", "site", st.Metadata.Name, "err", err)
		}
		finish(cr.status(want, cur), true, "")
		return res, nil
	}

	progress("taking a snapshot of the site's code and database")
	logFrom := errorLogSize(n)
	if err := cr.snapshot(ctx, jobID, cur); err != nil {
		return nil, err
	}
	progress("applying")
	undoCore, applyErr := cr.apply(ctx, want, cur, plan)
	if err := s.crashPoint("code-applied"); err != nil {
		return nil, err
	}
	var checks []store.HealthCheck
	var after *observed
	if applyErr == nil {
		progress("checking the site's health")
		checks, applyErr = cr.health(ctx, p.Smoke, logFrom)
		if applyErr == nil {
			if after, applyErr = cr.observe(ctx); applyErr == nil {
				if rest, _ := cr.plan(want, after); len(rest) > 0 {
					applyErr = publicf("after the change the site still differs from its spec: %s", describe(rest))
				}
			}
		}
	}
	res.Checks = append(res.Checks, checks...)
	if applyErr == nil {
		if err := cr.commit(); err != nil {
			return nil, err
		}
		s.purgeSite(ctx, st)
		if err := writeCodeSources(n, want); err != nil {
			s.log.Warn("code sources not recorded: unpinned extensions are resolved again next job", "site", st.Metadata.Name, "err", err)
		}
		finish(cr.status(want, after), true, "")
		s.log.Info("code applied", "site", st.Metadata.Name, "job", jobID, "changes", len(plan))
		return res, nil
	}
	if ctx.Err() != nil {
		// A shutdown: the marker stays and the next run rolls back.
		return nil, ctx.Err()
	}
	reason := cr.reason(applyErr)
	s.log.Warn("code job failed: rolling back", "site", st.Metadata.Name, "job", jobID, "err", applyErr)
	progress("rolling back")
	rctx := context.WithoutCancel(ctx)
	if undoCore != nil {
		if err := undoCore(rctx); err != nil {
			return nil, fmt.Errorf("code job failed (%s) and undoing the core change failed: %w", reason, err)
		}
	}
	if err := cr.rollback(rctx); err != nil {
		return nil, fmt.Errorf("code job failed (%s) and the rollback failed (the next job retries it): %w", reason, err)
	}
	res.RolledBack = true
	res.Error = reason
	post, perr := cr.health(rctx, p.Smoke, errorLogSize(n))
	for _, c := range post {
		c.Name = "after rollback: " + c.Name
		res.Checks = append(res.Checks, c)
	}
	if err := cr.commit(); err != nil {
		return nil, err
	}
	obs, oerr := cr.observe(rctx)
	var status *site.CodeStatus
	if oerr == nil {
		status = cr.status(want, obs)
	}
	finish(status, false, reason)
	s.purgeSite(rctx, st)
	msg := reason + "; the site's code and database were rolled back"
	if perr != nil {
		msg += ", but it still fails its health check: " + cr.reason(perr)
	}
	return res, publicf("%s", msg)
}

// waitCodeReady waits until the site is installed and serving on this
// shard.
func (s *Shard) waitCodeReady(ctx context.Context, get func(context.Context) (*site.Site, error), progress func(string)) (*site.Site, error) {
	deadline := s.cfg.Clock().Add(CodeReadyWait)
	said := false
	for {
		st, err := get(ctx)
		if err != nil {
			return nil, err
		}
		if ready, err := s.codeReady(st); err != nil || ready {
			return st, err
		}
		if !s.cfg.Clock().Before(deadline) {
			return nil, publicf("site %s did not become ready on shard %s within %s (phase %s)", st.Metadata.Name, s.cfg.Name, CodeReadyWait, st.Status.Phase)
		}
		if !said {
			progress("waiting for the site to be ready")
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.cfg.JobPoll):
		}
	}
}

// codeReady reports whether a code job may change site st now: an error
// when it must not at all (suspended, moving, being deleted), false when
// the site is not ready here yet.
func (s *Shard) codeReady(st *site.Site) (bool, error) {
	switch {
	case st.Metadata.DeletionRequested != nil:
		return false, publicf("site %s is being deleted", st.Metadata.Name)
	case st.Spec.Suspended || st.Status.Phase == site.PhaseSuspended:
		return false, publicf("site %s is suspended: its code cannot be checked; resume it first", st.Metadata.Name)
	case st.Move.Active():
		return false, publicf("site %s is moving between shards; retry when the move is done", st.Metadata.Name)
	}
	n := s.NamesFor(st.Metadata.UID)
	return st.Status.Shard == s.cfg.Name && st.Status.Phase == site.PhaseReady && fileExists(filepath.Join(n.Dir, "installed")), nil
}

// resolve maps every extension of the spec to what to link.
func (cr *codeRun) resolve(ctx context.Context) ([]wanted, error) {
	var out []wanted
	recs := readCodeSources(cr.n)
	for _, kind := range []string{"plugin", "theme"} {
		list := cr.st.Spec.Plugins
		if kind == "theme" {
			list = cr.st.Spec.Themes
		}
		for _, e := range list {
			if w, ok := cr.s.installedLatest(cr.n, recs, kind, e); ok {
				out = append(out, w)
				continue
			}
			cr.progress("fetching " + kind + " " + e.Name)
			w, err := cr.s.resolveExtension(ctx, cr.st, kind, e)
			if err != nil {
				return nil, err
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// resolveExtension finds (fetching if need be) what extension e of kind
// links to.
func (s *Shard) resolveExtension(ctx context.Context, st *site.Site, kind string, e site.Extension) (wanted, error) {
	w := wanted{kind: kind, ext: e}
	if e.Source.SourceType() == site.SourceBundled {
		// Bundled with the core the site runs once its spec is applied.
		core, err := s.coreFor(ctx, st.Spec.CoreVersion)
		if err != nil {
			return w, err
		}
		dir := filepath.Join(core.Content, extDirs[kind], e.Name)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return w, publicf("%s %s is not bundled with WordPress %s on shard %s", kind, e.Name, core.Version, s.cfg.Name)
		}
		w.target = dir
		return w, nil
	}
	if s.cfg.Artefacts == nil {
		return w, publicf("%s %s: shard %s has no artefact store, so only bundled plugins and themes can be installed", kind, e.Name, s.cfg.Name)
	}
	k := artefact.Plugin
	if kind == "theme" {
		k = artefact.Theme
	}
	a, err := s.cfg.Artefacts.Ensure(ctx, artefact.Ref{Kind: k, Name: e.Name, Version: e.Version, Source: e.Source, Org: st.Metadata.Org})
	if err != nil {
		return w, publicf("%s %s: %s", kind, e.Name, s.scrub(err.Error(), Names{}))
	}
	w.target, w.digest, w.ver = a.Dir, a.Digest, a.Version
	return w, nil
}

// An unpinned extension (version "" or "latest") is resolved, which asks
// the catalogue for its newest version, only when it is installed anew or
// its spec changed; otherwise the version the site runs meets it. The
// site's code-sources.json (root's, in its directory) records, for each
// link a successful code job left, the spec's source and version it was
// resolved from.

// codeSource is what one link of a site was resolved from.
type codeSource struct {
	Target  string `json:"target"`
	Source  string `json:"source"`  // the spec's source (sourceKey)
	Version string `json:"version"` // the spec's version
}

func codeSourcesPath(n Names) string { return filepath.Join(n.Dir, "code-sources.json") }

// sourceKey identifies the source of e (its type made explicit).
func sourceKey(e site.Extension) string {
	src := e.Source
	src.Type = src.SourceType()
	b, _ := json.Marshal(src)
	return string(b)
}

// readCodeSources returns the site's records ("plugins/x" → source); none
// when the file is missing or damaged (everything is resolved then).
func readCodeSources(n Names) map[string]codeSource {
	recs := map[string]codeSource{}
	b, err := os.ReadFile(codeSourcesPath(n))
	if err != nil || json.Unmarshal(b, &recs) != nil {
		return map[string]codeSource{}
	}
	return recs
}

// writeCodeSources records what want was resolved from: the links a
// successful job left.
func writeCodeSources(n Names, want []wanted) error {
	recs := map[string]codeSource{}
	for _, w := range want {
		recs[extDirs[w.kind]+"/"+w.ext.Name] = codeSource{Target: w.target, Source: sourceKey(w.ext), Version: w.ext.Version}
	}
	if err := writeJSONAtomic(codeSourcesPath(n), recs); err != nil {
		return fmt.Errorf("record the site's code sources: %w", err)
	}
	return nil
}

// installedLatest returns what the site runs for e when e is unpinned and
// the site's link of it was resolved from e's source and version as they
// are now, and the artefact is still in the store: nothing to ask the
// catalogue.
func (s *Shard) installedLatest(n Names, recs map[string]codeSource, kind string, e site.Extension) (wanted, bool) {
	w := wanted{kind: kind, ext: e}
	if (e.Version != "" && e.Version != "latest") || e.Source.SourceType() != site.SourceWordPressOrg || s.cfg.Artefacts == nil {
		return w, false
	}
	rec, ok := recs[extDirs[kind]+"/"+e.Name]
	if !ok || rec.Source != sourceKey(e) || (rec.Version != "" && rec.Version != "latest") {
		return w, false
	}
	// wp-content/plugins and themes are root's: the link is the shard's.
	target, err := os.Readlink(filepath.Join(n.Docroot, "wp-content", extDirs[kind], e.Name))
	if err != nil || target != rec.Target || !s.inStore(target) {
		return w, false
	}
	k := artefact.Plugin
	if kind == "theme" {
		k = artefact.Theme
	}
	a, err := s.cfg.Artefacts.Get(k, "", s.digestOf(target)) // catalogue artefacts belong to no organisation
	if err != nil || a.Name != e.Name || a.Dir != target {
		return w, false
	}
	w.target, w.digest, w.ver = a.Dir, a.Digest, a.Version
	return w, true
}

// observed is what a site runs.
type observed struct {
	links     map[string]map[string]string // "plugins"/"themes" → folder → target ("" not a link)
	wp        *wordpress.Observation
	constants map[string]string
	core      string
}

func (cr *codeRun) observe(ctx context.Context) (*observed, error) {
	return cr.s.observeSite(ctx, cr.st, cr.n, cr.run)
}

func (s *Shard) observeSite(ctx context.Context, st *site.Site, n Names, run wordpress.Runner) (*observed, error) {
	o := &observed{links: map[string]map[string]string{}}
	for _, d := range extDirs {
		l, err := readLinks(filepath.Join(n.Docroot, "wp-content", d))
		if err != nil {
			return nil, err
		}
		o.links[d] = l
	}
	wp, err := run.ObserveCode(ctx, s.codeScript, slices.Sorted(maps.Keys(st.Spec.Options)))
	if err != nil {
		return nil, err
	}
	o.wp = wp
	cfg, err := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
	if err != nil {
		return nil, fmt.Errorf("read wp-config.php: %w", err)
	}
	o.constants = wordpress.ConstantsOf(cfg)
	if o.core, err = wordpress.CoreVersionOf(n.Docroot); err != nil {
		return nil, err
	}
	return o, nil
}

// readLinks returns the entries of dir (a root-owned wp-content/plugins or
// themes): folder → link target, "" for an entry that is not a link (a
// regular file such as index.php is left out).
func readLinks(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(dir), err)
	}
	out := map[string]string{}
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), "."):
		case e.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", filepath.Base(dir), err)
			}
			out[e.Name()] = t
		case e.IsDir():
			out[e.Name()] = ""
		}
	}
	return out, nil
}

// plan lists the changes that bring cur to the spec (want).
func (cr *codeRun) plan(want []wanted, cur *observed) ([]store.CodeChange, error) {
	spec := &cr.st.Spec
	// Drift: the spec has not changed since a job applied it, yet the
	// site differs from it.
	drift := cr.st.Status.Code != nil && cr.st.Status.Code.AppliedGeneration == cr.st.Metadata.Generation
	var plan []store.CodeChange
	add := func(c store.CodeChange) { plan = append(plan, c) }
	named := map[string]bool{}
	activeTheme := ""
	for _, w := range want {
		named[w.kind+"/"+w.ext.Name] = true
		if w.kind == "theme" && w.ext.Active {
			activeTheme = w.ext.Name
		}
	}
	if v := spec.CoreVersion; v != "" && v != cur.core {
		add(store.CodeChange{Action: actCore, Kind: "core", Name: "wordpress", From: cur.core, To: v, Reason: "the spec asks for WordPress " + v})
	}
	for _, w := range want {
		dir := extDirs[w.kind]
		target, present := cur.links[dir][w.ext.Name]
		version, active := cur.version(w.kind, w.ext.Name)
		switch {
		case present && target == "":
			return nil, publicf("wp-content/%s/%s is a folder the platform did not install; it cannot be replaced", dir, w.ext.Name)
		case !present:
			add(store.CodeChange{Action: actInstall, Kind: w.kind, Name: w.ext.Name, To: w.version(), Reason: "not installed"})
			active = false
		case target != w.target:
			add(store.CodeChange{Action: actUpdate, Kind: w.kind, Name: w.ext.Name, From: version, To: w.version(), Reason: updateReason(version, w)})
		}
		switch {
		case w.kind == "plugin" && w.ext.Active && !active:
			add(store.CodeChange{Action: actActivate, Kind: w.kind, Name: w.ext.Name, Reason: because(drift, "inactive, the spec says active")})
		case w.kind == "plugin" && !w.ext.Active && active:
			add(store.CodeChange{Action: actDeactivate, Kind: w.kind, Name: w.ext.Name, Reason: because(drift, "active, the spec says inactive")})
		case w.kind == "theme" && w.ext.Active && cur.wp.Stylesheet != w.ext.Name:
			add(store.CodeChange{Action: actActivate, Kind: w.kind, Name: w.ext.Name, From: cur.wp.Stylesheet, Reason: because(drift, "the spec's active theme is not the site's")})
		}
	}
	// Links into the artefact store the spec no longer names go.
	for _, kind := range []string{"plugin", "theme"} {
		dir := extDirs[kind]
		for _, name := range slices.Sorted(maps.Keys(cur.links[dir])) {
			if named[kind+"/"+name] || !cr.s.inStore(cur.links[dir][name]) {
				continue
			}
			version, active := cur.version(kind, name)
			if kind == "theme" && cur.wp.Stylesheet == name && activeTheme == "" {
				return nil, publicf("theme %s is the site's active theme: the spec must name the theme to switch to before it can be removed", name)
			}
			if kind == "plugin" && active {
				add(store.CodeChange{Action: actDeactivate, Kind: kind, Name: name, Reason: "removed from the spec"})
			}
			add(store.CodeChange{Action: actRemove, Kind: kind, Name: name, From: version, Reason: "not in the spec"})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Options)) {
		v, ok := cur.wp.Options[k]
		if !ok || v != spec.Options[k] {
			add(store.CodeChange{Action: actOption, Kind: "option", Name: k, From: v, To: spec.Options[k], Reason: because(drift, "differs from the spec")})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Constants)) {
		if v, ok := cur.constants[k]; !ok || v != spec.Constants[k] {
			add(store.CodeChange{Action: actConstant, Kind: "constant", Name: k, From: v, To: spec.Constants[k], Reason: "differs from the spec"})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cur.constants)) {
		if _, ok := spec.Constants[k]; !ok {
			add(store.CodeChange{Action: actConstant, Kind: "constant", Name: k, From: cur.constants[k], Reason: "not in the spec"})
		}
	}
	return plan, nil
}

// because is a change's reason, marked as drift when it is.
func because(drift bool, reason string) string {
	if drift {
		return "drift: " + reason
	}
	return reason
}

func (w wanted) version() string {
	if w.ver != "" {
		return w.ver
	}
	return w.ext.Version
}

func updateReason(from string, w wanted) string {
	switch {
	case from != "" && w.version() != "" && from != w.version():
		return fmt.Sprintf("version %s → %s", from, w.version())
	case w.digest != "":
		return "another artefact (" + short(w.digest) + ")"
	}
	return "another source"
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// version returns what WordPress says of an extension: its version and
// whether it is active.
func (o *observed) version(kind, name string) (string, bool) {
	if kind == "plugin" {
		if p := o.wp.Plugin(name); p != nil {
			return p.Version, p.Active
		}
		return "", false
	}
	if t := o.wp.Theme(name); t != nil {
		return t.Version, t.Active
	}
	return "", false
}

// describe is a plan in a few words.
func describe(plan []store.CodeChange) string {
	var out []string
	for _, c := range plan {
		out = append(out, fmt.Sprintf("%s %s %s (%s)", c.Action, c.Kind, c.Name, c.Reason))
	}
	return strings.Join(out, "; ")
}

// inStore reports whether target is in the artefact store.
func (s *Shard) inStore(target string) bool {
	return s.cfg.Artefacts != nil && target != "" && strings.HasPrefix(target, s.cfg.Artefacts.Root()+string(filepath.Separator))
}

// digestOf returns the digest (the archive's SHA-256) of the artefact an
// artefact store target is (<root>/<kind>/<folder>/<name>; an upload's
// folder is not its digest), "" if it is none.
func (s *Shard) digestOf(target string) string {
	if !s.inStore(target) {
		return ""
	}
	a, err := s.cfg.Artefacts.At(target)
	if err != nil {
		return ""
	}
	return a.Digest
}

// snapshot saves what a rollback restores: the database (dumped), the
// links, wp-config.php; the marker last.
func (cr *codeRun) snapshot(ctx context.Context, jobID string, cur *observed) error {
	dir := codeDir(cr.n)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	tmp := codeDump(cr.n) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := cr.s.db.Dump(ctx, cr.n.DB, f); err != nil {
		f.Close()
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := os.Rename(tmp, codeDump(cr.n)); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(cr.n.Docroot, "wp-config.php"))
	if err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := os.WriteFile(codeConfig(cr.n), cfg, 0o600); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	return writeJSONAtomic(codeMarker(cr.n), codeState{Job: jobID, Started: cr.s.cfg.Clock().UTC(), Core: cur.core, Links: cur.links})
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// apply carries out plan. undo, when not nil, undoes a core change.
func (cr *codeRun) apply(ctx context.Context, want []wanted, cur *observed, plan []store.CodeChange) (undo func(context.Context) error, err error) {
	var in wordpress.CodeInput
	var deactivate []string
	links := map[string]bool{}
	var removals []store.CodeChange
	for _, c := range plan {
		switch c.Action {
		case actCore:
			cr.progress("switching WordPress core to " + c.To)
			_, u, err := cr.s.applyCore(ctx, cr.st, cr.n, c.To)
			if err != nil {
				return nil, fmt.Errorf("core %s: %w", c.To, err)
			}
			undo = u
		case actDeactivate:
			deactivate = append(deactivate, c.Name)
		case actInstall, actUpdate:
			links[c.Kind+"/"+c.Name] = true
		case actRemove:
			removals = append(removals, c)
		case actActivate:
			if c.Kind == "theme" {
				in.Theme = c.Name
			} else {
				in.Activate = append(in.Activate, c.Name)
			}
		case actOption:
			if in.Options == nil {
				in.Options = map[string]string{}
			}
			in.Options[c.Name] = c.To
		}
	}
	if len(deactivate) > 0 {
		cr.progress("deactivating plugins")
		if _, err := cr.run.ApplyCode(ctx, cr.s.codeScript, wordpress.CodeInput{Deactivate: deactivate}); err != nil {
			return undo, err
		}
	}
	for _, w := range want {
		if !links[w.kind+"/"+w.ext.Name] {
			continue
		}
		cr.progress("linking " + w.kind + " " + w.ext.Name)
		cr.changed()
		if err := setLink(filepath.Join(cr.n.Docroot, "wp-content", extDirs[w.kind]), w.ext.Name, w.target); err != nil {
			return undo, err
		}
	}
	// wp-config.php (the constants) as convergence writes it.
	cr.changed()
	release := cr.s.secretsLock(cr.n.ID)
	sec, err := loadOrCreateSecrets(cr.n.Dir)
	if err == nil {
		err = cr.s.ensureFiles(ctx, cr.st, cr.n, sec, cr.uid, cr.gid)
	}
	release()
	if err != nil {
		return undo, fmt.Errorf("writing the site's files: %w", err)
	}
	if in.Theme != "" || len(in.Activate) > 0 || len(in.Options) > 0 {
		cr.progress("activating and setting options through WordPress")
		if _, err := cr.run.ApplyCode(ctx, cr.s.codeScript, in); err != nil {
			return undo, err
		}
	}
	for _, c := range removals {
		cr.progress("removing " + c.Kind + " " + c.Name)
		cr.changed()
		if err := removeLink(filepath.Join(cr.n.Docroot, "wp-content", extDirs[c.Kind]), c.Name); err != nil {
			return undo, err
		}
	}
	return undo, nil
}

// setLink points dir/name at target atomically: a link under a temporary
// name renamed over the old one.
func setLink(dir, name, target string) error {
	p := filepath.Join(dir, name)
	if cur, err := os.Readlink(p); err == nil && cur == target {
		return nil
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return publicf("wp-content/%s/%s is a folder the platform did not install; it cannot be replaced", filepath.Base(dir), name)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := filepath.Join(dir, ".aipress-link-"+hex.EncodeToString(b))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// removeLink removes the link dir/name (never anything else).
func removeLink(dir, name string) error {
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return publicf("wp-content/%s/%s is a folder the platform did not install; it is not removed", filepath.Base(dir), name)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// restoreLinks makes the links of dir those of want: links it lacks are
// made, links to elsewhere repointed, links want does not list (and
// temporary ones a crash left) removed. Entries that are not links are
// left alone.
func restoreLinks(dir string, want map[string]string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("restore links: %w", err)
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if t, ok := want[e.Name()]; !ok || t == "" {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("restore links: %w", err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if t := want[name]; t != "" {
			if err := setLink(dir, name, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// health runs the smoke test against the site through an in-process edge
// (no public edge needed) and looks for new fatal errors in its PHP error
// log since logFrom. The error names the first failed check.
func (cr *codeRun) health(ctx context.Context, smoke store.SmokeTest, logFrom int64) ([]store.HealthCheck, error) {
	type probe struct {
		path   string
		status int
		body   string // must be the whole (trimmed) body when set
	}
	want := smoke.Status
	if want == 0 {
		want = http.StatusOK
	}
	var probes []probe
	if len(smoke.Paths) == 0 {
		// The home page, the login page and the REST API (by its query
		// form, which works with every permalink setting) answer 200;
		// /wp-admin/ redirects anonymous visitors to the login page, so
		// wp-admin's own bootstrap is checked through admin-ajax.php,
		// which runs admin_init and answers 400 "0" to a request without
		// an action.
		probes = []probe{{"/", want, ""}, {"/wp-login.php", want, ""}, {"/?rest_route=/", want, ""},
			{"/wp-admin/admin-ajax.php", http.StatusBadRequest, "0"}}
	} else {
		for _, p := range smoke.Paths {
			probes = append(probes, probe{p, want, ""})
		}
	}
	if err := cr.settle(ctx); err != nil {
		return nil, err
	}
	var checks []store.HealthCheck
	var failures []string
	fail := func(c store.HealthCheck) {
		checks = append(checks, c)
		failures = append(failures, c.Name+": "+c.Detail)
	}
	for _, p := range probes {
		if !strings.HasPrefix(p.path, "/") {
			p.path = "/" + p.path
		}
		code, body := cr.s.siteRequest(ctx, cr.st, cr.n, p.path)
		name := "GET " + p.path
		detail := fmt.Sprintf("answered %d", code)
		switch {
		case code != p.status:
			fail(store.HealthCheck{Name: name, Detail: fmt.Sprintf("answered %d, want %d%s", code, p.status, bodyHint(body))})
		case p.body != "" && strings.TrimSpace(body) != p.body:
			fail(store.HealthCheck{Name: name, Detail: fmt.Sprintf("answered %d with an unexpected body%s", code, bodyHint(body))})
		case p.path == "/" && smoke.Contains != "" && !strings.Contains(body, smoke.Contains):
			fail(store.HealthCheck{Name: name, Detail: fmt.Sprintf("the page lacks %q", smoke.Contains)})
		default:
			checks = append(checks, store.HealthCheck{Name: name, OK: true, Detail: detail})
		}
	}
	if smoke.Contains != "" && len(smoke.Paths) > 0 && !slices.Contains(smoke.Paths, "/") {
		_, body := cr.s.siteRequest(ctx, cr.st, cr.n, "/")
		if !strings.Contains(body, smoke.Contains) {
			fail(store.HealthCheck{Name: "GET /", Detail: fmt.Sprintf("the page lacks %q", smoke.Contains)})
		} else {
			checks = append(checks, store.HealthCheck{Name: "GET /", OK: true, Detail: fmt.Sprintf("contains %q", smoke.Contains)})
		}
	}
	fatals, err := newFatals(cr.n, cr.uid, logFrom)
	switch {
	case err != nil:
		fail(store.HealthCheck{Name: "php errors", Detail: "the site's PHP error log cannot be read: " + cr.s.scrub(err.Error(), cr.n)})
	case len(fatals) > 0:
		fail(store.HealthCheck{Name: "php errors", Detail: cr.s.scrub(fatals[0], cr.n)})
	default:
		checks = append(checks, store.HealthCheck{Name: "php errors", OK: true, Detail: "no new PHP fatal error"})
	}
	if len(failures) > 0 {
		return checks, publicf("health check failed: %s", strings.Join(failures, "; "))
	}
	return checks, nil
}

func bodyHint(body string) string {
	s := strings.Join(strings.Fields(html.UnescapeString(htmlTags.ReplaceAllString(body, " "))), " ")
	if s == "" {
		return ""
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return ": " + s
}

var htmlTags = regexp.MustCompile(`(?s)<style.*?</style>|<script.*?</script>|<[^>]*>`)

// siteRequest sends GET path to site st through an in-process edge and
// returns the status and (the first MiB of) the body.
func (s *Shard) siteRequest(ctx context.Context, st *site.Site, n Names, path string) (int, string) {
	ed := edge.New(edge.Config{Logger: s.log, AllowedSymlinkRoots: s.AllowedSymlinkRoots(), DialTimeout: 10 * time.Second})
	siteURL := s.cfg.PublicURL(st.Spec.Domain)
	ed.SetTable(edge.NewTable([]edge.Route{{
		Host: st.Spec.Domain, Site: st.Metadata.Name, Docroot: n.Docroot, Endpoint: s.endpoint(n),
		State: edge.Serving, Options: edge.RouteOptions{WAFMode: site.WAFOff},
	}}))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, siteURL+path, nil)
	req.Host = hostOf(siteURL)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	ed.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if len(body) > 1<<20 {
		body = body[:1<<20]
	}
	return rec.Code, string(body)
}

// errorLogPath is the site's PHP error log (php-fpm's; internal/phpfpm).
func errorLogPath(n Names) string { return filepath.Join(n.LogsDir(), sitelog.PHPFile) }

// openErrorLog opens the site's PHP error log for reading without following
// a link the site put in its place (the logs directory is the site's), and
// only if it is a regular file with one name.
func openErrorLog(n Names) (*os.File, error) {
	f, err := os.OpenFile(errorLogPath(n), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); !fi.Mode().IsRegular() || !ok || sys.Nlink != 1 {
		f.Close()
		return nil, errors.New("php-error.log is not a regular file")
	}
	return f, nil
}

// errorLogSize is the size of the site's PHP error log now (0: none).
func errorLogSize(n Names) int64 {
	f, err := openErrorLog(n)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// newFatals returns the "PHP Fatal error" lines appended to the site's PHP
// error log after offset from (all of it when it shrank: rotated), reading
// at most maxErrorLogRead bytes.
func newFatals(n Names, uid int, from int64) ([]string, error) {
	f, err := openErrorLog(n)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if sys := fi.Sys().(*syscall.Stat_t); uid >= 0 && int(sys.Uid) != uid && sys.Uid != 0 {
		return nil, errors.New("php-error.log belongs to another user")
	}
	if fi.Size() < from {
		from = 0
	}
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, from, fi.Size()-from), maxErrorLogRead))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "PHP Fatal error"); i >= 0 {
			out = append(out, strings.TrimSpace(line[i:]))
		}
	}
	return out, nil
}

// reason is the public text of a failed change: PHP's messages with the
// shard's paths replaced by the site's own (wp-content/plugins/x/x.php).
func (cr *codeRun) reason(err error) string {
	var ce *wordpress.CodeError
	if errors.As(err, &ce) {
		// PHP's message without its stack trace.
		msg, _, _ := strings.Cut(ce.Message, "\nStack trace:")
		return cr.s.scrub(strings.TrimSpace(msg), cr.n)
	}
	var pe *publicError
	if errors.As(err, &pe) {
		return cr.s.scrub(pe.msg, cr.n)
	}
	return cr.s.publicMessage(cr.s.siteLog(cr.st), "the code change", err)
}

// scrub replaces the shard's paths in a message for the site's owner by
// the site's view of them.
func (s *Shard) scrub(msg string, n Names) string {
	if s.cfg.Artefacts != nil {
		re := regexp.MustCompile(regexp.QuoteMeta(s.cfg.Artefacts.Root()) + `/(plugin|theme|core)/[0-9a-f]+/`)
		msg = re.ReplaceAllStringFunc(msg, func(m string) string {
			switch {
			case strings.Contains(m, "/plugin/"):
				return "wp-content/plugins/"
			case strings.Contains(m, "/theme/"):
				return "wp-content/themes/"
			}
			return ""
		})
	}
	var pairs []string
	if n.Docroot != "" {
		pairs = append(pairs, n.Docroot+"/", "", n.Dir+"/", "")
	}
	if s.core != nil {
		pairs = append(pairs, s.core.Content+"/", "wp-content/", s.core.Tree+"/", "")
	}
	pairs = append(pairs, s.cfg.Dir+"/", "")
	return strings.NewReplacer(pairs...).Replace(msg)
}

// rollback puts back the snapshot: links, wp-config.php, the database.
// Each step is idempotent, so a rollback a crash interrupted is redone.
func (cr *codeRun) rollback(ctx context.Context) error {
	b, err := os.ReadFile(codeMarker(cr.n))
	if err != nil {
		return fmt.Errorf("code rollback: %w", err)
	}
	var cs codeState
	if err := json.Unmarshal(b, &cs); err != nil {
		return fmt.Errorf("code rollback: marker: %w", err)
	}
	cr.changed()
	for _, d := range []string{"plugins", "themes"} {
		if err := restoreLinks(filepath.Join(cr.n.Docroot, "wp-content", d), cs.Links[d]); err != nil {
			return err
		}
	}
	cfg, err := os.ReadFile(codeConfig(cr.n))
	if err != nil {
		return fmt.Errorf("code rollback: %w", err)
	}
	if err := writeIfChanged(filepath.Join(cr.n.Docroot, "wp-config.php"), cfg, 0o640, 0, cr.gid); err != nil {
		return err
	}
	if err := cr.restoreDatabase(ctx); err != nil {
		return err
	}
	// Always (applyCore is idempotent and cheap when nothing changed): a
	// crash half-way through a relink leaves a docroot that still reads
	// as the old core (wp-includes moves last) but is half-moved.
	if cs.Core != "" {
		if _, _, err := cr.s.applyCore(ctx, cr.st, cr.n, cs.Core); err != nil {
			return fmt.Errorf("code rollback: core %s: %w", cs.Core, err)
		}
	}
	return nil
}

// restoreDatabase loads the dump into a scratch database as a load user
// limited to it (mariadb.Load: never as root) and swaps its tables in for
// the live ones in one RENAME TABLE (tables the change created go with
// the live ones).
func (cr *codeRun) restoreDatabase(ctx context.Context) error {
	db := cr.s.db
	for _, d := range []string{codeStagingDB(cr.n), codeOldDB(cr.n)} {
		if err := db.DropSchema(ctx, d); err != nil {
			return err
		}
	}
	if err := db.CreateSchema(ctx, codeStagingDB(cr.n)); err != nil {
		return err
	}
	f, err := os.Open(codeDump(cr.n))
	if err != nil {
		return fmt.Errorf("code rollback: %w", err)
	}
	err = db.Load(ctx, codeStagingDB(cr.n), f)
	f.Close()
	if err != nil {
		return fmt.Errorf("code rollback: %w", err)
	}
	if err := db.SwapTables(ctx, cr.n.DB, codeStagingDB(cr.n), codeOldDB(cr.n)); err != nil {
		return fmt.Errorf("code rollback: %w", err)
	}
	for _, d := range []string{codeStagingDB(cr.n), codeOldDB(cr.n)} {
		if err := db.DropSchema(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// commit removes the snapshot: the marker first.
func (cr *codeRun) commit() error {
	if err := os.Remove(codeMarker(cr.n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("code snapshot: %w", err)
	}
	if err := os.RemoveAll(codeDir(cr.n)); err != nil {
		return fmt.Errorf("code snapshot: %w", err)
	}
	return nil
}

// recover rolls back what a code job a crash interrupted left.
func (cr *codeRun) recover(ctx context.Context) (store.HealthCheck, error) {
	b, _ := os.ReadFile(codeMarker(cr.n))
	var cs codeState
	_ = json.Unmarshal(b, &cs)
	cr.s.log.Warn("rolling back an interrupted code job", "site", cr.st.Metadata.Name, "job", cs.Job)
	if err := cr.rollback(ctx); err != nil {
		return store.HealthCheck{}, err
	}
	if err := cr.commit(); err != nil {
		return store.HealthCheck{}, err
	}
	return store.HealthCheck{Name: "recovery", OK: true, Detail: "rolled back the code job " + cs.Job + " that a crash interrupted"}, nil
}

// recoverCode is convergence's (and a restore's) check for a code job a
// crash interrupted: its snapshot is rolled back. The caller holds the
// site (lockSite).
func (s *Shard) recoverCode(ctx context.Context, st *site.Site, n Names) error {
	if !fileExists(codeMarker(n)) {
		return os.RemoveAll(codeDir(n)) // a snapshot a crash left unfinished
	}
	uid, gid := lookupIDs(n.Unix)
	cr := &codeRun{s: s, st: st, n: n, uid: uid, gid: gid, progress: func(string) {},
		run: wordpress.Runner{Docroot: n.Docroot, Host: hostOf(s.cfg.PublicURL(st.Spec.Domain)), UID: uid, GID: gid}}
	_, err := cr.recover(ctx)
	return err
}

// status is the site's Status.Code for what it runs (cur).
func (cr *codeRun) status(want []wanted, cur *observed) *site.CodeStatus {
	return cr.s.codeStatus(cr.st, cur)
}

func (s *Shard) codeStatus(st *site.Site, cur *observed) *site.CodeStatus {
	c := &site.CodeStatus{Core: cur.core, Options: cur.wp.Options, Constants: cur.constants, ObservedAt: s.cfg.Clock().UTC()}
	sources := map[string]string{}
	for _, e := range st.Spec.Plugins {
		sources["plugins/"+e.Name] = e.Source.SourceType()
	}
	for _, e := range st.Spec.Themes {
		sources["themes/"+e.Name] = e.Source.SourceType()
	}
	source := func(dir, name, target string) string {
		if src, ok := sources[dir+"/"+name]; ok {
			return src
		}
		// Bundled: a link into any registered core's content copy.
		if strings.HasPrefix(target, s.coresDir()+string(filepath.Separator)) {
			return site.SourceBundled
		}
		return SourceUnmanaged
	}
	for _, p := range cur.wp.Plugins {
		target, linked := cur.links["plugins"][p.Name]
		if !linked {
			continue // a single-file plugin of the core's skeleton (hello.php)
		}
		c.Plugins = append(c.Plugins, site.InstalledExtension{Name: p.Name, Version: p.Version, Active: p.Active,
			Digest: s.digestOf(target), Source: source("plugins", p.Name, target)})
	}
	for _, t := range cur.wp.Themes {
		target, linked := cur.links["themes"][t.Name]
		if !linked {
			continue // not in wp-content/themes: a directory a plugin registered
		}
		c.Themes = append(c.Themes, site.InstalledExtension{Name: t.Name, Version: t.Version, Active: t.Active,
			Digest: s.digestOf(target), Source: source("themes", t.Name, target)})
	}
	return c
}

// setCodeStatus writes Status.Code: obs (nil keeps what was observed
// before) with fn applied.
func (s *Shard) setCodeStatus(ctx context.Context, rep reporter, obs *site.CodeStatus, fn func(*site.CodeStatus)) {
	rep.update(context.WithoutCancel(ctx), func(stt *site.Status) {
		next := &site.CodeStatus{}
		if stt.Code != nil {
			*next = *stt.Code
		}
		if obs != nil {
			keep := *next
			*next = *obs
			next.AppliedGeneration, next.LastJob, next.LastError = keep.AppliedGeneration, keep.LastJob, keep.LastError
		}
		if fn != nil {
			fn(next)
		}
		stt.Code = next
	})
}

// usesCode reports whether site st declares code or has code observed.
func usesCode(st *site.Site) bool {
	sp := &st.Spec
	return len(sp.Plugins) > 0 || len(sp.Themes) > 0 || len(sp.Options) > 0 || len(sp.Constants) > 0 || st.Status.Code != nil
}

// observeCodeStatus refreshes Status.Code of a serving site that uses code
// (a full convergence pass: one PHP run), so that drift shows without a
// job.
func (s *Shard) observeCodeStatus(ctx context.Context, rep reporter, st *site.Site, n Names, uid, gid int) {
	if !usesCode(st) || fileExists(codeMarker(n)) {
		return
	}
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(s.cfg.PublicURL(st.Spec.Domain)), UID: uid, GID: gid}
	cur, err := s.observeSite(ctx, st, n, run)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("observe the site's code", "site", st.Metadata.Name, "err", err)
		}
		return
	}
	s.setCodeStatus(ctx, rep, s.codeStatus(st, cur), nil)
}

// ensureCodeLinks links the extensions that the docroot lacks (a site
// created from a snapshot, restored or moved: archives carry no links):
// when the site's spec is applied (or it is a clone no code job ran for)
// the spec's, fetched through the artefact store when it
// lacks them; otherwise what the site ran before (Status.Code's
// artefact, if the store holds it), leaving the spec's new extensions to
// the code job that is due, with its health check and rollback (a new
// site's installer activates nothing: its code job links them).
// Links that exist are left as they are. A failure is logged, not
// returned: a site's files are never held back for a plugin.
func (s *Shard) ensureCodeLinks(ctx context.Context, st *site.Site, n Names) {
	if fileExists(codeMarker(n)) {
		return // a code job's snapshot: its rollback decides the links
	}
	applied := st.Status.Code != nil && st.Status.Code.AppliedGeneration == st.Metadata.Generation
	if st.Status.Code == nil && st.Spec.Source != nil {
		applied = true // a clone: its database expects its spec's code
	}
	for _, kind := range []string{"plugin", "theme"} {
		list, ran := st.Spec.Plugins, []site.InstalledExtension(nil)
		if st.Status.Code != nil {
			ran = st.Status.Code.Plugins
		}
		if kind == "theme" {
			list = st.Spec.Themes
			if st.Status.Code != nil {
				ran = st.Status.Code.Themes
			}
		}
		dir := filepath.Join(n.Docroot, "wp-content", extDirs[kind])
		link := func(name string, resolve func() (string, error)) {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				return
			}
			target, err := resolve()
			if err == nil && target != "" {
				err = setLink(dir, name, target)
			}
			if err != nil && ctx.Err() == nil {
				s.log.Warn("link the site's "+kind, "site", st.Metadata.Name, kind, name, "err", err)
			}
		}
		if applied {
			for _, e := range list {
				link(e.Name, func() (string, error) {
					w, err := s.resolveExtension(ctx, st, kind, e)
					return w.target, err
				})
			}
			continue
		}
		for _, e := range ran {
			if e.Digest == "" || s.cfg.Artefacts == nil || !site.ValidSlug(e.Name) || !digestRE.MatchString(e.Digest) {
				continue
			}
			org := ""
			if e.Source == site.SourceUpload {
				org = st.Metadata.Org // an upload is kept per organisation
			}
			link(e.Name, func() (string, error) {
				a, err := s.cfg.Artefacts.Get(artefact.Kind(kind), org, e.Digest)
				if err != nil || a.Name != e.Name {
					return "", nil // not in the store: the code job fetches it
				}
				return a.Dir, nil
			})
		}
	}
}

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
