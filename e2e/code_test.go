package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/gitsync/gittest"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
)

// codeFile is a site file with code: aipress-hello at version (from the
// catalogue) active, the bundled theme, an option and a constant. The page
// cache is off so that the page shows what the site runs at once.
func codeFile(domain, version, blogname string) string {
	return fmt.Sprintf(`apiVersion: aipress.dev/v1
kind: Site
metadata: {name: %s}
spec:
  title: Code
  admin: {email: owner@example.com}
  cache: {ttl_seconds: 0}
  plugins:
    - {name: aipress-hello, version: "%s", active: true}
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options:
    blogname: %s
  constants:
    WP_POST_REVISIONS: 5
`, domain, version, blogname)
}

// WordPress as code on one real platform (`aipress up` with a local
// catalogue): a site file with a plugin, a theme, an option and a constant
// applied, round-tripped and diffed; drift made behind the platform's back
// detected and enforced; a site synced from a git repository served over
// smart HTTP, with a bad commit, a forged webhook and a fix.
func TestSiteCode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sites run as their own Unix users")
	}
	p := newPlatform(t)
	cat := catalogtest.New(t)
	cat.AddFixtures()
	p.extraArgs = []string{"--catalogue-url", cat.URL(), "--allow-private-fetch"}
	p.start()
	const domain = "code.localhost"
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hello := func(v string) string { return catalogtest.Marker(catalogtest.HelloPlugin, v) }
	file := write("site.yaml", codeFile(domain, "1.0", "Code as a file"))

	t.Run("File", func(t *testing.T) {
		p.t = t
		out, err := p.cli("apply", "-f", file, "-o", "json")
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
		var r struct {
			Create  bool       `json:"create"`
			Job     string     `json:"job"`
			CodeJob *store.Job `json:"code_job"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("apply output: %v\n%s", err, out)
		}
		if !r.Create || r.CodeJob == nil || r.CodeJob.ID != r.Job || r.CodeJob.Kind != store.JobCode || r.CodeJob.Phase != store.JobSucceeded {
			t.Fatalf("apply did not create the site and succeed its code job:\n%s", out)
		}
		st := p.siteJSON(domain)
		if ph := field(st, "status", "phase"); ph != "Ready" {
			t.Errorf("phase %q, want Ready", ph)
		}
		body := p.client(domain).waitStatus("/", 200, 2*time.Minute)
		if !strings.Contains(body, hello("1.0")) || !strings.Contains(body, "Code as a file") {
			t.Errorf("the home page lacks the plugin's marker or the blogname: %.500s", body)
		}
		cfg, err := os.ReadFile(filepath.Join(p.docroot(domain), "wp-config.php"))
		if err != nil || !bytes.Contains(cfg, []byte("WP_POST_REVISIONS")) {
			t.Errorf("wp-config.php lacks the constant (%v)", err)
		}
		if got := field(st, "status", "code", "constants", "WP_POST_REVISIONS"); got != "5" {
			t.Errorf("observed constant WP_POST_REVISIONS = %q, want 5", got)
		}

		// The site's file applied back and diffed: nothing to do.
		yml, err := p.cli("site", "get", domain, "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		got := write("get.yaml", yml)
		if out, err := p.cli("apply", "-f", got, "-o", "json"); err != nil || strings.Contains(out, `"job"`) {
			t.Errorf("apply get -o yaml back: %v\n%s\nfile:\n%s", err, out, yml)
		}
		for _, f := range []string{got, file} {
			if out, err := p.cli("diff", "-f", f); err != nil || !strings.Contains(out, "No changes") {
				t.Errorf("diff -f %s: %v\n%s", filepath.Base(f), err, out)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("Drift", func(t *testing.T) {
		p.t = t
		// Deactivate the plugin behind the platform's back: WordPress's
		// own deactivate_plugins() as the site's user (the owner of its
		// uploads), through the runner
		// and the code script the shard uses.
		docroot := p.docroot(domain)
		fi, err := os.Stat(filepath.Join(docroot, "wp-content", "uploads"))
		if err != nil {
			t.Fatal(err)
		}
		uid, gid := int(fi.Sys().(*syscall.Stat_t).Uid), int(fi.Sys().(*syscall.Stat_t).Gid)
		if uid == 0 {
			t.Fatalf("wp-content/uploads belongs to root")
		}
		_, port, _ := strings.Cut(p.httpAddr, ":")
		run := wordpress.Runner{Docroot: docroot, Host: domain + ":" + port, UID: uid, GID: gid}
		script := filepath.Join(p.dataDir, "shards", "local", "lib", wordpress.CodeScriptName)
		if done, err := run.ApplyCode(context.Background(), script, wordpress.CodeInput{Deactivate: []string{catalogtest.HelloPlugin}}); err != nil {
			t.Fatalf("deactivate behind the platform's back: %v (done %v)", err, done)
		}
		if _, body := p.client(domain).get("/"); strings.Contains(body, hello("1.0")) {
			t.Fatalf("the plugin still runs after its deactivation")
		}
		// A restarted shard converges every site fully, which observes
		// what it runs (as the periodic full pass does).
		p.stop()
		p.start()
		deadline := time.Now().Add(2 * time.Minute)
		for !observedInactive(p.siteJSON(domain), catalogtest.HelloPlugin) {
			if time.Now().After(deadline) {
				t.Fatalf("the shard never observed the deactivation: %v", p.siteJSON(domain)["status"])
			}
			time.Sleep(200 * time.Millisecond)
		}
		out, err := p.cli("diff", "-f", file)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "plugin aipress-hello") || !strings.Contains(out, "drift") {
			t.Fatalf("diff of a drifted site: %v\n%s", err, out)
		}
		if out, err := p.cli("diff", "-f", file, "--enforce"); err != nil {
			t.Fatalf("diff --enforce: %v\n%s", err, out)
		}
		if _, body := p.client(domain).get("/"); !strings.Contains(body, hello("1.0")) {
			t.Errorf("the plugin's marker is not back after --enforce: %.500s", body)
		}
		if out, err := p.cli("diff", "-f", file); err != nil || !strings.Contains(out, "No changes") {
			t.Errorf("diff after --enforce: %v\n%s", err, out)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("GitSync", func(t *testing.T) {
		p.t = t
		repo := gittest.New(t, "", "")
		c1 := repo.Commit("hello 1.0", map[string]string{"site.yaml": codeFile(domain, "1.0", "From git")})
		out, err := p.cli("site", "git", "set", domain, "--url", repo.URL, "--path", "site.yaml", "--interval", "24h", "-o", "json")
		if err != nil {
			t.Fatalf("git set: %v\n%s", err, out)
		}
		var v gitsync.View
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Webhook.Path == "" || v.Webhook.Secret == "" {
			t.Fatalf("git set output (%v):\n%s", err, out)
		}
		hookURL, secret := "http://"+p.apiAddr+v.Webhook.Path, v.Webhook.Secret
		// The first sync applies the head.
		waitGit(t, p, domain, func(g *gitsync.View) bool { return applied(g) == c1 })
		waitCodeIdle(t, p, domain)
		if _, body := p.client(domain).get("/"); !strings.Contains(body, "From git") {
			t.Errorf("commit 1's blogname is not on the page")
		}

		// Commits 2 (hello 2.0) and 3 (an unknown field at line 7,
		// column 3): 2 is applied, the sync stops at 3.
		c2 := repo.Commit("hello 2.0", map[string]string{"site.yaml": codeFile(domain, "2.0", "From git")})
		bad := strings.Replace(codeFile(domain, "2.0", "From git"), "  cache:", "  bogus: 1\n  cache:", 1)
		c3 := repo.Commit("a typo", map[string]string{"site.yaml": bad})
		out, err = p.cli("site", "git", "sync", domain)
		if want := "error         commit " + c3[:12] + ` site.yaml:7:3: spec.bogus: unknown field "bogus"` + "\npending       1 commit(s)\n"; err == nil || !strings.Contains(out, want) {
			t.Errorf("sync to a bad commit: %v, want %q in\n%s", err, want, out)
		}
		g := gitShow(t, p, domain)
		if le := g.Status.LastError; applied(g) != c2 || le == nil || le.Commit != c3 || le.File != "site.yaml" ||
			le.Line != 7 || le.Column != 3 || le.Message != `spec.bogus: unknown field "bogus"` {
			t.Errorf("git status after commits 2 and 3: %+v (error %+v)", g.Status, le)
		}
		waitCodeIdle(t, p, domain)
		if _, body := p.client(domain).get("/"); !strings.Contains(body, hello("2.0")) {
			t.Errorf("the site does not run hello 2.0: %.500s", body)
		}

		// Commit 4 fixes it; a forged delivery is refused, a signed one
		// applies it.
		c4 := repo.Commit("fix the typo", map[string]string{"site.yaml": codeFile(domain, "2.0", "Fixed in git")})
		body := []byte(`{"ref":"refs/heads/main","after":"` + c4 + `"}`)
		if code := postHook(t, hookURL, body, "sha256="+strings.Repeat("0", 64)); code != http.StatusUnauthorized {
			t.Errorf("a delivery with a wrong signature: %d, want 401", code)
		}
		if code := postHook(t, hookURL, body, ""); code != http.StatusUnauthorized {
			t.Errorf("a delivery without a signature: %d, want 401", code)
		}
		if g := gitShow(t, p, domain); applied(g) != c2 {
			t.Errorf("a refused delivery synced: %+v", g.Status)
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if code := postHook(t, hookURL, body, "sha256="+hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
			t.Fatalf("a signed delivery: %d, want 202", code)
		}
		g = waitGit(t, p, domain, func(g *gitsync.View) bool { return applied(g) == c4 })
		if g.Status.LastError != nil {
			t.Errorf("error left after the fix: %+v", g.Status.LastError)
		}
		waitCodeIdle(t, p, domain)
		if _, body := p.client(domain).get("/"); !strings.Contains(body, "Fixed in git") || !strings.Contains(body, hello("2.0")) {
			t.Errorf("commit 4 is not on the page: %.500s", body)
		}
		if g := gitShow(t, p, domain); len(g.Status.Drift) != 0 {
			t.Errorf("drift after the sync settled: %+v", g.Status.Drift)
		}

		// A change outside git is the configuration's drift after the
		// next sync, which leaves it alone.
		if out, err := p.cli("site", "plugin", "deactivate", domain, catalogtest.HelloPlugin); err != nil {
			t.Fatalf("plugin deactivate: %v\n%s", err, out)
		}
		out, err = p.cli("site", "git", "sync", domain)
		if err != nil || !strings.Contains(out, "plugin aipress-hello") {
			t.Errorf("git sync after a change outside git: %v\n%s", err, out)
		}
		if g := gitShow(t, p, domain); applied(g) != c4 || len(g.Status.Drift) != 1 || g.Status.Drift[0].Name != catalogtest.HelloPlugin {
			t.Errorf("drift of a change outside git: %+v", g.Status)
		}
		if _, body := p.client(domain).get("/"); strings.Contains(body, hello("2.0")) {
			t.Errorf("the sync undid the change made outside git")
		}
	})
}

// observedInactive reports whether the site's observed code has plugin
// installed and inactive.
func observedInactive(st map[string]any, plugin string) bool {
	code, _ := st["status"].(map[string]any)["code"].(map[string]any)
	list, _ := code["plugins"].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		if m["name"] == plugin {
			return m["active"] == false
		}
	}
	return false
}

func applied(g *gitsync.View) string {
	if g.Status.LastApplied == nil {
		return ""
	}
	return g.Status.LastApplied.Hash
}

func gitShow(t *testing.T, p *platform, domain string) *gitsync.View {
	t.Helper()
	out, err := p.cli("site", "git", "show", domain, "-o", "json")
	if err != nil {
		t.Fatalf("git show: %v\n%s", err, out)
	}
	var v gitsync.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("git show: %v\n%s", err, out)
	}
	return &v
}

// waitGit polls the site's git status until ok (bounded).
func waitGit(t *testing.T, p *platform, domain string, ok func(*gitsync.View) bool) *gitsync.View {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		g := gitShow(t, p, domain)
		if ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("git status never got there: %+v", g.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitCodeIdle waits (bounded) until the site's spec is applied: no code
// job pending or running and the last one applied the current generation;
// a failed job fails the test.
func waitCodeIdle(t *testing.T, p *platform, domain string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := p.siteJSON(domain)
		gen := jsonNumber(st, "metadata", "generation")
		if e := field(st, "status", "code", "last_error"); e != "" {
			t.Fatalf("code job failed: %s", e)
		}
		if jsonNumber(st, "status", "code", "applied_generation") == gen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the code of generation %v was never applied: %v", gen, st["status"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// postHook delivers a push webhook with signature sig ("" none) and
// returns the status.
func postHook(t *testing.T, url string, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
