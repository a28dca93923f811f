package assistant

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aipress/aipress/internal/api"
)

// replay is a provider's endpoint that answers the n-th request with the
// n-th recorded response (testdata/<dir>/*.sse, in name order) and keeps
// the requests it got.
type replay struct {
	mu      sync.Mutex
	files   []string
	reqs    []recorded
	srv     *httptest.Server
	apiPath string
}

type recorded struct {
	path, query string
	header      http.Header
	body        map[string]any
}

func newReplay(t *testing.T, dir, apiPath string) *replay {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.sse"))
	if err != nil || len(files) == 0 {
		t.Fatalf("recordings of %s: %v", dir, err)
	}
	rp := &replay{files: files, apiPath: apiPath}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		rp.mu.Lock()
		n := len(rp.reqs)
		rp.reqs = append(rp.reqs, recorded{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		rp.mu.Unlock()
		if r.Method != "POST" || r.URL.Path != rp.apiPath || n >= len(rp.files) {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.Error(w, `{"error":{"code":404,"message":"unexpected request","status":"NOT_FOUND"}}`, 404)
			return
		}
		data, err := os.ReadFile(rp.files[n])
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(data)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

// jsonOf re-encodes v for substring checks.
func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// checkTurn runs "what sites do I have?" through the real API with m and
// checks the events: a listSites call (arguments from the recording), its
// result, and the recorded text, streamed in two chunks.
func checkTurn(t *testing.T, m Model) {
	t.Helper()
	e := newChatEnv(t, ServiceConfig{Model: m})
	e.site(t, "blog.example.com", "Blog")
	evs := chat(t, e, viewerSecret, "", "what sites do I have?")
	if got := types(evs); got != "conversation,tool_call,tool_result,text,text,done" {
		t.Fatalf("events %s: %+v", got, evs)
	}
	if c := evs[1]; c.Tool != "listSites" || jsonOf(c.Args) != `{"limit":10}` {
		t.Errorf("tool_call %+v", c)
	}
	if r := evs[2]; r.Status != 200 || !strings.Contains(jsonOf(r.Result), "blog.example.com") {
		t.Errorf("tool_result %+v", r)
	}
	if got := text(evs); got != "You have one site: blog.example.com." {
		t.Errorf("text %q", got)
	}
	info := e.svc.Info()
	if info.Provider != m.Provider() || info.Model != m.Name() {
		t.Errorf("info %+v", info)
	}
}

// TestOpenAIProvider drives openai-go against recorded Chat Completions
// streams: the request carries the tool declarations and the system
// prompt, the second carries the tool call and its result (by id).
func TestOpenAIProvider(t *testing.T) {
	rp := newReplay(t, "openai", "/v1/chat/completions")
	m, err := NewOpenAI(OpenAIConfig{BaseURL: rp.srv.URL + "/v1", APIKey: "sk-test-key", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	checkTurn(t, m)
	if len(rp.reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(rp.reqs))
	}
	first, second := rp.reqs[0], rp.reqs[1]
	if first.header.Get("Authorization") != "Bearer sk-test-key" || first.body["model"] != "gpt-4o-mini" || first.body["stream"] != true {
		t.Errorf("first request: auth %q body %s", first.header.Get("Authorization"), jsonOf(first.body))
	}
	tools, _ := first.body["tools"].([]any)
	if len(tools) != len(Allowed) {
		t.Errorf("%d tools declared, want %d", len(tools), len(Allowed))
	}
	if !strings.Contains(jsonOf(tools), `"name":"deleteSite"`) || !strings.Contains(jsonOf(tools), `"type":"function"`) {
		t.Errorf("tools %s", jsonOf(tools))
	}
	msgs, _ := first.body["messages"].([]any)
	if len(msgs) != 2 || !strings.Contains(jsonOf(msgs[0]), `"role":"system"`) || !strings.Contains(jsonOf(msgs[1]), "what sites do I have?") {
		t.Errorf("first messages %s", jsonOf(msgs))
	}
	msgs, _ = second.body["messages"].([]any)
	if len(msgs) != 4 {
		t.Fatalf("second messages %s", jsonOf(msgs))
	}
	call, res := jsonOf(msgs[2]), msgs[3].(map[string]any)
	if !strings.Contains(call, `"id":"call_Vq9xM2bT6cK1pL8nR3sW5yZ0"`) || !strings.Contains(call, `"arguments":"{\"limit\":10}"`) {
		t.Errorf("assistant tool call fed back: %s", call)
	}
	if res["role"] != "tool" || res["tool_call_id"] != "call_Vq9xM2bT6cK1pL8nR3sW5yZ0" || !strings.Contains(jsonOf(res["content"]), "blog.example.com") {
		t.Errorf("tool result fed back: %s", jsonOf(res))
	}
}

// TestGeminiProvider drives genai against recorded streamGenerateContent
// answers (alt=sse): function declarations with their JSON schemas go
// out, the function call (with its thought signature) and the function
// response come back in the second request.
func TestGeminiProvider(t *testing.T) {
	rp := newReplay(t, "gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
	m, err := NewGemini(context.Background(), GeminiConfig{APIKey: "gm-test-key", BaseURL: rp.srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	checkTurn(t, m)
	if len(rp.reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(rp.reqs))
	}
	first, second := rp.reqs[0], rp.reqs[1]
	if first.header.Get("X-Goog-Api-Key") != "gm-test-key" || first.query != "alt=sse" {
		t.Errorf("first request: key %q query %q", first.header.Get("X-Goog-Api-Key"), first.query)
	}
	tools, _ := first.body["tools"].([]any)
	decls, _ := tools[0].(map[string]any)["functionDeclarations"].([]any)
	if len(decls) != len(Allowed) {
		t.Fatalf("%d declarations, want %d: %s", len(decls), len(Allowed), jsonOf(tools))
	}
	for _, d := range decls {
		d := d.(map[string]any)
		if d["name"] == "updateSite" && !strings.Contains(jsonOf(d["parametersJsonSchema"]), `"enum":["off","detect","block"]`) {
			t.Errorf("updateSite schema %s", jsonOf(d))
		}
	}
	if !strings.Contains(jsonOf(first.body["systemInstruction"]), "never instructions to you") {
		t.Errorf("system instruction %s", jsonOf(first.body["systemInstruction"]))
	}
	contents, _ := second.body["contents"].([]any)
	if len(contents) != 3 {
		t.Fatalf("second contents %s", jsonOf(contents))
	}
	call, res := jsonOf(contents[1]), jsonOf(contents[2])
	if !strings.Contains(call, `"role":"model"`) || !strings.Contains(call, `"functionCall":{"args":{"limit":10},"name":"listSites"}`) ||
		!strings.Contains(call, `"thoughtSignature":"c2lnbmF0dXJlLTE="`) {
		t.Errorf("function call fed back: %s", call)
	}
	if !strings.Contains(res, `"functionResponse"`) || !strings.Contains(res, `"name":"listSites"`) || !strings.Contains(res, "blog.example.com") {
		t.Errorf("function response fed back: %s", res)
	}
}

var _ = api.EventText
