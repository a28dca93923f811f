package wordpress

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aipress/aipress/internal/site"
)

//go:embed code.php
var codeScript []byte

// CodeScriptName is the file name WriteCodeScript gives the code script.
const CodeScriptName = "code.php"

// WriteCodeScript writes the script that observes and applies a site's
// code (plugins, themes, options) into dir (root-owned, world-readable) and
// returns its path.
func WriteCodeScript(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("wordpress code script: %w", err)
	}
	p := filepath.Join(dir, CodeScriptName)
	if err := os.WriteFile(p, codeScript, 0o644); err != nil {
		return "", fmt.Errorf("wordpress code script: %w", err)
	}
	return p, nil
}

// PluginState is a plugin as WordPress sees it (get_plugins()).
type PluginState struct {
	// Name is the plugin's folder under wp-content/plugins (a
	// single-file plugin: its file name); File its main file relative to
	// wp-content/plugins.
	Name    string `json:"name"`
	File    string `json:"file"`
	Title   string `json:"title"`
	Version string `json:"version"`
	Active  bool   `json:"active"`
}

// ThemeState is a theme as WordPress sees it (wp_get_themes()).
type ThemeState struct {
	Name    string `json:"name"` // its stylesheet: the folder under wp-content/themes
	Title   string `json:"title"`
	Version string `json:"version"`
	Active  bool   `json:"active"`
	// Broken is WordPress's complaint about the theme ("" when none: it
	// lacks style.css, its parent is missing, ...).
	Broken string `json:"broken,omitempty"`
}

// Observation is what a site runs, as WordPress reports it.
type Observation struct {
	Core    string        `json:"core"`
	Plugins []PluginState `json:"plugins"`
	Themes  []ThemeState  `json:"themes"`
	// Stylesheet is the active theme.
	Stylesheet string `json:"stylesheet"`
	// ActiveMissing are plugin files the active_plugins option lists
	// that are not in wp-content/plugins (WordPress skips them).
	ActiveMissing []string `json:"active_missing"`
	// Options are the values of the asked-for options that are set.
	Options map[string]string `json:"options"`
}

// Plugin returns the plugin in folder name, or nil.
func (o *Observation) Plugin(name string) *PluginState {
	for i := range o.Plugins {
		if o.Plugins[i].Name == name {
			return &o.Plugins[i]
		}
	}
	return nil
}

// Theme returns the theme in folder name, or nil.
func (o *Observation) Theme(name string) *ThemeState {
	for i := range o.Themes {
		if o.Themes[i].Name == name {
			return &o.Themes[i]
		}
	}
	return nil
}

// CodeInput is what ApplyCode changes, in this order: plugins deactivated,
// the theme switched to, plugins activated (each running its activation
// hook), options set (the rewrite rules flushed when permalink_structure
// changed).
type CodeInput struct {
	Deactivate []string          `json:"deactivate,omitempty"` // plugin folders
	Theme      string            `json:"theme,omitempty"`      // stylesheet; "": unchanged
	Activate   []string          `json:"activate,omitempty"`   // plugin folders
	Options    map[string]string `json:"options,omitempty"`
}

// CodeError is a failed ApplyCode: which step failed and why, in words
// that name the plugin or theme; Fatal is PHP's fatal error message when
// one ended the script (a plugin that fatals on activation), and Done what
// was changed before.
type CodeError struct {
	Step    string
	Message string
	Fatal   string
	Done    []string
}

func (e *CodeError) Error() string { return e.Message }

// codeOutput is the code script's last line.
type codeOutput struct {
	Error string   `json:"error"`
	Step  string   `json:"step"`
	Fatal string   `json:"fatal"`
	Done  []string `json:"done"`
	OK    bool     `json:"ok"`
}

// ObserveCode asks WordPress which plugins and themes the site has and
// runs, and the values of options.
func (r Runner) ObserveCode(ctx context.Context, script string, options []string) (*Observation, error) {
	names, _ := json.Marshal(options)
	if options == nil {
		names = []byte("[]")
	}
	out, err := r.runCode(ctx, script, []string{"AIP_CODE_MODE=observe", "AIP_CODE_OPTIONS=" + string(names)})
	if err != nil {
		return nil, fmt.Errorf("observe code: %w", err)
	}
	var o Observation
	if err := json.Unmarshal(lastLine(out), &o); err != nil {
		return nil, fmt.Errorf("observe code: %s", summarize(out))
	}
	return o.sanitize(options), nil
}

