package assistant

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// Layer runs tools for one caller in one conversation.
type Layer struct {
	baseURL string
	token   string
	conv    string
	hc      *http.Client
	tools   map[string]*Tool

	mu      sync.Mutex
	seq     int
	pending map[string]Request
}

// Config configures a Layer.
type Config struct {
	BaseURL string // the API, e.g. http://127.0.0.1:7070
	Token   string // the caller's own bearer token
	// Conversation ties the calls together in the audit log: every
	// request ID starts with it. Letters, digits, '.', '_', ':', '-';
	// empty: a random one.
	Conversation string
	HTTPClient   *http.Client // nil: http.DefaultClient
	// Tools: nil means Tools().
	Tools map[string]*Tool
}

var convRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// NewLayer returns a Layer for cfg.
func NewLayer(cfg Config) (*Layer, error) {
	if cfg.BaseURL == "" || cfg.Token == "" {
		return nil, errors.New("assistant: the API URL and the caller's token are required")
	}
	if cfg.Conversation == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Conversation = "conv-" + hex.EncodeToString(b[:])
	}
	if !convRe.MatchString(cfg.Conversation) {
		return nil, fmt.Errorf("assistant: conversation id %q: use 1-64 letters, digits, '.', '_', ':' or '-'", cfg.Conversation)
	}
	if cfg.Tools == nil {
		t, err := Tools()
		if err != nil {
			return nil, err
		}
		cfg.Tools = t
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Layer{baseURL: strings.TrimRight(cfg.BaseURL, "/"), token: cfg.Token, conv: cfg.Conversation,
		hc: hc, tools: cfg.Tools, pending: map[string]Request{}}, nil
}

// Conversation returns the conversation id.
func (l *Layer) Conversation() string { return l.conv }

// Tools returns the layer's tools by name.
func (l *Layer) Tools() map[string]*Tool { return l.tools }

// Request is one HTTP call a tool makes.
type Request struct {
	Tool   string         `json:"tool"`
	Method string         `json:"method"`
	Path   string         `json:"path"` // with the query
	Body   map[string]any `json:"body,omitempty"`
}

// Proposal is a destructive or costly call waiting for the user's confirmation.
type Proposal struct {
	ID      string  `json:"id"` // pass to Confirm
	Request Request `json:"request"`
	Summary string  `json:"summary"`
}

