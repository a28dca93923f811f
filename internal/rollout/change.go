package rollout

import (
	"fmt"
	"slices"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Limits of an update's parameters.
const (
	MaxSmokePaths    = 10
	MaxSmokeContains = 200
)

// ApplyChange applies an update's change to spec in place: each listed
// plugin or theme replaces the spec's entry of that name (or is added; an
// active theme makes the others inactive; with KeepActive an entry the
// spec has keeps its active state and, given none, its source), Remove drops extensions by name
// (every name must be in the spec; the active theme cannot be removed),
// CoreVersion, when set, replaces the core version. The result is checked
// with Spec.ValidateCode. An error leaves spec unspecified: apply to a
// copy.
func ApplyChange(spec *site.Spec, p store.UpdateParams) error {
	if err := CheckChange(p); err != nil {
		return err
	}
	for _, name := range p.Remove {
		before := len(spec.Plugins) + len(spec.Themes)
		for _, t := range spec.Themes {
			if t.Name == name && t.Active {
				return fmt.Errorf("remove: theme %q is the active theme; activate another theme in the same update", name)
			}
		}
		spec.Plugins = slices.DeleteFunc(spec.Plugins, func(e site.Extension) bool { return e.Name == name })
		spec.Themes = slices.DeleteFunc(spec.Themes, func(e site.Extension) bool { return e.Name == name })
		if len(spec.Plugins)+len(spec.Themes) == before {
			return fmt.Errorf("remove: %q is neither a plugin nor a theme of the site's spec", name)
		}
	}
	for _, e := range p.Plugins {
		spec.Plugins = upsert(spec.Plugins, keep(spec.Plugins, e, p.KeepActive))
	}
	for _, e := range p.Themes {
		e = keep(spec.Themes, e, p.KeepActive)
		if e.Active {
			for i := range spec.Themes {
				spec.Themes[i].Active = false
			}
		}
		spec.Themes = upsert(spec.Themes, e)
	}
	if p.CoreVersion != "" {
		spec.CoreVersion = p.CoreVersion
	}
	return spec.ValidateCode()
}

// keep gives e the active state (and, when e has none, the source) of the
// list's entry of its name, when on.
func keep(list []site.Extension, e site.Extension, on bool) site.Extension {
	if !on {
		return e
	}
	for _, o := range list {
		if o.Name == e.Name {
			e.Active = o.Active
			if e.Source == (site.ExtensionSource{}) {
				e.Source = o.Source
			}
		}
	}
	return e
}

func upsert(list []site.Extension, e site.Extension) []site.Extension {
	list = slices.Clone(list)
	for i := range list {
		if list[i].Name == e.Name {
			list[i] = e
			return list
		}
	}
	return append(list, e)
}

// CheckChange checks an update's parameters on their own: a change to
// make, valid extensions, no name both changed and removed, a sane smoke
// test.
func CheckChange(p store.UpdateParams) error {
	if len(p.Plugins) == 0 && len(p.Themes) == 0 && len(p.Remove) == 0 && p.CoreVersion == "" {
		return fmt.Errorf("nothing to update: give plugins, themes, remove or core_version")
	}
	only := site.Spec{Plugins: p.Plugins, Themes: p.Themes}
	if err := only.ValidateCode(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range append(slices.Clone(p.Plugins), p.Themes...) {
		seen[e.Name] = true
	}
	for i, name := range p.Remove {
		if !site.ValidSlug(name) {
			return fmt.Errorf("remove[%d]: %q is not a slug", i, name)
		}
		if seen[name] {
			return fmt.Errorf("remove[%d]: %q is also changed by this update", i, name)
		}
	}
	if p.CoreVersion != "" && !coreVersionRE.MatchString(p.CoreVersion) {
		return fmt.Errorf("core_version: %q is not a version like 6.4.2", p.CoreVersion)
	}
	return CheckSmoke(p.Smoke)
}

// CheckSmoke checks a smoke test: at most MaxSmokePaths absolute paths
// without spaces, a status from 100 to 599 (0: 200), a bounded content
// check.
func CheckSmoke(t store.SmokeTest) error {
	if len(t.Paths) > MaxSmokePaths {
		return fmt.Errorf("smoke.paths: at most %d", MaxSmokePaths)
	}
	for i, p := range t.Paths {
		if !smokePathRE.MatchString(p) {
			return fmt.Errorf("smoke.paths[%d]: %q is not a path starting with / (no spaces, at most 200 characters)", i, p)
		}
	}
	if t.Status != 0 && (t.Status < 100 || t.Status > 599) {
		return fmt.Errorf("smoke.status: %d is not an HTTP status", t.Status)
	}
	if len(t.Contains) > MaxSmokeContains {
		return fmt.Errorf("smoke.contains: longer than %d characters", MaxSmokeContains)
	}
	for _, r := range t.Contains {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("smoke.contains: contains a control character")
		}
	}
	return nil
}
