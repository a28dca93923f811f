package sitefile

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is right):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestSchemaCompiles(t *testing.T) {
	if _, err := compiled(); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
}

// The schema's lists of option and constant names are the model's.
func TestSchemaNamesMatchModel(t *testing.T) {
	var doc struct {
		Properties struct {
			Spec struct {
				Properties map[string]struct {
					Properties map[string]any `json:"properties"`
				} `json:"properties"`
			} `json:"spec"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatal(err)
	}
	for field, model := range map[string][]string{
		"options":   slices.Sorted(maps.Keys(site.OptionNames)),
		"constants": slices.Sorted(maps.Keys(site.ConstantNames)),
	} {
		got := slices.Sorted(maps.Keys(doc.Properties.Spec.Properties[field].Properties))
		if !slices.Equal(got, model) {
			t.Errorf("schema spec.%s names %v, the model (site.%sNames) %v", field, got, strings.ToUpper(field[:1])+field[1:len(field)-1], model)
		}
	}
}

// Invalid files: every problem with its position and field, as golden
// text (testdata/invalid/NAME.golden).
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range files {
		if strings.HasSuffix(path, ".golden") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(path)
			_, err = Parse(name, data)
			if err == nil {
				t.Fatal("parsed without error")
			}
			probs := Problems(err)
			if len(probs) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			for _, p := range probs {
				if p.File != name {
					t.Errorf("problem %v names file %q", p, p.File)
				}
			}
			golden(t, filepath.Join("invalid", strings.TrimSuffix(name, filepath.Ext(name))+".golden"), []byte(err.Error()+"\n"))
		})
	}
	if n < 10 {
		t.Fatalf("only %d invalid files", n)
	}
}

// Positions are exact for the cases the issue names.
func TestProblemPositions(t *testing.T) {
	for _, tc := range []struct {
		file, path string
		line, col  int
		contains   string
	}{
		{"unknown-field.yaml", "spec.plugins[0].activ", 8, 7, `unknown field "activ"`},
		{"unknown-field.yaml", "spec.colour", 9, 3, `unknown field "colour"`},
		{"wrong-type.yaml", "spec.cache.ttl_seconds", 6, 24, "want integer, got string"},
		{"wrong-type.yaml", "spec.plugins[0].version", 10, 16, "quote it"},
		{"bad-enum.yaml", "spec.waf.mode", 5, 15, "paranoid"},
		{"bad-slug.yaml", "spec.plugins[0].name", 6, 13, "not a slug"},
		{"two-active-themes.yaml", "spec.themes", 6, 5, "at most one"},
		{"missing-apiversion.yaml", "apiVersion", 1, 1, "missing"},
		{"zip-without-sha.yaml", "spec.plugins[1].source.sha256", 8, 7, "SHA-256"},
		{"duplicate-key.yaml", "spec.title", 6, 3, "twice"},
		{"syntax.yaml", "", 2, 1, "invalid YAML"},
		{"bad-name.json", "metadata.name", 4, 24, "not a domain"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata/invalid", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(tc.file, data)
		found := false
		for _, p := range Problems(err) {
			if p.Path == tc.path && strings.Contains(p.Message, tc.contains) {
				found = true
				if p.Line != tc.line || p.Column != tc.col {
					t.Errorf("%s: %s at %d:%d, want %d:%d", tc.file, tc.path, p.Line, p.Column, tc.line, tc.col)
				}
			}
		}
		if !found {
			t.Errorf("%s: no problem at %s containing %q in:\n%v", tc.file, tc.path, tc.contains, err)
		}
	}
}

func TestValid(t *testing.T) {
	for _, name := range []string{"full.yaml", "minimal.json"} {
		data, err := os.ReadFile(filepath.Join("testdata/valid", name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := json.MarshalIndent(d.File, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("valid", name+".golden.json"), append(out, '\n'))
	}
	data, _ := os.ReadFile("testdata/valid/full.yaml")
	d, err := Parse("full.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	f := d.File
	if f.Metadata.Name != "blog.example.com" {
		t.Errorf("name not normalised: %q", f.Metadata.Name)
	}
	if got := (*f.Spec.Options)["posts_per_page"]; got != "10" {
		t.Errorf("posts_per_page = %q, want \"10\"", got)
	}
	if got := (*f.Spec.Constants)["MEDIA_TRASH"]; got != "true" {
		t.Errorf("MEDIA_TRASH = %q, want \"true\"", got)
	}
	var spec site.Spec
	f.Spec.ApplyCode(&spec)
	if err := spec.ValidateCode(); err != nil {
		t.Error(err)
	}
}

func testSite() *site.Site {
	return &site.Site{
		Metadata: site.Metadata{Name: "blog.example.com", UID: "u1", Org: "acme", Generation: 4,
			Labels: map[string]string{"team": "web"}, CreatedAt: time.Unix(0, 0)},
		Spec: site.Spec{Domain: "blog.example.com", Title: "My blog", Plan: "basic", CoreVersion: "6.1.9",
			PHP:   site.PHP{MaxChildren: 5, MemoryLimitMB: 256},
			Admin: site.Admin{User: "admin", Email: "me@example.com", PasswordHash: "$2a$secret-hash"},
			Cache: site.Cache{TTLSeconds: 300}, WAF: site.WAF{Mode: "block", ParanoiaLevel: 1,
				Exclusions: []site.WAFExclusion{{RuleID: 942100, Path: "/x", Argument: "q"}}},
			HTTPSRedirect: true,
			Plugins: []site.Extension{{Name: "akismet", Source: site.ExtensionSource{Type: "bundled"}},
				{Name: "aipress-hello", Version: "2.0", Active: true}},
			Themes:    []site.Extension{{Name: "twentytwentythree", Source: site.ExtensionSource{Type: "bundled"}, Active: true}},
			Options:   map[string]string{"blogname": "My blog", "posts_per_page": "10"},
			Constants: map[string]string{"WP_POST_REVISIONS": "5"},
		},
		Status: site.Status{Phase: site.PhaseReady, Shard: "s1", URL: "http://blog.example.com"},
	}
}

// FromSite prints no status and no secret, and its YAML parses back to the
// same file.
func TestFromSiteRoundTrip(t *testing.T) {
	st := testSite()
	f := FromSite(st)
	out, err := f.YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fromsite.golden.yaml", out)
	for _, secret := range []string{"secret-hash", "status", "s1", "max_children"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("the file shows %q:\n%s", secret, out)
		}
	}
	d, err := Parse("get.yaml", out)
	if err != nil {
		t.Fatalf("the printed file does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(d.File, *f) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", d.File, *f)
	}
	var spec site.Spec = st.Spec
	d.File.Spec.ApplyCode(&spec)
	if changes := Plan(st, &spec); len(changes) != 0 {
		t.Errorf("round trip plan is not empty: %v", changes)
	}
}

func TestPlanAndDrift(t *testing.T) {
	cur := testSite()
	want := cur.Spec
	want.Title = "New title"
	want.WAF.Mode = "detect"
	want.Plugins = []site.Extension{{Name: "akismet", Source: site.ExtensionSource{Type: "bundled"}, Active: true},
		{Name: "aipress-hello", Version: "2.1", Active: true}, {Name: "extra"}}
	want.Themes = nil
	want.Options = map[string]string{"blogname": "Renamed", "timezone_string": "UTC"}
	want.Constants = nil
	want.CoreVersion = ""
	changes := Plan(cur, &want)
	observed := &site.CodeStatus{Core: "6.1.9",
		Plugins: []site.InstalledExtension{{Name: "akismet", Active: true, Source: "bundled"},
			{Name: "aipress-hello", Version: "1.0", Active: false, Source: "wordpress.org"},
			{Name: "hello-dolly", Active: true, Source: "bundled"},
			{Name: "sneaky", Version: "0.1", Source: "unmanaged"}},
		Themes: []site.InstalledExtension{{Name: "twentytwentythree", Source: "bundled"},
			{Name: "twentytwentytwo", Source: "bundled", Active: true}},
		Options:   map[string]string{"blogname": "Hacked", "posts_per_page": "10"},
		Constants: map[string]string{},
	}
	drift := Drift(&cur.Spec, observed)
	for _, c := range drift {
		if !c.Drift || !strings.HasPrefix(c.Reason, "drift: ") {
			t.Errorf("drift change without its mark: %+v", c)
		}
	}
	var b bytes.Buffer
	if err := Render(&b, cur.Metadata.Name, changes); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	if err := Render(&b, cur.Metadata.Name, drift); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	create := cur.Spec
	if err := Render(&b, cur.Metadata.Name, Plan(nil, &create)); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	if err := Render(&b, cur.Metadata.Name, Plan(cur, &cur.Spec)); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden.txt", b.Bytes())
	if got := Drift(&cur.Spec, nil); got != nil {
		t.Errorf("drift without observation: %v", got)
	}
	// A site that runs its spec has no drift.
	same := &site.CodeStatus{Core: "6.1.9",
		Plugins: []site.InstalledExtension{{Name: "akismet", Source: "bundled"},
			{Name: "aipress-hello", Version: "2.0", Active: true, Source: "wordpress.org"}, {Name: "hello-dolly", Source: "bundled"}},
		Themes:    []site.InstalledExtension{{Name: "twentytwentythree", Source: "bundled", Active: true}, {Name: "twentytwentytwo", Source: "bundled"}},
		Options:   map[string]string{"blogname": "My blog", "posts_per_page": "10"},
		Constants: map[string]string{"WP_POST_REVISIONS": "5"},
	}
	if got := Drift(&cur.Spec, same); len(got) != 0 {
		t.Errorf("drift of a site running its spec: %v", got)
	}
	_ = store.CodeChange{}
}
