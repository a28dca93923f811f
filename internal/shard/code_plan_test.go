package shard

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
)

// The plan of a code job from a spec and what the site runs.
func TestCodePlan(t *testing.T) {
	as, err := artefact.Open(artefact.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := &Shard{cfg: Config{Artefacts: as}, core: &wordpress.Core{Version: "6.1.9", Content: "/core/content"}}
	digest := strings.Repeat("a", 64)
	other := strings.Repeat("b", 64)
	storeDir := func(kind, d, name string) string { return filepath.Join(as.Root(), kind, d, name) }
	hello1 := wanted{kind: "plugin", ext: site.Extension{Name: "hello", Version: "1.0", Active: true}, target: storeDir("plugin", digest, "hello"), digest: digest, ver: "1.0"}
	hello2 := wanted{kind: "plugin", ext: site.Extension{Name: "hello", Version: "2.0", Active: true}, target: storeDir("plugin", other, "hello"), digest: other, ver: "2.0"}
	akismet := wanted{kind: "plugin", ext: site.Extension{Name: "akismet", Source: site.ExtensionSource{Type: site.SourceBundled}}, target: "/core/content/plugins/akismet"}
	theme := wanted{kind: "theme", ext: site.Extension{Name: "t2", Active: true}, target: storeDir("theme", digest, "t2"), digest: digest, ver: "1.0"}

	base := func() *observed {
		return &observed{
			links: map[string]map[string]string{
				"plugins": {"akismet": "/core/content/plugins/akismet"},
				"themes":  {"twentytwentythree": "/core/content/themes/twentytwentythree"},
			},
			wp: &wordpress.Observation{
				Plugins:    []wordpress.PluginState{{Name: "akismet", Version: "5.0"}},
				Themes:     []wordpress.ThemeState{{Name: "twentytwentythree", Version: "1.0", Active: true}},
				Stylesheet: "twentytwentythree", Options: map[string]string{"blogname": "Old"},
			},
			core: "6.1.9",
		}
	}
	withHello := func(target, version string, active bool) func(*observed) {
		return func(o *observed) {
			o.links["plugins"]["hello"] = target
			o.wp.Plugins = append(o.wp.Plugins, wordpress.PluginState{Name: "hello", Version: version, Active: active})
		}
	}
	type step struct{ action, kind, name string }
	for _, tc := range []struct {
		name    string
		want    []wanted
		spec    func(*site.Spec)
		applied bool // the spec's generation was applied: differences are drift
		cur     []func(*observed)
		plan    []step
		reason  string // of the first change, when set
		err     string
	}{
		{name: "nothing to do", want: []wanted{akismet}},
		{name: "install and activate", want: []wanted{hello1},
			plan: []step{{"install", "plugin", "hello"}, {"activate", "plugin", "hello"}}, reason: "not installed"},
		{name: "update keeps it active", want: []wanted{hello2}, cur: []func(*observed){withHello(hello1.target, "1.0", true)},
			plan: []step{{"update", "plugin", "hello"}}, reason: "version 1.0 → 2.0"},
		{name: "spec says inactive", want: []wanted{{kind: "plugin", ext: site.Extension{Name: "hello"}, target: hello1.target}},
			cur: []func(*observed){withHello(hello1.target, "1.0", true)}, plan: []step{{"deactivate", "plugin", "hello"}}},
		{name: "drift", want: []wanted{hello1}, applied: true, cur: []func(*observed){withHello(hello1.target, "1.0", false)},
			plan: []step{{"activate", "plugin", "hello"}}, reason: "drift: inactive, the spec says active"},
		{name: "removed from the spec: deactivated, then unlinked; bundled ones stay", want: nil,
			cur:  []func(*observed){withHello(hello1.target, "1.0", true)},
			plan: []step{{"deactivate", "plugin", "hello"}, {"remove", "plugin", "hello"}}},
		{name: "theme switch", want: []wanted{theme},
			plan: []step{{"install", "theme", "t2"}, {"activate", "theme", "t2"}}},
		{name: "the active theme cannot go without a successor", want: nil,
			cur: []func(*observed){func(o *observed) {
				o.links["themes"]["t2"] = theme.target
				o.wp.Themes = append(o.wp.Themes, wordpress.ThemeState{Name: "t2", Active: true})
				o.wp.Stylesheet = "t2"
			}}, err: "the site's active theme"},
		{name: "a folder the platform did not link", want: []wanted{hello1},
			cur: []func(*observed){withHello("", "1.0", false)}, err: "did not install"},
		{name: "options, constants, core", want: nil,
			spec: func(sp *site.Spec) {
				sp.Options = map[string]string{"blogname": "New", "posts_per_page": "5"}
				sp.Constants = map[string]string{"WP_POST_REVISIONS": "3"}
				sp.CoreVersion = "6.4.1"
			},
			cur: []func(*observed){func(o *observed) { o.constants = map[string]string{"MEDIA_TRASH": "true"} }},
			plan: []step{{"core", "core", "wordpress"}, {"option", "option", "blogname"}, {"option", "option", "posts_per_page"},
				{"constant", "constant", "WP_POST_REVISIONS"}, {"constant", "constant", "MEDIA_TRASH"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &site.Site{Metadata: site.Metadata{Name: "x", Generation: 4}}
			if tc.spec != nil {
				tc.spec(&st.Spec)
			}
			if tc.applied {
				st.Status.Code = &site.CodeStatus{AppliedGeneration: 4}
			}
			cur := base()
			for _, f := range tc.cur {
				f(cur)
			}
			cr := &codeRun{s: s, st: st}
			plan, err := cr.plan(tc.want, cur)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []step
			for _, c := range plan {
				got = append(got, step{c.Action, c.Kind, c.Name})
			}
			if !reflect.DeepEqual(got, tc.plan) {
				t.Fatalf("plan %v, want %v (%+v)", got, tc.plan, plan)
			}
			if tc.reason != "" && plan[0].Reason != tc.reason {
				t.Errorf("reason %q, want %q", plan[0].Reason, tc.reason)
			}
		})
	}
}

// Messages for the site's owner name the site's paths, never the shard's.
func TestCodeScrub(t *testing.T) {
	as, err := artefact.Open(artefact.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := &Shard{cfg: Config{Artefacts: as, Dir: "/srv/shard"}, core: &wordpress.Core{Tree: "/srv/shard/cores/6.1.9/tree", Content: "/srv/shard/cores/6.1.9/content"}}
	n := Names{Dir: "/srv/shard/sites/abc", Docroot: "/srv/shard/sites/abc/htdocs"}
	d := strings.Repeat("0", 64)
	for in, want := range map[string]string{
		"Error in " + as.Root() + "/plugin/" + d + "/x/x.php:3":      "Error in wp-content/plugins/x/x.php:3",
		"Error in " + as.Root() + "/theme/" + d + "/t/functions.php": "Error in wp-content/themes/t/functions.php",
		"in /srv/shard/cores/6.1.9/tree/wp-includes/plugin.php":      "in wp-includes/plugin.php",
		"in /srv/shard/cores/6.1.9/content/plugins/akismet/a.php":    "in wp-content/plugins/akismet/a.php",
		"in /srv/shard/sites/abc/htdocs/wp-content/uploads/x.php":    "in wp-content/uploads/x.php",
		"in /srv/shard/lib/code.php(3)":                              "in lib/code.php(3)",
	} {
		if got := s.scrub(in, n); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

// Status.Code lists only the themes in the site's wp-content/themes: a
// theme directory a plugin registered elsewhere (register_theme_directory)
// does not reach the site's status.
func TestCodeStatusThemesInWPContent(t *testing.T) {
	as, err := artefact.Open(artefact.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := &Shard{cfg: Config{Artefacts: as, Clock: time.Now}, layout: Layout{Dir: t.TempDir()}}
	cur := &observed{
		links: map[string]map[string]string{"plugins": {}, "themes": {"twentytwentythree": "/core/content/themes/twentytwentythree"}},
		wp: &wordpress.Observation{Themes: []wordpress.ThemeState{{Name: "twentytwentythree", Active: true},
			{Name: "registered-elsewhere"}}, Options: map[string]string{}},
	}
	st := &site.Site{}
	var names []string
	for _, e := range s.codeStatus(st, cur).Themes {
		names = append(names, e.Name)
	}
	if !reflect.DeepEqual(names, []string{"twentytwentythree"}) {
		t.Errorf("Status.Code themes = %v, want [twentytwentythree]", names)
	}
}
