// Package assistant is the groundwork of the AIPress assistant (issue 11):
// a tool layer generated from the API's own operations, and an offline
// engine that maps plain requests to calls of those tools.
//
// The tool layer (Tools, Layer) reads the embedded OpenAPI document
// (api.OpenAPISpec) and makes one tool per allowed operation, with a JSON
// Schema of its arguments built from the operation's path and query
// parameters and its request body schema. Tools run through the real HTTP
// API with the caller's own token, so the API's authorization decides what
// the assistant may do: it never has more rights than its user. Every call
// carries X-AIPress-Channel: assistant and an X-Request-ID that starts with
// the conversation id, so the audit log ties calls to a conversation.
// Destructive or costly tools (delete, restore, clone, move, suspend;
// create a site, take a backup) are not called at once: Call returns a Proposal and only Confirm performs it.
// Results are redacted (Redact) before a model or a user sees them.
//
// What is hand-written, and why: the allow-list and each tool's effect
// (read, write, costly, destructive) are policy, not something the spec says; the
// spec walk is small and specific (local $refs, path/query parameters, one
// JSON body) so a general OpenAPI library would add weight without saving
// code. The offline engine (Parse) is a deterministic rule set on purpose:
// it must work without a model and give the same answer every time.
package assistant

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/api"
)

// Effect says what a tool does to the platform.
type Effect string

const (
	// Read tools only look.
	Read Effect = "read"
	// Write tools change something that is easy to change back.
	Write Effect = "write"
	// Costly tools add something that costs: a site (a plan slot, a
	// share of a shard) or a backup (storage, the site's I/O). Like
	// destructive ones, they need the user's confirmation.
	Costly Effect = "costly"
	// Destructive tools delete, overwrite or interrupt: they need the
	// user's confirmation (Proposal, Confirm).
	Destructive Effect = "destructive"
)

// NeedsConfirm reports whether a tool of this effect is only proposed
// until the user confirms it.
func (e Effect) NeedsConfirm() bool { return e == Costly || e == Destructive }

// SensitiveArgs are the arguments that make a write tool's call need
// confirmation too: they weaken a site's protection (WAF mode, the HTTPS
// redirect), change what it costs (its plan) or what code it runs (its
// plugins, themes, options, must-use settings, core). A prompt injected
// into text a model reads (a site's title, say) must not turn them off on
// its own; a cache TTL or a title change runs at once.
var SensitiveArgs = map[string][]string{
	"updateSite": {"waf", "https_redirect", "plan", "plugins", "themes", "options", "constants", "core_version"},
}

// NeedsConfirm reports whether calling t with args must wait for the
// user's confirmation: its effect says so, or args set a sensitive
// argument.
func (t *Tool) NeedsConfirm(args map[string]any) bool {
	if t.Effect.NeedsConfirm() {
		return true
	}
	for _, a := range SensitiveArgs[t.Name] {
		if _, ok := args[a]; ok {
			return true
		}
	}
	return false
}

// Allowed is the curated allow-list: the operations (by operationId) the
// assistant may use and their effect.
var Allowed = map[string]Effect{
	"listSites":     Read,
	"getSite":       Read,
	"createSite":    Costly,
	"updateSite":    Write, // cache, title; WAF, HTTPS redirect and plan need confirmation (SensitiveArgs)
	"suspendSite":   Destructive,
	"resumeSite":    Write,
	"deleteSite":    Destructive,
	"purgeSite":     Write,
	"createBackup":  Costly,
	"listBackups":   Read,
	"restoreBackup": Destructive, // in place, or a clone to a new domain
	"restoreSite":   Destructive, // to a point in time: in place, or a clone to a new domain
	"moveSite":      Destructive,
	"listJobs":      Read,
	"getJob":        Read,
	"whoami":        Read,
	"listOrgs":      Read,
}

// Param is one argument that travels in the URL.
type Param struct {
	Name     string
	In       string // "path" or "query"
	Required bool
}

// Tool is one API operation the assistant may call.
type Tool struct {
	Name        string // the operationId
	Description string // the operation's summary
	Method      string // GET, POST, PATCH, DELETE
	Path        string // e.g. /v1/sites/{name}
	Effect      Effect
	Params      []Param
	// BodyProps are the request body's top-level properties; arguments
	// of these names travel in the JSON body.
	BodyProps []string
	// Schema is the JSON Schema (an object) of the tool's arguments: the
	// path and query parameters and the body's properties side by side.
	Schema map[string]any
}

// Tools reads the embedded OpenAPI document and returns the allowed
// operations' tools, by name.
func Tools() (map[string]*Tool, error) {
	return ToolsFromSpec(api.OpenAPISpec())
}

