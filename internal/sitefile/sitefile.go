// Package sitefile is the site file: a WordPress site as code.
//
//	apiVersion: aipress.dev/v1
//	kind: Site
//	metadata: {name: blog.example.com, org: acme}
//	spec:
//	  title: My blog
//	  plan: basic
//	  plugins: [{name: akismet, source: {type: bundled}, active: false}]
//	  themes: [{name: twentytwentythree, source: {type: bundled}, active: true}]
//	  options: {blogname: My blog, permalink_structure: /%postname%/}
//
// Parse reads a file (YAML, or JSON, which is YAML too), keeping every
// node's position, and validates it against the JSON Schema (Schema, draft
// 2020-12) and the code rules of site.Spec.ValidateCode: every problem names
// file:line:column and the field's path. FromSite is the file of a stored
// site (what `aipress site get -o yaml` prints: no status, no secrets);
// applying it back changes nothing. Plan lists what applying a file
// changes, Drift what a site runs that its spec does not say, and Render
// prints both like `terraform plan`.
//
// A field left out of a file is left as it is (on creation: the default);
// a field given is the whole truth: `plugins: []` removes every plugin.
package sitefile

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/aipress/aipress/internal/site"
)

// The file's apiVersion and kind.
const (
	APIVersion = "aipress.dev/v1"
	Kind       = "Site"
)

// MaxBytes bounds a site file.
const MaxBytes = 1 << 20

//go:embed site.schema.json
var schemaJSON []byte

// Schema returns the site file's JSON Schema (draft 2020-12), as
// `aipress schema site` prints it.
func Schema() []byte { return slices.Clone(schemaJSON) }

// File is a site file.
type File struct {
	APIVersion string   `json:"apiVersion" yaml:"apiVersion"`
	Kind       string   `json:"kind" yaml:"kind"`
	Metadata   Metadata `json:"metadata" yaml:"metadata"`
	Spec       Spec     `json:"spec" yaml:"spec"`
}

