package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
)

// runCodeJobs plays a shard's code job runner: each Pending code job ends
// with the site's spec as what runs, except when a plugin named
// "aipress-fatal" is in the spec: then the job fails and rolls back.
func runCodeJobs(t *testing.T, st store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l, err := st.ListJobs(ctx, store.JobListOptions{Kind: store.JobCode, Phases: []store.JobPhase{store.JobPending}})
			if err != nil {
				continue
			}
			for _, j := range l.Items {
				s, err := st.GetSite(ctx, j.Site)
				if err != nil {
					continue
				}
				res := store.CodeResult{Generation: s.Metadata.Generation, Duration: "1.5s",
					Changes: sitefile.CodePlan(&site.Spec{}, &s.Spec),
					Checks:  []store.HealthCheck{{Name: "GET /", OK: true}, {Name: "php errors", OK: true}}}
				fatal := false
				for _, p := range s.Spec.Plugins {
					fatal = fatal || p.Name == "aipress-fatal"
				}
				phase, msg := store.JobSucceeded, ""
				if fatal {
					phase, msg = store.JobFailed, "activating plugin aipress-fatal: PHP Fatal error: Call to undefined function boom()"
					res.RolledBack, res.Error = true, msg
					res.Checks = []store.HealthCheck{{Name: "php errors", OK: false, Detail: "PHP Fatal error: Call to undefined function boom()"}}
				}
				raw, _ := json.Marshal(res)
				now := time.Now()
				_, _ = st.UpdateJob(ctx, j.ID, func(cur *store.Job) error {
					cur.Phase, cur.Result, cur.Error, cur.FinishedAt = phase, raw, msg, &now
					return nil
				})
			}
		}
	}()
}

const cliSiteFile = `apiVersion: aipress.dev/v1
kind: Site
metadata: {name: file.localhost}
spec:
  title: From a file
  admin: {email: me@example.com}
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options: {blogname: From a file}
`

