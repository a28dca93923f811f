package shard_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/phpini"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// rootQuery returns the rows of q in database db, one string per row
// (columns joined by tabs).
func rootQuery(t *testing.T, c *cluster, sh *shard.Shard, db, q string) []string {
	t.Helper()
	conn, err := sh.DB().OpenRoot(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(c.ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				parts = append(parts, string(b))
			} else {
				parts = append(parts, "")
			}
		}
		out = append(out, strings.Join(parts, "\t"))
	}
	return out
}

// optionsDigest is a digest of the site's options (transients aside: page
// views write those) — what a rollback must bring back exactly.
func optionsDigest(t *testing.T, c *cluster, sh *shard.Shard, uid string) string {
	t.Helper()
	rows := rootQuery(t, c, sh, sh.NamesFor(uid).DB,
		"SELECT option_name, option_value FROM wp_options WHERE option_name NOT LIKE '%transient%' ORDER BY option_name")
	sum := sha256.Sum256([]byte(strings.Join(rows, "\n")))
	return hex.EncodeToString(sum[:])
}

func option(t *testing.T, c *cluster, sh *shard.Shard, uid, name string) string {
	t.Helper()
	rows := rootQuery(t, c, sh, sh.NamesFor(uid).DB, "SELECT option_value FROM wp_options WHERE option_name = '"+name+"'")
	if len(rows) == 0 {
		return ""
	}
	return rows[0]
}

func catalogue(name, version string, active bool) site.Extension {
	return site.Extension{Name: name, Version: version, Active: active}
}