// ToolsFromSpec builds the tools from an OpenAPI 3.0 document. Every
// allowed operation must be in it.
func ToolsFromSpec(spec []byte) (map[string]*Tool, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi: %w", err)
	}
	r := resolver{doc: doc}
	tools := map[string]*Tool{}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		shared, _ := ops["parameters"].([]any)
		for method, o := range ops {
			op, ok := o.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			id, _ := op["operationId"].(string)
			eff, ok := Allowed[id]
			if !ok {
				continue
			}
			t, err := r.tool(id, strings.ToUpper(method), path, eff, op, shared)
			if err != nil {
				return nil, fmt.Errorf("operation %s: %w", id, err)
			}
			tools[id] = t
		}
	}
	for id := range Allowed {
		if tools[id] == nil {
			return nil, fmt.Errorf("operation %s is not in the API's document", id)
		}
	}
	return tools, nil
}

// Names returns the tools' names, sorted.
func Names(tools map[string]*Tool) []string {
	names := make([]string, 0, len(tools))
	for n := range tools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type resolver struct{ doc map[string]any }

// deref follows a local $ref ("#/components/...").
func (r resolver) deref(v any) (map[string]any, error) {
	m, _ := v.(map[string]any)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		if !strings.HasPrefix(ref, "#/") {
			return nil, fmt.Errorf("non-local $ref %q", ref)
		}
		var cur any = r.doc
		for _, part := range strings.Split(ref[2:], "/") {
			cm, _ := cur.(map[string]any)
			cur = cm[part]
		}
		if m, ok = cur.(map[string]any); !ok {
			return nil, fmt.Errorf("$ref %q names nothing", ref)
		}
	}
	return nil, fmt.Errorf("$ref chain too long")
}

// inline returns schema with every $ref replaced by its target, so a
// tool's schema stands alone.
func (r resolver) inline(v any, depth int) (any, error) {
	if depth > 20 {
		return nil, fmt.Errorf("schema nests too deep")
	}
	switch x := v.(type) {
	case map[string]any:
		m, err := r.deref(x)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			if k == "example" {
				continue
			}
			if out[k], err = r.inline(e, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = r.inline(e, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

func (r resolver) tool(id, method, path string, eff Effect, op map[string]any, shared []any) (*Tool, error) {
	summary, _ := op["summary"].(string)
	t := &Tool{Name: id, Description: summary, Method: method, Path: path, Effect: eff}
	props := map[string]any{}
	var required []string
	own, _ := op["parameters"].([]any)
	for _, pv := range slices.Concat(shared, own) {
		p, err := r.deref(pv)
		if err != nil {
			return nil, err
		}
		name, _ := p["name"].(string)
		in, _ := p["in"].(string)
		if in != "path" && in != "query" {
			continue
		}
		req, _ := p["required"].(bool)
		req = req || in == "path"
		s, err := r.inline(p["schema"], 0)
		if err != nil {
			return nil, err
		}
		sm, _ := s.(map[string]any)
		if sm == nil {
			sm = map[string]any{}
		}
		if d, ok := p["description"].(string); ok && sm["description"] == nil {
			sm["description"] = d
		}
		props[name] = sm
		t.Params = append(t.Params, Param{Name: name, In: in, Required: req})
		if req {
			required = append(required, name)
		}
	}
	if rb, ok := op["requestBody"].(map[string]any); ok {
		content, _ := rb["content"].(map[string]any)
		js, _ := content["application/json"].(map[string]any)
		body, err := r.deref(js["schema"])
		if err != nil {
			return nil, err
		}
		bodyReq, _ := rb["required"].(bool)
		bp, _ := body["properties"].(map[string]any)
		var breq []string
		if rs, ok := body["required"].([]any); ok {
			for _, x := range rs {
				breq = append(breq, fmt.Sprint(x))
			}
		}
		for name, s := range bp {
			if _, clash := props[name]; clash {
				return nil, fmt.Errorf("body property %q clashes with a parameter", name)
			}
			is, err := r.inline(s, 0)
			if err != nil {
				return nil, err
			}
			props[name] = is
			t.BodyProps = append(t.BodyProps, name)
		}
		sort.Strings(t.BodyProps)
		if bodyReq {
			required = append(required, breq...)
		}
	}
	sort.Strings(required)
	t.Schema = map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		t.Schema["required"] = required
	}
	return t, nil
}

// Validate checks args against the tool's schema at the top level:
// required arguments present, no unknown ones, simple types right. The API
// validates everything again; this gives a clear error before the call.
func (t *Tool) Validate(args map[string]any) error {
	props, _ := t.Schema["properties"].(map[string]any)
	for k, v := range args {
		ps, ok := props[k].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: unknown argument %q", t.Name, k)
		}
		want, _ := ps["type"].(string)
		if !typeOK(want, v) {
			return fmt.Errorf("%s: argument %q must be of type %s", t.Name, k, want)
		}
	}
	req, _ := t.Schema["required"].([]string)
	for _, k := range req {
		if _, ok := args[k]; !ok {
			return fmt.Errorf("%s: argument %q is required", t.Name, k)
		}
	}
	return nil
}

func typeOK(want string, v any) bool {
	switch want {
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer", "number":
		switch n := v.(type) {
		case int, int64:
			return true
		case float64:
			return want == "number" || n == float64(int64(n))
		case json.Number:
			return true
		}
		return false
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return true
}
