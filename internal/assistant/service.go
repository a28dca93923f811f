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
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/aipress/aipress/internal/api"
)

// Defaults of a Service.
const (
	DefaultRatePerMinute    = 20
	DefaultMaxSteps         = 8
	DefaultTTL              = time.Hour
	DefaultMaxPerUser       = 20
	DefaultMaxConversations = 5000
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// API serves the calls the assistant makes, in process: each goes
	// through the API's authentication, authorization and audit with the
	// caller's credential. Required.
	API http.Handler
	// Model answers messages; nil: the offline engine (Parse, Run).
	Model Model
	// RatePerMinute is how many messages (chat and confirm) one user may
	// send a minute (burst as many). Zero: DefaultRatePerMinute; negative:
	// no limit.
	RatePerMinute int
	// MaxSteps caps the model calls of one message (DefaultMaxSteps).
	MaxSteps int
	// TTL: a conversation is forgotten this long after its last message
	// (DefaultTTL). MaxPerUser and MaxConversations bound how many are
	// kept per owner and in all; past them the least recently used go.
	TTL                          time.Duration
	MaxPerUser, MaxConversations int
	Clock                        func() time.Time
	Logger                       *slog.Logger
	// Tools: nil means Tools().
	Tools map[string]*Tool
}

// Service is the assistant behind /v1/assistant (it implements
// api.Assistant): conversations in memory, owned by their user, a
// per-user rate limit, and the agent loop that runs a model's tool calls
// through a Layer (read and write tools at once, destructive or costly ones
// as proposals the user confirms).
type Service struct {
	cfg   ServiceConfig
	tools []*Tool
	hc    *http.Client

	mu       sync.Mutex
	convs    map[string]*conversation
	limiters map[string]*rate.Limiter
}

type conversation struct {
	id, owner string
	layer     *Layer

	// turn serialises the answers of one conversation.
	turn sync.Mutex
	// Under Service.mu:
	lastUsed time.Time
	// Under turn:
	history   []Message
	calls     int
	proposals map[string]proposal
}

type proposal struct {
	tool    string
	args    map[string]any
	summary string
}

var _ api.Assistant = (*Service)(nil)

// NewService returns a Service for cfg.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.API == nil {
		return nil, errors.New("assistant: ServiceConfig.API is required")
	}
	if cfg.Tools == nil {
		t, err := Tools()
		if err != nil {
			return nil, err
		}
		cfg.Tools = t
	}
	if cfg.RatePerMinute == 0 {
		cfg.RatePerMinute = DefaultRatePerMinute
	}
	if cfg.MaxSteps <= 0 {
		cfg.MaxSteps = DefaultMaxSteps
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.MaxConversations <= 0 {
		cfg.MaxConversations = DefaultMaxConversations
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, convs: map[string]*conversation{}, limiters: map[string]*rate.Limiter{},
		hc: &http.Client{Transport: handlerTransport{cfg.API}}}
	for _, n := range Names(cfg.Tools) {
		s.tools = append(s.tools, cfg.Tools[n])
	}
	return s, nil
}

// Info implements api.Assistant.
func (s *Service) Info() api.AssistantInfo {
	in := api.AssistantInfo{Provider: "offline", ConfirmRequired: true, RateLimitPerMinute: max(s.cfg.RatePerMinute, 0)}
	if s.cfg.Model != nil {
		in.Provider, in.Model = s.cfg.Model.Provider(), s.cfg.Model.Name()
	}
	return in
}