// Plugins and themes from a catalogue (a local one speaking wordpress.org's
// API, serving real small plugins) through the shard's artefact store:
// install, activate, update, theme switch, a shared copy between sites, a
// rollback after a fatal activation and after a broken front end, removal,
// links restored by convergence, and the rollback of a job a crash
// interrupted.
func TestCodeArtefacts(t *testing.T) {
	c := newCluster(t)
	cat := catalogtest.New(t)
	cat.AddFixtures()
	// An archive uploaded through the API (a private build of the hello
	// plugin), as the control plane's bucket would serve it.
	private := catalogtest.Zip(catalogtest.HelloPlugin, catalogtest.PluginFiles(catalogtest.HelloPlugin, "3.0"))
	privateSHA := catalogtest.SHA256(private)
	uploads := func(_ context.Context, sha string) (io.ReadCloser, error) {
		if sha != privateSHA {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(private)), nil
	}
	store_, err := artefact.Open(artefact.Config{Dir: filepath.Join(c.dir, "artefacts"), Catalogue: cat.Catalogue(), Uploads: uploads, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	c.artefacts = store_
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "code-a.localhost", "uid-code-a"
	const hostB, uidB = "code-b.localhost", "uid-code-b"
	c.create(host, uid, "alpha", "Code A", adminFor(t))
	n := sh.NamesFor(uid)
	hello := catalogtest.HelloPlugin

	// Install and activate 1.0: its activation hook ran, its marker is on
	// the page, Status.Code names the artefact.
	c.setCode(host, func(s *site.Spec) { s.Plugins = []site.Extension{catalogue(hello, "1.0", true)} })
	j, res := c.codeJob(host, store.CodeParams{})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("install: %s: %s\n%s", j.Phase, j.Error, c.detail(j.Error))
	}
	if !hasChange(res, "install", hello) || !hasChange(res, "activate", hello) {
		t.Errorf("install changes: %+v", res.Changes)
	}
	c.check(host, "/", 200, catalogtest.Marker(hello, "1.0"))
	if got := option(t, c, sh, uid, "aipress_hello_activated"); got != "1.0" {
		t.Errorf("activation hook: aipress_hello_activated = %q", got)
	}
	p := findExt(c.get(host).Status.Code.Plugins, hello)
	if p == nil || !p.Active || p.Version != "1.0" || len(p.Digest) != 64 || p.Source != site.SourceWordPressOrg {
		t.Fatalf("observed %+v", p)
	}
	link, _ := os.Readlink(filepath.Join(n.Docroot, "wp-content", "plugins", hello))
	if !strings.HasPrefix(link, store_.Root()+"/") {
		t.Errorf("the plugin links to %s, not into the store", link)
	}

	// Update to 2.0: the page shows the new version (every PHP worker
	// runs the new copy).
	c.setCode(host, func(s *site.Spec) { s.Plugins = []site.Extension{catalogue(hello, "2.0", true)} })
	j, res = c.codeJob(host, store.CodeParams{Smoke: store.SmokeTest{Contains: catalogtest.Marker(hello, "2.0")}})
	if j.Phase != store.JobSucceeded || !hasChange(res, "update", hello) {
		t.Fatalf("update: %s %s %+v", j.Phase, j.Error, res.Changes)
	}
	c.check(host, "/", 200, catalogtest.Marker(hello, "2.0"))
	if _, _, body := c.request("GET", host, "/", nil, nil); strings.Contains(body, catalogtest.Marker(hello, "1.0")) {
		t.Error("1.0's marker still on the page")
	}
	link2, _ := os.Readlink(filepath.Join(n.Docroot, "wp-content", "plugins", hello))
	if link2 == link {
		t.Error("the update did not relink the plugin")
	}

	// A theme from the catalogue becomes the site's theme.
	c.setCode(host, func(s *site.Spec) { s.Themes = []site.Extension{catalogue(catalogtest.TestTheme, "1.0", true)} })
	if j, _ := c.codeJob(host, store.CodeParams{}); j.Phase != store.JobSucceeded {
		t.Fatalf("theme: %s %s", j.Phase, j.Error)
	}
	c.check(host, "/", 200, catalogtest.Marker(catalogtest.TestTheme, "1.0"))

	// Two sites (of two organisations), one copy: the plugin's main file
	// through both docroots is one file.
	c.createIn("other", hostB, uidB, "alpha", "Code B", adminFor(t))
	c.setCode(hostB, func(s *site.Spec) { s.Plugins = []site.Extension{catalogue(hello, "2.0", true)} })
	if j, _ := c.codeJob(hostB, store.CodeParams{}); j.Phase != store.JobSucceeded {
		t.Fatalf("site B: %s %s", j.Phase, j.Error)
	}
	fa, err := os.Stat(filepath.Join(n.Docroot, "wp-content", "plugins", hello, hello+".php"))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(filepath.Join(sh.NamesFor(uidB).Docroot, "wp-content", "plugins", hello, hello+".php"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fa, fb) {
		t.Error("the two sites run two copies of the plugin")
	}

	// A plugin that fatals on activation: the job fails naming it and
	// PHP's error, the site is rolled back and still serves, its options
	// are as they were.
	before := optionsDigest(t, c, sh, uid)
	c.setCode(host, func(s *site.Spec) {
		s.Plugins = []site.Extension{catalogue(hello, "2.0", true), catalogue(catalogtest.FatalPlugin, "1.0", true)}
	})
	j, res = c.codeJob(host, store.CodeParams{})
	t.Logf("fatal: %s: %s; checks %+v", j.Phase, j.Error, res.Checks)
	if j.Phase != store.JobFailed || !res.RolledBack || !strings.Contains(j.Error, catalogtest.FatalPlugin) ||
		!strings.Contains(j.Error, "PHP Fatal error") || strings.Contains(j.Error, c.dir) || strings.Contains(j.Error, "Stack trace") {
		t.Fatalf("fatal plugin: %s %q (result %+v)", j.Phase, j.Error, res)
	}
	if _, err := os.Lstat(filepath.Join(n.Docroot, "wp-content", "plugins", catalogtest.FatalPlugin)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the fatal plugin's link survived the rollback: %v", err)
	}
	c.check(host, "/", 200, catalogtest.Marker(hello, "2.0"))
	if after := optionsDigest(t, c, sh, uid); after != before {
		t.Error("the options differ after the rollback")
	}
	if code := c.get(host).Status.Code; code.LastError == "" || code.LastJob != j.ID {
		t.Errorf("Status.Code after the failure: %+v", code)
	}

	// A plugin that activates but breaks the front end: the health check
	// (home page 500, a new fatal in the error log) rolls back code and
	// database (active_plugins no longer lists it).
	c.setCode(host, func(s *site.Spec) {
		s.Plugins = []site.Extension{catalogue(hello, "2.0", true), catalogue(catalogtest.BrokenPlugin, "2.0", true)}
	})
	before = optionsDigest(t, c, sh, uid)
	j, res = c.codeJob(host, store.CodeParams{})
	t.Logf("broken: %s: %s; checks %+v", j.Phase, j.Error, res.Checks)
	if j.Phase != store.JobFailed || !res.RolledBack || !strings.Contains(j.Error, "GET /") {
		t.Fatalf("broken plugin: %s %q", j.Phase, j.Error)
	}
	if after := optionsDigest(t, c, sh, uid); after != before {
		t.Error("the options differ after the rollback")
	}
	if ap := option(t, c, sh, uid, "active_plugins"); strings.Contains(ap, catalogtest.BrokenPlugin) {
		t.Errorf("active_plugins after the rollback: %s", ap)
	}
	c.check(host, "/", 200, catalogtest.Marker(hello, "2.0"))

	// Convergence links what the docroot lacks (a restored or moved
	// site's archive carries no links).
	c.setCode(host, func(s *site.Spec) {
		s.Plugins = []site.Extension{catalogue(hello, "2.0", true)}
	})
	if err := c.convergeAfter(sh, func() {
		if err := os.Remove(filepath.Join(n.Docroot, "wp-content", "plugins", hello)); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(n.Docroot, "wp-content", "plugins", hello)); got != link2 {
		t.Fatalf("link after convergence: %q, want %q", got, link2)
	}
	c.check(host, "/", 200, catalogtest.Marker(hello, "2.0"))

	// A crash after the change, before its check: the next job rolls
	// back first, then applies again.
	themeLink := func() string {
		l, _ := os.Readlink(filepath.Join(n.Docroot, "wp-content", "themes", catalogtest.TestTheme))
		return l
	}
	old := themeLink()
	// crash stops a run at "code-applied" after checking that the change
	// is made and the snapshot's marker is there (the run still holds the
	// site: nothing can roll it back yet).
	crash := func(p string) error {
		if p != "code-applied" {
			return nil
		}
		if themeLink() == old || !fileExistsT(filepath.Join(n.Dir, "code-rollback", "state.json")) {
			t.Error("at the crash: no half-applied change or no marker")
		}
		return errors.New("crash")
	}
	// rolledBack waits until the crashed run's snapshot is rolled back
	// (by a job or a convergence pass).
	rolledBack := func() {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for fileExistsT(filepath.Join(n.Dir, "code-rollback")) {
			if time.Now().After(deadline) {
				t.Fatal("the crashed run's snapshot was never rolled back")
			}
			_ = c.converge("alpha")
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.setCode(host, func(s *site.Spec) { s.Themes = []site.Extension{catalogue(catalogtest.TestTheme, "2.0", true)} })
	shard.SetCrashAt(sh, crash)
	get := func(ctx context.Context) (*site.Site, error) { return c.get(host), nil }
	if _, err := sh.RunCode(c.ctx, c.src, get, "crashed", store.CodeParams{}, nil); err == nil {
		t.Fatal("no crash")
	}
	shard.SetCrashAt(sh, nil)
	res2, err := sh.RunCode(c.ctx, c.src, get, "after-crash", store.CodeParams{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The job or a convergence pass (woken when the crashed run let go
	// of the site) rolled the crashed run back first, then the job
	// applied the change again.
	if !strings.Contains(c.logs.String(), "rolling back an interrupted code job") || !strings.Contains(c.logs.String(), "job=crashed") {
		t.Errorf("no rollback of the crashed job logged; checks %+v", res2.Checks)
	}
	if fileExistsT(filepath.Join(n.Dir, "code-rollback")) || len(res2.Changes) == 0 {
		t.Errorf("after the crash: snapshot left, or nothing re-applied: %+v", res2.Changes)
	}
	c.check(host, "/", 200, catalogtest.Marker(catalogtest.TestTheme, "2.0"))
	// And a crash whose job never runs again: convergence rolls back.
	c.setCode(host, func(s *site.Spec) { s.Themes = []site.Extension{catalogue(catalogtest.TestTheme, "1.0", true)} })
	old = themeLink()
	shard.SetCrashAt(sh, crash)
	if _, err := sh.RunCode(c.ctx, c.src, get, "crashed-again", store.CodeParams{}, nil); err == nil {
		t.Fatal("no crash")
	}
	shard.SetCrashAt(sh, nil)
	rolledBack()
	if themeLink() != old {
		t.Errorf("convergence did not roll back the crashed job: link %s (want %s)", themeLink(), old)
	}
	c.check(host, "/", 200, catalogtest.Marker(catalogtest.TestTheme, "2.0"))

	// Removal: deactivated first (its deactivation hook ran), then
	// unlinked.
	c.setCode(host, func(s *site.Spec) {
		s.Plugins = nil
		s.Themes = []site.Extension{catalogue(catalogtest.TestTheme, "2.0", true)}
	})
	j, res = c.codeJob(host, store.CodeParams{})
	if j.Phase != store.JobSucceeded || !hasChange(res, "remove", hello) || !hasChange(res, "deactivate", hello) {
		t.Fatalf("remove: %s %s %+v", j.Phase, j.Error, res.Changes)
	}
	if _, err := os.Lstat(filepath.Join(n.Docroot, "wp-content", "plugins", hello)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after removal: %v", err)
	}
	if got := option(t, c, sh, uid, "aipress_hello_activated"); got != "" {
		t.Errorf("deactivation hook did not run: %q", got)
	}
	if _, _, body := c.request("GET", host, "/", nil, nil); strings.Contains(body, hello) {
		t.Error("the removed plugin's marker is on the page")
	}
	// Site B keeps its copy.
	c.check(hostB, "/", 200, catalogtest.Marker(hello, "2.0"))

	// A restore in place builds a new docroot from the snapshot, which
	// carries no links: convergence links the spec's plugin again, and
	// the plugin (active in the restored database) runs.
	snap := c.backup(hostB, "alpha")
	if j := c.job(store.JobRestore, hostB, "alpha", store.RestoreParams{Snapshot: snap.Snapshot, InPlace: true}); j.Phase != store.JobSucceeded {
		t.Fatalf("restore: %s %s", j.Phase, j.Error)
	}
	_ = c.converge("alpha")
	c.routes()
	c.check(hostB, "/", 200, catalogtest.Marker(hello, "2.0"))
	if l, err := os.Readlink(filepath.Join(sh.NamesFor(uidB).Docroot, "wp-content", "plugins", hello)); err != nil || l != link2 {
		t.Errorf("site B's link after the restore: %q %v", l, err)
	}

	// An upload is each organisation's own: both sites run the uploaded
	// plugin, each through its own copy, at a folder no site can derive
	// from the archive's SHA-256, and no site can list the store.
	upload := site.Extension{Name: hello, Active: true, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: privateSHA}}
	uploadLinks := map[string]string{}
	for _, h := range []struct{ host, uid string }{{host, uid}, {hostB, uidB}} {
		c.setCode(h.host, func(s *site.Spec) { s.Plugins = []site.Extension{upload} })
		if j, _ := c.codeJob(h.host, store.CodeParams{}); j.Phase != store.JobSucceeded {
			t.Fatalf("upload on %s: %s %s", h.host, j.Phase, j.Error)
		}
		c.check(h.host, "/", 200, catalogtest.Marker(hello, "3.0"))
		l, err := os.Readlink(filepath.Join(sh.NamesFor(h.uid).Docroot, "wp-content", "plugins", hello))
		if err != nil || !strings.HasPrefix(l, store_.Root()+"/plugin/") || strings.Contains(l, privateSHA) {
			t.Fatalf("%s links the upload at %q (%v): not in the store, or named by its SHA-256", h.host, l, err)
		}
		if p := findExt(c.get(h.host).Status.Code.Plugins, hello); p == nil || p.Digest != privateSHA || p.Source != site.SourceUpload {
			t.Errorf("%s observed %+v, want digest %s from an upload", h.host, p, privateSHA)
		}
		uploadLinks[h.host] = l
	}
	if uploadLinks[host] == uploadLinks[hostB] {
		t.Errorf("two organisations share the upload's copy %s", uploadLinks[host])
	}
	probe := siteProbe(t, c, sh, uidB, map[string]string{
		"list":    store_.Root() + "/plugin",
		"derived": store_.Root() + "/plugin/" + privateSHA,
		"public":  filepath.Dir(link2), // a catalogue artefact's folder: the probe does see folders it can derive
		"own":     filepath.Join(sh.NamesFor(uidB).Docroot, "wp-content", "plugins", hello),
	})
	if probe["list"] || probe["derived"] || !probe["public"] || !probe["own"] {
		t.Errorf("as site B's user: %v, want the store's plugin folder unlistable, plugin/<upload sha256> absent, "+
			"a catalogue artefact's folder and the site's own plugin there", probe)
	}

	// Convergence relinks an upload the site ran (its spec changed since,
	// no job applied it yet) from Status.Code: the organisation's copy.
	c.setCode(host, func(s *site.Spec) { s.Options = map[string]string{"blogdescription": "uploads"} })
	if err := c.convergeAfter(sh, func() {
		if err := os.Remove(filepath.Join(n.Docroot, "wp-content", "plugins", hello)); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(n.Docroot, "wp-content", "plugins", hello)); got != uploadLinks[host] {
		t.Errorf("the upload's link after convergence: %q, want %q", got, uploadLinks[host])
	}
}

// siteProbe runs PHP as site uid's Unix user (as the site's own code
// would) and reports for each path whether it could list it (a key
// "list": scandir) or sees a folder there (other keys: is_dir).
func siteProbe(t *testing.T, c *cluster, sh *shard.Shard, uid string, paths map[string]string) map[string]bool {
	t.Helper()
	u, err := user.Lookup(sh.NamesFor(uid).Unix)
	if err != nil {
		t.Fatal(err)
	}
	ui, _ := strconv.Atoi(u.Uid)
	gi, _ := strconv.Atoi(u.Gid)
	in, _ := json.Marshal(paths)
	const script = `$out = [];
foreach (json_decode(getenv('PROBE'), true) as $k => $p) {
	$out[$k] = $k === 'list' ? @scandir($p) !== false : is_dir($p);
}
echo json_encode($out);`
	cmd := exec.CommandContext(c.ctx, wordpress.PHPCLI, append(phpini.Args(), "-r", script)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PROBE=" + string(in)}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(ui), Gid: uint32(gi)}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as %s: %v\n%s", u.Username, err, out)
	}
	got := map[string]bool{}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(paths) {
		t.Fatalf("probe as %s: %v: %s", u.Username, err, out)
	}
	return got
}

func fileExistsT(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
