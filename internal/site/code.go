package site

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A site's code — the WordPress core, the plugins and themes it runs, a few
// options and must-use settings — is declared in its spec (Spec.Plugins,
// Spec.Themes, Spec.Options, Spec.Constants, Spec.CoreVersion) and applied
// by code jobs on its shard (store.JobCode), which record what the site
// actually runs in Status.Code. Drift is the difference between the two.

// Extension sources.
const (
	// SourceWordPressOrg: the catalogue (a wordpress.org-compatible plugin
	// and theme directory) by slug (Name) and Version ("" or "latest": the
	// newest the catalogue offers when the job runs).
	SourceWordPressOrg = "wordpress.org"
	// SourceZip: a zip archive at URL (https to a public address; see
	// package egress), verified against SHA256.
	SourceZip = "zip"
	// SourceUpload: an archive uploaded through the API
	// (POST /v1/artefacts), named by its SHA256.
	SourceUpload = "upload"
	// SourceGit: a git repository (URL) at Ref (branch, tag or commit),
	// the extension's folder at Path ("" the repository's root).
	SourceGit = "git"
	// SourceBundled: shipped with the site's WordPress core (Debian's
	// bundled themes); nothing is fetched.
	SourceBundled = "bundled"
)

// Extension is a plugin or a theme a site runs.
type Extension struct {
	// Name is the extension's slug: its folder under wp-content/plugins
	// or wp-content/themes.
	Name string `json:"name"`
	// Version is the wanted version ("" or "latest" for the catalogue's
	// newest; informative for zip, upload and git sources, whose content
	// is fixed by SHA256 or Ref).
	Version string          `json:"version,omitempty"`
	Source  ExtensionSource `json:"source,omitzero"`
	// Active: the plugin is activated (a theme: it is the site's theme;
	// at most one theme is active).
	Active bool `json:"active"`
}

