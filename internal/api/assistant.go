package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxAssistantMessage is the longest message POST /v1/assistant/chat
// accepts, in characters.
const MaxAssistantMessage = 4000

// Assistant is the chat assistant behind /v1/assistant (implemented by
// internal/assistant, which imports this package; hence the interface).
//
// Contract: Chat and Confirm check everything that can fail before an
// answer starts (the caller's rate limit: TooManyRequests; a conversation
// or proposal that does not exist or is another owner's: an HTTPError 404)
// and return an error for it; otherwise they return a stream that the API
// runs while it writes text/event-stream. The stream emits events in order
// ("conversation" first, "done" last, which the API adds itself if the
// stream did not); failures once streaming are "error" events, not errors.
// Emit returns an error when the client went away; the stream should then
// stop. Cancel discards a proposal (404 as for Confirm). Every method is
// called with the caller's identity and credential: the assistant acts with
// exactly the caller's rights.
type Assistant interface {
	Info() AssistantInfo
	Chat(ctx context.Context, caller AssistantCaller, conversation, message string) (AssistantStream, error)
	Confirm(ctx context.Context, caller AssistantCaller, conversation, proposal string) (AssistantStream, error)
	Cancel(ctx context.Context, caller AssistantCaller, conversation, proposal string) error
}

// AssistantStream runs one answer, emitting its events.
type AssistantStream func(ctx context.Context, emit func(AssistantEvent) error)

// AssistantCaller is who talks to the assistant.
type AssistantCaller struct {
	// Owner owns the caller's conversations: "user:<id>" for a user's
	// tokens (sessions and API tokens alike), "token:<id>" for others.
	Owner string
	// TokenID is the token the request authenticated with.
	TokenID string
	// Secret is that token's secret (bearer, or the session cookie's):
	// the assistant's calls present it, so they carry the caller's rights.
	Secret string
	// RemoteAddr is the request's peer, passed on to the assistant's
	// calls so the audit log records the caller's address.
	RemoteAddr string
}

// AssistantInfo is the body of GET /v1/assistant.
type AssistantInfo struct {
	Provider           string `json:"provider"` // offline, gemini or openai
	Model              string `json:"model"`
	ConfirmRequired    bool   `json:"confirm_required"`
	RateLimitPerMinute int    `json:"rate_limit_per_minute"`
}

// Assistant event types (AssistantEvent.Type).
const (
	EventConversation = "conversation"
	EventText         = "text"
	EventToolCall     = "tool_call"
	EventToolResult   = "tool_result"
	EventProposal     = "proposal"
	EventError        = "error"
	EventDone         = "done"
)

// AssistantEvent is one event of the chat stream (one `data:` line).
type AssistantEvent struct {
	Type    string         `json:"type"`
	ID      string         `json:"id,omitempty"`
	Text    string         `json:"text,omitempty"`
	Tool    string         `json:"tool,omitempty"`
	Args    map[string]any `json:"args,omitempty"`
	Status  int            `json:"status,omitempty"`
	Result  any            `json:"result,omitempty"`
	Error   string         `json:"error,omitempty"`
	Summary string         `json:"summary,omitempty"`
	Message string         `json:"message,omitempty"`
}

// TooManyRequests is a 429 rate_limited error whose answer carries
// Retry-After (retry rounded up to whole seconds).
func TooManyRequests(msg string, retry time.Duration) HTTPError {
	return HTTPError{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Msg: msg, Err: tooMany{retry}}
}

// NotFound is a 404 not_found error with msg.
func NotFound(msg string) HTTPError {
	return HTTPError{Status: http.StatusNotFound, Code: CodeNotFound, Msg: msg}
}

func (s *server) assistant() (Assistant, error) {
	if s.cfg.Assistant == nil {
		return nil, errorf(http.StatusNotImplemented, CodeUnimplemented, "the assistant is not configured on this server")
	}
	return s.cfg.Assistant, nil
}

