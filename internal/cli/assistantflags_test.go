package cli

import (
	"context"
	"testing"

	"github.com/aipress/aipress/internal/platform/controlplane"
)

// The assistant's flags reach the server's configuration; the key comes
// from AIPRESS_ASSISTANT_API_KEY, else the provider's own variable, and
// not from the environment when a key file is given.
func TestAssistantFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want controlplane.AssistantOptions
	}{
		{"default offline", nil, map[string]string{"GEMINI_API_KEY": "g"}, controlplane.AssistantOptions{Provider: "offline", RatePerMinute: 20}},
		{"gemini key from its variable", []string{"--assistant-provider", "gemini"}, map[string]string{"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"},
			controlplane.AssistantOptions{Provider: "gemini", APIKey: "g", RatePerMinute: 20}},
		{"openai on ollama", []string{"--assistant-provider", "openai", "--assistant-model", "llama3.1", "--assistant-base-url", "http://127.0.0.1:11434/v1", "--assistant-rate", "5"},
			map[string]string{"OPENAI_API_KEY": "o"},
			controlplane.AssistantOptions{Provider: "openai", Model: "llama3.1", BaseURL: "http://127.0.0.1:11434/v1", APIKey: "o", RatePerMinute: 5}},
		{"the platform's variable first", []string{"--assistant-provider", "openai", "--assistant-model", "m"}, map[string]string{"OPENAI_API_KEY": "o", "AIPRESS_ASSISTANT_API_KEY": "a"},
			controlplane.AssistantOptions{Provider: "openai", Model: "m", APIKey: "a", RatePerMinute: 20}},
		{"key file wins", []string{"--assistant-provider", "gemini", "--assistant-api-key-file", "/k"}, map[string]string{"GEMINI_API_KEY": "g"},
			controlplane.AssistantOptions{Provider: "gemini", APIKeyFile: "/k", RatePerMinute: 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got controlplane.AssistantOptions
			d := deps{getenv: func(k string) string { return tt.env[k] },
				runServer: func(_ context.Context, c controlplane.Config) error { got = c.Assistant; return nil }}
			if _, _, err := runCmd(t, d, append([]string{"server"}, tt.args...)...); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
