package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/api"
)

// TestAsk runs `aipress ask` against the API's assistant (offline engine,
// in process): a read runs, a delete or a new site (costly) is only
// proposed without --yes and performed with it, a viewer's suspend fails with the API's 403, and an
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
		Events       []api.AssistantEvent
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Conversation == "" || len(got.Events) != 5 {
		t.Fatalf("ask list: %v %s", err, out)
	}
	res := got.Events[2]
	if res.Type != api.EventToolResult || res.Tool != "listSites" || len(res.Result.(map[string]any)["items"].([]any)) != 1 {
		t.Fatalf("listed %+v", res)
	}
	out, _, err = h.run(t, "ask", "what's the status of ask.example.com")
	if err != nil || !strings.Contains(out, "→ getSite {\"name\":\"ask.example.com\"}") || !strings.Contains(out, "← getSite: HTTP 200") {
		t.Fatalf("ask status: %v %s", err, out)
	}
	_, stderr, err := h.run(t, "ask", "delete ask.example.com")
	if err != nil || !strings.Contains(stderr, `Proposed: deleteSite {"name":"ask.example.com"}`) || !strings.Contains(stderr, "--yes") {
		t.Fatalf("ask delete without --yes: %v %q", err, stderr)
	}
	if s, _ := h.store.GetSite(ctx, "ask.example.com"); s.Metadata.DeletionRequested != nil {
		t.Fatal("deleted without --yes")
	}
	if out, _, err := h.run(t, "ask", "delete ask.example.com", "--yes"); err != nil || !strings.Contains(out, "← deleteSite: HTTP 202") {
		t.Fatalf("delete --yes: %v %s", err, out)
	}
	if s, _ := h.store.GetSite(ctx, "ask.example.com"); s.Metadata.DeletionRequested == nil {
		t.Fatal("not deleted with --yes")
	}
	// Creating a site costs: proposed without --yes, created with it.
	_, stderr, err = h.run(t, "ask", "create a site new.example.com titled New")
	if err != nil || !strings.Contains(stderr, "Proposed: createSite") || !strings.Contains(stderr, "--yes") {
		t.Fatalf("ask create without --yes: %v %q", err, stderr)
	}
	if _, err := h.store.GetSite(ctx, "new.example.com"); err == nil {
		t.Fatal("created without --yes")
	}
	if out, _, err := h.run(t, "ask", "create a site new.example.com titled New", "--yes"); err != nil || !strings.Contains(out, "← createSite: HTTP 201") {
		t.Fatalf("create --yes: %v %s", err, out)
	}
	if s, err := h.store.GetSite(ctx, "new.example.com"); err != nil || s.Spec.Title != "New" {
		t.Fatalf("not created with --yes: %v", err)
	}
	h.env[EnvToken] = viewerSecret
	if _, _, err := h.run(t, "ask", "suspend ask.example.com", "--yes"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("viewer suspends: %v", err)
	}
	if out, _, err := h.run(t, "ask", "bake a cake"); err != nil || !strings.Contains(out, "did not understand") {
		t.Errorf("unknown request: %v %s", err, out)
	}
}
