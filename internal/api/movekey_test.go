package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"

	"github.com/aipress/aipress/internal/site"
)

// TestAgentMoveKey: the key of a site's move goes to the move's source and
// target shards, while the move is active, and to no one else.
func TestAgentMoveKey(t *testing.T) {
	startMove := func(t *testing.T, e *bkEnv) {
		if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/move", adminSecret, map[string]any{"target": "s2"}); code != 202 {
			t.Fatalf("start move: %d %v", code, m)
		}
	}
	setPhase := func(p site.MovePhase) func(t *testing.T, e *bkEnv) {
		return func(t *testing.T, e *bkEnv) {
			startMove(t, e)
			if _, err := e.store.UpdateSite(context.Background(), "a.com", func(s *site.Site) error {
				s.Move.Phase = p
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	const path = "/v1/agent/sites/a.com/move-key"
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *bkEnv)
		path   string
		token  string
		status int
		code   string
	}{
		{"source", startMove, path, shard1Secret, 200, ""},
		{"target", startMove, path, shard2Secret, 200, ""},
		{"target while aborting", setPhase(site.MoveAborting), path, shard2Secret, 200, ""},
		{"another shard", startMove, path, shard9Secret, 403, "forbidden"},
		{"no move", nil, path, shard1Secret, 403, "forbidden"},
		{"finished move", setPhase(site.MoveDone), path, shard2Secret, 403, "forbidden"},
		{"aborted move", setPhase(site.MoveAborted), path, shard1Secret, 403, "forbidden"},
		{"unknown site", startMove, "/v1/agent/sites/x.com/move-key", shard1Secret, 404, "not_found"},
		{"admin token", startMove, path, adminSecret, 403, "forbidden"},
		{"viewer token", startMove, path, viewerSecret, 403, "forbidden"},
		{"edge token", startMove, path, edgeSecret, 403, "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newBkEnv(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			code, m, _ := e.do(t, "GET", tc.path, tc.token, nil)
			if code != tc.status {
				t.Fatalf("status = %d, want %d; body %v", code, tc.status, m)
			}
			if tc.code != "" {
				if errCode(m) != tc.code {
					t.Errorf("code = %q, want %q (%v)", errCode(m), tc.code, m)
				}
				if _, leaked := m["key"]; leaked {
					t.Errorf("a refusal carries a key: %v", m)
				}
				return
			}
			st, err := e.store.GetSite(context.Background(), "a.com")
			if err != nil {
				t.Fatal(err)
			}
			key, err := base64.StdEncoding.DecodeString(m["key"].(string))
			if err != nil || m["uid"] != st.Metadata.UID || m["move_id"] != st.Move.ID || st.Move.ID == "" ||
				!bytes.Equal(key, e.repos.MoveKey(st.Metadata.UID, st.Move.ID)) {
				t.Errorf("move key = %v (%v), want the key of move %s of %s", m, err, st.Move.ID, st.Metadata.UID)
			}
		})
	}
	// Another move of the same site has another key.
	e := newBkEnv(t)
	startMove(t, e)
	_, first, _ := e.do(t, "GET", path, shard1Secret, nil)
	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/move/abort", adminSecret, nil); code != 202 {
		t.Fatalf("abort: %d %v", code, m)
	}
	if _, err := e.store.UpdateSite(context.Background(), "a.com", func(s *site.Site) error {
		s.Move.Phase = site.MoveAborted
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startMove(t, e)
	_, second, _ := e.do(t, "GET", path, shard1Secret, nil)
	if first["key"] == nil || first["key"] == second["key"] || first["move_id"] == second["move_id"] {
		t.Errorf("two moves, keys %v and %v", first, second)
	}
}

func TestAgentMoveKeyWithoutKEK(t *testing.T) {
	e := fedEnv(t)
	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/move", adminSecret, map[string]any{"target": "s2"}); code != 202 {
		t.Fatalf("start move: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "GET", "/v1/agent/sites/a.com/move-key", shard1Secret, nil); code != 501 || errCode(m) != "unimplemented" {
		t.Errorf("move key without a KEK: %d %v", code, m)
	}
}
