package sitefile

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Plan actions besides the code job's (store.CodeChange.Action).
const (
	ActionCreate = "create" // the site is created
	ActionSet    = "set"    // a site setting changes (Kind "site")
)

// Plan lists what changes when the site cur (nil: it does not exist yet)
// gets the spec want: its settings (Kind "site", Action set; Name the
// setting), then its code (plugins, themes, options, constants, core), in
// a stable order, each with its reason. Equal specs give no change.
func Plan(cur *site.Site, want *site.Spec) []store.CodeChange {
	var out []store.CodeChange
	var from site.Spec
	if cur == nil {
		out = append(out, store.CodeChange{Action: ActionCreate, Kind: "site", Name: want.Domain, To: want.Plan,
			Reason: "not there yet"})
	} else {
		from = cur.Spec
		set := func(name, a, b string) {
			if a != b {
				out = append(out, store.CodeChange{Action: ActionSet, Kind: "site", Name: name, From: a, To: b,
					Reason: "the file says so"})
			}
		}
		set("title", strconv.Quote(from.Title), strconv.Quote(want.Title))
		set("plan", from.Plan, want.Plan)
		set("cache.ttl_seconds", strconv.Itoa(from.Cache.TTLSeconds), strconv.Itoa(want.Cache.TTLSeconds))
		set("waf.mode", from.WAF.Mode, want.WAF.Mode)
		set("waf.paranoia_level", strconv.Itoa(from.WAF.ParanoiaLevel), strconv.Itoa(want.WAF.ParanoiaLevel))
		set("waf.exclusions", exclusions(from.WAF.Exclusions), exclusions(want.WAF.Exclusions))
		set("https.redirect", strconv.FormatBool(from.HTTPSRedirect), strconv.FormatBool(want.HTTPSRedirect))
	}
	return append(out, CodePlan(&from, want)...)
}

