package controlplane

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewAssistant(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("gm-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		o         AssistantOptions
		provider  string
		model     string
		errSubstr string
	}{
		{"default", AssistantOptions{}, "offline", "", ""},
		{"gemini from a key file", AssistantOptions{Provider: "gemini", APIKeyFile: keyFile}, "gemini", "gemini-2.5-flash", ""},
		{"gemini without a key", AssistantOptions{Provider: "gemini"}, "", "", "API key is required"},
		{"openai without a model", AssistantOptions{Provider: "openai", APIKey: "k"}, "", "", "model name is required"},
		{"openai-compatible", AssistantOptions{Provider: "openai", Model: "llama3.1", BaseURL: "http://127.0.0.1:11434/v1"}, "openai", "llama3.1", ""},
		{"unknown", AssistantOptions{Provider: "claude"}, "", "", "unknown assistant provider"},
		{"missing key file", AssistantOptions{Provider: "gemini", APIKeyFile: keyFile + ".none"}, "", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newAssistant(context.Background(), tt.o, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err %v, want %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in := s.Info(); in.Provider != tt.provider || in.Model != tt.model || in.RateLimitPerMinute != 20 {
				t.Errorf("info %+v", in)
			}
		})
	}
}
