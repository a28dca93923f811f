package shard_test

import (
	"encoding/json"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// codeJob runs a code job for site name on shard alpha and returns the
// finished job and its result.
func (c *cluster) codeJob(name string, p store.CodeParams) (*store.Job, store.CodeResult) {
	c.t.Helper()
	j := c.job(store.JobCode, name, "alpha", p)
	var res store.CodeResult
	if len(j.Result) > 0 {
		if err := json.Unmarshal(j.Result, &res); err != nil {
			c.t.Fatalf("code result: %v: %s", err, j.Result)
		}
	}
	return j, res
}

// setCode changes the code part of site name's spec.
func (c *cluster) setCode(name string, fn func(*site.Spec)) {
	c.t.Helper()
	if _, err := c.st.UpdateSite(c.ctx, name, func(s *site.Site) error {
		fn(&s.Spec)
		return s.Spec.ValidateCode()
	}); err != nil {
		c.t.Fatal(err)
	}
}

// behindTheBack runs the shard's code script as the site's user, as the
// site's own code (or its admin) could.
func behindTheBack(t *testing.T, c *cluster, sh *shard.Shard, uid, host string, in wordpress.CodeInput) {
	t.Helper()
	n := sh.NamesFor(uid)
	u, err := user.Lookup(n.Unix)
	if err != nil {
		t.Fatal(err)
	}
	ui, _ := strconv.Atoi(u.Uid)
	gi, _ := strconv.Atoi(u.Gid)
	run := wordpress.Runner{Docroot: n.Docroot, Host: host + ":" + c.port, UID: ui, GID: gi}
	script := filepath.Join(c.dir, "shard-alpha", "lib", wordpress.CodeScriptName)
	if _, err := run.ApplyCode(c.ctx, script, in); err != nil {
		t.Fatal(err)
	}
}

func findExt(list []site.InstalledExtension, name string) *site.InstalledExtension {
	i := slices.IndexFunc(list, func(e site.InstalledExtension) bool { return e.Name == name })
	if i < 0 {
		return nil
	}
	return &list[i]
}

func hasChange(res store.CodeResult, action, name string) bool {
	return slices.ContainsFunc(res.Changes, func(c store.CodeChange) bool { return c.Action == action && c.Name == name })
}

// Bundled extensions, options and constants: a code job activates,
// switches, sets; a second finds nothing to do; drift made behind the
// platform's back shows in Status.Code after a full pass and the next job
// brings it back.
func TestCodeBundledOptionsDrift(t *testing.T) {
	c := newCluster(t)
	sh := c.start("alpha")
	c.runJobs(sh)
	defer c.deleteAll()
	const host, uid = "code-b.localhost", "uid-code-bundled"
	c.create(host, uid, "alpha", "Before Code", adminFor(t))

	c.setCode(host, func(s *site.Spec) {
		s.Plugins = []site.Extension{{Name: "akismet", Source: site.ExtensionSource{Type: site.SourceBundled}, Active: true}}
		s.Themes = []site.Extension{{Name: "twentytwentythree", Source: site.ExtensionSource{Type: site.SourceBundled}, Active: true}}
		s.Options = map[string]string{"blogname": "Code As Spec", "posts_per_page": "7", "permalink_structure": "/%year%/%postname%/"}
		s.Constants = map[string]string{"WP_POST_REVISIONS": "3"}
	})
	j, res := c.codeJob(host, store.CodeParams{})
	if j.Phase != store.JobSucceeded {
		t.Fatalf("code job: %s: %s\n%s", j.Phase, j.Error, c.detail(j.Error))
	}
	t.Logf("changes: %+v\nchecks: %+v", res.Changes, res.Checks)
	for _, want := range [][2]string{{"activate", "akismet"}, {"option", "blogname"}, {"option", "permalink_structure"}} {
		if !hasChange(res, want[0], want[1]) {
			t.Errorf("no %s %s in %+v", want[0], want[1], res.Changes)
		}
	}
	if res.RolledBack || len(res.Checks) < 5 || slices.ContainsFunc(res.Checks, func(h store.HealthCheck) bool { return !h.OK }) {
		t.Errorf("checks: %+v", res.Checks)
	}
	_ = c.converge("alpha")
	c.check(host, "/", 200, "Code As Spec")
	got := c.get(host)
	code := got.Status.Code
	if code == nil {
		t.Fatal("no Status.Code")
	}
	if a := findExt(code.Plugins, "akismet"); a == nil || !a.Active || a.Source != site.SourceBundled {
		t.Errorf("akismet observed as %+v", a)
	}
	if th := findExt(code.Themes, "twentytwentythree"); th == nil || !th.Active {
		t.Errorf("theme observed as %+v", th)
	}
	if code.Options["posts_per_page"] != "7" || code.Constants["WP_POST_REVISIONS"] != "3" || code.AppliedGeneration != got.Metadata.Generation || code.LastJob != j.ID {
		t.Errorf("Status.Code %+v (generation %d)", code, got.Metadata.Generation)
	}
	// The permalink structure took effect: the REST API answers at its
	// pretty path, the sample post at its dated one.
	c.check(host, "/wp-json/", 200, "")

	// Nothing left to do.
	if j, res := c.codeJob(host, store.CodeParams{}); j.Phase != store.JobSucceeded || len(res.Changes) != 0 {
		t.Fatalf("second job: %s %s changes %+v", j.Phase, j.Error, res.Changes)
	}

	// Drift: akismet deactivated and an option changed behind the
	// platform's back show after a full pass; a job brings them back.
	behindTheBack(t, c, sh, uid, host, wordpress.CodeInput{Deactivate: []string{"akismet"}, Options: map[string]string{"posts_per_page": "3"}})
	if err := c.converge("alpha"); err != nil {
		t.Fatal(err)
	}
	code = c.get(host).Status.Code
	if a := findExt(code.Plugins, "akismet"); a == nil || a.Active || code.Options["posts_per_page"] != "3" {
		t.Fatalf("drift not observed: akismet %+v, options %v", a, code.Options)
	}
	j, res = c.codeJob(host, store.CodeParams{Reason: "enforce"})
	if j.Phase != store.JobSucceeded || !hasChange(res, "activate", "akismet") || !hasChange(res, "option", "posts_per_page") {
		t.Fatalf("enforce: %s %s %+v", j.Phase, j.Error, res.Changes)
	}
	for _, ch := range res.Changes {
		if ch.Name == "akismet" && !strings.Contains(ch.Reason, "drift") {
			t.Errorf("reason %q does not say drift", ch.Reason)
		}
	}
	if a := findExt(res.Observed.Plugins, "akismet"); a == nil || !a.Active {
		t.Errorf("after enforce: %+v", a)
	}

	// No artefact store: a plugin from the catalogue is refused clearly,
	// and nothing changes.
	c.setCode(host, func(s *site.Spec) {
		s.Plugins = append(s.Plugins, site.Extension{Name: "hello-dolly", Active: true})
	})
	j, _ = c.codeJob(host, store.CodeParams{})
	if j.Phase != store.JobFailed || !strings.Contains(j.Error, "no artefact store") {
		t.Fatalf("without a store: %s %q", j.Phase, j.Error)
	}
}