// Limits on what an observation keeps: the site's code (its plugins'
// filters) shapes what WordPress reports, and the result is written into
// the site's status.
const (
	MaxObservedExtensions = 1000 // plugins, and themes, kept
	maxObservedText       = 200  // titles, versions, complaints
	maxObservedOption     = 1024 // an option's value
	maxObservedPath       = 300  // a plugin's main file
)

// sanitize returns o with only what the shard can trust the shape of:
// plugins and themes whose folder is a valid slug (at most
// MaxObservedExtensions of each), short text fields, and only the asked-for
// options (values cut at maxObservedOption bytes: longer than any spec
// value, so such an option never matches a spec).
func (o Observation) sanitize(asked []string) *Observation {
	out := &Observation{Core: text(o.Core), Options: map[string]string{}}
	if site.ValidSlug(o.Stylesheet) {
		out.Stylesheet = o.Stylesheet
	}
	for _, p := range o.Plugins {
		if len(out.Plugins) == MaxObservedExtensions {
			break
		}
		if !site.ValidSlug(p.Name) || !validPluginFile(p.Name, p.File) {
			continue
		}
		out.Plugins = append(out.Plugins, PluginState{Name: p.Name, File: p.File, Title: text(p.Title), Version: text(p.Version), Active: p.Active})
	}
	for _, t := range o.Themes {
		if len(out.Themes) == MaxObservedExtensions {
			break
		}
		if !site.ValidSlug(t.Name) {
			continue
		}
		out.Themes = append(out.Themes, ThemeState{Name: t.Name, Title: text(t.Title), Version: text(t.Version), Active: t.Active, Broken: text(t.Broken)})
	}
	for _, f := range o.ActiveMissing {
		if len(out.ActiveMissing) == MaxObservedExtensions {
			break
		}
		out.ActiveMissing = append(out.ActiveMissing, cut(f, maxObservedPath))
	}
	for _, k := range asked {
		if v, ok := o.Options[k]; ok {
			out.Options[k] = cut(v, maxObservedOption)
		}
	}
	return out
}

// validPluginFile reports whether file is plugin name's main file: name
// itself (a single-file plugin) or a PHP file in its folder.
func validPluginFile(name, file string) bool {
	if file == name {
		return true
	}
	rest, ok := strings.CutPrefix(file, name+"/")
	return ok && len(file) <= maxObservedPath && rest != "" && !strings.Contains(rest, "/") &&
		!strings.HasPrefix(rest, ".") && strings.HasSuffix(rest, ".php")
}

func text(s string) string { return cut(s, maxObservedText) }

// cut is s as valid UTF-8 of at most max bytes.
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ApplyCode applies in through WordPress in the site's context. It returns
// what was done; a failure is a *CodeError (it stops at the first failing
// step; what ran before it stays done).
func (r Runner) ApplyCode(ctx context.Context, script string, in CodeInput) ([]string, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out, err := r.runCode(ctx, script, []string{"AIP_CODE_MODE=apply", "AIP_CODE_INPUT=" + string(b)})
	var res codeOutput
	if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil {
		if err != nil {
			return nil, fmt.Errorf("apply code: %w", err)
		}
		return nil, fmt.Errorf("apply code: %s", summarize(out))
	}
	if res.Error != "" || err != nil {
		msg := res.Error
		if msg == "" {
			msg = err.Error()
		}
		return res.Done, &CodeError{Step: res.Step, Message: msg, Fatal: res.Fatal, Done: res.Done}
	}
	return res.Done, nil
}

// runCode runs the code script; its stdout is returned even when it fails
// (the script reports a failure on its last line).
func (r Runner) runCode(ctx context.Context, script string, env []string) ([]byte, error) {
	return r.run(ctx, script, env, 2*time.Minute)
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if len(lines) == 0 {
		return nil
	}
	return lines[len(lines)-1]
}
