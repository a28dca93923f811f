package assistant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/genai"
)

// GeminiConfig configures a Gemini model (the Gemini API, not Vertex).
type GeminiConfig struct {
	APIKey  string // required
	Model   string // default DefaultGeminiModel
	BaseURL string // empty: Google's endpoint
	// HTTPClient: nil for the library's default.
	HTTPClient *http.Client
}

// DefaultGeminiModel is the Gemini model used when none is named.
const DefaultGeminiModel = "gemini-2.5-flash"

// Gemini is a Model on the Gemini API (streamed generateContent).
type Gemini struct {
	client *genai.Client
	model  string
}

// NewGemini returns a Gemini Model.
func NewGemini(ctx context.Context, cfg GeminiConfig) (*Gemini, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("gemini: an API key is required (GEMINI_API_KEY, AIPRESS_ASSISTANT_API_KEY or --assistant-api-key-file)")
	}
	if cfg.Model == "" {
		cfg.Model = DefaultGeminiModel
	}
	c, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: cfg.APIKey, Backend: genai.BackendGeminiAPI,
		// v1beta: the version Google documents function calling with
		// JSON-Schema parameters and thought signatures on (the
		// library's default is v1).
		HTTPClient: cfg.HTTPClient, HTTPOptions: genai.HTTPOptions{BaseURL: cfg.BaseURL, APIVersion: "v1beta"}})
	if err != nil {
		return nil, fmt.Errorf("gemini: %w", err)
	}
	return &Gemini{client: c, model: cfg.Model}, nil
}

// Provider implements Model.
func (m *Gemini) Provider() string { return "gemini" }

// Name implements Model.
func (m *Gemini) Name() string { return m.model }

// Generate implements Model: streamGenerateContent; text parts go to
// onText as they arrive, function calls (with their thought signatures)
// are collected.
func (m *Gemini) Generate(ctx context.Context, req *ModelRequest, onText func(string)) (*ModelReply, error) {
	var contents []*genai.Content
	for _, msg := range req.History {
		switch msg.Role {
		case RoleUser:
			contents = append(contents, genai.NewContentFromText(msg.Text, genai.RoleUser))
		case RoleModel:
			c := &genai.Content{Role: genai.RoleModel}
			if msg.Text != "" {
				c.Parts = append(c.Parts, &genai.Part{Text: msg.Text})
			}
			for _, tc := range msg.ToolCalls {
				c.Parts = append(c.Parts, &genai.Part{ThoughtSignature: tc.Signature,
					FunctionCall: &genai.FunctionCall{ID: tc.ID, Name: tc.Name, Args: tc.Args}})
			}
			if len(c.Parts) > 0 {
				contents = append(contents, c)
			}
		case RoleTool:
			c := &genai.Content{Role: genai.RoleUser}
			for _, r := range msg.ToolResults {
				c.Parts = append(c.Parts, &genai.Part{FunctionResponse: &genai.FunctionResponse{ID: r.CallID, Name: r.Name, Response: r.Content}})
			}
			contents = append(contents, c)
		}
	}
	cfg := &genai.GenerateContentConfig{SystemInstruction: genai.NewContentFromText(req.System, genai.RoleUser)}
	if len(req.Tools) > 0 {
		var decls []*genai.FunctionDeclaration
		for _, t := range req.Tools {
			decls = append(decls, &genai.FunctionDeclaration{Name: t.Name, Description: t.Description, ParametersJsonSchema: t.Schema})
		}
		cfg.Tools = []*genai.Tool{{FunctionDeclarations: decls}}
	}
	rep := &ModelReply{}
	var text strings.Builder
	for resp, err := range m.client.Models.GenerateContentStream(ctx, m.model, contents, cfg) {
		if err != nil {
			return nil, fmt.Errorf("gemini: %w", err)
		}
		if len(resp.Candidates) == 0 || resp.Candidates[0].Content == nil {
			continue
		}
		for _, p := range resp.Candidates[0].Content.Parts {
			switch {
			case p.FunctionCall != nil:
				args := p.FunctionCall.Args
				if args == nil {
					args = map[string]any{}
				}
				rep.ToolCalls = append(rep.ToolCalls, ToolCall{ID: p.FunctionCall.ID, Name: p.FunctionCall.Name,
					Args: args, Signature: p.ThoughtSignature})
			case p.Text != "" && !p.Thought:
				text.WriteString(p.Text)
				onText(p.Text)
			}
		}
	}
	rep.Text = text.String()
	return rep, nil
}
