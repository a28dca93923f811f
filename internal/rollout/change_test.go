package rollout

import (
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

func TestApplyChange(t *testing.T) {
	base := func() site.Spec {
		return site.Spec{
			CoreVersion: "6.1.9",
			Plugins:     []site.Extension{ext("hello", "1.0", true), {Name: "akismet", Source: site.ExtensionSource{Type: site.SourceBundled}}},
			Themes:      []site.Extension{{Name: "twentytwentythree", Active: true}, {Name: "other"}},
		}
	}
	for _, tc := range []struct {
		name    string
		p       store.UpdateParams
		check   func(t *testing.T, s site.Spec)
		wantErr string
	}{
		{name: "nothing", wantErr: "nothing to update"},
		{name: "plugin replaced", p: store.UpdateParams{Plugins: []site.Extension{ext("hello", "2.0", true)}},
			check: func(t *testing.T, s site.Spec) {
				if len(s.Plugins) != 2 || s.Plugins[0].Version != "2.0" {
					t.Errorf("plugins %+v", s.Plugins)
				}
			}},
		{name: "plugin added", p: store.UpdateParams{Plugins: []site.Extension{ext("new", "3", false)}},
			check: func(t *testing.T, s site.Spec) {
				if len(s.Plugins) != 3 || s.Plugins[2].Name != "new" {
					t.Errorf("plugins %+v", s.Plugins)
				}
			}},
		{name: "theme activated", p: store.UpdateParams{Themes: []site.Extension{{Name: "other", Active: true}}},
			check: func(t *testing.T, s site.Spec) {
				if s.Themes[0].Active || !s.Themes[1].Active {
					t.Errorf("themes %+v", s.Themes)
				}
			}},
		{name: "removed", p: store.UpdateParams{Remove: []string{"akismet", "other"}},
			check: func(t *testing.T, s site.Spec) {
				if len(s.Plugins) != 1 || len(s.Themes) != 1 {
					t.Errorf("spec %+v", s)
				}
			}},
		{name: "core", p: store.UpdateParams{CoreVersion: "6.4.2"},
			check: func(t *testing.T, s site.Spec) {
				if s.CoreVersion != "6.4.2" {
					t.Errorf("core %q", s.CoreVersion)
				}
			}},
		{name: "keep active and source", p: store.UpdateParams{KeepActive: true, Plugins: []site.Extension{ext("hello", "2.0", false), ext("akismet", "5", true), ext("new", "1", true)},
			Themes: []site.Extension{{Name: "other", Version: "2"}}},
			check: func(t *testing.T, s site.Spec) {
				if !s.Plugins[0].Active || s.Plugins[0].Version != "2.0" || s.Plugins[1].Active || s.Plugins[1].Source.Type != site.SourceBundled || !s.Plugins[2].Active || !s.Themes[0].Active || s.Themes[1].Active {
					t.Errorf("spec %+v", s)
				}
			}},
		{name: "remove unknown", p: store.UpdateParams{Remove: []string{"nope"}}, wantErr: `"nope" is neither`},
		{name: "remove active theme", p: store.UpdateParams{Remove: []string{"twentytwentythree"}}, wantErr: "active theme"},
		{name: "remove and change", p: store.UpdateParams{Plugins: []site.Extension{ext("hello", "2", true)}, Remove: []string{"hello"}}, wantErr: "also changed"},
		{name: "bad slug", p: store.UpdateParams{Plugins: []site.Extension{ext("Bad Name", "2", true)}}, wantErr: "plugins[0].name"},
		{name: "bad core", p: store.UpdateParams{CoreVersion: "latest!"}, wantErr: "core_version"},
		{name: "two active themes", p: store.UpdateParams{Themes: []site.Extension{{Name: "a", Active: true}, {Name: "b", Active: true}}}, wantErr: "at most one"},
		{name: "bad smoke path", p: store.UpdateParams{CoreVersion: "6.4", Smoke: store.SmokeTest{Paths: []string{"shop"}}}, wantErr: "smoke.paths[0]"},
		{name: "bad smoke status", p: store.UpdateParams{CoreVersion: "6.4", Smoke: store.SmokeTest{Status: 42}}, wantErr: "smoke.status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			err := ApplyChange(&s, tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestStagingName(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example.com"
	for _, name := range []string{"blog.example.com", long} {
		n := site.StagingName(name, "job-1")
		if _, err := site.NormalizeDomain(n); err != nil || !site.IsStaging(n) || n != site.StagingName(name, "job-1") || n == site.StagingName(name, "job-2") {
			t.Errorf("StagingName(%q) = %q (%v)", name, n, err)
		}
	}
	if site.IsStaging("blog.example.com") || site.IsStaging("staging.invalid.example.com") {
		t.Error("IsStaging of a customer's name")
	}
}
