package cli

import (
	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/platform/controlplane"
)

// Environment variables holding the assistant's API key.
const (
	EnvAssistantAPIKey = "AIPRESS_ASSISTANT_API_KEY"
	EnvGeminiAPIKey    = "GEMINI_API_KEY"
	EnvOpenAIAPIKey    = "OPENAI_API_KEY"
)

// addAssistantFlags adds the assistant's flags of aipress server and up.
func addAssistantFlags(cmd *cobra.Command, o *controlplane.AssistantOptions) {
	fl := cmd.Flags()
	fl.StringVar(&o.Provider, "assistant-provider", controlplane.AssistantOffline,
		"the assistant's model: offline (rule-based, no model), gemini or openai (any OpenAI-compatible endpoint)")
	fl.StringVar(&o.Model, "assistant-model", "", "the model's name (gemini default gemini-2.5-flash; openai: required, e.g. gpt-4o-mini or llama3.1)")
	fl.StringVar(&o.BaseURL, "assistant-base-url", "", "the provider's endpoint (e.g. Ollama's http://127.0.0.1:11434/v1, vLLM's …/v1; empty: the provider's public API)")
	fl.StringVar(&o.APIKeyFile, "assistant-api-key-file", "", "file holding the provider's API key (default: env "+EnvAssistantAPIKey+", else "+EnvGeminiAPIKey+" or "+EnvOpenAIAPIKey+")")
	fl.IntVar(&o.RatePerMinute, "assistant-rate", 20, "assistant messages a user may send a minute; -1: no limit")
}

// resolveAssistantKey takes the API key from the environment when no key
// file is given: AIPRESS_ASSISTANT_API_KEY, else the provider's own
// variable. The key is never printed.
func resolveAssistantKey(d deps, o *controlplane.AssistantOptions) {
	if o.APIKeyFile != "" {
		return
	}
	o.APIKey = d.getenv(EnvAssistantAPIKey)
	if o.APIKey != "" {
		return
	}
	switch o.Provider {
	case controlplane.AssistantGemini:
		o.APIKey = d.getenv(EnvGeminiAPIKey)
	case controlplane.AssistantOpenAI:
		o.APIKey = d.getenv(EnvOpenAIAPIKey)
	}
}
