package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/aipress/aipress/internal/assistant"
)

// Assistant providers (AssistantOptions.Provider).
const (
	AssistantOffline = "offline"
	AssistantGemini  = "gemini"
	AssistantOpenAI  = "openai"
)

// AssistantOptions configure the assistant behind /v1/assistant (aipress
// server and up flags).
type AssistantOptions struct {
	// Provider: offline (default; the rule-based engine, no model),
	// gemini or openai (any OpenAI-compatible endpoint).
	Provider string
	// Model is the model's name (gemini: default
	// assistant.DefaultGeminiModel; openai: required).
	Model string
	// BaseURL is the provider's endpoint (openai: e.g. Ollama's
	// http://127.0.0.1:11434/v1; empty: the provider's public one).
	BaseURL string
	// APIKey, or APIKeyFile holding it. Never logged.
	APIKey, APIKeyFile string
	// RatePerMinute is the messages a user may send a minute (0: the
	// default, 20; negative: no limit).
	RatePerMinute int
}

// newAssistant builds the assistant; its calls are served by apiHandler.
func newAssistant(ctx context.Context, o AssistantOptions, apiHandler http.Handler, log *slog.Logger) (*assistant.Service, error) {
	key := o.APIKey
	if o.APIKeyFile != "" {
		b, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("assistant API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	var model assistant.Model
	var err error
	switch o.Provider {
	case "", AssistantOffline:
	case AssistantGemini:
		model, err = assistant.NewGemini(ctx, assistant.GeminiConfig{APIKey: key, Model: o.Model, BaseURL: o.BaseURL})
	case AssistantOpenAI:
		model, err = assistant.NewOpenAI(assistant.OpenAIConfig{APIKey: key, Model: o.Model, BaseURL: o.BaseURL})
	default:
		return nil, fmt.Errorf("unknown assistant provider %q (want %s, %s or %s)", o.Provider, AssistantOffline, AssistantGemini, AssistantOpenAI)
	}
	if err != nil {
		return nil, fmt.Errorf("assistant: %w", err)
	}
	s, err := assistant.NewService(assistant.ServiceConfig{API: apiHandler, Model: model, RatePerMinute: o.RatePerMinute, Logger: log})
	if err != nil {
		return nil, err
	}
	in := s.Info()
	log.Info("assistant ready", "provider", in.Provider, "model", in.Model, "base_url", o.BaseURL, "rate_per_minute", in.RateLimitPerMinute)
	return s, nil
}