// Metadata names the site.
type Metadata struct {
	// Name is the site's domain.
	Name string `json:"name" yaml:"name"`
	// Org owns the site ("": the caller's only organisation). It cannot
	// change.
	Org string `json:"org,omitempty" yaml:"org,omitempty"`
	// Labels are set at creation; a site file cannot change them.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Spec is what the site should be. Nil fields are left as they are.
type Spec struct {
	// Domains: one entry today, the site's name.
	Domains []string `json:"domains,omitempty" yaml:"domains,omitempty"`
	Title   *string  `json:"title,omitempty" yaml:"title,omitempty"`
	Plan    *string  `json:"plan,omitempty" yaml:"plan,omitempty"`
	// Admin is the first administrator: needed to create a site, then
	// read-only.
	Admin *Admin `json:"admin,omitempty" yaml:"admin,omitempty"`
	Core  *Core  `json:"core,omitempty" yaml:"core,omitempty"`
	// PHP is read-only (the plan gives it): the fields given are checked.
	PHP   *PHP   `json:"php,omitempty" yaml:"php,omitempty"`
	Cache *Cache `json:"cache,omitempty" yaml:"cache,omitempty"`
	WAF   *WAF   `json:"waf,omitempty" yaml:"waf,omitempty"`
	HTTPS *HTTPS `json:"https,omitempty" yaml:"https,omitempty"`
	// Backup is read-only (no API changes it yet): the fields given are
	// checked.
	Backup    *Backup            `json:"backup,omitempty" yaml:"backup,omitempty"`
	Plugins   *[]Extension       `json:"plugins,omitempty" yaml:"plugins,omitempty"`
	Themes    *[]Extension       `json:"themes,omitempty" yaml:"themes,omitempty"`
	Options   *map[string]string `json:"options,omitempty" yaml:"options,omitempty"`
	Constants *map[string]string `json:"constants,omitempty" yaml:"constants,omitempty"`
}

// Admin is the site's first administrator.
type Admin struct {
	User  string `json:"user,omitempty" yaml:"user,omitempty"`
	Email string `json:"email" yaml:"email"`
}

// Core is the WordPress core.
type Core struct {
	Version string `json:"version" yaml:"version"`
}

// PHP are the PHP settings the plan gives.
type PHP struct {
	MaxChildren           *int `json:"max_children,omitempty" yaml:"max_children,omitempty"`
	MemoryLimitMB         *int `json:"memory_limit_mb,omitempty" yaml:"memory_limit_mb,omitempty"`
	UploadMaxMB           *int `json:"upload_max_mb,omitempty" yaml:"upload_max_mb,omitempty"`
	IdleTimeoutSeconds    *int `json:"idle_timeout_seconds,omitempty" yaml:"idle_timeout_seconds,omitempty"`
	RequestTimeoutSeconds *int `json:"request_timeout_seconds,omitempty" yaml:"request_timeout_seconds,omitempty"`
}

// Cache is the edge's page cache policy.
type Cache struct {
	TTLSeconds int `json:"ttl_seconds" yaml:"ttl_seconds"`
}

// WAF is the web application firewall policy.
type WAF struct {
	Mode          *string      `json:"mode,omitempty" yaml:"mode,omitempty"`
	ParanoiaLevel *int         `json:"paranoia_level,omitempty" yaml:"paranoia_level,omitempty"`
	Exclusions    *[]Exclusion `json:"exclusions,omitempty" yaml:"exclusions,omitempty"`
}

// Exclusion lifts one WAF rule for one path (and argument).
type Exclusion struct {
	RuleID   int    `json:"rule_id" yaml:"rule_id"`
	Path     string `json:"path" yaml:"path"`
	Argument string `json:"argument,omitempty" yaml:"argument,omitempty"`
}

// HTTPS says how the site uses HTTPS.
type HTTPS struct {
	Redirect *bool `json:"redirect,omitempty" yaml:"redirect,omitempty"`
}

// Backup is the backup schedule and retention.
type Backup struct {
	EveryHours *int  `json:"every_hours,omitempty" yaml:"every_hours,omitempty"`
	Keep       *Keep `json:"keep,omitempty" yaml:"keep,omitempty"`
}

// Keep is the backup retention.
type Keep struct {
	Hourly  *int `json:"hourly,omitempty" yaml:"hourly,omitempty"`
	Daily   *int `json:"daily,omitempty" yaml:"daily,omitempty"`
	Weekly  *int `json:"weekly,omitempty" yaml:"weekly,omitempty"`
	Monthly *int `json:"monthly,omitempty" yaml:"monthly,omitempty"`
}

// Extension is a plugin or theme (site.Extension).
type Extension struct {
	Name    string  `json:"name" yaml:"name"`
	Version string  `json:"version,omitempty" yaml:"version,omitempty"`
	Source  *Source `json:"source,omitempty" yaml:"source,omitempty"`
	Active  bool    `json:"active" yaml:"active"`
}

// Source is where an extension comes from (site.ExtensionSource).
type Source struct {
	Type   string `json:"type,omitempty" yaml:"type,omitempty"`
	URL    string `json:"url,omitempty" yaml:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
	Ref    string `json:"ref,omitempty" yaml:"ref,omitempty"`
	Path   string `json:"path,omitempty" yaml:"path,omitempty"`
}

// Problem is one thing wrong with a file, where it is.
type Problem struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	// Path is the field, as spec.plugins[1].source.sha256 ("" the whole
	// file).
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(cmpOr(p.File, "<input>"))
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Error is an invalid file: its problems, in file order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the problems of err when it is an *Error, else nil.
func Problems(err error) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}

// Doc is a parsed, schema-valid file with the positions of its nodes.
type Doc struct {
	Name string // the file's name in messages
	File File
	pos  map[string]position // JSON pointer → position of the value
	keys map[string]position // JSON pointer → position of the key naming it
}

type position struct{ line, col int }

// Parse reads and validates a site file named name (for messages): the
// JSON Schema, the domains, and the code rules (site.Spec.ValidateCode).
// An invalid file gives an *Error listing every problem found (schema
// problems first stop the later checks).
func Parse(name string, data []byte) (*Doc, error) {
	d := &Doc{Name: name, pos: map[string]position{}, keys: map[string]position{}}
	fail := func(line, col int, path, format string, args ...any) error {
		return &Error{Problems: []Problem{{File: name, Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)}}}
	}
	if len(data) > MaxBytes {
		return nil, fail(0, 0, "", "the file is larger than %d bytes", MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fail(0, 0, "", "the file is empty")
	}
	if t := bytes.TrimSpace(data); t[0] == '{' {
		// JSON: raw tabs only stand between tokens (in strings they are
		// escaped), where YAML refuses them; a space is as wide.
		data = bytes.ReplaceAll(data, []byte{'\t'}, []byte{' '})
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, fail(line, 1, "", "%s", msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fail(extra.Line, extra.Column, "", "more than one YAML document: a site file holds one site")
	}
	value, err := d.convert(&root, "", 0)
	if err != nil {
		return nil, err
	}
	if probs := d.validateSchema(value); len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	stringify(value)
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, fail(0, 0, "", "encode: %v", err)
	}
	jd := json.NewDecoder(bytes.NewReader(raw))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&d.File); err != nil {
		return nil, fail(0, 0, "", "decode: %v", err) // the schema should have caught it
	}
	if probs := d.check(); len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	return d, nil
}

// yamlErrorLine extracts "line N: msg" from a yaml.v3 error.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if line, err := strconv.Atoi(n); err == nil {
				return line, "invalid YAML: " + strings.TrimSpace(after)
			}
		}
	}
	return 0, "invalid YAML: " + msg
}

// maxDepth bounds the nesting of a file.
const maxDepth = 32

// convert turns a YAML node into JSON-like values (map[string]any, []any,
// string, json.Number, bool, nil), recording positions under ptr.
func (d *Doc) convert(n *yaml.Node, ptr string, depth int) (any, error) {
	fail := func(n *yaml.Node, format string, args ...any) error {
		return &Error{Problems: []Problem{{File: d.Name, Line: n.Line, Column: n.Column, Path: d.fieldPath(ptr),
			Message: fmt.Sprintf(format, args...)}}}
	}
	if depth > maxDepth {
		return nil, fail(n, "nested deeper than %d levels", maxDepth)
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil, fail(n, "an empty document")
		}
		return d.convert(n.Content[0], ptr, depth)
	}
	d.pos[ptr] = position{n.Line, n.Column}
	switch n.Kind {
	case yaml.AliasNode:
		return nil, fail(n, "YAML aliases (*%s) are not supported in a site file", n.Value)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fail(k, "a mapping key must be a plain string")
			}
			if k.Tag == "!!merge" {
				return nil, fail(k, "YAML merge keys (<<) are not supported in a site file")
			}
			child := ptr + "/" + escapePtr(k.Value)
			if _, dup := m[k.Value]; dup {
				return nil, &Error{Problems: []Problem{{File: d.Name, Line: k.Line, Column: k.Column,
					Path: d.fieldPath(child), Message: fmt.Sprintf("%q is given twice", k.Value)}}}
			}
			d.keys[child] = position{k.Line, k.Column}
			cv, err := d.convert(v, child, depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = cv
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			cv, err := d.convert(c, ptr+"/"+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, cv)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fail(n, "%v", err)
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, fail(n, "%q: %v", n.Value, err)
			}
			return scalar{json.Number(strconv.FormatInt(i, 10)), n.Value}, nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, fail(n, "%q: %v", n.Value, err)
			}
			return scalar{json.Number(strconv.FormatFloat(f, 'g', -1, 64)), n.Value}, nil
		case "!!str":
			return n.Value, nil
		default:
			return nil, fail(n, "unsupported YAML tag %s", n.ShortTag())
		}
	}
	return nil, fail(n, "unsupported YAML node")
}

// scalar is a number as the file wrote it: options and constants keep the
// text (posts_per_page: 010 is "010", a version 2.10 stays "2.10").
type scalar struct {
	num  json.Number
	text string
}

// forSchema replaces scalars by their numbers, for the schema validator.
func forSchema(v any) any {
	switch t := v.(type) {
	case scalar:
		return t.num
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, c := range t {
			out[k] = forSchema(c)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = forSchema(c)
		}
		return out
	}
	return v
}

// stringify turns option and constant values into strings (as written;
// booleans as true/false) and the remaining scalars into numbers.
func stringify(v any) {
	root, _ := v.(map[string]any)
	spec, _ := root["spec"].(map[string]any)
	for _, k := range []string{"options", "constants"} {
		m, _ := spec[k].(map[string]any)
		for name, val := range m {
			switch t := val.(type) {
			case scalar:
				m[name] = t.text
			case bool:
				m[name] = strconv.FormatBool(t)
			}
		}
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case scalar:
			return t.num
		case map[string]any:
			for k, c := range t {
				t[k] = walk(c)
			}
		case []any:
			for i, c := range t {
				t[i] = walk(c)
			}
		}
		return v
	}
	walk(v)
}

func escapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// fieldPath turns a JSON pointer into a field path: /spec/plugins/1/name →
// spec.plugins[1].name.
func (d *Doc) fieldPath(ptr string) string {
	if ptr == "" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = unescapePtr(tok)
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// pointer turns a field path (spec.plugins[1].name) into a JSON pointer.
func pointer(path string) string {
	if path == "" {
		return ""
	}
	var b strings.Builder
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			b.WriteString("/" + escapePtr(name))
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			b.WriteString("/" + idx)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return b.String()
}

// At returns a problem about the field at path (spec.plugins[1].name), at
// its position in the file, or at its nearest ancestor's when the file
// does not have it.
func (d *Doc) At(path, format string, args ...any) Problem {
	p := Problem{File: d.Name, Path: path, Message: fmt.Sprintf(format, args...)}
	ptr := pointer(path)
	if pos, ok := d.pos[ptr]; ok {
		p.Line, p.Column = pos.line, pos.col
		return p
	}
	for ptr != "" {
		ptr = ptr[:max(strings.LastIndex(ptr, "/"), 0)]
		pos, ok := d.keys[ptr]
		if !ok {
			pos, ok = d.pos[ptr]
		}
		if ok {
			p.Line, p.Column = pos.line, pos.col
			return p
		}
	}
	return p
}

var printer = message.NewPrinter(language.English)

const schemaURL = "https://aipress.dev/schemas/site-v1.json"

// compiled is the embedded schema, compiled once (TestSchema proves it
// compiles).
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
})

// validateSchema checks v against the schema; each problem is placed at
// its node (an unknown field at its key).
func (d *Doc) validateSchema(v any) []Problem {
	sch, err := compiled()
	if err != nil {
		return []Problem{{File: d.Name, Message: "the site file schema does not compile: " + err.Error()}}
	}
	err = sch.Validate(forSchema(v))
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Problem{{File: d.Name, Message: err.Error()}}
	}
	var out []Problem
	seen := map[string]bool{}
	add := func(ptr string, key bool, msg string) {
		p := Problem{File: d.Name, Path: d.fieldPath(ptr), Message: msg}
		pos, ok := d.pos[ptr]
		if key {
			if kp, kok := d.keys[ptr]; kok {
				pos, ok = kp, true
			}
		}
		if !ok { // a missing field: at the key of the object that lacks it
			parent := ptr[:max(strings.LastIndex(ptr, "/"), 0)]
			if pos, ok = d.keys[parent]; !ok {
				pos, ok = d.pos[parent]
			}
		}
		if ok {
			p.Line, p.Column = pos.line, pos.col
		}
		if k := p.String(); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := ""
		for _, tok := range e.InstanceLocation {
			ptr += "/" + escapePtr(tok)
		}
		switch k := e.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			for _, name := range k.Properties {
				add(ptr+"/"+escapePtr(name), true, propertyNameMessage(ptr, name))
			}
		case *kind.Required:
			for _, name := range k.Missing {
				add(ptr+"/"+escapePtr(name), false, "missing (required)")
			}
		case *kind.Pattern:
			if extNameRE.MatchString(ptr) {
				add(ptr, false, fmt.Sprintf("%q is not a slug (lower-case letters, digits, '.', '_', '-'; at most 100)", k.Got))
			} else {
				add(ptr, false, e.ErrorKind.LocalizedString(printer))
			}
		case *kind.Type:
			msg := fmt.Sprintf("want %s, got %s", strings.Join(k.Want, " or "), k.Got)
			if slices.Contains(k.Want, "string") && k.Got == "number" {
				msg += " (quote it: \"…\")"
			}
			add(ptr, false, msg)
		case *kind.Enum:
			want := make([]string, len(k.Want))
			for i, w := range k.Want {
				want[i] = fmt.Sprint(w)
			}
			add(ptr, false, fmt.Sprintf("%q is not one of %s", fmt.Sprint(k.Got), strings.Join(want, ", ")))
		default:
			add(ptr, false, e.ErrorKind.LocalizedString(printer))
		}
	}
	walk(ve)
	sortProblems(out)
	return out
}

var extNameRE = regexp.MustCompile(`^/spec/(plugins|themes)/[0-9]+/name$`)

// propertyNameMessage explains why name may not be a key of the object at
// ptr.
func propertyNameMessage(ptr, name string) string {
	switch ptr {
	case "/spec/options":
		return fmt.Sprintf("%q is not an option a site file may set (allowed: %s)", name, strings.Join(sortedKeys(site.OptionNames), ", "))
	case "/spec/constants":
		return fmt.Sprintf("%q is not a setting a site file may set (allowed: %s)", name, strings.Join(sortedKeys(site.ConstantNames), ", "))
	case "/metadata/labels":
		return fmt.Sprintf("label key %q: use up to 63 letters, digits, '_', '.', '/' or '-'", name)
	}
	return "unknown field " + strconv.Quote(name)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// check runs the rules the schema cannot say: the name is a domain, the
// domains are the name, the code part passes site.Spec.ValidateCode.
func (d *Doc) check() []Problem {
	var out []Problem
	f := &d.File
	name, err := site.NormalizeDomain(f.Metadata.Name)
	if err != nil {
		out = append(out, d.At("metadata.name", "%v", err))
	} else {
		f.Metadata.Name = name
	}
	if len(f.Spec.Domains) > 0 {
		dom, err := site.NormalizeDomain(f.Spec.Domains[0])
		if err != nil || dom != f.Metadata.Name {
			out = append(out, d.At("spec.domains[0]", "%q: a site's one domain is its name, %q (aliases are not supported yet)",
				f.Spec.Domains[0], f.Metadata.Name))
		}
	}
	code := site.Spec{}
	f.Spec.ApplyCode(&code)
	if err := code.ValidateCode(); err != nil {
		out = append(out, d.codeProblem(err))
	}
	sortProblems(out)
	return out
}

// codeProblem places a site.Spec.ValidateCode error ("plugins[2].name: …")
// at its field.
func (d *Doc) codeProblem(err error) Problem {
	msg := err.Error()
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(field, " ") {
		return d.At("spec", "%s", msg)
	}
	return d.At("spec."+field, "%s", rest)
}

// ApplyCode sets the code fields the file gives (plugins, themes, options,
// constants, core) on spec.
func (s *Spec) ApplyCode(spec *site.Spec) {
	if s.Plugins != nil {
		spec.Plugins = toExtensions(*s.Plugins)
	}
	if s.Themes != nil {
		spec.Themes = toExtensions(*s.Themes)
	}
	if s.Options != nil {
		spec.Options = cloneMap(*s.Options)
	}
	if s.Constants != nil {
		spec.Constants = cloneMap(*s.Constants)
	}
	if s.Core != nil {
		spec.CoreVersion = s.Core.Version
	}
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func toExtensions(list []Extension) []site.Extension {
	if len(list) == 0 {
		return nil
	}
	out := make([]site.Extension, len(list))
	for i, e := range list {
		out[i] = site.Extension{Name: e.Name, Version: e.Version, Active: e.Active}
		if e.Source != nil {
			out[i].Source = site.ExtensionSource{Type: e.Source.Type, URL: e.Source.URL, SHA256: e.Source.SHA256,
				Ref: e.Source.Ref, Path: e.Source.Path}
		}
	}
	return out
}

func fromExtensions(list []site.Extension) []Extension {
	out := make([]Extension, len(list))
	for i, e := range list {
		out[i] = Extension{Name: e.Name, Version: e.Version, Active: e.Active}
		if e.Source != (site.ExtensionSource{}) {
			s := e.Source
			out[i].Source = &Source{Type: s.Type, URL: s.URL, SHA256: s.SHA256, Ref: s.Ref, Path: s.Path}
		}
	}
	return out
}

// Exclusions returns the WAF exclusions as the site stores them.
func (w *WAF) SiteExclusions() []site.WAFExclusion {
	if w == nil || w.Exclusions == nil {
		return nil
	}
	out := make([]site.WAFExclusion, 0, len(*w.Exclusions))
	for _, e := range *w.Exclusions {
		out = append(out, site.WAFExclusion{RuleID: e.RuleID, Path: e.Path, Argument: e.Argument})
	}
	return out
}

// Extensions returns the plugins and themes as the site stores them.
func Extensions(list []Extension) []site.Extension { return toExtensions(list) }

// FromSite returns the file of a stored site: its metadata (name, org,
// labels) and spec, without status, secrets or the admin's password hash;
// read-only fields the plan gives (php, limits) are left out, and so is a
// backup policy that only takes the plan's defaults. Applying it to the
// same site changes nothing.
func FromSite(st *site.Site) *File {
	sp := &st.Spec
	f := &File{APIVersion: APIVersion, Kind: Kind,
		Metadata: Metadata{Name: st.Metadata.Name, Org: st.Metadata.Org, Labels: cloneMap(st.Metadata.Labels)}}
	s := &f.Spec
	s.Domains = []string{st.Metadata.Name}
	s.Title = ptr(sp.Title)
	s.Plan = ptr(sp.Plan)
	if sp.Admin.Email != "" || sp.Admin.User != "" {
		s.Admin = &Admin{User: sp.Admin.User, Email: sp.Admin.Email}
	}
	if sp.CoreVersion != "" {
		s.Core = &Core{Version: sp.CoreVersion}
	}
	s.Cache = &Cache{TTLSeconds: sp.Cache.TTLSeconds}
	s.WAF = &WAF{Mode: ptr(sp.WAF.Mode), ParanoiaLevel: ptr(sp.WAF.ParanoiaLevel)}
	if len(sp.WAF.Exclusions) > 0 {
		ex := make([]Exclusion, len(sp.WAF.Exclusions))
		for i, e := range sp.WAF.Exclusions {
			ex[i] = Exclusion{RuleID: e.RuleID, Path: e.Path, Argument: e.Argument}
		}
		s.WAF.Exclusions = &ex
	}
	s.HTTPS = &HTTPS{Redirect: ptr(sp.HTTPSRedirect)}
	if b := sp.Backup; b != (site.BackupPolicy{}) {
		s.Backup = &Backup{EveryHours: ptr(b.EveryHours), Keep: &Keep{Hourly: ptr(b.Keep.Hourly), Daily: ptr(b.Keep.Daily),
			Weekly: ptr(b.Keep.Weekly), Monthly: ptr(b.Keep.Monthly)}}
	}
	if len(sp.Plugins) > 0 {
		s.Plugins = ptr(fromExtensions(sp.Plugins))
	}
	if len(sp.Themes) > 0 {
		s.Themes = ptr(fromExtensions(sp.Themes))
	}
	if len(sp.Options) > 0 {
		s.Options = ptr(cloneMap(sp.Options))
	}
	if len(sp.Constants) > 0 {
		s.Constants = ptr(cloneMap(sp.Constants))
	}
	return f
}

func ptr[T any](v T) *T { return &v }

// MarshalYAML encodes f as the YAML `aipress site get -o yaml` prints
// (fields in the file's order, two-space indentation).
func (f *File) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode site file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode site file: %w", err)
	}
	return b.Bytes(), nil
}