// ExtensionSource says where an extension comes from. Type "" reads as
// SourceWordPressOrg.
type ExtensionSource struct {
	Type   string `json:"type,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Path   string `json:"path,omitempty"`
}

// SourceType returns the source's type, SourceWordPressOrg for "".
func (s ExtensionSource) SourceType() string {
	if s.Type == "" {
		return SourceWordPressOrg
	}
	return s.Type
}

// OptionNames are the WordPress options a spec may set (Spec.Options),
// each with its check.
var OptionNames = map[string]func(string) error{
	"blogname":               textOption(200),
	"blogdescription":        textOption(400),
	"permalink_structure":    permalinkOption,
	"timezone_string":        timezoneOption,
	"date_format":            textOption(40),
	"time_format":            textOption(40),
	"start_of_week":          intOption(0, 6),
	"posts_per_page":         intOption(1, 1000),
	"default_comment_status": enumOption("open", "closed"),
	"default_ping_status":    enumOption("open", "closed"),
	"blog_public":            enumOption("0", "1"),
	"show_on_front":          enumOption("posts", "page"),
	"comment_registration":   enumOption("0", "1"),
	"users_can_register":     enumOption("0", "1"),
}

// ConstantNames are the must-use settings a spec may set (Spec.Constants):
// PHP constants written into the site's wp-config.php, each with its check.
// Values are written as PHP literals of the constant's type (integers and
// booleans unquoted).
var ConstantNames = map[string]func(string) error{
	"WP_POST_REVISIONS":        intOrBoolConstant(0, 1000),
	"AUTOSAVE_INTERVAL":        intOption(10, 86400),
	"EMPTY_TRASH_DAYS":         intOption(0, 3650),
	"MEDIA_TRASH":              boolConstant,
	"IMAGE_EDIT_OVERWRITE":     boolConstant,
	"DISALLOW_UNFILTERED_HTML": boolConstant,
	"WP_ENVIRONMENT_TYPE":      enumOption("production", "staging", "development", "local"),
	"WP_DEFAULT_THEME":         slugOption,
}

// Limits on the code part of a spec.
const (
	MaxExtensions = 200
)

var (
	slugRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	gitRefRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)
)

// ValidSlug reports whether name is a valid extension slug (lower-case
// letters, digits, '.', '_' and '-', at most 100, not starting with a
// punctuation mark; never "." or "..").
func ValidSlug(name string) bool { return slugRE.MatchString(name) && !strings.Contains(name, "..") }

// ValidateCode checks the code part of a spec: extensions (kind "plugins"
// or "themes" in messages), options and constants. Errors name the field
// by its JSON path (plugins[2].source.sha256).
func (s *Spec) ValidateCode() error {
	if err := validateExtensions("plugins", s.Plugins); err != nil {
		return err
	}
	if err := validateExtensions("themes", s.Themes); err != nil {
		return err
	}
	active := 0
	for _, t := range s.Themes {
		if t.Active {
			active++
		}
	}
	if active > 1 {
		return fmt.Errorf("themes: %d themes are active; at most one can be", active)
	}
	for _, k := range sortedKeys(s.Options) {
		check, ok := OptionNames[k]
		if !ok {
			return fmt.Errorf("options.%s: not an option a spec may set (allowed: %s)", k, strings.Join(sortedKeys(OptionNames), ", "))
		}
		if err := check(s.Options[k]); err != nil {
			return fmt.Errorf("options.%s: %w", k, err)
		}
	}
	for _, k := range sortedKeys(s.Constants) {
		check, ok := ConstantNames[k]
		if !ok {
			return fmt.Errorf("constants.%s: not a setting a spec may set (allowed: %s)", k, strings.Join(sortedKeys(ConstantNames), ", "))
		}
		if err := check(s.Constants[k]); err != nil {
			return fmt.Errorf("constants.%s: %w", k, err)
		}
	}
	return nil
}

func validateExtensions(field string, list []Extension) error {
	if len(list) > MaxExtensions {
		return fmt.Errorf("%s: at most %d, got %d", field, MaxExtensions, len(list))
	}
	seen := map[string]bool{}
	for i, e := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !ValidSlug(e.Name) {
			return fmt.Errorf("%s.name: %q is not a slug (lower-case letters, digits, '.', '_', '-')", f, e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("%s.name: %q is listed twice", f, e.Name)
		}
		seen[e.Name] = true
		if e.Version != "" && !versionRE.MatchString(e.Version) {
			return fmt.Errorf("%s.version: %q is not a version", f, e.Version)
		}
		src := e.Source
		switch src.SourceType() {
		case SourceWordPressOrg, SourceBundled:
			if src.URL != "" || src.SHA256 != "" || src.Ref != "" || src.Path != "" {
				return fmt.Errorf("%s.source: a %s source takes no url, sha256, ref or path", f, src.SourceType())
			}
		case SourceZip:
			if err := checkURL(src.URL); err != nil {
				return fmt.Errorf("%s.source.url: %w", f, err)
			}
			if !sha256RE.MatchString(src.SHA256) {
				return fmt.Errorf("%s.source.sha256: a zip source needs the archive's SHA-256 (64 lower-case hex digits)", f)
			}
		case SourceUpload:
			if !sha256RE.MatchString(src.SHA256) {
				return fmt.Errorf("%s.source.sha256: an upload source names the uploaded artefact by its SHA-256 (64 lower-case hex digits)", f)
			}
			if src.URL != "" || src.Ref != "" || src.Path != "" {
				return fmt.Errorf("%s.source: an upload source takes only sha256", f)
			}
		case SourceGit:
			if err := checkURL(src.URL); err != nil {
				return fmt.Errorf("%s.source.url: %w", f, err)
			}
			if src.Ref == "" || !gitRefRE.MatchString(src.Ref) || strings.Contains(src.Ref, "..") {
				return fmt.Errorf("%s.source.ref: a git source needs a branch, tag or commit", f)
			}
			if src.Path != "" && (strings.HasPrefix(src.Path, "/") || slices.Contains(strings.Split(src.Path, "/"), "..")) {
				return fmt.Errorf("%s.source.path: %q must be relative and stay inside the repository", f, src.Path)
			}
		default:
			return fmt.Errorf("%s.source.type: %q is not one of wordpress.org, zip, upload, git, bundled", f, src.Type)
		}
	}
	return nil
}

func checkURL(u string) error {
	if u == "" {
		return fmt.Errorf("missing")
	}
	if len(u) > 2000 {
		return fmt.Errorf("longer than 2000 characters")
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Errorf("%q: only http and https URLs", u)
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q contains a space or control character", u)
		}
	}
	return nil
}

func textOption(max int) func(string) error {
	return func(v string) error {
		if len(v) > max {
			return fmt.Errorf("longer than %d characters", max)
		}
		for _, r := range v {
			if r < ' ' || r == 0x7f {
				return fmt.Errorf("contains a control character")
			}
		}
		return nil
	}
}

func intOption(lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi || strconv.Itoa(n) != v {
			return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
		}
		return nil
	}
}

func enumOption(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

func boolConstant(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("%q is not true or false", v)
	}
	return nil
}

func intOrBoolConstant(lo, hi int) func(string) error {
	num := intOption(lo, hi)
	return func(v string) error {
		if v == "true" || v == "false" {
			return nil
		}
		if err := num(v); err != nil {
			return fmt.Errorf("%q is not true, false or a whole number from %d to %d", v, lo, hi)
		}
		return nil
	}
}

func slugOption(v string) error {
	if !ValidSlug(v) {
		return fmt.Errorf("%q is not a theme slug", v)
	}
	return nil
}

var permalinkRE = regexp.MustCompile(`^(/[A-Za-z0-9%_.-]+)*/?$`)

func permalinkOption(v string) error {
	if v == "" {
		return nil // plain links (?p=123)
	}
	if len(v) > 200 || !strings.HasPrefix(v, "/") || !permalinkRE.MatchString(v) {
		return fmt.Errorf("%q is not a permalink structure like /%%postname%%/", v)
	}
	return nil
}

var tzRE = regexp.MustCompile(`^([A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}|UTC([+-][0-9]{1,2}(\.[0-9]{1,2})?)?)$`)

func timezoneOption(v string) error {
	if v == "" || len(v) > 60 || !tzRE.MatchString(v) {
		return fmt.Errorf("%q is not a time zone like Europe/Paris or UTC", v)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CodeStatus is what the site's shard observed of its code: what it
// actually runs (read from the docroot and WordPress itself after every
// code job and on full passes) and the outcome of the last code job.
type CodeStatus struct {
	// Core is the WordPress version the docroot runs.
	Core    string               `json:"core,omitempty"`
	Plugins []InstalledExtension `json:"plugins,omitempty"`
	Themes  []InstalledExtension `json:"themes,omitempty"`
	// Options are the current values of the options the spec lists.
	Options map[string]string `json:"options,omitempty"`
	// Constants are the must-use settings the site's wp-config.php defines.
	Constants map[string]string `json:"constants,omitempty"`
	// AppliedGeneration is the spec generation whose code the last
	// successful code job applied (0: none yet).
	AppliedGeneration int64 `json:"applied_generation,omitempty"`
	// LastJob and LastError are the last code job and, when it failed
	// (rolled back), why.
	LastJob    string    `json:"last_job,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	ObservedAt time.Time `json:"observed_at,omitzero"`
}

