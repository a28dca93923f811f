package shard_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress/coretest"
)

// createOnCore is create for a site whose spec names WordPress core
// version (converged once; the caller checks the outcome).
func (c *cluster) createOnCore(name, uid, shardName, version string) {
	c.t.Helper()
	s := &site.Site{
		Metadata: site.Metadata{Name: name, UID: uid, CreatedAt: time.Now().UTC()},
		Spec: site.Spec{Domain: name, Title: "On " + version, Plan: "basic", Admin: adminFor(c.t), WAF: site.WAF{Mode: site.WAFOff},
			CoreVersion: version},
		Status: site.Status{Phase: site.PhasePending, Shard: shardName},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		c.t.Fatal(err)
	}
	_ = c.converge(shardName)
}

// ready converges shard until site name is Ready.
func (c *cluster) ready(name, shardName string) *site.Site {
	c.t.Helper()
	for i := 0; i < 5; i++ {
		if got := c.get(name); got.Status.Phase == site.PhaseReady {
			c.routes()
			return got
		}
		_ = c.converge(shardName)
	}
	c.t.Fatalf("site %s not Ready: %+v", name, c.get(name).Status)
	return nil
}

// dbVersion is the db_version option of site uid's database.
func dbVersion(t *testing.T, c *cluster, sh *shard.Shard, uid string) int {
	t.Helper()
	n := sh.NamesFor(uid)
	v, err := sh.DB().QueryString(c.ctx, "SELECT option_value FROM `"+n.DB+"`.wp_options WHERE option_name = 'db_version'")
	if err != nil {
		t.Fatal(err)
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("db_version %q: %v", v, err)
	}
	return i
}

// generator checks that host's home page says it runs WordPress version.
func (c *cluster) generator(host, version string) {
	c.t.Helper()
	c.check(host, "/", 200, `<meta name="generator" content="WordPress `+version+`" />`)
}

