package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact/catalogtest"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Staged and fleet updates on a real platform (one `aipress up` with a
// local catalogue serving the fixture plugins): an update to aipress-hello
// 2.0 reaches the site; an update to aipress-broken 2.0 (fatal on every
// front-end request) is refused on the staging copy and never touches the
// site; a fleet update of three sites whose canary fails skips the other
// two. Every staging site is gone at the end.
func TestStagedUpdates(t *testing.T) {
	p := newPlatform(t)
	cat := catalogtest.New(t)
	cat.AddFixtures()
	p.extraArgs = []string{"--catalogue-url", cat.URL(), "--allow-private-fetch"}
	p.start()
	a, b, c := "upd-a.localhost", "upd-b.localhost", "upd-c.localhost"
	for _, d := range []string{a, b, c} {
		p.createSite(d, "Updates")
	}
	home := p.client(a)

	// Install aipress-hello 1.0 directly, then update it to 2.0 through a
	// staging copy.
	if out, err := p.cli("site", "update", a, "--plugin", catalogtest.HelloPlugin+"@1.0", "--skip-staging"); err != nil {
		t.Fatalf("install hello 1.0: %v\n%s", err, out)
	}
	home.waitStatus("/", 200, time.Minute)
	if _, body := home.get("/"); !strings.Contains(body, catalogtest.Marker(catalogtest.HelloPlugin, "1.0")) {
		t.Fatalf("hello 1.0 marker missing from the home page")
	}
	out, err := p.cli("site", "update", a, "--plugin", catalogtest.HelloPlugin+"@2.0", "--smoke-contains", catalogtest.Marker(catalogtest.HelloPlugin, "2.0"))
	if err != nil {
		t.Fatalf("staged update to hello 2.0: %v\n%s", err, out)
	}
	for _, want := range []string{"Staging:   ", site.StagingSuffix, "On the staging site:", "Applied to " + a} {
		if !strings.Contains(out, want) {
			t.Errorf("update report lacks %q:\n%s", want, out)
		}
	}
	if _, body := home.get("/"); !strings.Contains(body, catalogtest.Marker(catalogtest.HelloPlugin, "2.0")) {
		t.Errorf("hello 2.0 marker missing from the home page after the update")
	}
	noStaging(t, p)

	// aipress-broken 1.0 is harmless; 2.0 fatals on every page: refused in
	// staging, the site untouched (generation, page, files).
	if out, err := p.cli("site", "update", a, "--plugin", catalogtest.BrokenPlugin+"@1.0", "--skip-staging"); err != nil {
		t.Fatalf("install broken 1.0: %v\n%s", err, out)
	}
	before := p.siteJSON(a)
	gen := jsonNumber(before, "metadata", "generation")
	link := filepath.Join(p.docroot(a), "wp-content", "plugins", catalogtest.BrokenPlugin)
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatalf("broken 1.0 not linked into the docroot: %v", err)
	}
	out, err = p.cli("site", "update", a, "--plugin", catalogtest.BrokenPlugin+"@2.0")
	if err == nil || !strings.Contains(out, "NOT APPLIED: refused") {
		t.Fatalf("the update to broken 2.0 was not refused: %v\n%s", err, out)
	}
	after := p.siteJSON(a)
	if g := jsonNumber(after, "metadata", "generation"); g != gen {
		t.Errorf("the refused update changed the site's generation: %v → %v", gen, g)
	}
	if code, body := home.get("/"); code != 200 || !strings.Contains(body, catalogtest.Marker(catalogtest.BrokenPlugin, "1.0")) {
		t.Errorf("the site after the refused update: %d, broken 1.0 marker present: %v", code, strings.Contains(body, catalogtest.Marker(catalogtest.BrokenPlugin, "1.0")))
	}
	if got, err := filepath.EvalSymlinks(link); err != nil || got != target {
		t.Errorf("the plugin's files changed: %s → %s (%v)", target, got, err)
	}
	noStaging(t, p)

	// A fleet update of a, b and c: the canary (a) fails, b and c are
	// skipped and never touched.
	gens := map[string]float64{}
	for _, d := range []string{b, c} {
		gens[d] = jsonNumber(p.siteJSON(d), "metadata", "generation")
	}
	out, err = p.cli("fleet", "update", "--plugin", catalogtest.BrokenPlugin+"@2.0", "--sites", a+","+b+","+c,
		"--canary", "1", "--wave", "10", "--max-failure-rate", "0.2", "-o", "json")
	if err == nil {
		t.Fatalf("the fleet update exited 0:\n%s", out)
	}
	var j store.Job
	if jerr := json.NewDecoder(strings.NewReader(out)).Decode(&j); jerr != nil {
		t.Fatalf("fleet job: %v\n%s", jerr, out)
	}
	var r store.FleetUpdateResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		t.Fatal(err)
	}
	if r.Stopped == "" || r.Failed != 1 || r.Skipped != 2 || len(r.Waves) != 2 || r.Waves[0].Sites[0].Site != a {
		t.Errorf("fleet report: %+v", r)
	}
	for _, d := range []string{b, c} {
		if g := jsonNumber(p.siteJSON(d), "metadata", "generation"); g != gens[d] {
			t.Errorf("%s was touched by the stopped fleet update: generation %v → %v", d, gens[d], g)
		}
	}
	noStaging(t, p)
}

// noStaging fails when a staging site is left (as a site or as a
// directory of the shard).
func noStaging(t *testing.T, p *platform) {
	t.Helper()
	out, err := p.cli("site", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, site.StagingSuffix) {
		t.Errorf("a staging site is left:\n%s", out)
	}
}

func jsonNumber(m map[string]any, path ...string) float64 {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return -1
		}
		cur = mm[k]
	}
	f, _ := cur.(float64)
	return f
}
