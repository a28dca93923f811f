package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const e2eSiteFile = `apiVersion: aipress.dev/v1
kind: Site
metadata: {name: asfile.localhost}
spec:
  title: As a file
  admin: {email: owner@example.com}
  cache: {ttl_seconds: 60}
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options:
    blogname: As a file
`

// The site file on a real platform: apply creates the site, get -o yaml
// prints its file, applying that (and the original) changes nothing, diff
// says so with exit status 0 and a change with 2.
func testSiteFile(t *testing.T, p *platform) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	file := write("site.yaml", e2eSiteFile)
	type result struct {
		Create        bool              `json:"create"`
		Changes       []json.RawMessage `json:"changes"`
		Job           string            `json:"job"`
		AdminPassword string            `json:"admin_password"`
	}
	apply := func(path string) result {
		t.Helper()
		out, err := p.cli("apply", "-f", path, "--wait=false", "-o", "json")
		if err != nil {
			t.Fatalf("apply %s: %v\n%s", path, err, out)
		}
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("apply output: %v\n%s", err, out)
		}
		return r
	}
	r := apply(file)
	if !r.Create || r.Job == "" || len(r.AdminPassword) < 16 || len(r.Changes) != 3 {
		t.Fatalf("create from a file: %+v", r)
	}
	// The code job is on the site's shard.
	out, err := p.cli("job", "get", r.Job, "-o", "json")
	if err != nil || !strings.Contains(out, `"kind": "code"`) || !strings.Contains(out, `"shard": "local"`) {
		t.Fatalf("code job: %v\n%s", err, out)
	}
	vis := p.client("asfile.localhost")
	if body := vis.waitStatus("/", 200, 2*time.Minute); !strings.Contains(body, "As a file") {
		t.Errorf("the site does not serve its title: %.300s", body)
	}
	st := p.siteJSON("asfile.localhost")
	if ttl, _ := st["spec"].(map[string]any)["cache"].(map[string]any)["ttl_seconds"].(float64); ttl != 60 ||
		field(st, "spec", "options", "blogname") != "As a file" {
		t.Errorf("spec: %v", st["spec"])
	}

	// get -o yaml, applied back: no change; the original file too.
	yml, err := p.cli("site", "get", "asfile.localhost", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(yml, "password") || strings.Contains(yml, "status") {
		t.Errorf("the site file shows secrets or status:\n%s", yml)
	}
	for _, path := range []string{write("get.yaml", yml), file} {
		if r := apply(path); r.Create || len(r.Changes) != 0 || r.Job != "" {
			t.Errorf("apply %s again: %+v", filepath.Base(path), r)
		}
	}
	if out, err := p.cli("diff", "-f", file); err != nil || !strings.Contains(out, "No changes") {
		t.Errorf("diff: %v\n%s", err, out)
	}
	// A change: exit status 2 and the plan.
	changed := write("changed.yaml", strings.Replace(e2eSiteFile, "blogname: As a file", "blogname: Renamed", 1))
	out, err = p.cli("diff", "-f", changed)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, `~ option blogname: "As a file" → "Renamed"`) {
		t.Errorf("diff of a change: %v\n%s", err, out)
	}
	// A bad file: its position, nothing changed.
	bad := write("bad.yaml", strings.Replace(e2eSiteFile, "  cache: {ttl_seconds: 60}\n", "  cache: {ttl_seconds: sixty}\n", 1))
	if out, err := p.cli("apply", "-f", bad); err == nil || !strings.Contains(out, "bad.yaml:7:24: spec.cache.ttl_seconds") {
		t.Errorf("bad file: %v\n%s", err, out)
	}
}