// Result is what a tool call gave.
type Result struct {
	Tool string `json:"tool"`
	// Proposal is set (and nothing was called) for a destructive or costly tool.
	Proposal *Proposal `json:"proposal,omitempty"`
	Status   int       `json:"status,omitempty"`
	// Data is the API's answer, redacted.
	Data      any    `json:"data,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// APIError is an error the API answered: its status and message, shown as
// they are (403 means the caller's rights do not allow the call).
type APIError struct {
	Tool    string
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s: the API answered %d %s: %s", e.Tool, e.Status, e.Code, e.Message)
	if e.Status == http.StatusForbidden {
		msg += " (your role does not allow this)"
	}
	return msg
}

// Call runs tool with args; a destructive or costly tool (Effect.NeedsConfirm)
// returns a Proposal instead.
func (l *Layer) Call(ctx context.Context, tool string, args map[string]any) (*Result, error) {
	req, t, err := l.request(tool, args)
	if err != nil {
		return nil, err
	}
	if t.NeedsConfirm(args) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := "prp-" + hex.EncodeToString(b[:])
		l.mu.Lock()
		l.pending[id] = req
		l.mu.Unlock()
		return &Result{Tool: tool, Proposal: &Proposal{ID: id, Request: req, Summary: summarize(t, args)}}, nil
	}
	return l.do(ctx, req)
}

// Tool returns the layer's tool of that name, or nil.
func (l *Layer) Tool(name string) *Tool { return l.tools[name] }

// Pending reports whether the proposal id waits in this conversation.
func (l *Layer) Pending(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pending[id]
	return ok
}

// Discard drops the proposal id; it reports whether it was pending.
func (l *Layer) Discard(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pending[id]
	delete(l.pending, id)
	return ok
}

// SetToken changes the credential later calls present (a conversation
// outlives one request; each request brings the caller's current one).
func (l *Layer) SetToken(token string) {
	l.mu.Lock()
	l.token = token
	l.mu.Unlock()
}

// Confirm performs the proposal id (once; a second Confirm fails).
func (l *Layer) Confirm(ctx context.Context, id string) (*Result, error) {
	l.mu.Lock()
	req, ok := l.pending[id]
	delete(l.pending, id)
	l.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no pending proposal %q in this conversation", id)
	}
	return l.do(ctx, req)
}

func summarize(t *Tool, args map[string]any) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		v, _ := json.Marshal(args[k])
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	// "createBackup — Back the site up now (a backup job on its shard):
	// name="x" — needs confirmation": the tool, what the API says it
	// does, then its arguments.
	return fmt.Sprintf("%s — %s: %s — needs confirmation", t.Name, strings.TrimSuffix(t.Description, "."), b.String())
}

func (l *Layer) request(tool string, args map[string]any) (Request, *Tool, error) {
	t, ok := l.tools[tool]
	if !ok {
		return Request{}, nil, fmt.Errorf("unknown tool %q", tool)
	}
	if err := t.Validate(args); err != nil {
		return Request{}, nil, err
	}
	path := t.Path
	q := url.Values{}
	for _, p := range t.Params {
		v, ok := args[p.Name]
		if !ok {
			continue
		}
		s := fmt.Sprint(v)
		if p.In == "path" {
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(s))
		} else {
			q.Set(p.Name, s)
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var body map[string]any
	for _, k := range t.BodyProps {
		if v, ok := args[k]; ok {
			if body == nil {
				body = map[string]any{}
			}
			body[k] = v
		}
	}
	return Request{Tool: tool, Method: t.Method, Path: path, Body: body}, t, nil
}

func (l *Layer) do(ctx context.Context, r Request) (*Result, error) {
	var rd io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: encode body: %w", r.Tool, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, l.baseURL+r.Path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Tool, err)
	}
	l.mu.Lock()
	l.seq++
	reqID := fmt.Sprintf("%s-%d", l.conv, l.seq)
	token := l.token
	l.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(api.HeaderChannel, store.ChannelAssistant)
	req.Header.Set(api.HeaderRequestID, reqID)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", r.Tool, r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", r.Tool, err)
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return nil, &APIError{Tool: r.Tool, Status: resp.StatusCode, Code: eb.Error.Code, Message: Redact(eb.Error.Message).(string)}
		}
		return nil, &APIError{Tool: r.Tool, Status: resp.StatusCode, Code: "http_error", Message: resp.Status}
	}
	var v any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s: decode answer: %w", r.Tool, err)
		}
	}
	return &Result{Tool: r.Tool, Status: resp.StatusCode, Data: Redact(v), RequestID: reqID}, nil
}

// Redacted replaces every secret Redact finds.
const Redacted = "[redacted]"

// secretWords are the words of a JSON key that name a secret.
var secretWords = map[string]bool{"password": true, "passwd": true, "passphrase": true, "token": true,
	"secret": true, "key": true, "hash": true, "salt": true, "salts": true, "credential": true,
	"credentials": true, "private": true, "otp": true}

// secretValue matches the platform's secret formats inside any string:
// API tokens (aip_), invitations (inv_), password resets (aipr_).
var secretValue = regexp.MustCompile(`\b(aip|inv|aipr)_[A-Za-z0-9_-]{6,}`)

// SecretKey reports whether a JSON key names a secret: its last word (split
// at '_', '-' and lower-to-upper case changes) is one of password, token,
// secret, key, hash, salt, ..., or it contains "password" or "secret".
func SecretKey(k string) bool {
	lk := strings.ToLower(k)
	if strings.Contains(lk, "password") || strings.Contains(lk, "secret") {
		return true
	}
	var words []string
	start := 0
	for i := 1; i <= len(k); i++ {
		if i == len(k) || k[i] == '_' || k[i] == '-' || (k[i] >= 'A' && k[i] <= 'Z' && k[i-1] >= 'a' && k[i-1] <= 'z') {
			if w := strings.Trim(strings.ToLower(k[start:i]), "_-"); w != "" {
				words = append(words, w)
			}
			start = i
		}
	}
	return len(words) > 0 && secretWords[words[len(words)-1]]
}

// Redact returns v (decoded JSON) with every secret replaced by Redacted:
// the values of keys that name secrets (SecretKey) and any aip_/inv_/aipr_
// secret inside a string.
func Redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if SecretKey(k) && e != nil && e != "" {
				out[k] = Redacted
				continue
			}
			out[k] = Redact(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Redact(e)
		}
		return out
	case string:
		return secretValue.ReplaceAllString(x, Redacted)
	}
	return v
}