// allow takes one message from owner's budget.
func (s *Service) allow(owner string) error {
	if s.cfg.RatePerMinute < 0 {
		return nil
	}
	now := s.cfg.Clock()
	s.mu.Lock()
	lim := s.limiters[owner]
	if lim == nil {
		if len(s.limiters) >= 4*s.cfg.MaxConversations {
			// Forget the users whose budget is full again.
			for k, l := range s.limiters {
				if l.TokensAt(now) >= float64(l.Burst()) {
					delete(s.limiters, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(s.cfg.RatePerMinute)), s.cfg.RatePerMinute)
		s.limiters[owner] = lim
	}
	s.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return api.TooManyRequests(fmt.Sprintf("more than %d assistant messages a minute; try again later", s.cfg.RatePerMinute), d)
	}
	return nil
}

// conversation returns the caller's conversation id, or a new one for "".
// Another owner's, or an expired one, is a 404.
func (s *Service) conversation(caller api.AssistantCaller, id string, create bool) (*conversation, error) {
	now := s.cfg.Clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.convs {
		if now.Sub(c.lastUsed) >= s.cfg.TTL {
			delete(s.convs, k)
		}
	}
	if id != "" || !create {
		c := s.convs[id]
		if c == nil || c.owner != caller.Owner {
			return nil, api.NotFound(fmt.Sprintf("conversation %q not found (conversations end an hour after their last message)", id))
		}
		c.lastUsed = now
		c.layer.SetToken(caller.Secret)
		return c, nil
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id = "cnv-" + hex.EncodeToString(b[:])
	l, err := NewLayer(Config{BaseURL: "http://aipress.internal", Token: caller.Secret, Conversation: id,
		HTTPClient: s.hc, Tools: s.cfg.Tools})
	if err != nil {
		return nil, err
	}
	c := &conversation{id: id, owner: caller.Owner, layer: l, lastUsed: now, proposals: map[string]proposal{}}
	// Bounds: the owner's oldest beyond MaxPerUser, everyone's oldest
	// beyond MaxConversations.
	var mine, all []*conversation
	for _, o := range s.convs {
		all = append(all, o)
		if o.owner == caller.Owner {
			mine = append(mine, o)
		}
	}
	evict := func(cs []*conversation, keep int) {
		sort.Slice(cs, func(i, j int) bool { return cs[i].lastUsed.Before(cs[j].lastUsed) })
		for len(cs) > keep {
			delete(s.convs, cs[0].id)
			cs = cs[1:]
		}
	}
	evict(mine, s.cfg.MaxPerUser-1)
	if len(s.convs) >= s.cfg.MaxConversations {
		all = all[:0]
		for _, o := range s.convs {
			all = append(all, o)
		}
		evict(all, s.cfg.MaxConversations-1)
	}
	s.convs[id] = c
	return c, nil
}

// Chat implements api.Assistant.
func (s *Service) Chat(ctx context.Context, caller api.AssistantCaller, convID, message string) (api.AssistantStream, error) {
	c, err := s.conversation(caller, convID, true)
	if err != nil {
		return nil, err
	}
	if err := s.allow(caller.Owner); err != nil {
		return nil, err
	}
	return func(ctx context.Context, emit func(api.AssistantEvent) error) {
		c.turn.Lock()
		defer c.turn.Unlock()
		ctx = withRemoteAddr(ctx, caller.RemoteAddr)
		e := &emitter{emit: emit}
		e.send(api.AssistantEvent{Type: api.EventConversation, ID: c.id})
		if s.cfg.Model == nil {
			s.offline(ctx, c, message, e)
		} else {
			s.agent(ctx, c, message, e)
		}
		e.send(api.AssistantEvent{Type: api.EventDone})
	}, nil
}

// Confirm implements api.Assistant.
func (s *Service) Confirm(ctx context.Context, caller api.AssistantCaller, convID, id string) (api.AssistantStream, error) {
	c, err := s.conversation(caller, convID, false)
	if err != nil {
		return nil, err
	}
	if !c.layer.Pending(id) {
		return nil, api.NotFound(fmt.Sprintf("proposal %q not found in conversation %s (used, cancelled or never made)", id, convID))
	}
	if err := s.allow(caller.Owner); err != nil {
		return nil, err
	}
	return func(ctx context.Context, emit func(api.AssistantEvent) error) {
		c.turn.Lock()
		defer c.turn.Unlock()
		ctx = withRemoteAddr(ctx, caller.RemoteAddr)
		e := &emitter{emit: emit}
		e.send(api.AssistantEvent{Type: api.EventConversation, ID: c.id})
		p := c.proposals[id]
		delete(c.proposals, id)
		callID := c.nextCall()
		e.send(api.AssistantEvent{Type: api.EventToolCall, ID: callID, Tool: p.tool, Args: p.args})
		res, err := c.layer.Confirm(ctx, id)
		content := e.result(callID, p.tool, res, err)
		var text string
		if err != nil {
			text = fmt.Sprintf("%s failed: %v", p.tool, err)
		} else {
			text = fmt.Sprintf("Done: %s (HTTP %d).", strings.TrimSuffix(p.summary, " — needs confirmation"), res.Status)
		}
		e.send(api.AssistantEvent{Type: api.EventText, Text: text})
		b, _ := json.Marshal(content)
		c.history = append(c.history, Message{Role: RoleModel,
			Text: fmt.Sprintf("[The user confirmed proposal %s (%s); its result: %s]", id, p.summary, b)})
		e.send(api.AssistantEvent{Type: api.EventDone})
	}, nil
}

// Cancel implements api.Assistant.
func (s *Service) Cancel(ctx context.Context, caller api.AssistantCaller, convID, id string) error {
	c, err := s.conversation(caller, convID, false)
	if err != nil {
		return err
	}
	if !c.layer.Discard(id) {
		return api.NotFound(fmt.Sprintf("proposal %q not found in conversation %s", id, convID))
	}
	c.turn.Lock()
	p := c.proposals[id]
	delete(c.proposals, id)
	c.history = append(c.history, Message{Role: RoleModel, Text: fmt.Sprintf("[The user cancelled proposal %s (%s).]", id, p.summary)})
	c.turn.Unlock()
	return nil
}

func (c *conversation) nextCall() string {
	c.calls++
	return fmt.Sprintf("call-%d", c.calls)
}

// emitter sends events until the client goes away.
type emitter struct {
	emit func(api.AssistantEvent) error
	gone bool
}

func (e *emitter) send(ev api.AssistantEvent) {
	if e.gone {
		return
	}
	if err := e.emit(ev); err != nil {
		e.gone = true
	}
}

// result emits a tool_result (or a proposal) for a call and returns what
// the model is told about it.
func (e *emitter) result(callID, tool string, res *Result, err error) map[string]any {
	if err != nil {
		ev := api.AssistantEvent{Type: api.EventToolResult, ID: callID, Tool: tool, Error: err.Error()}
		var ae *APIError
		if errors.As(err, &ae) {
			ev.Status = ae.Status
		}
		e.send(ev)
		return map[string]any{"error": err.Error()}
	}
	if res.Proposal != nil {
		e.send(api.AssistantEvent{Type: api.EventProposal, ID: res.Proposal.ID, Tool: tool,
			Summary: res.Proposal.Summary})
		return map[string]any{"proposal": res.Proposal.ID, "summary": res.Proposal.Summary,
			"status": "not performed: waiting for the user's confirmation in the user interface"}
	}
	e.send(api.AssistantEvent{Type: api.EventToolResult, ID: callID, Tool: tool, Status: res.Status, Result: res.Data})
	return map[string]any{"status": res.Status, "result": res.Data}
}

// call runs one tool call and emits its events.
func (s *Service) call(ctx context.Context, c *conversation, e *emitter, tool string, args map[string]any) map[string]any {
	callID := c.nextCall()
	// A tool that needs confirmation is only proposed: no call card.
	if t := c.layer.Tool(tool); t == nil || !t.NeedsConfirm(args) {
		e.send(api.AssistantEvent{Type: api.EventToolCall, ID: callID, Tool: tool, Args: args})
	}
	res, err := c.layer.Call(ctx, tool, args)
	if err == nil && res.Proposal != nil {
		c.proposals[res.Proposal.ID] = proposal{tool: tool, args: args, summary: res.Proposal.Summary}
		e.send(api.AssistantEvent{Type: api.EventProposal, ID: res.Proposal.ID, Tool: tool, Args: args,
			Summary: res.Proposal.Summary})
		return map[string]any{"proposal": res.Proposal.ID, "summary": res.Proposal.Summary,
			"status": "not performed: waiting for the user's confirmation in the user interface"}
	}
	return e.result(callID, tool, res, err)
}

// agent runs the model loop for one message.
func (s *Service) agent(ctx context.Context, c *conversation, message string, e *emitter) {
	c.history = append(c.history, Message{Role: RoleUser, Text: message})
	for range s.cfg.MaxSteps {
		rep, err := s.cfg.Model.Generate(ctx, &ModelRequest{System: SystemPrompt, History: c.history, Tools: s.tools},
			func(chunk string) {
				if chunk != "" {
					e.send(api.AssistantEvent{Type: api.EventText, Text: chunk})
				}
			})
		if err != nil {
			s.cfg.Logger.Warn("assistant model failed", "conversation", c.id, "provider", s.cfg.Model.Provider(), "err", err)
			e.send(api.AssistantEvent{Type: api.EventError, Message: "the model failed: " + err.Error()})
			// Keep the history answerable: a user message must not
			// be followed by another one without an answer.
			c.history = append(c.history, Message{Role: RoleModel, Text: "[no answer: the model failed]"})
			return
		}
		c.history = append(c.history, Message{Role: RoleModel, Text: rep.Text, ToolCalls: rep.ToolCalls})
		if len(rep.ToolCalls) == 0 {
			return
		}
		results := make([]ToolResult, 0, len(rep.ToolCalls))
		for _, tc := range rep.ToolCalls {
			content := s.call(ctx, c, e, tc.Name, tc.Args)
			results = append(results, ToolResult{CallID: tc.ID, Name: tc.Name, Content: content})
		}
		c.history = append(c.history, Message{Role: RoleTool, ToolResults: results})
		if e.gone {
			return
		}
	}
	e.send(api.AssistantEvent{Type: api.EventError,
		Message: fmt.Sprintf("stopped after %d model steps without a final answer", s.cfg.MaxSteps)})
}

// offline answers with the offline engine: Parse the message, Run the plan.
func (s *Service) offline(ctx context.Context, c *conversation, message string, e *emitter) {
	plan, err := Parse(message)
	if err != nil {
		e.send(api.AssistantEvent{Type: api.EventText, Text: err.Error()})
		return
	}
	results, runErr := Run(ctx, c.layer, plan)
	var lines []string
	proposals := 0
	for _, r := range results {
		callID := c.nextCall()
		// A proposal gets its own card, not a call card.
		if r.Error != "" || r.Result == nil || r.Result.Proposal == nil {
			e.send(api.AssistantEvent{Type: api.EventToolCall, ID: callID, Tool: r.Step.Tool, Args: r.Args})
		}
		switch {
		case r.Error != "":
			var ae *APIError
			ev := api.AssistantEvent{Type: api.EventToolResult, ID: callID, Tool: r.Step.Tool, Error: r.Error}
			if errors.As(runErr, &ae) {
				ev.Status = ae.Status
			}
			e.send(ev)
			lines = append(lines, fmt.Sprintf("%s failed: %s", r.Step.Tool, r.Error))
		case r.Result.Proposal != nil:
			p := r.Result.Proposal
			c.proposals[p.ID] = proposal{tool: r.Step.Tool, args: r.Args, summary: p.Summary}
			e.send(api.AssistantEvent{Type: api.EventProposal, ID: p.ID, Tool: r.Step.Tool, Args: r.Args, Summary: p.Summary})
			proposals++
		default:
			e.send(api.AssistantEvent{Type: api.EventToolResult, ID: callID, Tool: r.Step.Tool, Status: r.Result.Status, Result: r.Result.Data})
			lines = append(lines, fmt.Sprintf("%s: done (HTTP %d).", r.Step.Tool, r.Result.Status))
		}
	}
	if runErr != nil && (len(results) == 0 || results[len(results)-1].Error == "") {
		lines = append(lines, "Stopped: "+runErr.Error())
	}
	if proposals > 0 {
		lines = append(lines, fmt.Sprintf("%d step(s) wait for your confirmation.", proposals))
	}
	e.send(api.AssistantEvent{Type: api.EventText, Text: strings.Join(lines, "\n")})
}

// handlerTransport serves the assistant's API calls with the API handler
// itself, in process: they pass through its authentication, authorization
// and audit like any request, without a network hop.
type handlerTransport struct{ h http.Handler }

type remoteAddrKey struct{}

func withRemoteAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteAddrKey{}, addr)
}

// RoundTrip implements http.RoundTripper.
func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.RequestURI = r.URL.RequestURI()
	if a, _ := req.Context().Value(remoteAddrKey{}).(string); a != "" {
		r.RemoteAddr = a
	} else {
		r.RemoteAddr = "127.0.0.1:0"
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header, Request: req,
		Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len())}, nil
}

// recorder keeps what the API handler answered.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
