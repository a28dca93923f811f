package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
)

const applyFile = `apiVersion: aipress.dev/v1
kind: Site
metadata:
  name: code.example.com
  org: default
spec:
  title: Code blog
  plan: basic
  admin: {email: me@example.com}
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options:
    blogname: Code blog
`

// applyResult decodes an ApplyResult answer.
func applyResult(t *testing.T, m map[string]any) ApplyResult {
	t.Helper()
	raw, _ := json.Marshal(m)
	var r ApplyResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func changeLines(r ApplyResult) string {
	var lines []string
	for _, c := range r.Changes {
		lines = append(lines, sitefile.Line(c))
	}
	return strings.Join(lines, "\n")
}

// TestApplyScenarios walks one site through POST /v1/apply: dry run,
// create, no-op, round trip of its own file, update, read-only fields,
// errors with positions, drift and enforce.
func TestApplyScenarios(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apply := func(t *testing.T, query, body string) (int, map[string]any) {
		t.Helper()
		code, m, _ := e.do(t, "POST", "/v1/apply"+query, adminSecret, body)
		return code, m
	}
	edit := func(old, new string) string {
		if !strings.Contains(applyFile, old) {
			t.Fatalf("%q not in the file", old)
		}
		return strings.Replace(applyFile, old, new, 1)
	}
	var firstJob string
	steps := []struct {
		name  string
		query string
		body  string
		code  int
		check func(t *testing.T, m map[string]any)
	}{
		{"dry run of a create plans it and creates nothing", "?dry_run=true", applyFile, 200, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if !r.Create || !r.DryRun || r.Job != "" || r.AdminPassword != "" {
				t.Errorf("result %+v", r)
			}
			for _, want := range []string{"+ site code.example.com", "+ theme twentytwentythree", `+ option blogname: "Code blog"`} {
				if !strings.Contains(changeLines(r), want) {
					t.Errorf("plan lacks %q:\n%s", want, changeLines(r))
				}
			}
			if _, err := e.store.GetSite(ctx, "code.example.com"); err == nil {
				t.Error("a dry run created the site")
			}
		}},
		{"an invalid file is refused with positions", "?file=site.yaml", edit("  plan: basic\n", "  plan: basic\n  colour: blue\n"), 400, func(t *testing.T, m map[string]any) {
			if errCode(m) != CodeInvalidSiteFile {
				t.Errorf("code %q", errCode(m))
			}
			d, _ := get(m, "error.details").([]any)
			if len(d) != 1 {
				t.Fatalf("details %v", get(m, "error"))
			}
			p := d[0].(map[string]any)
			if p["line"] != 9.0 || p["column"] != 3.0 || p["path"] != "spec.colour" || p["file"] != "site.yaml" {
				t.Errorf("problem %v", p)
			}
		}},
		{"create", "", applyFile, 201, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if !r.Create || r.DryRun || r.Job == "" || r.AdminPassword == "" || r.Generation != 1 {
				t.Errorf("result %+v", r)
			}
			j, err := e.store.GetJob(ctx, r.Job)
			if err != nil {
				t.Fatal(err)
			}
			if j.Kind != store.JobCode || j.Shard != "local" || j.Phase != store.JobPending || j.Site != "code.example.com" {
				t.Errorf("job %+v", j)
			}
			firstJob = r.Job
			st, _ := e.store.GetSite(ctx, "code.example.com")
			if len(st.Spec.Themes) != 1 || st.Spec.Options["blogname"] != "Code blog" || st.Spec.Admin.PasswordHash == "" {
				t.Errorf("spec %+v", st.Spec)
			}
		}},
		{"the same file again changes nothing", "", applyFile, 200, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if r.Create || len(r.Changes) != 0 || r.Job != "" || r.Generation != 1 {
				t.Errorf("result %+v", r)
			}
		}},
		{"the site's own file (get -o yaml) changes nothing", "", "", 200, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if len(r.Changes) != 0 || r.Job != "" {
				t.Errorf("round trip plan: %s", changeLines(r))
			}
		}},
		{"a dry-run update plans and writes nothing", "?dry_run=true", edit("  title: Code blog\n", "  title: Renamed\n"), 200, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if !strings.Contains(changeLines(r), `~ title: "Code blog" → "Renamed"`) || r.Generation != 2 {
				t.Errorf("plan %+v", r)
			}
			if st, _ := e.store.GetSite(ctx, "code.example.com"); st.Metadata.Generation != 1 {
				t.Errorf("generation %d after a dry run", st.Metadata.Generation)
			}
		}},
		{"an update of a setting and an option joins the Pending code job", "",
			strings.Replace(edit("    blogname: Code blog\n", "    blogname: Other\n"), "  title: Code blog\n", "  title: Renamed\n", 1), 200,
			func(t *testing.T, m map[string]any) {
				r := applyResult(t, m)
				lines := changeLines(r)
				if !strings.Contains(lines, "~ title") || !strings.Contains(lines, `~ option blogname: "Code blog" → "Other"`) {
					t.Errorf("plan:\n%s", lines)
				}
				if r.Job != firstJob || r.Generation != 2 {
					t.Errorf("job %q (first %q), generation %d", r.Job, firstJob, r.Generation)
				}
			}},
		{"php other than the plan's is an error at the field", "", edit("  plan: basic\n", "  plan: basic\n  php: {memory_limit_mb: 4096}\n"), 400, func(t *testing.T, m map[string]any) {
			msg, _ := get(m, "error.message").(string)
			if !strings.Contains(msg, "site.yaml:9:") || !strings.Contains(msg, "spec.php.memory_limit_mb") || !strings.Contains(msg, "plan") {
				t.Errorf("message %q", msg)
			}
		}},
		{"another organisation is an error at metadata.org", "", edit("  org: default\n", "  org: acme\n"), 400, func(t *testing.T, m map[string]any) {
			msg, _ := get(m, "error.message").(string)
			if !strings.Contains(msg, "site.yaml:5:8: metadata.org") {
				t.Errorf("message %q", msg)
			}
		}},
		{"an unknown plan is placed at spec.plan", "", edit("  plan: basic\n", "  plan: gold\n"), 400, func(t *testing.T, m map[string]any) {
			msg, _ := get(m, "error.message").(string)
			if !strings.Contains(msg, "site.yaml:8:9: spec.plan: unknown plan") {
				t.Errorf("message %q", msg)
			}
		}},
		{"an upload source of no uploaded artefact is placed at its sha256", "",
			applyFile + "  plugins:\n    - name: mine\n      source: {type: upload, sha256: " + strings.Repeat("ab", 32) + "}\n", 400,
			func(t *testing.T, m map[string]any) {
				msg, _ := get(m, "error.message").(string)
				if !strings.Contains(msg, "site.yaml:16:") || !strings.Contains(msg, "spec.plugins[0].source.sha256: no artefact") {
					t.Errorf("message %q", msg)
				}
			}},
		{"JSON works too", "", `{"apiVersion": "aipress.dev/v1", "kind": "Site", "metadata": {"name": "code.example.com"},
	"spec": {"cache": {"ttl_seconds": 60}}}`, 200, func(t *testing.T, m map[string]any) {
			r := applyResult(t, m)
			if changeLines(r) != "~ cache.ttl_seconds: 300 → 60  # the file says so" || r.Job != "" {
				t.Errorf("plan:\n%s (job %q)", changeLines(r), r.Job)
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			body := s.body
			if body == "" { // the site's own file
				st, err := e.store.GetSite(ctx, "code.example.com")
				if err != nil {
					t.Fatal(err)
				}
				out, err := sitefile.FromSite(st).YAML()
				if err != nil {
					t.Fatal(err)
				}
				body = string(out)
			}
			code, m := apply(t, s.query, body)
			if code != s.code {
				t.Fatalf("status %d, want %d: %v", code, s.code, m)
			}
			s.check(t, m)
		})
	}

	// Drift: the shard reports what runs; the pending job is done.
	if _, err := e.store.UpdateJob(ctx, firstJob, func(j *store.Job) error { j.Phase = store.JobSucceeded; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpdateSite(ctx, "code.example.com", func(st *site.Site) error {
		st.Status.Code = &site.CodeStatus{
			Themes:  []site.InstalledExtension{{Name: "twentytwentythree", Source: "bundled", Active: true}},
			Plugins: []site.InstalledExtension{{Name: "akismet", Source: "bundled", Active: true}},
			Options: map[string]string{"blogname": "Other"},
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cur, _ := e.store.GetSite(ctx, "code.example.com")
	own, _ := sitefile.FromSite(cur).YAML()
	code, m := apply(t, "", string(own))
	r := applyResult(t, m)
	if code != 200 || r.Job != "" || changeLines(r) != "~ plugin akismet: deactivate  # drift: activated outside the spec (the spec does not list it)" {
		t.Fatalf("drift without enforce: %d %+v\n%s", code, m, changeLines(r))
	}
	if !r.Changes[0].Drift {
		t.Error("the drift line is not marked")
	}
	code, m = apply(t, "?enforce=true", string(own))
	r = applyResult(t, m)
	if code != 200 || r.Job == "" || r.Job == firstJob {
		t.Fatalf("enforce: %d %v", code, m)
	}
	j, _ := e.store.GetJob(ctx, r.Job)
	var p store.CodeParams
	_ = json.Unmarshal(j.Params, &p)
	if p.Reason != "enforce" || j.Shard != "local" {
		t.Errorf("enforce job %+v params %+v", j, p)
	}
	// While that job is pending, drift is not reported (it is being fixed),
	// and POST …/code/enforce joins it.
	code, m = apply(t, "?dry_run=true", string(own))
	if r2 := applyResult(t, m); code != 200 || len(r2.Changes) != 0 {
		t.Errorf("dry run while enforcing: %d %s", code, changeLines(r2))
	}
	code, m, _ = e.do(t, "POST", "/v1/sites/code.example.com/code/enforce", adminSecret, nil)
	if code != 202 || get(m, "job.id") != r.Job {
		t.Errorf("code/enforce: %d %v (want job %s)", code, m, r.Job)
	}
}

// PATCH takes the code fields, checks them and starts (or joins) a code
// job; if_generation guards read-modify-write.
func TestPatchCode(t *testing.T) {
	e := newEnv(t)
	e.create(t, "patch.example.com")
	plugins := []site.Extension{{Name: "akismet", Source: site.ExtensionSource{Type: "bundled"}, Active: true}}
	for _, tc := range []struct {
		name string
		body map[string]any
		code int
		want string // a substring of the error, or of code_job's kind
	}{
		{"plugins", map[string]any{"plugins": plugins, "if_generation": 1}, 200, "code"},
		{"the same plugins: no new job", map[string]any{"plugins": plugins}, 200, ""},
		{"stale generation", map[string]any{"title": "x", "if_generation": 1}, 409, "changed meanwhile"},
		{"two active themes", map[string]any{"themes": []site.Extension{{Name: "a", Active: true}, {Name: "b", Active: true}}}, 400, "at most one"},
		{"an option not allowed", map[string]any{"options": map[string]string{"siteurl": "x"}}, 400, "options.siteurl"},
		{"a bad core version", map[string]any{"core_version": "six"}, 400, "core_version"},
		{"options", map[string]any{"options": map[string]string{"blogname": "B"}, "core_version": "6.1.9"}, 200, "code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m, _ := e.do(t, "PATCH", "/v1/sites/patch.example.com", adminSecret, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, m)
			}
			if code != 200 {
				if msg, _ := get(m, "error.message").(string); !strings.Contains(msg, tc.want) {
					t.Errorf("message %q lacks %q", msg, tc.want)
				}
				return
			}
			if got, _ := get(m, "code_job.kind").(string); got != tc.want {
				t.Errorf("code_job kind %q, want %q (%v)", got, tc.want, m["code_job"])
			}
			if get(m, "metadata.name") != "patch.example.com" {
				t.Errorf("the answer is not the site: %v", m)
			}
		})
	}
	l, err := e.store.ListJobs(context.Background(), store.JobListOptions{Site: "patch.example.com", Kind: store.JobCode})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 {
		t.Errorf("%d code jobs, want 1 (the Pending one is joined)", len(l.Items))
	}
}

// A site created without a placer gets a code job without a shard; the
// leader's hand-over (AssignCodeJob) gives it the shard once placed, and
// creating one after placement finds the shard at once.
func TestCodeJobOfUnplacedSite(t *testing.T) {
	base := newEnv(t)
	e := &env{store: base.store, handler: New(Config{Store: base.store, Clock: func() time.Time { return testNow }})}
	ctx := context.Background()
	code, m, _ := e.do(t, "POST", "/v1/sites", adminSecret, map[string]any{"domain": "later.example.com", "title": "T",
		"admin_email": "a@example.com", "options": map[string]string{"blogname": "Later"}})
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	id, _ := get(m, "code_job.id").(string)
	if id == "" || get(m, "code_job.shard") != nil {
		t.Fatalf("code job %v", m["code_job"])
	}
	if _, err := e.store.UpdateSite(ctx, "later.example.com", func(st *site.Site) error { st.Status.Shard = "s9"; return nil }); err != nil {
		t.Fatal(err)
	}
	j, err := AssignCodeJob(ctx, e.store, id, "s9")
	if err != nil || j.Shard != "s9" {
		t.Fatalf("hand over: %v %+v", err, j)
	}
	// Assigning again (the leader's next pass) changes nothing.
	if j, err := AssignCodeJob(ctx, e.store, id, "other"); err != nil || j.Shard != "s9" {
		t.Fatalf("second hand over: %v %+v", err, j)
	}
	_ = fmt.Sprint
	_ = http.StatusOK
}