func exclusions(list []site.WAFExclusion) string {
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = e.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// CodePlan lists the code changes from the spec from to the spec want.
func CodePlan(from, want *site.Spec) []store.CodeChange {
	var out []store.CodeChange
	if from.CoreVersion != want.CoreVersion {
		out = append(out, store.CodeChange{Action: "core", Kind: "core", Name: "wordpress", From: coreName(from.CoreVersion),
			To: coreName(want.CoreVersion), Reason: "the spec's core version changed"})
	}
	out = append(out, extensionPlan("plugin", from.Plugins, want.Plugins)...)
	out = append(out, extensionPlan("theme", from.Themes, want.Themes)...)
	out = append(out, valuePlan("option", from.Options, want.Options,
		"no longer set by the spec (WordPress keeps its value)")...)
	out = append(out, valuePlan("constant", from.Constants, want.Constants,
		"no longer set by the spec (removed from wp-config.php)")...)
	return out
}

func coreName(v string) string {
	if v == "" {
		return "the shard's default"
	}
	return v
}

// describe says what an extension is: "2.0 (wordpress.org), active".
func describe(e site.Extension) string {
	var s string
	switch {
	case e.Version != "":
		s = e.Version + " (" + e.Source.SourceType() + ")"
	case e.Source.SourceType() == site.SourceWordPressOrg:
		s = "latest (wordpress.org)"
	default:
		s = e.Source.SourceType()
	}
	if e.Active {
		s += ", active"
	}
	return s
}

func extensionPlan(kind string, from, want []site.Extension) []store.CodeChange {
	var out []store.CodeChange
	for _, w := range want {
		i := slices.IndexFunc(from, func(e site.Extension) bool { return e.Name == w.Name })
		if i < 0 {
			out = append(out, store.CodeChange{Action: "install", Kind: kind, Name: w.Name, To: describe(w),
				Reason: "added to the spec"})
			continue
		}
		f := from[i]
		if f.Version != w.Version || f.Source != w.Source {
			reason := "its version changed in the spec"
			if f.Source != w.Source {
				reason = "its source changed in the spec"
			}
			out = append(out, store.CodeChange{Action: "update", Kind: kind, Name: w.Name,
				From: describe(site.Extension{Version: f.Version, Source: f.Source}),
				To:   describe(site.Extension{Version: w.Version, Source: w.Source}), Reason: reason})
		}
		if f.Active != w.Active {
			act := "activate"
			if !w.Active {
				act = "deactivate"
			}
			out = append(out, store.CodeChange{Action: act, Kind: kind, Name: w.Name, Reason: "the spec says active: " +
				strconv.FormatBool(w.Active)})
		}
	}
	for _, f := range from {
		if !slices.ContainsFunc(want, func(e site.Extension) bool { return e.Name == f.Name }) {
			out = append(out, store.CodeChange{Action: "remove", Kind: kind, Name: f.Name, From: describe(f),
				Reason: "removed from the spec"})
		}
	}
	return out
}

func valuePlan(kind string, from, want map[string]string, gone string) []store.CodeChange {
	var out []store.CodeChange
	for _, k := range slices.Sorted(maps.Keys(want)) {
		old, had := from[k]
		if had && old == want[k] {
			continue
		}
		c := store.CodeChange{Action: kind, Kind: kind, Name: k, To: strconv.Quote(want[k]), Reason: "set by the spec"}
		if had {
			c.From = strconv.Quote(old)
		}
		out = append(out, c)
	}
	for _, k := range slices.Sorted(maps.Keys(from)) {
		if _, ok := want[k]; !ok {
			out = append(out, store.CodeChange{Action: "remove", Kind: kind, Name: k, From: strconv.Quote(from[k]), Reason: gone})
		}
	}
	return out
}

// Drift lists what the site runs (observed, its Status.Code; nil: not
// observed yet, no drift known) that its spec does not say: each change
// (Drift set) brings it back to the spec. Bundled extensions the spec does
// not name are the core's and not drift (but an active bundled plugin the
// spec does not name is); when the spec names no active theme, which theme
// is active is the site's choice.
func Drift(spec *site.Spec, observed *site.CodeStatus) []store.CodeChange {
	if observed == nil {
		return nil
	}
	var out []store.CodeChange
	add := func(c store.CodeChange) {
		c.Drift = true
		c.Reason = "drift: " + c.Reason
		out = append(out, c)
	}
	if spec.CoreVersion != "" && observed.Core != "" && observed.Core != spec.CoreVersion {
		add(store.CodeChange{Action: "core", Kind: "core", Name: "wordpress", From: observed.Core, To: spec.CoreVersion,
			Reason: "the site runs " + observed.Core})
	}
	extensionDrift("plugin", spec.Plugins, observed.Plugins, add)
	extensionDrift("theme", spec.Themes, observed.Themes, add)
	for _, k := range slices.Sorted(maps.Keys(spec.Options)) {
		if v, ok := observed.Options[k]; ok && v != spec.Options[k] {
			add(store.CodeChange{Action: "option", Kind: "option", Name: k, From: strconv.Quote(v), To: strconv.Quote(spec.Options[k]),
				Reason: "changed outside the spec"})
		}
	}
	if observed.Constants != nil {
		for _, k := range slices.Sorted(maps.Keys(spec.Constants)) {
			v, ok := observed.Constants[k]
			switch {
			case !ok:
				add(store.CodeChange{Action: "constant", Kind: "constant", Name: k, To: strconv.Quote(spec.Constants[k]),
					Reason: "not in wp-config.php"})
			case v != spec.Constants[k]:
				add(store.CodeChange{Action: "constant", Kind: "constant", Name: k, From: strconv.Quote(v),
					To: strconv.Quote(spec.Constants[k]), Reason: "wp-config.php says otherwise"})
			}
		}
	}
	return out
}

func extensionDrift(kind string, spec []site.Extension, observed []site.InstalledExtension, add func(store.CodeChange)) {
	for _, e := range spec {
		i := slices.IndexFunc(observed, func(o site.InstalledExtension) bool { return o.Name == e.Name })
		if i < 0 {
			add(store.CodeChange{Action: "install", Kind: kind, Name: e.Name, To: describe(e), Reason: "not installed"})
			continue
		}
		o := observed[i]
		if e.Source.SourceType() == site.SourceWordPressOrg && e.Version != "" && e.Version != "latest" &&
			o.Version != "" && o.Version != e.Version {
			add(store.CodeChange{Action: "update", Kind: kind, Name: e.Name, From: o.Version, To: e.Version,
				Reason: "the site runs " + o.Version})
		}
		switch {
		case e.Active && !o.Active:
			what := "deactivated outside the spec"
			if kind == "theme" {
				what = "another theme is active"
			}
			add(store.CodeChange{Action: "activate", Kind: kind, Name: e.Name, Reason: what})
		case !e.Active && o.Active && kind == "plugin":
			add(store.CodeChange{Action: "deactivate", Kind: kind, Name: e.Name, Reason: "activated outside the spec"})
		}
	}
	for _, o := range observed {
		if slices.ContainsFunc(spec, func(e site.Extension) bool { return e.Name == o.Name }) {
			continue
		}
		switch {
		case o.Source == site.SourceBundled || o.Source == "":
			if kind == "plugin" && o.Active {
				add(store.CodeChange{Action: "deactivate", Kind: kind, Name: o.Name,
					Reason: "activated outside the spec (the spec does not list it)"})
			}
			// An unlisted bundled theme is the core's: when the spec
			// names an active theme, that theme's line covers it.
		case o.Source == "unmanaged":
			add(store.CodeChange{Action: "remove", Kind: kind, Name: o.Name, From: o.Version,
				Reason: "installed outside the spec"})
		default:
			add(store.CodeChange{Action: "remove", Kind: kind, Name: o.Name, From: o.Version,
				Reason: "still installed; the spec no longer lists it"})
		}
	}
}

// Symbol is a change's mark in a rendered plan: + adds, - removes, ~
// changes.
func Symbol(c store.CodeChange) string {
	switch {
	case c.Action == ActionCreate || c.Action == "install":
		return "+"
	case c.Action == "remove":
		return "-"
	case (c.Action == "option" || c.Action == "constant") && c.From == "":
		return "+"
	}
	return "~"
}

// Summary counts changes like terraform: "2 to add, 1 to change, 0 to
// remove", and how many of them bring back drift.
func Summary(changes []store.CodeChange) string {
	var add, change, remove, drift int
	for _, c := range changes {
		switch Symbol(c) {
		case "+":
			add++
		case "-":
			remove++
		default:
			change++
		}
		if c.Drift {
			drift++
		}
	}
	s := fmt.Sprintf("%d to add, %d to change, %d to remove", add, change, remove)
	if drift > 0 {
		s += fmt.Sprintf(" (%d of them drift)", drift)
	}
	return s
}

// Line renders one change: "~ plugin akismet: 1.0 → 2.0 (its version
// changed in the spec)".
func Line(c store.CodeChange) string {
	var b strings.Builder
	b.WriteString(Symbol(c) + " ")
	if c.Kind == "site" && c.Action == ActionSet {
		b.WriteString(c.Name)
	} else {
		b.WriteString(c.Kind + " " + c.Name)
	}
	switch {
	case c.Action == "activate" || c.Action == "deactivate":
		b.WriteString(": " + c.Action)
	case c.From != "" && c.To != "":
		b.WriteString(": " + c.From + " → " + c.To)
	case c.To != "":
		b.WriteString(": " + c.To)
	case c.From != "":
		b.WriteString(" (was " + c.From + ")")
	}
	if c.Reason != "" {
		b.WriteString("  # " + c.Reason)
	}
	return b.String()
}

// Render prints a plan for site like terraform plan: one line per change,
// then a summary line. Without changes it says so.
func Render(w io.Writer, siteName string, changes []store.CodeChange) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintf(w, "No changes: site %s matches the file.\n", siteName)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Site %s:\n", siteName)
	for _, c := range changes {
		b.WriteString("  " + Line(c) + "\n")
	}
	fmt.Fprintf(&b, "\nPlan: %s.\n", Summary(changes))
	_, err := io.WriteString(w, b.String())
	return err
}