// InstalledExtension is a plugin or theme as the shard found it.
type InstalledExtension struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // from the plugin header / style.css
	Active  bool   `json:"active"`
	// Digest is the SHA-256 of the artefact the folder links to in the
	// shard's artefact store; "" for bundled extensions.
	Digest string `json:"digest,omitempty"`
	// Source is the source type it was installed from ("bundled",
	// "wordpress.org", ...); "unmanaged" for a folder the spec never
	// named.
	Source string `json:"source,omitempty"`
}

// CodeSpec is the code part of a spec: what a code job applies and a
// staged update changes.
type CodeSpec struct {
	CoreVersion string            `json:"core_version,omitempty"`
	Plugins     []Extension       `json:"plugins,omitempty"`
	Themes      []Extension       `json:"themes,omitempty"`
	Options     map[string]string `json:"options,omitempty"`
	Constants   map[string]string `json:"constants,omitempty"`
}

// Code returns a copy of the spec's code part.
func (s *Spec) Code() CodeSpec {
	return CodeSpec{
		CoreVersion: s.CoreVersion,
		Plugins:     slices.Clone(s.Plugins),
		Themes:      slices.Clone(s.Themes),
		Options:     cloneMap(s.Options),
		Constants:   cloneMap(s.Constants),
	}
}

// SetCode replaces the spec's code part with a copy of c.
func (s *Spec) SetCode(c CodeSpec) {
	s.CoreVersion = c.CoreVersion
	s.Plugins = slices.Clone(c.Plugins)
	s.Themes = slices.Clone(c.Themes)
	s.Options = cloneMap(c.Options)
	s.Constants = cloneMap(c.Constants)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
