package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestAsk runs `aipress ask` against the in-process API: a read runs, a
// delete is only proposed without --yes and performed with it, and an
// unknown request says what the engine can do.
func TestAsk(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, _, err := h.run(t, "site", "create", "ask.example.com", "--title", "Ask", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	out, _, err := h.run(t, "ask", "list my sites", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Conversation string
		Results      []struct{ Result struct{ Data map[string]any } }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Results) != 1 || got.Conversation == "" {
		t.Fatalf("ask list: %v %s", err, out)
	}
	if items := got.Results[0].Result.Data["items"].([]any); len(items) != 1 {
		t.Fatalf("listed %d sites", len(items))
	}
	_, stderr, err := h.run(t, "ask", "delete ask.example.com")
	if err != nil || !strings.Contains(stderr, "Proposed: DELETE /v1/sites/ask.example.com") || !strings.Contains(stderr, "--yes") {
		t.Fatalf("ask delete without --yes: %v %q", err, stderr)
	}
	if s, _ := h.store.GetSite(ctx, "ask.example.com"); s.Metadata.DeletionRequested != nil {
		t.Fatal("deleted without --yes")
	}
	if _, _, err := h.run(t, "ask", "delete ask.example.com", "--yes"); err != nil {
		t.Fatal(err)
	}
	if s, _ := h.store.GetSite(ctx, "ask.example.com"); s.Metadata.DeletionRequested == nil {
		t.Fatal("not deleted with --yes")
	}
	h.env[EnvToken] = viewerSecret
	if _, _, err := h.run(t, "ask", "suspend ask.example.com", "--yes"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("viewer suspends: %v", err)
	}
	if _, _, err := h.run(t, "ask", "bake a cake"); err == nil || !strings.Contains(err.Error(), "did not understand") {
		t.Errorf("unknown request: %v", err)
	}
}