func assistantCaller(c *call) AssistantCaller {
	// A conversation belongs to the token (or browser session) that
	// started it, not to the user: another of the user's tokens, perhaps
	// scoped to one organisation, neither reads it nor swaps the
	// credential its calls run with.
	owner := "token:" + c.token.ID
	return AssistantCaller{Owner: owner, TokenID: c.token.ID, Secret: callerSecret(c.r), RemoteAddr: c.r.RemoteAddr}
}

func (s *server) assistantInfo(c *call) (response, error) {
	a, err := s.assistant()
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: a.Info()}, nil
}

type assistantChatRequest struct {
	Conversation string `json:"conversation"`
	Message      string `json:"message"`
}

type assistantProposalRequest struct {
	Conversation string `json:"conversation"`
	Proposal     string `json:"proposal"`
}

func (s *server) assistantChat(c *call) (response, error) {
	a, err := s.assistant()
	if err != nil {
		return response{}, err
	}
	var req assistantChatRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if strings.TrimSpace(req.Message) == "" {
		return response{}, badRequest("message is empty")
	}
	if n := utf8.RuneCountInString(req.Message); n > MaxAssistantMessage {
		return response{}, badRequest("message has %d characters; at most %d", n, MaxAssistantMessage)
	}
	st, err := a.Chat(c.r.Context(), assistantCaller(c), req.Conversation, req.Message)
	if err != nil {
		return response{}, err
	}
	return eventStream(c, st), nil
}

// proposalRequest reads the body of /confirm and /cancel.
func (s *server) proposalRequest(c *call) (Assistant, assistantProposalRequest, error) {
	var req assistantProposalRequest
	a, err := s.assistant()
	if err != nil {
		return nil, req, err
	}
	if err := decodeJSON(c.r, &req); err != nil {
		return nil, req, err
	}
	if req.Conversation == "" || req.Proposal == "" {
		return nil, req, badRequest("conversation and proposal are required")
	}
	return a, req, nil
}

func (s *server) assistantConfirm(c *call) (response, error) {
	a, req, err := s.proposalRequest(c)
	if err != nil {
		return response{}, err
	}
	st, err := a.Confirm(c.r.Context(), assistantCaller(c), req.Conversation, req.Proposal)
	if err != nil {
		return response{}, err
	}
	return eventStream(c, st), nil
}

func (s *server) assistantCancel(c *call) (response, error) {
	a, req, err := s.proposalRequest(c)
	if err != nil {
		return response{}, err
	}
	if err := a.Cancel(c.r.Context(), assistantCaller(c), req.Conversation, req.Proposal); err != nil {
		return response{}, err
	}
	return response{status: http.StatusNoContent}, nil
}

// eventStream writes st as text/event-stream: one `data: <json>` line and
// a blank line per event, flushed at once; "done" closes it.
func eventStream(c *call, st AssistantStream) response {
	// unchanged: a message changes nothing reconcilers watch (the calls
	// it makes notify them themselves).
	return response{status: http.StatusOK, contentType: "text/event-stream", unchanged: true, header: http.Header{
		"Cache-Control": {"no-cache"}, "X-Accel-Buffering": {"no"}},
		stream: func(w http.ResponseWriter) error {
			rc := http.NewResponseController(w)
			done := false
			emit := func(ev AssistantEvent) error {
				if done {
					return nil
				}
				done = ev.Type == EventDone
				b, err := json.Marshal(ev)
				if err != nil {
					return fmt.Errorf("encode event: %w", err)
				}
				if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
					return err
				}
				if err := rc.Flush(); err != nil {
					return err
				}
				// No write deadline cuts a long answer (the API
				// server sets none; this keeps it so behind a
				// server that does).
				_ = rc.SetWriteDeadline(time.Time{})
				return nil
			}
			st(c.r.Context(), emit)
			if !done {
				_ = emit(AssistantEvent{Type: EventDone})
			}
			return nil
		}}
}