func TestApplyDiffCommands(t *testing.T) {
	h := newHarness(t)
	startShard(t, h.store, "")
	runCodeJobs(t, h.store)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("site.yaml", cliSiteFile)

	// The schema is the package's.
	out, _, err := h.run(t, "schema", "site")
	if err != nil || out != string(sitefile.Schema()) {
		t.Fatalf("schema site: %v", err)
	}

	// An invalid file fails before any call, with its position.
	bad := write("bad.yaml", strings.Replace(cliSiteFile, "  title: From a file\n", "  title: From a file\n  titel: typo\n", 1))
	_, _, err = h.run(t, "apply", "-f", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:6:3: spec.titel: unknown field") {
		t.Fatalf("invalid file: %v", err)
	}

	// diff of a new site: exit status 2.
	out, _, err = h.run(t, "diff", "-f", file)
	if ExitCode(err) != DiffChanges || !strings.Contains(out, "+ site file.localhost") {
		t.Fatalf("diff before create: %v\n%s", err, out)
	}

	// apply creates it and follows the code job.
	out, stderr, err := h.run(t, "apply", "-f", file)
	if err != nil {
		t.Fatalf("apply: %v\n%s\n%s", err, out, stderr)
	}
	golden(t, "apply_create_table", maskJobs(out))

	// diff again: no changes, exit 0; from stdin too.
	out, _, err = h.run(t, "diff", "-f", file)
	if err != nil || !strings.Contains(out, "No changes") {
		t.Fatalf("diff after apply: %v\n%s", err, out)
	}

	// get -o yaml round-trips: applying it changes nothing.
	yml, _, err := h.run(t, "site", "get", "file.localhost", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot("test", h.deps())
	root.SetIn(strings.NewReader(yml))
	var outb, errb strings.Builder
	root.SetOut(&outb)
	root.SetErr(&errb)
	root.SetArgs([]string{"apply", "-f", "-", "-o", "json"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("apply -f -: %v %s", err, errb.String())
	}
	var res struct {
		Changes []store.CodeChange `json:"changes"`
		Job     string             `json:"job"`
	}
	if err := json.Unmarshal([]byte(outb.String()), &res); err != nil || len(res.Changes) != 0 || res.Job != "" {
		t.Fatalf("round trip: %v %s", err, outb.String())
	}

	// A changed option: diff shows it with exit 2, apply applies it.
	changed := write("changed.yaml", strings.Replace(cliSiteFile, "options: {blogname: From a file}", "options: {blogname: Renamed}", 1))
	out, _, err = h.run(t, "diff", "-f", changed)
	if ExitCode(err) != DiffChanges || !strings.Contains(out, `~ option blogname: "From a file" → "Renamed"`) || !strings.Contains(out, "Plan: 0 to add, 1 to change, 0 to remove.") {
		t.Fatalf("diff of a change: %v\n%s", err, out)
	}

	// Drift: the shard observed an active plugin the spec does not list;
	// diff --enforce brings it back.
	if _, err := h.store.UpdateSite(context.Background(), "file.localhost", func(s *site.Site) error {
		s.Status.Code = &site.CodeStatus{Plugins: []site.InstalledExtension{{Name: "akismet", Source: "bundled", Active: true}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, _, err = h.run(t, "diff", "-f", file, "--enforce")
	if err != nil || !strings.Contains(out, "drift: activated outside the spec") || !strings.Contains(out, "Code job job-") || !strings.Contains(out, ": Succeeded") {
		t.Fatalf("diff --enforce: %v\n%s", err, out)
	}
}

// maskJobs replaces job IDs (random) by <job>.
func maskJobs(s string) string {
	for {
		i := strings.Index(s, "job-")
		if i < 0 || len(s) < i+20 {
			return s
		}
		s = s[:i] + "<job>" + s[i+20:]
	}
}

func TestSitePluginCommands(t *testing.T) {
	h := newHarness(t)
	startShard(t, h.store, "")
	runCodeJobs(t, h.store)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "Blog", "--admin-email", "me@example.com"); err != nil {
		t.Fatal(err)
	}
	spec := func() site.Spec {
		s, err := h.store.GetSite(context.Background(), "blog.localhost")
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec
	}
	steps := []struct {
		args    []string
		wantErr string
		check   func(t *testing.T, out string, sp site.Spec)
	}{
		{[]string{"site", "plugin", "install", "blog.localhost", "aipress-hello@1.0", "--activate"}, "", func(t *testing.T, out string, sp site.Spec) {
			if len(sp.Plugins) != 1 || sp.Plugins[0] != (site.Extension{Name: "aipress-hello", Version: "1.0", Active: true}) {
				t.Errorf("plugins %+v", sp.Plugins)
			}
			golden(t, "plugin_install_table", maskJobs(out))
		}},
		{[]string{"site", "plugin", "install", "blog.localhost", "aipress-hello"}, "already in the site's spec", nil},
		{[]string{"site", "plugin", "update", "blog.localhost", "aipress-hello@2.0"}, "", func(t *testing.T, _ string, sp site.Spec) {
			if sp.Plugins[0].Version != "2.0" || !sp.Plugins[0].Active {
				t.Errorf("plugins %+v", sp.Plugins)
			}
		}},
		{[]string{"site", "plugin", "deactivate", "blog.localhost", "aipress-hello"}, "", func(t *testing.T, _ string, sp site.Spec) {
			if sp.Plugins[0].Active {
				t.Errorf("plugins %+v", sp.Plugins)
			}
		}},
		{[]string{"site", "plugin", "deactivate", "blog.localhost", "aipress-hello"}, "", func(t *testing.T, out string, _ site.Spec) {
			if out != "" {
				t.Errorf("a no-op printed %q", out)
			}
		}},
		{[]string{"site", "plugin", "install", "blog.localhost", "shop", "--source", "zip", "--url", "https://example.com/shop.zip"}, "sha256", nil},
		{[]string{"site", "theme", "install", "blog.localhost", "twentytwentythree", "--source", "bundled", "--activate"}, "", func(t *testing.T, _ string, sp site.Spec) {
			if len(sp.Themes) != 1 || !sp.Themes[0].Active || sp.Themes[0].Source.Type != "bundled" {
				t.Errorf("themes %+v", sp.Themes)
			}
		}},
		{[]string{"site", "plugin", "install", "blog.localhost", "aipress-fatal", "--activate"}, "rolled back", func(t *testing.T, out string, _ site.Spec) {
			golden(t, "plugin_install_rollback_table", maskJobs(out))
		}},
		{[]string{"site", "plugin", "remove", "blog.localhost", "aipress-fatal"}, "", nil},
		{[]string{"site", "plugin", "remove", "blog.localhost", "aipress-hello", "-o", "json", "--wait=false"}, "", func(t *testing.T, out string, sp site.Spec) {
			if len(sp.Plugins) != 0 || !strings.Contains(out, `"code_job"`) {
				t.Errorf("plugins %+v, out %s", sp.Plugins, out)
			}
		}},
		{[]string{"site", "theme", "activate", "blog.localhost", "nope"}, "not in the site's spec", nil},
	}
	for _, s := range steps {
		out, _, err := h.run(t, s.args...)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("%v: error %v, want %q", s.args, err, s.wantErr)
			}
		} else if err != nil {
			t.Errorf("%v: %v\n%s", s.args, err, out)
			continue
		}
		if s.check != nil {
			s.check(t, out, spec())
		}
	}
}
