package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/aipress/aipress/internal/api"
)

// AssistantInfo returns GET /v1/assistant.
func (c *Client) AssistantInfo(ctx context.Context) (*api.AssistantInfo, error) {
	var out api.AssistantInfo
	if err := c.do(ctx, "GET", "/v1/assistant", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AssistantChat sends message in conversation ("" for a new one) and
// calls on with each event of the answer as it arrives.
func (c *Client) AssistantChat(ctx context.Context, conversation, message string, on func(api.AssistantEvent) error) error {
	return c.events(ctx, "/v1/assistant/chat", map[string]string{"conversation": conversation, "message": message}, on)
}

// AssistantConfirm performs a proposal and calls on with each event.
func (c *Client) AssistantConfirm(ctx context.Context, conversation, proposal string, on func(api.AssistantEvent) error) error {
	return c.events(ctx, "/v1/assistant/confirm", map[string]string{"conversation": conversation, "proposal": proposal}, on)
}

// AssistantCancel discards a proposal.
func (c *Client) AssistantCancel(ctx context.Context, conversation, proposal string) error {
	return c.do(ctx, "POST", "/v1/assistant/cancel", map[string]string{"conversation": conversation, "proposal": proposal}, nil)
}

// events POSTs body to path and reads the text/event-stream answer.
func (c *Client) events(ctx context.Context, path string, body any, on func(api.AssistantEvent) error) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	c.setHeaders(req)
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return responseError(resp, "POST", path)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev api.AssistantEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("POST %s: decode event: %w", path, err)
		}
		done = ev.Type == api.EventDone
		if err := on(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("POST %s: read events: %w", path, err)
	}
	if !done {
		return fmt.Errorf("POST %s: the answer ended before its done event", path)
	}
	return nil
}