// realCoreFile is where file (relative to the docroot) of site uid really
// is, and checks that the docroot reaches it through a symlink.
func realCoreFile(t *testing.T, sh *shard.Shard, uid, file string) string {
	t.Helper()
	n := sh.NamesFor(uid)
	top := strings.SplitN(file, "/", 2)[0]
	if fi, err := os.Lstat(filepath.Join(n.Docroot, top)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s of site %s is not a symlink into a core: %v", top, uid, err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(n.Docroot, file))
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// TestSeveralCores runs sites on two WordPress cores side by side on one
// shard, moves a site to the newer core with WordPress's database upgrade,
// fails the upgrade to a broken core and undoes it, and makes a site from
// a snapshot of a site on the newer core. The newer core is Debian's
// under version 6.1.10 with a bumped database version, so wp_upgrade()
// runs its migration path; the broken one (6.1.11) fatals in upgrade_all().
func TestSeveralCores(t *testing.T) {
	c := newCluster(t)
	debDB := coretest.DebianDBVersion(t)
	// The catalogue serves both cores; the shards fetch them through
	// their artefact store when a site needs one.
	cat := catalogtest.New(t)
	src := t.TempDir()
	for _, o := range []coretest.Options{{Version: "6.1.10"}, {Version: "6.1.11", DBVersion: debDB + 2, BreakUpgrade: true}} {
		cat.AddCore(o.Version, coretest.Build(t, filepath.Join(src, o.Version), o))
	}
	store, err := artefact.Open(artefact.Config{Dir: filepath.Join(c.dir, "artefacts"), Catalogue: cat.Catalogue(), AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	c.artefacts = store
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()

	// Two sites, two cores, one shard.
	const oldHost, oldUID = "old.localhost", "uid-old"
	const newHost, newUID = "new.localhost", "uid-new"
	c.create(oldHost, oldUID, "alpha", "Old", adminFor(t))
	c.createOnCore(newHost, newUID, "alpha", "6.1.10")
	newSite := c.ready(newHost, "alpha")
	c.generator(oldHost, "6.1.9")
	c.generator(newHost, "6.1.10")
	if got := dbVersion(t, c, sh, oldUID); got != debDB {
		t.Errorf("old site's db_version = %d, want %d", got, debDB)
	}
	if got := dbVersion(t, c, sh, newUID); got != debDB+1 {
		t.Errorf("new site's db_version = %d, want %d", got, debDB+1)
	}
	if cond := newSite.Status.Condition(shard.CondInstalled); cond == nil || !strings.Contains(cond.Message, "6.1.10") {
		t.Errorf("Installed condition of the new site: %+v", cond)
	}
	// The edge serves the newer core's static files (AllowedSymlinkRoots).
	c.check(newHost, "/wp-includes/css/dashicons.min.css", 200, "dashicons")
	c.check(newHost, "/wp-content/themes/twentytwentythree/style.css", 200, "Twenty Twenty-Three")
	newVersionFile := realCoreFile(t, sh, newUID, "wp-includes/version.php")
	if !strings.Contains(newVersionFile, "/cores/6.1.10/tree/") {
		t.Errorf("the new site's version.php is %s", newVersionFile)
	}

	// A core the shard cannot get: a clear reason, nothing made.
	{ // unavailable core
		c.createOnCore("nope.localhost", "uid-nope", "alpha", "6.2.0")
		got := c.get("nope.localhost")
		cond := got.Status.Condition(shard.CondServing)
		if got.Status.Phase != site.PhaseFailed || cond == nil || !strings.Contains(cond.Message, "WordPress core 6.2.0 is not in the catalogue") {
			t.Errorf("site on a core the shard lacks: %s %+v", got.Status.Phase, cond)
		}
		if _, err := os.Stat(sh.NamesFor("uid-nope").Dir); !os.IsNotExist(err) {
			t.Errorf("the site's directory was made: %v", err)
		}
		if _, err := c.st.UpdateSite(c.ctx, "nope.localhost", func(s *site.Site) error {
			now := time.Now().UTC()
			s.Metadata.DeletionRequested = &now
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := c.converge("alpha"); err != nil {
			t.Fatal(err)
		}
	}

	// A site's symlink into another site's files is still refused.
	{ // hostile links
		on, nn := sh.NamesFor(oldUID), sh.NamesFor(newUID)
		secret := filepath.Join(nn.Docroot, "wp-content", "uploads", "secret.txt")
		if err := os.WriteFile(secret, []byte("the new site's own"), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, target := range map[string]string{"other.txt": secret, "config.txt": filepath.Join(nn.Docroot, "wp-config.php")} {
			if err := os.Symlink(target, filepath.Join(on.Docroot, "wp-content", "uploads", name)); err != nil {
				t.Fatal(err)
			}
			code, _, body := c.request("GET", oldHost, "/wp-content/uploads/"+name, nil, nil)
			if code == 200 || strings.Contains(body, "the new site's own") || strings.Contains(body, "DB_PASSWORD") {
				t.Errorf("GET %s through a link into another site = %d %.100q", name, code, body)
			}
		}
	}

	// The old site moves to 6.1.10: relinked, wp-config.php rewritten,
	// the database upgraded; the page it served before (compiled by
	// OPcache) now comes from the newer core.
	{ // upgrade
		c.generator(oldHost, "6.1.9")
		st := c.get(oldHost)
		changed, undo, err := shard.ApplyCore(c.ctx, sh, st, "6.1.10")
		if err != nil || !changed || undo == nil {
			t.Fatalf("ApplyCore = %v, %v", changed, err)
		}
		if got := dbVersion(t, c, sh, oldUID); got != debDB+1 {
			t.Errorf("db_version after the upgrade = %d, want %d", got, debDB+1)
		}
		c.generator(oldHost, "6.1.10")
		if got := shard.SiteCoreVersion(sh, st); got != "6.1.10" {
			t.Errorf("site core = %s", got)
		}
		cfg, err := os.ReadFile(filepath.Join(sh.NamesFor(oldUID).Docroot, "wp-config.php"))
		if err != nil || !strings.Contains(string(cfg), "/cores/6.1.10/tree/'") {
			t.Errorf("wp-config.php's ABSPATH is not the new core's: %v\n%s", err, cfg)
		}
		// One copy of the core for both sites: the same real file.
		if got := realCoreFile(t, sh, oldUID, "wp-includes/version.php"); got != newVersionFile {
			t.Errorf("the upgraded site's version.php is %s, the other's %s", got, newVersionFile)
		}
		// Again: nothing to do.
		if changed, _, err := shard.ApplyCore(c.ctx, sh, st, "6.1.10"); err != nil || changed {
			t.Errorf("second ApplyCore = %v, %v", changed, err)
		}
		// Back down without the old database: refused, nothing changed.
		if changed, _, err := shard.ApplyCore(c.ctx, sh, st, ""); err == nil || changed || !strings.Contains(err.Error(), "does not downgrade") {
			t.Errorf("ApplyCore down to 6.1.9 over a 6.1.10 database = %v, %v", changed, err)
		}
		if got := shard.SiteCoreVersion(sh, st); got != "6.1.10" {
			t.Errorf("site core after a refused downgrade = %s", got)
		}
		// Convergence keeps the site on its core and says which.
		if err := c.converge("alpha"); err != nil {
			t.Fatal(err)
		}
		if cond := c.get(oldHost).Status.Condition(shard.CondInstalled); cond == nil || !strings.Contains(cond.Message, "6.1.10") {
			t.Errorf("Installed condition after the upgrade: %+v", cond)
		}
		c.generator(oldHost, "6.1.10")
		c.check(oldHost, "/wp-admin/", 302, "")
		if !c.dashboard(oldHost, c.login(oldHost)) {
			t.Error("the upgraded site's admin cannot reach the dashboard (a database upgrade prompt?)")
		}
	}

	// The new site to the broken 6.1.11: the upgrade fails with the PHP
	// fatal as the reason; undo puts it back on 6.1.10 at its own
	// database version, serving.
	{ // failed upgrade undone
		st := c.get(newHost)
		changed, undo, err := shard.ApplyCore(c.ctx, sh, st, "6.1.11")
		if err == nil || !changed || undo == nil {
			t.Fatalf("ApplyCore to a broken core = %v, %v", changed, err)
		}
		t.Logf("broken upgrade: %v", err)
		if !strings.Contains(err.Error(), "database upgrade failed") || !strings.Contains(err.Error(), coretest.UpgradeFatal) {
			t.Errorf("error: %v", err)
		}
		if got := shard.SiteCoreVersion(sh, st); got != "6.1.11" {
			t.Errorf("site core before the undo = %s", got)
		}
		// (A code job loads its database dump back here first.)
		if err := shard.UndoCore(c.ctx, sh, st, undo); err != nil {
			t.Fatal(err)
		}
		if got := shard.SiteCoreVersion(sh, st); got != "6.1.10" {
			t.Errorf("site core after the undo = %s", got)
		}
		if got := dbVersion(t, c, sh, newUID); got != debDB+1 {
			t.Errorf("db_version after the undo = %d, want %d", got, debDB+1)
		}
		c.generator(newHost, "6.1.10")
		cfg, err := os.ReadFile(filepath.Join(sh.NamesFor(newUID).Docroot, "wp-config.php"))
		if err != nil || !strings.Contains(string(cfg), "/cores/6.1.10/tree/'") {
			t.Errorf("wp-config.php's ABSPATH after the undo: %v\n%s", err, cfg)
		}
	}

	// A backup records the core the site runs; a site made from the
	// snapshot runs that core whatever its spec's default.
	{ // snapshot and clone
		snap := c.backup(oldHost, "alpha")
		if v, err := shard.SnapshotCoreVersion(c.ctx, sh, snap.Snapshot); err != nil || v != "6.1.10" {
			t.Errorf("snapshot's core = %q, %v", v, err)
		}
		const clone, cloneUID = "clone.localhost", "uid-clone"
		s := &site.Site{
			Metadata: site.Metadata{Name: clone, UID: cloneUID, CreatedAt: time.Now().UTC()},
			Spec: site.Spec{Domain: clone, Title: "Clone", Plan: "basic", Admin: adminFor(t), WAF: site.WAF{Mode: site.WAFOff},
				Source: &site.Source{Snapshot: snap.Snapshot, FromSite: oldHost}},
			Status: site.Status{Phase: site.PhasePending, Shard: "alpha"},
		}
		if err := c.st.CreateSite(c.ctx, s); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for c.get(clone).Status.Phase != site.PhaseReady {
			if time.Now().After(deadline) {
				t.Fatalf("clone not Ready: %+v", c.get(clone).Status)
			}
			_ = c.converge("alpha")
			time.Sleep(100 * time.Millisecond)
		}
		c.routes()
		c.generator(clone, "6.1.10")
		if got := dbVersion(t, c, sh, cloneUID); got != debDB+1 {
			t.Errorf("clone's db_version = %d", got)
		}
	}

	{ // a move carries the core the site runs (its spec names none)
		beta := c.start("beta")
		c.startMove(oldHost, "move-core", "alpha", "beta")
		s := c.runMove(oldHost, site.MoveDone, "alpha", "beta")
		if s.Status.Shard != "beta" || s.Status.Phase != site.PhaseReady {
			t.Fatalf("after the move: %+v", s.Status)
		}
		c.routes()
		c.generator(oldHost, "6.1.10")
		if got := shard.SiteCoreVersion(beta, s); got != "6.1.10" {
			t.Errorf("the moved site runs %s on beta", got)
		}
		if got := dbVersion(t, c, beta, oldUID); got != debDB+1 {
			t.Errorf("the moved site's db_version = %d", got)
		}
	}
}
