package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// OpenAIConfig configures an OpenAI-compatible model (OpenAI, Ollama's
// /v1, vLLM, ...).
type OpenAIConfig struct {
	BaseURL string // empty: OpenAI's; e.g. http://127.0.0.1:11434/v1 for Ollama
	APIKey  string // may be empty for local servers
	Model   string // required
	// HTTPClient: nil for the library's default.
	HTTPClient *http.Client
}

// OpenAI is a Model speaking the Chat Completions API (streamed).
type OpenAI struct {
	client openai.Client
	model  string
}

// NewOpenAI returns an OpenAI-compatible Model.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.Model == "" {
		return nil, errors.New("openai: a model name is required (--assistant-model)")
	}
	opts := []option.RequestOption{option.WithAPIKey(cfg.APIKey), option.WithMaxRetries(1)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	return &OpenAI{client: openai.NewClient(opts...), model: cfg.Model}, nil
}

// Provider implements Model.
func (m *OpenAI) Provider() string { return "openai" }

// Name implements Model.
func (m *OpenAI) Name() string { return m.model }

// Generate implements Model: one streamed chat completion; text deltas
// go to onText as they arrive, tool calls are accumulated.
func (m *OpenAI) Generate(ctx context.Context, req *ModelRequest, onText func(string)) (*ModelReply, error) {
	params := openai.ChatCompletionNewParams{Model: shared.ChatModel(m.model)}
	params.Messages = append(params.Messages, openai.SystemMessage(req.System))
	for _, msg := range req.History {
		switch msg.Role {
		case RoleUser:
			params.Messages = append(params.Messages, openai.UserMessage(msg.Text))
		case RoleModel:
			am := &openai.ChatCompletionAssistantMessageParam{}
			if msg.Text != "" {
				am.Content.OfString = openai.String(msg.Text)
			}
			for _, tc := range msg.ToolCalls {
				args, err := json.Marshal(tc.Args)
				if err != nil {
					return nil, fmt.Errorf("openai: encode tool call: %w", err)
				}
				am.ToolCalls = append(am.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: tc.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: string(args)}}})
			}
			params.Messages = append(params.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: am})
		case RoleTool:
			for _, r := range msg.ToolResults {
				b, err := json.Marshal(r.Content)
				if err != nil {
					return nil, fmt.Errorf("openai: encode tool result: %w", err)
				}
				params.Messages = append(params.Messages, openai.ToolMessage(string(b), r.CallID))
			}
		}
	}
	for _, t := range req.Tools {
		params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: t.Name, Description: openai.String(t.Description), Parameters: shared.FunctionParameters(t.Schema)}))
	}
	stream := m.client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		for _, ch := range chunk.Choices {
			if ch.Index == 0 && ch.Delta.Content != "" {
				onText(ch.Delta.Content)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	if len(acc.Choices) == 0 {
		return nil, errors.New("openai: the answer has no choice")
	}
	msg := acc.Choices[0].Message
	rep := &ModelReply{Text: msg.Content}
	for _, tc := range msg.ToolCalls {
		args, err := argsFromJSON(tc.Function.Arguments)
		if err != nil {
			return nil, fmt.Errorf("openai: tool call %s: %w", tc.Function.Name, err)
		}
		rep.ToolCalls = append(rep.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Args: args})
	}
	return rep, nil
}
